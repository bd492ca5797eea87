//! Writes the committed seed corpora under `fuzz/corpus/<target>/seed-NNN`, deterministically:
//! `cargo run -p batpak-model --example gen_fuzz_corpus`.
//!
//! * `frame_decode`: valid frames of every record shape (plain and with a forged-CRC mode
//!   byte; compaction's `Dropped` records included), truncations, length and CRC lies.
//! * `frame_decode_structured`: bytes from a fixed xorshift stream, kept when the value they
//!   build adds a (body kind, corruption kind) pair not seen yet, topped up to the minimum.
//! * `recovery`: hand-written workloads (appends, batches, the outbox, fences committed,
//!   cancelled, dropped and left open, segment rolls, big appends whose payloads hold frames,
//!   torn) under several crash choices, some with a damaged byte or an injected fault, some
//!   after earlier sessions (closed, crashed, power lost; with failed fsyncs, a full disk, a
//!   dead disk, a fault in recovery), some opened with a recovery checkpoint of each kind
//!   (raw, forged, real, damaged, torn, stale, another store's: seeds 64 on, whose encoding
//!   ends with the checkpoint field the earlier seeds leave out), written in the byte format
//!   `arbitrary` reads back. The
//!   frozen findings under `fuzz/regressions/recovery/` are re-encoded too (the input format
//!   follows the harness).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use arbitrary::{Arbitrary, Unstructured};
use batpak::__testing::codec::{self, FRAME_BYTES_MAX_DEFAULT};
use batpak::__testing::log::{EventRecord, Record, RecordBody, Unit};
use batpak_model::fuzz_harness::{
    ArbBody, CheckpointInput, EndInput, FaultInput, FrameCorruption, ImageCorruption, Op,
    RecoveryInput, SessionInput, StructuredFrame, FUZZ_SALT,
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
        // Compaction's records: a removed range, the empty mark that starts a compacted
        // segment, and a range that ends before it starts (valid frame, refused by the scan).
        Record {
            seq: 7,
            body: RecordBody::Dropped { to: 70_000 },
        },
        Record {
            seq: 9,
            body: RecordBody::Dropped { to: 9 },
        },
        Record {
            seq: 300,
            body: RecordBody::Dropped { to: 2 },
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
        const N: u32 = Op::ARB_OLD_VARIANTS;
        match *op {
            Op::Append { entity, pad } => {
                self.variant(0, N);
                self.u8(entity);
                self.u8(pad);
            }
            Op::BigAppend { entity, size } => {
                self.variant(1, N);
                self.u8(entity);
                self.u8(size);
            }
            Op::Batch { n, entity } => {
                self.variant(2, N);
                self.u8(n);
                self.u8(entity);
            }
            Op::Outbox { n, entity } => {
                self.variant(3, N);
                self.u8(n);
                self.u8(entity);
            }
            Op::Sync => self.variant(4, N),
            Op::WaitDurable => self.variant(5, N),
            Op::Roll => self.variant(6, N),
            Op::FenceBegin => self.variant(7, N),
            Op::FencedAppend { entity } => {
                self.variant(8, N);
                self.u8(entity);
            }
            Op::FencedBatch { n, entity } => {
                self.variant(9, N);
                self.u8(n);
                self.u8(entity);
            }
            Op::FencedOutbox { n, entity } => {
                self.variant(10, N);
                self.u8(n);
                self.u8(entity);
            }
            Op::FenceCommit => self.variant(11, N),
            Op::FenceCancel => self.variant(12, N),
            Op::FenceDrop => self.variant(13, N),
            // The top of the range of variant 0, 1 or 2 (see `Op`'s `Arbitrary` impl).
            Op::ConsumerPoll { c, max } => {
                self.consumer_variant(0);
                self.u8(c);
                self.u8(max);
            }
            Op::ConsumerCommit { c } => {
                self.consumer_variant(1);
                self.u8(c);
            }
            Op::ConsumerResume { c } => {
                self.consumer_variant(2);
                self.u8(c);
            }
        }
    }
    /// Consumer operation `k`: the largest `v` of old variant `k`'s range.
    fn consumer_variant(&mut self, k: u32) {
        let n = u64::from(Op::ARB_OLD_VARIANTS);
        let v = ((u64::from(k) + 1) << 32).div_ceil(n) - 1;
        self.0.extend_from_slice(&(v as u32).to_le_bytes());
    }
    fn ops(&mut self, ops: &[Op]) {
        for op in ops {
            self.bool(true);
            self.op(op);
        }
        self.bool(false);
    }
    fn fault(&mut self, f: Option<FaultInput>) {
        const N: u32 = 5;
        self.bool(f.is_some());
        match f {
            None => {}
            Some(FaultInput::Eio { op, during_open }) => {
                self.variant(0, N);
                self.u8(op);
                self.bool(during_open);
            }
            Some(FaultInput::FailedFsync {
                before_op,
                drop_pages,
            }) => {
                self.variant(1, N);
                self.u8(before_op);
                self.bool(drop_pages);
            }
            Some(FaultInput::DiskFull { before_op, short }) => {
                self.variant(2, N);
                self.u8(before_op);
                self.u8(short);
            }
            Some(FaultInput::DiskDies { op, during_open }) => {
                self.variant(3, N);
                self.u8(op);
                self.bool(during_open);
            }
            Some(FaultInput::ProcessCrash { op, during_open }) => {
                self.variant(4, N);
                self.u8(op);
                self.bool(during_open);
            }
        }
    }
    fn session(&mut self, s: &SessionInput) {
        self.bool(s.deferred);
        self.ops(&s.ops);
        self.fault(s.fault);
        match &s.end {
            EndInput::Close => self.variant(0, 3),
            EndInput::ProcessCrash => self.variant(1, 3),
            EndInput::PowerLoss(b) => {
                self.variant(2, 3);
                self.bytes(b);
            }
        }
    }
    fn recovery(mut self, r: &RecoveryInput) -> Vec<u8> {
        for s in &r.history {
            self.bool(true);
            self.session(s);
        }
        self.bool(false);
        self.bool(r.deferred);
        self.ops(&r.ops);
        self.fault(r.fault);
        self.bytes(&r.crash);
        self.bool(r.corruption.is_some());
        if let Some(c) = r.corruption {
            self.u8(c.file);
            self.0.extend_from_slice(&c.offset.to_le_bytes());
            self.u8(c.xor);
        }
        self.bytes(&r.recrash);
        // Nothing for no checkpoint: the inputs of the format before the field end here.
        if let Some(c) = &r.checkpoint {
            self.bool(true);
            self.checkpoint(c);
        }
        self.0
    }
    fn checkpoint(&mut self, c: &CheckpointInput) {
        const N: u32 = 5;
        match c {
            CheckpointInput::Raw(b) => {
                self.variant(0, N);
                self.bytes(b);
            }
            CheckpointInput::Forged(b) => {
                self.variant(1, N);
                self.bytes(b);
            }
            CheckpointInput::Damaged { flips, truncate } => {
                self.variant(2, N);
                for &(at, xor) in flips {
                    self.bool(true);
                    self.0.extend_from_slice(&at.to_le_bytes());
                    self.u8(xor);
                }
                self.bool(false);
                self.bool(truncate.is_some());
                if let Some(n) = truncate {
                    self.0.extend_from_slice(&n.to_le_bytes());
                }
            }
            CheckpointInput::Stale { keep, diverge } => {
                self.variant(3, N);
                self.0.extend_from_slice(&keep.to_le_bytes());
                self.u8(*diverge);
            }
            CheckpointInput::Foreign { events } => {
                self.variant(4, N);
                self.u8(*events);
            }
        }
    }
}

