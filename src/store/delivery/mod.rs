//! Delivery: following the log in order.
//!
//! - [`subscription`]: live notifications. [`Store::subscribe_lossy`] follows from the head
//!   and never disconnects (a subscriber that falls behind skips ahead and can read how many
//!   it missed); [`Store::subscribe_from`] catches up from history into live without a gap.
//! - [`cursor`]: pull reads in global-sequence order ([`Store::cursor_guaranteed`]), each
//!   poll O(log n + k) over the sequence-ordered index, `poll_wait` sleeping until a publish.
//! - [`reactor`]: threads that react to events by writing events, exactly once.
//! - [`consumer`]: durable consumers whose checkpoints are log records
//!   ([`Store::consumer`]); `commit_with` writes outputs and checkpoint as one atomic unit.
//!
//! Every surface reads the in-memory index (no per-subscriber copy, so memory does not grow
//! with lag) and delivers only events that are visible and durable, so nothing delivered can
//! be taken back by a crash: never an event of an open or cancelled fence, never half a
//! batch. The writer never waits for a reader; readers sleep on a publish signal the writer
//! raises once per group.

pub mod consumer;
pub mod cursor;
pub mod observation;
pub mod reactor;
pub mod subscription;
pub mod worker;

use super::Store;
use crate::mutant::{Bugs, Mutant};
use crate::region::Region;
use crate::sync::atomic::Ordering;
use crate::sync::Arc;
use crate::writer::shared::Shared;

pub use consumer::{CheckpointId, Consumer, ConsumerInfo};
pub use cursor::{Cursor, CursorGapConfig, GapObservation};
pub use observation::{IdempotencyKey, ObservedOnce};
pub use reactor::{
    MultiDispatchError, MultiReactive, ReactionBatch, ReactorConfig, ReactorError, TypedReactive,
    TypedReactorHandle,
};
pub use subscription::{
    Notification, RecvError, ScanSubscriptionOps, Subscription, SubscriptionOps,
};
pub use worker::{
    AtLeastOnce, CursorWorkerAction, CursorWorkerConfig, CursorWorkerHandle, RestartPolicy,
};

/// The index view every delivery surface reads through.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    pub shared: Arc<Shared>,
    pub region: Region,
    pub bugs: Bugs,
}

impl Feed {
    /// Sequences below this may be delivered: durable ones (every indexed event is visible).
    pub fn below(&self) -> u64 {
        if self.bugs.has(Mutant::CheckpointAckBeforeDurable)
            || self.bugs.has(Mutant::DeliverBeforeDurable)
        {
            return u64::MAX;
        }
        self.shared.frontier.durable.load(Ordering::SeqCst)
    }
}

impl<S> Store<S> {
    pub(crate) fn feed(&self, region: &Region) -> Feed {
        Feed {
            shared: self.shared.clone(),
            region: region.clone(),
            bugs: self.cfg.bugs,
        }
    }
}
