//! Event sourcing vocabulary: [`EventSourced`] (state as a fold of an entity's events), the
//! replay lanes a projection reads its payloads through ([`JsonValueInput`],
//! [`RawMsgpackInput`]) and the typed decode seam ([`DecodeTyped`]) that the derive and the
//! reactors route events with.
//!
//! The store side (`Store::project` and friends) lives in `store::projection`; this module
//! holds only the types a projection is written against, so they are reachable under
//! upstream's paths (`batpak::event::EventSourced`, `batpak::event::DecodeTyped`, ...).
//!
//! A payload that fails to decode is an error, never a panic and never a silently skipped
//! event (INV-PROJECTION): the fallible forms [`EventSourced::try_apply_event`] and
//! [`EventSourced::try_from_events`] are what the store replays through, and the derive
//! generates them.

use crate::event_types::{Event, EventKind, EventPayload};
use serde::de::DeserializeOwned;

mod sealed {
    pub trait Sealed {}
}

/// Which replay lane the store decodes a projection's payloads through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayLane {
    /// Payloads decoded into `serde_json::Value`.
    Value,
    /// Payloads handed over as their raw MessagePack bytes.
    RawMsgpack,
}

/// How a projection's payloads are handed to it: [`JsonValueInput`] or [`RawMsgpackInput`]
/// (sealed: the store implements each lane).
pub trait ProjectionInput: sealed::Sealed + Send + Sync + 'static {
    /// The payload type the projection's events carry in this lane.
    type Payload: Clone + Send + Sync + 'static;
    /// This lane.
    const MODE: ReplayLane;

    /// Turns a stored payload (MessagePack bytes) into this lane's payload. Used by the
    /// store's replay; not a stable API.
    #[doc(hidden)]
    fn from_msgpack(bytes: &[u8]) -> Result<Self::Payload, DecodeSource>;
}

/// The default lane: each payload decoded into a `serde_json::Value`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonValueInput;

impl sealed::Sealed for JsonValueInput {}

impl ProjectionInput for JsonValueInput {
    type Payload = serde_json::Value;
    const MODE: ReplayLane = ReplayLane::Value;

    fn from_msgpack(bytes: &[u8]) -> Result<serde_json::Value, DecodeSource> {
        match msgpack_json::decode(bytes) {
            Some(v) => Ok(v),
            // Anything the direct decoder does not take (binary, extensions, non-string
            // keys, trailing bytes, deep nesting, damage) goes through rmp-serde, which
            // decides exactly as it always did.
            None => msgpack_json::to_json(bytes).map_err(DecodeSource::Msgpack),
        }
    }
}

/// The fast lane: payloads stay MessagePack bytes, the projection decodes what it needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawMsgpackInput;

impl sealed::Sealed for RawMsgpackInput {}

impl ProjectionInput for RawMsgpackInput {
    type Payload = Vec<u8>;
    const MODE: ReplayLane = ReplayLane::RawMsgpack;

    fn from_msgpack(bytes: &[u8]) -> Result<Vec<u8>, DecodeSource> {
        Ok(bytes.to_vec())
    }
}

/// The payload type of projection `T`'s lane.
pub type ProjectionPayload<T> = <<T as EventSourced>::Input as ProjectionInput>::Payload;

/// The event type projection `T` folds.
pub type ProjectionEvent<T> = Event<ProjectionPayload<T>>;

/// State rebuilt by folding an entity's events (`Store::project`).
///
/// Upstream's six items, unchanged, plus two provided fallible forms. The store replays
/// through [`try_from_events`](Self::try_from_events) and
/// [`try_apply_event`](Self::try_apply_event), so an implementation that can fail to decode
/// a payload overrides those and `project` returns `StoreError::ProjectionDecode` naming
/// the event; `#[derive(EventSourced)]` does so.
pub trait EventSourced: Sized {
    /// The replay lane: [`JsonValueInput`] or [`RawMsgpackInput`].
    type Input: ProjectionInput;

