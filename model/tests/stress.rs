//! Every scenario as a plain std stress test (real threads, real preemption): thousands of
//! runs in total, part of `cargo test`.
#![cfg(not(any(loom, shuttle)))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak_model::scenarios::{
    consumer_commit_vs_crash, crash_mid_fence, FenceEnd, CONSUMER_CRASH_OPS_MAX, CRASH_OPS_MAX,
};
use batpak_model::Mutant;
use batpak_model::Scenario;
use std::time::Instant;

/// Runs per scenario (per crash point for (e)).
const RUNS: usize = 300;

fn stress(s: Scenario, runs: usize) {
    let start = Instant::now();
    for _ in 0..runs {
        s.run(Mutant::None);
    }
    println!("{s}: {runs} runs in {:?}", start.elapsed());
}

#[test]
fn stress_a_fence_commit_vs_reader() {
    stress(Scenario::FenceCommitVsReader, RUNS);
}

#[test]
fn stress_b_fence_end_vs_outbox() {
    for end in [FenceEnd::Commit, FenceEnd::Cancel, FenceEnd::Drop] {
        stress(Scenario::FenceEndVsOutbox(end), RUNS);
    }
}

#[test]
fn stress_c_fence_drop_full_channel() {
    stress(Scenario::FenceDropFullChannel, RUNS);
}

#[test]
fn stress_d_batch_vs_reader() {
    stress(Scenario::BatchVsReader, RUNS);
}

#[test]
fn stress_h_delivery_vs_publish() {
    stress(Scenario::DeliveryVsPublish, RUNS);
}

#[test]
fn stress_i_lossy_lag_vs_writer() {
    stress(Scenario::LossyLagVsWriter, RUNS);
}

#[test]
fn stress_j_consumer_commit_vs_crash_at_every_crash_point() {
    for k in 0..=CONSUMER_CRASH_OPS_MAX {
        stress(Scenario::ConsumerCommitVsCrash(k), RUNS / 10);
    }
}

#[test]
fn consumer_commit_vs_crash_uses_at_most_the_crash_points() {
    let mut most = 0;
    for _ in 0..200 {
        most = most.max(consumer_commit_vs_crash(Mutant::None, u64::MAX));
    }
    println!("consumer_commit_vs_crash: at most {most} I/O operations after the poll");
    assert!(
        most <= CONSUMER_CRASH_OPS_MAX + 1,
        "CONSUMER_CRASH_OPS_MAX = {CONSUMER_CRASH_OPS_MAX} misses crash points: a run issued \
         {most} operations"
    );
}

#[test]
fn stress_k_wait_vs_writer() {
    stress(Scenario::WaitVsWriter, RUNS);
}

#[test]
fn stress_e_crash_mid_fence_at_every_crash_point() {
    for k in 0..=CRASH_OPS_MAX {
        stress(Scenario::CrashMidFence(k), RUNS / 10);
    }
}

#[test]
fn crash_mid_fence_uses_at_most_the_crash_points() {
    let (mut most, mut images) = (0, 0);
    for _ in 0..200 {
        let run = crash_mid_fence(Mutant::None, u64::MAX);
        most = most.max(run.ops_after_open);
        images = images.max(run.images);
    }
    println!("crash_mid_fence: at most {most} I/O operations after open, {images} crash images");
    assert!(
        most <= CRASH_OPS_MAX + 1,
        "CRASH_OPS_MAX = {CRASH_OPS_MAX} misses crash points: a run issued {most} operations"
    );
}

#[test]
fn stress_f_shutdown_with_tickets() {
    stress(Scenario::ShutdownWithTickets, RUNS);
}

#[test]
fn stress_g_two_producers_backpressure() {
    stress(Scenario::TwoProducersBackpressure, RUNS);
}

#[test]
fn scenario_names_round_trip() {
    for s in Scenario::all() {
        assert_eq!(Scenario::from_name(&s.name()), Some(s));
    }
}
