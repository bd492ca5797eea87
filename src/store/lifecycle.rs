//! Lifecycle events: a writable open records `SYSTEM_OPEN_COMPLETED` once recovery is done,
//! an explicit `close()` records `SYSTEM_CLOSE_COMPLETED` before the writer stops (upstream's
//! kinds and coordinate; `StoreConfig::with_lifecycle_events`).

use super::{AppendOptions, Open, Store, StoreError};
use crate::coordinate::Coordinate;
use crate::event::{EventKind, EventPayload};
use serde::{Deserialize, Serialize};

/// The entity of lifecycle events (upstream's).
pub const LIFECYCLE_ENTITY: &str = "batpak:store";
/// The scope of lifecycle events (upstream's).
pub const LIFECYCLE_SCOPE: &str = "batpak:lifecycle";

/// Payload of [`EventKind::SYSTEM_OPEN_COMPLETED`]: what recovery found at this open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OpenCompleted {
    /// Segment files recovery scanned.
    pub segments: usize,
    /// Valid records recovery read.
    pub recovered_records: u64,
    /// Whether recovery cut a torn tail.
    pub torn_tail_cut: bool,
}

impl EventPayload for OpenCompleted {
    const KIND: EventKind = EventKind::SYSTEM_OPEN_COMPLETED;
}

/// Payload of [`EventKind::SYSTEM_CLOSE_COMPLETED`]: the log's end at close (the sequence
/// the close event itself takes, and the wall clock then), as upstream records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CloseCompleted {
    /// The hybrid logical clock of the last visible event before the close, milliseconds (0
    /// if none).
    pub wall_ms: u64,
    /// The visible frontier before the close (the close event's own sequence).
    pub global_sequence: u64,
}

impl EventPayload for CloseCompleted {
    const KIND: EventKind = EventKind::SYSTEM_CLOSE_COMPLETED;
}

impl Store<Open> {
    /// Appends a lifecycle event (a system kind, at the lifecycle coordinate).
    fn append_lifecycle<T: EventPayload>(&self, payload: &T) -> Result<(), StoreError> {
        let coord = Coordinate::new(LIFECYCLE_ENTITY, LIFECYCLE_SCOPE)?;
        let item = self.system_item(&coord, T::KIND, payload, AppendOptions::new())?;
        self.submit_item(item, None, false)?.wait()?;
        Ok(())
    }

    /// At open, once the writer runs: `SYSTEM_OPEN_COMPLETED` (if enabled).
    pub(crate) fn record_open(&self) -> Result<(), StoreError> {
        if !self.cfg.lifecycle_events {
            return Ok(());
        }
        let r = &self.recovery;
        self.append_lifecycle(&OpenCompleted {
            segments: r.segments,
            recovered_records: r.records,
            torn_tail_cut: r.torn_tail.is_some(),
        })
    }

    /// At an explicit close, before the writer stops: `SYSTEM_CLOSE_COMPLETED` (if enabled).
    /// A store whose writer can no longer write (latched, gone, a fence left open by
    /// `abandon`) closes without it: the close itself must still happen.
    pub(crate) fn record_close(&self) {
        if !self.cfg.lifecycle_events {
            return;
        }
        let visible = self.frontier().visible;
        let wall_ms = self.shared.index.read().last_wall_ms().unwrap_or_default();
        let payload = CloseCompleted {
            wall_ms,
            global_sequence: visible,
        };
        if let Err(error) = self.append_lifecycle(&payload) {
            tracing::warn!(%error, "close without its SYSTEM_CLOSE_COMPLETED event");
        }
    }
}
