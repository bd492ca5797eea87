//! The store's trust settings: receipt signing (`with_signing_key`, `verify_append_receipt`;
//! the signed bytes are described in `crate::signing`) and the payload-registry check at open
//! (`with_event_payload_validation`).

use super::{Store, StoreConfig};
use crate::append::{AppendReceipt, DenialReceipt};
use crate::payload_registry::EventPayloadValidation;
use crate::signing::{Signed, SigningKey};

impl StoreConfig {
    /// Signs every receipt with `key` (Ed25519): receipts carry `key_id` (the public key) and
    /// a `signature` over the event's sequence, ids, clock, payload hash and full header hash
    /// (the cover is described in the `batpak::signing` docs). Off by default; costs one
    /// signature (tens of microseconds) per event on the writer thread.
    ///
    /// ```
    /// use batpak::prelude::*;
    /// use batpak::store::SigningKey;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(StoreConfig::new(dir.path()).with_signing_key(SigningKey::from_bytes([7; 32])))?;
    /// let coord = Coordinate::new("settings:1", "config")?;
    /// let receipt = store.append(&coord, EventKind::custom(6, 1), &"30 days")?;
    /// assert!(store.verify_append_receipt(&receipt));
    /// # Ok(()) }
    /// ```
    pub fn with_signing_key(mut self, key: SigningKey) -> Self {
        self.signing_keys.push(key);
        self
    }

    /// What `Store::open` does when two linked `#[derive(EventPayload)]` types claim one kind
    /// (default [`EventPayloadValidation::Warn`]: one warning per process; `FailFast` refuses to
    /// open with `StoreError::EventPayloadRegistry`; `Silent` does not look).
    pub fn with_event_payload_validation(mut self, validation: EventPayloadValidation) -> Self {
        self.event_payload_validation = validation;
        self
    }
}

impl<S> Store<S> {
    /// Whether `receipt` was signed by this store's key for an event this store holds, exactly
    /// as written: the signature checks against this store's [`SigningKey`], and the event with
    /// the receipt's id is visible here at the receipt's sequence, with the receipt's clock and
    /// payload hash and the header and payload that were signed. `false` when the store has no
    /// key, the receipt is unsigned, the event is a recorded gate denial (its receipt is signed
    /// as a denial, never as an append), or any of that does not hold (see the
    /// `batpak::signing` docs for what is covered).
    pub fn verify_append_receipt(&self, receipt: &AppendReceipt) -> bool {
        self.verify_signed(
            Signed::Append,
            receipt.event_id,
            receipt.sequence,
            Some(receipt.clock),
            &receipt.content_hash,
            &receipt.key_id,
            receipt.signature.as_ref(),
        )
    }

    /// Whether `receipt` (from `append_denial`) was signed by this store's key for the gate
    /// denial this store holds with that id, at that sequence, with that payload hash, header
    /// and payload as written. `false` when the store has no key, the receipt is unsigned, the
    /// event is not a recorded denial (an append's receipt never passes as a denial's), or any
    /// of that does not hold.
    pub fn verify_denial_receipt(&self, receipt: &DenialReceipt) -> bool {
        self.verify_signed(
            Signed::Denial,
            receipt.event_id,
            receipt.sequence,
            None,
            &receipt.content_hash,
            &receipt.key_id,
            receipt.signature.as_ref(),
        )
    }

    /// Checks a receipt's signed fields against the event this store holds with that id.
    /// `clock: None` (a receipt without a clock field, such as a denial's) takes the stored
    /// event's clock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn verify_signed(
        &self,
        what: Signed,
        event_id: u128,
        sequence: u64,
        clock: Option<u32>,
        content_hash: &[u8; 32],
        key_id: &[u8; 32],
        signature: Option<&[u8; 64]>,
    ) -> bool {
        let Some(entry) = self.entry(event_id) else {
            return false;
        };
        if entry.global_sequence != sequence || Signed::for_kind(entry.kind) != what {
            return false;
        }
        // Every configured key verifies (a rotated-out key's receipts stay valid); the
        // receipt's key id picks the one that can match.
        self.cfg.signing_keys.iter().any(|key| {
            key.verifies(
                what,
                key_id,
                signature,
                event_id,
                sequence,
                clock.unwrap_or(entry.clock),
                content_hash,
                &entry.hash_chain.event_hash,
            )
        })
    }
}
