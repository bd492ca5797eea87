//! The fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the corpus replay
//! test (`model/tests/fuzz_corpus_replay.rs`), so a normal `cargo test` runs exactly the code
//! the fuzzer runs.
//!
//! * [`frame_decode`]: raw bytes into the frame decoder (INV-BOUNDED-DECODE).
//! * [`frame_decode_structured`]: a valid frame of an arbitrary record, then one corruption;
//!   the decoder must never return a different record silently.
//! * [`recovery`]: fuzz-chosen sessions run and judged by the simulator ([`crate::sim`]),
//!   then a last workload, a crash image, maybe one damaged byte, recovery, judged by the
//!   oracle (see the [`recovery`] module); and, when the input brings one, the crash image
//!   opened with a fuzz-chosen recovery checkpoint (raw, forged, torn or damaged, stale, of
//!   another store) must give what it gives without one (see [`CheckpointInput`]).
//!
//! Every function panics (an assertion naming the invariant) when a property fails; that is
//! how the fuzzer sees a finding.

mod checkpoint;
mod recovery;

pub use crate::workload::{embeddable_frames, HarnessSalts, Op};
pub use checkpoint::{CheckpointInput, CHECKPOINT_FILE};
pub use recovery::{
    lifecycle_events, recovery, recovery_with, EndInput, FaultInput, ImageCorruption, Outcome,
    RecoveryInput, SessionInput, HISTORY_MAX, OPS_MAX,
};

use arbitrary::Arbitrary;
use batpak::__testing::codec::{self, DecodeError, FRAME_BYTES_MAX_DEFAULT, FRAME_HEADER_BYTES};
use batpak::__testing::log::{
    CheckpointPosition, CheckpointRecord, EventRecord, FactRecord, Record, RecordBody,
    RegionRecord, Unit,
};

/// The seeded bugs the `recovery` fuzz target can run with ([`fuzz_mutant`]; mutant build
/// only).
#[cfg(batpak_mutant)]
pub const FUZZ_MUTANTS: [crate::Mutant; 7] = [
    crate::Mutant::CheckpointNotAtomic,
    crate::Mutant::CheckpointAckBeforeDurable,
    crate::Mutant::DeliverBeforeDurable,
    crate::Mutant::RecoveryCutsAtHole,
    crate::Mutant::RecoveryLooksInsideTornFrame,
    crate::Mutant::RecoveryTrustsPageCache,
    crate::Mutant::TrustStaleCheckpoint,
];

/// The seeded bug the `recovery` fuzz target runs with: in the mutant build
/// (`RUSTFLAGS="--cfg batpak_mutant"`), the one of `FUZZ_MUTANTS` that `BATPAK_FUZZ_MUTANT`
/// names (its `Debug` form); otherwise none. Shows that a short fuzz run finds a seeded bug,
/// e.g. `BATPAK_FUZZ_MUTANT=CheckpointNotAtomic RUSTFLAGS="--cfg batpak_mutant" cargo fuzz
/// run recovery`. An unknown name panics (so a typo does not fuzz the real store by mistake).
pub fn fuzz_mutant() -> crate::Mutant {
    #[cfg(batpak_mutant)]
    {
        static MUTANT: std::sync::OnceLock<crate::Mutant> = std::sync::OnceLock::new();
        *MUTANT.get_or_init(|| {
            let name = std::env::var("BATPAK_FUZZ_MUTANT").unwrap_or_default();
            if name.is_empty() {
                return crate::Mutant::None;
            }
            FUZZ_MUTANTS
                .iter()
                .copied()
                .find(|m| format!("{m:?}") == name)
                .unwrap_or_else(|| panic!("BATPAK_FUZZ_MUTANT={name}: not one of {FUZZ_MUTANTS:?}"))
        })
    }
    #[cfg(not(batpak_mutant))]
    crate::Mutant::None
}

/// Maximum frame sizes [`frame_decode`] tries on every input.
pub const DECODE_MAXES: [u32; 6] = [0, 3, 64, 4096, FRAME_BYTES_MAX_DEFAULT, u32::MAX];

/// The segment salt the frame harnesses encode and decode with.
pub const FUZZ_SALT: u32 = 0x0BA7_FA5C;

/// Recomputes the head check and the CRC of the frame at the start of `buf` under
/// [`FUZZ_SALT`], over its length field and as much of its body as `buf` holds (a forged
/// frame: lets the fuzzer reach the body decoder).
pub fn forge_crc(buf: &mut [u8]) {
    let Some(len_bytes) = buf.get(..4) else {
        return;
    };
    let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let end = FRAME_HEADER_BYTES
        .saturating_add(len as usize)
        .min(buf.len());
    let mut h = crc32fast::Hasher::new();
    h.update(&FUZZ_SALT.to_le_bytes());
    h.update(&len.to_le_bytes());
    let head = h.clone().finalize().to_le_bytes();
    h.update(buf.get(FRAME_HEADER_BYTES..end).unwrap_or(&[]));
    let sum = h.finalize().to_le_bytes();
    if let Some(c) = buf.get_mut(4..8) {
        c.copy_from_slice(&head);
    }
    if let Some(c) = buf.get_mut(8..12) {
        c.copy_from_slice(&sum);
    }
}

