//! Writes: append (single, typed, with options, reactions), batches, denials, submits and
//! tickets, non-blocking submits, the outbox, visibility fences and `sync`.

use super::batch::{encode_payload, BatchAppendItem};
use super::{
    AppendOptions, AppendReceipt, AppendTicket, BatchAppendTicket, CausationRef, Open, Outbox,
    Store, StoreError, VisibilityFence,
};
use crate::append::DenialReceipt;
use crate::coordinate::Coordinate;
use crate::event::{EventKind, EventPayload};
use crate::guard::{DecisionTrace, Denial, DenialRecord, GateSet};
use crate::writer::{AppendItem, Command};
use serde::Serialize;

impl Store<Open> {
    pub(crate) fn item(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendItem, StoreError> {
        if kind.is_reserved() {
            return Err(StoreError::Configuration(format!(
                "event kind {kind} is in a reserved category (0x0 system, 0xD effects)"
            )));
        }
        self.system_item(coord, kind, payload, options)
    }

    pub(crate) fn system_item(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendItem, StoreError> {
        let payload = encode_payload(payload)?;
        if payload.len() as u64 > self.cfg.single_append_max_bytes {
            return Err(StoreError::TooLarge {
                what: "payload",
                size: payload.len() as u64,
                max: self.cfg.single_append_max_bytes,
            });
        }
        Ok(AppendItem::new(
            coord.clone(),
            kind,
            payload,
            options,
            CausationRef::None,
        ))
    }

    /// Appends one event and waits for its receipt (durable in the default mode).
    pub fn append(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<AppendReceipt, StoreError> {
        let result = self.append_options(coord, kind, payload, AppendOptions::default());
        super::flow::done("append", result)
    }

    /// Appends a typed event (kind `T::KIND`).
    pub fn append_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
    ) -> Result<AppendReceipt, StoreError> {
        self.register_kind::<T>()?;
        self.append(coord, T::KIND, payload)
    }

    /// Appends with options (CAS, idempotency, correlation, causation, flags, and a
    /// [`DurabilityGate`](super::DurabilityGate): after the write committed, wait until it
    /// is durable / visible / applied; a gate that runs out of time answers
    /// [`StoreError::WaitTimeout`] with the committed receipt).
    pub fn append_with_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendReceipt, StoreError> {
        let result = self.append_options(coord, kind, payload, options);
        super::flow::done("append_with_options", result)
    }

    /// [`Store::append_with_options`] without its `flow` event (each public caller reports
    /// under its own name).
    fn append_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendReceipt, StoreError> {
        let gate = options.gate;
        let options = AppendOptions {
            gate: None,
            ..options
        };
        let item = self.item(coord, kind, payload, options)?;
        self.append_gated(item, gate)
    }

    /// Writes `item` and waits for its receipt, then for `gate`.
    fn append_gated(
        &self,
        item: AppendItem,
        gate: Option<super::DurabilityGate>,
    ) -> Result<AppendReceipt, StoreError> {
        let receipt = self.submit_item(item, None, false)?.wait()?;
        if let Some(gate) = gate {
            self.wait_for_gate(&receipt, gate)?;
        }
        Ok(receipt)
    }

    /// Typed [`Store::append_with_options`].
    pub fn append_typed_with_options<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
        options: AppendOptions,
    ) -> Result<AppendReceipt, StoreError> {
        self.register_kind::<T>()?;
        self.append_with_options(coord, T::KIND, payload, options)
    }

    /// Appends a reaction: an event caused by `causation_id` in conversation `correlation_id`.
    pub fn append_reaction(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendReceipt, StoreError> {
        let options = AppendOptions::reaction(correlation_id, causation_id);
        let result = self.append_options(coord, kind, payload, options);
        super::flow::done("append_reaction", result)
    }

    /// Typed [`Store::append_reaction`].
    pub fn append_reaction_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendReceipt, StoreError> {
        self.register_kind::<T>()?;
        self.append_reaction(coord, T::KIND, payload, correlation_id, causation_id)
    }

    /// Appends an atomic batch of reactions (upstream's `append_reaction_batch`): every item
    /// joins conversation `correlation_id`, and an item that names no cause of its own (no
    /// `causation_id` in its options and `CausationRef::None`) is caused by `causation_id`.
    /// All become visible together or none does, as [`Store::append_batch`].
    ///
    /// # Errors
    /// As [`Store::append_batch`] (an unknown `causation_id` is `UnknownCausation` unless
    /// the store accepts external causes).
    pub fn append_reaction_batch(
        &self,
        correlation_id: u128,
        causation_id: u128,
        items: Vec<BatchAppendItem>,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        let items = items
            .into_iter()
            .map(|mut it| {
                let o = &mut it.item.options;
                o.correlation_id = Some(correlation_id);
                if o.causation_id.is_none()
                    && matches!(it.item.causation_ref, crate::append::CausationRef::None)
                {
                    o.causation_id = Some(causation_id);
                }
                it
            })
            .collect();
        self.append_batch(items)
    }

    /// Appends an atomic batch: all events become visible together or none does.
    pub fn append_batch(
        &self,
        items: Vec<BatchAppendItem>,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        self.submit_batch(items)?.wait()
    }

    /// [`Store::append_batch`] with batch-level options: only a
    /// [`DurabilityGate`](super::DurabilityGate) (`options.gate`), which waits for the last
    /// item (so for the whole batch) after the batch committed; a gate that runs out of time
    /// answers [`StoreError::WaitTimeout`] carrying the last item's receipt. Every other
    /// option belongs to the items and is refused here (`Configuration`), as is a gate on an
    /// item.
    pub fn append_batch_with_options(
        &self,
        items: Vec<BatchAppendItem>,
        options: AppendOptions,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        if (AppendOptions {
            gate: None,
            ..options
        }) != AppendOptions::new()
        {
            return Err(StoreError::Configuration(
                "append_batch_with_options honours only `gate`; set CAS, idempotency, \
                 correlation, causation and flags on the items"
                    .to_string(),
            ));
        }
        let receipts = self.submit_batch(items)?.wait()?;
        if let (Some(gate), Some(last)) = (options.gate, receipts.last()) {
            self.wait_for_gate(last, gate)?;
        }
        Ok(receipts)
    }

    /// Records a gate denial as a system event (kind [`EventKind::SYSTEM_DENIAL`]) on the
    /// entity's chain, as upstream's `append_denial` does: the trace says which gates of
    /// `gate_set` permitted before `failing` denied and which were skipped after it
    /// ([`GateSet::trace_denial`]), with the kind and payload hash the denied write proposed
    /// and the pipeline that ran. `options` apply to the denial event (CAS, idempotency,
    /// correlation, causation, flags, a [`DurabilityGate`](super::DurabilityGate)). Read it
    /// back with [`Store::get_typed`] as a [`DenialRecord`].
    ///
    /// Refused with `Configuration` (nothing written) if no gate of `gate_set` is named
    /// `failing.gate`: the record would contradict its own trace.
    #[allow(clippy::too_many_arguments)]
    pub fn append_denial<Ctx>(
        &self,
        coord: &Coordinate,
        proposed_kind: EventKind,
        gate_set: &GateSet<Ctx>,
        failing: &Denial,
        proposed_content_hash: Option<[u8; 32]>,
        pipeline_id: Option<String>,
        options: AppendOptions,
    ) -> Result<DenialReceipt, StoreError> {
        let trace = gate_set.trace_denial(failing).ok_or_else(|| {
            StoreError::Configuration(format!(
                "denial by gate {:?}, which is not in the gate set {:?}",
                failing.gate,
                gate_set.names()
            ))
        })?;
        let record = DenialRecord {
            denial: failing.clone(),
            trace,
            proposed_kind: Some(proposed_kind),
            proposed_content_hash,
            pipeline_id,
        };
        let gate = options.gate;
        let options = AppendOptions {
            gate: None,
            ..options
        };
        let item = self.system_item(coord, EventKind::SYSTEM_DENIAL, &record, options)?;
        Ok(DenialReceipt::from(&self.append_gated(item, gate)?))
    }

    /// Records a gate denial with the decision trace the caller already has (from
    /// [`GateSet::evaluate_traced`]) as a system event (kind [`EventKind::SYSTEM_DENIAL`]) on
    /// the entity's chain, so audits can replay decisions. Read it back with
    /// [`Store::get_typed`] as a [`DenialRecord`].
    pub fn append_denial_record(
        &self,
        coord: &Coordinate,
        denial: &Denial,
        trace: &DecisionTrace,
    ) -> Result<AppendReceipt, StoreError> {
        let record = DenialRecord {
            denial: denial.clone(),
            trace: trace.clone(),
            proposed_kind: None,
            proposed_content_hash: None,
            pipeline_id: None,
        };
        let item = self.system_item(
            coord,
            EventKind::SYSTEM_DENIAL,
            &record,
            AppendOptions::default(),
        )?;
        self.submit_item(item, None, false)?.wait()
    }

    /// Submits an append without waiting; the ticket answers later.
    pub fn submit(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.item(coord, kind, payload, AppendOptions::default())?;
        self.submit_item(item, None, false)
    }

    /// Submits with options.
    pub fn submit_with_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.item(coord, kind, payload, options)?;
        self.submit_item(item, None, false)
    }

    /// Submits a typed append.
    pub fn submit_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
    ) -> Result<AppendTicket, StoreError> {
        self.register_kind::<T>()?;
        self.submit(coord, T::KIND, payload)
    }

