//! shuttle: randomized (PCT depth 3 and uniform random) exploration of every scenario on the
//! real store, plus replay of every saved failing schedule in `model/schedules/`.
//!
//! `RUSTFLAGS="--cfg shuttle" cargo test -p batpak-model --release --target-dir
//! target/shuttle --test shuttle -- --nocapture`; `MODEL_SHUTTLE_ITERATIONS` sets the
//! iterations per scheduler and scenario (default 10,000; the deep run uses 1,000,000).
//! A failing schedule is persisted to `model/schedules/new/` (named `scheduleNNN.txt` by
//! shuttle); rename it to `<scenario>.<Mutant>.txt` to keep it as a regression.
#![cfg(shuttle)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak_model::scenarios::{FenceEnd, CONSUMER_CRASH_OPS_MAX, CRASH_OPS_MAX};
#[cfg(batpak_mutant)]
use batpak_model::schedules::{self, SavedSchedule};
use batpak_model::Mutant;
use batpak_model::Scenario;
use shuttle::scheduler::{PctScheduler, RandomScheduler};
use shuttle::{Config, FailurePersistence, Runner};
use std::path::PathBuf;
use std::time::Instant;

fn iterations() -> usize {
    std::env::var("MODEL_SHUTTLE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn config() -> Config {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schedules/new");
    let _ = std::fs::create_dir_all(&dir);
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::File(Some(dir));
    config
}

/// Runs `scenarios` (sharing `total` iterations per scheduler) under PCT depth 3 and random.
fn check(scenarios: &[Scenario], total: usize) {
    let per = total.div_ceil(scenarios.len()).max(1);
    let start = Instant::now();
    let (mut pct, mut random) = (0, 0);
    for &s in scenarios {
        pct += Runner::new(PctScheduler::new(3, per), config()).run(move || s.run(Mutant::None));
        random += Runner::new(RandomScheduler::new(per), config()).run(move || s.run(Mutant::None));
    }
    let label = scenarios.first().map(|s| s.name()).unwrap_or_default();
    println!(
        "shuttle {label}{}: {pct} PCT (depth 3) + {random} random iterations in {:?}",
        if scenarios.len() > 1 {
            " (+ variants)"
        } else {
            ""
        },
        start.elapsed()
    );
    assert!(
        pct >= total && random >= total,
        "shuttle ran fewer iterations than asked"
    );
}

#[test]
fn shuttle_a_fence_commit_vs_reader() {
    check(&[Scenario::FenceCommitVsReader], iterations());
}

#[test]
fn shuttle_b_fence_end_vs_outbox() {
    let ends = [FenceEnd::Commit, FenceEnd::Cancel, FenceEnd::Drop];
    let s: Vec<_> = ends.into_iter().map(Scenario::FenceEndVsOutbox).collect();
    check(&s, iterations());
}

#[test]
fn shuttle_c_fence_drop_full_channel() {
    check(&[Scenario::FenceDropFullChannel], iterations());
}

#[test]
fn shuttle_d_batch_vs_reader() {
    check(&[Scenario::BatchVsReader], iterations());
}

#[test]
fn shuttle_e_crash_mid_fence_at_every_crash_point() {
    let points: Vec<Scenario> = (0..=CRASH_OPS_MAX).map(Scenario::CrashMidFence).collect();
    check(&points, iterations());
}

#[test]
fn shuttle_f_shutdown_with_tickets() {
    check(&[Scenario::ShutdownWithTickets], iterations());
}

#[test]
fn shuttle_g_two_producers_backpressure() {
    check(&[Scenario::TwoProducersBackpressure], iterations());
}

#[test]
fn shuttle_h_delivery_vs_publish() {
    check(&[Scenario::DeliveryVsPublish], iterations());
}

#[test]
fn shuttle_i_lossy_lag_vs_writer() {
    check(&[Scenario::LossyLagVsWriter], iterations());
}

#[test]
fn shuttle_j_consumer_commit_vs_crash_at_every_crash_point() {
    let points: Vec<Scenario> = (0..=CONSUMER_CRASH_OPS_MAX)
        .map(Scenario::ConsumerCommitVsCrash)
        .collect();
    check(&points, iterations());
}

#[test]
fn shuttle_k_wait_vs_writer() {
    check(&[Scenario::WaitVsWriter], iterations());
}

/// Every schedule saved under `model/schedules/` replays: a mutant's schedule still makes the
/// scenario fail with that mutant (the witness still catches it there), and a schedule saved
/// for the real store (`.None.txt`) now passes. Each replay runs in a child process (shuttle
/// can panic again while unwinding a failed run); the child exits 3 on the first panic.
#[cfg(batpak_mutant)]
#[test]
fn shuttle_saved_schedules_replay() {
    const CHILD_ENV: &str = "BATPAK_REPLAY_SCHEDULE";
    let saved = schedules::saved();
    if let Ok(path) = std::env::var(CHILD_ENV) {
        let SavedSchedule {
            scenario, mutant, ..
        } = saved
            .into_iter()
            .find(|s| s.path.to_string_lossy() == path)
            .expect("the schedule to replay");
        std::panic::set_hook(Box::new(|_| {
            println!("REPLAY-FAILED");
            std::process::exit(3);
        }));
        shuttle::replay_from_file(move || scenario.run(mutant), &path);
        return;
    }
    assert!(
        !saved.is_empty(),
        "no saved schedules under model/schedules/"
    );
    let exe = std::env::current_exe().expect("test binary path");
    for SavedSchedule { path, mutant, .. } in saved {
        let status = std::process::Command::new(&exe)
            .args([
                "shuttle_saved_schedules_replay",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .output()
            .expect("replay child")
            .status;
        match mutant {
            Mutant::None => assert!(status.success(), "{}: fails again", path.display()),
            _ => assert_eq!(
                status.code(),
                Some(3),
                "{}: the schedule no longer exposes {mutant:?}",
                path.display()
            ),
        }
        println!(
            "replayed {} ({mutant:?}: fails as expected)",
            path.display()
        );
    }
}
