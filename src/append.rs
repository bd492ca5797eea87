//! What an append says and what it answers: [`AppendOptions`], [`CausationRef`],
//! [`AppendReceipt`] and where a record sits on disk ([`DiskPos`]). Plain values shared by the
//! store, the writer, the index and the gate pipeline.

use serde::{Deserialize, Serialize};

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
    /// Sets the flags.
    pub const fn with_flags(mut self, flags: u8) -> Self {
        self.flags = flags;
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
    /// header+payload hash ([`crate::signing`] describes the signed bytes); `None` unsigned.
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
