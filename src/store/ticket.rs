//! Tickets: the answer to a non-blocking submit.

use crate::error::StoreError;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::channel::{Receiver, TryRecvError};
use crate::sync::thread::ThreadId;
use crate::sync::{Arc, Mutex};
use crate::writer::AppendReceipt;

/// What a fenced ticket knows of its fence, so that waiting for it can never deadlock on the
/// caller's own uncommitted fence (INV-NO-HANG): a fenced ticket resolves at commit or
/// cancel, so the thread holding the open fence must not block on it.
#[derive(Debug)]
pub(crate) struct FenceWatch {
    token: u64,
    open: AtomicBool,
    /// The thread that last used the fence handle (begin, submit, outbox).
    holder: Mutex<Option<ThreadId>>,
}

impl FenceWatch {
    pub(crate) fn new(token: u64) -> Arc<Self> {
        Arc::new(Self {
            token,
            open: AtomicBool::new(true),
            holder: Mutex::new(Some(crate::sync::thread::current().id())),
        })
    }

    /// The fence token.
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// Records the calling thread as the fence's holder.
    pub(crate) fn touch(&self) {
        *self.holder.lock() = Some(crate::sync::thread::current().id());
    }

    /// The fence is being committed, cancelled or dropped.
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    fn would_deadlock(&self) -> bool {
        self.open.load(Ordering::SeqCst)
            && *self.holder.lock() == Some(crate::sync::thread::current().id())
    }

    /// Refuses a wait that could only end when this very thread commits the fence.
    fn check<T>(&self, rx: &Receiver<Result<T, StoreError>>) -> Option<Result<T, StoreError>> {
        if !self.would_deadlock() {
            return None;
        }
        Some(poll(rx).unwrap_or(Err(StoreError::FenceTicketPending { fence: self.token })))
    }
}

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
    for i in 0..spin {
        match rx.try_recv() {
            Ok(r) => return r,
            Err(TryRecvError::Empty) => crate::writer::thread::spin_or_yield(i),
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
    pub(crate) fence: Option<Arc<FenceWatch>>,
}

impl AppendTicket {
    /// Blocks until the writer answers. Never hangs: a dead writer answers `WriterCrashed`.
    ///
    /// A fenced ticket resolves when its fence commits (`Ok`) or is cancelled
    /// (`VisibilityFenceCancelled`). Waiting for it on the thread that holds the still-open
    /// fence could never end, so that wait returns `FenceTicketPending` at once instead
    /// (commit first, then wait); other threads block until the fence ends.
    pub fn wait(self) -> Result<AppendReceipt, StoreError> {
        if let Some(r) = self.fence.as_ref().and_then(|w| w.check(&self.rx)) {
            return r;
        }
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
    pub(crate) fence: Option<Arc<FenceWatch>>,
}

impl BatchAppendTicket {
    /// Blocks until the writer answers. For a fenced batch the same rule as
    /// [`AppendTicket::wait`] applies.
    pub fn wait(self) -> Result<Vec<AppendReceipt>, StoreError> {
        if let Some(r) = self.fence.as_ref().and_then(|w| w.check(&self.rx)) {
            return r;
        }
        wait_reply(&self.rx, self.spin)
    }

    /// The answer if it is there: `None` while pending (upstream's signature). A dead writer
    /// answers `Some(Err(WriterCrashed))`.
    pub fn try_check(&self) -> Option<Result<Vec<AppendReceipt>, StoreError>> {
        poll(&self.rx)
    }
}
