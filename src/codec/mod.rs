//! Frame encoding: `[len: u32 LE][head check: u32 LE][crc32: u32 LE][body: len bytes]`.
//!
//! Both checks are CRC32 (crc32fast, IEEE) seeded with the segment's *salt*, a random value
//! stored in the segment header: the head check covers salt and length, the CRC covers salt,
//! length and body. The salt makes bytes that were never written as a frame of this segment
//! (a frame-shaped piece of a payload, a frame of another segment) fail the checks; the head
//! check lets recovery trust a damaged frame's length, so it never looks for records inside a
//! frame's own extent (see `log::recover`). The body is a [`Record`] serialised with bincode 1
//! under one fixed configuration
//! (little endian, varint integers, trailing bytes rejected, size limit = the maximum frame
//! size). This is the only module that names bincode. The decoder never panics and never
//! allocates more than the maximum frame size: the length is checked against the limit before
//! anything is read, and records borrow their strings and payload from the input.
//! See `spec/FORMAT.md` for the byte layout.

mod fast;
mod record;

use bincode::Options;
pub use record::{
    CheckpointPosition, CheckpointRecord, EventRecord, FactRecord, Record, RecordBody,
    RegionRecord, Unit,
};
use std::fmt;

/// Bytes of frame header before the body: length (4) + head check (4) + CRC (4).
pub const FRAME_HEADER_BYTES: usize = 12;

/// Smallest body any record can have (sequence varint + tag + one field byte).
pub const FRAME_BODY_MIN_BYTES: usize = 3;

/// Default maximum frame size (body bytes): 16 MiB.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 16 * 1024 * 1024;