/// Raw bytes into `codec::decode` (salt [`FUZZ_SALT`]). The first byte picks the mode: bit 7
/// forges the checks (so the body decoder sees arbitrary bodies); the rest is the frame. Every maximum in
/// [`DECODE_MAXES`] is tried. Properties: no panic; `decode` (the direct body decoder) agrees
/// with `decode_reference` (serde and bincode); `decode` agrees with `peek_len` on the
/// header; a decoded frame is `8 + len` bytes within the input; re-encoding the decoded record
/// gives the identical bytes (one encoding per record).
pub fn frame_decode(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = rest.to_vec();
    if mode & 0x80 != 0 {
        forge_crc(&mut buf);
    }
    for max in DECODE_MAXES {
        check_decode(&buf, max);
    }
}

/// One decode with the checks of [`frame_decode`]; returns the decoded frame length.
fn check_decode(buf: &[u8], max: u32) -> Option<usize> {
    let peek = codec::peek_len(buf, max, FUZZ_SALT);
    let decoded = decoders_agree(buf, max);
    match decoded {
        Ok((record, used)) => {
            let len = peek.unwrap_or_else(|e| {
                panic!("INV-BOUNDED-DECODE: decode accepted a frame whose header peek_len refuses: {e}")
            });
            assert!(
                len <= max,
                "INV-BOUNDED-DECODE: body of {len} bytes over max {max}"
            );
            assert_eq!(
                used,
                FRAME_HEADER_BYTES + len as usize,
                "decoded frame length"
            );
            assert!(used <= buf.len(), "decoded frame longer than the input");
            let again = codec::encode(&record, max, FUZZ_SALT)
                .unwrap_or_else(|e| panic!("a decoded record does not re-encode: {e}"));
            assert_eq!(
                again.as_slice(),
                buf.get(..used).unwrap_or(&[]),
                "re-encoding decoded record {record:?} gives different bytes (non-canonical frame accepted)"
            );
            Some(used)
        }
        Err(e) => {
            if let Err(pe) = peek {
                assert_eq!(e, pe, "decode and peek_len disagree on a bad header");
            }
            None
        }
    }
}

/// `codec::decode` (the direct body decoder) of `buf`, checked against
/// `codec::decode_reference` (serde and bincode): both accept the same record with the same
/// length, or both refuse for the same reason (body errors by kind: their texts differ).
fn decoders_agree(buf: &[u8], max: u32) -> Result<(Record<'_>, usize), DecodeError> {
    let decoded = codec::decode(buf, max, FUZZ_SALT);
    match (&decoded, codec::decode_reference(buf, max, FUZZ_SALT)) {
        (Ok(a), Ok(b)) => assert_eq!(*a, b, "direct and reference decoders differ"),
        (Err(DecodeError::BadBody(_)), Err(DecodeError::BadBody(_))) => {}
        (Err(a), Err(b)) => assert_eq!(*a, b, "direct and reference decoders differ"),
        (a, b) => panic!("direct decoder gives {a:?}, the reference {b:?}"),
    }
    decoded
}

/// [`Unit`], for `Arbitrary`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ArbUnit {
    /// `Unit::None`.
    None,
    /// `Unit::Batch`.
    Batch(u64),
    /// `Unit::Fence`.
    Fence(u64),
    /// `Unit::FencedBatch`.
    FencedBatch(u64, u64),
}

impl ArbUnit {
    fn unit(self) -> Unit {
        match self {
            ArbUnit::None => Unit::None,
            ArbUnit::Batch(b) => Unit::Batch(b),
            ArbUnit::Fence(f) => Unit::Fence(f),
            ArbUnit::FencedBatch(fence, batch) => Unit::FencedBatch { fence, batch },
        }
    }
}

