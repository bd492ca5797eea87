//! The writer's decision logic. Every step is named after its TLA+ action in
//! `spec/Store.tla`. The state is also what recovery rebuilds: [`WriterState::recover_record`]
//! replays one record through the same unit bookkeeping the live writer uses, so recovery and
//! the live writer cannot disagree about what is visible.

use super::{AppendItem, AppendReceipt, CausationRef, Command, Reply};
use crate::coordinate::Coordinate;
use crate::env::{Clock, IdSource};
use crate::error::{BatchStage, StoreError};
use crate::event::{EventKind, HashChain};
use crate::index::{IdMap, Index, Slot};
use crate::log::{DiskPos, EventRecord, Record, RecordBody, Unit};
use crate::mutant::{Bugs, Mutant};
use crate::trace::{tla_trace, tla_trace_defer};
use std::collections::HashMap;

/// Where encoded records go: the thread's group buffer over the active segment.
pub(crate) trait Sink {
    /// Encodes and buffers one record; returns where its frame will be on disk.
    fn emit(&mut self, record: &Record<'_>) -> Result<DiskPos, StoreError>;
}

/// The entity chain head: clock and hash of the entity's last *written* event (INV-CHAIN).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Head {
    pub clock: u32,
    pub hash: [u8; 32],
    /// Interned coordinate of the entity's last event (a cheap intern cache for recovery).
    pub coord: u32,
}

/// What the writer remembers of an idempotent append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdemInfo {
    pub receipt: AppendReceipt,
    pub coord: u32,
    pub kind: EventKind,
    /// Where the event sat in its atomic batch (`None` for a single append), so that a batch
    /// retry can be told from a partial or reordered one.
    pub batch: Option<BatchSlot>,
}

/// An event's place in its atomic batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchSlot {
    /// The batch id (the sequence of its first event).
    pub id: u64,
    /// The event's 0-based position in the batch.
    pub index: u32,
    /// How many events the batch has.
    pub len: u32,
}

/// A reply the thread sends once the group is durable (or immediately for refusals).
#[derive(Debug)]
pub(crate) enum Outgoing {
    Receipt(Reply<AppendReceipt>, Result<AppendReceipt, StoreError>),
    Receipts(
        Reply<Vec<AppendReceipt>>,
        Result<Vec<AppendReceipt>, StoreError>,
    ),
    Unit(Reply<()>, Result<(), StoreError>),
    Token(Reply<u64>, Result<u64, StoreError>),
}

/// The hash of an event over its header fields and payload (INV-CHAIN).
pub fn event_hash(r: &EventRecord<'_>) -> [u8; 32] {
    // The fixed-size fields go through one stack buffer, so the hasher sees four updates
    // instead of fifteen (the byte stream, and so the hash, is the same as field by field).
    const TAG: &[u8] = b"batpak/event/v1";
    let mut fixed = [0u8; TAG.len() + 16 + 16 + 17 + 8 + 4 + 2 + 1 + 32 + 8];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(dst) = fixed.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    put(TAG);
    put(&r.event_id.to_le_bytes());
    put(&r.correlation_id.unwrap_or(r.event_id).to_le_bytes());
    match r.causation_id {
        Some(c) => {
            put(&[1]);
            put(&c.to_le_bytes());
        }
        None => put(&[0]),
    }
    put(&r.timestamp_us.to_le_bytes());
    put(&r.clock.to_le_bytes());
    put(&r.kind.to_le_bytes());
    put(&[r.flags]);
    put(&r.prev_hash);
    put(&(r.entity.len() as u64).to_le_bytes());
    let mut h = blake3::Hasher::new();
    h.update(fixed.get(..at).unwrap_or(&[]));
    h.update(r.entity.as_bytes());
    h.update(&(r.scope.len() as u64).to_le_bytes());
    h.update(r.scope.as_bytes());
    h.update(&(r.payload.len() as u64).to_le_bytes());
    h.update(r.payload);
    *h.finalize().as_bytes()
}

/// Limits the writer enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub batch_max_size: usize,
    pub batch_max_bytes: u64,
    pub single_append_max_bytes: u64,
}

/// What a batch did.
enum BatchAppended {
    /// Written now.
    Written(Vec<AppendReceipt>),
    /// An identical retry of an earlier batch: its receipts, nothing written.
    /// `in_open_fence`: the original is still pending under the open fence, so the retry
    /// shares its fate (answered at commit or cancel).
    Duplicate {
        receipts: Vec<AppendReceipt>,
        in_open_fence: bool,
    },
}

/// What a single append did.
enum Appended {
    /// Written now.
    Written(AppendReceipt),
    /// An idempotent retry: the original receipt, nothing written. `Some(fence)` when the
    /// original is still pending in that open fence: the retry shares its fate.
    Duplicate(AppendReceipt, Option<u64>),
}

/// Fenced tickets waiting for their fence to end.
#[derive(Debug)]
enum FenceWaiter {
    Append(Reply<AppendReceipt>, AppendReceipt),
    /// An idempotent retry of a fenced append: answered with the original's fate.
    Duplicate(Reply<AppendReceipt>, AppendReceipt),
    Batch(Reply<Vec<AppendReceipt>>, Vec<AppendReceipt>),
}