fn a(entity: u8, pad: u8) -> Op {
    Op::Append { entity, pad }
}

fn batch(n: u8, entity: u8) -> Op {
    Op::Batch { n, entity }
}

fn fenced(entity: u8) -> Op {
    Op::FencedAppend { entity }
}

fn fenced_batch(n: u8, entity: u8) -> Op {
    Op::FencedBatch { n, entity }
}

fn big(entity: u8, size: u8) -> Op {
    Op::BigAppend { entity, size }
}

/// A last session with no history.
fn single(deferred: bool, ops: Vec<Op>, crash: Vec<u8>) -> RecoveryInput {
    RecoveryInput {
        history: Vec::new(),
        deferred,
        ops,
        fault: None,
        crash,
        corruption: None,
        recrash: vec![1, 255, 2],
        checkpoint: None,
    }
}

/// Hand-written workloads: each crash pattern picks other surviving prefixes.
fn workloads() -> Vec<Vec<Op>> {
    use Op::*;
    vec![
        vec![a(0, 1), a(1, 2), a(2, 3), a(0, 4)],
        vec![a(0, 1), a(1, 2), Sync, a(2, 3), a(0, 4)],
        vec![batch(2, 0), a(1, 1), batch(1, 2)],
        vec![FenceBegin, fenced(0), fenced(1), FenceCommit, a(2, 3)],
        vec![
            FenceBegin,
            fenced(0),
            fenced_batch(2, 1),
            FenceCancel,
            a(2, 3),
        ],
        vec![a(0, 0), FenceBegin, fenced(1), FenceDrop, a(2, 2)],
        vec![a(0, 0), FenceBegin, fenced(1), fenced_batch(1, 2)],
        vec![big(0, 10), big(1, 100), big(2, 255), a(0, 1)],
        vec![
            big(0, 60),
            batch(2, 1),
            FenceBegin,
            fenced_batch(2, 0),
            FenceCommit,
            Sync,
        ],
        vec![
            a(0, 1),
            batch(1, 1),
            FenceBegin,
            fenced(2),
            fenced_batch(2, 0),
            FenceCommit,
            big(1, 90),
            Sync,
            FenceBegin,
            fenced(0),
            FenceCancel,
            a(2, 6),
        ],
        vec![
            Outbox { n: 2, entity: 0 },
            a(1, 200),
            WaitDurable,
            FenceBegin,
            FencedOutbox { n: 1, entity: 2 },
            FenceCommit,
            Roll,
        ],
    ]
}

