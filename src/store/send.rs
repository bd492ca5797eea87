//! Handing commands to the writer: blocking, non-blocking (backpressure), detached (a fence's
//! drop never blocks), and the requests and submits built on them.

use super::batch::BatchAppendItem;
use super::ticket::{self, wait_reply, FenceWatch};
use super::{AppendTicket, BatchAppendTicket, Open, Store, StoreError};
use crate::mutant::Mutant;
use crate::sync::channel::{self, TrySendError};
use crate::sync::Arc;
use crate::writer::observe::Observe;
use crate::writer::{AppendItem, Command, Reply};

impl Store<Open> {
    pub(crate) fn send(&self, cmd: Command) -> Result<(), StoreError> {
        let gate = self.shared.stopped.read();
        if *gate {
            return Err(StoreError::WriterCrashed);
        }
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        self.observer.send(tx, cmd)
    }

    pub(crate) fn try_send(&self, cmd: Command) -> Result<(), StoreError> {
        let gate = self.shared.stopped.read();
        if *gate {
            return Err(StoreError::WriterCrashed);
        }
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let threshold = self.cfg.pressure_threshold;
        if self.cfg.bugs.has(Mutant::BackpressureAfterSend) {
            return match tx.try_send(cmd) {
                Ok(()) if tx.len() >= threshold => Err(StoreError::Backpressure {
                    queued: tx.len(),
                    threshold,
                }),
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => Err(StoreError::Backpressure {
                    queued: tx.len(),
                    threshold,
                }),
                Err(TrySendError::Disconnected(_)) => Err(StoreError::WriterCrashed),
            };
        }
        let queued = tx.len();
        if queued >= threshold {
            return Err(StoreError::Backpressure { queued, threshold });
        }
        match self.observer.try_send(tx, cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::Backpressure {
                queued: tx.len(),
                threshold,
            }),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::WriterCrashed),
        }
    }

    /// Sends a command without ever blocking the calling thread: `try_send`, and if the
    /// queue is full, a helper thread does the blocking send (the fence drop path).
    pub(crate) fn send_detached(&self, cmd: Command) -> Result<(), String> {
        if *self.shared.stopped.read() {
            return Err("writer is gone".into());
        }
        let Some(tx) = self.tx.as_ref() else {
            return Err("store is closed".into());
        };
        if self.cfg.bugs.has(Mutant::DropBlocks) {
            return tx
                .send(cmd)
                .map_err(|_| "writer channel disconnected".to_string());
        }
        match self.observer.try_send(tx, cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err("writer channel disconnected".into()),
            Err(TrySendError::Full(cmd)) => {
                let tx = tx.clone();
                let observer = self.observer.clone();
                crate::sync::thread::Builder::new()
                    .name("batpak-fence-drop-cancel".into())
                    .spawn(move || {
                        if observer.send(&tx, cmd).is_err() {
                            tracing::warn!(
                                "fence drop-cancel: writer gone before the cancel landed"
                            );
                        }
                    })
                    .map(|_| ())
                    .map_err(|e| format!("failed to spawn drop-cancel helper: {e}"))
            }
        }
    }

    pub(crate) fn spin_polls(&self) -> u32 {
        if self.cfg.durability().is_deferred() {
            ticket::SPIN_POLLS_DEFERRED
        } else {
            ticket::SPIN_POLLS_DURABLE
        }
    }

    pub(crate) fn submit_item(
        &self,
        item: AppendItem,
        fence: Option<&Arc<FenceWatch>>,
        try_only: bool,
    ) -> Result<AppendTicket, StoreError> {
        if item.options.gate.is_some() {
            return Err(gate_refused());
        }
        let (reply, rx) = channel::reply(Err(StoreError::WriterCrashed));
        let cmd = Command::Append {
            item,
            fence: fence.map(|w| w.token()),
            reply,
        };
        if try_only {
            self.try_send(cmd)?;
        } else {
            self.send(cmd)?;
        }
        Ok(AppendTicket::new(rx, self.spin_polls(), fence.cloned()))
    }

    pub(crate) fn submit_items(
        &self,
        items: Vec<BatchAppendItem>,
        fence: Option<&Arc<FenceWatch>>,
        reply_when_staged: bool,
        try_only: bool,
    ) -> Result<BatchAppendTicket, StoreError> {
        if let Some(i) = items.iter().position(|i| i.item.options.gate.is_some()) {
            return Err(StoreError::BatchFailed {
                item_index: i,
                stage: crate::error::BatchStage::Validation,
                source: Box::new(gate_refused()),
            });
        }
        let (reply, rx) = channel::reply(Err(StoreError::WriterCrashed));
        let cmd = Command::Batch {
            items: items.into_iter().map(|i| i.item).collect(),
            fence: fence.map(|w| w.token()),
            reply_when_staged,
            reply,
        };
        if try_only {
            self.try_send(cmd)?;
        } else {
            self.send(cmd)?;
        }
        Ok(BatchAppendTicket::new(
            rx,
            self.spin_polls(),
            // A staged flush answers without waiting for the commit: no guard needed.
            fence.filter(|_| !reply_when_staged).cloned(),
        ))
    }

    pub(crate) fn request<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, rx) = channel::reply(Err(StoreError::WriterCrashed));
        self.send(make(reply))?;
        wait_reply(&rx, self.spin_polls())
    }
}

/// A gate on a write that cannot wait for it (a submit, a batch item, a fenced write).
fn gate_refused() -> StoreError {
    StoreError::Configuration(
        "a DurabilityGate is honoured by append_with_options (and its typed form) and, for a \
         whole batch, by append_batch_with_options; a submit, a batch item or a fenced write \
         cannot wait for it: wait for the ticket, then call wait_for_durable / \
         wait_for_visible / wait_for_applied"
            .to_string(),
    )
}