/// Writer (and recovery) state.
#[derive(Debug, Default)]
pub(crate) struct WriterState {
    /// The sequence the next record takes.
    pub next_seq: u64,
    heads: HashMap<Box<str>, Head>,
    coord_ids: HashMap<Coordinate, u32>,
    /// Interned coordinates, by id (the index copies new ones at publish).
    pub coords: Vec<Coordinate>,
    /// Batch id -> events waiting for the batch commit record.
    batches: IdMap<u64, Vec<Slot>>,
    /// Fence token -> events waiting for the fence commit record.
    fences: IdMap<u64, Vec<Slot>>,
    /// Recovery only: batch id -> the fence its events name (`Unit::FencedBatch`).
    batch_fences: IdMap<u64, u64>,
    /// Events whose unit is complete, waiting for the group's fsync to be published.
    pub ready: Vec<Slot>,
    /// The open fence (live writer only; recovery never leaves one open).
    pub open_fence: Option<u64>,
    /// Whether records are being replayed by recovery.
    pub recovering: bool,
    fence_waiters: Vec<FenceWaiter>,
    /// Ids written but not yet published or cancelled (valid causes for later writes).
    pending_ids: IdMap<u128, ()>,
    /// Idempotency keys of visible events.
    idem: IdMap<u128, IdemInfo>,
    /// Idempotency keys written but not yet published, with the unit holding them.
    pending_idem: IdMap<u128, (IdemInfo, Unit)>,
    /// Recovery only: batch id -> idempotency keys of its events, whose batch length is known
    /// only at the batch's commit record.
    batch_keys: IdMap<u64, Vec<u128>>,
    /// The hybrid logical clock: the timestamp of the last event written or recovered, in
    /// microseconds. Event timestamps are `max(clock reading, hlc_us)` (INV-HLC-MONOTONE).
    hlc_us: i64,
    /// Whether the wall clock was last seen behind the HLC by more than a second (warned).
    clock_behind: bool,
    /// The I/O failure that latched the writer.
    pub latched: Option<String>,
    /// The seeded bug (mutant build only, see [`crate::mutant`]).
    pub bugs: Bugs,
    /// The units whose slots `ready` holds, in order: (commit position, slots).
    #[cfg(feature = "tla-trace")]
    pub trace_units: Vec<(u64, usize)>,
    /// `Reply` events of the group, emitted once it is durable and published.
    #[cfg(feature = "tla-trace")]
    pub trace_acks: Vec<crate::trace::TraceEvent>,
}

