//! What an append says and what it answers: [`AppendOptions`], [`CausationRef`],
//! [`AppendReceipt`] and where a record sits on disk ([`DiskPos`]); the points and watermarks
//! a caller can wait for ([`HlcPoint`], [`WatermarkKind`], [`DurabilityGate`]). Plain values
//! shared by the store, the writer, the index and the gate pipeline.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::time::Duration;

/// A point of the log: an event's hybrid-logical-clock time and its global sequence, as
/// upstream batpak names it. Build one from an index entry (`IndexEntry::point`), from a receipt
/// (`HlcPoint::from(&receipt)`) or as a struct literal.
///
/// Ordered as upstream orders it (`wall_ms` first, then `global_sequence`). The waits
/// (`Store::wait_for_durable` and friends) look at `global_sequence` **only**: a point is
/// reached when every event up to and including `global_sequence` is durable / visible /
/// applied. Deciding by wall time first would let a wait return before the sequence it names
/// is durable, which upstream does; this crate does not. [`HlcPoint::ORIGIN`] is reached at
/// once while the log holds no event; once it holds one, it names sequence 0 like every point
/// with that sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[must_use]
pub struct HlcPoint {
    /// Hybrid logical clock, milliseconds ([`crate::event::EventPosition::wall_ms`]).
    pub wall_ms: u64,
    /// Global sequence of the event.
    pub global_sequence: u64,
}

impl HlcPoint {
    /// The point before any event (`wall_ms` 0, sequence 0): a wait for it returns at once
    /// while no event is written, and otherwise waits for sequence 0.
    pub const ORIGIN: Self = Self {
        wall_ms: 0,
        global_sequence: 0,
    };
}

impl Ord for HlcPoint {
    fn cmp(&self, other: &Self) -> Ordering {
        self.wall_ms
            .cmp(&other.wall_ms)
            .then(self.global_sequence.cmp(&other.global_sequence))
    }
}

impl PartialOrd for HlcPoint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The receipt's sequence. A receipt carries no wall time, so `wall_ms` is 0; the waits do
/// not read it.
impl From<&AppendReceipt> for HlcPoint {
    fn from(r: &AppendReceipt) -> Self {
        Self {
            wall_ms: 0,
            global_sequence: r.sequence,
        }
    }
}

/// Which frontier a wait or a [`DurabilityGate`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[must_use]
pub enum WatermarkKind {
    /// The event is durable: it survives a crash (`Store::wait_for_durable`).
    Durable,
    /// Every live durable consumer whose region holds the event has committed past it; with no
    /// live consumer the same as `Visible` (`Store::wait_for_applied`).
    Applied,
    /// The event is published to readers (`Store::wait_for_visible`).
    Visible,
}

impl std::fmt::Display for WatermarkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Durable => "durable",
            Self::Applied => "applied",
            Self::Visible => "visible",
        })
    }
}

/// An append-time wait: after the write committed, wait until the event crosses `kind`
/// ([`AppendOptions::with_gate`]; honoured by `Store::append_with_options`, its typed form and
/// `Store::append_batch_with_options`).
///
/// A gate that runs out of time answers `StoreError::WaitTimeout` carrying
/// the committed receipt: the event **was written** (the error is not definite) and reads
/// find it; call the matching `wait_for_*` again to wait longer. Under the default
/// configuration a `Durable` gate never times out (every acknowledged event is already
/// durable), and in the deferred modes the wait asks the writer for a flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DurabilityGate {
    /// The frontier to wait for.
    pub kind: WatermarkKind,
    /// How long to wait for it after the write committed.
    pub timeout: Duration,
}

/// Options of one append: CAS, idempotency, correlation, causation, flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// Compare-and-swap: the append succeeds only if the entity's clock (the number of events
    /// written to it, hidden ones included) equals this; `Some(0)` means "no events yet".
    pub expected_sequence: Option<u32>,
    /// Idempotency key: a retry with the same key returns the original receipt.
    pub idempotency_key: Option<u128>,
    /// Correlation id; defaults to the event's own id.
    pub correlation_id: Option<u128>,
    /// The causing event; must name an existing earlier event.
    pub causation_id: Option<u128>,
    /// Caller flags stored in the header.
    pub flags: u8,
    /// Wait after the write until the event crosses a frontier (see [`DurabilityGate`]).
    /// Not stored; refused by the non-blocking `submit*` paths and by batch items, which
    /// cannot wait (a batch takes it through `Store::append_batch_with_options`).
    pub gate: Option<DurabilityGate>,
}

