//! The TLA+-named steps of the live writer (`Append`, `AppendBatch`, `FenceBegin`,
//! `FenceAppend`, `FenceBatch`, `FenceCommit`, `FenceCancel`, `Sync`, `Refuse`): each decides
//! one command, encodes its records into the group's [`Frames`] (no I/O) and returns a
//! [`Step`]. The thread places the frames; [`WriterState::apply`] then applies what needs
//! their positions, or [`Step::fail`] answers a step whose records could not be placed.

use super::super::frames::{Frames, UNPLACED};
use super::super::{AppendItem, Command, Reply};
use super::chains::{event_hash, Head};
use super::checkpoints::CheckpointWrite;
use super::idem::{BatchRetry, BatchSlot, IdemInfo};
use super::{Ack, Answer, Effect, FenceWaiter, Limits, Outgoing, WriterState};
use crate::append::{AppendReceipt, CausationRef};
use crate::codec::{CheckpointRecord, EventRecord, Record, RecordBody, RegionRecord, Unit};
use crate::env::{Clock, IdSource};
use crate::error::{BatchStage, StoreError};
use crate::event::HashChain;
use crate::index::{Index, Slot};
use crate::mutant::Mutant;
use crate::signing::{Signed, SigningKey};
use std::collections::HashMap;

/// What a step may use besides the state.
pub(crate) struct StepEnv<'a> {
    pub frames: &'a mut Frames,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn IdSource,
    pub index: &'a Index,
    pub limits: Limits,
    pub allow_external_causes: bool,
    /// Signs each receipt when set.
    pub signer: Option<&'a SigningKey>,
}

impl StepEnv<'_> {
    /// Signs a receipt an idempotent retry answers with, if it is not signed yet (one
    /// recovered from the log after a reopen): its event is visible, so the index has the
    /// hash the signature covers.
    fn sign_replayed(&self, receipt: &mut AppendReceipt) {
        let Some(key) = self.signer else { return };
        if receipt.signature.is_some() && receipt.key_id == key.key_id() {
            return;
        }
        if let Some(entry) = self.index.get(receipt.event_id) {
            key.sign(
                Signed::for_kind(entry.kind),
                receipt,
                &entry.hash_chain.event_hash,
            );
        }
    }
}

/// The spec's name for what a step did, for an observer (`tla-trace`): the action and its
/// fence, or the status of a refusal the spec models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fact {
    /// Nothing the spec models (idempotent retries, staged fenced batches, other errors).
    None,
    Append,
    FenceAppend(u64),
    AppendBatch,
    FenceBatch(u64),
    FenceBegin,
    FenceCommit(u64),
    FenceCancel(u64),
    Sync,
    /// `Refuse` with this status.
    Refuse(&'static str),
}

impl Fact {
    /// The refusal the spec models for `e`, if any.
    fn refusal(e: &StoreError) -> Self {
        match e {
            StoreError::VisibilityFenceActive => Fact::Refuse("VisibilityFenceActive"),
            StoreError::VisibilityFenceNotActive => Fact::Refuse("FenceNotOpen"),
            StoreError::WriterLatched { .. } => Fact::Refuse("WriterLatched"),
            _ => Fact::None,
        }
    }

    /// `ok` when the step succeeded, else its refusal.
    fn of<T>(r: &Result<T, StoreError>, ok: Fact) -> Self {
        match r {
            Ok(_) => ok,
            Err(e) => Self::refusal(e),
        }
    }
}

/// How a step answers its command.
#[derive(Debug)]
pub(crate) enum StepAnswer {
    /// Once the group is durable (or failed).
    Now(Outgoing),
    /// When the open fence ends.
    AtFenceEnd(FenceWaiter),
    /// Not at all (a drop-cancel; a shutdown answers after the writer's last group).
    Silent,
}

/// What one step decided.
#[derive(Debug)]
pub(crate) struct Step {
    /// The command's answer; receipts of this step's events get their positions at apply.
    pub answer: StepAnswer,
    /// Other tickets the step answers (the fenced tickets of a cancelled fence).
    pub also: Vec<Outgoing>,
    /// The group must be durable before it is answered, even in deferred mode.
    pub sync: bool,
    /// The shutdown's reply: the writer stops after this group.
    pub shutdown: Option<Reply<()>>,
    /// What the spec calls the step (read by an observer only).
    #[cfg_attr(not(feature = "tla-trace"), allow(dead_code))]
    pub fact: Fact,
    /// The sequence of the step's first record (receipts from it on are this step's).
    pub first_seq: u64,
}

