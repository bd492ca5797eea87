//! Visibility fences: writes become durable immediately but stay hidden until the fence
//! commits, and never become visible if it is cancelled, dropped, or open at a crash.
//!
//! Differences from upstream (see DIFFERENCES.md): the fence is recorded in the log
//! (`FenceBegin`, `FenceCommit`, `FenceCancel`), so recovery makes its events visible exactly
//! when the commit record is durable (INV-FENCE-CRASH); upstream made an open fence's durable
//! writes visible after a crash.

use super::ticket::FenceWatch;
use super::{AppendOptions, Open};
use super::{AppendTicket, BatchAppendItem, BatchAppendTicket, Outbox, Store, StoreError};
use crate::coordinate::Coordinate;
use crate::event::{EventKind, EventPayload};
use crate::sync::Arc;
use crate::writer::Command;
use serde::Serialize;

/// An open visibility fence.
///
/// `Drop` of an unfinished fence is a best-effort cancel that never blocks the dropping
/// thread: it tries to enqueue the cancel; if the writer queue is full, a helper thread does
/// the blocking send; if the writer is gone, nothing happens (its events stay hidden forever
/// anyway: a fence without a durable commit record is never made visible). Failures are
/// logged with `tracing`, never a panic. Call [`VisibilityFence::cancel`] for a cancel you can
/// wait for.
///
/// A fence stays on the thread that began it (it is `Sync` but not `Send`): other threads may
/// submit through `&fence` (for example scoped workers), but only the beginning thread
/// commits, cancels or drops it. A fenced ticket waited on while the fence is open answers
/// `FenceTicketPending` on the beginning thread and on every thread that submitted through the
/// fence (those waits could only end by a commit that is still to come, see
/// [`AppendTicket::wait`]); a thread that only received a ticket blocks until the fence ends.
/// Upstream's fence is `Send` (DIFFERENCES.md).
///
/// ```compile_fail
/// use batpak::prelude::*;
/// fn assert_send<T: Send>(_: T) {}
/// # fn f(store: &Store) -> Result<(), StoreError> {
/// let fence = store.begin_visibility_fence()?;
/// assert_send(fence); // a fence cannot move to another thread
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "an unfinished fence is cancelled when dropped"]
pub struct VisibilityFence<'a> {
    store: &'a Store<Open>,
    token: u64,
    watch: Arc<FenceWatch>,
    closed: bool,
    _stays: crate::sync::NotSend,
}

impl<'a> VisibilityFence<'a> {
    pub(crate) fn new(store: &'a Store<Open>, token: u64) -> Self {
        Self {
            store,
            token,
            watch: FenceWatch::new(token, store.cfg.bugs),
            closed: false,
            _stays: std::marker::PhantomData,
        }
    }

    /// The fence's token (the sequence of its begin record).
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Submits a root-cause append under this fence. The ticket resolves at commit (`Ok`) or
    /// cancel (`VisibilityFenceCancelled`).
    pub fn submit(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<AppendTicket, StoreError> {
        self.submit_with_options(coord, kind, payload, AppendOptions::default())
    }

    /// Submits a fenced append with options.
    pub fn submit_with_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.store.item(coord, kind, payload, options)?;
        self.watch.touch();
        self.store.submit_item(item, Some(&self.watch), false)
    }

    /// Submits a reaction under this fence.
    pub fn submit_reaction(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendTicket, StoreError> {
        let options = AppendOptions::reaction(correlation_id, causation_id);
        self.submit_with_options(coord, kind, payload, options)
    }

    /// Submits a typed append under this fence.
    pub fn submit_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
    ) -> Result<AppendTicket, StoreError> {
        self.store.register_kind::<T>()?;
        self.submit(coord, T::KIND, payload)
    }

    /// Submits a typed reaction under this fence.
    pub fn submit_reaction_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendTicket, StoreError> {
        self.store.register_kind::<T>()?;
        self.submit_reaction(coord, T::KIND, payload, correlation_id, causation_id)
    }

    /// Submits an atomic batch under this fence; the ticket resolves at commit or cancel.
    pub fn submit_batch(
        &self,
        items: Vec<BatchAppendItem>,
    ) -> Result<BatchAppendTicket, StoreError> {
        self.watch.touch();
        self.store
            .submit_items(items, Some(&self.watch), false, false)
    }

    /// An outbox whose `flush()` stages one atomic batch under this fence. The flush returns
    /// once the batch is durably written (still hidden); it becomes visible at `commit()`.
    pub fn outbox(&self) -> Outbox<'_> {
        self.watch.touch();
        Outbox::new(self.store, Some(Arc::clone(&self.watch)))
    }

    /// Ends this handle without committing or cancelling: no cancel is sent, so the fence
    /// stays open in the writer until the store shuts down (which cancels it) or a crash
    /// (after which it stays hidden). What `std::mem::forget(fence)` does, without leaking the
    /// handle's memory. For tests of shutdown and crash paths.
    #[doc(hidden)]
    pub fn abandon(mut self) {
        self.closed = true;
        self.watch.close();
    }

    /// Publishes every write made under this fence, atomically. Returns `Ok` only once the
    /// commit record is durable (INV-FENCE-CRASH); every fenced ticket then resolves `Ok`.
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.closed = true;
        self.watch.close();
        let token = self.token;
        self.store.request(|reply| Command::FenceCommit {
            fence: token,
            reply,
        })
    }

    /// Cancels the fence: its writes never become visible (INV-NO-RESURRECT); fenced tickets
    /// resolve `VisibilityFenceCancelled`.
    pub fn cancel(mut self) -> Result<(), StoreError> {
        self.closed = true;
        self.watch.close();
        let token = self.token;
        self.store.request(|reply| Command::FenceCancel {
            fence: token,
            reply: Some(reply),
        })
    }
}

impl Drop for VisibilityFence<'_> {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        self.watch.close();
        let cmd = Command::FenceCancel {
            fence: self.token,
            reply: None,
        };
        if let Err(e) = self.store.send_detached(cmd) {
            tracing::warn!(
                fence = self.token,
                error = %e,
                "fence drop: cancel not enqueued; the fence stays hidden (never committed)"
            );
        }
    }
}
