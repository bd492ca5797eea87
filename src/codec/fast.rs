//! A direct decoder of record bodies: reads the bytes bincode 1 writes under the codec's one
//! configuration (little endian, varint integers, trailing bytes rejected) without going
//! through serde, and accepts exactly the canonical encodings (every varint in its shortest
//! form, option tags 0 or 1, known enum tags, UTF-8 strings, no trailing byte).
//!
//! That is the set of bodies the reference path accepts (`bincode` deserialisation followed by
//! the canonical-size check, [`super::decode_reference`]): bincode accepts over-long varints,
//! and the size check refuses them all, since every over-long form is longer than the
//! canonical one and no field can be shorter than canonical. Both paths are run side by side
//! on arbitrary bytes by the codec's tests and by the `frame_decode` fuzz harness, which fails
//! on any disagreement.
//!
//! Why it exists: recovery decodes every record of the log, and the serde path costs two
//! passes (deserialise, then size the record again for the canonical check); this is one.

use super::record::{
    CheckpointPosition, CheckpointRecord, EventRecord, FactRecord, Record, RecordBody,
    RegionRecord, Unit,
};

/// Varint tags of bincode 1 (values below 251 are stored in one byte).
const SINGLE_BYTE_MAX: u8 = 250;
const U16_TAG: u8 = 251;
const U32_TAG: u8 = 252;
const U64_TAG: u8 = 253;
const U128_TAG: u8 = 254;

/// A cursor over a body. Errors are short static descriptions; the caller adds the frame.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

type R<T> = Result<T, &'static str>;

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let s = self.buf.get(self.at..end).ok_or("unexpected end of body")?;
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> R<u8> {
        let b = *self.buf.get(self.at).ok_or("unexpected end of body")?;
        self.at += 1;
        Ok(b)
    }

    /// A canonical varint of at most `max_tag`'s width.
    fn varint(&mut self, max_tag: u8) -> R<u128> {
        let tag = self.u8()?;
        let (v, min): (u128, u128) = match tag {
            0..=SINGLE_BYTE_MAX => return Ok(u128::from(tag)),
            U16_TAG if max_tag >= U16_TAG => (
                u128::from(u16::from_le_bytes(self.array()?)),
                u128::from(SINGLE_BYTE_MAX) + 1,
            ),
            U32_TAG if max_tag >= U32_TAG => (
                u128::from(u32::from_le_bytes(self.array()?)),
                u128::from(u16::MAX) + 1,
            ),
            U64_TAG if max_tag >= U64_TAG => (
                u128::from(u64::from_le_bytes(self.array()?)),
                u128::from(u32::MAX) + 1,
            ),
            U128_TAG if max_tag >= U128_TAG => {
                (u128::from_le_bytes(self.array()?), u128::from(u64::MAX) + 1)
            }
            _ => return Err("invalid or too wide varint tag"),
        };
        if v < min {
            return Err("non-canonical varint");
        }
        Ok(v)
    }

    fn u16(&mut self) -> R<u16> {
        u16::try_from(self.varint(U16_TAG)?).map_err(|_| "u16 out of range")
    }

    fn u32(&mut self) -> R<u32> {
        u32::try_from(self.varint(U32_TAG)?).map_err(|_| "u32 out of range")
    }

    fn u64(&mut self) -> R<u64> {
        u64::try_from(self.varint(U64_TAG)?).map_err(|_| "u64 out of range")
    }

    fn u128(&mut self) -> R<u128> {
        self.varint(U128_TAG)
    }

    fn i64(&mut self) -> R<i64> {
        let n = self.u64()?;
        // zigzag
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn option_tag(&mut self) -> R<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("invalid option tag"),
        }
    }

    fn option<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<Option<T>> {
        if self.option_tag()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }

    fn byte_string(&mut self) -> R<&'a [u8]> {
        let len = usize::try_from(self.u64()?).map_err(|_| "length overflow")?;
        self.bytes(len)
    }

    fn str(&mut self) -> R<&'a str> {
        std::str::from_utf8(self.byte_string()?).map_err(|_| "string is not UTF-8")
    }

    /// An enum's variant tag (a u32 varint in bincode).
    fn tag(&mut self) -> R<u32> {
        self.u32()
    }

    fn unit(&mut self) -> R<Unit> {
        Ok(match self.tag()? {
            0 => Unit::None,
            1 => Unit::Batch(self.u64()?),
            2 => Unit::Fence(self.u64()?),
            3 => Unit::FencedBatch {
                fence: self.u64()?,
                batch: self.u64()?,
            },
            _ => return Err("unknown unit tag"),
        })
    }

    fn event(&mut self) -> R<EventRecord<'a>> {
        Ok(EventRecord {
            unit: self.unit()?,
            event_id: self.u128()?,
            correlation_id: self.option(Self::u128)?,
            causation_id: self.option(Self::u128)?,
            timestamp_us: self.i64()?,
            clock: self.u32()?,
            kind: self.u16()?,
            flags: self.u8()?,
            prev_hash: self.array()?,
            idempotency_key: self.option(Self::u128)?,
            entity: self.str()?,
            scope: self.str()?,
            payload: self.byte_string()?,
        })
    }

    fn checkpoint(&mut self) -> R<CheckpointRecord<'a>> {
        Ok(CheckpointRecord {
            unit: self.unit()?,
            id: self.str()?,
            region: RegionRecord {
                entity_prefix: self.option(Self::str)?,
                scope: self.option(Self::str)?,
                fact: match self.tag()? {
                    0 => FactRecord::Any,
                    1 => FactRecord::Exact(self.u16()?),
                    2 => FactRecord::Category(self.u8()?),
                    _ => return Err("unknown fact tag"),
                },
                clock_range: self.option(|r| Ok((r.u32()?, r.u32()?)))?,
            },
            position: match self.tag()? {
                0 => CheckpointPosition::Start,
                1 => CheckpointPosition::After(self.u64()?),
                2 => CheckpointPosition::Deleted,
                _ => return Err("unknown checkpoint position tag"),
            },
        })
    }

    fn record(&mut self) -> R<Record<'a>> {
        let seq = self.u64()?;
        let body = match self.tag()? {
            0 => RecordBody::Event(self.event()?),
            1 => RecordBody::BatchCommit {
                batch: self.u64()?,
                count: self.u32()?,
            },
            2 => RecordBody::FenceBegin { fence: self.u64()? },
            3 => RecordBody::FenceCommit { fence: self.u64()? },
            4 => RecordBody::FenceCancel { fence: self.u64()? },
            5 => RecordBody::Checkpoint(self.checkpoint()?),
            6 => RecordBody::Dropped { to: self.u64()? },
            _ => return Err("unknown record tag"),
        };
        Ok(Record { seq, body })
    }
}

