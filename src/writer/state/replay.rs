//! Recovery replay: each recovered record goes through the same unit bookkeeping as the live
//! writer's records, so recovery and the live writer cannot disagree about what is visible.
//! A record the live writer could never have written (a broken entity chain, a wrong batch
//! count) is refused, which fails recovery as corruption at that record.

use super::chains::{event_hash, Head};
use super::idem::IdemInfo;
use super::WriterState;
use crate::append::{AppendReceipt, DiskPos};
use crate::codec::{EventRecord, Record, RecordBody, Unit};
use crate::event::{EventKind, HashChain};
use crate::index::Slot;

impl WriterState {
    /// Replays one recovered record found at `pos`.
    /// `hash` is the event's hash when the scan computed it ahead (else it is computed here).
    pub fn recover_record(
        &mut self,
        record: &Record<'_>,
        pos: DiskPos,
        hash: Option<&[u8; 32]>,
    ) -> Result<(), String> {
        assert_eq!(
            record.seq, self.next_seq,
            "INV-STABLE-SEQ: the scan hands records over in sequence order, without a gap"
        );
        self.next_seq = record.body.next_seq(record.seq);
        let commit = record.seq + 1;
        match &record.body {
            RecordBody::Event(e) => self.recover_event(e, record.seq, pos, hash)?,
            RecordBody::BatchCommit { batch, count } => {
                self.idem.recovered_batch_commit(*batch, *count);
                let fence = self.units.recovered_batch_fence(*batch);
                self.units.batch_commit(*batch, *count, fence, commit)?;
                self.checkpoints.batch_committed(*batch);
            }
            RecordBody::FenceBegin { fence } => self.units.fence_begin(*fence),
            RecordBody::FenceCommit { fence } => self.units.fence_commit(*fence, commit),
            RecordBody::FenceCancel { fence } => {
                let dropped = self.units.fence_cancel(*fence, commit);
                self.idem.forget(&dropped);
            }
            RecordBody::Checkpoint(c) => self.checkpoints.recovered(c, record.seq)?,
            // Compaction removed this range: entity chains may resume after it.
            RecordBody::Dropped { to } => {
                if *to > record.seq {
                    self.chains.gap();
                }
            }
        }
        Ok(())
    }

    /// A recovered event: it must continue its entity's chain.
    fn recover_event(
        &mut self,
        e: &EventRecord<'_>,
        seq: u64,
        pos: DiskPos,
        hash: Option<&[u8; 32]>,
    ) -> Result<(), String> {
        let head = self.chains.head(e.entity);
        let continues = e.clock == head.clock.wrapping_add(1) && e.prev_hash == head.hash;
        // After a range compaction removed, an entity's first event may follow events that
        // are gone: its clock still only grows.
        let resumes = e.clock > head.clock && self.chains.resumes_after_gap(e.entity);
        if !continues && !resumes {
            return Err(format!(
                "INV-CHAIN: event {:032x} of entity {} has clock {} and a previous hash that do not continue the chain (head clock {})",
                e.event_id, e.entity, e.clock, head.clock
            ));
        }
        let hash = hash.copied().unwrap_or_else(|| event_hash(e));
        // Most entities live in one scope: reuse the head's coordinate id.
        let coord = match self.chains.coord(head.coord) {
            Some(c) if head.clock > 0 && c.scope() == e.scope => head.coord,
            _ => self.chains.intern_parts(e.entity, e.scope)?,
        };
        let clock = e.clock;
        self.chains.set_head(e.entity, Head { clock, hash, coord });
        if let Unit::FencedBatch { fence, batch } = e.unit {
            self.units.recovered_fenced_batch(batch, fence);
        }
        let slot = Slot {
            event_id: e.event_id,
            correlation_id: e.correlation_id.unwrap_or(e.event_id),
            causation_id: e.causation_id,
            hash_chain: HashChain {
                prev_hash: e.prev_hash,
                event_hash: hash,
            },
            seq,
            timestamp_us: self.hlc.recovered(e.timestamp_us),
            disk_pos: pos,
            clock,
            kind: EventKind::from_raw(e.kind),
            coord,
        };
        if let Some(key) = e.idempotency_key {
            let info = IdemInfo {
                receipt: AppendReceipt {
                    event_id: e.event_id,
                    sequence: seq,
                    disk_pos: pos,
                    content_hash: *blake3::hash(e.payload).as_bytes(),
                    clock,
                    durable: true,
                    key_id: [0; 32],
                    signature: None,
                },
                coord,
                kind: slot.kind,
                batch: None,
            };
            self.idem.recovered_key(key, seq, info, e.unit);
        }
        self.units.event(slot, e.unit);
        Ok(())
    }

    /// Ends recovery: units without their commit record stay hidden forever
    /// (INV-FENCE-CRASH, INV-BATCH-ATOMIC), and keys of hidden units never answer a retry;
    /// returns what is ready to publish.
    pub fn finish_recovery(&mut self) -> Vec<Slot> {
        if !self.chains.is_empty() {
            self.hlc.reopened();
        }
        self.idem.finish_recovery();
        self.checkpoints.finish_recovery();
        self.open_fence = None;
        self.units.finish_recovery()
    }
}
