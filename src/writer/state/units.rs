//! Units (INV-BATCH-ATOMIC, INV-FENCE-HIDDEN, INV-FENCE-CRASH, INV-NO-RESURRECT,
//! INV-NO-COLLATERAL): which written events wait for which commit record, and which are ready
//! to be published. Shared by the live writer and recovery, so they cannot disagree about what
//! is visible.

use crate::codec::Unit;
use crate::index::{IdMap, Slot};
use crate::mutant::{Bugs, Mutant};

/// Events waiting for their unit's commit, and the events ready to publish.
#[derive(Debug, Default)]
pub(crate) struct Units {
    /// Batch id -> events waiting for the batch commit record.
    batches: IdMap<u64, Vec<Slot>>,
    /// Fence token -> events waiting for the fence commit record.
    fences: IdMap<u64, Vec<Slot>>,
    /// Recovery only: batch id -> the fence its events name (`Unit::FencedBatch`).
    batch_fences: IdMap<u64, u64>,
    /// Events whose unit is complete, in sequence order, waiting to be published.
    pub ready: Vec<Slot>,
    /// The units whose events `ready` holds, in order: (commit position, events), kept only
    /// for an observer that asks for them (the trace's `Publish` steps).
    pub ready_units: Option<Vec<(u64, usize)>>,
    /// Whether records are being replayed by recovery (some seeded bugs act only there).
    pub recovering: bool,
    /// The seeded bug.
    pub bugs: Bugs,
}

impl Units {
    /// Routes a written event to its unit.
    pub fn event(&mut self, slot: Slot, unit: Unit) {
        let unit = self.seeded_unit(unit);
        if self.bugs.has(Mutant::RecoveryStopsAtHiddenUnit)
            && self.recovering
            && (!self.batches.is_empty() || !self.fences.is_empty())
            && unit == Unit::None
        {
            return;
        }
        match unit {
            Unit::None => self.make_ready(slot.seq + 1, std::iter::once(slot)),
            Unit::Batch(b) | Unit::FencedBatch { batch: b, .. } => {
                self.batches.entry(b).or_default().push(slot)
            }
            Unit::Fence(f) => self.fences.entry(f).or_default().push(slot),
        }
    }

    /// The unit an event counts in: its own, unless a seeded bug ignores it.
    fn seeded_unit(&self, unit: Unit) -> Unit {
        let (bugs, recovering) = (self.bugs, self.recovering);
        match unit {
            Unit::Fence(_) if bugs.has(Mutant::VisibleBeforeCommit) => Unit::None,
            Unit::Fence(_) if recovering && bugs.has(Mutant::RecoverOpenFenceVisible) => Unit::None,
            Unit::Batch(_) if recovering && bugs.has(Mutant::RecoverPartialBatch) => Unit::None,
            _ => unit,
        }
    }

    /// Appends a complete unit to `ready` (its commit record at 1-based position `commit`).
    fn make_ready(&mut self, commit: u64, slots: impl ExactSizeIterator<Item = Slot>) {
        if let Some(units) = self.ready_units.as_mut() {
            units.push((commit, slots.len()));
        }
        self.ready.extend(slots);
    }

    /// A batch commit record at 1-based position `commit` for `count` events: the batch
    /// becomes ready, or (a batch under `fence`) waits for the fence. A count that differs
    /// from the events written is refused.
    pub fn batch_commit(
        &mut self,
        batch: u64,
        count: u32,
        fence: Option<u64>,
        commit: u64,
    ) -> Result<(), String> {
        if self.bugs.has(Mutant::RecoverPartialBatch) && self.recovering {
            return Ok(());
        }
        let slots = self.batches.remove(&batch).unwrap_or_default();
        if slots.len() != count as usize {
            return Err(format!(
                "INV-BATCH-ATOMIC: batch {batch} commit record counts {count} events, {} precede it",
                slots.len()
            ));
        }
        match fence {
            Some(f) => self.fences.entry(f).or_default().extend(slots),
            None => self.make_ready(commit, slots.into_iter()),
        }
        Ok(())
    }

    /// A fence begin record: the fence holds no event yet.
    pub fn fence_begin(&mut self, fence: u64) {
        self.fences.entry(fence).or_default();
    }

    /// A fence commit record at 1-based position `commit`: the fence's events become ready.
    /// Fence events and later unfenced events are never interleaved (unfenced writes are
    /// refused while a fence is open), so appending keeps sequence order.
    pub fn fence_commit(&mut self, fence: u64, commit: u64) {
        if let Some(slots) = self.fences.remove(&fence) {
            self.make_ready(commit, slots.into_iter());
        }
    }

    /// A fence cancel (record at 1-based position `at`): the fence's events never become
    /// visible; they are returned so their keys and ids can be forgotten.
    pub fn fence_cancel(&mut self, fence: u64, at: u64) -> Vec<Slot> {
        if self.bugs.has(Mutant::CancelAsCommit) {
            self.fence_commit(fence, at);
            return Vec::new();
        }
        self.fences.remove(&fence).unwrap_or_default()
    }

    /// The live writer's cancel also drops batches written under the fence whose commit
    /// record never came (their events are at or after the fence's begin record).
    pub fn drop_batches_from(&mut self, fence: u64) {
        self.batches.retain(|_, v| v.iter().all(|s| s.seq < fence));
    }

    /// Recovery: an event of a batch under a fence.
    pub fn recovered_fenced_batch(&mut self, batch: u64, fence: u64) {
        self.batch_fences.insert(batch, fence);
    }

    /// Recovery: the fence a batch's events named, if any.
    pub fn recovered_batch_fence(&mut self, batch: u64) -> Option<u64> {
        self.batch_fences.remove(&batch)
    }

    /// Ends recovery: units without their commit record stay hidden forever
    /// (INV-FENCE-CRASH, INV-BATCH-ATOMIC); returns what is ready to publish.
    pub fn finish_recovery(&mut self) -> Vec<Slot> {
        let hidden_batches = self.batches.len();
        let hidden_fences = self.fences.len();
        if hidden_batches + hidden_fences > 0 {
            tracing::info!(
                hidden_batches,
                hidden_fences,
                "recovery left unfinished units hidden"
            );
        }
        self.batches.clear();
        self.fences.clear();
        self.batch_fences.clear();
        self.recovering = false;
        if let Some(units) = self.ready_units.as_mut() {
            units.clear();
        }
        std::mem::take(&mut self.ready)
    }
}
