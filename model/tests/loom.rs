//! loom: exhaustive exploration (bounded preemptions) of every scenario on the real store.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p batpak-model --release
//! --target-dir target/loom --test loom -- --nocapture`. Every model counts its executions,
//! prints the count and asserts a floor for the bound it ran at, so a change that silently
//! shrinks the explored space fails here.
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak_model::scenarios::{
    consumer_commit_vs_crash, crash_mid_fence, FenceEnd, CONSUMER_CRASH_OPS_MAX, CRASH_OPS_MAX,
};
use batpak_model::Mutant;
use batpak_model::Scenario;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The preemption bound in force (`LOOM_MAX_PREEMPTIONS`; loom's own default is unbounded,
/// which the real store cannot afford, so an unset variable means 3).
fn bound() -> usize {
    std::env::var("LOOM_MAX_PREEMPTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Explores `scenario` with `mutant` at `bound`; returns the number of executions.
pub fn explore(scenario: Scenario, mutant: Mutant, bound: usize) -> usize {
    explore_with(bound, move || scenario.run(mutant))
}

/// Explores `model` at `bound`; returns the number of executions.
fn explore_with(bound: usize, model: impl Fn() + Send + Sync + 'static) -> usize {
    let executions = Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.max_branches = 200_000;
    let counter = Arc::clone(&executions);
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    executions.load(Ordering::Relaxed)
}

/// Runs the models at the configured bound, prints the counts and checks the floor for that
/// bound (`floors[bound]`; bounds above 4 use the bound-4 floor).
fn check(scenarios: &[Scenario], floors: [usize; 5]) {
    let bound = bound();
    let start = Instant::now();
    let mut total = 0;
    for &s in scenarios {
        let t = Instant::now();
        let n = explore(s, Mutant::None, bound);
        println!(
            "loom {s}: bound {bound}: {n} executions in {:?}",
            t.elapsed()
        );
        total += n;
    }
    let label = scenarios.first().map(|s| s.name()).unwrap_or_default();
    report(&label, scenarios.len() > 1, bound, total, start, floors);
}

/// Prints the total and asserts the floor for `bound`.
fn report(
    label: &str,
    variants: bool,
    bound: usize,
    total: usize,
    start: Instant,
    floors: [usize; 5],
) {
    println!(
        "loom total for {label}{}: bound {bound}: {total} executions in {:?}",
        if variants { " (+ variants)" } else { "" },
        start.elapsed()
    );
    let floor = floors.get(bound).copied().unwrap_or(floors[4]);
    println!("loom floor at bound {bound}: {floor}");
    assert!(
        total >= floor,
        "loom explored only {total} executions at bound {bound}; the floor is {floor}"
    );
}

#[test]
fn loom_a_fence_commit_vs_reader() {
    // 71,666 executions at bound 3 (811,302 at bound 4, 162 s).
    check(
        &[Scenario::FenceCommitVsReader],
        [1, 160, 4_500, 68_000, 771_000],
    );
}

#[test]
fn loom_b_fence_end_vs_outbox() {
    // The drop variant (the commit and cancel variants run under shuttle and std stress);
    // loom-only shrink: the outbox thread starts once the fenced batch is staged (see
    // `fence_end_vs_outbox`). 42,345 executions at bound 3 (2,221 at bound 2; 557,031 at
    // bound 4, 125 s).
    check(
        &[Scenario::FenceEndVsOutbox(FenceEnd::Drop)],
        [1, 63, 2_100, 40_200, 529_000],
    );
}

#[test]
fn loom_c_fence_drop_full_channel() {
    // Loom-only shrink: no second fence after the drop (see `fence_drop_full_channel`).
    // 159,240 executions at bound 3 (8,711 at bound 2; 2,081,026 at bound 4, 313 s).
    check(
        &[Scenario::FenceDropFullChannel],
        [1, 250, 8_200, 151_000, 1_977_000],
    );
}

#[test]
fn loom_d_batch_vs_reader() {
    // 51,204 executions at bound 3 (514,059 at bound 4, 107 s).
    check(&[Scenario::BatchVsReader], [1, 1, 3_400, 48_000, 488_000]);
}

/// The crash points loom explores for (e): `0..=LOOM_CRASH_OPS_MAX`. Under loom's smaller
/// scenario no run issues more than 11 I/O operations after open (10 before the clean-close
/// mark added one; asserted below), so a fault at index 11 never fires: that last point is the
/// fault-free run, and the points beyond it (up to `CRASH_OPS_MAX`, which std and shuttle use
/// for the full scenario) only repeat it (measured: 84,252 executions each at bound 3,
/// 1,028,637 each at bound 4, the same as at points 2-10).
const LOOM_CRASH_OPS_MAX: u64 = 11;

#[test]
fn loom_e_crash_mid_fence_at_every_crash_point() {
    // Every crash point that can fire (see LOOM_CRASH_OPS_MAX); loom-only shrink: see
    // `crash_mid_fence`. Bound 3: 769,838 executions (5,785 at k0 and k1, 84,252 at every
    // other k); bound 2: 43,626; bound 1: 1,340; bound 4: 9,329,255 (35,761 at k0 and k1,
    // 1,028,637 at every other k; about 26 minutes; all 15 points were 13,443,803 in 2,318 s).
    let bound = bound();
    let last = LOOM_CRASH_OPS_MAX.min(CRASH_OPS_MAX);
    let start = Instant::now();
    let most = Arc::new(AtomicU64::new(0));
    let mut total = 0;
    for k in 0..=last {
        let t = Instant::now();
        let seen = Arc::clone(&most);
        let n = explore_with(bound, move || {
            let run = crash_mid_fence(Mutant::None, k);
            seen.fetch_max(run.ops_after_open, Ordering::Relaxed);
        });
        println!(
            "loom crash_mid_fence_k{k}: bound {bound}: {n} executions in {:?}",
            t.elapsed()
        );
        total += n;
    }
    let most = most.load(Ordering::Relaxed);
    println!("loom crash_mid_fence: at most {most} I/O operations after open");
    // A run that issued more than `last` operations met the fault even at the last point, and
    // could meet one at points not explored here.
    assert!(
        most <= last,
        "crash points 0..={last} miss some: a run issued {most} operations"
    );
    report(
        "crash_mid_fence_k0",
        true,
        bound,
        total,
        start,
        [1, 1_270, 41_000, 731_000, 8_862_000],
    );
}

#[test]
fn loom_f_shutdown_with_tickets() {
    // Loom-only shrink: one submit, durable image recovered without a writer thread (see
    // `shutdown_with_tickets`). 271,695 executions at bound 3 (14,093 at bound 2; 3,606,646 at
    // bound 4, 494 s).
    check(
        &[Scenario::ShutdownWithTickets],
        [1, 360, 13_300, 258_000, 3_426_000],
    );
}

#[test]
fn loom_g_two_producers_backpressure() {
    // 363,457 executions at bound 3 (6,312,284 at bound 4, 826 s).
    check(
        &[Scenario::TwoProducersBackpressure],
        [1, 1, 14_000, 345_000, 5_996_000],
    );
}

#[test]
fn loom_h_delivery_vs_publish() {
    // Loom-only shrink: no fence (see `delivery_vs_publish`). 172,780 executions at bound 3
    // (55 s under load; the cursor reads the frontier under the index lock).
    check(&[Scenario::DeliveryVsPublish], [1, 1, 1, 164_100, 164_100]);
}

#[test]
fn loom_i_lossy_lag_vs_writer() {
    // Loom-only shrink: two events, one pass (see `lossy_lag_vs_writer`). 106,515 executions
    // at bound 3 (43 s).
    check(&[Scenario::LossyLagVsWriter], [1, 1, 1, 101_100, 101_100]);
}

#[test]
fn loom_j_consumer_commit_vs_crash_at_every_crash_point() {
    let bound = bound();
    let start = Instant::now();
    let most = Arc::new(AtomicU64::new(0));
    let mut total = 0;
    for k in 0..=CONSUMER_CRASH_OPS_MAX {
        let t = Instant::now();
        let seen = Arc::clone(&most);
        let n = explore_with(bound, move || {
            seen.fetch_max(consumer_commit_vs_crash(Mutant::None, k), Ordering::Relaxed);
        });
        println!(
            "loom consumer_commit_vs_crash_k{k}: bound {bound}: {n} executions in {:?}",
            t.elapsed()
        );
        total += n;
    }
    let most = most.load(Ordering::Relaxed);
    assert!(
        most <= CONSUMER_CRASH_OPS_MAX,
        "crash points 0..={CONSUMER_CRASH_OPS_MAX} miss some: a run issued {most} operations"
    );
    report(
        "consumer_commit_vs_crash_k0",
        true,
        bound,
        total,
        start,
        // Loom-only shrink: no appending thread (see `consumer_commit_vs_crash`). 4,249
        // executions at each of the 6 crash points at bound 3 (25,494, 24 s).
        [1, 1, 1, 24_200, 24_200],
    );
}

#[test]
fn loom_k_wait_vs_writer() {
    // 195,396 executions at bound 3 (81 s).
    check(&[Scenario::WaitVsWriter], [1, 1, 1, 185_600, 185_600]);
}
