//! Writes the committed seed corpora under `fuzz/corpus/<target>/seed-NNN`, deterministically:
//! `cargo run -p batpak-model --example gen_fuzz_corpus`.
//!
//! * `frame_decode`: valid frames of every record shape (plain and with a forged-CRC mode
//!   byte), truncations, length and CRC lies.
//! * `frame_decode_structured`: bytes from a fixed xorshift stream, kept when the value they
//!   build adds a (body kind, corruption kind) pair not seen yet, topped up to the minimum.
//! * `recovery`: hand-written workloads (appends, batches, fences committed, cancelled,
//!   dropped and left open, segment rolls, big appends whose payloads hold frames, torn)
//!   under several crash choices, some with a damaged byte or an injected fault, written in
//!   the byte format `arbitrary` reads back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arbitrary::{Arbitrary, Unstructured};
use batpak::__testing::codec::{self, FRAME_BYTES_MAX_DEFAULT};
use batpak::__testing::log::{EventRecord, Record, RecordBody, Unit};
use batpak_model::fuzz_harness::{
    ArbBody, Fault, FrameCorruption, ImageCorruption, Op, RecoveryInput, StructuredFrame, FUZZ_SALT,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const SEEDS_MIN: usize = 24;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn write_seeds(target: &str, seeds: &[Vec<u8>]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let is_seed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"));
        if is_seed {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), s).unwrap();
    }
    println!("{target}: {} seeds in {}", seeds.len(), dir.display());
}

fn event<'a>(seq: u64, unit: Unit, entity: &'a str, payload: &'a [u8]) -> Record<'a> {
    Record {
        seq,
        body: RecordBody::Event(EventRecord {
            unit,
            event_id: (0x0190_0000_0000_7000u128 << 64) | u128::from(seq),
            correlation_id: if seq.is_multiple_of(2) {
                None
            } else {
                Some(77)
            },
            causation_id: if seq.is_multiple_of(3) { None } else { Some(5) },
            timestamp_us: 1_700_000_000_000_000 + seq as i64,
            clock: seq as u32 + 1,
            kind: 0xF001,
            flags: seq as u8,
            prev_hash: [seq as u8; 32],
            idempotency_key: if seq.is_multiple_of(4) {
                Some(0xABCD)
            } else {
                None
            },
            entity,
            scope: "shop",
            payload,
        }),
    }
}

fn frame_decode_seeds() -> Vec<Vec<u8>> {
    let payload_small = [0x91u8, 0x2a];
    let payload_big = vec![7u8; 300];
    let records = vec![
        event(0, Unit::None, "order:1", &payload_small),
        event(1, Unit::Batch(1), "order:2", &payload_small),
        event(2, Unit::Fence(2), "o", &[]),
        event(
            3,
            Unit::FencedBatch { fence: 2, batch: 3 },
            "order:3",
            &payload_big,
        ),
        event(250, Unit::None, "e", &payload_small),
        event(
            70_000,
            Unit::None,
            "entity-with-a-longer-name",
            &payload_big,
        ),
        Record {
            seq: 4,
            body: RecordBody::BatchCommit { batch: 1, count: 3 },
        },
        Record {
            seq: 5,
            body: RecordBody::FenceBegin { fence: 5 },
        },
        Record {
            seq: 6,
            body: RecordBody::FenceCommit { fence: 5 },
        },
        Record {
            seq: u64::MAX,
            body: RecordBody::FenceCancel { fence: u64::MAX },
        },
    ];
    let mut seeds = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let frame = codec::encode(r, FRAME_BYTES_MAX_DEFAULT, FUZZ_SALT).unwrap();
        // Mode 0x00: as written. Mode 0x80: the harness re-forges the CRC.
        seeds.push([&[0x00u8][..], &frame].concat());
        seeds.push([&[0x80u8][..], &frame].concat());
        match i % 4 {
            0 => seeds.push([&[0x00u8][..], &frame[..frame.len() / 2]].concat()),
            1 => {
                let mut f = frame.clone();
                f[0] = f[0].wrapping_add(1);
                seeds.push([&[0x80u8][..], &f].concat());
            }
            2 => {
                let mut f = frame.clone();
                f[5] ^= 0x10;
                seeds.push([&[0x00u8][..], &f].concat());
            }
            _ => seeds.push([&[0x00u8][..], &frame, &frame].concat()),
        }
    }
    seeds
}

fn body_kind(b: &ArbBody) -> u8 {
    match b {
        ArbBody::Event(_) => 0,
        ArbBody::BatchCommit(..) => 1,
        ArbBody::FenceBegin(_) => 2,
        ArbBody::FenceCommit(_) => 3,
        ArbBody::FenceCancel(_) => 4,
        ArbBody::Checkpoint(..) => 5,
    }
}

