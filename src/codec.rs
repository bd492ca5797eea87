//! Frame encoding: `[len: u32 LE][crc32: u32 LE][body: len bytes]`.
//!
//! The CRC (crc32fast, IEEE) covers the four length bytes and the body, so a lie in either is
//! caught. The body is a [`Record`] serialised with bincode 1 under one fixed configuration
//! (little endian, varint integers, trailing bytes rejected, size limit = the maximum frame
//! size). This is the only module that names bincode. The decoder never panics and never
//! allocates more than the maximum frame size: the length is checked against the limit before
//! anything is read, and records borrow their strings and payload from the input.
//! See `spec/FORMAT.md` for the byte layout.

use crate::log::record::Record;
use bincode::Options;
use std::fmt;

/// Bytes of frame header before the body: length (4) + CRC (4).
pub const FRAME_HEADER_BYTES: usize = 8;

/// Smallest body any record can have (sequence varint + tag + one field byte).
pub const FRAME_BODY_MIN_BYTES: usize = 3;

/// Default maximum frame size (body bytes): 16 MiB.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 16 * 1024 * 1024;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the frame needs: the header (`needed` = 8) or the body.
    Incomplete {
        /// Bytes the frame needs in all.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The length field is above the maximum frame size or below the smallest record.
    BadLength {
        /// The length field.
        len: u32,
        /// The maximum allowed.
        max: u32,
    },
    /// The CRC does not match.
    BadCrc {
        /// CRC stored in the frame.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// The CRC matched but the body is not a valid record.
    BadBody(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete { needed, available } => {
                write!(
                    f,
                    "incomplete frame: needs {needed} bytes, {available} available"
                )
            }
            Self::BadLength { len, max } => write!(
                f,
                "frame length {len} outside {FRAME_BODY_MIN_BYTES}..={max}"
            ),
            Self::BadCrc { stored, computed } => {
                write!(
                    f,
                    "frame CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            Self::BadBody(e) => write!(f, "frame body is not a valid record: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn options(limit: u32) -> impl Options {
    bincode::DefaultOptions::new()
        .with_little_endian()
        .with_varint_encoding()
        .reject_trailing_bytes()
        .with_limit(u64::from(limit))
}

fn crc(len_bytes: [u8; 4], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len_bytes);
    h.update(body);
    h.finalize()
}

/// Why a record could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The encoded body exceeds the maximum frame size.
    TooLarge {
        /// Body size.
        len: u64,
        /// The maximum.
        max: u32,
    },
    /// Serialisation failed.
    Serialize(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { len, max } => {
                write!(
                    f,
                    "record of {len} bytes exceeds the maximum frame size {max}"
                )
            }
            Self::Serialize(e) => write!(f, "record serialisation failed: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Size of the encoded body of `record` (without the frame header).
pub fn body_len(record: &Record<'_>, max: u32) -> Result<u64, EncodeError> {
    options(max).serialized_size(record).map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => EncodeError::TooLarge {
            len: u64::from(max) + 1,
            max,
        },
        other => EncodeError::Serialize(other.to_string()),
    })
}

/// Appends the frame for `record` to `out`; returns the frame's length in bytes.
/// On error `out` is left as it was.
pub fn encode_into(record: &Record<'_>, max: u32, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    if let Err(e) = options(max).serialize_into(&mut *out, record) {
        out.truncate(start);
        return Err(match *e {
            bincode::ErrorKind::SizeLimit => EncodeError::TooLarge {
                len: u64::from(max) + 1,
                max,
            },
            other => EncodeError::Serialize(other.to_string()),
        });
    }
    let body_len = out.len() - start - FRAME_HEADER_BYTES;
    let Ok(len) = u32::try_from(body_len) else {
        out.truncate(start);
        return Err(EncodeError::TooLarge {
            len: body_len as u64,
            max,
        });
    };
    let len_bytes = len.to_le_bytes();
    let sum = crc(
        len_bytes,
        out.get(start + FRAME_HEADER_BYTES..).unwrap_or(&[]),
    );
    if let Some(h) = out.get_mut(start..start + FRAME_HEADER_BYTES) {
        h[..4].copy_from_slice(&len_bytes);
        h[4..].copy_from_slice(&sum.to_le_bytes());
    }
    Ok(out.len() - start)
}

/// Encodes one record as a new frame.
pub fn encode(record: &Record<'_>, max: u32) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(record, max, &mut out)?;
    Ok(out)
}

/// Reads only the frame header at the start of `buf`: returns the body length after checking
/// it against `max`. Lets a reader know how many bytes to fetch before fetching them.
pub fn peek_len(buf: &[u8], max: u32) -> Result<u32, DecodeError> {
    let Some(h) = buf.get(..FRAME_HEADER_BYTES) else {
        return Err(DecodeError::Incomplete {
            needed: FRAME_HEADER_BYTES as u64,
            available: buf.len() as u64,
        });
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if len > max || (len as usize) < FRAME_BODY_MIN_BYTES {
        return Err(DecodeError::BadLength { len, max });
    }
    Ok(len)
}

/// Decodes the frame at the start of `buf`: returns the record (borrowing from `buf`) and the
/// frame's total length.
pub fn decode(buf: &[u8], max: u32) -> Result<(Record<'_>, usize), DecodeError> {
    let len = peek_len(buf, max)?;
    let total = FRAME_HEADER_BYTES + len as usize;
    let Some(body) = buf.get(FRAME_HEADER_BYTES..total) else {
        return Err(DecodeError::Incomplete {
            needed: total as u64,
            available: buf.len() as u64,
        });
    };
    let stored = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let computed = crc(len.to_le_bytes(), body);
    if stored != computed {
        return Err(DecodeError::BadCrc { stored, computed });
    }
    let record: Record<'_> = options(max)
        .deserialize(body)
        .map_err(|e| DecodeError::BadBody(e.to_string()))?;
    // One encoding per record: bincode's varint reader also accepts over-long forms (a value
    // below 251 behind a u16 tag, ...), which would re-encode to other bytes. Every over-long
    // form is longer than the canonical one, so comparing sizes catches them all.
    let canonical = body_len(&record, max).map_err(|e| DecodeError::BadBody(e.to_string()))?;
    if canonical != u64::from(len) {
        return Err(DecodeError::BadBody(format!(
            "non-canonical encoding: {len} body bytes for a record whose encoding has {canonical}"
        )));
    }
    Ok((record, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::{EventRecord, RecordBody, Unit};
    use proptest::prelude::*;

    fn event(seq: u64, payload: &[u8]) -> Record<'_> {
        Record {
            seq,
            body: RecordBody::Event(EventRecord {
                unit: Unit::None,
                event_id: (7u128 << 100) | u128::from(seq),
                correlation_id: None,
                causation_id: Some(3),
                timestamp_us: 1_700_000_000_000_000,
                clock: 1,
                kind: 0xF001,
                flags: 0,
                prev_hash: [9; 32],
                idempotency_key: None,
                entity: "order:1",
                scope: "shop",
                payload,
            }),
        }
    }

    #[test]
    fn round_trip() {
        let payload = vec![1u8; 100];
        let r = event(42, &payload);
        let frame = encode(&r, FRAME_BYTES_MAX_DEFAULT).unwrap();
        let (back, used) = decode(&frame, FRAME_BYTES_MAX_DEFAULT).unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(back, r);
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_bit_flip_is_caught() {
        let payload = vec![5u8; 20];
        let frame = encode(&event(1, &payload), FRAME_BYTES_MAX_DEFAULT).unwrap();
        for cut in 0..frame.len() {
            assert!(
                decode(&frame[..cut], FRAME_BYTES_MAX_DEFAULT).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..frame.len() * 8 {
            let mut f = frame.clone();
            f[i / 8] ^= 1 << (i % 8);
            assert!(decode(&f, FRAME_BYTES_MAX_DEFAULT).is_err(), "flip {i}");
        }
    }

    #[test]
    fn length_above_maximum_is_refused_before_reading() {
        let mut f = vec![0u8; 8];
        f[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            decode(&f, 999),
            Err(DecodeError::BadLength {
                len: 1000,
                max: 999
            })
        );
    }

    #[test]
    fn encoding_past_the_maximum_is_refused_and_leaves_buffer_alone() {
        let payload = vec![0u8; 500];
        let mut out = vec![1, 2, 3];
        assert!(matches!(
            encode_into(&event(1, &payload), 100, &mut out),
            Err(EncodeError::TooLarge { .. })
        ));
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn over_long_varint_is_refused_even_with_a_valid_crc() {
        // FenceCommit { fence: 64764 } with the fence behind a u32 tag (252) instead of the
        // canonical u16 tag (251); found by the frame_decode fuzz target.
        let body = [3u8, 3, 252, 252, 252, 0, 0];
        let len = (body.len() as u32).to_le_bytes();
        let mut frame = len.to_vec();
        frame.extend_from_slice(&crc(len, &body).to_le_bytes());
        frame.extend_from_slice(&body);
        assert!(matches!(
            decode(&frame, FRAME_BYTES_MAX_DEFAULT),
            Err(DecodeError::BadBody(_))
        ));
        let canonical = encode(
            &Record {
                seq: 3,
                body: RecordBody::FenceCommit { fence: 64764 },
            },
            FRAME_BYTES_MAX_DEFAULT,
        )
        .unwrap();
        assert_eq!(canonical.len(), 8 + 5);
        assert!(decode(&canonical, FRAME_BYTES_MAX_DEFAULT).is_ok());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            (
                DecodeError::Incomplete {
                    needed: 8,
                    available: 3,
                }
                .to_string(),
                "incomplete frame: needs 8 bytes, 3 available",
            ),
            (
                DecodeError::BadLength { len: 9, max: 4 }.to_string(),
                "frame length 9 outside 3..=4",
            ),
            (
                DecodeError::BadCrc {
                    stored: 1,
                    computed: 2,
                }
                .to_string(),
                "frame CRC mismatch: stored 0x00000001, computed 0x00000002",
            ),
            (
                DecodeError::BadBody("x".into()).to_string(),
                "frame body is not a valid record: x",
            ),
            (
                EncodeError::TooLarge { len: 10, max: 5 }.to_string(),
                "record of 10 bytes exceeds the maximum frame size 5",
            ),
            (
                EncodeError::Serialize("y".into()).to_string(),
                "record serialisation failed: y",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0u32..1024) {
            let _ = decode(&bytes, max);
        }

        #[test]
        fn round_trip_any_payload(seq in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let r = event(seq, &payload);
            let frame = encode(&r, FRAME_BYTES_MAX_DEFAULT).unwrap();
            let (back, used) = decode(&frame, FRAME_BYTES_MAX_DEFAULT).unwrap();
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(back, r);
        }
    }
}
