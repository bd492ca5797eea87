//! Observers of the writer's decisions: the points where the spec's actions happen (a step
//! decided and placed, a fsync, a failed fsync, a publish, the replies, recovery, and the
//! client-side enqueue), reported to an [`Observe`] implementation.
//!
//! Production builds use [`Silent`], whose methods are empty and inlined: no trace field, no
//! branch, no allocation. With the cargo feature `tla-trace` the store uses the trace
//! conformance observer ([`super::trace::Tla`]), which turns them into the TLA+-named events of
//! [`crate::trace`]. The one place that picks between them is the [`Observer`] alias.

use super::shared::FrontierCells;
use super::state::{Outgoing, Step};
use super::Command;
use crate::error::StoreError;
use crate::index::{Index, Slot};
use crate::log::RecoveryReport;
use crate::sync::channel::{Sender, TrySendError};
use crate::sync::StdArc;
use crate::trace::TraceSink;

/// What a store reports to its observer, in the order things happen.
pub(crate) trait Observe: Clone + Send + Sync + 'static {
    /// An observer that reports to `sink` (if it reports at all).
    fn new(sink: Option<StdArc<TraceSink>>) -> Self;

    /// Whether it wants the units of each publish ([`Observe::publish`]'s `units`).
    fn wants_units(&self) -> bool;

    /// Enqueues `cmd` without blocking; a full queue hands it back.
    #[allow(clippy::result_large_err)]
    fn try_send(&self, tx: &Sender<Command>, cmd: Command) -> Result<(), TrySendError<Command>>;

    /// Enqueues `cmd`, blocking while the queue is full.
    fn send(&self, tx: &Sender<Command>, cmd: Command) -> Result<(), StoreError>;

    /// A step was decided and its records placed.
    fn step(&self, step: &Step);

    /// The group's fsync succeeded: every record below `written` is durable (`frontier`
    /// still says what was durable before).
    fn fsync(&self, written: u64, frontier: &FrontierCells);

    /// The group's write or fsync failed, with the records below `written` written.
    fn fsync_failed(&self, written: u64, frontier: &FrontierCells);

    /// The group's units (commit position, events) are published, their events `ready`.
    fn publish(&self, units: &[(u64, usize)], ready: &[Slot]);

    /// The group is durable (or acknowledged before it) and published: these replies go out.
    fn replies(&self, out: &[Outgoing]);

    /// Recovery kept `report.next_seq` records; `index` is what it shows.
    fn recover(&self, report: &RecoveryReport, index: &Index);
}

/// The observer this build uses.
#[cfg(not(feature = "tla-trace"))]
pub(crate) type Observer = Silent;

/// The observer this build uses.
#[cfg(feature = "tla-trace")]
pub(crate) type Observer = super::trace::Tla;

/// The production observer: reports nothing, costs nothing.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "tla-trace", allow(dead_code))]
pub(crate) struct Silent;

impl Observe for Silent {
    #[inline(always)]
    fn new(_: Option<StdArc<TraceSink>>) -> Self {
        Silent
    }

    #[inline(always)]
    fn wants_units(&self) -> bool {
        false
    }

    #[inline(always)]
    fn try_send(&self, tx: &Sender<Command>, cmd: Command) -> Result<(), TrySendError<Command>> {
        tx.try_send(cmd)
    }

    #[inline(always)]
    fn send(&self, tx: &Sender<Command>, cmd: Command) -> Result<(), StoreError> {
        tx.send(cmd).map_err(|_| StoreError::WriterCrashed)
    }

    #[inline(always)]
    fn step(&self, _: &Step) {}

    #[inline(always)]
    fn fsync(&self, _: u64, _: &FrontierCells) {}

    #[inline(always)]
    fn fsync_failed(&self, _: u64, _: &FrontierCells) {}

    #[inline(always)]
    fn publish(&self, _: &[(u64, usize)], _: &[Slot]) {}

    #[inline(always)]
    fn replies(&self, _: &[Outgoing]) {}

    #[inline(always)]
    fn recover(&self, _: &RecoveryReport, _: &Index) {}
}
