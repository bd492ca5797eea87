//! The records of the log. Every record stores its global sequence (INV-STABLE-SEQ).
//!
//! Events carry the unit they belong to; units are delimited by explicit records so recovery
//! can make a unit visible exactly when its commit record is present (INV-BATCH-ATOMIC,
//! INV-FENCE-CRASH) and never hide anything outside an unfinished unit (INV-NO-COLLATERAL).

use crate::event::EventKind;
use crate::region::{KindFilter, Region};
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
    /// A durable consumer's checkpoint. Not an event: never indexed, so no reader sees it.
    /// Appended last so that every earlier variant keeps its tag (old logs still decode).
    #[serde(borrow)]
    Checkpoint(CheckpointRecord<'a>),
    /// Written by compaction: the sequences from this record's own up to (not including)
    /// `to` were removed from the log (an empty range when `to` is the record's own
    /// sequence: the mark that starts every compacted segment). The record stands for the
    /// whole range, so the next record's sequence is `to` (INV-STABLE-SEQ); readers and
    /// cursors see nothing of it. Appended last so every earlier variant keeps its tag.
    Dropped {
        /// The first sequence after the removed range.
        to: u64,
    },
}

impl RecordBody<'_> {
    /// The sequence the record after one with this body at `seq` carries: `seq + 1`, or
    /// `to` after a [`RecordBody::Dropped`] range.
    pub fn next_seq(&self, seq: u64) -> u64 {
        match self {
            RecordBody::Dropped { to } => *to,
            _ => seq + 1,
        }
    }
}

/// A consumer checkpoint as stored: the last one of an id wins at recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord<'a> {
    /// `Unit::None` (takes effect when written) or `Unit::Batch` (takes effect with the
    /// batch's commit record: outputs and checkpoint are one atomic unit).
    pub unit: Unit,
    /// The checkpoint id (validated: `[A-Za-z0-9._-]{1,128}`).
    pub id: &'a str,
    /// The consumer's region, field by field (not a joined string, so no two regions share
    /// an encoding).
    #[serde(borrow)]
    pub region: RegionRecord<'a>,
    /// Where the consumer stands.
    pub position: CheckpointPosition,
}

/// A region as stored in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRecord<'a> {
    /// Entity namespace prefix.
    pub entity_prefix: Option<&'a str>,
    /// Exact scope.
    pub scope: Option<&'a str>,
    /// Kind filter.
    pub fact: FactRecord,
    /// Inclusive entity clock range.
    pub clock_range: Option<(u32, u32)>,
}

/// A region's kind filter as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FactRecord {
    /// Any kind.
    Any,
    /// Exactly this raw kind.
    Exact(u16),
    /// Every kind of this category.
    Category(u8),
}

impl<'a> RegionRecord<'a> {
    /// The stored form of `region`.
    pub fn of(region: &'a Region) -> Self {
        Self {
            entity_prefix: region.entity_prefix.as_deref(),
            scope: region.scope.as_deref(),
            fact: match region.fact {
                KindFilter::Any => FactRecord::Any,
                KindFilter::Exact(k) => FactRecord::Exact(k.as_raw()),
                KindFilter::Category(c) => FactRecord::Category(c),
            },
            clock_range: region.clock_range,
        }
    }

    /// The region it stores.
    pub fn region(&self) -> Region {
        Region {
            entity_prefix: self.entity_prefix.map(str::to_owned),
            scope: self.scope.map(str::to_owned),
            fact: match self.fact {
                FactRecord::Any => KindFilter::Any,
                FactRecord::Exact(k) => KindFilter::Exact(EventKind::from_raw(k)),
                FactRecord::Category(c) => KindFilter::Category(c),
            },
            clock_range: self.clock_range,
        }
    }
}

/// Where a consumer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckpointPosition {
    /// Nothing processed yet.
    Start,
    /// Every event of the region up to and including this global sequence is processed.
    After(u64),
    /// The consumer was deleted.
    Deleted,
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
