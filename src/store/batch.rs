//! Batch items.

use crate::coordinate::Coordinate;
use crate::error::StoreError;
use crate::event::{EventKind, EventPayload};
use crate::writer::{AppendItem, AppendOptions, CausationRef};
use serde::Serialize;

/// Serialises a payload as MessagePack with named fields.
pub(crate) fn encode_payload(payload: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    // Room for a typical payload up front: growing from empty reallocates at every doubling,
    // once per event (the callers' side of the batch and submit paths).
    let mut out = Vec::with_capacity(PAYLOAD_CAPACITY_HINT);
    rmp_serde::encode::write_named(&mut out, payload).map_err(StoreError::ser)?;
    Ok(out)
}

/// Bytes reserved before a payload is encoded.
const PAYLOAD_CAPACITY_HINT: usize = 256;

/// One event of an atomic batch.
#[derive(Debug, Clone)]
pub struct BatchAppendItem {
    pub(crate) item: AppendItem,
}

impl BatchAppendItem {
    /// An item with an explicit kind. Serialises the payload now.
    pub fn new(
        coord: Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
        causation: CausationRef,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            item: AppendItem::new(coord, kind, encode_payload(payload)?, options, causation),
        })
    }

    /// An item whose kind is `T::KIND`.
    pub fn typed<T: EventPayload>(
        coord: Coordinate,
        payload: &T,
        options: AppendOptions,
        causation: CausationRef,
    ) -> Result<Self, StoreError> {
        Self::new(coord, T::KIND, payload, options, causation)
    }

    /// The item's coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        &self.item.coord
    }

    /// The item's kind.
    pub fn kind(&self) -> EventKind {
        self.item.kind
    }
}
