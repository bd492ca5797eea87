//! The records of the log. Every record stores its global sequence (INV-STABLE-SEQ).
//!
//! Events carry the unit they belong to; units are delimited by explicit records so recovery
//! can make a unit visible exactly when its commit record is present (INV-BATCH-ATOMIC,
//! INV-FENCE-CRASH) and never hide anything outside an unfinished unit (INV-NO-COLLATERAL).

use serde::{Deserialize, Serialize};

/// Which atomic unit an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// A single event, visible once durable.
    None,
    /// An atomic batch, visible when `BatchCommit { batch }` follows.
    Batch(u64),
    /// A visibility fence, visible when `FenceCommit { fence }` follows.
    Fence(u64),
    /// An atomic batch under a fence: needs both its batch commit and the fence commit.
    FencedBatch {
        /// The fence token.
        fence: u64,
        /// The batch id.
        batch: u64,
    },
}

impl Unit {
    /// The fence this unit lives under, if any.
    pub fn fence(self) -> Option<u64> {
        match self {
            Unit::Fence(f) | Unit::FencedBatch { fence: f, .. } => Some(f),
            _ => None,
        }
    }

    /// The batch this unit belongs to, if any.
    pub fn batch(self) -> Option<u64> {
        match self {
            Unit::Batch(b) | Unit::FencedBatch { batch: b, .. } => Some(b),
            _ => None,
        }
    }
}

/// An event as stored. Strings and payload borrow from the decoded buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord<'a> {
    /// Atomic unit.
    pub unit: Unit,
    /// UUIDv7 id.
    pub event_id: u128,
    /// Correlation id; `None` means "same as `event_id`" (saves 16 bytes for root causes).
    pub correlation_id: Option<u128>,
    /// The causing event.
    pub causation_id: Option<u128>,
    /// The writer's hybrid logical clock, µs since the epoch: never below an earlier
    /// record's (INV-HLC-MONOTONE).
    pub timestamp_us: i64,
    /// Entity clock (1-based, +1 per written event of the entity).
    pub clock: u32,
    /// Raw event kind.
    pub kind: u16,
    /// Caller flags.
    pub flags: u8,
    /// Hash of the entity's previous written event (zeros for the first).
    pub prev_hash: [u8; 32],
    /// Idempotency key, if the append carried one.
    pub idempotency_key: Option<u128>,
    /// Entity.
    pub entity: &'a str,
    /// Scope.
    pub scope: &'a str,
    /// MessagePack payload.
    #[serde(with = "serde_bytes_borrowed")]
    pub payload: &'a [u8],
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record<'a> {
    /// Global sequence: position of the record in the log, 0-based, never reused.
    pub seq: u64,
    /// What the record says.
    #[serde(borrow)]
    pub body: RecordBody<'a>,
}

/// What a record says.
#[expect(
    clippy::large_enum_variant,
    reason = "records are decoded, used and dropped one at a time; boxing events would allocate per record"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordBody<'a> {
    /// An event.
    #[serde(borrow)]
    Event(EventRecord<'a>),
    /// Commits the batch whose `count` events precede it.
    BatchCommit {
        /// Batch id (the sequence of its first event).
        batch: u64,
        /// Number of events in the batch.
        count: u32,
    },
    /// Opens a fence (its token is this record's sequence).
    FenceBegin {
        /// Fence token.
        fence: u64,
    },
    /// Publishes the fence.
    FenceCommit {
        /// Fence token.
        fence: u64,
    },
    /// Cancels the fence: its events never become visible.
    FenceCancel {
        /// Fence token.
        fence: u64,
    },
}

/// Serialise `&[u8]` as a byte string (length + bytes) rather than a sequence of u8.
mod serde_bytes_borrowed {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&'de [u8] as serde::Deserialize<'de>>::deserialize(d)
    }
}