impl Step {
    fn answer(first_seq: u64, answer: StepAnswer, fact: Fact) -> Self {
        Self {
            answer,
            also: Vec::new(),
            sync: false,
            shutdown: None,
            fact,
            first_seq,
        }
    }

    fn now(first_seq: u64, answer: Answer, ack: Ack, fact: Fact) -> Self {
        Self::answer(first_seq, StepAnswer::Now(Outgoing { answer, ack }), fact)
    }

    /// The answers of a step whose record `seq` could not be placed: `error` (a batch names
    /// the item it was writing), and the other tickets it answers.
    pub fn fail(self, error: StoreError, seq: u64) -> Vec<Outgoing> {
        let mut out = self.also;
        let item = |n: usize| {
            let i = usize::try_from(seq.saturating_sub(self.first_seq)).unwrap_or(usize::MAX);
            i.min(n.saturating_sub(1))
        };
        let batch_failed = |n: usize, e: StoreError| StoreError::BatchFailed {
            item_index: item(n),
            stage: BatchStage::Writing,
            source: Box::new(e),
        };
        let answer = match self.answer {
            StepAnswer::Now(o) => match o.answer {
                Answer::Receipts(r, Ok(v)) => {
                    Answer::Receipts(r, Err(batch_failed(v.len(), error)))
                }
                Answer::Receipt(r, _) => Answer::Receipt(r, Err(error)),
                Answer::Receipts(r, _) => Answer::Receipts(r, Err(error)),
                Answer::Unit(r, _) => Answer::Unit(r, Err(error)),
                Answer::Token(r, _) => Answer::Token(r, Err(error)),
            },
            StepAnswer::AtFenceEnd(FenceWaiter::Batch(r, v)) => {
                Answer::Receipts(r, Err(batch_failed(v.len(), error)))
            }
            StepAnswer::AtFenceEnd(FenceWaiter::Append(r, _) | FenceWaiter::Duplicate(r, _)) => {
                Answer::Receipt(r, Err(error))
            }
            StepAnswer::Silent => return out,
        };
        out.push(Outgoing::plain(answer));
        out
    }
}

/// What a single append did.
enum Appended {
    /// Written now.
    Written(AppendReceipt),
    /// An idempotent retry: the original receipt, nothing written. `Some(fence)` when the
    /// original is still pending in that open fence: the retry shares its fate.
    Duplicate(AppendReceipt, Option<u64>),
}

/// What a batch did.
enum BatchAppended {
    /// Written now.
    Written(Vec<AppendReceipt>),
    /// An identical retry of an earlier batch: its receipts, nothing written.
    Duplicate(BatchRetry),
}

impl WriterState {
    /// Decides one command: its records go to `env.frames`, what it answers and what the
    /// group needs into the returned [`Step`].
    pub fn step(&mut self, cmd: Command, env: &mut StepEnv<'_>) -> Step {
        let first_seq = self.next_seq;
        match cmd {
            Command::Append { item, fence, reply } => {
                let r = self.append_one(item, fence, env);
                self.append_step(first_seq, r, fence, reply)
            }
            Command::Batch {
                items,
                fence,
                reply_when_staged,
                reply,
            } => {
                let r = self.append_batch(items, fence, None, env);
                self.batch_step(first_seq, r, fence, reply_when_staged, reply)
            }
            Command::Checkpoint {
                items,
                checkpoint,
                reply,
            } => {
                let r = self.write_checkpoint(items, &checkpoint, env);
                let ok = r.is_ok();
                let fact = match &r {
                    Ok(_) => Fact::None,
                    Err(e) => Fact::refusal(e),
                };
                let mut step = Step::now(first_seq, Answer::Receipts(reply, r), Ack::None, fact);
                // A checkpoint is acknowledged durable, so it never names an event a power
                // loss could take back (INV-CHECKPOINT-DURABLE); group-committed like any write.
                step.sync = ok && !self.bugs.has(Mutant::CheckpointAckBeforeDurable);
                step
            }
            Command::FenceBegin { reply } => {
                let r = self.fence_begin(env);
                let fact = Fact::of(&r, Fact::FenceBegin);
                Step::now(first_seq, Answer::Token(reply, r), Ack::FenceBegin, fact)
            }
            Command::FenceCommit { fence, reply } => self.commit_step(first_seq, fence, reply, env),
            Command::FenceCancel { fence, reply } => self.cancel_step(first_seq, fence, reply, env),
            Command::Sync { reply } => {
                // A latched writer cannot make anything durable.
                let r = self.check_writable();
                let (fact, sync) = (Fact::of(&r, Fact::Sync), r.is_ok());
                let mut step = Step::now(first_seq, Answer::Unit(reply, r), Ack::Sync, fact);
                step.sync = sync;
                step
            }
            Command::Shutdown { reply } => self.shutdown_step(first_seq, reply, env),
            Command::ForgetRemoved { removed, reply } => {
                self.forget_removed(&removed);
                Step::now(
                    first_seq,
                    Answer::Unit(reply, Ok(())),
                    Ack::None,
                    Fact::None,
                )
            }
        }
    }

