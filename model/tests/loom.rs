//! loom: exhaustive exploration (bounded preemptions) of every scenario on the real store.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p batpak-model --release
//! --target-dir target/loom --test loom -- --nocapture`. Every model counts its executions,
//! prints the count and asserts a floor for the bound it ran at, so a change that silently
//! shrinks the explored space fails here.
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::store::Mutant;
use batpak_model::scenarios::{FenceEnd, CRASH_OPS_MAX};
use batpak_model::Scenario;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    let executions = Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.max_branches = 200_000;
    let counter = Arc::clone(&executions);
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        scenario.run(mutant);
    });
    executions.load(Ordering::Relaxed)
}

/// Runs the model at the configured bound less `relief` (the heavier scenarios cannot afford
/// the full bound on the real store in minutes), prints the count and checks the floor for the
/// bound it actually ran at (`floors[bound]`).
fn check(scenarios: &[Scenario], relief: usize, floors: [usize; 5]) {
    // MODEL_LOOM_RELIEF overrides every scenario's relief (e.g. 0 to run all at the full bound).
    let relief = std::env::var("MODEL_LOOM_RELIEF")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(relief);
    let bound = bound().saturating_sub(relief);
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
    println!(
        "loom total for {label}{}: bound {bound}: {total} executions in {:?}",
        if scenarios.len() > 1 {
            " (+ variants)"
        } else {
            ""
        },
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
    check(
        &[Scenario::FenceCommitVsReader],
        0,
        [1, 160, 4_500, 68_000, 68_000],
    );
}

#[test]
fn loom_b_fence_end_vs_outbox() {
    // Bound 3 - 1 = 2 (~99,000 executions, ~18 s); the commit and cancel variants run under
    // shuttle and the std stress test.
    check(
        &[Scenario::FenceEndVsOutbox(FenceEnd::Drop)],
        1,
        [1, 1_700, 93_000, 93_000, 93_000],
    );
}

#[test]
fn loom_c_fence_drop_full_channel() {
    // Bound 3 - 1 = 2 (~17,000 executions, ~5 s).
    check(
        &[Scenario::FenceDropFullChannel],
        1,
        [1, 1, 16_000, 16_000, 16_000],
    );
}

#[test]
fn loom_d_batch_vs_reader() {
    check(&[Scenario::BatchVsReader], 0, [1, 1, 3_400, 48_000, 48_000]);
}

#[test]
fn loom_e_crash_mid_fence_at_every_crash_point() {
    // Bound 3 - 1 = 2 on every third crash point (~308,000 executions, ~70 s); the deep run
    // (bound 4 - 1 = 3) takes every crash point, and shuttle always does.
    let step = if bound() >= 4 { 1 } else { 3 };
    let points: Vec<Scenario> = (0..=CRASH_OPS_MAX)
        .step_by(step)
        .map(Scenario::CrashMidFence)
        .collect();
    check(&points, 1, [1, 5_000, 290_000, 290_000, 290_000]);
}

#[test]
fn loom_f_shutdown_with_tickets() {
    // Bound 3 - 1 = 2 (~34,000 executions, ~9 s; bound 3 is ~965,000 executions, ~200 s).
    check(
        &[Scenario::ShutdownWithTickets],
        1,
        [1, 600, 32_000, 32_000, 32_000],
    );
}

#[test]
fn loom_g_two_producers_backpressure() {
    // Bound 3 (~363,000 executions, ~70 s).
    check(
        &[Scenario::TwoProducersBackpressure],
        0,
        [1, 1, 14_000, 345_000, 345_000],
    );
}
