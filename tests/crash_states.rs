//! Crash-state enumeration, I/O error injection, seeded-bug (mutant) witnesses and torn-tail /
//! corruption fixtures, all on `SimDisk` (see `tests/common/crash.rs` for the checker).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use batpak::coordinate::{Coordinate, Region};
use batpak::env::SimDisk;
use batpak::event::EventKind;
use batpak::store::{Mutant, Store, StoreError};
use common::crash::{config, enumerate_crash_states, inject_io_errors, Mode, Stats, DIR};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[test]
fn crash_states_durable_mode() {
    let start = Instant::now();
    let mut stats = Stats::default();
    if let Err(v) = enumerate_crash_states(Mode::DURABLE, 3, &mut stats) {
        panic!("{v}");
    }
    println!(
        "crash states (durable mode): {} workloads, {} runs, {} crash states, {} crash-during-recovery states, {:?}",
        stats.workloads, stats.runs, stats.crash_states, stats.recovery_crash_states, start.elapsed()
    );
    assert!(stats.crash_states > 1000);
}

#[test]
fn crash_states_deferred_mode() {
    let start = Instant::now();
    let mut stats = Stats::default();
    if let Err(v) = enumerate_crash_states(Mode::DEFERRED, 3, &mut stats) {
        panic!("{v}");
    }
    println!(
        "crash states (deferred mode): {} workloads, {} runs, {} crash states, {} crash-during-recovery states, {:?}",
        stats.workloads, stats.runs, stats.crash_states, stats.recovery_crash_states, start.elapsed()
    );
    assert!(stats.crash_states > 1000);
}
