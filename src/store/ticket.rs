//! Tickets: the answer to a non-blocking submit.

use crate::error::StoreError;
use crate::mutant::{Bugs, Mutant};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::channel::{Receiver, TryRecvError};
use crate::sync::thread::ThreadId;
use crate::sync::{Arc, Mutex};
use crate::writer::AppendReceipt;

/// What a fenced ticket knows of its fence, so that waiting for it can never deadlock on an
/// uncommitted fence (INV-NO-HANG): a fenced ticket resolves at commit or cancel, so a thread
/// that may still have to commit or cancel the fence must not block on it.
///
/// Those threads are the fence's *holders*: the thread that began it (the only one that can
/// commit, cancel or drop it: [`super::VisibilityFence`] is not `Send`) and every thread that
/// used it through a shared reference (`submit*`, `submit_batch`, `outbox`), typically a scoped
/// worker whose owner commits after joining it. A thread that only received a ticket is not a
/// holder and blocks until the fence ends.
#[derive(Debug)]
pub(crate) struct FenceWatch {
    token: u64,
    open: AtomicBool,
    /// The thread that began the fence (the only one that can commit, cancel or drop it).
    owner: ThreadId,
    /// The other threads that used the fence (a handful). The owner is not listed: its own
    /// submits and waits take no lock (the model checkers see no extra step).
    helpers: Mutex<Vec<ThreadId>>,
    /// Seeded bug `FenceRemembersLastThread`: only the last thread that used the fence counts.
    last_only: bool,
}

impl FenceWatch {
    pub(crate) fn new(token: u64, bugs: Bugs) -> Arc<Self> {
        let owner = crate::sync::thread::current().id();
        let last_only = bugs.has(Mutant::FenceRemembersLastThread);
        Arc::new(Self {
            token,
            open: AtomicBool::new(true),
            owner,
            helpers: Mutex::new(if last_only { vec![owner] } else { Vec::new() }),
            last_only,
        })
    }

    /// The fence token.
    pub(crate) fn token(&self) -> u64 {
        self.token
    }

    /// Records the calling thread as one of the fence's holders.
    pub(crate) fn touch(&self) {
        let me = crate::sync::thread::current().id();
        if me == self.owner && !self.last_only {
            return;
        }
        let mut helpers = self.helpers.lock();
        if self.last_only {
            helpers.clear();
        }
        if !helpers.contains(&me) {
            helpers.push(me);
        }
    }

    /// The fence is being committed, cancelled or dropped.
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    fn would_deadlock(&self) -> bool {
        if !self.open.load(Ordering::SeqCst) {
            return false;
        }
        let me = crate::sync::thread::current().id();
        (me == self.owner && !self.last_only) || self.helpers.lock().contains(&me)
    }
}

/// Answers a ticket gives: the first one is kept, so asking again (`try_check` after
/// `try_check`, `wait` after `try_check`) gives the same answer instead of finding the
/// writer's one-shot reply channel empty and closed.
#[derive(Debug)]
struct Answer<T> {
    rx: Receiver<Result<T, StoreError>>,
    /// Boxed: only `try_check` keeps an answer, and a ticket stays small.
    kept: Mutex<Option<Box<Result<T, StoreError>>>>,
}

impl<T: Clone> Answer<T> {
    fn new(rx: Receiver<Result<T, StoreError>>) -> Self {
        Self {
            rx,
            kept: Mutex::new(None),
        }
    }

    /// The answer if there is one: `None` while pending.
    fn poll(&self) -> Option<Result<T, StoreError>> {
        let mut kept = self.kept.lock();
        if kept.is_none() {
            *kept = poll(&self.rx).map(Box::new);
        }
        kept.as_deref().map(replay)
    }

    /// Blocks for the answer. A fenced ticket waited on by one of its fence's holders while
    /// the fence is open answers `FenceTicketPending` instead (see [`FenceWatch`]).
    fn wait(self, spin: u32, fence: Option<&FenceWatch>) -> Result<T, StoreError> {
        if let Some(r) = self.kept.into_inner() {
            return *r;
        }
        if let Some(w) = fence.filter(|w| w.would_deadlock()) {
            return poll(&self.rx)
                .unwrap_or(Err(StoreError::FenceTicketPending { fence: w.token }));
        }
        wait_reply(&self.rx, spin)
    }
}