    /// `ForgetRemoved`: a compaction removed the events `removed`; their idempotency keys and
    /// pending ids go, so the running store answers a retry or a cause naming one of them as a
    /// reopened store does (INV-IDEMPOTENT): the retry is written anew, the cause is unknown.
    /// Decided in the writer's order like any command, writes nothing, and works on a
    /// latched writer too (it only forgets).
    fn forget_removed(&mut self, removed: &[u128]) {
        if self.bugs.has(Mutant::CompactionKeepsKeys) {
            return;
        }
        let forgotten = self.idem.forget_removed(removed);
        tracing::debug!(
            removed = removed.len(),
            forgotten,
            "compaction removed events: their idempotency keys are forgotten"
        );
    }

    /// The answer of an `Append` / `FenceAppend`.
    fn append_step(
        &self,
        first_seq: u64,
        r: Result<Appended, StoreError>,
        fence: Option<u64>,
        reply: Reply<AppendReceipt>,
    ) -> Step {
        let (answer, ack, fact) = match r {
            // An idempotent retry of a key pending in the open fence answers with the
            // original, at commit or cancel (INV-IDEMPOTENT, INV-NO-RESURRECT).
            Ok(Appended::Duplicate(receipt, Some(_)))
                if !self.bugs.has(Mutant::IdempotentRetryAnswersEarly) =>
            {
                let w = FenceWaiter::Duplicate(reply, receipt);
                return Step::answer(first_seq, StepAnswer::AtFenceEnd(w), Fact::None);
            }
            // Otherwise the original is visible, or pending in this very group, whose replies
            // all go out together: answer the original receipt now.
            Ok(Appended::Duplicate(receipt, _)) => (Ok(receipt), Ack::None, Fact::None),
            // INV-FENCE-HIDDEN: a fenced ticket resolves at commit or cancel.
            Ok(Appended::Written(receipt)) => match fence {
                Some(f) => {
                    let w = FenceWaiter::Append(reply, receipt);
                    return Step::answer(
                        first_seq,
                        StepAnswer::AtFenceEnd(w),
                        Fact::FenceAppend(f),
                    );
                }
                None => (Ok(receipt), Ack::Append, Fact::Append),
            },
            Err(e) => {
                let fact = Fact::refusal(&e);
                (Err(e), Ack::None, fact)
            }
        };
        Step::now(first_seq, Answer::Receipt(reply, answer), ack, fact)
    }

    /// The answer of an `AppendBatch` / `FenceBatch` (or the outbox's staged fenced batch,
    /// answered once durably written).
    fn batch_step(
        &self,
        first_seq: u64,
        r: Result<BatchAppended, StoreError>,
        fence: Option<u64>,
        staged: bool,
        reply: Reply<Vec<AppendReceipt>>,
    ) -> Step {
        let mut sync = false;
        let (answer, ack, fact) = match r {
            // An identical retry: the original receipts. While the original is pending under
            // the open fence the retry shares its fate; otherwise it answers now.
            Ok(BatchAppended::Duplicate(dup)) if dup.in_open_fence && !staged => {
                let w = FenceWaiter::Batch(reply, dup.receipts);
                return Step::answer(first_seq, StepAnswer::AtFenceEnd(w), Fact::None);
            }
            Ok(BatchAppended::Duplicate(dup)) => (Ok(dup.receipts), Ack::None, Fact::None),
            Ok(BatchAppended::Written(receipts)) => match fence {
                Some(f) if !staged => {
                    let w = FenceWaiter::Batch(reply, receipts);
                    return Step::answer(first_seq, StepAnswer::AtFenceEnd(w), Fact::FenceBatch(f));
                }
                Some(_) => {
                    sync = true;
                    (Ok(receipts), Ack::None, Fact::None)
                }
                None => (Ok(receipts), Ack::Batch, Fact::AppendBatch),
            },
            Err(e) => {
                let fact = Fact::refusal(&e);
                (Err(e), Ack::None, fact)
            }
        };
        let mut step = Step::now(first_seq, Answer::Receipts(reply, answer), ack, fact);
        step.sync = sync;
        step
    }

