//! What the store reports about itself: the frontier, counters, writer queue pressure,
//! diagnostics.

use super::{Frontier, Store, StoreDiagnostics, StoreStats, WriterPressure};

impl<S> Store<S> {
    /// The sequence numbers the writer has reached.
    pub fn frontier(&self) -> Frontier {
        let (written, durable, visible) = self.shared.frontier.load();
        Frontier {
            written,
            durable,
            visible,
        }
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        let index = self.shared.index.read();
        let p = self.writer_pressure();
        StoreStats {
            event_count: index.len(),
            entity_count: index.entity_count(),
            scope_count: index.scope_count(),
            frontier: self.frontier(),
            global_sequence: self.frontier().written,
            writer_queue_len: p.queued,
            writer_queue_capacity: p.capacity,
            dir: self.cfg.dir.clone(),
        }
    }

    /// Counters, the configuration that shapes the log, and what recovery found at open.
    pub fn diagnostics(&self) -> StoreDiagnostics {
        let frontier = self.frontier();
        let (event_count, index_bytes) = {
            let index = self.shared.index.read();
            (index.len(), index.heap_bytes())
        };
        StoreDiagnostics {
            event_count,
            index_bytes,
            global_sequence: frontier.written,
            visible_sequence: frontier.visible,
            frontier,
            data_dir: self.cfg.dir.clone(),
            segment_max_bytes: self.cfg.segment_max_bytes,
            fd_budget: self.cfg.fd_budget,
            sync_every_n_events: self.cfg.sync_every_n_events,
            writer_pressure: self.writer_pressure(),
            recovery: self.recovery.clone(),
        }
    }

    /// How full the writer queue is.
    pub fn writer_pressure(&self) -> WriterPressure {
        let queued = self.tx.as_ref().map(|t| t.len()).unwrap_or(0);
        WriterPressure {
            queued,
            capacity: self.cfg.writer_channel_capacity,
            threshold: self.cfg.pressure_threshold,
        }
    }
}
