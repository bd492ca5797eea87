//! Writes: append (single, typed, with options, reactions), batches, denials, submits and
//! tickets, non-blocking submits, the outbox, visibility fences and `sync`.

use super::batch::{encode_payload, BatchAppendItem};
use super::{
    AppendOptions, AppendReceipt, AppendTicket, BatchAppendTicket, CausationRef, Open, Outbox,
    Store, StoreError, VisibilityFence,
};
use crate::coordinate::Coordinate;
use crate::event::{EventKind, EventPayload};
use crate::guard::{DecisionTrace, Denial, DenialRecord};
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

    fn system_item(
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
        Ok(AppendItem {
            coord: coord.clone(),
            kind,
            payload,
            options,
            causation_ref: CausationRef::None,
        })
    }

    /// Appends one event and waits for its receipt (durable in the default mode).
    pub fn append(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<AppendReceipt, StoreError> {
        self.append_with_options(coord, kind, payload, AppendOptions::default())
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

    /// Appends with options (CAS, idempotency, correlation, causation, flags).
    pub fn append_with_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendReceipt, StoreError> {
        let item = self.item(coord, kind, payload, options)?;
        self.submit_item(item, None, false)?.wait()
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
        self.append_with_options(coord, kind, payload, options)
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

    /// Appends an atomic batch: all events become visible together or none does.
    pub fn append_batch(
        &self,
        items: Vec<BatchAppendItem>,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        self.submit_batch(items)?.wait()
    }

    /// Records a gate denial as a system event (kind [`EventKind::SYSTEM_DENIAL`]) on the
    /// entity's chain, with the decision trace (which gates permitted, denied or were
    /// skipped), so audits can replay decisions. Read it back with [`Store::get_typed`] as a
    /// [`DenialRecord`].
    pub fn append_denial(
        &self,
        coord: &Coordinate,
        denial: &Denial,
        trace: &DecisionTrace,
    ) -> Result<AppendReceipt, StoreError> {
        let record = DenialRecord {
            denial: denial.clone(),
            trace: trace.clone(),
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
        self.request(|reply| Command::Sync { reply })
    }
}
