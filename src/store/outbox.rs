//! The outbox: stage events, then write them as one atomic batch.
//!
//! Dropping an outbox with staged items discards them: nothing is written (the staged items
//! only ever lived in the outbox). A fenced outbox (`fence.outbox()`) flushes its batch under
//! the fence: `flush()` returns as soon as the batch is durably staged, with receipts; the
//! events become visible when the fence commits, and never if it is cancelled. (Upstream's
//! fenced flush waited for the commit the caller had not made yet: a deadlock.)
//!
//! As upstream, the `stage*` methods return the outbox for chaining and take the coordinate
//! by value; a reference works too (`impl Borrow<Coordinate>`).

use super::batch::encode_payload;
use super::ticket::FenceWatch;
use super::{
    AppendOptions, AppendReceipt, BatchAppendItem, BatchAppendTicket, CausationRef, Open, Store,
    StoreError,
};
use crate::coordinate::Coordinate;
use crate::event::{EventKind, EventPayload};
use crate::sync::Arc;
use crate::writer::AppendItem;
use serde::Serialize;
use std::borrow::Borrow;

/// Staged events waiting to be flushed as one atomic batch.
#[derive(Debug)]
pub struct Outbox<'a> {
    store: &'a Store<Open>,
    fence: Option<Arc<FenceWatch>>,
    items: Vec<BatchAppendItem>,
}

impl<'a> Outbox<'a> {
    pub(crate) fn new(store: &'a Store<Open>, fence: Option<Arc<FenceWatch>>) -> Self {
        Self {
            store,
            fence,
            items: Vec::new(),
        }
    }

    fn push(
        &mut self,
        coord: impl Borrow<Coordinate>,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
        causation: CausationRef,
    ) -> Result<&mut Self, StoreError> {
        self.items.push(BatchAppendItem {
            item: AppendItem::new(
                coord.borrow().clone(),
                kind,
                encode_payload(payload)?,
                options,
                causation,
            ),
        });
        Ok(self)
    }

    /// Stages an event.
    pub fn stage(
        &mut self,
        coord: impl Borrow<Coordinate>,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<&mut Self, StoreError> {
        self.push(
            coord,
            kind,
            payload,
            AppendOptions::default(),
            CausationRef::None,
        )
    }

    /// Stages an event with options.
    pub fn stage_with_options(
        &mut self,
        coord: impl Borrow<Coordinate>,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<&mut Self, StoreError> {
        self.push(coord, kind, payload, options, CausationRef::None)
    }

    /// Stages an event caused by an existing event or an earlier staged one.
    pub fn stage_with_causation(
        &mut self,
        coord: impl Borrow<Coordinate>,
        kind: EventKind,
        payload: &impl Serialize,
        causation: CausationRef,
    ) -> Result<&mut Self, StoreError> {
        self.push(coord, kind, payload, AppendOptions::default(), causation)
    }

    /// Stages a typed event.
    pub fn stage_typed<T: EventPayload>(
        &mut self,
        coord: impl Borrow<Coordinate>,
        payload: &T,
    ) -> Result<&mut Self, StoreError> {
        self.store.register_kind::<T>()?;
        self.stage(coord, T::KIND, payload)
    }

    /// Stages a typed event with options.
    pub fn stage_typed_with_options<T: EventPayload>(
        &mut self,
        coord: impl Borrow<Coordinate>,
        payload: &T,
        options: AppendOptions,
    ) -> Result<&mut Self, StoreError> {
        self.store.register_kind::<T>()?;
        self.stage_with_options(coord, T::KIND, payload, options)
    }

    /// Stages a typed event with a causation reference.
    pub fn stage_typed_with_causation<T: EventPayload>(
        &mut self,
        coord: impl Borrow<Coordinate>,
        payload: &T,
        causation: CausationRef,
    ) -> Result<&mut Self, StoreError> {
        self.store.register_kind::<T>()?;
        self.stage_with_causation(coord, T::KIND, payload, causation)
    }

    /// Stages an event with options and a causation reference.
    pub fn stage_with_options_and_causation(
        &mut self,
        coord: impl Borrow<Coordinate>,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
        causation: CausationRef,
    ) -> Result<&mut Self, StoreError> {
        self.push(coord, kind, payload, options, causation)
    }

    /// Stages a typed event with options and a causation reference.
    pub fn stage_typed_with_options_and_causation<T: EventPayload>(
        &mut self,
        coord: impl Borrow<Coordinate>,
        payload: &T,
        options: AppendOptions,
        causation: CausationRef,
    ) -> Result<&mut Self, StoreError> {
        self.store.register_kind::<T>()?;
        self.push(coord, T::KIND, payload, options, causation)
    }

    /// Stages a prepared item.
    pub fn push_item(&mut self, item: BatchAppendItem) -> &mut Self {
        self.items.push(item);
        self
    }

    /// Number of staged items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is staged.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Writes the staged items as one atomic batch and waits for the receipts. Unfenced: the
    /// batch is durable and visible on return. Fenced: durable and hidden until commit.
    /// The outbox is empty afterwards, whatever the outcome.
    pub fn flush(&mut self) -> Result<Vec<AppendReceipt>, StoreError> {
        self.submit_flush()?.wait()
    }

    /// Submits the staged items as one atomic batch without waiting.
    pub fn submit_flush(&mut self) -> Result<BatchAppendTicket, StoreError> {
        let items = std::mem::take(&mut self.items);
        self.store
            .submit_items(items, self.fence.as_ref(), self.fence.is_some(), false)
    }
}