    /// The state of a stream of events, oldest first; `None` when they produce no state.
    fn from_events(events: &[ProjectionEvent<Self>]) -> Option<Self>;

    /// Advances the state by one event.
    fn apply_event(&mut self, event: &ProjectionEvent<Self>);

    /// The kinds this projection reads: the store passes only these (an empty slice means
    /// every kind).
    fn relevant_event_kinds() -> &'static [EventKind];

    /// The version of this type's serialized shape. Snapshots and cached states of another
    /// version are never used. Default: 0.
    fn schema_version() -> u64 {
        0
    }

    /// Whether `from_events` is a plain fold of `apply_event` from a first state, so a
    /// snapshot at some event plus `apply_event` for the later ones equals the full fold.
    /// Snapshots (in memory or in a projection cache) are used only for types that say so.
    /// Default: `false`.
    fn supports_incremental_apply() -> bool {
        false
    }

    /// [`apply_event`](Self::apply_event) that reports a payload it cannot decode instead
    /// of panicking or skipping it. Default: `apply_event`, then `Ok`.
    ///
    /// # Errors
    /// [`TypedDecodeError`] when the event's payload does not decode.
    fn try_apply_event(&mut self, event: &ProjectionEvent<Self>) -> Result<(), TypedDecodeError> {
        self.apply_event(event);
        Ok(())
    }

    /// [`from_events`](Self::from_events) that reports a payload it cannot decode. Default:
    /// `Ok(from_events(events))`.
    ///
    /// # Errors
    /// [`TypedDecodeError`] when an event's payload does not decode.
    fn try_from_events(events: &[ProjectionEvent<Self>]) -> Result<Option<Self>, TypedDecodeError> {
        Ok(Self::from_events(events))
    }
}

/// The lane-specific error under a [`TypedDecodeError::DecodeFailure`].
#[derive(Debug)]
pub enum DecodeSource {
    /// `serde_json::from_value` failed (JSON lane).
    Json(serde_json::Error),
    /// `rmp_serde::from_slice` failed (MessagePack).
    Msgpack(rmp_serde::decode::Error),
}

impl DecodeSource {
    /// An equal copy (the error types are not `Clone`): same variant, same message.
    pub(crate) fn replay(&self) -> DecodeSource {
        match self {
            Self::Json(e) => Self::Json(<serde_json::Error as serde::de::Error>::custom(e)),
            Self::Msgpack(e) => Self::Msgpack(rmp_serde::decode::Error::Syntax(e.to_string())),
        }
    }
}

impl std::fmt::Display for DecodeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(e) => write!(f, "json decode: {e}"),
            Self::Msgpack(e) => write!(f, "msgpack decode: {e}"),
        }
    }
}

impl std::error::Error for DecodeSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            Self::Msgpack(e) => Some(e),
        }
    }
}

/// Why an event did not decode into a typed payload.
#[derive(Debug)]
pub enum TypedDecodeError {
    /// The event is of another kind than the type asked for
    /// ([`DecodeTyped::decode_typed`] only; `route_typed` answers `Ok(None)`).
    KindMismatch {
        /// The type's kind.
        expected: EventKind,
        /// The event's kind.
        got: EventKind,
    },
    /// The kind matched but the payload did not deserialize into the type.
    DecodeFailure {
        /// The kind.
        kind: EventKind,
        /// The lane's error.
        source: DecodeSource,
    },
}

impl TypedDecodeError {
    /// An equal copy (see [`DecodeSource`]).
    pub(crate) fn replay(&self) -> TypedDecodeError {
        match self {
            Self::KindMismatch { expected, got } => Self::KindMismatch {
                expected: *expected,
                got: *got,
            },
            Self::DecodeFailure { kind, source } => Self::DecodeFailure {
                kind: *kind,
                source: source.replay(),
            },
        }
    }
}

