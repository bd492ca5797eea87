//! The applied frontier's one input from the delivery layer: whether the live durable
//! consumers have caught up. `wait_for_applied` (and an `Applied` gate) waits for the visible
//! frontier and for this.

use super::{Open, Store};

impl Store<Open> {
    /// Whether every live durable consumer whose region holds an event below `point` (an
    /// exclusive sequence bound) has committed past that event. `true` when no consumer is
    /// live: the applied frontier then equals the visible one, so an `Applied` wait can never
    /// be held back by a consumer that does not exist.
    ///
    /// Whoever moves the answer from `false` to `true` (a consumer's commit, its drop) wakes
    /// the waiters with `Shared::wake_durable_waiters`.
    pub(crate) fn consumers_applied_through(&self, point: u64) -> bool {
        self.live_consumers_through(point)
    }
}
