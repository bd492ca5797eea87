//! Crash-state enumeration at scale, checked against the oracle (issue 6, part 3).
//!
//! Workloads: every workload of up to 3 operations over {append, batch of 2, fence
//! begin/append/commit/cancel, sync, segment roll} and seeded random workloads of 4-6
//! operations (400 in CI) that add fenced batches (`fence.submit_batch`) and the fenced outbox flush.
//! At every persistence point (after every operation, and with the disk frozen just before and
//! just after every sync) every crash image is checked: every prefix of the unsynced writes,
//! the first lost write torn (1, L/2, L-1 bytes) or replaced by garbage, and every subset of
//! the unsynced appends of a file with at most 8 of them (holes zeroed). Each image goes
//! through the invariant checker (`batpak_model::check::check_recovered`: the oracle's visible
//! set and the caller's acknowledgements) *and* the byte-level classification of
//! `batpak_model::conformance`: a hole before surviving records must fail closed with
//! `CorruptSegment` at the hole; every other image must recover exactly the oracle's
//! `recover(Image(k, torn))`, inside `allowed_after_recovery(written, durable_len)`.
//! Every image is read as the page cache a crashed process left (what survived unsynced is
//! still unsynced), and after the reopen every power loss the disk may then suffer must keep
//! what the reopened store reports durable and everything acknowledged durable before (process
//! crash -> reopen -> power loss -> reopen; see `batpak_model::crash_states`).
//! I/O faults at every operation index of every workload: an EIO there, and a dead disk from
//! there on; on the canonical workloads also a full disk with a short write at every append
//! and a failed fsync that drops its pages at every sync (the EIO one keeps them cached but
//! clean), as Linux does.
//!
//! `BATPAK_CRASH_DEEP=1` scales up (`just crash-deep`): workloads of up to 4 operations and
//! 20,000 random ones of 4-8 operations for the crash states (>= 5,000,000), 2,000 of them
//! for the I/O faults. `BATPAK_CRASH_MAX_LEN` and `BATPAK_CRASH_RANDOM` override the sizes
//! (for partial runs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{CrashOptions, SimDisk};
use batpak::__testing::log::RecoveryReport;
use batpak_model::conformance::{allowed_visible_sets, compare, Expected, WrittenLog};
use batpak_model::crash_states::{enumerate_crash_states_of, inject_io_errors_of, Stats};
use batpak_model::workload::{random_workloads, run_workload, workloads, Mode, Op, DIR};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

const SEED: u64 = 0x00B4_7BA4_C4A5_0006;