impl std::fmt::Display for TypedDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::KindMismatch { expected, got } => {
                write!(f, "kind mismatch: expected {expected}, got {got}")
            }
            Self::DecodeFailure { kind, source } => {
                write!(f, "payload of kind {kind} does not decode: {source}")
            }
        }
    }
}

impl std::error::Error for TypedDecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::KindMismatch { .. } => None,
            Self::DecodeFailure { source, .. } => Some(source),
        }
    }
}

/// Decodes an event of either lane into a typed payload, by kind.
pub trait DecodeTyped {
    /// `Ok(None)` when the event is not of kind `T::KIND`; `Ok(Some(t))` when it is and
    /// decodes.
    ///
    /// # Errors
    /// [`TypedDecodeError::DecodeFailure`] when the kind matched but the payload does not
    /// decode into `T`.
    fn route_typed<T: EventPayload>(&self) -> Result<Option<T>, TypedDecodeError>;

    /// Decodes the event as `T`, which the caller asserts it is.
    ///
    /// # Errors
    /// [`TypedDecodeError::KindMismatch`] when the event is of another kind,
    /// [`TypedDecodeError::DecodeFailure`] when its payload does not decode.
    fn decode_typed<T: EventPayload>(&self) -> Result<T, TypedDecodeError>;
}

fn check_kind<T: EventPayload>(got: EventKind) -> Result<(), TypedDecodeError> {
    if got == T::KIND {
        Ok(())
    } else {
        Err(TypedDecodeError::KindMismatch {
            expected: T::KIND,
            got,
        })
    }
}

fn from_json<T: DeserializeOwned>(
    kind: EventKind,
    v: &serde_json::Value,
) -> Result<T, TypedDecodeError> {
    T::deserialize(v).map_err(|e| TypedDecodeError::DecodeFailure {
        kind,
        source: DecodeSource::Json(e),
    })
}

fn from_msgpack<T: DeserializeOwned>(kind: EventKind, b: &[u8]) -> Result<T, TypedDecodeError> {
    rmp_serde::from_slice(b).map_err(|e| TypedDecodeError::DecodeFailure {
        kind,
        source: DecodeSource::Msgpack(e),
    })
}

impl DecodeTyped for Event<serde_json::Value> {
    fn route_typed<T: EventPayload>(&self) -> Result<Option<T>, TypedDecodeError> {
        let kind = self.header.event_kind;
        if kind != T::KIND {
            return Ok(None);
        }
        from_json(kind, &self.payload).map(Some)
    }

    fn decode_typed<T: EventPayload>(&self) -> Result<T, TypedDecodeError> {
        check_kind::<T>(self.header.event_kind)?;
        from_json(self.header.event_kind, &self.payload)
    }
}

impl DecodeTyped for Event<Vec<u8>> {
    fn route_typed<T: EventPayload>(&self) -> Result<Option<T>, TypedDecodeError> {
        let kind = self.header.event_kind;
        if kind != T::KIND {
            return Ok(None);
        }
        from_msgpack(kind, &self.payload).map(Some)
    }

    fn decode_typed<T: EventPayload>(&self) -> Result<T, TypedDecodeError> {
        check_kind::<T>(self.header.event_kind)?;
        from_msgpack(self.header.event_kind, &self.payload)
    }
}

/// MessagePack straight into `serde_json::Value`, for the JSON replay lane: the same value
/// `rmp_serde::from_slice::<Value>` gives, without serde's visitor round trip. It answers
/// `None` for whatever it does not handle itself, and the caller then asks rmp-serde.
pub(crate) mod msgpack_json {
    use serde_json::{Map, Number, Value};

    /// Deeper than this goes to rmp-serde (which has its own limit).
    const DEPTH_MAX: usize = 64;

    /// The value `bytes` encode, if they are exactly one value of the handled kinds.
    pub fn decode(bytes: &[u8]) -> Option<Value> {
        read(bytes, false)
    }

