//! Replays every committed fuzz input through the same harness the fuzz targets run
//! (`batpak_model::fuzz_harness`), so `cargo test` checks the seed corpora
//! (`fuzz/corpus/<target>/`) and the frozen findings (`fuzz/regressions/<target>/`) without
//! cargo-fuzz. Every finding gets a named test below as well.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak_model::fuzz_harness::{
    forge_crc, frame_decode, frame_decode_structured, lifecycle_events, recovery, recovery_with,
    run_bytes, Outcome, RecoveryInput, StructuredFrame,
};
#[cfg(batpak_mutant)]
use batpak_model::fuzz_harness::{CheckpointInput, EndInput, FaultInput, Op, SessionInput};
use batpak_model::workload::Mutant;
use std::path::{Path, PathBuf};

const SEEDS_MIN: usize = 20;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Files of `fuzz/<kind>/<target>/`, sorted (none if the directory is missing).
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Runs `run` on every input, naming the file that fails. Returns how many ran.
fn replay(kind: &str, target: &str, run: impl Fn(&[u8])) -> usize {
    let all = inputs(kind, target);
    for (path, bytes) in &all {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(bytes)));
        if let Err(e) = outcome {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{} fails: {msg}", path.display());
        }
    }
    all.len()
}

fn run_frame_decode(b: &[u8]) {
    frame_decode(b);
}

fn run_structured(b: &[u8]) {
    run_bytes::<StructuredFrame>(b, frame_decode_structured);
}

fn run_recovery(b: &[u8]) {
    run_bytes::<RecoveryInput>(b, recovery);
}

#[test]
fn frame_decode_corpus_replays_clean() {
    let n = replay("corpus", "frame_decode", run_frame_decode);
    assert!(n >= SEEDS_MIN, "only {n} frame_decode seeds");
}

#[test]
fn frame_decode_structured_corpus_replays_clean() {
    let n = replay("corpus", "frame_decode_structured", run_structured);
    assert!(n >= SEEDS_MIN, "only {n} frame_decode_structured seeds");
}

#[test]
fn recovery_corpus_replays_clean() {
    let n = replay("corpus", "recovery", run_recovery);
    assert!(n >= SEEDS_MIN, "only {n} recovery seeds");
}

#[test]
fn every_frozen_finding_replays_clean() {
    let n = replay("regressions", "frame_decode", run_frame_decode)
        + replay("regressions", "frame_decode_structured", run_structured)
        + replay("regressions", "recovery", run_recovery);
    assert!(n >= 1, "the frozen findings are missing");
}

/// Found by `frame_decode` in its first seconds: `FenceCommit { fence: 64764 }` with the fence
/// varint behind the u32 tag (252) instead of the u16 tag (251), under a forged CRC. bincode
/// reads over-long varints, so the frame decoded and re-encoded to other bytes (two encodings
/// of one record). Fixed in `codec::decode`, which now refuses a body longer than the record's
/// canonical encoding. (Re-laid for format version 2: four bytes for the head check inserted
/// after the length; the mode byte forges both checks.)
#[test]
fn frame_decode_refuses_an_over_long_varint() {
    let path = fuzz_dir().join("regressions/frame_decode/non_canonical_varint_accepted.bin");
    let bytes = std::fs::read(&path).unwrap();
    frame_decode(&bytes);
    let mut frame = bytes[1..].to_vec();
    forge_crc(&mut frame);
    assert!(matches!(
        batpak::__testing::codec::decode(
            &frame,
            batpak::__testing::codec::FRAME_BYTES_MAX_DEFAULT,
            batpak_model::fuzz_harness::FUZZ_SALT
        ),
        Err(batpak::__testing::codec::DecodeError::BadBody(_))
    ));
}