fn deep() -> bool {
    std::env::var("BATPAK_CRASH_DEEP").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A debug build (plain `cargo test`) runs a small sample so the suite stays fast; the CI size
/// runs in release from `just crash` (part of `just model-check`). `BATPAK_CRASH_FULL=1` forces
/// the CI size in any build.
fn quick() -> bool {
    cfg!(debug_assertions) && !deep() && std::env::var_os("BATPAK_CRASH_FULL").is_none()
}

fn stats_with_oracle(subsets: bool) -> Stats {
    Stats {
        crash_opts: CrashOptions {
            subsets,
            max_subset_ops: 8,
        },
        byte_oracle: true,
        ..Stats::default()
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Every workload of up to 3 operations (4 when deep; `BATPAK_CRASH_MAX_LEN` overrides).
fn canonical() -> Vec<Vec<Op>> {
    let default = if deep() {
        4
    } else if quick() {
        2
    } else {
        3
    };
    let max = env_usize("BATPAK_CRASH_MAX_LEN").unwrap_or(default);
    workloads(max)
}

/// 400 random workloads of 4-6 operations (deep: `deep_count` of 4-8; `BATPAK_CRASH_RANDOM`
/// overrides the count).
fn random(deep_count: usize) -> Vec<Vec<Op>> {
    let (n, max) = if deep() {
        (deep_count, 8)
    } else if quick() {
        (20, 6)
    } else {
        (400, 6)
    };
    random_workloads(env_usize("BATPAK_CRASH_RANDOM").unwrap_or(n), 4, max, SEED)
}

fn report(what: &str, stats: &Stats, start: Instant) {
    println!("{what}: {stats:?}, {:?}", start.elapsed());
}

fn crash_states(mode: Mode, list: &[Vec<Op>], what: &str) -> usize {
    let start = Instant::now();
    let mut stats = stats_with_oracle(true);
    if let Err(v) = enumerate_crash_states_of(mode, list, &mut stats) {
        panic!("{v}");
    }
    report(what, &stats, start);
    // Durable mode syncs every write before the next one: no hole can form. Deferred mode
    // leaves several appends unsynced, so subsets with holes must have been checked.
    assert!(
        !mode.deferred || list.is_empty() || stats.fail_closed_states > 0,
        "no hole seen"
    );
    stats.crash_states
}

#[test]
fn crash_states_vs_oracle() {
    let start = Instant::now();
    // Deep: about 250 crash states per random workload of 4-8 operations (both modes).
    let (c, r) = (canonical(), random(20_000));
    println!(
        "{} canonical workloads, {} random workloads (seed {SEED:#x})",
        c.len(),
        r.len()
    );
    let mut total = 0;
    total += crash_states(Mode::DURABLE, &c, "canonical, durable mode");
    total += crash_states(Mode::DEFERRED, &c, "canonical, deferred mode");
    total += crash_states(Mode::DURABLE, &r, "random, durable mode");
    total += crash_states(Mode::DEFERRED, &r, "random, deferred mode");
    println!(
        "crash states checked against the oracle: {total} in {:?}",
        start.elapsed()
    );
    if quick() {
        println!("debug-size sample; `just crash` checks the CI size (>= 100,000) in release");
        assert!(total >= 1_000, "only {total} crash states");
    } else {
        assert!(total >= 100_000, "only {total} crash states");
    }
    let overridden =
        env_usize("BATPAK_CRASH_MAX_LEN").is_some() || env_usize("BATPAK_CRASH_RANDOM").is_some();
    if deep() && !overridden {
        assert!(total >= 5_000_000, "deep run: only {total} crash states");
    }
}

fn io_errors(mode: Mode, list: &[Vec<Op>], what: &str, classic_faults_only: bool) -> usize {
    let start = Instant::now();
    let mut stats = stats_with_oracle(false);
    stats.classic_faults_only = classic_faults_only;
    if let Err(v) = inject_io_errors_of(mode, list, &mut stats) {
        panic!("{v}");
    }
    report(what, &stats, start);
    stats.runs
}

#[test]
fn io_error_injection_vs_oracle() {
    let start = Instant::now();
    let (c, r) = (canonical(), random(2_000));
    let mut runs = 0;
    // Every fault kind on the canonical workloads; EIO and a dead disk on the random ones
    // (the budget: a full disk with a short write and a failed fsync that drops its pages add
    // a third of the runs).
    runs += io_errors(
        Mode::DURABLE,
        &c,
        "I/O faults, canonical, durable mode",
        false,
    );
    runs += io_errors(
        Mode::DEFERRED,
        &c,
        "I/O faults, canonical, deferred mode",
        false,
    );
    let classic = !deep();
    runs += io_errors(
        Mode::DURABLE,
        &r,
        "I/O faults, random, durable mode",
        classic,
    );
    runs += io_errors(
        Mode::DEFERRED,
        &r,
        "I/O faults, random, deferred mode",
        classic,
    );
    println!("faulted runs: {runs} in {:?}", start.elapsed());
}

#[test]
fn random_workloads_are_deterministic_and_use_fenced_batches() {
    let a = random_workloads(200, 4, 6, SEED);
    assert_eq!(a, random_workloads(200, 4, 6, SEED));
    assert_eq!(a.len(), 200);
    assert!(a.iter().all(|w| (4..=6).contains(&w.len())));
    let with = |op: Op| a.iter().filter(|w| w.contains(&op)).count();
    println!(
        "fenced batch in {}, fenced outbox in {}",
        with(Op::FENCED_BATCH),
        with(Op::FENCED_OUTBOX)
    );
    assert!(with(Op::FENCED_BATCH) >= 20);
    assert!(with(Op::FENCED_OUTBOX) >= 20);
}

/// The fail-closed check is live: recovery that cuts at the first damage without looking for
/// valid records after it (mutant `RecoveryCutsAtHole`) silently drops the records after a
/// hole; the subset images of an unsynced batch and append expose it.
#[cfg(batpak_mutant)]
#[test]
fn mutant_recovery_cuts_at_hole_is_caught() {
    let mode = Mode {
        deferred: true,
        mutant: batpak_model::workload::Mutant::RecoveryCutsAtHole,
    };
    let mut stats = stats_with_oracle(true);
    let list = vec![vec![Op::BATCH, Op::APPEND_A]];
    match enumerate_crash_states_of(mode, &list, &mut stats) {
        Ok(()) => panic!(
            "mutant RecoveryCutsAtHole NOT caught after {} crash states",
            stats.crash_states
        ),
        Err(v) => {
            println!("mutant RecoveryCutsAtHole -> {v}");
            assert_eq!(v.inv, "INV-CORRUPTION-FAILS-CLOSED", "{v}");
        }
    }
}

/// The oracle check is live: it rejects outcomes that differ from the oracle's, and asks for
/// fail-closed exactly on images with a hole.
#[test]
fn oracle_rejects_wrong_outcomes() {
    let disk = SimDisk::new();
    let probe = disk.clone();
    let mut checked = false;
    // Deferred: the batch and the append stay unsynced, so subsets can leave a hole. The
    // images are taken after the last operation, before the store is dropped (and syncs).
    run_workload(
        &disk,
        Mode::DEFERRED,
        &[Op::BATCH, Op::APPEND_A],
        false,
        &mut |acks| {
            if acks.events.len() == 3 {
                check_oracle_on(&probe);
                checked = true;
            }
            Ok(())
        },
    )
    .unwrap();
    assert!(checked);
}

fn check_oracle_on(disk: &SimDisk) {
    let log = WrittenLog::read(disk, Path::new(DIR));
    let abs = log.abstract_log();
    assert_eq!(abs.records.len(), 4, "{:?}", abs.records);
    let dir = Path::new(DIR);
    let opts = CrashOptions {
        subsets: true,
        max_subset_ops: 8,
    };
    let (mut holes, mut full) = (0, 0);
    for image in disk.crash_images(&opts) {
        let img = image.disk();
        let e = log.expect(&abs, &img, dir, 0).unwrap();
        let c = log.classify(&img, dir);
        assert_eq!(
            matches!(e, Expected::FailsClosed { .. }),
            c.hole.is_some(),
            "{}",
            image.describe()
        );
        holes += usize::from(c.hole.is_some());
        if let Expected::Recovers {
            records: 4,
            ref visible,
            torn: false,
        } = e
        {
            full += 1;
            assert_eq!(visible, &BTreeSet::from([0, 1, 3]));
            let report = RecoveryReport {
                records: 4,
                ..RecoveryReport::default()
            };
            assert!(compare(&e, &report, visible).is_ok());
            // A half-visible batch, a lost event, or a wrong record count are all rejected.
            assert!(compare(&e, &report, &BTreeSet::from([0, 3])).is_err());
            assert!(compare(&e, &report, &BTreeSet::from([0, 1])).is_err());
            let short = RecoveryReport {
                records: 3,
                ..RecoveryReport::default()
            };
            assert!(compare(&e, &short, visible).is_err());
        }
    }
    assert!(holes > 0, "no image with a hole");
    assert!(full > 0, "no complete image");
    // The allowed sets after a crash with nothing durable: {}, the batch, batch + append.
    let allowed = allowed_visible_sets(&abs, 0);
    assert!(allowed.contains(&BTreeSet::new()));
    assert!(allowed.contains(&BTreeSet::from([0, 1])));
    assert!(allowed.contains(&BTreeSet::from([0, 1, 3])));
    assert!(!allowed.contains(&BTreeSet::from([0])));
    assert!(!allowed.contains(&BTreeSet::from([3])));
}
