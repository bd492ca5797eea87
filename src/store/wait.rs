//! `wait_for_durable`: waiting until a point of the log is durable, without ever hanging.
//!
//! The wait sleeps on the writer's frontier signal (`durable_cv`: every fsync, every
//! written-frontier move while someone waits, the writer's exit). It sends a `Sync` on entry
//! (its answer reports a latched writer) and, in the deferred mode, another one once the point
//! is written if no earlier one covered it; the `Ok` answer to a `Sync` sent when
//! `written >= point` means the point is durable. Sends never block: with the queue full the
//! request is retried after a short sleep.

use super::{Open, Store, StoreError};
use crate::mutant::Mutant;
use crate::sync::atomic::Ordering;
use crate::sync::channel::{self, Receiver};
use crate::writer::shared::Shared;
use crate::writer::Command;
use std::time::{Duration, Instant};

impl Store<Open> {
    /// Waits until every record below `point` (a sequence, e.g. `receipt.sequence + 1`) is
    /// durable, or `timeout` elapses (`Timeout`). Blocks while the point is not yet written
    /// (another thread may still append it) and asks the writer for a flush in the deferred
    /// mode once it is. Never waits past `timeout`; a writer that dies meanwhile answers
    /// `WriterCrashed` at once, a latched one `WriterLatched` (INV-NO-HANG).
    pub fn wait_for_durable(&self, point: u64, timeout: Duration) -> Result<(), StoreError> {
        if self.shared.frontier.durable.load(Ordering::SeqCst) >= point {
            return Ok(());
        }
        let mut wait = DurableWait {
            store: self,
            point,
            start: Instant::now(),
            timeout,
            pending: None,
            asked_at: None,
        };
        let _waiting = DurableWaiter::register(&self.shared);
        loop {
            if let Next::Done = wait.round()? {
                return Ok(());
            }
        }
    }
}

/// Whether the wait is over.
enum Next {
    Done,
    Again,
}

/// One `wait_for_durable` in progress.
struct DurableWait<'a> {
    store: &'a Store<Open>,
    point: u64,
    start: Instant,
    timeout: Duration,
    /// The reply of the outstanding `Sync`.
    pending: Option<Receiver<Result<(), StoreError>>>,
    /// The written frontier when the last `Sync` was sent (`None`: none sent yet).
    asked_at: Option<u64>,
}

impl DurableWait<'_> {
    fn durable(&self) -> bool {
        self.store.shared.frontier.durable.load(Ordering::SeqCst) >= self.point
    }

    fn ignores_exit(&self) -> bool {
        self.store.cfg.bugs.has(Mutant::WaitIgnoresWriterExit)
    }

    fn writer_gone(&self) -> bool {
        !self.ignores_exit() && *self.store.shared.stopped.read()
    }

    /// One round: done, the writer gone, the time up, a `Sync` answered or asked for, or a
    /// sleep until the frontier moves.
    fn round(&mut self) -> Result<Next, StoreError> {
        if self.durable() {
            return Ok(Next::Done);
        }
        if self.writer_gone() {
            return Err(StoreError::WriterCrashed);
        }
        let remaining = self.remaining()?;
        if self.pending.is_some() {
            return self.await_sync(remaining);
        }
        let written = self.store.shared.frontier.written.load(Ordering::SeqCst);
        let covered = self.asked_at.is_some_and(|w| w >= self.point);
        let deferred = self.store.cfg.durability().is_deferred();
        if self.asked_at.is_none() || (deferred && written >= self.point && !covered) {
            return self.ask(written, remaining);
        }
        self.sleep(written, remaining);
        Ok(Next::Again)
    }

    /// The time left, or `Timeout` naming the point and the frontier.
    fn remaining(&self) -> Result<Duration, StoreError> {
        let now = Instant::now();
        match self.start.checked_add(self.timeout) {
            Some(d) if now >= d => Err(self.timed_out()),
            Some(d) => Ok(d - now),
            None => Ok(Duration::from_secs(3600)),
        }
    }

    fn timed_out(&self) -> StoreError {
        let f = &self.store.shared.frontier;
        let (d, w) = (
            f.durable.load(Ordering::SeqCst),
            f.written.load(Ordering::SeqCst),
        );
        let state = if w >= self.point {
            "written, not yet durable"
        } else {
            "not yet written"
        };
        StoreError::Timeout {
            what: format!(
                "durability of sequence {} ({state}; durable frontier {d}, written {w}) after {} ms",
                self.point,
                self.start.elapsed().as_millis()
            ),
        }
    }

    /// Waits up to `remaining` for the outstanding `Sync`'s answer.
    fn await_sync(&mut self, remaining: Duration) -> Result<Next, StoreError> {
        let Some(rx) = &self.pending else {
            return Ok(Next::Again);
        };
        match rx.recv_timeout(remaining) {
            Ok(Ok(())) => self.pending = None,
            Ok(Err(e)) => return Err(e),
            Err(channel::RecvTimeoutError::Timeout) => {}
            Err(channel::RecvTimeoutError::Disconnected) => {
                if self.durable() {
                    return Ok(Next::Done);
                }
                if !self.ignores_exit() {
                    return Err(StoreError::WriterCrashed);
                }
                self.pending = None;
            }
        }
        Ok(Next::Again)
    }

    /// Asks the writer for a `Sync` (the written frontier is `written`), never blocking.
    fn ask(&mut self, written: u64, remaining: Duration) -> Result<Next, StoreError> {
        let (reply, rx) = channel::bounded(1);
        match self.store.try_send(Command::Sync { reply }) {
            Ok(()) => {
                self.pending = Some(rx);
                self.asked_at = Some(written);
            }
            // The queue is full: the writer is busy (and flushes on its own when the queue
            // drains); ask again shortly.
            Err(StoreError::Backpressure { .. }) => {
                crate::sync::thread::sleep(remaining.min(Duration::from_millis(1)));
            }
            Err(StoreError::WriterCrashed) if self.ignores_exit() => {
                self.asked_at = Some(written);
            }
            Err(e) => return Err(e),
        }
        Ok(Next::Again)
    }

    /// Sleeps until the frontier moves (or the writer stops, or `remaining` passes).
    fn sleep(&self, written: u64, remaining: Duration) {
        let shared = &self.store.shared;
        let g = shared.durable_lock.lock();
        if self.durable()
            || shared.frontier.written.load(Ordering::SeqCst) != written
            || self.writer_gone()
        {
            return;
        }
        drop(shared.durable_cv.wait_timeout(g, remaining));
    }
}

/// Counts a thread in `wait_for_durable` for as long as it lives (see `Shared::durable_waiters`).
struct DurableWaiter<'a>(&'a Shared);

impl<'a> DurableWaiter<'a> {
    fn register(shared: &'a Shared) -> Self {
        shared.durable_waiters.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for DurableWaiter<'_> {
    fn drop(&mut self) {
        self.0.durable_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