/// The largest frame body any configuration may produce (and any segment header may declare):
/// the largest payload limit (64 MiB) plus room for the header fields and coordinates.
pub const FRAME_BYTES_LIMIT: u32 = 64 * 1024 * 1024 + 4096;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the frame needs: the header (`needed` = 12) or the body.
    Incomplete {
        /// Bytes the frame needs in all.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The head check does not match the length (and salt): the length cannot be trusted.
    BadHead {
        /// Head check stored in the frame.
        stored: u32,
        /// Head check computed over salt and length.
        computed: u32,
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
            Self::BadHead { stored, computed } => write!(
                f,
                "frame head check mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
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

/// The two checks of a frame: (head check over salt and length, CRC over salt, length and
/// body).
fn checks(salt: u32, len_bytes: [u8; 4], body: &[u8]) -> (u32, u32) {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(&len_bytes);
    let head = h.clone().finalize();
    h.update(body);
    (head, h.finalize())
}

fn head_check(salt: u32, len_bytes: [u8; 4]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(&len_bytes);
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

/// bincode's varint length of `n`: one byte below 251, else a tag byte and the narrowest of
/// u16, u32, u64, u128 that holds it.
fn varint_len(n: u128) -> u64 {
    if n < 251 {
        1
    } else if n <= u128::from(u16::MAX) {
        3
    } else if n <= u128::from(u32::MAX) {
        5
    } else if n <= u128::from(u64::MAX) {
        9
    } else {
        17
    }
}

/// An `Option<u128>`: a tag byte, then the value.
fn option_len(o: Option<u128>) -> u64 {
    1 + o.map_or(0, varint_len)
}

/// A string or byte slice: its length as a varint, then the bytes.
fn slice_len(len: usize) -> u64 {
    varint_len(len as u128) + len as u64
}

/// [`body_len`] of an event record at sequence `seq`, computed field by field in declaration
/// order (variant indices and unsigned integers as varints, `i64` zigzagged, `u8` as one
/// byte, the hash as 32 bytes) instead of walking the record through serde.
fn event_body_len(seq: u64, e: &EventRecord<'_>) -> u64 {
    let unit = match e.unit {
        Unit::None => 1,
        Unit::Batch(b) | Unit::Fence(b) => 1 + varint_len(b.into()),
        Unit::FencedBatch { fence, batch } => {
            1 + varint_len(fence.into()) + varint_len(batch.into())
        }
    };
    let zigzag = ((e.timestamp_us << 1) ^ (e.timestamp_us >> 63)) as u64;
    varint_len(seq.into())
        + 1 // RecordBody::Event
        + unit
        + varint_len(e.event_id)
        + option_len(e.correlation_id)
        + option_len(e.causation_id)
        + varint_len(zigzag.into())
        + varint_len(e.clock.into())
        + varint_len(e.kind.into())
        + 1 // flags
        + e.prev_hash.len() as u64
        + option_len(e.idempotency_key)
        + slice_len(e.entity.len())
        + slice_len(e.scope.len())
        + slice_len(e.payload.len())
}

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

/// Appends the frame for `record`, salted with `salt`, to `out`; returns the frame's length in
/// bytes. On error `out` is left as it was.
pub fn encode_into(
    record: &Record<'_>,
    max: u32,
    salt: u32,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    fast::encode_body(record, out);
    if out.len() - start - FRAME_HEADER_BYTES > max as usize {
        out.truncate(start);
        return Err(EncodeError::TooLarge {
            len: u64::from(max) + 1,
            max,
        });
    }
    seal(out, start, max, salt)
}

/// [`encode_into`] through serde and bincode: the reference the direct body encoder is
/// checked against byte for byte. Only tests and the fuzz harnesses call it.
pub fn encode_reference(
    record: &Record<'_>,
    max: u32,
    salt: u32,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
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
    seal(out, start, max, salt)
}

/// Writes the length and checks of the frame that starts at `out[start]` (its body written).
fn seal(out: &mut Vec<u8>, start: usize, max: u32, salt: u32) -> Result<usize, EncodeError> {
    let body_len = out.len() - start - FRAME_HEADER_BYTES;
    let Ok(len) = u32::try_from(body_len) else {
        out.truncate(start);
        return Err(EncodeError::TooLarge {
            len: body_len as u64,
            max,
        });
    };
    if let Some(f) = out.get_mut(start..) {
        if let Some(l) = f.get_mut(..4) {
            l.copy_from_slice(&len.to_le_bytes());
        }
        reseal(f, salt);
    }
    Ok(out.len() - start)
}

/// Rewrites the checks of the complete frame `frame` (header and body) for `salt`: the same
/// record salted for another segment (the writer's frame that moves to a new segment at a
/// roll).
pub fn reseal(frame: &mut [u8], salt: u32) {
    let Some((head, body)) = frame.split_at_mut_checked(FRAME_HEADER_BYTES) else {
        return;
    };
    let len_bytes = [head[0], head[1], head[2], head[3]];
    let (h, c) = checks(salt, len_bytes, body);
    head[4..8].copy_from_slice(&h.to_le_bytes());
    head[8..12].copy_from_slice(&c.to_le_bytes());
}

/// Encodes one record as a new frame.
pub fn encode(record: &Record<'_>, max: u32, salt: u32) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(record, max, salt, &mut out)?;
    Ok(out)
}

/// Reads only the frame header at the start of `buf`: returns the body length once the head
/// check (under `salt`) confirms it and it is within `3..=max`. Lets a reader know how many
/// bytes to fetch before fetching them, and recovery whether a damaged frame's extent is
/// known.
pub fn peek_len(buf: &[u8], max: u32, salt: u32) -> Result<u32, DecodeError> {
    #[allow(clippy::indexing_slicing)]
    let header = if crate::mutant::thread_has(crate::mutant::Mutant::DecodeReadsPastEnd) {
        Some(&buf[..FRAME_HEADER_BYTES])
    } else {
        buf.get(..FRAME_HEADER_BYTES)
    };
    let Some(h) = header else {
        return Err(DecodeError::Incomplete {
            needed: FRAME_HEADER_BYTES as u64,
            available: buf.len() as u64,
        });
    };
    let len_bytes = [h[0], h[1], h[2], h[3]];
    let stored = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let computed = head_check(salt, len_bytes);
    if stored != computed {
        return Err(DecodeError::BadHead { stored, computed });
    }
    let len = u32::from_le_bytes(len_bytes);
    if len > max || (len as usize) < FRAME_BODY_MIN_BYTES {
        return Err(DecodeError::BadLength { len, max });
    }
    Ok(len)
}

/// Decodes the frame at the start of `buf`, salted with `salt`: returns the record (borrowing
/// from `buf`) and the frame's total length.
pub fn decode(buf: &[u8], max: u32, salt: u32) -> Result<(Record<'_>, usize), DecodeError> {
    let len = peek_len(buf, max, salt)?;
    let total = FRAME_HEADER_BYTES + len as usize;
    let Some(body) = buf.get(FRAME_HEADER_BYTES..total) else {
        return Err(DecodeError::Incomplete {
            needed: total as u64,
            available: buf.len() as u64,
        });
    };
    let stored = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let (_, computed) = checks(salt, len.to_le_bytes(), body);
    if stored != computed {
        return Err(DecodeError::BadCrc { stored, computed });
    }
    let record = fast::decode_body(body).map_err(|e| DecodeError::BadBody(e.to_string()))?;
    Ok((record, total))
}

/// The record of a frame body whose checks already passed (the frame at `FRAME_HEADER_BYTES`
/// and on): what [`decode`] returns for the whole frame.
pub fn decode_body(body: &[u8]) -> Result<Record<'_>, DecodeError> {
    fast::decode_body(body).map_err(|e| DecodeError::BadBody(e.to_string()))
}

/// [`decode`] through serde and bincode: the reference the direct body decoder is checked
/// against (same headers, checks and accepted bodies; its `BadBody` texts are bincode's).
/// Only tests and the fuzz harnesses call it.
pub fn decode_reference(
    buf: &[u8],
    max: u32,
    salt: u32,
) -> Result<(Record<'_>, usize), DecodeError> {
    let len = peek_len(buf, max, salt)?;
    let total = FRAME_HEADER_BYTES + len as usize;
    let Some(body) = buf.get(FRAME_HEADER_BYTES..total) else {
        return Err(DecodeError::Incomplete {
            needed: total as u64,
            available: buf.len() as u64,
        });
    };
    let stored = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let (_, computed) = checks(salt, len.to_le_bytes(), body);
    if stored != computed {
        return Err(DecodeError::BadCrc { stored, computed });
    }
    let record: Record<'_> = options(max)
        .deserialize(body)
        .map_err(|e| DecodeError::BadBody(e.to_string()))?;
    // One encoding per record: bincode's varint reader also accepts over-long forms (a value
    // below 251 behind a u16 tag, ...), which would re-encode to other bytes. Every over-long
    // form is longer than the canonical one, so comparing sizes catches them all. Events (the
    // records every read decodes) are sized field by field; the rest through serde.
    let canonical = match &record.body {
        RecordBody::Event(e) => event_body_len(record.seq, e),
        _ => body_len(&record, max).map_err(|e| DecodeError::BadBody(e.to_string()))?,
    };
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
    use super::{
        CheckpointPosition, CheckpointRecord, EventRecord, RecordBody, RegionRecord, Unit,
    };
    use crate::region::Region;
    use proptest::prelude::*;

    const SALT: u32 = 0x5A17_5A17;

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
        let frame = encode(&r, FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
        let (back, used) = decode(&frame, FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(back, r);
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_bit_flip_is_caught() {
        let payload = vec![5u8; 20];
        let frame = encode(&event(1, &payload), FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
        for cut in 0..frame.len() {
            assert!(
                decode(&frame[..cut], FRAME_BYTES_MAX_DEFAULT, SALT).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..frame.len() * 8 {
            let mut f = frame.clone();
            f[i / 8] ^= 1 << (i % 8);
            assert!(
                decode(&f, FRAME_BYTES_MAX_DEFAULT, SALT).is_err(),
                "flip {i}"
            );
        }
    }

    /// A frame header for `len` under `salt` (valid head check), with a zero CRC.
    fn header(len: u32, salt: u32) -> Vec<u8> {
        let mut f = len.to_le_bytes().to_vec();
        f.extend_from_slice(&head_check(salt, len.to_le_bytes()).to_le_bytes());
        f.extend_from_slice(&[0; 4]);
        f
    }

    #[test]
    fn length_above_maximum_is_refused_before_reading() {
        assert_eq!(
            decode(&header(1000, SALT), 999, SALT),
            Err(DecodeError::BadLength {
                len: 1000,
                max: 999
            })
        );
    }

    #[test]
    fn a_frame_checks_out_only_under_its_own_salt_and_reseal_moves_it() {
        let payload = vec![9u8; 40];
        let mut frame = encode(&event(3, &payload), FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
        for other in [0, SALT ^ 1, !SALT] {
            assert!(matches!(
                decode(&frame, FRAME_BYTES_MAX_DEFAULT, other),
                Err(DecodeError::BadHead { .. })
            ));
            assert!(peek_len(&frame, FRAME_BYTES_MAX_DEFAULT, other).is_err());
        }
        // The head check alone vouches for the length: a damaged body keeps a trusted extent.
        let body_len = (frame.len() - FRAME_HEADER_BYTES) as u32;
        let mut damaged = frame.clone();
        *damaged.last_mut().unwrap() ^= 0x40;
        assert_eq!(
            peek_len(&damaged, FRAME_BYTES_MAX_DEFAULT, SALT),
            Ok(body_len)
        );
        assert!(matches!(
            decode(&damaged, FRAME_BYTES_MAX_DEFAULT, SALT),
            Err(DecodeError::BadCrc { .. })
        ));
        reseal(&mut frame, 77);
        assert!(decode(&frame, FRAME_BYTES_MAX_DEFAULT, SALT).is_err());
        assert_eq!(
            decode(&frame, FRAME_BYTES_MAX_DEFAULT, 77).unwrap().0,
            event(3, &payload)
        );
    }

    #[test]
    fn encoding_past_the_maximum_is_refused_and_leaves_buffer_alone() {
        let payload = vec![0u8; 500];
        let mut out = vec![1, 2, 3];
        assert!(matches!(
            encode_into(&event(1, &payload), 100, SALT, &mut out),
            Err(EncodeError::TooLarge { .. })
        ));
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn over_long_varint_is_refused_even_with_a_valid_crc() {
        // FenceCommit { fence: 64764 } with the fence behind a u32 tag (252) instead of the
        // canonical u16 tag (251); found by the frame_decode fuzz target.
        let body = [3u8, 3, 252, 252, 252, 0, 0];
        let mut frame = header(body.len() as u32, SALT);
        frame.extend_from_slice(&body);
        reseal(&mut frame, SALT);
        assert!(matches!(
            decode(&frame, FRAME_BYTES_MAX_DEFAULT, SALT),
            Err(DecodeError::BadBody(_))
        ));
        let canonical = encode(
            &Record {
                seq: 3,
                body: RecordBody::FenceCommit { fence: 64764 },
            },
            FRAME_BYTES_MAX_DEFAULT,
            SALT,
        )
        .unwrap();
        assert_eq!(canonical.len(), FRAME_HEADER_BYTES + 5);
        assert!(decode(&canonical, FRAME_BYTES_MAX_DEFAULT, SALT).is_ok());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            (
                DecodeError::Incomplete {
                    needed: 12,
                    available: 3,
                }
                .to_string(),
                "incomplete frame: needs 12 bytes, 3 available",
            ),
            (
                DecodeError::BadHead {
                    stored: 1,
                    computed: 2,
                }
                .to_string(),
                "frame head check mismatch: stored 0x00000001, computed 0x00000002",
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

    /// `bytes` as the body of a frame with valid checks under [`SALT`].
    fn forged(body: &[u8]) -> Vec<u8> {
        let mut f = header(body.len() as u32, SALT);
        f.extend_from_slice(body);
        reseal(&mut f, SALT);
        f
    }

    /// The direct decoder and the serde reference agree on `frame`: the same record and
    /// length, or both refuse it for the same reason (body errors only by kind: the texts
    /// differ).
    fn agree(frame: &[u8], max: u32) {
        let fast = decode(frame, max, SALT);
        let reference = decode_reference(frame, max, SALT);
        match (&fast, &reference) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(DecodeError::BadBody(_)), Err(DecodeError::BadBody(_))) => {}
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("decoders disagree on {frame:02x?}: {fast:?} vs {reference:?}"),
        }
    }

    /// One valid body of every record shape.
    fn every_shape() -> Vec<Vec<u8>> {
        let payload = [7u8; 300];
        let region = Region {
            entity_prefix: Some("acct".into()),
            scope: None,
            fact: crate::region::KindFilter::Exact(crate::event::EventKind::from_raw(0x1234)),
            clock_range: Some((3, 70_000)),
        };
        let mut records = vec![
            event(0, &[]),
            event(u64::MAX, &payload),
            Record {
                seq: 251,
                body: RecordBody::BatchCommit {
                    batch: 65_536,
                    count: u32::MAX,
                },
            },
            Record {
                seq: 1 << 40,
                body: RecordBody::FenceBegin { fence: 250 },
            },
            Record {
                seq: 2,
                body: RecordBody::FenceCancel { fence: 1 << 33 },
            },
            Record {
                seq: 7,
                body: RecordBody::Dropped { to: 1 << 35 },
            },
            Record {
                seq: 7,
                body: RecordBody::Dropped { to: 7 },
            },
        ];
        for (unit, position) in [
            (Unit::None, CheckpointPosition::Start),
            (Unit::Batch(9), CheckpointPosition::After(1 << 20)),
            (
                Unit::FencedBatch { fence: 1, batch: 2 },
                CheckpointPosition::Deleted,
            ),
        ] {
            records.push(Record {
                seq: 5,
                body: RecordBody::Checkpoint(CheckpointRecord {
                    unit,
                    id: "consumer-1",
                    region: RegionRecord::of(&region),
                    position,
                }),
            });
        }
        let mut e = event(3, b"x");
        if let RecordBody::Event(ev) = &mut e.body {
            ev.unit = Unit::Fence(300);
            ev.correlation_id = Some(u128::MAX);
            ev.causation_id = None;
            ev.timestamp_us = -5;
            ev.kind = u16::MAX;
            ev.idempotency_key = Some(1 << 70);
            ev.entity = "é:1";
        }
        records.push(e);
        records
            .iter()
            .map(|r| {
                let f = encode(r, FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
                f[FRAME_HEADER_BYTES..].to_vec()
            })
            .collect()
    }

    #[test]
    fn the_direct_decoder_reads_every_record_shape_as_the_reference_does() {
        for body in every_shape() {
            let frame = forged(&body);
            let (a, _) = decode(&frame, FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
            let (b, _) = decode_reference(&frame, FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
            assert_eq!(a, b);
            // Every single-byte change and every truncation of the body, checks forged so the
            // body decoders see it.
            for i in 0..body.len() {
                for v in [0u8, 1, 2, 6, 0x7F, 0x80, 250, 251, 252, 253, 254, 255] {
                    let mut b = body.clone();
                    b[i] = v;
                    agree(&forged(&b), FRAME_BYTES_MAX_DEFAULT);
                }
                agree(&forged(&body[..i]), FRAME_BYTES_MAX_DEFAULT);
            }
            let mut longer = body.clone();
            longer.push(0);
            agree(&forged(&longer), FRAME_BYTES_MAX_DEFAULT);
        }
    }

    #[test]
    fn the_direct_encoder_writes_the_references_bytes() {
        for body in every_shape() {
            let frame = forged(&body);
            let (record, _) = decode_reference(&frame, FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
            for max in [
                FRAME_BYTES_MAX_DEFAULT,
                body.len() as u32,
                body.len() as u32 - 1,
            ] {
                let (mut a, mut b) = (vec![1u8], vec![1u8]);
                let fast = encode_into(&record, max, SALT, &mut a);
                let reference = encode_reference(&record, max, SALT, &mut b);
                assert_eq!(fast, reference);
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn the_direct_decoder_refuses_what_the_reference_refuses() {
        // An over-long varint (seq 3 behind a u16 tag), an option tag of 2 (an event's
        // correlation id), unknown record tags, a trailing byte.
        let cases: [&[u8]; 5] = [
            &[251, 3, 0, 3, 1],
            &[0, 0, 0, 5, 2],
            &[3, 9, 0],
            &[3, 7, 0],
            &[3, 3, 1, 0],
        ];
        for body in cases {
            let frame = forged(body);
            assert!(matches!(
                decode(&frame, FRAME_BYTES_MAX_DEFAULT, SALT),
                Err(DecodeError::BadBody(_))
            ));
            agree(&frame, FRAME_BYTES_MAX_DEFAULT);
        }
        let mut bad_utf8 = every_shape()[0].clone();
        // The body ends with the scope "shop" and the empty payload's length: "p" goes.
        let at = bad_utf8.len() - 2;
        bad_utf8[at] = 0xFF;
        assert!(matches!(
            decode(&forged(&bad_utf8), FRAME_BYTES_MAX_DEFAULT, SALT),
            Err(DecodeError::BadBody(_))
        ));
        agree(&forged(&bad_utf8), FRAME_BYTES_MAX_DEFAULT);
    }

    proptest! {
        #[test]
        fn the_direct_decoder_agrees_with_the_reference_on_arbitrary_bodies(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            shape in 0usize..11,
            splice in proptest::collection::vec(any::<u8>(), 0..8),
            at in any::<usize>(),
        ) {
            agree(&forged(&body), FRAME_BYTES_MAX_DEFAULT);
            // A valid body with some bytes replaced: reaches the later fields.
            let mut b = every_shape()[shape % every_shape().len()].clone();
            let at = at % b.len().max(1);
            for (k, v) in splice.iter().enumerate() {
                if let Some(x) = b.get_mut(at + k) {
                    *x = *v;
                }
            }
            agree(&forged(&b), FRAME_BYTES_MAX_DEFAULT);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0u32..1024) {
            let _ = decode(&bytes, max, SALT);
        }

        /// The decoder's field-by-field size of an event equals bincode's (`body_len`), over
        /// every field's varint widths, options, units, strings and payload lengths.
        #[test]
        fn event_body_len_equals_bincodes_size(
            seq in any::<u64>(),
            unit_sel in 0u8..4,
            a in any::<u64>(),
            b in any::<u64>(),
            ids in proptest::collection::vec(any::<u128>(), 4),
            some in proptest::collection::vec(any::<bool>(), 3),
            shift in 0u32..128,
            timestamp_us in any::<i64>(),
            clock in any::<u32>(),
            kind in any::<u16>(),
            flags in any::<u8>(),
            entity in ".{0,300}",
            scope in ".{0,20}",
            payload in proptest::collection::vec(any::<u8>(), 0..70_000),
        ) {
            let unit = match unit_sel {
                0 => Unit::None,
                1 => Unit::Batch(a),
                2 => Unit::Fence(a),
                _ => Unit::FencedBatch { fence: a, batch: b },
            };
            // Small values too, so every varint width is hit.
            let small = |x: u128| x >> shift;
            let e = EventRecord {
                unit,
                event_id: small(ids[0]),
                correlation_id: some[0].then_some(small(ids[1])),
                causation_id: some[1].then_some(ids[2]),
                timestamp_us: timestamp_us >> (shift % 64),
                clock: clock >> (shift % 32),
                kind: kind >> (shift % 16),
                flags,
                prev_hash: [7; 32],
                idempotency_key: some[2].then_some(small(ids[3])),
                entity: &entity,
                scope: &scope,
                payload: &payload,
            };
            let r = Record { seq: seq >> (shift % 64), body: RecordBody::Event(e.clone()) };
            prop_assert_eq!(event_body_len(r.seq, &e), body_len(&r, u32::MAX).unwrap());
        }

        #[test]
        fn round_trip_any_payload(seq in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let r = event(seq, &payload);
            let frame = encode(&r, FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
            let mut reference = Vec::new();
            encode_reference(&r, FRAME_BYTES_MAX_DEFAULT, SALT, &mut reference).unwrap();
            prop_assert_eq!(&frame, &reference);
            let (back, used) = decode(&frame, FRAME_BYTES_MAX_DEFAULT, SALT).unwrap();
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(back, r);
        }
    }
}