fn corruption_kind(c: &FrameCorruption) -> u8 {
    match c {
        FrameCorruption::None => 0,
        FrameCorruption::BitFlips(_) => 1,
        FrameCorruption::Truncate(_) => 2,
        FrameCorruption::LengthLie(_) => 3,
        FrameCorruption::CrcLie(_) => 4,
        FrameCorruption::TrailingGarbage(_) => 5,
        FrameCorruption::ForgedLongerBody(_) => 6,
        FrameCorruption::ForgedShorterBody(_) => 7,
        FrameCorruption::ForgedBodyEdit(..) => 8,
    }
}

/// Draws byte strings and keeps those whose decoded value brings a new feature.
fn select<T: for<'a> Arbitrary<'a>>(
    seed: u64,
    lens: std::ops::Range<usize>,
    features: impl Fn(&T) -> Vec<String>,
) -> Vec<Vec<u8>> {
    let mut rng = XorShift(seed);
    let mut seen = BTreeSet::new();
    let mut kept = Vec::new();
    let mut spare = Vec::new();
    for _ in 0..20_000 {
        let n = lens.start + (rng.next() as usize) % (lens.end - lens.start);
        let bytes = rng.bytes(n);
        let Ok(v) = T::arbitrary_take_rest(Unstructured::new(&bytes)) else {
            continue;
        };
        let new: Vec<String> = features(&v)
            .into_iter()
            .filter(|f| !seen.contains(f))
            .collect();
        if new.is_empty() {
            if spare.len() < SEEDS_MIN {
                spare.push(bytes);
            }
        } else {
            seen.extend(new);
            kept.push(bytes);
        }
    }
    let missing = SEEDS_MIN.saturating_sub(kept.len());
    kept.extend(spare.into_iter().take(missing));
    kept
}

fn structured_features(s: &StructuredFrame) -> Vec<String> {
    vec![format!(
        "{}x{}",
        body_kind(&s.record.body),
        corruption_kind(&s.corruption)
    )]
}

/// Bytes that `arbitrary` (1.x) decodes back to the value: integers little endian, `bool` one
/// byte, `Option` a bool then the value, collections a "keep going" byte before each element
/// and a 0 after the last, enum variant `i` of `n` a u32 `v` with `(v * n) >> 32 == i`.
#[derive(Default)]
struct ArbWriter(Vec<u8>);

impl ArbWriter {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }
    fn variant(&mut self, i: u32, n: u32) {
        let v = (u64::from(i) << 32).div_ceil(u64::from(n));
        self.0.extend_from_slice(&(v as u32).to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0.extend_from_slice(&[1, x]);
        }
        self.0.push(0);
    }
    fn op(&mut self, op: &Op) {
        const N: u32 = 11;
        match *op {
            Op::Append { entity, payload } => {
                self.variant(0, N);
                self.u8(entity);
                self.u8(payload);
            }
            Op::BigAppend { entity, size } => {
                self.variant(1, N);
                self.u8(entity);
                self.u8(size);
            }
            Op::Batch { n, entity, payload } => {
                self.variant(2, N);
                self.u8(n);
                self.u8(entity);
                self.u8(payload);
            }
            Op::FenceBegin => self.variant(3, N),
            Op::FenceAppend { entity, payload } => {
                self.variant(4, N);
                self.u8(entity);
                self.u8(payload);
            }
            Op::FenceBatch { n, entity, payload } => {
                self.variant(5, N);
                self.u8(n);
                self.u8(entity);
                self.u8(payload);
            }
            Op::FenceCommit => self.variant(6, N),
            Op::FenceCancel => self.variant(7, N),
            Op::FenceDrop => self.variant(8, N),
            Op::Sync => self.variant(9, N),
            Op::Consume { n, outputs } => {
                self.variant(10, N);
                self.u8(n);
                self.u8(outputs);
            }
        }
    }
    fn recovery(mut self, r: &RecoveryInput) -> Vec<u8> {
        self.bool(r.deferred);
        for op in &r.ops {
            self.bool(true);
            self.op(op);
        }
        self.bool(false);
        self.bool(r.fault.is_some());
        if let Some(f) = r.fault {
            self.u8(f.op_after_open);
            self.bool(f.persistent);
        }
        self.bytes(&r.crash);
        self.bool(r.corruption.is_some());
        if let Some(c) = r.corruption {
            self.u8(c.file);
            self.0.extend_from_slice(&c.offset.to_le_bytes());
            self.u8(c.xor);
        }
        self.bytes(&r.recrash);
        self.0
    }
}

fn a(entity: u8, payload: u8) -> Op {
    Op::Append { entity, payload }
}

