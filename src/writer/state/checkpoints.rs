//! Consumer checkpoints as the log holds them. Recovery replays checkpoint records here: one
//! outside a unit takes effect where it stands; one inside a batch takes effect only with the
//! batch's commit record, so a consumer's outputs and its checkpoint survive a crash together
//! or not at all (INV-EXACTLY-ONCE). The last effective record of an id wins.

use crate::codec::{CheckpointPosition, CheckpointRecord, Unit};
use crate::region::Region;
use std::collections::HashMap;

/// A consumer's committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointEntry {
    /// The region the consumer follows.
    pub region: Region,
    /// The last processed global sequence (`None`: nothing yet).
    pub after: Option<u64>,
}

/// What a checkpoint write asks for (the live writer's command).
#[derive(Debug, Clone)]
pub(crate) struct CheckpointWrite {
    pub id: String,
    pub region: Region,
    pub position: CheckpointPosition,
}

/// Checkpoints rebuilt by recovery.
#[derive(Debug, Default)]
pub(crate) struct Checkpoints {
    /// Effective checkpoints by id.
    pub table: HashMap<String, CheckpointEntry>,
    /// Checkpoints inside batches whose commit record has not been seen yet.
    pending: HashMap<u64, Vec<(String, Option<CheckpointEntry>)>>,
}

impl Checkpoints {
    /// A recovered checkpoint record at sequence `seq`. A position at or after the record's
    /// own sequence is refused: the writer only ever checkpoints events written before it
    /// (INV-CHECKPOINT-DURABLE), so such a record is corruption.
    pub fn recovered(&mut self, c: &CheckpointRecord<'_>, seq: u64) -> Result<(), String> {
        let entry = match c.position {
            CheckpointPosition::Deleted => None,
            CheckpointPosition::Start => Some(None),
            CheckpointPosition::After(s) if s < seq => Some(Some(s)),
            CheckpointPosition::After(s) => {
                return Err(format!(
                    "INV-CHECKPOINT-DURABLE: checkpoint {:?} at sequence {seq} names sequence {s}, not written before it",
                    c.id
                ))
            }
        };
        let entry = entry.map(|after| CheckpointEntry {
            region: c.region.region(),
            after,
        });
        match c.unit {
            Unit::None => self.apply(c.id.to_owned(), entry),
            Unit::Batch(b) => self
                .pending
                .entry(b)
                .or_default()
                .push((c.id.to_owned(), entry)),
            Unit::Fence(_) | Unit::FencedBatch { .. } => {
                return Err(format!(
                    "checkpoint {:?} at sequence {seq} is inside a fence, where the writer never puts one",
                    c.id
                ))
            }
        }
        Ok(())
    }

    /// The batch's commit record: its checkpoints take effect.
    pub fn batch_committed(&mut self, batch: u64) {
        if let Some(v) = self.pending.remove(&batch) {
            for (id, entry) in v {
                self.apply(id, entry);
            }
        }
    }

    /// Ends recovery: checkpoints of batches without a commit record never take effect.
    pub fn finish_recovery(&mut self) {
        self.pending.clear();
    }

    fn apply(&mut self, id: String, entry: Option<CheckpointEntry>) {
        match entry {
            Some(e) => {
                self.table.insert(id, e);
            }
            None => {
                self.table.remove(&id);
            }
        }
    }
}
