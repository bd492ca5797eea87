//! The waits: `wait_for_durable`, `wait_for_visible`, `wait_for_applied` (and the append
//! gates built on them), each deciding by the target's sequence only, never hanging.
//!
//! A wait sleeps on the writer's frontier signal (`durable_cv`: every fsync, every
//! written-frontier move while someone waits, the writer's exit). The written and visible
//! frontiers move together, so the same signal serves the visible wait. A durable wait sends
//! a `Sync` on entry (its answer reports a latched writer) and, in the deferred mode, another
//! one once the point is written if no earlier one covered it; the `Ok` answer to a `Sync`
//! sent when `written >= point` means the point is durable. Sends never block: with the queue
//! full the request is retried after a short sleep.

use super::{AppendReceipt, Open, Store, StoreError};
use crate::append::{DurabilityGate, HlcPoint, WatermarkKind};
use crate::mutant::Mutant;
use crate::sync::atomic::Ordering;
use crate::sync::channel::{self, Receiver};
use crate::writer::shared::Shared;
use crate::writer::Command;
use std::time::{Duration, Instant};

impl Store<Open> {
    /// Waits until the event at `point` and every event before it is durable (survives a
    /// crash), or `timeout` elapses ([`StoreError::WaitTimeout`]). `point` is an
    /// [`HlcPoint`], a receipt (`&receipt`) or an [`IndexEntry::point`](super::IndexEntry::point);
    /// only its `global_sequence` counts, never its wall time.
    ///
    /// Blocks while the point is not yet written (another thread may still append it) and,
    /// in the deferred modes, asks the writer for a flush once it is, so it does not wait for
    /// the sync policy. Never waits past `timeout`; a writer that dies meanwhile answers
    /// `WriterCrashed` at once, a latched one `WriterLatched` (INV-NO-HANG).
    ///
    /// ```no_run
    /// # use batpak::prelude::*;
    /// # fn main() -> Result<(), StoreError> {
    /// let store = Store::open(StoreConfig::new("./data").with_sync_every_n_events(100))?;
    /// let coord = Coordinate::new("ledger:1", "ledger").map_err(StoreError::from)?;
    /// let r = store.append(&coord, EventKind::custom(0xF, 1), &42)?;
    /// store.wait_for_durable(&r, std::time::Duration::from_secs(1))?;
    /// assert!(store.frontier().durable > r.sequence);
    /// # Ok(()) }
    /// ```
    pub fn wait_for_durable(
        &self,
        point: impl Into<HlcPoint>,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        self.wait_for(WatermarkKind::Durable, point.into(), timeout)
    }

    /// Waits until the event at `point` and every event before it is published to readers
    /// (hidden records of an open fence count as settled: wait for the fence's commit), or
    /// `timeout` elapses ([`StoreError::WaitTimeout`]). Decides by `global_sequence` only.
    pub fn wait_for_visible(
        &self,
        point: impl Into<HlcPoint>,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        self.wait_for(WatermarkKind::Visible, point.into(), timeout)
    }

    /// Waits until the event at `point` is visible and every live durable consumer (a
    /// [`Consumer`](crate::store::Consumer), a checkpointed `cursor_worker` or reactor) has
    /// committed past each event of its region up to `point`, or `timeout` elapses
    /// ([`StoreError::WaitTimeout`]). With no live consumer this is [`Store::wait_for_visible`]:
    /// nothing can hold it back, so it never times out for want of a projection (upstream's
    /// applied watermark never advances without one).
    pub fn wait_for_applied(
        &self,
        point: impl Into<HlcPoint>,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        self.wait_for(WatermarkKind::Applied, point.into(), timeout)
    }

    /// An append's gate: waits for the committed `receipt` to cross `gate.kind`; a timeout
    /// carries the receipt (the write committed).
    pub(crate) fn wait_for_gate(
        &self,
        receipt: &AppendReceipt,
        gate: DurabilityGate,
    ) -> Result<(), StoreError> {
        match self.wait_for(gate.kind, HlcPoint::from(receipt), gate.timeout) {
            Err(StoreError::WaitTimeout {
                watermark,
                target,
                waited_ms,
                committed: None,
            }) => Err(StoreError::WaitTimeout {
                watermark,
                target,
                waited_ms,
                committed: Some(Box::new(*receipt)),
            }),
            other => other,
        }
    }

    fn wait_for(
        &self,
        kind: WatermarkKind,
        target: HlcPoint,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        // The origin is the point before any event while none is written; once one is, it
        // names sequence 0 like any point of it (a receipt's point has wall time 0 too).
        if target == HlcPoint::ORIGIN && self.shared.frontier.written.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        // Every record below `point` must have crossed: the target's own sequence included.
        let point = if self.cfg.bugs.has(Mutant::WaitPointExclusive) {
            target.global_sequence
        } else {
            target.global_sequence.saturating_add(1)
        };
        let mut wait = FrontierWait {
            store: self,
            kind,
            target,
            point,
            start: Instant::now(),
            timeout,
            pending: None,
            asked_at: None,
        };
        if wait.reached() {
            return Ok(());
        }
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

/// One wait in progress.
struct FrontierWait<'a> {
    store: &'a Store<Open>,
    kind: WatermarkKind,
    target: HlcPoint,
    /// The frontier to reach: the target's sequence + 1.
    point: u64,
    start: Instant,
    timeout: Duration,
    /// The reply of the outstanding `Sync`.
    pending: Option<Receiver<Result<(), StoreError>>>,
    /// The written frontier when the last `Sync` was sent (`None`: none sent yet).
    asked_at: Option<u64>,
}

impl FrontierWait<'_> {
    fn durable(&self) -> bool {
        self.store.shared.frontier.durable.load(Ordering::SeqCst) >= self.point
    }

    fn visible(&self) -> bool {
        self.store.shared.frontier.visible.load(Ordering::SeqCst) >= self.point
    }

    fn reached(&self) -> bool {
        match self.kind {
            WatermarkKind::Durable => self.durable(),
            WatermarkKind::Visible => self.visible(),
            WatermarkKind::Applied => {
                self.visible() && self.store.consumers_applied_through(self.point)
            }
        }
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
        if self.reached() {
            return Ok(Next::Done);
        }
        if self.writer_gone() {
            return Err(StoreError::WriterCrashed);
        }
        let remaining = self.remaining()?;
        if self.kind != WatermarkKind::Durable {
            let written = self.store.shared.frontier.written.load(Ordering::SeqCst);
            self.sleep(written, remaining);
            return Ok(Next::Again);
        }
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
        let (w, d, v) = self.store.shared.frontier.load();
        tracing::debug!(
            watermark = %self.kind,
            sequence = self.target.global_sequence,
            written = w,
            durable = d,
            visible = v,
            "wait timed out"
        );
        StoreError::WaitTimeout {
            watermark: self.kind,
            target: self.target,
            waited_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            committed: None,
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
                if self.reached() {
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
        if self.reached()
            || shared.frontier.written.load(Ordering::SeqCst) != written
            || self.writer_gone()
        {
            return;
        }
        drop(shared.durable_cv.wait_timeout(g, remaining));
    }
}

/// Counts a thread in a wait for as long as it lives (see `Shared::durable_waiters`).
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