/// Hand-written workloads: each crash pattern picks other surviving prefixes.
fn recovery_seeds() -> Vec<Vec<u8>> {
    use Op::*;
    let workloads: Vec<Vec<Op>> = vec![
        vec![a(0, 1), a(1, 2), a(2, 3), a(0, 4)],
        vec![a(0, 1), a(1, 2), Sync, a(2, 3), a(0, 4)],
        vec![
            Batch {
                n: 2,
                entity: 0,
                payload: 9,
            },
            a(1, 1),
            Batch {
                n: 1,
                entity: 2,
                payload: 8,
            },
        ],
        vec![
            FenceBegin,
            FenceAppend {
                entity: 0,
                payload: 1,
            },
            FenceAppend {
                entity: 1,
                payload: 2,
            },
            FenceCommit,
            a(2, 3),
        ],
        vec![
            FenceBegin,
            FenceAppend {
                entity: 0,
                payload: 1,
            },
            FenceBatch {
                n: 2,
                entity: 1,
                payload: 5,
            },
            FenceCancel,
            a(2, 3),
        ],
        vec![
            a(0, 0),
            FenceBegin,
            FenceAppend {
                entity: 1,
                payload: 1,
            },
            FenceDrop,
            a(2, 2),
        ],
        vec![
            a(0, 0),
            FenceBegin,
            FenceAppend {
                entity: 1,
                payload: 1,
            },
            FenceBatch {
                n: 1,
                entity: 2,
                payload: 2,
            },
        ],
        vec![
            BigAppend {
                entity: 0,
                size: 10,
            },
            BigAppend {
                entity: 1,
                size: 100,
            },
            BigAppend {
                entity: 2,
                size: 255,
            },
            a(0, 1),
        ],
        vec![
            BigAppend {
                entity: 0,
                size: 60,
            },
            Batch {
                n: 2,
                entity: 1,
                payload: 3,
            },
            FenceBegin,
            FenceBatch {
                n: 2,
                entity: 0,
                payload: 4,
            },
            FenceCommit,
            Sync,
        ],
        vec![
            a(0, 1),
            Batch {
                n: 1,
                entity: 1,
                payload: 2,
            },
            FenceBegin,
            FenceAppend {
                entity: 2,
                payload: 3,
            },
            FenceBatch {
                n: 2,
                entity: 0,
                payload: 4,
            },
            FenceCommit,
            BigAppend {
                entity: 1,
                size: 90,
            },
            Sync,
            FenceBegin,
            FenceAppend {
                entity: 0,
                payload: 5,
            },
            FenceCancel,
            a(2, 6),
        ],
    ];
    let crashes: [&[u8]; 4] = [&[], &[255; 12], &[1, 2, 3, 1, 2, 3, 1, 2, 3], &[3; 12]];
    let mut seeds = Vec::new();
    for (i, ops) in workloads.iter().enumerate() {
        for (j, crash) in crashes.iter().enumerate() {
            if (i + j) % 2 == 1 && j != 1 {
                continue;
            }
            let input = RecoveryInput {
                deferred: (i + j) % 3 != 0,
                ops: ops.clone(),
                fault: None,
                crash: crash.to_vec(),
                corruption: None,
                recrash: vec![1, 255, 2],
            };
            seeds.push(input);
        }
    }
    // Damage and faults on a few workloads.
    for (i, ops) in workloads.iter().enumerate().step_by(2) {
        seeds.push(RecoveryInput {
            deferred: i % 4 == 0,
            ops: ops.clone(),
            fault: None,
            crash: vec![255; 12],
            corruption: Some(ImageCorruption {
                file: i as u8,
                offset: 40 + 13 * i as u16,
                xor: 0x20,
            }),
            recrash: vec![],
        });
        seeds.push(RecoveryInput {
            deferred: i % 4 != 0,
            ops: ops.clone(),
            fault: Some(Fault {
                op_after_open: 3 + i as u8,
                persistent: i % 3 == 0,
            }),
            crash: vec![255; 12],
            corruption: None,
            recrash: vec![255; 4],
        });
    }
    // Big appends whose payloads hold frames sealed for their segment, as the last write,
    // torn by the crash (choice 7 of the first file tears the last write; 4-6 keep less).
    let embedding: [Vec<Op>; 2] = [
        vec![
            a(0, 1),
            BigAppend {
                entity: 1,
                size: 20,
            },
        ],
        vec![
            BigAppend {
                entity: 0,
                size: 100,
            },
            BigAppend {
                entity: 1,
                size: 200,
            },
        ],
    ];
    for (i, ops) in embedding.iter().enumerate() {
        for crash in [7u8, 6, 5, 4] {
            seeds.push(RecoveryInput {
                deferred: true,
                ops: ops.clone(),
                fault: None,
                crash: vec![crash, 3],
                corruption: (crash == 4).then_some(ImageCorruption {
                    file: i as u8,
                    offset: 41 + 7 * i as u16,
                    xor: 0x04,
                }),
                recrash: vec![1],
            });
        }
    }
    seeds
        .iter()
        .map(|r| {
            let bytes = ArbWriter::default().recovery(r);
            let back = RecoveryInput::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
            assert_eq!(
                format!("{back:?}"),
                format!("{r:?}"),
                "seed encoding does not round-trip"
            );
            bytes
        })
        .collect()
}

fn main() {
    write_seeds("frame_decode", &frame_decode_seeds());
    write_seeds(
        "frame_decode_structured",
        &select::<StructuredFrame>(0x5eed_f4a3e, 24..200, structured_features),
    );
    write_seeds("recovery", &recovery_seeds());
}