/// Earlier sessions: every end, every kind of fault.
fn histories() -> Vec<Vec<SessionInput>> {
    use Op::*;
    let s = |deferred, ops: Vec<Op>, fault, end| SessionInput {
        deferred,
        ops,
        fault,
        end,
    };
    vec![
        vec![s(
            true,
            vec![a(0, 1), batch(1, 1), a(2, 0)],
            None,
            EndInput::ProcessCrash,
        )],
        vec![s(
            true,
            vec![a(0, 1), Roll, batch(2, 0)],
            None,
            EndInput::PowerLoss(vec![1, 2, 3, 1, 2]),
        )],
        vec![
            s(false, vec![a(0, 1), a(1, 2)], None, EndInput::Close),
            s(
                true,
                vec![FenceBegin, fenced(0), fenced_batch(1, 1)],
                None,
                EndInput::ProcessCrash,
            ),
        ],
        vec![s(
            false,
            vec![a(0, 1), batch(1, 0), Sync, a(2, 0)],
            Some(FaultInput::FailedFsync {
                before_op: 1,
                drop_pages: false,
            }),
            EndInput::ProcessCrash,
        )],
        vec![s(
            true,
            vec![a(0, 1), a(1, 2), Sync, a(2, 3)],
            Some(FaultInput::FailedFsync {
                before_op: 2,
                drop_pages: true,
            }),
            EndInput::PowerLoss(vec![255, 255]),
        )],
        vec![s(
            false,
            vec![a(0, 1), batch(2, 1), a(2, 3)],
            Some(FaultInput::DiskFull {
                before_op: 1,
                short: 13,
            }),
            EndInput::Close,
        )],
        vec![s(
            true,
            vec![a(0, 1), Roll, a(1, 2), Sync],
            Some(FaultInput::DiskDies {
                op: 6,
                during_open: false,
            }),
            EndInput::ProcessCrash,
        )],
        vec![
            s(true, vec![a(0, 1), a(1, 1)], None, EndInput::ProcessCrash),
            s(
                false,
                vec![a(2, 2)],
                Some(FaultInput::Eio {
                    op: 9,
                    during_open: true,
                }),
                EndInput::ProcessCrash,
            ),
            s(
                false,
                vec![a(0, 3)],
                Some(FaultInput::ProcessCrash {
                    op: 2,
                    during_open: false,
                }),
                EndInput::PowerLoss(vec![0, 0, 0]),
            ),
        ],
    ]
}