    /// Submits a reaction.
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

    /// Submits a typed reaction.
    pub fn submit_reaction_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendTicket, StoreError> {
        self.register_kind::<T>()?;
        self.submit_reaction(coord, T::KIND, payload, correlation_id, causation_id)
    }

    /// Submits an atomic batch.
    pub fn submit_batch(
        &self,
        items: Vec<BatchAppendItem>,
    ) -> Result<BatchAppendTicket, StoreError> {
        self.submit_items(items, None, false, false)
    }

    /// Like [`Store::submit`] but never blocks: refuses with `Backpressure` (retryable) when
    /// the writer queue is at its threshold.
    pub fn try_submit(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.item(coord, kind, payload, AppendOptions::default())?;
        self.submit_item(item, None, true)
    }

    /// Non-blocking [`Store::submit_with_options`].
    pub fn try_submit_with_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.item(coord, kind, payload, options)?;
        self.submit_item(item, None, true)
    }

    /// Non-blocking [`Store::submit_typed`].
    pub fn try_submit_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
    ) -> Result<AppendTicket, StoreError> {
        self.register_kind::<T>()?;
        self.try_submit(coord, T::KIND, payload)
    }

    /// Non-blocking [`Store::submit_batch`].
    pub fn try_submit_batch(
        &self,
        items: Vec<BatchAppendItem>,
    ) -> Result<BatchAppendTicket, StoreError> {
        self.submit_items(items, None, false, true)
    }

    /// An outbox: stage events, then flush them as one atomic batch.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox::new(self, None)
    }

    /// Opens a visibility fence: writes under it are durable but hidden until `commit()`.
    /// One fence at a time (`VisibilityFenceActive`); while it is open, unfenced writes are
    /// refused with `VisibilityFenceActive` (decided by the writer thread).
    pub fn begin_visibility_fence(&self) -> Result<VisibilityFence<'_>, StoreError> {
        let token = self.request(|reply| Command::FenceBegin { reply })?;
        Ok(VisibilityFence::new(self, token))
    }

    /// Makes everything written so far durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        super::flow::done("sync", self.request(|reply| Command::Sync { reply }))
    }
}
