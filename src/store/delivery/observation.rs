//! Exactly-once witnesses (upstream's `store::delivery::observation` shapes): a handler that
//! received an [`AtLeastOnce`] proof and deduplicates by its own idempotency key can say so
//! in a type, [`ObservedOnce`].
//!
//! These are value types: the store neither issues nor checks them. They name the usual
//! composition "at-least-once delivery + idempotent effect = exactly-once effect". Inside the
//! store, [`Consumer::commit_with`](super::Consumer::commit_with) gives exactly-once without
//! them (outputs and checkpoint in one atomic unit).

use super::worker::AtLeastOnce;

/// A consumer-side idempotency key: 32 bytes the handler derives for an effect (for example
/// a blake3 of the source event id and the effect's index), so a redelivered batch can be
/// recognised. Not the store's `u128` append idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey([u8; 32]);

impl IdempotencyKey {
    /// A key from its 32 bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// An exactly-once witness: an at-least-once delivery proof paired with the idempotency key
/// the handler deduplicates by. It can only be taken apart with [`ObservedOnce::into_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "ObservedOnce must be consumed via into_parts() to retain the exactly-once witness"]
pub struct ObservedOnce {
    at_least_once: AtLeastOnce,
    idempotency_key: IdempotencyKey,
}

impl ObservedOnce {
    /// The witness from its two proofs.
    pub fn new(at_least_once: AtLeastOnce, idempotency_key: IdempotencyKey) -> Self {
        Self {
            at_least_once,
            idempotency_key,
        }
    }

    /// The delivery proof.
    pub fn at_least_once(&self) -> &AtLeastOnce {
        &self.at_least_once
    }

    /// The handler's idempotency key.
    pub fn idempotency_key(&self) -> &IdempotencyKey {
        &self.idempotency_key
    }

    /// The two proofs.
    #[must_use]
    pub fn into_parts(self) -> (AtLeastOnce, IdempotencyKey) {
        (self.at_least_once, self.idempotency_key)
    }
}