/// The frozen findings of the recovery target, in the current input format.
fn recovery_regressions() -> Vec<(&'static str, RecoveryInput)> {
    use Op::*;
    vec![
        // Durable mode: a big append, a batch of 3, a fence with a fenced batch of 3 that
        // needs a segment roll, commit, sync; the roll's seal fsync fails (a transient fault
        // 12 disk operations after the open).
        (
            "roll_fsync_failure_rewrites_frames.bin",
            RecoveryInput {
                history: Vec::new(),
                deferred: false,
                ops: vec![
                    big(0, 60),
                    batch(2, 1),
                    FenceBegin,
                    fenced_batch(2, 0),
                    FenceCommit,
                    Sync,
                ],
                fault: Some(FaultInput::Eio {
                    op: 12,
                    during_open: false,
                }),
                crash: vec![255; 12],
                corruption: None,
                recrash: vec![255; 4],
                checkpoint: None,
            },
        ),
        // Deferred mode: a big append (acknowledged, not durable), then a batch whose roll
        // fails to sync the segment it seals (a transient fault 1 operation after the open).
        (
            "failed_seal_cuts_unsynced_deferred_events.bin",
            RecoveryInput {
                history: Vec::new(),
                deferred: true,
                ops: vec![big(0, 60), batch(2, 1), a(0, 0)],
                fault: Some(FaultInput::Eio {
                    op: 1,
                    during_open: false,
                }),
                crash: Vec::new(),
                corruption: None,
                recrash: Vec::new(),
                checkpoint: None,
            },
        ),
        // A damaged byte in a durable log with a fence open at the crash.
        (
            "crash_2dad592a.bin",
            RecoveryInput {
                history: Vec::new(),
                deferred: false,
                ops: vec![
                    big(0, 60),
                    batch(2, 1),
                    FenceBegin,
                    fenced_batch(51, 51),
                    a(1, 154),
                    fenced(102),
                ],
                fault: None,
                crash: Vec::new(),
                corruption: Some(ImageCorruption {
                    file: 255,
                    offset: 65281,
                    xor: 1,
                }),
                recrash: vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
                checkpoint: None,
            },
        ),
    ]
}

fn encode(r: &RecoveryInput) -> Vec<u8> {
    let bytes = ArbWriter::default().recovery(r);
    let back = RecoveryInput::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
    assert_eq!(&back, r, "seed encoding does not round-trip");
    bytes
}

fn recovery_seeds() -> Vec<Vec<u8>> {
    let workloads = workloads();
    let crashes: [&[u8]; 4] = [&[], &[255; 12], &[1, 2, 3, 1, 2, 3, 1, 2, 3], &[3; 12]];
    let mut seeds = Vec::new();
    for (i, ops) in workloads.iter().enumerate() {
        for (j, crash) in crashes.iter().enumerate() {
            if (i + j) % 2 == 1 && j != 1 {
                continue;
            }
            seeds.push(single((i + j) % 3 != 0, ops.clone(), crash.to_vec()));
        }
    }
    // Damage and faults on a few workloads.
    for (i, ops) in workloads.iter().enumerate().step_by(2) {
        seeds.push(RecoveryInput {
            corruption: Some(ImageCorruption {
                file: i as u8,
                offset: 40 + 13 * i as u16,
                xor: 0x20,
            }),
            recrash: vec![],
            ..single(i % 4 == 0, ops.clone(), vec![255; 12])
        });
        seeds.push(RecoveryInput {
            fault: Some(if i % 3 == 0 {
                FaultInput::DiskDies {
                    op: 3 + i as u8,
                    during_open: false,
                }
            } else {
                FaultInput::Eio {
                    op: 3 + i as u8,
                    during_open: false,
                }
            }),
            recrash: vec![255; 4],
            ..single(i % 4 != 0, ops.clone(), vec![255; 12])
        });
    }
    // Big appends whose payloads hold frames sealed for their segment, as the last write,
    // torn by the crash (choice 7 of the first file tears the last write; 4-6 keep less).
    let embedding: [Vec<Op>; 2] = [vec![a(0, 1), big(1, 20)], vec![big(0, 100), big(1, 200)]];
    for (i, ops) in embedding.iter().enumerate() {
        for crash in [7u8, 6, 5, 4] {
            seeds.push(RecoveryInput {
                corruption: (crash == 4).then_some(ImageCorruption {
                    file: i as u8,
                    offset: 41 + 7 * i as u16,
                    xor: 0x04,
                }),
                recrash: vec![1],
                ..single(true, ops.clone(), vec![crash, 3])
            });
        }
    }
    // Multi-session histories before a last workload.
    for (i, history) in histories().into_iter().enumerate() {
        let ops = workloads[(3 * i) % workloads.len()].clone();
        seeds.push(RecoveryInput {
            history,
            ..single(i % 2 == 0, ops, vec![(i * 37) as u8; 6])
        });
    }
    seeds.extend(consumer_seeds());
    seeds.extend(checkpoint_seeds());
    seeds.iter().map(encode).collect()
}

