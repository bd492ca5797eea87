//! Crash-state enumeration at scale, checked against the oracle (issue 6, part 3).
//!
//! Workloads: every workload of up to 3 operations over {append, batch of 2, fence
//! begin/append/commit/cancel, sync, segment roll} and seeded random workloads of 4-6
//! operations (400 in CI) that add fenced batches (`fence.submit_batch`) and the fenced outbox flush.
//! At every persistence point (after every operation, and with the disk frozen just before and
//! just after every sync) every crash image is checked: every prefix of the unsynced writes,
//! the first lost write torn (1, L/2, L-1 bytes) or replaced by garbage, and every subset of
//! the unsynced appends of a file with at most 8 of them (holes zeroed). Each image goes
//! through the invariant checker of `tests/common/crash.rs` *and* the oracle
//! (`batpak_model::conformance`): a hole before surviving records must fail closed with
//! `CorruptSegment` at the hole; every other image must recover exactly the oracle's
//! `recover(Image(k, torn))`, inside `allowed_after_recovery(written, durable_len)`.
//! I/O faults (transient and persistent) at every operation index of every workload.
//!
//! `BATPAK_CRASH_DEEP=1` scales up (workloads of up to 4 operations, 2,000 random ones of
//! 4-8 operations): `just -f model/crash.just crash-deep`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/common/crash.rs"]
mod crash;

use batpak::env::{CrashOptions, SimDisk};
use batpak::log::RecoveryReport;
use batpak::store::IndexEntry;
use batpak_model::conformance::{allowed_visible_sets, compare, Abstract, Expected, WrittenLog};
use crash::{
    enumerate_crash_states_of, inject_io_errors_of, random_workloads, workloads, Acks, Expect,
    ImageJudge, Mode, Op, Stats, Violation, DIR,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

const SEED: u64 = 0x00B4_7BA4_C4A5_0006;

fn deep() -> bool {
    std::env::var("BATPAK_CRASH_DEEP").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn violation(inv: &'static str, detail: String) -> Violation {
    Violation { inv, detail }
}

/// The oracle as a judge of crash images.
#[derive(Default)]
struct OracleJudge {
    log: Option<WrittenLog>,
    abs: Option<Abstract>,
    durable_len: usize,
    allowed: BTreeSet<BTreeSet<u64>>,
    expected: Option<Expected>,
    /// Images judged (a cross-check of the counts).
    judged: usize,
}

impl ImageJudge for OracleJudge {
    fn prepare(&mut self, disk: &SimDisk, acks: &Acks) -> Result<(), Violation> {
        let log = WrittenLog::read(disk, Path::new(DIR))
            .map_err(|e| violation("INV-PREFIX", format!("oracle: {e}")))?;
        let abs = log
            .abstract_log()
            .map_err(|e| violation("INV-STABLE-SEQ", format!("oracle mapping: {e}")))?;
        self.durable_len = acks
            .claims
            .iter()
            .map(|c| usize::try_from(c.seq).unwrap() + 1)
            .max()
            .unwrap_or(0);
        if self.durable_len > abs.records.len() {
            return Err(violation(
                "INV-DURABLE",
                format!(
                    "oracle: {} records promised durable, {} written",
                    self.durable_len,
                    abs.records.len()
                ),
            ));
        }
        self.allowed = allowed_visible_sets(&abs, self.durable_len);
        self.log = Some(log);
        self.abs = Some(abs);
        Ok(())
    }

    fn expect(&mut self, image: &SimDisk) -> Result<Expect, Violation> {
        self.judged += 1;
        let (Some(log), Some(abs)) = (&self.log, &self.abs) else {
            panic!("expect before prepare");
        };
        let e = log
            .expect(abs, image, Path::new(DIR), self.durable_len)
            .map_err(|e| violation("INV-DURABLE", format!("oracle: {e}")))?;
        let out = match &e {
            Expected::FailsClosed { file, offset } => Expect::FailsClosed {
                file: file.clone(),
                offset: *offset,
            },
            Expected::Recovers { .. } => Expect::Recovers,
        };
        self.expected = Some(e);
        Ok(out)
    }

    fn recovered(&mut self, report: &RecoveryReport, vis: &[IndexEntry]) -> Result<(), Violation> {
        let got: BTreeSet<u64> = vis.iter().map(|e| e.global_sequence).collect();
        let Some(e) = &self.expected else {
            panic!("recovered before expect");
        };
        compare(e, report, &got).map_err(|d| violation("ORACLE", format!("oracle: {d}")))?;
        if !self.allowed.contains(&got) {
            return Err(violation(
                "INV-DURABLE",
                format!(
                    "oracle: visible {got:?} is not in allowed_after_recovery (durable_len {})",
                    self.durable_len
                ),
            ));
        }
        Ok(())
    }
}

fn stats_with_oracle(subsets: bool) -> Stats {
    Stats {
        crash_opts: CrashOptions {
            subsets,
            max_subset_ops: 8,
        },
        judge: Some(Box::new(OracleJudge::default())),
        ..Stats::default()
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Every workload of up to 3 operations (4 when deep; `BATPAK_CRASH_MAX_LEN` overrides).
fn canonical() -> Vec<Vec<Op>> {
    let max = env_usize("BATPAK_CRASH_MAX_LEN").unwrap_or(if deep() { 4 } else { 3 });
    workloads(max)
}

/// 400 random workloads of 4-6 operations (deep: 2,000 of 4-8; `BATPAK_CRASH_RANDOM`
/// overrides the count).
fn random() -> Vec<Vec<Op>> {
    let (n, max) = if deep() { (2000, 8) } else { (400, 6) };
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
        !mode.deferred || stats.fail_closed_states > 0,
        "no hole seen"
    );
    stats.crash_states
}

#[test]
fn crash_states_vs_oracle() {
    let start = Instant::now();
    let (c, r) = (canonical(), random());
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
    assert!(total >= 100_000, "only {total} crash states");
    let overridden =
        env_usize("BATPAK_CRASH_MAX_LEN").is_some() || env_usize("BATPAK_CRASH_RANDOM").is_some();
    if deep() && !overridden {
        assert!(total >= 5_000_000, "deep run: only {total} crash states");
    }
}

fn io_errors(mode: Mode, list: &[Vec<Op>], what: &str) -> usize {
    let start = Instant::now();
    let mut stats = stats_with_oracle(false);
    if let Err(v) = inject_io_errors_of(mode, list, &mut stats) {
        panic!("{v}");
    }
    report(what, &stats, start);
    stats.runs
}

#[test]
fn io_error_injection_vs_oracle() {
    let start = Instant::now();
    let (c, r) = (canonical(), random());
    let mut runs = 0;
    runs += io_errors(Mode::DURABLE, &c, "I/O faults, canonical, durable mode");
    runs += io_errors(Mode::DEFERRED, &c, "I/O faults, canonical, deferred mode");
    runs += io_errors(Mode::DURABLE, &r, "I/O faults, random, durable mode");
    runs += io_errors(Mode::DEFERRED, &r, "I/O faults, random, deferred mode");
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
        with(Op::FencedBatch),
        with(Op::FencedOutbox)
    );
    assert!(with(Op::FencedBatch) >= 20);
    assert!(with(Op::FencedOutbox) >= 20);
}