/// Found by the `recovery` seed corpus (in durable mode: a big append, a batch of 3, a fence
/// with a fenced batch of 3 that needs a segment roll, commit, sync; a transient fault at the
/// roll's seal fsync, 12 disk operations after the open in today's input format, which
/// `just fuzz-seeds` re-encodes the finding in). The fsync that seals the old segment during
/// the roll failed;
/// `GroupSink::emit` had already written the group's earlier frames but kept them in the group
/// buffer, and the end of the group wrote them a second time. The log then held sequence 6
/// after sequence 7, and `Store::open` refused the directory as corrupt: one transient fsync
/// error bricked the store. Also, a roll failure did not latch the writer, and a latched
/// writer still fsynced at the end of later groups, advancing `frontier().durable` and
/// answering `sync()` with Ok after the failure. Fixed in `writer/thread.rs`: a failed roll
/// drops the group buffer and latches; a latched writer does no more I/O.
#[test]
fn a_failed_segment_roll_never_writes_frames_twice() {
    let path = fuzz_dir().join("regressions/recovery/roll_fsync_failure_rewrites_frames.bin");
    let bytes = std::fs::read(&path).unwrap();
    let ran = run_bytes::<RecoveryInput>(&bytes, |input| {
        assert!(
            input.fault.is_some(),
            "the regression input injects a fault"
        );
        recovery(input);
    });
    assert!(ran, "the regression input no longer decodes");
}

/// A deferred workload whose batch and appends stay unsynced, crashed at `crash`.
#[cfg(batpak_mutant)]
fn unsynced_workload(crash: Vec<u8>) -> RecoveryInput {
    RecoveryInput {
        history: Vec::new(),
        deferred: true,
        ops: vec![
            Op::Batch { n: 1, entity: 0 },
            Op::Append { entity: 1, pad: 8 },
            Op::Append { entity: 2, pad: 9 },
        ],
        fault: None,
        crash,
        corruption: None,
        recrash: Vec::new(),
        checkpoint: None,
    }
}

/// The recovery harness picks among subset crash images too: over the choices of the first
/// chooser bytes, some images recover and some keep a later write after a lost one (a
/// hole), for which `open` must fail closed at the hole. The seeded bug
/// `RecoveryCutsAtHole` (recovery cuts at the first damage without looking further) passes
/// every hole-free image and is caught on every image with a hole.
#[cfg(batpak_mutant)]
#[test]
fn recovery_harness_reaches_holes_and_catches_a_blind_cut() {
    let (mut recovered, mut holes) = (0, 0);
    for a in 0..32u8 {
        for b in 0..4u8 {
            match recovery_with(unsynced_workload(vec![a, b]), Mutant::None) {
                Outcome::Recovered => recovered += 1,
                Outcome::HoleFailedClosed => {
                    holes += 1;
                    let caught = std::panic::catch_unwind(|| {
                        recovery_with(unsynced_workload(vec![a, b]), Mutant::RecoveryCutsAtHole)
                    });
                    let msg = caught.expect_err("RecoveryCutsAtHole survived a hole image");
                    let text = msg
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| msg.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    assert!(text.contains("INV-CORRUPTION-FAILS-CLOSED"), "{text}");
                }
                Outcome::DamageFailedClosed => panic!("no damage was injected"),
            }
        }
    }
    println!("subset crash images: {recovered} recovered, {holes} holes failed closed");
    assert!(recovered > 0, "no image recovered");
    assert!(holes > 0, "no image with a hole");
}

