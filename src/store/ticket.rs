//! Tickets: the answer to a non-blocking submit.

use crate::error::StoreError;
use crate::sync::channel::{Receiver, TryRecvError};
use crate::writer::AppendReceipt;

/// How many times a waiter polls before parking: waking a parked thread costs tens of
/// microseconds on small VMs (about 47 µs measured on a 2-vCPU VM), so spinning for roughly
/// that long first keeps the caller/writer hand-off cheap when the writer answers quickly
/// (deferred mode, fast disks). Under the model checkers a poll is a yield, so keep it short.
/// In the durable mode a reply needs an fsync (hundreds of microseconds at best), so callers
/// barely spin there; the store picks the budget by mode.
pub(crate) const SPIN_POLLS_DEFERRED: u32 = if crate::sync::UNDER_MODEL { 2 } else { 2_000 };
/// Spin budget in the durable mode.
pub(crate) const SPIN_POLLS_DURABLE: u32 = if crate::sync::UNDER_MODEL { 2 } else { 32 };

/// Waits for a writer reply; a vanished writer answers `WriterCrashed` (INV-NO-HANG).
pub(crate) fn wait_reply<T>(
    rx: &Receiver<Result<T, StoreError>>,
    spin: u32,
) -> Result<T, StoreError> {
    for _ in 0..spin {
        match rx.try_recv() {
            Ok(r) => return r,
            Err(TryRecvError::Empty) => crate::sync::spin_loop(),
            Err(TryRecvError::Disconnected) => return Err(StoreError::WriterCrashed),
        }
    }
    rx.recv().unwrap_or(Err(StoreError::WriterCrashed))
}

/// Upstream's `try_check` shape: `None` while pending, `Some(answer)` once there is one.
fn poll<T>(rx: &Receiver<Result<T, StoreError>>) -> Option<Result<T, StoreError>> {
    match rx.try_recv() {
        Ok(r) => Some(r),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => Some(Err(StoreError::WriterCrashed)),
    }
}

/// The pending answer to one submitted append.
///
/// Dropping a ticket does not cancel the write: the event is written (and, in the default
/// mode, made durable) whether or not anyone waits for the receipt.
#[derive(Debug)]
#[must_use = "a ticket does nothing unless waited on; the write happens either way"]
pub struct AppendTicket {
    pub(crate) rx: Receiver<Result<AppendReceipt, StoreError>>,
    pub(crate) spin: u32,
}

impl AppendTicket {
    /// Blocks until the writer answers. Never hangs: a dead writer answers `WriterCrashed`.
    pub fn wait(self) -> Result<AppendReceipt, StoreError> {
        wait_reply(&self.rx, self.spin)
    }

    /// The answer if it is there: `None` while pending (upstream's signature). A dead writer
    /// answers `Some(Err(WriterCrashed))`.
    pub fn try_check(&self) -> Option<Result<AppendReceipt, StoreError>> {
        poll(&self.rx)
    }
}

/// The pending answer to one submitted batch.
#[derive(Debug)]
#[must_use = "a ticket does nothing unless waited on; the write happens either way"]
pub struct BatchAppendTicket {
    pub(crate) rx: Receiver<Result<Vec<AppendReceipt>, StoreError>>,
    pub(crate) spin: u32,
}

impl BatchAppendTicket {
    /// Blocks until the writer answers.
    pub fn wait(self) -> Result<Vec<AppendReceipt>, StoreError> {
        wait_reply(&self.rx, self.spin)
    }

    /// The answer if it is there: `None` while pending (upstream's signature). A dead writer
    /// answers `Some(Err(WriterCrashed))`.
    pub fn try_check(&self) -> Option<Result<Vec<AppendReceipt>, StoreError>> {
        poll(&self.rx)
    }
}