/// A forged checkpoint body (after magic and version) of one segment and one event whose
/// fields add up: the decoder accepts it, the segment's fingerprint must refuse it.
fn forged_body() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_le_bytes()); // segments
    b.extend_from_slice(&1u64.to_le_bytes()); // entries
    b.extend_from_slice(&0u64.to_le_bytes()); // first sequence
    b.extend_from_slice(&1u64.to_le_bytes()); // covered sequences
    b.extend_from_slice(&1u64.to_le_bytes()); // segment id
    b.extend_from_slice(&0u64.to_le_bytes()); // its first sequence
    b.extend_from_slice(&0x5a17_u32.to_le_bytes()); // salt
    b.extend_from_slice(&200u64.to_le_bytes()); // covered length
    b.extend_from_slice(&32u64.to_le_bytes()); // last covered frame
    b.extend_from_slice(&[7; 12]); // its head
    b.push(1); // the bitmap
    b.extend_from_slice(&[9; 36]); // the entry
    b
}

/// The recovery checkpoint under the harness: each kind of `recovery.ckpt` (raw bytes, a
/// forged one, the real one intact, torn and damaged, stale ones, another store's) on crash
/// images after earlier sessions that closed (so the image holds a checkpoint of its own),
/// and on a damaged image.
fn checkpoint_seeds() -> Vec<RecoveryInput> {
    use CheckpointInput::*;
    let closed = |ops: Vec<Op>| SessionInput {
        deferred: false,
        ops,
        fault: None,
        end: EndInput::Close,
    };
    let history = vec![
        closed(vec![a(0, 1), batch(2, 1), a(2, 3)]),
        closed(vec![a(1, 2), Op::Sync, big(0, 40)]),
    ];
    let inputs = [
        Raw(vec![0x42; 40]),
        Forged(forged_body()),
        Damaged {
            flips: Vec::new(),
            truncate: None,
        },
        Damaged {
            flips: vec![(20, 0x10), (300, 0x01)],
            truncate: None,
        },
        Damaged {
            flips: Vec::new(),
            truncate: Some(100),
        },
        Stale {
            keep: 3,
            diverge: 0,
        },
        Stale {
            keep: 2,
            diverge: 3,
        },
        Foreign { events: 6 },
    ];
    let workloads = workloads();
    let mut seeds = Vec::new();
    for (i, c) in inputs.into_iter().enumerate() {
        let ops = workloads[(2 * i + 1) % workloads.len()].clone();
        seeds.push(RecoveryInput {
            history: if i % 2 == 0 {
                history.clone()
            } else {
                Vec::new()
            },
            checkpoint: Some(c),
            ..single(i % 3 == 1, ops, vec![(i * 29) as u8; 6])
        });
    }
    // The real checkpoint of a damaged image, and a stale one of an image with a hole.
    seeds.push(RecoveryInput {
        history: history.clone(),
        corruption: Some(ImageCorruption {
            file: 0,
            offset: 70,
            xor: 0x08,
        }),
        checkpoint: Some(Damaged {
            flips: Vec::new(),
            truncate: None,
        }),
        ..single(false, workloads[1].clone(), vec![255; 12])
    });
    seeds.push(RecoveryInput {
        history,
        checkpoint: Some(Stale {
            keep: 4,
            diverge: 2,
        }),
        ..single(true, workloads[0].clone(), vec![1, 2, 3, 1, 2, 3, 1, 2, 3])
    });
    seeds
}

fn poll(c: u8, max: u8) -> Op {
    Op::ConsumerPoll { c, max }
}

fn commit(c: u8) -> Op {
    Op::ConsumerCommit { c }
}

fn resume(c: u8) -> Op {
    Op::ConsumerResume { c }
}