    /// `FenceCommit`: answered once its record is durable (INV-FENCE-CRASH).
    fn commit_step(
        &mut self,
        first_seq: u64,
        fence: u64,
        reply: Reply<()>,
        env: &mut StepEnv<'_>,
    ) -> Step {
        let r = self.fence_commit(fence, env);
        let fact = Fact::of(&r, Fact::FenceCommit(fence));
        let ok = r.is_ok();
        let mut step = Step::now(
            first_seq,
            Answer::Unit(reply, r),
            Ack::FenceCommit(fence),
            fact,
        );
        step.sync = ok && !self.bugs.has(Mutant::FenceCommitAckBeforeDurable);
        step
    }

    /// `FenceCancel` (`reply` is `None` for a drop-cancel nobody waits for).
    fn cancel_step(
        &mut self,
        first_seq: u64,
        fence: u64,
        reply: Option<Reply<()>>,
        env: &mut StepEnv<'_>,
    ) -> Step {
        let mut also = Vec::new();
        let r = self.fence_cancel(fence, env, &mut also);
        if let Err(e) = &r {
            tracing::debug!(fence, error = %e, "fence cancel refused");
        }
        let fact = Fact::of(&r, Fact::FenceCancel(fence));
        let answer = match reply {
            Some(reply) => StepAnswer::Now(Outgoing::plain(Answer::Unit(reply, r))),
            None => StepAnswer::Silent,
        };
        let mut step = Step::answer(first_seq, answer, fact);
        step.also = also;
        step
    }

    /// Shutdown: cancels an open fence, syncs; the writer stops after this group.
    fn shutdown_step(&mut self, first_seq: u64, reply: Reply<()>, env: &mut StepEnv<'_>) -> Step {
        let mut step = Step::answer(first_seq, StepAnswer::Silent, Fact::None);
        if let Some(f) = self.open_fence {
            tracing::info!(fence = f, "shutdown cancels the open fence");
            let _ = self.fence_cancel(f, env, &mut step.also);
        }
        step.sync = true;
        step.shutdown = Some(reply);
        step
    }

    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
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