fn replay<T: Clone>(r: &Result<T, StoreError>) -> Result<T, StoreError> {
    match r {
        Ok(v) => Ok(v.clone()),
        Err(e) => Err(e.replay()),
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
    answer: Answer<AppendReceipt>,
    spin: u32,
    fence: Option<Arc<FenceWatch>>,
}

impl AppendTicket {
    pub(crate) fn new(
        rx: Receiver<Result<AppendReceipt, StoreError>>,
        spin: u32,
        fence: Option<Arc<FenceWatch>>,
    ) -> Self {
        Self {
            answer: Answer::new(rx),
            spin,
            fence,
        }
    }

    /// Blocks until the writer answers. Never hangs: a dead writer answers `WriterCrashed`.
    ///
    /// A fenced ticket resolves when its fence commits (`Ok`) or is cancelled
    /// (`VisibilityFenceCancelled`). Waiting for it while the fence is open on a thread that
    /// began or used the fence (one that may still have to commit it) could never end, so that
    /// wait returns `FenceTicketPending` at once instead (commit first, then wait); a thread
    /// that only received the ticket blocks until the fence ends.
    pub fn wait(self) -> Result<AppendReceipt, StoreError> {
        self.answer.wait(self.spin, self.fence.as_deref())
    }

    /// The answer if it is there: `None` while pending (upstream's signature). A dead writer
    /// answers `Some(Err(WriterCrashed))`. Once answered, the ticket keeps the answer: later
    /// `try_check` and `wait` calls return it again.
    pub fn try_check(&self) -> Option<Result<AppendReceipt, StoreError>> {
        self.answer.poll()
    }
}

/// The pending answer to one submitted batch.
#[derive(Debug)]
#[must_use = "a ticket does nothing unless waited on; the write happens either way"]
pub struct BatchAppendTicket {
    answer: Answer<Vec<AppendReceipt>>,
    spin: u32,
    fence: Option<Arc<FenceWatch>>,
}

impl BatchAppendTicket {
    pub(crate) fn new(
        rx: Receiver<Result<Vec<AppendReceipt>, StoreError>>,
        spin: u32,
        fence: Option<Arc<FenceWatch>>,
    ) -> Self {
        Self {
            answer: Answer::new(rx),
            spin,
            fence,
        }
    }

    /// Blocks until the writer answers. For a fenced batch the same rule as
    /// [`AppendTicket::wait`] applies.
    pub fn wait(self) -> Result<Vec<AppendReceipt>, StoreError> {
        self.answer.wait(self.spin, self.fence.as_deref())
    }

    /// The answer if it is there: `None` while pending (upstream's signature). A dead writer
    /// answers `Some(Err(WriterCrashed))`. Once answered, the ticket keeps the answer.
    pub fn try_check(&self) -> Option<Result<Vec<AppendReceipt>, StoreError>> {
        self.answer.poll()
    }
}

crate::sync::production_only! {
    impl AppendTicket {
        /// The writer's reply channel itself, for async interop
        /// (`receiver().recv_async().await`) or deadline waits (`recv_timeout`), as upstream
        /// offers it. Production builds only: the model-checked builds (`--cfg loom`,
        /// `--cfg shuttle`) use the `sync` facade's own channel, which is not a `flume` one.
        ///
        /// The trade-offs of bypassing [`wait`](Self::wait):
        /// - no fence-pending check: on a thread that holds this ticket's open fence, a
        ///   blocking receive waits until the fence ends, that is forever if that thread is the
        ///   one that must commit it (as upstream; `wait` answers `FenceTicketPending` instead,
        ///   DIFFERENCES row 14);
        /// - the channel carries one answer. An answer received from it is gone from the
        ///   ticket: a later `wait`/`try_check` finds the channel empty and, once the writer let
        ///   go of its end, closed: `WriterCrashed`, as upstream's would. Conversely an answer `try_check` already
        ///   took is kept by the ticket (`wait` returns it) and is no longer in the channel.
        ///
        /// ```
        /// use batpak::prelude::*;
        /// use std::time::Duration;
        ///
        /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
        /// let dir = tempfile::tempdir()?;
        /// let store = Store::open(StoreConfig::new(dir.path()))?;
        /// let coord = Coordinate::new("order:1", "shop")?;
        /// let ticket = store.submit(&coord, EventKind::custom(1, 1), &"placed")?;
        /// // In async code: `ticket.receiver().recv_async().await`.
        /// let receipt = ticket.receiver().recv_timeout(Duration::from_secs(30))??;
        /// assert_eq!(store.get(receipt.event_id)?.event.payload, "placed");
        /// store.close()?;
        /// # Ok(()) }
        /// ```
        pub fn receiver(
            &self,
        ) -> &crate::sync::channel::FlumeReceiver<Result<AppendReceipt, StoreError>> {
            self.answer.rx.as_flume()
        }
    }
}

crate::sync::production_only! {
    impl BatchAppendTicket {
        /// The writer's reply channel itself, for async interop (`recv_async`) or deadline
        /// waits (`recv_timeout`), as upstream offers it. Production builds only; the
        /// trade-offs of [`AppendTicket::receiver`] apply (no fence-pending check, and an
        /// answer received from the channel is no longer available to `wait`/`try_check`).
        pub fn receiver(
            &self,
        ) -> &crate::sync::channel::FlumeReceiver<Result<Vec<AppendReceipt>, StoreError>> {
            self.answer.rx.as_flume()
        }
    }
}