/// Decodes a whole record body (canonical encodings only, no trailing bytes).
pub(super) fn decode_body(body: &[u8]) -> Result<Record<'_>, &'static str> {
    let mut r = Reader { buf: body, at: 0 };
    let record = r.record()?;
    if r.at != body.len() {
        return Err("trailing bytes after the record");
    }
    Ok(record)
}

/// Appends the body of `record` to `out`: the bytes bincode 1 writes under the codec's
/// configuration (every varint in its shortest form), without serde. The codec's tests check
/// it byte for byte against the serde path ([`super::encode_reference`]).
pub(super) fn encode_body(record: &Record<'_>, out: &mut Vec<u8>) {
    let mut w = Writer { out };
    w.record(record);
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

impl Writer<'_> {
    fn varint(&mut self, v: u128) {
        if v <= u128::from(SINGLE_BYTE_MAX) {
            self.out.push(v as u8);
        } else if v <= u128::from(u16::MAX) {
            self.out.push(U16_TAG);
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v <= u128::from(u32::MAX) {
            self.out.push(U32_TAG);
            self.out.extend_from_slice(&(v as u32).to_le_bytes());
        } else if v <= u128::from(u64::MAX) {
            self.out.push(U64_TAG);
            self.out.extend_from_slice(&(v as u64).to_le_bytes());
        } else {
            self.out.push(U128_TAG);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn u64(&mut self, v: u64) {
        self.varint(u128::from(v));
    }

    fn u32(&mut self, v: u32) {
        self.varint(u128::from(v));
    }

    fn i64(&mut self, v: i64) {
        // zigzag
        self.u64(((v << 1) ^ (v >> 63)) as u64);
    }

    fn option<T: Copy>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.out.push(0),
            Some(x) => {
                self.out.push(1);
                f(self, x);
            }
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.out.extend_from_slice(b);
    }

    fn unit(&mut self, u: Unit) {
        match u {
            Unit::None => self.u32(0),
            Unit::Batch(b) => {
                self.u32(1);
                self.u64(b);
            }
            Unit::Fence(f) => {
                self.u32(2);
                self.u64(f);
            }
            Unit::FencedBatch { fence, batch } => {
                self.u32(3);
                self.u64(fence);
                self.u64(batch);
            }
        }
    }

    fn event(&mut self, e: &EventRecord<'_>) {
        self.unit(e.unit);
        self.varint(e.event_id);
        self.option(e.correlation_id, Self::varint);
        self.option(e.causation_id, Self::varint);
        self.i64(e.timestamp_us);
        self.u32(e.clock);
        self.varint(u128::from(e.kind));
        self.out.push(e.flags);
        self.out.extend_from_slice(&e.prev_hash);
        self.option(e.idempotency_key, Self::varint);
        self.bytes(e.entity.as_bytes());
        self.bytes(e.scope.as_bytes());
        self.bytes(e.payload);
    }

    fn checkpoint(&mut self, c: &CheckpointRecord<'_>) {
        self.unit(c.unit);
        self.bytes(c.id.as_bytes());
        let r = &c.region;
        self.option(r.entity_prefix, |w, s| w.bytes(s.as_bytes()));
        self.option(r.scope, |w, s| w.bytes(s.as_bytes()));
        match r.fact {
            FactRecord::Any => self.u32(0),
            FactRecord::Exact(k) => {
                self.u32(1);
                self.varint(u128::from(k));
            }
            FactRecord::Category(c) => {
                self.u32(2);
                self.out.push(c);
            }
        }
        self.option(r.clock_range, |w, (lo, hi)| {
            w.u32(lo);
            w.u32(hi);
        });
        match c.position {
            CheckpointPosition::Start => self.u32(0),
            CheckpointPosition::After(s) => {
                self.u32(1);
                self.u64(s);
            }
            CheckpointPosition::Deleted => self.u32(2),
        }
    }

    fn record(&mut self, r: &Record<'_>) {
        self.u64(r.seq);
        match &r.body {
            RecordBody::Event(e) => {
                self.u32(0);
                self.event(e);
            }
            RecordBody::BatchCommit { batch, count } => {
                self.u32(1);
                self.u64(*batch);
                self.u32(*count);
            }
            RecordBody::FenceBegin { fence } => {
                self.u32(2);
                self.u64(*fence);
            }
            RecordBody::FenceCommit { fence } => {
                self.u32(3);
                self.u64(*fence);
            }
            RecordBody::FenceCancel { fence } => {
                self.u32(4);
                self.u64(*fence);
            }
            RecordBody::Checkpoint(c) => {
                self.u32(5);
                self.checkpoint(c);
            }
            RecordBody::Dropped { to } => {
                self.u32(6);
                self.u64(*to);
            }
        }
    }
}