    /// The JSON view of any MessagePack payload: what [`decode`] or rmp-serde give where
    /// they take it, else (binary strings, non-string map keys, which `serde_json::Value`
    /// cannot hold) binary as an array of byte numbers and scalar keys as their JSON text.
    /// The error is rmp-serde's when no view exists (damage, extensions, trailing bytes).
    pub fn to_json(bytes: &[u8]) -> Result<Value, rmp_serde::decode::Error> {
        if let Some(v) = decode(bytes) {
            return Ok(v);
        }
        match rmp_serde::from_slice(bytes) {
            Ok(v) => Ok(v),
            Err(e) => read(bytes, true).ok_or(e),
        }
    }

    fn read(bytes: &[u8], lenient: bool) -> Option<Value> {
        let mut r = Reader {
            b: bytes,
            at: 0,
            lenient,
        };
        let v = r.value(0)?;
        (r.at == bytes.len()).then_some(v)
    }

    struct Reader<'a> {
        b: &'a [u8],
        at: usize,
        /// Binary strings and scalar map keys get a JSON view ([`to_json`]).
        lenient: bool,
    }

    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            let s = self.b.get(self.at..self.at.checked_add(n)?)?;
            self.at += n;
            Some(s)
        }
        fn u8(&mut self) -> Option<u8> {
            let v = *self.b.get(self.at)?;
            self.at += 1;
            Some(v)
        }
        fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
            self.take(N)?.try_into().ok()
        }
        fn str(&mut self, n: usize) -> Option<Value> {
            let s = std::str::from_utf8(self.take(n)?).ok()?;
            Some(Value::String(s.to_owned()))
        }
        fn bin(&mut self, n: usize) -> Option<Value> {
            if !self.lenient {
                return None;
            }
            let b = self.take(n)?;
            Some(Value::Array(
                b.iter()
                    .map(|&x| Value::Number(u64::from(x).into()))
                    .collect(),
            ))
        }
        fn array(&mut self, n: usize, depth: usize) -> Option<Value> {
            // A length claim cannot reserve more than the bytes left could hold.
            let mut v = Vec::with_capacity(n.min(self.b.len() - self.at));
            for _ in 0..n {
                v.push(self.value(depth + 1)?);
            }
            Some(Value::Array(v))
        }
        fn map(&mut self, n: usize, depth: usize) -> Option<Value> {
            // Each entry takes at least two bytes.
            let mut m = Map::with_capacity(n.min((self.b.len() - self.at) / 2));
            for _ in 0..n {
                let key = match self.value(depth + 1)? {
                    Value::String(k) => k,
                    k @ (Value::Number(_) | Value::Bool(_) | Value::Null) if self.lenient => {
                        k.to_string()
                    }
                    _ => return None,
                };
                let v = self.value(depth + 1)?;
                m.insert(key, v);
            }
            Some(Value::Object(m))
        }
        fn value(&mut self, depth: usize) -> Option<Value> {
            if depth > DEPTH_MAX {
                return None;
            }
            let m = self.u8()?;
            Some(match m {
                0x00..=0x7f => Value::Number(u64::from(m).into()),
                0x80..=0x8f => return self.map(usize::from(m & 0x0f), depth),
                0x90..=0x9f => return self.array(usize::from(m & 0x0f), depth),
                0xa0..=0xbf => return self.str(usize::from(m & 0x1f)),
                0xc0 => Value::Null,
                0xc2 => Value::Bool(false),
                0xc3 => Value::Bool(true),
                0xca => float(f64::from(f32::from_be_bytes(self.be()?))),
                0xcb => float(f64::from_be_bytes(self.be()?)),
                0xcc => Value::Number(u64::from(self.u8()?).into()),
                0xcd => Value::Number(u64::from(u16::from_be_bytes(self.be()?)).into()),
                0xce => Value::Number(u64::from(u32::from_be_bytes(self.be()?)).into()),
                0xcf => Value::Number(u64::from_be_bytes(self.be()?).into()),
                0xd0 => Value::Number(i64::from(i8::from_be_bytes(self.be()?)).into()),
                0xd1 => Value::Number(i64::from(i16::from_be_bytes(self.be()?)).into()),
                0xd2 => Value::Number(i64::from(i32::from_be_bytes(self.be()?)).into()),
                0xd3 => Value::Number(i64::from_be_bytes(self.be()?).into()),
                0xd9 => {
                    let n = usize::from(self.u8()?);
                    return self.str(n);
                }
                0xda => {
                    let n = usize::from(u16::from_be_bytes(self.be()?));
                    return self.str(n);
                }
                0xdb => {
                    let n = u32::from_be_bytes(self.be()?) as usize;
                    return self.str(n);
                }
                0xdc => {
                    let n = usize::from(u16::from_be_bytes(self.be()?));
                    return self.array(n, depth);
                }
                0xdd => {
                    let n = u32::from_be_bytes(self.be()?) as usize;
                    return self.array(n, depth);
                }
                0xde => {
                    let n = usize::from(u16::from_be_bytes(self.be()?));
                    return self.map(n, depth);
                }
                0xdf => {
                    let n = u32::from_be_bytes(self.be()?) as usize;
                    return self.map(n, depth);
                }
                0xe0..=0xff => Value::Number(i64::from(m as i8).into()),
                0xc4 => {
                    let n = usize::from(self.u8()?);
                    return self.bin(n);
                }
                0xc5 => {
                    let n = usize::from(u16::from_be_bytes(self.be()?));
                    return self.bin(n);
                }
                0xc6 => {
                    let n = u32::from_be_bytes(self.be()?) as usize;
                    return self.bin(n);
                }
                // ext, the unused marker: rmp-serde's call.
                _ => return None,
            })
        }
    }

    /// serde_json's own rule: a non-finite float is `null`.
    fn float(f: f64) -> Value {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|i| Value::Number(i.into())),
                any::<u64>().prop_map(|u| Value::Number(u.into())),
                any::<f64>().prop_map(float),
                ".{0,40}".prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                    prop::collection::vec((".{0,8}", inner), 0..8)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn agrees_with_rmp_serde_on_every_encoded_value(v in json()) {
                for bytes in [rmp_serde::to_vec(&v).unwrap(), rmp_serde::to_vec_named(&v).unwrap()] {
                    let want: Value = rmp_serde::from_slice(&bytes).unwrap();
                    prop_assert_eq!(decode(&bytes), Some(want));
                }
            }

            #[test]
            fn on_any_bytes_it_agrees_or_defers(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
                if let Some(v) = decode(&bytes) {
                    let want: Value = rmp_serde::from_slice(&bytes).unwrap();
                    prop_assert_eq!(v, want);
                }
            }
        }

        #[test]
        fn typed_structs_decode_like_rmp_serde() {
            #[derive(serde::Serialize)]
            struct P {
                id: u64,
                name: String,
                amount: i64,
                tags: Vec<u32>,
                f: f32,
                o: Option<u8>,
            }
            let p = P {
                id: 7,
                name: "x".repeat(32),
                amount: -5,
                tags: vec![1, 300, 70_000, u32::MAX],
                f: 1.5,
                o: None,
            };
            let bytes = rmp_serde::to_vec_named(&p).unwrap();
            let want: Value = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(decode(&bytes), Some(want));
        }
    }
}

/// Upstream's plain reactor: given an event, the events to write in reaction, each as
/// `(coordinate, kind, payload)`. `Store::react_loop` runs
/// one on a thread; each reaction is written caused by (and correlated with) its source event,
/// exactly once. For typed payloads and an error
/// path, use `TypedReactive`.
pub trait Reactive<P> {
    /// The reactions to `event` (empty: none).
    fn react(&self, event: &Event<P>) -> Vec<(crate::coord::Coordinate, EventKind, P)>;
}
