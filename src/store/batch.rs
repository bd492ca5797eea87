//! Batch items.

use crate::coordinate::Coordinate;
use crate::error::StoreError;
use crate::event::{EventKind, EventPayload};
use crate::writer::{AppendItem, AppendOptions, CausationRef};
use serde::Serialize;

/// Serialises a payload as MessagePack with named fields.
pub(crate) fn encode_payload(payload: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(payload).map_err(StoreError::ser)
}

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
            item: AppendItem {
                coord,
                kind,
                payload: encode_payload(payload)?,
                options,
                causation_ref: causation,
            },
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