/// Durable consumers (`c0` commits with outputs, `c1` plainly) polling, committing and
/// resuming across sessions that close, crash or lose power, and in the crashed last session.
fn consumer_seeds() -> Vec<RecoveryInput> {
    use Op::*;
    let s = |deferred, ops: Vec<Op>, fault, end| SessionInput {
        deferred,
        ops,
        fault,
        end,
    };
    let mut seeds = vec![
        // Both consumers in one durable session, crashed at every image of the last writes.
        single(
            false,
            vec![
                a(0, 1),
                batch(1, 1),
                poll(0, 3),
                commit(0),
                poll(1, 1),
                commit(1),
                a(2, 2),
                poll(0, 3),
                commit(0),
            ],
            vec![255; 12],
        ),
        // Deferred: what a consumer is handed is durable (sync first); commits sync.
        single(
            true,
            vec![
                a(0, 1),
                a(1, 2),
                poll(0, 3),
                Sync,
                poll(0, 3),
                commit(0),
                a(2, 3),
                poll(1, 3),
                commit(1),
                a(0, 4),
            ],
            vec![1, 2, 3, 1, 2, 3],
        ),
        // A resume hands out again what was not committed; a fence hides its events.
        single(
            false,
            vec![
                a(0, 1),
                FenceBegin,
                fenced(1),
                poll(0, 3),
                commit(0),
                resume(0),
                FenceCommit,
                poll(0, 3),
                resume(0),
                poll(0, 1),
                commit(0),
            ],
            vec![3; 12],
        ),
    ];
    let histories = vec![
        // A checkpoint committed, then a process crash: the next session resumes after it.
        vec![s(
            false,
            vec![
                a(0, 1),
                a(1, 2),
                poll(0, 3),
                commit(0),
                poll(1, 1),
                commit(1),
            ],
            None,
            EndInput::ProcessCrash,
        )],
        // Deferred appends lost to a power loss around committed checkpoints.
        vec![s(
            true,
            vec![
                a(0, 1),
                Sync,
                poll(0, 3),
                commit(0),
                a(1, 2),
                a(2, 3),
                poll(1, 3),
                commit(1),
                a(0, 4),
            ],
            None,
            EndInput::PowerLoss(vec![1, 2, 1, 2]),
        )],
        // A failed fsync during a commit, then a clean close and another session.
        vec![
            s(
                false,
                vec![
                    a(0, 1),
                    poll(0, 2),
                    commit(0),
                    a(1, 2),
                    poll(0, 2),
                    commit(0),
                ],
                Some(FaultInput::FailedFsync {
                    before_op: 5,
                    drop_pages: true,
                }),
                EndInput::Close,
            ),
            s(
                false,
                vec![
                    poll(0, 3),
                    commit(0),
                    poll(1, 3),
                    resume(1),
                    poll(1, 3),
                    commit(1),
                ],
                None,
                EndInput::PowerLoss(vec![255, 255]),
            ),
        ],
        // The process dies at the fsync of a `commit_with`, then a power loss tears its write
        // (the seeded bug `CheckpointNotAtomic` keeps the checkpoint and loses the outputs).
        vec![s(
            false,
            vec![a(0, 1), a(1, 2), poll(0, 3), commit(0), a(2, 3)],
            Some(FaultInput::ProcessCrash {
                op: 5,
                during_open: false,
            }),
            EndInput::PowerLoss(vec![3; 4]),
        )],
        // A full disk under a commit's outputs.
        vec![s(
            true,
            vec![a(0, 1), a(1, 1), Sync, poll(0, 3), commit(0), a(2, 2)],
            Some(FaultInput::DiskFull {
                before_op: 4,
                short: 9,
            }),
            EndInput::ProcessCrash,
        )],
    ];
    for (i, history) in histories.into_iter().enumerate() {
        seeds.push(RecoveryInput {
            history,
            ..single(
                i % 2 == 1,
                vec![
                    a(1, 5),
                    poll(0, 3),
                    commit(0),
                    poll(1, 2),
                    commit(1),
                    a(2, 6),
                ],
                vec![(i * 41) as u8; 8],
            )
        });
    }
    seeds
}

fn main() {
    write_seeds("frame_decode", &frame_decode_seeds());
    write_seeds(
        "frame_decode_structured",
        &select::<StructuredFrame>(0x5eed_f4a3e, 24..200, structured_features),
    );
    write_seeds("recovery", &recovery_seeds());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/recovery");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, input) in recovery_regressions() {
        std::fs::write(dir.join(name), encode(&input)).unwrap();
    }
    println!("recovery regressions re-encoded in {}", dir.display());
}
