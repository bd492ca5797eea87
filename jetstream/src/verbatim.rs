//! A replicated payload handed back to a store unchanged.
//!
//! The store's public append API takes `&impl Serialize` and encodes it with rmp-serde
//! (`write_named`); it has no lane for MessagePack bytes as they are. Every payload a store
//! holds was written by that encoder, which always picks the shortest form of each value
//! (integers, string, binary, array, map and extension headers). So a payload is reproduced
//! byte for byte by decoding its MessagePack into a tree ([`Value`], which keeps what JSON
//! cannot: binary strings, any map keys, 32-bit floats, extension types) and serialising that
//! tree through the same encoder. [`Value::parse`] checks the round trip before anything is
//! appended: bytes the encoder would write differently (a non-shortest form, a string that is
//! not UTF-8, trailing bytes) are refused, never altered.

use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

/// How deep arrays and maps may nest (the decoder and the encoder recurse).
const MAX_DEPTH: usize = 256;

/// One MessagePack value, borrowing strings and bytes from the payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Nil,
    Bool(bool),
    Uint(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(&'a str),
    Bin(&'a [u8]),
    Array(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    Ext(i8, &'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(format!(
                "truncated: {n} bytes wanted at byte {} of {}",
                self.pos,
                self.buf.len()
            ));
        };
        let s = self.buf.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn len(&mut self, bytes: u8) -> Result<usize, String> {
        let n = match bytes {
            1 => u64::from(self.u8()?),
            2 => u64::from(self.u16()?),
            _ => u64::from(self.u32()?),
        };
        usize::try_from(n).map_err(|_| format!("length {n} does not fit in memory"))
    }
    fn str(&mut self, n: usize) -> Result<Value<'a>, String> {
        let at = self.pos;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(Value::Str)
            .map_err(|e| format!("string at byte {at} is not UTF-8: {e}"))
    }
    fn ext(&mut self, n: usize) -> Result<Value<'a>, String> {
        let tag = i8::from_be_bytes(self.array()?);
        Ok(Value::Ext(tag, self.take(n)?))
    }
    fn seq(&mut self, n: usize, depth: usize) -> Result<Value<'a>, String> {
        // Every element takes at least a byte: no allocation beyond what the input can hold.
        let mut v = Vec::with_capacity(n.min(self.buf.len() - self.pos));
        for _ in 0..n {
            v.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(v))
    }
    fn map(&mut self, n: usize, depth: usize) -> Result<Value<'a>, String> {
        let mut v = Vec::with_capacity(n.min((self.buf.len() - self.pos) / 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            v.push((k, self.value(depth + 1)?));
        }
        Ok(Value::Map(v))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH}"));
        }
        let at = self.pos;
        let m = self.u8()?;
        Ok(match m {
            0x00..=0x7f => Value::Uint(u64::from(m)),
            0x80..=0x8f => self.map(usize::from(m & 0x0f), depth)?,
            0x90..=0x9f => self.seq(usize::from(m & 0x0f), depth)?,
            0xa0..=0xbf => self.str(usize::from(m & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4))?;
                Value::Bin(self.take(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (m - 0xc7))?;
                self.ext(n)?
            }
            0xca => Value::F32(f32::from_bits(self.u32()?)),
            0xcb => Value::F64(f64::from_bits(self.u64()?)),
            0xcc => Value::Uint(u64::from(self.u8()?)),
            0xcd => Value::Uint(u64::from(self.u16()?)),
            0xce => Value::Uint(u64::from(self.u32()?)),
            0xcf => Value::Uint(self.u64()?),
            0xd0 => Value::Int(i64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => self.ext(1 << (m - 0xd4))?,
            0xd9..=0xdb => {
                let n = self.len(1 << (m - 0xd9))?;
                self.str(n)?
            }
            0xdc | 0xdd => {
                let n = self.len(if m == 0xdc { 2 } else { 4 })?;
                self.seq(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.len(if m == 0xde { 2 } else { 4 })?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(i8::from_be_bytes([m]))),
            0xc1 => return Err(format!("byte {at}: 0xc1 is not a MessagePack marker")),
        })
    }
}

impl<'a> Value<'a> {
    /// Decodes `payload`, one MessagePack value, and checks that the store's encoder writes
    /// it back as exactly these bytes; the error says where and why not.
    pub(crate) fn parse(payload: &'a [u8]) -> Result<Self, String> {
        let mut r = Reader {
            buf: payload,
            pos: 0,
        };
        let v = r.value(0)?;
        if r.pos != payload.len() {
            return Err(format!(
                "{} bytes after the value (which ends at byte {})",
                payload.len() - r.pos,
                r.pos
            ));
        }
        let mut again = Vec::with_capacity(payload.len());
        rmp_serde::encode::write_named(&mut again, &v).map_err(|e| format!("re-encoding: {e}"))?;
        if again != payload {
            let at = again
                .iter()
                .zip(payload)
                .position(|(a, b)| a != b)
                .unwrap_or(again.len().min(payload.len()));
            return Err(format!(
                "not in the form the store's encoder writes (it differs at byte {at}): \
                 the public append API cannot reproduce it byte for byte"
            ));
        }
        Ok(v)
    }
}

struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// rmp-serde's extension protocol: a newtype struct of this name holding `(tag, bytes)`.
struct Ext<'a>(i8, &'a [u8]);

impl Serialize for Ext<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.0)?;
        t.serialize_element(&Bytes(self.1))?;
        t.end()
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Uint(u) => s.serialize_u64(*u),
            Value::Int(i) => s.serialize_i64(*i),
            Value::F32(f) => s.serialize_f32(*f),
            Value::F64(f) => s.serialize_f64(*f),
            Value::Str(t) => s.serialize_str(t),
            Value::Bin(b) => s.serialize_bytes(b),
            Value::Array(v) => {
                let mut q = s.serialize_seq(Some(v.len()))?;
                for x in v {
                    q.serialize_element(x)?;
                }
                q.end()
            }
            Value::Map(v) => {
                let mut m = s.serialize_map(Some(v.len()))?;
                for (k, x) in v {
                    m.serialize_entry(k, x)?;
                }
                m.end()
            }
            Value::Ext(tag, data) => {
                s.serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &Ext(*tag, data))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn named(v: &impl Serialize) -> Vec<u8> {
        let mut out = Vec::new();
        rmp_serde::encode::write_named(&mut out, v).unwrap();
        out
    }

    #[derive(Serialize)]
    struct Mixed {
        #[serde(with = "serde_bytes_shim")]
        blob: Vec<u8>,
        by_number: BTreeMap<i32, String>,
        by_bool: BTreeMap<bool, f32>,
        wide: u128,
        negative: i64,
        nested: Vec<Option<(u8, i16, f64)>>,
        text: String,
    }

    mod serde_bytes_shim {
        pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }

    #[test]
    fn what_the_encoder_writes_round_trips_byte_for_byte() {
        let big = "x".repeat(70_000);
        let frame_like: Vec<u8> = b"\x00\x00\x00\x10BPAK\xff\xfe\xc1\xc1".to_vec();
        let payloads = vec![
            named(&Mixed {
                blob: frame_like.clone(),
                by_number: [(-5, "a".into()), (7, "b".into()), (300, "c".into())].into(),
                by_bool: [(false, 1.5), (true, -0.25)].into(),
                wide: u128::MAX - 3,
                negative: -40_000,
                nested: vec![None, Some((200, -129, 1e300))],
                text: "ünï".into(),
            }),
            named(&Bytes(&frame_like)),
            named(&Bytes(&vec![7u8; 300])),
            named(&Bytes(&vec![9u8; 70_000])),
            named(&big),
            named(&"y".repeat(40)),
            named(&(0..40).collect::<Vec<u32>>()),
            named(&(0..20).map(|i| (i, i)).collect::<BTreeMap<u64, u64>>()),
            named(&[i64::MIN, i64::MAX, -1, -32, -33, 127, 128, 255, 256, 65_536]),
            named(&[u64::MAX, 0, 1]),
            named(&()),
            named(&serde_json::json!({"a": [1, 2.5, null, true, "s"]})),
        ];
        for p in &payloads {
            let v = Value::parse(p).unwrap();
            assert_eq!(&named(&v), p);
        }
        // Extension types (rmp-serde's protocol), every fixext size and ext8.
        for n in [1usize, 2, 4, 8, 16, 3, 200] {
            let data = vec![0xabu8; n];
            let p = named(&Value::Ext(-1, &data));
            assert_eq!(Value::parse(&p).unwrap(), Value::Ext(-1, &data));
        }
    }

    #[test]
    fn bytes_the_encoder_would_write_differently_are_refused() {
        for (bad, why) in [
            (&[0xcc, 0x01][..], "differs at byte 0"), // 1 as uint8, not a fixint
            (&[0xd9, 0x01, b'a'][..], "differs at byte 0"), // str8 for 1 byte
            (&[0xa1, 0xff][..], "not UTF-8"),
            (&[0x01, 0x02][..], "1 bytes after"),
            (&[0x92, 0x01][..], "truncated"),
            (&[0xc1][..], "not a MessagePack marker"),
            (&[][..], "truncated"),
        ] {
            let e = Value::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:x?}: {e}");
        }
        let mut deep = vec![0x91u8; MAX_DEPTH + 2];
        deep.push(0xc0);
        assert!(Value::parse(&deep).unwrap_err().contains("nested deeper"));
    }
}
