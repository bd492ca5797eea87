//! Signed receipts: [`SigningKey`] and the bytes it signs. The store takes the key through
//! `StoreConfig::with_signing_key`, the writer signs each receipt as it writes the event, and
//! `Store::verify_append_receipt` checks one.
//!
//! # What a signature covers
//!
//! With a key configured, the writer signs every receipt it issues with Ed25519 (RFC 8032,
//! `ed25519-dalek`). The signed message, the *cover*, is 145 bytes:
//!
//! | bytes | field |
//! |---|---|
//! | 20 | the tag `batpak/receipt/v1` padded with zeros (domain separation) |
//! | 1 | what was written: 1 = an append (every `AppendReceipt`), 2 = a gate denial |
//! | 32 | `key_id`: the Ed25519 public key |
//! | 16 | `event_id`, little endian |
//! | 8 | `sequence`, little endian |
//! | 4 | `clock` (the entity clock the event took), little endian |
//! | 32 | `content_hash` (blake3 of the payload) |
//! | 32 | the event's hash: blake3 over its whole header (ids, causation, correlation, timestamp, clock, kind, flags, previous hash of the entity chain, coordinate) and payload, the `event_hash` of its [`HashChain`](crate::event::HashChain) |
//!
//! So a verified receipt vouches for the exact event at that sequence, header and payload.
//! `disk_pos` and `durable` are not signed: they say where and how far the frame had got when
//! the receipt was issued, not what was written.
//!
//! Verification (`Store::verify_append_receipt`) rebuilds the cover from the receipt's
//! fields and the event's hash *as stored in this store* (the event must be visible here), and
//! checks the signature against this store's key. A receipt whose signed fields were changed,
//! one signed by another key, an unsigned one, and one for an event this store does not hold
//! at that sequence all fail.

use crate::append::AppendReceipt;
use ed25519_dalek::Signer;
use std::fmt;

/// The domain tag at the start of every cover.
const COVER_TAG: &[u8] = b"batpak/receipt/v1";
/// Bytes in a cover (see the module docs).
pub(crate) const COVER_BYTES: usize = 20 + 1 + 32 + 16 + 8 + 4 + 32 + 32;

/// What a signed receipt is for (the cover's second field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Signed {
    /// An event appended by a caller.
    Append = 1,
    /// A gate denial the store recorded (`EventKind::SYSTEM_DENIAL`): its receipt can never
    /// pass as an append's.
    Denial = 2,
}

impl Signed {
    /// What an event of `kind` is signed as.
    pub(crate) fn for_kind(kind: crate::event::EventKind) -> Self {
        if kind == crate::event::EventKind::SYSTEM_DENIAL {
            Signed::Denial
        } else {
            Signed::Append
        }
    }
}

/// An Ed25519 key the store signs its receipts with
/// (`StoreConfig::with_signing_key`).
///
/// The secret never appears in `Debug` output or logs (only the public [`key_id`](Self::key_id)
/// does), and it is wiped from memory when the last copy is dropped.
///
/// ```
/// use batpak::store::SigningKey;
/// let key = SigningKey::from_bytes([7; 32]);
/// assert!(!format!("{key:?}").contains("07, 07"));
/// assert_eq!(key.key_id().len(), 32);
/// ```
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// The key for a 32-byte Ed25519 secret (seed). Keep it in a secret store; anyone
    /// holding it can sign receipts as this store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&bytes),
        }
    }

    /// The public key (what receipts carry as `key_id`).
    pub fn key_id(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `receipt` for the event whose hash is `event_hash`.
    pub(crate) fn sign(&self, what: Signed, receipt: &mut AppendReceipt, event_hash: &[u8; 32]) {
        let key_id = self.key_id();
        let msg = cover(
            what,
            &key_id,
            receipt.event_id,
            receipt.sequence,
            receipt.clock,
            &receipt.content_hash,
            event_hash,
        );
        receipt.key_id = key_id;
        receipt.signature = Some(self.key.sign(&msg).to_bytes());
    }

    /// Whether `signature` by `key_id` covers these fields under this key.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn verifies(
        &self,
        what: Signed,
        key_id: &[u8; 32],
        signature: Option<&[u8; 64]>,
        event_id: u128,
        sequence: u64,
        clock: u32,
        content_hash: &[u8; 32],
        event_hash: &[u8; 32],
    ) -> bool {
        let Some(signature) = signature else {
            return false;
        };
        if *key_id != self.key_id() {
            return false;
        }
        let msg = cover(
            what,
            key_id,
            event_id,
            sequence,
            clock,
            content_hash,
            event_hash,
        );
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        // verify_strict refuses the malleable and small-order forms plain verify accepts.
        self.key
            .verifying_key()
            .verify_strict(&msg, &signature)
            .is_ok()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &Hex(&self.key_id()))
            .finish_non_exhaustive()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The signed message (layout in the module docs).
fn cover(
    what: Signed,
    key_id: &[u8; 32],
    event_id: u128,
    sequence: u64,
    clock: u32,
    content_hash: &[u8; 32],
    event_hash: &[u8; 32],
) -> [u8; COVER_BYTES] {
    let mut out = [0u8; COVER_BYTES];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(dst) = out.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    let mut tag = [0u8; 20];
    if let Some(dst) = tag.get_mut(..COVER_TAG.len()) {
        dst.copy_from_slice(COVER_TAG);
    }
    put(&tag);
    put(&[what as u8]);
    put(key_id);
    put(&event_id.to_le_bytes());
    put(&sequence.to_le_bytes());
    put(&clock.to_le_bytes());
    put(content_hash);
    put(event_hash);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cover_is_laid_out_as_documented() {
        let c = cover(
            Signed::Denial,
            &[1; 32],
            0x0203,
            0x0405,
            0x0607,
            &[8; 32],
            &[9; 32],
        );
        assert_eq!(&c[..17], b"batpak/receipt/v1");
        assert_eq!(&c[17..20], &[0, 0, 0]);
        assert_eq!(c[20], 2);
        assert_eq!(&c[21..53], &[1; 32]);
        assert_eq!(&c[53..69], &0x0203u128.to_le_bytes());
        assert_eq!(&c[69..77], &0x0405u64.to_le_bytes());
        assert_eq!(&c[77..81], &0x0607u32.to_le_bytes());
        assert_eq!(&c[81..113], &[8; 32]);
        assert_eq!(&c[113..], &[9; 32]);
        assert_eq!(c.len(), 145);
    }

    #[test]
    fn a_signature_verifies_only_under_its_domain_and_key() {
        let key = SigningKey::from_bytes([3; 32]);
        let mut r = AppendReceipt {
            event_id: 1,
            sequence: 2,
            disk_pos: crate::append::DiskPos {
                segment_id: 0,
                offset: 0,
                length: 0,
            },
            content_hash: [4; 32],
            clock: 5,
            durable: true,
            key_id: [0; 32],
            signature: None,
        };
        key.sign(Signed::Append, &mut r, &[6; 32]);
        let check = |what, k: &SigningKey, event_hash: &[u8; 32]| {
            k.verifies(
                what,
                &r.key_id,
                r.signature.as_ref(),
                r.event_id,
                r.sequence,
                r.clock,
                &r.content_hash,
                event_hash,
            )
        };
        assert!(check(Signed::Append, &key, &[6; 32]));
        assert!(!check(Signed::Denial, &key, &[6; 32]));
        assert!(!check(Signed::Append, &key, &[7; 32]));
        assert!(!check(
            Signed::Append,
            &SigningKey::from_bytes([4; 32]),
            &[6; 32]
        ));
    }
}