/// An owned [`EventRecord`], for `Arbitrary`.
#[derive(Arbitrary, Debug, Clone)]
pub struct ArbEvent {
    /// Unit.
    pub unit: ArbUnit,
    /// Event id.
    pub event_id: u128,
    /// Correlation id.
    pub correlation_id: Option<u128>,
    /// Causation id.
    pub causation_id: Option<u128>,
    /// Timestamp.
    pub timestamp_us: i64,
    /// Entity clock.
    pub clock: u32,
    /// Kind.
    pub kind: u16,
    /// Flags.
    pub flags: u8,
    /// Previous hash.
    pub prev_hash: [u8; 32],
    /// Idempotency key.
    pub idempotency_key: Option<u128>,
    /// Entity.
    pub entity: String,
    /// Scope.
    pub scope: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// An owned [`RecordBody`], for `Arbitrary`.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArbBody {
    /// An event.
    Event(ArbEvent),
    /// `BatchCommit`.
    BatchCommit(u64, u32),
    /// `FenceBegin`.
    FenceBegin(u64),
    /// `FenceCommit`.
    FenceCommit(u64),
    /// `FenceCancel`.
    FenceCancel(u64),
    /// A consumer checkpoint: unit, id, position (`None` deleted, `Some(None)` start),
    /// region entity prefix and exact kind.
    Checkpoint(
        ArbUnit,
        String,
        Option<Option<u64>>,
        Option<String>,
        Option<u16>,
    ),
}

/// An owned [`Record`], for `Arbitrary`.
#[derive(Arbitrary, Debug, Clone)]
pub struct ArbRecord {
    /// Sequence.
    pub seq: u64,
    /// Body.
    pub body: ArbBody,
}

impl ArbRecord {
    /// The record, borrowing strings and payload from `self`.
    pub fn record(&self) -> Record<'_> {
        let body = match &self.body {
            ArbBody::Event(e) => RecordBody::Event(EventRecord {
                unit: e.unit.unit(),
                event_id: e.event_id,
                correlation_id: e.correlation_id,
                causation_id: e.causation_id,
                timestamp_us: e.timestamp_us,
                clock: e.clock,
                kind: e.kind,
                flags: e.flags,
                prev_hash: e.prev_hash,
                idempotency_key: e.idempotency_key,
                entity: &e.entity,
                scope: &e.scope,
                payload: &e.payload,
            }),
            ArbBody::BatchCommit(batch, count) => RecordBody::BatchCommit {
                batch: *batch,
                count: *count,
            },
            ArbBody::FenceBegin(fence) => RecordBody::FenceBegin { fence: *fence },
            ArbBody::FenceCommit(fence) => RecordBody::FenceCommit { fence: *fence },
            ArbBody::FenceCancel(fence) => RecordBody::FenceCancel { fence: *fence },
            ArbBody::Checkpoint(unit, id, position, prefix, kind) => {
                RecordBody::Checkpoint(CheckpointRecord {
                    unit: unit.unit(),
                    id,
                    region: RegionRecord {
                        entity_prefix: prefix.as_deref(),
                        scope: None,
                        fact: kind.map_or(FactRecord::Any, FactRecord::Exact),
                        clock_range: None,
                    },
                    position: match position {
                        None => CheckpointPosition::Deleted,
                        Some(None) => CheckpointPosition::Start,
                        Some(Some(s)) => CheckpointPosition::After(*s),
                    },
                })
            }
        };
        Record {
            seq: self.seq,
            body,
        }
    }
}

/// What [`frame_decode_structured`] does to the valid frame.
#[derive(Arbitrary, Debug, Clone)]
pub enum FrameCorruption {
    /// Nothing: the frame must decode to the record.
    None,
    /// Flip up to three bits (positions taken modulo the frame's bit count; flipping a bit
    /// twice undoes it). Three bits are within CRC-32's guaranteed detection.
    BitFlips(Vec<u32>),
    /// Keep only the first `n % len` bytes.
    Truncate(u32),
    /// Replace the length field (CRC left as it was).
    LengthLie(u32),
    /// Replace the CRC field.
    CrcLie(u32),
    /// Append bytes after the frame: the frame must still decode, using only its own bytes.
    TrailingGarbage(Vec<u8>),
    /// Append bytes and grow the length field over them, with a forged (recomputed) CRC: the
    /// body then has trailing bytes, which the decoder must refuse.
    ForgedLongerBody(Vec<u8>),
    /// Shrink the length field by `1 + n % (len - 3)` bytes, with a forged CRC: a strict
    /// prefix of a body is never a record.
    ForgedShorterBody(u32),
    /// Overwrite one body byte and forge the CRC: the result may decode, but then only to a
    /// record that re-encodes to exactly these bytes.
    ForgedBodyEdit(u32, u8),
}

/// Input of [`frame_decode_structured`].
#[derive(Arbitrary, Debug, Clone)]
pub struct StructuredFrame {
    /// The record to encode.
    pub record: ArbRecord,
    /// What to do to its frame.
    pub corruption: FrameCorruption,
}