impl WriterState {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, coord: &Coordinate) -> u32 {
        if let Some(&id) = self.coord_ids.get(coord) {
            return id;
        }
        let id = self.coords.len() as u32;
        self.coords.push(coord.clone());
        self.coord_ids.insert(coord.clone(), id);
        id
    }

    fn intern_parts(&mut self, entity: &str, scope: &str) -> Result<u32, String> {
        let coord = Coordinate::new(entity, scope).map_err(|e| e.to_string())?;
        Ok(self.intern(&coord))
    }

    /// The entity's chain head (clock 0 and zero hash if it has no events).
    pub fn head(&self, entity: &str) -> Head {
        self.heads.get(entity).copied().unwrap_or_default()
    }

    fn set_head(&mut self, entity: &str, head: Head) {
        if let Some(h) = self.heads.get_mut(entity) {
            *h = head;
        } else {
            self.heads.insert(entity.into(), head);
        }
    }

    // ---------------------------------------------------------------- unit bookkeeping

    /// Routes a written event to its unit (shared by recovery and the live writer).
    fn unit_event(&mut self, slot: Slot, unit: Unit) {
        let bugs = self.bugs;
        let unit = match unit {
            Unit::Fence(_) if bugs.has(Mutant::VisibleBeforeCommit) => Unit::None,
            Unit::Fence(_) if self.recovering && bugs.has(Mutant::RecoverOpenFenceVisible) => {
                Unit::None
            }
            Unit::Batch(_) if self.recovering && bugs.has(Mutant::RecoverPartialBatch) => {
                Unit::None
            }
            _ => unit,
        };
        if self.bugs.has(Mutant::RecoveryStopsAtHiddenUnit)
            && self.recovering
            && (!self.batches.is_empty() || !self.fences.is_empty())
            && unit == Unit::None
        {
            return;
        }
        match unit {
            Unit::None => {
                #[cfg(feature = "tla-trace")]
                self.trace_units.push((slot.seq + 1, 1));
                self.ready.push(slot)
            }
            Unit::Batch(b) | Unit::FencedBatch { batch: b, .. } => {
                self.batches.entry(b).or_default().push(slot)
            }
            Unit::Fence(f) => self.fences.entry(f).or_default().push(slot),
        }
    }

    fn unit_batch_commit(
        &mut self,
        batch: u64,
        count: u32,
        fence: Option<u64>,
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
            None => {
                #[cfg(feature = "tla-trace")]
                self.trace_units.push((self.next_seq, slots.len()));
                self.ready.extend(slots)
            }
        }
        Ok(())
    }

    fn unit_fence_commit(&mut self, fence: u64) {
        // Fence slots and later unfenced events are never interleaved (unfenced writes are
        // refused while a fence is open), so appending keeps sequence order.
        if let Some(slots) = self.fences.remove(&fence) {
            #[cfg(feature = "tla-trace")]
            self.trace_units.push((self.next_seq, slots.len()));
            self.ready.extend(slots);
        }
    }

    fn unit_fence_cancel(&mut self, fence: u64) -> Vec<Slot> {
        if self.bugs.has(Mutant::CancelAsCommit) {
            self.unit_fence_commit(fence);
            return Vec::new();
        }
        self.fences.remove(&fence).unwrap_or_default()
    }

    // ---------------------------------------------------------------- recovery

    /// Replays one recovered record. Refuses (as corruption) what the live writer could never
    /// have written: a broken entity chain, a wrong batch count.
    pub fn recover_record(&mut self, record: &Record<'_>, pos: DiskPos) -> Result<(), String> {
        self.next_seq = record.seq + 1;
        match &record.body {
            RecordBody::Event(e) => {
                let head = self.head(e.entity);
                if e.clock != head.clock.wrapping_add(1) || e.prev_hash != head.hash {
                    return Err(format!(
                        "INV-CHAIN: event {:032x} of entity {} has clock {} and a previous hash that do not continue the chain (head clock {})",
                        e.event_id, e.entity, e.clock, head.clock
                    ));
                }
                let hash = event_hash(e);
                // Most entities live in one scope: reuse the head's coordinate id.
                let coord = match self.coords.get(head.coord as usize) {
                    Some(c) if head.clock > 0 && c.scope() == e.scope => head.coord,
                    _ => self.intern_parts(e.entity, e.scope)?,
                };
                self.set_head(
                    e.entity,
                    Head {
                        clock: e.clock,
                        hash,
                        coord,
                    },
                );
                if let Unit::FencedBatch { fence, batch } = e.unit {
                    self.batch_fences.insert(batch, fence);
                }
                // The HLC is the running maximum of the log's timestamps: the writer stamps
                // them that way, and a log written before that rule reads as if it had been.
                let timestamp_us = e.timestamp_us.max(self.hlc_us);
                self.hlc_us = timestamp_us;
                let slot = Slot {
                    event_id: e.event_id,
                    correlation_id: e.correlation_id.unwrap_or(e.event_id),
                    causation_id: e.causation_id,
                    hash_chain: HashChain {
                        prev_hash: e.prev_hash,
                        event_hash: hash,
                    },
                    seq: record.seq,
                    timestamp_us,
                    disk_pos: pos,
                    clock: e.clock,
                    kind: EventKind::from_raw(e.kind),
                    coord,
                };
                if let Some(key) = e.idempotency_key {
                    let batch = e.unit.batch().and_then(|b| {
                        let index = u32::try_from(record.seq.checked_sub(b)?).ok()?;
                        // The length is filled in at the batch's commit record.
                        self.batch_keys.entry(b).or_default().push(key);
                        Some(BatchSlot {
                            id: b,
                            index,
                            len: 0,
                        })
                    });
                    let info = IdemInfo {
                        receipt: AppendReceipt {
                            event_id: e.event_id,
                            sequence: record.seq,
                            disk_pos: pos,
                            content_hash: *blake3::hash(e.payload).as_bytes(),
                            clock: e.clock,
                            durable: true,
                        },
                        coord,
                        kind: EventKind::from_raw(e.kind),
                        batch,
                    };
                    self.pending_idem.insert(key, (info, e.unit));
                }
                self.unit_event(slot, e.unit);
            }
            RecordBody::BatchCommit { batch, count } => {
                for key in self.batch_keys.remove(batch).unwrap_or_default() {
                    if let Some((info, _)) = self.pending_idem.get_mut(&key) {
                        if let Some(slot) = info.batch.as_mut() {
                            slot.len = *count;
                        }
                    }
                }
                let fence = self.batch_fences.remove(batch);
                self.unit_batch_commit(*batch, *count, fence)?
            }
            RecordBody::FenceBegin { fence } => {
                self.fences.entry(*fence).or_default();
            }
            RecordBody::FenceCommit { fence } => self.unit_fence_commit(*fence),
            RecordBody::FenceCancel { fence } => {
                let dropped = self.unit_fence_cancel(*fence);
                self.forget_pending(&dropped);
            }
        }
        Ok(())
    }

    /// Ends recovery: units without their commit record stay hidden forever
    /// (INV-FENCE-CRASH, INV-BATCH-ATOMIC); everything ready is returned for publishing.
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
        self.batch_keys.clear();
        // The first event after a reopen takes a later millisecond than every recovered one,
        // so ids, whose prefix is that millisecond, keep increasing across restarts even with
        // a fresh id source and a clock that is behind.
        if !self.heads.is_empty() {
            self.hlc_us = (self.hlc_us / 1000).saturating_add(1).saturating_mul(1000);
        }
        // Keys of hidden units never answer a retry.
        self.pending_idem.clear();
        self.pending_ids.clear();
        self.open_fence = None;
        self.recovering = false;
        #[cfg(feature = "tla-trace")]
        self.trace_units.clear();
        std::mem::take(&mut self.ready)
    }

    /// Publish, for the writer and for recovery alike: makes `slots` visible in `index`, in
    /// order, after the coordinates interned since the last publish. Settling their
    /// idempotency keys ([`WriterState::settle_published`]) follows once the index lock is
    /// released.
    pub fn publish_into(&self, index: &mut Index, slots: &[Slot]) {
        index.sync_coords(&self.coords);
        for s in slots {
            index.publish(*s);
        }
    }

    /// Records the published slots' idempotency keys as settled.
    pub fn settle_published(&mut self, published: &[Slot]) {
        if self.pending_idem.is_empty() && self.pending_ids.is_empty() {
            return;
        }
        for s in published {
            self.pending_ids.remove(&s.event_id);
        }
        if !self.pending_idem.is_empty() {
            let published_ids: IdMap<u128, ()> =
                published.iter().map(|s| (s.event_id, ())).collect();
            let keys: Vec<u128> = self
                .pending_idem
                .iter()
                .filter(|(_, (info, _))| published_ids.contains_key(&info.receipt.event_id))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                if let Some((info, _)) = self.pending_idem.remove(&k) {
                    self.idem.insert(k, info);
                }
            }
        }
    }

    fn forget_pending(&mut self, dropped: &[Slot]) {
        for s in dropped {
            self.pending_ids.remove(&s.event_id);
        }
        if !self.pending_idem.is_empty() {
            let ids: IdMap<u128, ()> = dropped.iter().map(|s| (s.event_id, ())).collect();
            self.pending_idem
                .retain(|_, (info, _)| !ids.contains_key(&info.receipt.event_id));
        }
    }

    // ---------------------------------------------------------------- live steps

    /// Decides one command. Records go to `sink`; replies to `out`; `force_sync` is set when
    /// the command needs the group to be durable before it is answered even in deferred mode.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        cmd: Command,
        env: &mut StepEnv<'_>,
        out: &mut Vec<Outgoing>,
        force_sync: &mut bool,
    ) -> Option<Reply<()>> {
        match cmd {
            Command::Append { item, fence, reply } => match self.append_one(item, fence, env) {
                // An idempotent retry of a key pending in the open fence answers with the
                // original, at commit or cancel (INV-IDEMPOTENT, INV-NO-RESURRECT).
                Ok(Appended::Duplicate(receipt, Some(_)))
                    if !self.bugs.has(Mutant::IdempotentRetryAnswersEarly) =>
                {
                    self.fence_waiters
                        .push(FenceWaiter::Duplicate(reply, receipt))
                }
                // Otherwise the original is visible, or pending in this very group, whose
                // replies all go out together: answer the original receipt now.
                Ok(Appended::Duplicate(receipt, _)) => {
                    out.push(Outgoing::Receipt(reply, Ok(receipt)))
                }
                // INV-FENCE-HIDDEN: a fenced ticket resolves at commit or cancel.
                Ok(Appended::Written(receipt)) if fence.is_some() => {
                    tla_trace!(
                        env.trace,
                        "FenceAppend",
                        "",
                        vec![u128::from(fence.unwrap_or(0)), receipt.event_id]
                    );
                    self.fence_waiters.push(FenceWaiter::Append(reply, receipt))
                }
                Ok(Appended::Written(receipt)) => {
                    tla_trace!(env.trace, "Append", "", vec![receipt.event_id]);
                    tla_trace_defer!(self.trace_acks, "Reply", "Append", vec![receipt.event_id]);
                    out.push(Outgoing::Receipt(reply, Ok(receipt)))
                }
                Err(e) => {
                    #[cfg(feature = "tla-trace")]
                    Self::trace_refusal(env, &e);
                    out.push(Outgoing::Receipt(reply, Err(e)))
                }
            },
            Command::Batch {
                items,
                fence,
                reply_when_staged,
                reply,
            } => match self.append_batch(items, fence, env) {
                // An identical retry: the original receipts. While the original is pending
                // under the open fence the retry shares its fate; otherwise it answers now.
                Ok(BatchAppended::Duplicate {
                    receipts,
                    in_open_fence,
                }) => {
                    if in_open_fence && !reply_when_staged {
                        self.fence_waiters.push(FenceWaiter::Batch(reply, receipts))
                    } else {
                        out.push(Outgoing::Receipts(reply, Ok(receipts)))
                    }
                }
                Ok(BatchAppended::Written(receipts)) if fence.is_some() && !reply_when_staged => {
                    tla_trace!(env.trace, "FenceBatch", "", {
                        let mut args = vec![u128::from(fence.unwrap_or(0))];
                        args.extend(receipts.iter().map(|r| r.event_id));
                        args
                    });
                    self.fence_waiters.push(FenceWaiter::Batch(reply, receipts))
                }
                Ok(BatchAppended::Written(receipts)) => {
                    if fence.is_some() {
                        *force_sync = true;
                    } else {
                        tla_trace!(
                            env.trace,
                            "AppendBatch",
                            "",
                            receipts.iter().map(|r| r.event_id).collect()
                        );
                        tla_trace_defer!(
                            self.trace_acks,
                            "Reply",
                            "Batch",
                            receipts.iter().map(|r| r.event_id).take(1).collect()
                        );
                    }
                    out.push(Outgoing::Receipts(reply, Ok(receipts)))
                }
                Err(e) => {
                    #[cfg(feature = "tla-trace")]
                    Self::trace_refusal(env, &e);
                    out.push(Outgoing::Receipts(reply, Err(e)))
                }
            },
            Command::FenceBegin { reply } => {
                let r = self.fence_begin(env);
                #[cfg(feature = "tla-trace")]
                match &r {
                    Ok(token) => {
                        tla_trace!(env.trace, "FenceBegin", "", vec![u128::from(*token)]);
                        tla_trace_defer!(
                            self.trace_acks,
                            "Reply",
                            "FenceBegin",
                            vec![u128::from(*token)]
                        );
                    }
                    Err(e) => Self::trace_refusal(env, e),
                }
                out.push(Outgoing::Token(reply, r));
            }
            Command::FenceCommit { fence, reply } => {
                match self.fence_commit(fence, env, out) {
                    Ok(()) => {
                        tla_trace_defer!(
                            self.trace_acks,
                            "Reply",
                            "FenceCommit",
                            vec![u128::from(fence)]
                        );
                        // INV-FENCE-CRASH: commit answers only once its record is durable.
                        if !self.bugs.has(Mutant::FenceCommitAckBeforeDurable) {
                            *force_sync = true;
                        }
                        out.push(Outgoing::Unit(reply, Ok(())));
                    }
                    Err(e) => {
                        #[cfg(feature = "tla-trace")]
                        Self::trace_refusal(env, &e);
                        out.push(Outgoing::Unit(reply, Err(e)))
                    }
                }
            }
            Command::FenceCancel { fence, reply } => {
                let r = self.fence_cancel(fence, env, out);
                if let Err(e) = &r {
                    tracing::debug!(fence, error = %e, "fence cancel refused");
                }
                #[cfg(feature = "tla-trace")]
                match &r {
                    Ok(()) => tla_trace!(env.trace, "FenceCancel", "", vec![u128::from(fence)]),
                    Err(e) => Self::trace_refusal(env, e),
                }
                if let Some(reply) = reply {
                    out.push(Outgoing::Unit(reply, r));
                }
            }
            Command::Sync { reply } => match self.check_writable() {
                // A latched writer cannot make anything durable.
                Err(e) => {
                    #[cfg(feature = "tla-trace")]
                    Self::trace_refusal(env, &e);
                    out.push(Outgoing::Unit(reply, Err(e)))
                }
                Ok(()) => {
                    tla_trace!(env.trace, "Sync", "", Vec::new());
                    tla_trace_defer!(self.trace_acks, "Reply", "Sync", Vec::new());
                    *force_sync = true;
                    out.push(Outgoing::Unit(reply, Ok(())));
                }
            },
            Command::Shutdown { reply } => {
                if let Some(f) = self.open_fence {
                    tracing::info!(fence = f, "shutdown cancels the open fence");
                    let _ = self.fence_cancel(f, env, out);
                }
                *force_sync = true;
                return Some(reply);
            }
        }
        None
    }

    /// Emits `Refuse` for the refusals the spec models (nothing for other errors).
    #[cfg(feature = "tla-trace")]
    fn trace_refusal(env: &StepEnv<'_>, e: &StoreError) {
        if let Some(status) = crate::writer::trace::refusal(e) {
            tla_trace!(env.trace, "Refuse", status, Vec::new());
        }
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        match &self.latched {
            Some(detail) => Err(StoreError::WriterLatched {
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuse: admission for a (possibly fenced) write.
    fn admit(&self, fence: Option<u64>) -> Result<(), StoreError> {
        self.check_writable()?;
        match (self.open_fence, fence) {
            (Some(_), None) => Err(StoreError::VisibilityFenceActive),
            (open, Some(f)) if open != Some(f) => Err(StoreError::VisibilityFenceNotActive),
            _ => Ok(()),
        }
    }

    /// Idempotency check: `Some(receipt)` if the key already wrote this very event.
    fn idempotent_hit(
        &self,
        key: u128,
        item: &AppendItem,
        content_hash: &[u8; 32],
    ) -> Result<Option<AppendReceipt>, StoreError> {
        let found = self
            .idem
            .get(&key)
            .or_else(|| self.pending_idem.get(&key).map(|(i, _)| i));
        let Some(info) = found else {
            return Ok(None);
        };
        let diffs = self.retry_differs(info, item, content_hash);
        if diffs.is_empty() {
            Ok(Some(info.receipt))
        } else {
            Err(StoreError::IdempotencyConflict {
                key,
                original_event_id: info.receipt.event_id,
                detail: format!("the retry differs in {}", diffs.join(", ")),
            })
        }
    }

    /// What a retry changes of the original event: entity, scope, kind, payload.
    fn retry_differs(
        &self,
        info: &IdemInfo,
        item: &AppendItem,
        content_hash: &[u8; 32],
    ) -> Vec<&'static str> {
        let coord = self.coords.get(info.coord as usize);
        let mut diffs = Vec::new();
        if coord.map(|c| c.entity()) != Some(item.coord.entity()) {
            diffs.push("entity");
        }
        if coord.map(|c| c.scope()) != Some(item.coord.scope()) {
            diffs.push("scope");
        }
        if info.kind != item.kind {
            diffs.push("kind");
        }
        if &info.receipt.content_hash != content_hash {
            diffs.push("payload");
        }
        diffs
    }

    fn cause_exists(&self, id: u128, index: &Index) -> bool {
        index.contains(id) || self.pending_ids.contains_key(&id)
    }

    fn validate(
        &self,
        item: &AppendItem,
        expected_clock: u32,
        causation: Option<u128>,
        env: &StepEnv<'_>,
    ) -> Result<(), StoreError> {
        if item.payload.len() as u64 > env.limits.single_append_max_bytes {
            return Err(StoreError::TooLarge {
                what: "payload",
                size: item.payload.len() as u64,
                max: env.limits.single_append_max_bytes,
            });
        }
        if let Some(expected) = item.options.expected_sequence {
            if expected != expected_clock {
                return Err(StoreError::SequenceMismatch {
                    entity: item.coord.entity().to_string(),
                    expected,
                    actual: expected_clock,
                });
            }
        }
        if let Some(c) = causation {
            if !env.allow_external_causes && !self.cause_exists(c, env.index) {
                return Err(StoreError::UnknownCausation { causation_id: c });
            }
        }
        Ok(())
    }

    /// The hybrid logical clock's next reading: the wall clock when it is ahead of every
    /// earlier event, else the time of the latest one (INV-HLC-MONOTONE). A clock that jumps
    /// ahead is followed (the store has no other clock to judge it by, and refusing writes
    /// would turn a clock fault into an outage); if it comes back, the store's time holds
    /// until the clock catches up, while sequence and entity clocks keep ordering events.
    fn stamp(&mut self, raw_us: i64) -> i64 {
        if self.bugs.has(Mutant::RawWallClock) {
            return raw_us;
        }
        if raw_us >= self.hlc_us {
            if self.clock_behind {
                self.clock_behind = false;
                tracing::info!(
                    now_us = raw_us,
                    "wall clock caught up with the store's time"
                );
            }
            self.hlc_us = raw_us;
        } else if !self.clock_behind && self.hlc_us - raw_us > 1_000_000 {
            self.clock_behind = true;
            tracing::warn!(
                behind_ms = (self.hlc_us - raw_us) / 1000,
                hlc_us = self.hlc_us,
                "wall clock is behind the store's time (stepped back, or an earlier reading was ahead); event times hold until it catches up"
            );
        }
        self.hlc_us
    }

    /// Writes one event record (no checks). Returns its receipt.
    fn write_event(
        &mut self,
        item: &AppendItem,
        unit: Unit,
        batch: Option<BatchSlot>,
        causation: Option<u128>,
        content_hash: [u8; 32],
        env: &mut StepEnv<'_>,
    ) -> Result<AppendReceipt, StoreError> {
        let now = self.stamp(env.clock.now_us());
        let event_id = env.ids.next_id(now);
        let mut head = self.head(item.coord.entity());
        if self.bugs.has(Mutant::ChainRestartsInFence) && unit.fence().is_some() {
            head = Head::default();
        }
        let seq = self.next_seq;
        let rec = EventRecord {
            unit,
            event_id,
            correlation_id: item.options.correlation_id.filter(|&c| c != event_id),
            causation_id: causation,
            timestamp_us: now,
            clock: head.clock.wrapping_add(1),
            kind: item.kind.as_raw(),
            flags: item.options.flags,
            prev_hash: head.hash,
            idempotency_key: item.options.idempotency_key,
            entity: item.coord.entity(),
            scope: item.coord.scope(),
            payload: &item.payload,
        };
        let record = Record {
            seq,
            body: RecordBody::Event(rec.clone()),
        };
        let pos = env.sink.emit(&record)?;
        self.next_seq += 1;
        let hash = event_hash(&rec);
        let coord = self.intern(&item.coord);
        self.set_head(
            item.coord.entity(),
            Head {
                clock: rec.clock,
                hash,
                coord,
            },
        );
        let receipt = AppendReceipt {
            event_id,
            sequence: seq,
            disk_pos: pos,
            content_hash,
            clock: rec.clock,
            durable: false,
        };
        if let Some(key) = item.options.idempotency_key {
            let info = IdemInfo {
                receipt,
                coord,
                kind: item.kind,
                batch,
            };
            self.pending_idem.insert(key, (info, unit));
        }
        self.pending_ids.insert(event_id, ());
        self.unit_event(
            Slot {
                event_id,
                correlation_id: rec.correlation_id.unwrap_or(event_id),
                causation_id: causation,
                hash_chain: HashChain {
                    prev_hash: head.hash,
                    event_hash: hash,
                },
                seq,
                timestamp_us: now,
                disk_pos: pos,
                clock: rec.clock,
                kind: item.kind,
                coord,
            },
            unit,
        );
        Ok(receipt)
    }

    /// Append / FenceAppend.
    fn append_one(
        &mut self,
        item: AppendItem,
        fence: Option<u64>,
        env: &mut StepEnv<'_>,
    ) -> Result<Appended, StoreError> {
        self.admit(fence)?;
        let content_hash = *blake3::hash(&item.payload).as_bytes();
        if let Some(key) = item.options.idempotency_key {
            if let Some(r) = self.idempotent_hit(key, &item, &content_hash)? {
                let pending_fence = self
                    .pending_idem
                    .get(&key)
                    .and_then(|(_, unit)| unit.fence())
                    .filter(|f| self.open_fence == Some(*f));
                return Ok(Appended::Duplicate(r, pending_fence));
            }
        }
        let causation = item.options.causation_id;
        let head = self.head(item.coord.entity());
        self.validate(&item, head.clock, causation, env)?;
        let unit = match fence {
            Some(f) => Unit::Fence(f),
            None => Unit::None,
        };
        self.write_event(&item, unit, None, causation, content_hash, env)
            .map(Appended::Written)
    }

    /// AppendBatch: all items are checked first; then every event and the commit record are
    /// written together, so the batch is visible entirely or not at all (INV-BATCH-ATOMIC).
    fn append_batch(
        &mut self,
        items: Vec<AppendItem>,
        fence: Option<u64>,
        env: &mut StepEnv<'_>,
    ) -> Result<BatchAppended, StoreError> {
        self.admit(fence)?;
        if items.is_empty() {
            return Ok(BatchAppended::Written(Vec::new()));
        }
        let fail = |i: usize, stage: BatchStage, e: StoreError| StoreError::BatchFailed {
            item_index: i,
            stage,
            source: Box::new(e),
        };
        // Before the limits: an identical retry is answered even if the limits shrank since.
        if let Some(dup) = self
            .batch_retry(&items)
            .map_err(|(i, e)| fail(i, BatchStage::Validation, e))?
        {
            if !self.bugs.has(Mutant::BatchRetryWritesAgain) {
                return Ok(dup);
            }
        }
        if items.len() > env.limits.batch_max_size {
            return Err(fail(
                items.len() - 1,
                BatchStage::Validation,
                StoreError::TooLarge {
                    what: "batch (events)",
                    size: items.len() as u64,
                    max: env.limits.batch_max_size as u64,
                },
            ));
        }
        let bytes: u64 = items.iter().map(|i| i.payload.len() as u64).sum();
        if bytes > env.limits.batch_max_bytes {
            return Err(fail(
                0,
                BatchStage::Validation,
                StoreError::TooLarge {
                    what: "batch (payload bytes)",
                    size: bytes,
                    max: env.limits.batch_max_bytes,
                },
            ));
        }
        // Validation pass: simulate entity clocks through the batch.
        let mut clocks: HashMap<&str, u32> = HashMap::new();
        let mut hashes = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let content_hash = *blake3::hash(&item.payload).as_bytes();
            let entity = item.coord.entity();
            let clock = match clocks.get(entity) {
                Some(c) => *c,
                None => self.head(entity).clock,
            };
            let causation = match item.causation_ref {
                CausationRef::PriorItem(j) if j >= i => {
                    return Err(fail(
                        i,
                        BatchStage::Validation,
                        StoreError::Configuration(format!(
                            "CausationRef::PriorItem({j}) must name an earlier item than {i}"
                        )),
                    ))
                }
                CausationRef::PriorItem(_) => None, // resolved while writing
                CausationRef::Absolute(id) => Some(id),
                CausationRef::None => item.options.causation_id,
            };
            self.validate(item, clock, causation, env)
                .map_err(|e| fail(i, BatchStage::Validation, e))?;
            clocks.insert(entity, clock.wrapping_add(1));
            hashes.push(content_hash);
        }
        drop(clocks);
        let batch = self.next_seq;
        let unit = match fence {
            Some(f) => Unit::FencedBatch { fence: f, batch },
            None => Unit::Batch(batch),
        };
        let mut receipts: Vec<AppendReceipt> = Vec::with_capacity(items.len());
        for (i, (item, hash)) in items.iter().zip(hashes).enumerate() {
            let causation = match item.causation_ref {
                CausationRef::PriorItem(j) => receipts.get(j).map(|r| r.event_id),
                CausationRef::Absolute(id) => Some(id),
                CausationRef::None => item.options.causation_id,
            };
            let slot = BatchSlot {
                id: batch,
                index: i as u32,
                len: items.len() as u32,
            };
            let r = self
                .write_event(item, unit, Some(slot), causation, hash, env)
                .map_err(|e| fail(i, BatchStage::Writing, e))?;
            receipts.push(r);
        }
        let count = receipts.len() as u32;
        let seq = self.next_seq;
        env.sink
            .emit(&Record {
                seq,
                body: RecordBody::BatchCommit { batch, count },
            })
            .map_err(|e| fail(receipts.len().saturating_sub(1), BatchStage::Writing, e))?;
        self.next_seq += 1;
        self.unit_batch_commit(batch, count, fence)
            .map_err(|d| fail(0, BatchStage::Indexing, StoreError::Configuration(d)))?;
        Ok(BatchAppended::Written(receipts))
    }

    /// A batch's idempotency keys (INV-IDEMPOTENT). `Ok(None)`: no key is known, write the
    /// batch. `Ok(Some(..))`: the batch repeats an earlier batch exactly (every item keyed, the
    /// same keys in the same order, the same entity, scope, kind and payload each, nothing
    /// more or less): its receipts, nothing written. Anything in between (a known key next to
    /// a new or missing one, another order, a part of the batch, keys of single appends or of
    /// several batches, a changed item) is refused as `(item index, IdempotencyConflict)`
    /// saying what differs; so is a key used twice within the batch. A batch is written whole
    /// or not at all, so it is never retried item by item.
    fn batch_retry(
        &self,
        items: &[AppendItem],
    ) -> Result<Option<BatchAppended>, (usize, StoreError)> {
        let mut first_use: IdMap<u128, usize> = IdMap::default();
        let mut known: Option<(usize, u128, IdemInfo)> = None;
        for (i, item) in items.iter().enumerate() {
            let Some(key) = item.options.idempotency_key else {
                continue;
            };
            if let Some(&j) = first_use.get(&key) {
                return Err((
                    i,
                    StoreError::Configuration(format!(
                        "idempotency key {key:032x} is used twice in one batch (items {j} and {i}); each event needs its own key"
                    )),
                ));
            }
            first_use.insert(key, i);
            if known.is_none() {
                if let Some((info, _)) = self.known_key(key) {
                    known = Some((i, key, info));
                }
            }
        }
        let Some((j, known_key, known_info)) = known else {
            return Ok(None);
        };
        let conflict =
            |key: u128, info: &IdemInfo, detail: String| StoreError::IdempotencyConflict {
                key,
                original_event_id: info.receipt.event_id,
                detail,
            };
        let mixed = |i: usize, what: &str| {
            conflict(
                known_key,
                &known_info,
                format!(
                    "item {i} {what}, while item {j}'s key was already used: a retried batch must repeat the original batch exactly, every item keyed (a batch is written whole or not at all, never item by item)"
                ),
            )
        };
        let mut batch_id = None;
        let mut receipts = Vec::with_capacity(items.len());
        let mut in_open_fence = false;
        for (i, item) in items.iter().enumerate() {
            let Some(key) = item.options.idempotency_key else {
                return Err((i, mixed(i, "has no idempotency key")));
            };
            let Some((info, unit)) = self.known_key(key) else {
                return Err((i, mixed(i, &format!("has a new key {key:032x}"))));
            };
            let Some(slot) = info.batch else {
                return Err((
                    i,
                    conflict(
                        key,
                        &info,
                        format!("item {i}'s key was used by a single append, not a batch: a batch retry must repeat one earlier batch"),
                    ),
                ));
            };
            match batch_id {
                None => batch_id = Some(slot.id),
                Some(b) if b != slot.id => {
                    return Err((
                        i,
                        conflict(
                            key,
                            &info,
                            format!("item {i}'s key belongs to the batch at sequence {}, item 0's to the batch at sequence {b}: a batch retry must repeat one earlier batch", slot.id),
                        ),
                    ))
                }
                Some(_) => {}
            }
            if slot.index as usize != i {
                return Err((
                    i,
                    conflict(
                        key,
                        &info,
                        format!("the key was item {} of the original batch and is item {i} here: a retry must keep the original order", slot.index),
                    ),
                ));
            }
            let content_hash = *blake3::hash(&item.payload).as_bytes();
            let diffs = self.retry_differs(&info, item, &content_hash);
            if !diffs.is_empty() {
                return Err((
                    i,
                    conflict(
                        key,
                        &info,
                        format!("item {i} differs from the original in {}", diffs.join(", ")),
                    ),
                ));
            }
            if let (Some(u), Some(open)) = (unit, self.open_fence) {
                in_open_fence |= u.fence() == Some(open);
            }
            receipts.push(info.receipt);
        }
        let original_len = known_info.batch.map_or(0, |s| s.len) as usize;
        if original_len != items.len() {
            return Err((
                0,
                conflict(
                    known_key,
                    &known_info,
                    format!(
                        "the original batch had {original_len} items and this retry has {}: a retry must repeat the whole batch",
                        items.len()
                    ),
                ),
            ));
        }
        Ok(Some(BatchAppended::Duplicate {
            receipts,
            in_open_fence,
        }))
    }

    /// What the writer knows of an idempotency key: the original event, and its unit while it
    /// is still pending (`None` once visible).
    fn known_key(&self, key: u128) -> Option<(IdemInfo, Option<Unit>)> {
        if let Some(info) = self.idem.get(&key) {
            return Some((*info, None));
        }
        self.pending_idem.get(&key).map(|(i, u)| (*i, Some(*u)))
    }

    /// FenceBegin.
    fn fence_begin(&mut self, env: &mut StepEnv<'_>) -> Result<u64, StoreError> {
        self.check_writable()?;
        if self.open_fence.is_some() {
            return Err(StoreError::VisibilityFenceActive);
        }
        let fence = self.next_seq;
        env.sink.emit(&Record {
            seq: fence,
            body: RecordBody::FenceBegin { fence },
        })?;
        self.next_seq += 1;
        self.fences.entry(fence).or_default();
        self.open_fence = Some(fence);
        tracing::debug!(fence, "FenceBegin");
        Ok(fence)
    }

    /// FenceCommit: the commit record is written; the thread syncs before publishing and
    /// answering (INV-FENCE-CRASH).
    fn fence_commit(
        &mut self,
        fence: u64,
        env: &mut StepEnv<'_>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        if self.open_fence != Some(fence) {
            return Err(StoreError::VisibilityFenceNotActive);
        }
        let seq = self.next_seq;
        env.sink.emit(&Record {
            seq,
            body: RecordBody::FenceCommit { fence },
        })?;
        self.next_seq += 1;
        self.open_fence = None;
        self.unit_fence_commit(fence);
        tla_trace!(env.trace, "FenceCommit", "", vec![u128::from(fence)]);
        for w in self.fence_waiters.drain(..) {
            match w {
                FenceWaiter::Append(r, receipt) => {
                    tla_trace_defer!(
                        self.trace_acks,
                        "Reply",
                        "FenceAppend",
                        vec![receipt.event_id]
                    );
                    out.push(Outgoing::Receipt(r, Ok(receipt)))
                }
                FenceWaiter::Batch(r, receipts) => {
                    tla_trace_defer!(
                        self.trace_acks,
                        "Reply",
                        "FenceBatch",
                        receipts.iter().map(|r| r.event_id).take(1).collect()
                    );
                    out.push(Outgoing::Receipts(r, Ok(receipts)))
                }
                FenceWaiter::Duplicate(r, receipt) => out.push(Outgoing::Receipt(r, Ok(receipt))),
            }
        }
        tracing::debug!(fence, "FenceCommit");
        Ok(())
    }

    /// FenceCancel: the cancel record is written; the fence's events never become visible
    /// (INV-NO-RESURRECT) and its tickets fail with `VisibilityFenceCancelled`.
    fn fence_cancel(
        &mut self,
        fence: u64,
        env: &mut StepEnv<'_>,
        out: &mut Vec<Outgoing>,
    ) -> Result<(), StoreError> {
        if self.open_fence != Some(fence) {
            return Err(StoreError::VisibilityFenceNotActive);
        }
        self.open_fence = None;
        let dropped = self.unit_fence_cancel(fence);
        self.forget_pending(&dropped);
        self.batches.retain(|_, v| v.iter().all(|s| s.seq < fence));
        for w in self.fence_waiters.drain(..) {
            match w {
                FenceWaiter::Append(r, _) | FenceWaiter::Duplicate(r, _) => out.push(
                    Outgoing::Receipt(r, Err(StoreError::VisibilityFenceCancelled)),
                ),
                FenceWaiter::Batch(r, _) => out.push(Outgoing::Receipts(
                    r,
                    Err(StoreError::VisibilityFenceCancelled),
                )),
            }
        }
        // The cancel record is best effort: without it the fence is "open at a crash", which
        // recovery hides forever just the same. A latched writer skips it.
        if self.latched.is_none() {
            let seq = self.next_seq;
            env.sink.emit(&Record {
                seq,
                body: RecordBody::FenceCancel { fence },
            })?;
            self.next_seq += 1;
        }
        tracing::debug!(fence, "FenceCancel");
        Ok(())
    }

    /// Fails every fenced ticket (the writer latched or stops).
    pub fn fail_fence_waiters(&mut self, out: &mut Vec<Outgoing>, detail: &str) {
        for w in self.fence_waiters.drain(..) {
            let e = || StoreError::OutcomeUnknown {
                detail: detail.to_string(),
            };
            match w {
                FenceWaiter::Append(r, _) | FenceWaiter::Duplicate(r, _) => {
                    out.push(Outgoing::Receipt(r, Err(e())))
                }
                FenceWaiter::Batch(r, _) => out.push(Outgoing::Receipts(r, Err(e()))),
            }
        }
    }
}

/// What a step may use besides the state.
pub(crate) struct StepEnv<'a> {
    pub sink: &'a mut dyn Sink,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn IdSource,
    pub index: &'a Index,
    pub limits: Limits,
    pub allow_external_causes: bool,
    #[cfg(feature = "tla-trace")]
    pub trace: Option<&'a crate::trace::TraceSink>,
}