impl AppendOptions {
    /// No CAS, no idempotency key, no custom ids, no flags.
    pub const fn new() -> Self {
        Self {
            expected_sequence: None,
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
            flags: 0,
            gate: None,
        }
    }
    /// Requires the entity's clock to be exactly `expected` (0 = no events yet).
    pub const fn with_cas(mut self, expected: u32) -> Self {
        self.expected_sequence = Some(expected);
        self
    }
    /// Sets the idempotency key.
    pub const fn with_idempotency(mut self, key: u128) -> Self {
        self.idempotency_key = Some(key);
        self
    }
    /// Sets the correlation id.
    pub const fn with_correlation(mut self, id: u128) -> Self {
        self.correlation_id = Some(id);
        self
    }
    /// Sets the causation id.
    pub const fn with_causation(mut self, id: u128) -> Self {
        self.causation_id = Some(id);
        self
    }
    /// [`AppendOptions::with_correlation`] from a typed id.
    pub fn with_correlation_typed(self, id: crate::id::CorrelationId) -> Self {
        self.with_correlation(crate::id::EntityIdType::as_u128(&id))
    }
    /// [`AppendOptions::with_causation`] from a typed id.
    pub fn with_causation_typed(self, id: crate::id::CausationId) -> Self {
        self.with_causation(crate::id::EntityIdType::as_u128(&id))
    }
    /// Sets the flags.
    pub const fn with_flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }
    /// Sets an append-time durability gate (see [`DurabilityGate`]).
    pub const fn with_gate(mut self, gate: DurabilityGate) -> Self {
        self.gate = Some(gate);
        self
    }
    /// The options of a reaction: an event caused by `causation_id` in conversation
    /// `correlation_id` (the `*_reaction` methods of the store and the fence).
    pub(crate) const fn reaction(correlation_id: u128, causation_id: u128) -> Self {
        Self::new()
            .with_correlation(correlation_id)
            .with_causation(causation_id)
    }
}

/// How a batch item names its cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CausationRef {
    /// No cause beyond what the item's options say.
    #[default]
    None,
    /// An existing event id.
    Absolute(u128),
    /// An earlier item of the same batch (0-based index).
    PriorItem(usize),
}

impl CausationRef {
    /// [`CausationRef::Absolute`] from a typed id.
    pub fn absolute_typed(id: crate::id::CausationId) -> Self {
        Self::Absolute(crate::id::EntityIdType::as_u128(&id))
    }
}

/// Proof that an event was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AppendReceipt {
    /// Event id.
    pub event_id: u128,
    /// Global sequence.
    pub sequence: u64,
    /// Where the frame is.
    pub disk_pos: DiskPos,
    /// blake3 of the payload bytes.
    pub content_hash: [u8; 32],
    /// The entity clock the event took.
    pub clock: u32,
    /// Whether the event was durable when the receipt was issued (always true in the default
    /// durability mode).
    pub durable: bool,
    /// The Ed25519 public key that signed this receipt; all zeros when the store has no
    /// signing key (`StoreConfig::with_signing_key`).
    pub key_id: [u8; 32],
    /// Ed25519 signature over the event's id, sequence, clock, payload hash and full
    /// header+payload hash (the `signing` module describes the signed bytes); `None` unsigned.
    /// Check it with `Store::verify_append_receipt`.
    #[serde(with = "signature_bytes")]
    pub signature: Option<[u8; 64]>,
}

/// Serde for `Option<[u8; 64]>` (serde's own array impls stop at 32).
mod signature_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 64]>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().map(|b| b.as_slice()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 64]>, D::Error> {
        match Option::<Vec<u8>>::deserialize(d)? {
            None => Ok(None),
            Some(v) => <[u8; 64]>::try_from(v.as_slice())
                .map(Some)
                .map_err(|_| serde::de::Error::invalid_length(v.len(), &"64 signature bytes")),
        }
    }
}

/// Proof that a gate denial was recorded (`Store::append_denial`): the
/// [`EventKind::SYSTEM_DENIAL`](crate::event::EventKind::SYSTEM_DENIAL) event's id, sequence,
/// place and payload hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DenialReceipt {
    /// Id of the denial event.
    pub event_id: u128,
    /// Its global sequence.
    pub sequence: u64,
    /// Where its frame is.
    pub disk_pos: DiskPos,
    /// blake3 of the denial payload bytes.
    pub content_hash: [u8; 32],
    /// The Ed25519 public key that signed this receipt; all zeros when the store has no
    /// signing key.
    pub key_id: [u8; 32],
    /// Ed25519 signature over the denial event, signed as a denial (never valid as an
    /// append's; the `signing` module describes the signed bytes); `None` unsigned. Check it with
    /// `Store::verify_denial_receipt`.
    #[serde(with = "signature_bytes")]
    pub signature: Option<[u8; 64]>,
}

impl From<&AppendReceipt> for DenialReceipt {
    fn from(r: &AppendReceipt) -> Self {
        Self {
            event_id: r.event_id,
            sequence: r.sequence,
            disk_pos: r.disk_pos,
            content_hash: r.content_hash,
            key_id: r.key_id,
            signature: r.signature,
        }
    }
}

/// The denial event's sequence (wall time 0; the waits read only the sequence).
impl From<&DenialReceipt> for HlcPoint {
    fn from(r: &DenialReceipt) -> Self {
        Self {
            wall_ms: 0,
            global_sequence: r.sequence,
        }
    }
}

/// Where a record's frame sits on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiskPos {
    /// Segment id.
    pub segment_id: u64,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// Frame length in bytes (header + body).
    pub length: u32,
}
