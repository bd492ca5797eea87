//! What a replicated event looks like on the wire.
//!
//! One JetStream message per committed event:
//!
//! | part | content |
//! | --- | --- |
//! | subject | `<prefix>.<scope>.<entity>` ([`default_subject`]), each token [`escape`]d |
//! | `Nats-Msg-Id` | the event id, 32 lowercase hex digits (JetStream de-duplicates on it) |
//! | `Batpak-Sequence` | the global sequence in the source store, decimal |
//! | `Batpak-Kind` | the event kind, its raw 16 bits in decimal |
//! | `Batpak-Correlation` | the correlation id, 32 hex digits |
//! | `Batpak-Causation` | the causation id, 32 hex digits; absent for a root cause |
//! | `Batpak-Entity`, `Batpak-Scope` | the coordinate, [`escape`]d |
//! | `Batpak-Clock` | the entity clock, decimal |
//! | `Batpak-Wall-Ms` | the hybrid logical clock in milliseconds, decimal |
//! | `Batpak-Flags` | the caller's header flags, decimal; absent when 0 |
//! | `Batpak-Batch` | for an event of an atomic batch: the batch id (the global sequence of its first event), decimal; absent for an event written alone |
//! | `Batpak-Batch-End` | `1` on the batch's last event in the stream (its last one in the replicated region) |
//! | `Content-Type` | `application/msgpack` |
//! | body | the payload's MessagePack bytes as stored |

use batpak::prelude::Coordinate;

/// `Nats-Msg-Id`.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The source's global sequence.
pub const SEQUENCE: &str = "Batpak-Sequence";
/// The event kind (raw).
pub const KIND: &str = "Batpak-Kind";
/// The correlation id.
pub const CORRELATION: &str = "Batpak-Correlation";
/// The causation id.
pub const CAUSATION: &str = "Batpak-Causation";
/// The entity.
pub const ENTITY: &str = "Batpak-Entity";
/// The scope.
pub const SCOPE: &str = "Batpak-Scope";
/// The entity clock.
pub const CLOCK: &str = "Batpak-Clock";
/// The hybrid logical clock, milliseconds.
pub const WALL_MS: &str = "Batpak-Wall-Ms";
/// The caller's header flags (absent: 0).
pub const FLAGS: &str = "Batpak-Flags";
/// The atomic batch an event was written in, named by its first event's global sequence
/// (absent: the event was written alone). A batch's events are consecutive messages.
pub const BATCH: &str = "Batpak-Batch";
/// Marks the last message of a batch (its last event in the replicated region).
pub const BATCH_END: &str = "Batpak-Batch-End";

/// An id as 32 lowercase hex digits.
pub fn format_id(id: u128) -> String {
    format!("{id:032x}")
}

/// The inverse of [`format_id`].
pub fn parse_id(s: &str) -> Option<u128> {
    if s.len() != 32 {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// Percent-encodes every byte that a NATS subject token or a header value cannot carry as
/// is: `%`, `.`, `*`, `>`, and every byte that is not printable ASCII (space, non-ASCII).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'.' | b'*' | b'>') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`escape`] (`None`: not an escaped string).
pub fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `<prefix>.<scope>.<entity>`, scope and entity [`escape`]d (so each is one token).
pub fn default_subject(prefix: &str, coord: &Coordinate) -> String {
    format!(
        "{prefix}.{}.{}",
        escape(coord.scope()),
        escape(coord.entity())
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_one_token_and_round_trips() {
        for s in ["order-1", "a.b", "x y", "*>", "50%", "ünï", "a:b=c"] {
            let e = escape(s);
            assert!(!e.contains(['.', ' ', '*', '>']), "{e}");
            assert!(e.is_ascii());
            assert_eq!(unescape(&e).as_deref(), Some(s));
        }
        assert_eq!(unescape("%4"), None);
        assert_eq!(unescape("%zz"), None);
    }

    #[test]
    fn ids_round_trip() {
        for id in [0u128, 1, u128::MAX, 0x0190_abcd << 64] {
            assert_eq!(parse_id(&format_id(id)), Some(id));
        }
        assert_eq!(parse_id("12"), None);
    }

    #[test]
    fn subject_has_prefix_scope_entity() {
        let c = Coordinate::new("order.1", "shop").unwrap();
        assert_eq!(default_subject("p", &c), "p.shop.order%2E1");
    }
}