fn set_u32(buf: &mut [u8], at: usize, v: u32) {
    if let Some(s) = buf.get_mut(at..at + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Encodes an arbitrary record, applies one corruption and decodes. Properties: the direct
/// encoder writes the serde reference's bytes; the intact frame decodes to the same record, using the whole frame; a corrupted frame never decodes to
/// a different record; CRC lies, bit flips, length lies and truncations are errors unless the
/// corruption left the bytes unchanged.
pub fn frame_decode_structured(input: StructuredFrame) {
    let max = FRAME_BYTES_MAX_DEFAULT;
    let record = input.record.record();
    let Ok(frame) = codec::encode(&record, max, FUZZ_SALT) else {
        return;
    };
    let mut reference = Vec::new();
    codec::encode_reference(&record, max, FUZZ_SALT, &mut reference)
        .unwrap_or_else(|e| panic!("the serde encoder refuses what the direct one wrote: {e}"));
    assert_eq!(
        frame, reference,
        "the direct encoder and the serde reference write different bytes for {record:?}"
    );
    let (back, used) = codec::decode(&frame, max, FUZZ_SALT)
        .unwrap_or_else(|e| panic!("an encoded frame does not decode: {e}; {record:?}"));
    assert_eq!(back, record, "round trip changed the record");
    assert_eq!(used, frame.len(), "round trip length");
    let len = frame.len();
    let body_len = (len - FRAME_HEADER_BYTES) as u32;
    let mut bad = frame.clone();
    // Whether the corruption must make decoding fail (when the bytes changed).
    let mut must_fail = true;
    let mut forged_edit = false;
    match input.corruption {
        FrameCorruption::None => must_fail = false,
        FrameCorruption::BitFlips(bits) => {
            for b in bits.into_iter().take(3) {
                let bit = b as usize % (len * 8);
                if let Some(byte) = bad.get_mut(bit / 8) {
                    *byte ^= 1 << (bit % 8);
                }
            }
        }
        FrameCorruption::Truncate(n) => bad.truncate(n as usize % len),
        FrameCorruption::LengthLie(v) => set_u32(&mut bad, 0, v),
        FrameCorruption::CrcLie(v) => set_u32(&mut bad, 8, v),
        FrameCorruption::TrailingGarbage(g) => {
            bad.extend_from_slice(&g);
            must_fail = false;
        }
        FrameCorruption::ForgedLongerBody(g) => {
            if g.is_empty() {
                return;
            }
            bad.extend_from_slice(&g);
            set_u32(&mut bad, 0, body_len.saturating_add(g.len() as u32));
            forge_crc(&mut bad);
        }
        FrameCorruption::ForgedShorterBody(n) => {
            let shrink = 1 + n % (body_len - 2);
            set_u32(&mut bad, 0, body_len - shrink);
            forge_crc(&mut bad);
        }
        FrameCorruption::ForgedBodyEdit(at, byte) => {
            let at = FRAME_HEADER_BYTES + at as usize % body_len as usize;
            if let Some(b) = bad.get_mut(at) {
                *b = byte;
            }
            forge_crc(&mut bad);
            must_fail = false;
            forged_edit = true;
        }
    }
    let unchanged = bad == frame;
    match decoders_agree(&bad, max) {
        Ok((got, used)) => {
            if unchanged {
                assert_eq!(got, record, "an intact frame decoded to a different record");
                assert_eq!(used, len, "intact frame length");
            } else if must_fail {
                panic!(
                    "corrupted frame decoded silently (record {}): {got:?}\nframe {frame:02x?}\nbad   {bad:02x?}",
                    if got == record { "same" } else { "DIFFERENT" },
                );
            } else if forged_edit {
                // A forged CRC may pass; the bytes must then be the record's one encoding.
                check_decode(&bad, max);
            } else {
                assert_eq!(got, record, "trailing bytes changed the decoded record");
                assert_eq!(used, len, "trailing bytes changed the frame length");
            }
        }
        Err(e) => {
            assert!(!unchanged, "an intact frame failed to decode: {e}");
            if bad.len() < len && bad.get(..) == frame.get(..bad.len()) {
                assert!(
                    matches!(e, DecodeError::Incomplete { .. }),
                    "a truncated frame must be Incomplete, got {e}"
                );
            }
        }
    }
}

/// Runs a structured harness on raw fuzzer bytes exactly as `libfuzzer_sys::fuzz_target!`
/// does: inputs shorter than the type's minimum size, or that do not build a value, are
/// skipped. Returns whether the harness ran.
pub fn run_bytes<T: for<'a> Arbitrary<'a>>(data: &[u8], harness: impl FnOnce(T)) -> bool {
    if data.len() < T::size_hint(0).0 {
        return false;
    }
    match T::arbitrary_take_rest(arbitrary::Unstructured::new(data)) {
        Ok(input) => {
            harness(input);
            true
        }
        Err(_) => false,
    }
}