/// The recovery seed corpus reaches every kind of ending: recovered images, holes that fail
/// closed (subset crash images) and injected damage that fails closed; and some seed tears a
/// payload holding frames of its own segment (the seeded bug `RecoveryLooksInsideTornFrame`
/// fails on it; checked in the mutant build).
#[test]
fn recovery_corpus_reaches_every_outcome() {
    let mut seen = std::collections::BTreeMap::new();
    let mut histories = 0;
    let mut lifecycle = [0usize; 2];
    for (_, bytes) in inputs("corpus", "recovery") {
        run_bytes::<RecoveryInput>(&bytes, |input| {
            histories += usize::from(!input.history.is_empty());
            lifecycle[usize::from(lifecycle_events(&input))] += 1;
            *seen
                .entry(format!("{:?}", recovery_with(input, Mutant::None)))
                .or_insert(0usize) += 1;
        });
    }
    println!("recovery corpus outcomes: {seen:?}, {histories} seeds with earlier sessions");
    assert!(
        histories >= 8,
        "only {histories} seeds run earlier sessions"
    );
    println!("lifecycle events off/on in the last crash's reopens: {lifecycle:?}");
    assert!(
        lifecycle.iter().all(|&n| n >= 5),
        "lifecycle events off/on: {lifecycle:?}"
    );
    // Some seed tears a payload that holds frames of its own segment (mutant build only).
    #[cfg(batpak_mutant)]
    {
        let looks_inside_caught = inputs("corpus", "recovery")
            .iter()
            .filter(|(_, bytes)| {
                let mut caught = false;
                run_bytes::<RecoveryInput>(bytes, |input| {
                    caught = std::panic::catch_unwind(|| {
                        recovery_with(input, Mutant::RecoveryLooksInsideTornFrame)
                    })
                    .is_err();
                });
                caught
            })
            .count();
        assert!(
            looks_inside_caught > 0,
            "no recovery seed tears a frame-embedding payload"
        );
    }
    for o in [
        Outcome::Recovered,
        Outcome::HoleFailedClosed,
        Outcome::DamageFailedClosed,
    ] {
        assert!(
            seen.contains_key(&format!("{o:?}")),
            "no seed ends {o:?}: {seen:?}"
        );
    }
}

/// A workload whose last write is an event with frame-shaped payload bytes (frames sealed with
/// the salt of the segment it lands in), crashed at `crash`.
#[cfg(batpak_mutant)]
fn torn_big_append(crash: Vec<u8>) -> RecoveryInput {
    RecoveryInput {
        history: Vec::new(),
        deferred: true,
        ops: vec![
            Op::Append { entity: 0, pad: 1 },
            Op::BigAppend {
                entity: 1,
                size: 20,
            },
        ],
        fault: None,
        crash,
        corruption: None,
        recrash: Vec::new(),
        checkpoint: None,
    }
}

/// The recovery harness's big payloads embed frames sealed for the segment they land in.
/// Crash images that tear that write recover as a torn tail; the seeded bug
/// `RecoveryLooksInsideTornFrame` (look for valid records inside the torn frame) takes one of
/// them for corruption and is caught, reported as INV-RECOVERY-IDEMPOTENT.
#[cfg(batpak_mutant)]
#[test]
fn recovery_harness_tears_frame_embedding_payloads_and_catches_looking_inside() {
    let (mut recovered, mut caught) = (0, 0);
    for a in 0..8u8 {
        for b in 0..8u8 {
            let crash = vec![a, b];
            if recovery_with(torn_big_append(crash.clone()), Mutant::None) == Outcome::Recovered {
                recovered += 1;
            }
            let run = std::panic::catch_unwind(|| {
                recovery_with(
                    torn_big_append(crash.clone()),
                    Mutant::RecoveryLooksInsideTornFrame,
                )
            });
            if let Err(msg) = run {
                let text = msg
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| msg.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                assert!(text.contains("INV-RECOVERY-IDEMPOTENT"), "{text}");
                caught += 1;
            }
        }
    }
    println!("torn frame-embedding payloads: {recovered} recovered, mutant caught on {caught}");
    assert!(
        caught > 0,
        "RecoveryLooksInsideTornFrame survived every torn image"
    );
}

/// The recovery harness reads its crash image as the page cache a crashed process left and
/// then loses power after the reopen: a store that reports what it recovered as durable
/// without syncing it (seeded bug `RecoveryTrustsPageCache`) is caught when the image keeps
/// unsynced writes and the power loss drops them.
#[cfg(batpak_mutant)]
#[test]
fn recovery_harness_catches_recovery_trusting_the_page_cache() {
    let mut input = unsynced_workload(vec![u8::MAX; 4]);
    input.recrash = vec![0; 4];
    assert_eq!(
        recovery_with(input.clone(), Mutant::None),
        Outcome::Recovered
    );
    let caught = std::panic::catch_unwind(|| {
        recovery_with(input, Mutant::RecoveryTrustsPageCache);
    });
    let msg = caught.expect_err("RecoveryTrustsPageCache survived a power loss after the reopen");
    let text = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(text.contains("INV-DURABLE"), "{text}");
}