    fn cause_exists(&self, id: u128, index: &Index) -> bool {
        index.contains(id) || self.idem.is_pending(id)
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
            let unchecked = expected == 0 && self.bugs.has(Mutant::CasZeroMeansAny);
            if expected != expected_clock && !unchecked {
                return Err(StoreError::SequenceMismatch {
                    entity: item.coord.entity().to_string(),
                    expected,
                    actual: expected_clock,
                });
            }
        }
        if let Some(c) = causation {
            if !env.allow_external_causes
                && !self.cause_exists(c, env.index)
                && !self.bugs.has(Mutant::CausationUnchecked)
            {
                return Err(StoreError::UnknownCausation { causation_id: c });
            }
        }
        Ok(())
    }

    /// Encodes one event record (no checks) and moves the entity's chain head; its index slot
    /// and key apply once placed. Returns its receipt (position not yet known).
    fn write_event(
        &mut self,
        item: &AppendItem,
        unit: Unit,
        batch: Option<BatchSlot>,
        causation: Option<u128>,
        content_hash: [u8; 32],
        env: &mut StepEnv<'_>,
    ) -> Result<AppendReceipt, StoreError> {
        let now = self.hlc.stamp(env.clock.now_us(), self.bugs);
        let event_id = env.ids.next_id(now);
        let mut head = self.chains.head(item.coord.entity());
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
        let (clock, correlation_id) = (rec.clock, rec.correlation_id.unwrap_or(event_id));
        let hash = event_hash(&rec);
        env.frames.encode(&Record {
            seq,
            body: RecordBody::Event(rec),
        })?;
        self.next_seq += 1;
        let coord = self.chains.intern(&item.coord);
        let new_head = Head { clock, hash, coord };
        self.chains.set_head(item.coord.entity(), new_head);
        let receipt = AppendReceipt {
            event_id,
            sequence: seq,
            disk_pos: UNPLACED,
            content_hash,
            clock,
            durable: false,
            key_id: [0; 32],
            signature: None,
        };
        let mut receipt = receipt;
        if let Some(key) = env.signer {
            key.sign(Signed::for_kind(item.kind), &mut receipt, &hash);
        }
        let key = item.options.idempotency_key.map(|key| {
            let info = IdemInfo {
                receipt,
                coord,
                kind: item.kind,
                batch,
            };
            (key, info)
        });
        let slot = Slot {
            event_id,
            correlation_id,
            causation_id: causation,
            hash_chain: HashChain {
                prev_hash: head.hash,
                event_hash: hash,
            },
            seq,
            timestamp_us: now,
            disk_pos: UNPLACED,
            clock,
            kind: item.kind,
            coord,
        };
        env.frames.attach(Effect::Event { slot, unit, key });
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
        let content_hash = item.content_hash;
        if let Some(key) = item.options.idempotency_key {
            let coords = &self.chains.coords;
            if let Some((r, pending)) = self.idem.hit(
                key,
                &item,
                &content_hash,
                coords,
                self.open_fence,
                (env.index, self.bugs),
            )? {
                let mut r = r;
                env.sign_replayed(&mut r);
                return Ok(Appended::Duplicate(r, pending));
            }
        }
        let causation = item.options.causation_id;
        let head = self.chains.head(item.coord.entity());
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
        checkpoint: Option<&CheckpointWrite>,
        env: &mut StepEnv<'_>,
    ) -> Result<BatchAppended, StoreError> {
        self.admit(fence)?;
        if items.is_empty() {
            return Ok(BatchAppended::Written(Vec::new()));
        }
        // Before the limits: an identical retry is answered even if the limits shrank since.
        let retry = self
            .idem
            .batch_retry(
                &items,
                &self.chains.coords,
                self.open_fence,
                (env.index, self.bugs),
            )
            .map_err(|(i, e)| batch_failed(i, BatchStage::Validation, e))?;
        if let Some(mut dup) = retry {
            if !self.bugs.has(Mutant::BatchRetryWritesAgain) {
                dup.receipts.iter_mut().for_each(|r| env.sign_replayed(r));
                return Ok(BatchAppended::Duplicate(dup));
            }
        }
        check_batch_limits(&items, env.limits)?;
        let hashes = self.validate_batch(&items, env)?;
        self.write_batch(&items, hashes, fence, checkpoint, env)
            .map(BatchAppended::Written)
    }

    /// The validation pass: every item is checked against the entity clocks the batch's
    /// earlier items will have moved. Returns the items' content hashes.
    fn validate_batch(
        &self,
        items: &[AppendItem],
        env: &StepEnv<'_>,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut clocks: HashMap<&str, u32> = HashMap::new();
        let mut hashes = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let content_hash = item.content_hash;
            let entity = item.coord.entity();
            let clock = match clocks.get(entity) {
                Some(c) => *c,
                None => self.chains.head(entity).clock,
            };
            let causation = match item.causation_ref {
                CausationRef::PriorItem(j) if j >= i => {
                    return Err(batch_failed(
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
                .map_err(|e| batch_failed(i, BatchStage::Validation, e))?;
            clocks.insert(entity, clock.wrapping_add(1));
            hashes.push(content_hash);
        }
        Ok(hashes)
    }

    /// Encodes the batch's events and its commit record.
    fn write_batch(
        &mut self,
        items: &[AppendItem],
        hashes: Vec<[u8; 32]>,
        fence: Option<u64>,
        checkpoint: Option<&CheckpointWrite>,
        env: &mut StepEnv<'_>,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        if let Some(cp) = checkpoint {
            if self.bugs.has(Mutant::CheckpointNotAtomic) {
                self.encode_checkpoint(cp, Unit::None, env)?;
            }
        }
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
                .map_err(|e| batch_failed(i, BatchStage::Writing, e))?;
            receipts.push(r);
        }
        if let Some(cp) = checkpoint {
            if !self.bugs.has(Mutant::CheckpointNotAtomic) {
                self.encode_checkpoint(cp, unit, env).map_err(|e| {
                    batch_failed(receipts.len().saturating_sub(1), BatchStage::Writing, e)
                })?;
            }
        }
        let count = receipts.len() as u32;
        let seq = self.next_seq;
        env.frames
            .encode(&Record {
                seq,
                body: RecordBody::BatchCommit { batch, count },
            })
            .map_err(|e| batch_failed(receipts.len().saturating_sub(1), BatchStage::Writing, e))?;
        env.frames.attach(Effect::BatchCommit {
            batch,
            count,
            fence,
        });
        self.next_seq += 1;
        Ok(receipts)
    }

    /// A consumer checkpoint, alone or with the consumer's outputs as one atomic batch whose
    /// commit record also commits the checkpoint (INV-EXACTLY-ONCE). A checkpoint alone is not
    /// an event, so an open fence does not hold it back; outputs are refused under an open
    /// fence like any unfenced batch.
    fn write_checkpoint(
        &mut self,
        items: Vec<AppendItem>,
        cp: &CheckpointWrite,
        env: &mut StepEnv<'_>,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        self.check_writable()?;
        if items.is_empty() {
            self.encode_checkpoint(cp, Unit::None, env)?;
            return Ok(Vec::new());
        }
        match self.append_batch(items, None, Some(cp), env)? {
            BatchAppended::Written(receipts) => Ok(receipts),
            // The outputs were written before, with their checkpoint or without it: only the
            // checkpoint is missing now.
            BatchAppended::Duplicate(dup) => {
                self.encode_checkpoint(cp, Unit::None, env)?;
                Ok(dup.receipts)
            }
        }
    }

    /// Encodes one checkpoint record in `unit`.
    fn encode_checkpoint(
        &mut self,
        cp: &CheckpointWrite,
        unit: Unit,
        env: &mut StepEnv<'_>,
    ) -> Result<(), StoreError> {
        let seq = self.next_seq;
        env.frames.encode(&Record {
            seq,
            body: RecordBody::Checkpoint(CheckpointRecord {
                unit,
                id: &cp.id,
                region: RegionRecord::of(&cp.region),
                position: cp.position,
            }),
        })?;
        self.next_seq += 1;
        tracing::debug!(id = %cp.id, position = ?cp.position, seq, "Checkpoint");
        Ok(())
    }

    /// FenceBegin.
    fn fence_begin(&mut self, env: &mut StepEnv<'_>) -> Result<u64, StoreError> {
        self.check_writable()?;
        if self.open_fence.is_some() {
            return Err(StoreError::VisibilityFenceActive);
        }
        let fence = self.next_seq;
        env.frames.encode(&Record {
            seq: fence,
            body: RecordBody::FenceBegin { fence },
        })?;
        self.next_seq += 1;
        self.units.fence_begin(fence);
        self.open_fence = Some(fence);
        tracing::debug!(fence, "FenceBegin");
        Ok(fence)
    }

    /// FenceCommit: the commit record is encoded; once placed, the fence's events become
    /// ready and its tickets are answered ([`Effect::FenceCommit`]); the thread syncs before
    /// publishing and answering (INV-FENCE-CRASH).
    fn fence_commit(&mut self, fence: u64, env: &mut StepEnv<'_>) -> Result<(), StoreError> {
        self.check_writable()?;
        if self.open_fence != Some(fence) {
            return Err(StoreError::VisibilityFenceNotActive);
        }
        let seq = self.next_seq;
        env.frames.encode(&Record {
            seq,
            body: RecordBody::FenceCommit { fence },
        })?;
        env.frames.attach(Effect::FenceCommit { fence });
        self.next_seq += 1;
        self.open_fence = None;
        tracing::debug!(fence, "FenceCommit");
        Ok(())
    }

    /// FenceCancel: the fence's events never become visible (INV-NO-RESURRECT), its tickets
    /// fail with `VisibilityFenceCancelled` (into `also`), and the cancel record is encoded.
    fn fence_cancel(
        &mut self,
        fence: u64,
        env: &mut StepEnv<'_>,
        also: &mut Vec<Outgoing>,
    ) -> Result<(), StoreError> {
        if self.open_fence != Some(fence) {
            return Err(StoreError::VisibilityFenceNotActive);
        }
        self.open_fence = None;
        let dropped = self.units.fence_cancel(fence, self.next_seq);
        self.idem.forget(&dropped);
        self.units.drop_batches_from(fence);
        for w in self.fence_waiters.drain(..) {
            also.push(w.failed(StoreError::VisibilityFenceCancelled));
        }
        // The cancel record is best effort: without it the fence is "open at a crash", which
        // recovery hides forever just the same. A latched writer skips it.
        if self.latched.is_none() {
            let seq = self.next_seq;
            env.frames.encode(&Record {
                seq,
                body: RecordBody::FenceCancel { fence },
            })?;
            self.next_seq += 1;
        }
        tracing::debug!(fence, "FenceCancel");
        Ok(())
    }

    /// Applies the step's effects now that its frames are placed (`frames.step`, drained):
    /// events join their units and their keys become pending, commit records complete their
    /// units, and the step's receipts get their positions. Its answer goes to `out`, or waits
    /// for the fence.
    pub fn apply(&mut self, step: Step, frames: &mut Frames, out: &mut Vec<Outgoing>) {
        for f in frames.step.iter_mut() {
            let effect = std::mem::replace(&mut f.effect, Effect::None);
            self.apply_effect(f.seq, f.pos, effect, out);
        }
        let place = |r: &mut AppendReceipt| {
            if r.sequence >= step.first_seq {
                if let Some(pos) = frames.position(r.sequence) {
                    r.disk_pos = pos;
                }
            }
        };
        out.extend(step.also);
        match step.answer {
            StepAnswer::Now(mut o) => {
                match &mut o.answer {
                    Answer::Receipt(_, Ok(r)) => place(r),
                    Answer::Receipts(_, Ok(v)) => v.iter_mut().for_each(place),
                    _ => {}
                }
                out.push(o);
            }
            StepAnswer::AtFenceEnd(mut w) => {
                match &mut w {
                    FenceWaiter::Append(_, r) | FenceWaiter::Duplicate(_, r) => place(r),
                    FenceWaiter::Batch(_, v) => v.iter_mut().for_each(place),
                }
                self.fence_waiters.push(w);
            }
            StepAnswer::Silent => {}
        }
        frames.step.clear();
    }

    fn apply_effect(
        &mut self,
        seq: u64,
        pos: crate::append::DiskPos,
        effect: Effect,
        out: &mut Vec<Outgoing>,
    ) {
        match effect {
            Effect::None => {}
            Effect::Event {
                mut slot,
                unit,
                mut key,
            } => {
                slot.disk_pos = pos;
                if let Some((_, info)) = key.as_mut() {
                    info.receipt.disk_pos = pos;
                }
                self.idem.written(slot.event_id, key, unit);
                self.units.event(slot, unit);
            }
            Effect::BatchCommit {
                batch,
                count,
                fence,
            } => {
                let committed = self.units.batch_commit(batch, count, fence, seq + 1);
                assert!(committed.is_ok(), "{committed:?}");
            }
            Effect::FenceCommit { fence } => {
                self.units.fence_commit(fence, seq + 1);
                out.extend(self.fence_waiters.drain(..).map(FenceWaiter::committed));
            }
        }
    }
}

/// A batch's error at item `i`.
fn batch_failed(i: usize, stage: BatchStage, e: StoreError) -> StoreError {
    StoreError::BatchFailed {
        item_index: i,
        stage,
        source: Box::new(e),
    }
}

/// The batch's size limits (events, payload bytes). Both are the whole batch's fault, so
/// both are reported at item 0 (upstream's boundary).
fn check_batch_limits(items: &[AppendItem], limits: Limits) -> Result<(), StoreError> {
    if items.len() > limits.batch_max_size {
        return Err(batch_failed(
            0,
            BatchStage::Validation,
            StoreError::TooLarge {
                what: "batch (events)",
                size: items.len() as u64,
                max: limits.batch_max_size as u64,
            },
        ));
    }
    let bytes: u64 = items.iter().map(|i| i.payload.len() as u64).sum();
    if bytes > limits.batch_max_bytes {
        return Err(batch_failed(
            0,
            BatchStage::Validation,
            StoreError::TooLarge {
                what: "batch (payload bytes)",
                size: bytes,
                max: limits.batch_max_bytes,
            },
        ));
    }
    Ok(())
}