/// Found by the `recovery` smoke once a failed fsync cut off the unsynced bytes: deferred mode,
/// a big append (acknowledged, not durable), then a batch whose segment roll fails to sync the
/// segment it seals (a transient fault 1 operation after open). The writer cuts the segment
/// back to its last synced length, so the acknowledged but not durable append is gone, as in
/// a crash; the harness had taken every receipt for a record of the written log.
#[test]
fn a_failed_seal_cuts_off_unsynced_deferred_events() {
    let path =
        fuzz_dir().join("regressions/recovery/failed_seal_cuts_unsynced_deferred_events.bin");
    let bytes = std::fs::read(&path).unwrap();
    let ran = run_bytes::<RecoveryInput>(&bytes, |input| {
        assert!(input.deferred && input.fault.is_some());
        recovery(input);
    });
    assert!(ran, "the regression input no longer decodes");
}

#[cfg(batpak_mutant)]
fn panic_text(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// The recovery harness runs fuzz-chosen sessions through the simulator and judges every one
/// with the oracle: a deferred session dies with its events unsynced, and the next session's
/// open finds them in the page cache. The seeded bug `RecoveryTrustsPageCache` (report them
/// durable without syncing them) is caught at that open, before the last crash image exists
/// (INV-DURABLE: the frontier it reports is not on the platter).
#[cfg(batpak_mutant)]
#[test]
fn recovery_harness_judges_multi_session_histories() {
    let input = RecoveryInput {
        history: vec![SessionInput {
            deferred: true,
            ops: vec![
                Op::Append { entity: 0, pad: 1 },
                Op::Batch { n: 1, entity: 1 },
            ],
            fault: None,
            end: EndInput::ProcessCrash,
        }],
        deferred: false,
        ops: vec![Op::Append { entity: 2, pad: 0 }],
        fault: None,
        crash: vec![u8::MAX; 4],
        corruption: None,
        recrash: vec![0; 4],
        checkpoint: None,
    };
    assert_eq!(
        recovery_with(input.clone(), Mutant::None),
        Outcome::Recovered
    );
    let caught = std::panic::catch_unwind(|| {
        recovery_with(input, Mutant::RecoveryTrustsPageCache);
    });
    let text = panic_text(caught.expect_err("RecoveryTrustsPageCache survived a later session"));
    assert!(text.starts_with("INV-DURABLE: session 2"), "{text}");
    assert!(text.contains("after the open"), "{text}");
}

/// The recovery corpus puts the recovery checkpoint under the harness: some seeds open their
/// last crash image with a `recovery.ckpt` of every kind (raw bytes, a forged one, the real one
/// intact, damaged and torn, stale ones, another store's), next to the open without one (the
/// seeds of the format before the checkpoint field decode as they did: without one).
#[test]
fn recovery_corpus_covers_the_recovery_checkpoint() {
    let mut kinds = std::collections::BTreeMap::new();
    let mut without = 0;
    for (_, bytes) in inputs("corpus", "recovery") {
        run_bytes::<RecoveryInput>(&bytes, |input| match &input.checkpoint {
            Some(c) => *kinds.entry(c.kind()).or_insert(0usize) += 1,
            None => without += 1,
        });
    }
    println!("recovery checkpoints in the corpus: {kinds:?}, {without} seeds without one");
    for k in [
        "raw",
        "forged",
        "real",
        "damaged",
        "stale",
        "stale-diverged",
        "foreign",
    ] {
        assert!(
            kinds.contains_key(k),
            "no seed brings a {k} checkpoint: {kinds:?}"
        );
    }
    assert!(without >= 64, "only {without} seeds without a checkpoint");
    for (path, bytes) in inputs("regressions", "recovery") {
        run_bytes::<RecoveryInput>(&bytes, |input| {
            assert!(
                input.checkpoint.is_none(),
                "{} decodes with a checkpoint",
                path.display()
            );
        });
    }
}

/// A last session with no history whose crash image is opened with a checkpoint of an earlier
/// prefix of its log, which went on to `diverge` events the image does not have.
#[cfg(batpak_mutant)]
fn stale_checkpoint(keep: u16, diverge: u8) -> RecoveryInput {
    RecoveryInput {
        history: Vec::new(),
        deferred: false,
        ops: vec![
            Op::Append { entity: 0, pad: 1 },
            Op::Batch { n: 2, entity: 1 },
            Op::Append { entity: 2, pad: 3 },
            Op::Append { entity: 0, pad: 4 },
        ],
        fault: None,
        crash: vec![u8::MAX; 4],
        corruption: None,
        recrash: Vec::new(),
        checkpoint: Some(CheckpointInput::Stale { keep, diverge }),
    }
}

/// The seeded bug `TrustStaleCheckpoint` (a checkpoint's hashes taken by sequence alone: no
/// fingerprint, no id check) is caught by the harness's checkpoint comparison on a stale
/// checkpoint that covers events the image does not have, and by corpus seeds (a diverged
/// stale one, another store's), reported as INV-STABLE-SEQ; a plain stale one (a prefix of the
/// log) is right to use and passes.
#[cfg(batpak_mutant)]
#[test]
fn recovery_harness_catches_a_trusted_stale_checkpoint() {
    for keep in [0u16, 2, 3] {
        let input = stale_checkpoint(keep, 3);
        assert_eq!(
            recovery_with(input.clone(), Mutant::None),
            Outcome::Recovered
        );
        let caught =
            std::panic::catch_unwind(|| recovery_with(input, Mutant::TrustStaleCheckpoint));
        let text =
            panic_text(caught.expect_err("TrustStaleCheckpoint survived a stale checkpoint"));
        assert!(text.starts_with("INV-STABLE-SEQ"), "keep {keep}: {text}");
    }
    assert_eq!(
        recovery_with(stale_checkpoint(3, 0), Mutant::TrustStaleCheckpoint),
        Outcome::Recovered,
        "a checkpoint of a prefix of the log holds"
    );
    let mut caught = std::collections::BTreeMap::new();
    for (path, bytes) in inputs("corpus", "recovery") {
        run_bytes::<RecoveryInput>(&bytes, |input| {
            let Some(kind) = input.checkpoint.as_ref().map(CheckpointInput::kind) else {
                return;
            };
            let run =
                std::panic::catch_unwind(|| recovery_with(input, Mutant::TrustStaleCheckpoint));
            if let Err(e) = run {
                let text = panic_text(e);
                assert!(
                    text.starts_with("INV-STABLE-SEQ"),
                    "{}: {text}",
                    path.display()
                );
                caught
                    .entry(kind)
                    .or_insert_with(Vec::new)
                    .push(path.file_name().unwrap().to_owned());
            }
        });
    }
    println!("TrustStaleCheckpoint caught by corpus seeds: {caught:?}");
    for k in ["stale-diverged", "foreign"] {
        assert!(
            caught.contains_key(k),
            "no {k} seed catches TrustStaleCheckpoint: {caught:?}"
        );
    }
}

/// Whether `op` is one of the durable consumers' operations.
fn is_consumer_op(op: &batpak_model::fuzz_harness::Op) -> bool {
    use batpak_model::fuzz_harness::Op;
    matches!(
        op,
        Op::ConsumerPoll { .. } | Op::ConsumerCommit { .. } | Op::ConsumerResume { .. }
    )
}

/// The recovery corpus drives the durable consumers: some seeds poll, commit and resume in
/// earlier sessions and in the crashed last one (`c0` with `commit_with`, `c1` with `commit`).
#[test]
fn recovery_corpus_drives_durable_consumers() {
    let (mut last, mut earlier) = (0, 0);
    for (_, bytes) in inputs("corpus", "recovery") {
        run_bytes::<RecoveryInput>(&bytes, |input| {
            last += usize::from(input.ops.iter().any(is_consumer_op));
            earlier += usize::from(
                input
                    .history
                    .iter()
                    .any(|s| s.ops.iter().any(is_consumer_op)),
            );
        });
    }
    println!("consumer seeds: {last} in the last session, {earlier} in earlier sessions");
    assert!(
        last >= 5,
        "only {last} seeds use consumers in the last session"
    );
    assert!(
        earlier >= 3,
        "only {earlier} seeds use consumers in earlier sessions"
    );
}

/// The consumer-related seeded bugs, each caught by some recovery seed, naming the invariant
/// it breaks (the fuzzer's own judgement: the panic of `recovery_with`).
#[cfg(batpak_mutant)]
#[test]
fn recovery_corpus_catches_consumer_mutants() {
    for (mutant, inv) in [
        (Mutant::CheckpointNotAtomic, "INV-EXACTLY-ONCE"),
        (Mutant::CheckpointAckBeforeDurable, "INV-CHECKPOINT-DURABLE"),
        (Mutant::DeliverBeforeDurable, "INV-CHECKPOINT-DURABLE"),
    ] {
        let mut caught = Vec::new();
        for (path, bytes) in inputs("corpus", "recovery") {
            run_bytes::<RecoveryInput>(&bytes, |input| {
                let run = std::panic::catch_unwind(|| recovery_with(input, mutant));
                if let Err(e) = run {
                    let text = panic_text(e);
                    let first = text.lines().next().unwrap_or_default().to_owned();
                    assert!(first.starts_with(inv), "{mutant:?}: {first}");
                    caught.push((path.file_name().unwrap().to_owned(), first));
                }
            });
        }
        println!("{mutant:?}: caught by {} seeds: {caught:?}", caught.len());
        assert!(
            !caught.is_empty(),
            "{mutant:?} survived every recovery seed"
        );
    }
}

/// A session whose `c0` commits with outputs and whose process dies at disk operation `k`
/// after the open, then a power loss (image chooser bytes `image`), then a last session that
/// polls and commits again.
#[cfg(batpak_mutant)]
fn consumer_crash_at(k: u8, image: u8) -> RecoveryInput {
    RecoveryInput {
        history: vec![SessionInput {
            deferred: false,
            ops: vec![
                Op::Append { entity: 0, pad: 1 },
                Op::Append { entity: 1, pad: 2 },
                Op::ConsumerPoll { c: 0, max: 3 },
                Op::ConsumerCommit { c: 0 },
                Op::Append { entity: 2, pad: 3 },
            ],
            fault: Some(FaultInput::ProcessCrash {
                op: k,
                during_open: false,
            }),
            end: EndInput::PowerLoss(vec![image; 4]),
        }],
        deferred: false,
        ops: vec![
            Op::ConsumerPoll { c: 0, max: 3 },
            Op::ConsumerCommit { c: 0 },
        ],
        fault: None,
        crash: vec![u8::MAX; 4],
        corruption: None,
        recrash: vec![0; 4],
        checkpoint: None,
    }
}

/// The recovery harness's process crashes land in a `commit_with` (at its fsync) and the
/// power loss that follows tears its unsynced write: every crash point and image passes on
/// the real store, and the seeded bug `CheckpointNotAtomic` (the checkpoint written as its
/// own record before the outputs' batch) is caught at some of them (INV-EXACTLY-ONCE: the
/// checkpoint moved without its outputs).
#[cfg(batpak_mutant)]
#[test]
fn recovery_harness_catches_a_checkpoint_apart_from_its_outputs() {
    let mut caught = Vec::new();
    for k in 0..24u8 {
        for image in [1u8, 2, 3, 5, 8, 255] {
            assert_eq!(
                recovery_with(consumer_crash_at(k, image), Mutant::None),
                Outcome::Recovered
            );
            let run = std::panic::catch_unwind(|| {
                recovery_with(consumer_crash_at(k, image), Mutant::CheckpointNotAtomic)
            });
            if let Err(e) = run {
                let text = panic_text(e);
                assert!(
                    text.starts_with("INV-EXACTLY-ONCE"),
                    "crash at {k}, image {image}: {text}"
                );
                caught.push((k, image));
            }
        }
    }
    println!("CheckpointNotAtomic caught at (disk operation, power-loss image) {caught:?}");
    assert!(
        !caught.is_empty(),
        "CheckpointNotAtomic survived every crash point"
    );
}
