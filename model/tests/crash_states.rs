//! Crash-state enumeration, I/O error injection, seeded-bug (mutant) witnesses and torn-tail /
//! corruption fixtures, all on `SimDisk` (see `batpak_model::crash_states` for the checker).
//!
//! Run with `cargo test --release -p batpak-model --test crash_states -- --nocapture` to see
//! the counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::SimDisk;
use batpak::coordinate::Coordinate;
use batpak::event::EventKind;
use batpak::store::{Store, StoreError};
use batpak_model::check::visible;
use batpak_model::crash_states::{
    consumer_workloads, enumerate_crash_states, enumerate_crash_states_of, inject_io_errors,
    inject_io_errors_of, random_consumer_workloads, Stats,
};
use batpak_model::workload::{config, Mode, Mutant};
use std::path::PathBuf;
use std::time::Instant;

const KIND: EventKind = EventKind::custom(1, 1);

fn report(what: &str, stats: &Stats, start: Instant) {
    println!(
        "{what}: {} workloads, {} runs, {} crash states, {} crash-during-recovery states, \
         {} power losses during the recovery of a process crash, {:?}",
        stats.workloads,
        stats.runs,
        stats.crash_states,
        stats.recovery_crash_states,
        stats.recovery_power_loss_states,
        start.elapsed()
    );
}

#[test]
fn crash_states_durable_mode() {
    let start = Instant::now();
    let mut stats = Stats::default();
    if let Err(v) = enumerate_crash_states(Mode::DURABLE, 3, &mut stats) {
        panic!("{v}");
    }
    report("crash states (durable mode)", &stats, start);
    assert!(stats.crash_states > 1000);
}

#[test]
fn crash_states_deferred_mode() {
    let start = Instant::now();
    let mut stats = Stats::default();
    if let Err(v) = enumerate_crash_states(Mode::DEFERRED, 3, &mut stats) {
        panic!("{v}");
    }
    report("crash states (deferred mode)", &stats, start);
    assert!(stats.crash_states > 1000);
}

#[test]
fn io_error_injection_durable_mode() {
    let start = Instant::now();
    let mut stats = Stats::default();
    if let Err(v) = inject_io_errors(Mode::DURABLE, 3, &mut stats) {
        panic!("{v}");
    }
    report("I/O error injection (durable mode)", &stats, start);
    assert!(stats.runs > 100);
}

#[test]
fn io_error_injection_deferred_mode() {
    let start = Instant::now();
    let mut stats = Stats::default();
    if let Err(v) = inject_io_errors(Mode::DEFERRED, 3, &mut stats) {
        panic!("{v}");
    }
    report("I/O error injection (deferred mode)", &stats, start);
    assert!(stats.runs > 100);
}

/// Durable consumers (`batpak_model::consumers`): every crash image after every operation of
/// the consumer workloads, and a fault (EIO, a full disk with a short write, a failed fsync
/// dropping its pages, a dead disk: a crash there) at every I/O operation, `commit_with`'s
/// included; every recovery must show the log's checkpoints, never behind an acknowledged one,
/// every event handed out still there, and `c0`'s reactions exactly once per source its
/// checkpoint covers.
///
/// CI size: the three fixed workloads and 60 random ones of 5-8 operations; deep
/// (`BATPAK_CRASH_DEEP=1`, `just crash-deep`): 1,000 random ones of 5-10 operations.
#[test]
fn consumer_crash_states_and_io_errors_in_both_modes() {
    let start = Instant::now();
    let mut stats = Stats::default();
    let deep = std::env::var("BATPAK_CRASH_DEEP").is_ok_and(|v| v == "1");
    let mut list = consumer_workloads();
    list.extend(if deep {
        random_consumer_workloads(1_000, 5, 10, 0xC0_5E)
    } else {
        random_consumer_workloads(60, 5, 8, 0xC0_5E)
    });
    for mode in [Mode::DURABLE, Mode::DEFERRED] {
        if let Err(v) = enumerate_crash_states_of(mode, &list, &mut stats) {
            panic!("{mode:?}: {v}");
        }
        if let Err(v) = inject_io_errors_of(mode, &list, &mut stats) {
            panic!("{mode:?}, I/O faults: {v}");
        }
    }
    report(
        "consumers (crash states + I/O faults, both modes)",
        &stats,
        start,
    );
    assert!(stats.crash_states > 1000);
}

// ---------------------------------------------------------------------------- mutants

/// Seeded bugs the enumeration must catch, each reported with the invariant it breaks (seeded
/// bugs exist only in the mutant build, `--cfg batpak_mutant`).
#[cfg(batpak_mutant)]
mod mutants {
    use super::*;
    use batpak_model::check::Violation;

    /// Runs the enumeration with a seeded bug and returns the violation the checker reports.
    fn caught(mutant: Mutant, deferred: bool) -> Violation {
        let mode = Mode { deferred, mutant };
        let mut stats = Stats::default();
        match enumerate_crash_states(mode, 3, &mut stats) {
            Ok(()) => panic!(
                "mutant {mutant:?} NOT caught after {} crash states",
                stats.crash_states
            ),
            Err(v) => {
                println!("mutant {mutant:?} -> {v}");
                v
            }
        }
    }

    fn assert_caught(mutant: Mutant, deferred: bool, inv: &str) {
        let v = caught(mutant, deferred);
        assert_eq!(v.inv, inv, "mutant {mutant:?} reported as {v}");
    }

    /// Runs the consumer workloads (crash images, then faults at every I/O operation) with a
    /// seeded bug; the violation reported.
    fn consumer_caught(mutant: Mutant, deferred: bool) -> Violation {
        let mode = Mode { deferred, mutant };
        let mut stats = Stats::default();
        let r = enumerate_crash_states_of(mode, &consumer_workloads(), &mut stats)
            .and_then(|()| inject_io_errors_of(mode, &consumer_workloads(), &mut stats));
        match r {
            Ok(()) => panic!(
                "mutant {mutant:?} NOT caught after {} crash states",
                stats.crash_states
            ),
            Err(v) => {
                println!("mutant {mutant:?} -> {v}");
                v
            }
        }
    }

    #[test]
    fn mutant_checkpoint_not_atomic_is_caught() {
        let v = consumer_caught(Mutant::CheckpointNotAtomic, false);
        assert_eq!(v.inv, "INV-EXACTLY-ONCE", "reported as {v}");
    }

    #[test]
    fn mutant_checkpoint_ack_before_durable_is_caught() {
        let v = consumer_caught(Mutant::CheckpointAckBeforeDurable, true);
        assert_eq!(v.inv, "INV-CHECKPOINT-DURABLE", "reported as {v}");
    }

    #[test]
    fn mutant_deliver_before_durable_is_caught() {
        let v = consumer_caught(Mutant::DeliverBeforeDurable, true);
        assert_eq!(v.inv, "INV-CHECKPOINT-DURABLE", "reported as {v}");
    }

    #[test]
    fn mutant_recover_partial_batch_is_caught() {
        assert_caught(Mutant::RecoverPartialBatch, false, "INV-BATCH-ATOMIC");
    }

    #[test]
    fn mutant_recovery_stops_at_hidden_unit_is_caught() {
        assert_caught(
            Mutant::RecoveryStopsAtHiddenUnit,
            false,
            "INV-NO-COLLATERAL",
        );
    }

    #[test]
    fn mutant_recover_open_fence_visible_is_caught() {
        assert_caught(Mutant::RecoverOpenFenceVisible, false, "INV-FENCE-CRASH");
    }

    #[test]
    fn mutant_recovery_keeps_torn_tail_is_caught() {
        assert_caught(
            Mutant::RecoveryKeepsTornTail,
            false,
            "INV-RECOVERY-IDEMPOTENT",
        );
    }

    #[test]
    fn mutant_raw_wall_clock_is_caught() {
        // Every reopen of the enumeration steps the clock back; the raw reading then puts the
        // events appended after recovery before the recovered ones.
        assert_caught(Mutant::RawWallClock, false, "INV-HLC-MONOTONE");
    }

    #[test]
    fn mutant_ack_before_fsync_is_caught() {
        assert_caught(Mutant::AckBeforeFsync, false, "INV-DURABLE");
    }

    #[test]
    fn mutant_visible_before_commit_is_caught() {
        assert_caught(Mutant::VisibleBeforeCommit, false, "INV-FENCE-HIDDEN");
    }

    #[test]
    fn mutant_fence_commit_ack_before_durable_is_caught() {
        assert_caught(Mutant::FenceCommitAckBeforeDurable, true, "INV-FENCE-CRASH");
    }

    #[test]
    fn mutant_cancel_as_commit_is_caught() {
        assert_caught(Mutant::CancelAsCommit, false, "INV-NO-RESURRECT");
    }

    #[test]
    fn mutant_recovery_renumbers_is_caught() {
        assert_caught(Mutant::RecoveryRenumbers, false, "INV-STABLE-SEQ");
    }

    #[test]
    fn mutant_chain_restarts_in_fence_is_caught() {
        assert_caught(Mutant::ChainRestartsInFence, false, "INV-CHAIN");
    }

    /// No open-time fsync: a reopened store reports what it found in the page cache as durable;
    /// the power loss after the reopen (every crash image is read as a process crash's page cache)
    /// loses it.
    #[test]
    fn mutant_recovery_trusts_page_cache_is_caught() {
        let v = caught(Mutant::RecoveryTrustsPageCache, false);
        assert_eq!(v.inv, "INV-DURABLE", "{v}");
        assert!(v.detail.contains("lost by a power loss"), "{v}");
    }

    /// A roll that does not sync the segment it seals: in deferred mode the old segment's tail is
    /// unsynced when the new segment (synced) appears, so a power loss leaves a log that skips
    /// sequences, which recovery refuses.
    #[test]
    fn mutant_roll_skips_seal_sync_is_caught() {
        let v = caught(Mutant::RollSkipsSealSync, true);
        assert_eq!(v.inv, "INV-PREFIX", "{v}");
        assert!(v.detail.contains("the log continues at"), "{v}");
    }

    /// Runs the I/O fault injection with a seeded bug and returns the violation reported.
    fn caught_by_faults(mutant: Mutant, deferred: bool) -> Violation {
        let mode = Mode { deferred, mutant };
        let mut stats = Stats::default();
        match inject_io_errors(mode, 1, &mut stats) {
            Ok(()) => panic!("mutant {mutant:?} NOT caught after {} runs", stats.runs),
            Err(v) => {
                println!("mutant {mutant:?} -> {v}");
                v
            }
        }
    }

    /// Retrying a failed fsync and acknowledging when the retry succeeds: the failed fsync marked
    /// the pages clean without writing them, so the acknowledged event is in no power-loss state.
    #[test]
    fn mutant_fsync_retry_acks_is_caught() {
        let v = caught_by_faults(Mutant::FsyncRetryAcks, false);
        assert_eq!(v.inv, "INV-DURABLE", "{v}");
    }

    /// A write failing with ENOSPC taken as done: the event is acknowledged durable but its bytes
    /// never made it to the log.
    #[test]
    fn mutant_no_space_swallowed_is_caught() {
        let v = caught_by_faults(Mutant::NoSpaceSwallowed, false);
        assert_eq!(v.inv, "INV-DURABLE", "{v}");
    }

    #[test]
    fn torn_tail_fixture_catches_recovery_keeps_torn_tail() {
        let (disk, seg, _) = store_with_three_events(Mutant::RecoveryKeepsTornTail);
        let mut bytes = disk.read_file(&seg).unwrap();
        bytes.extend_from_slice(&[0xA5; 37]);
        disk.write_file_durably(&seg, &bytes).unwrap();
        let store = reopen(&disk, Mutant::RecoveryKeepsTornTail, 1).unwrap();
        assert!(store.recovery_report().torn_tail.is_some());
        store.close().unwrap();
        let store = reopen(&disk, Mutant::RecoveryKeepsTornTail, 2).unwrap();
        assert!(
            store.recovery_report().torn_tail.is_some(),
            "the seeded bug leaves the torn tail on disk (INV-RECOVERY-IDEMPOTENT broken)"
        );
    }
}

// ---------------------------------------------------------------------------- fixtures

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "s").unwrap()
}

/// A store with three durable events on a fresh SimDisk; returns the disk, the only segment
/// file and the events' (id, frame offset, frame length).
fn store_with_three_events(mutant: Mutant) -> (SimDisk, PathBuf, Vec<(u128, u64, u32)>) {
    let disk = SimDisk::new();
    let mode = Mode {
        deferred: false,
        mutant,
    };
    let store = Store::open(config(&disk, mode, 0).with_segment_max_bytes(1 << 20)).unwrap();
    let mut events = Vec::new();
    for i in 0..3 {
        let r = store
            .append(
                &coord("a"),
                KIND,
                &serde_json::json!({"i": i, "pad": "abcdefgh"}),
            )
            .unwrap();
        events.push((r.event_id, r.disk_pos.offset, r.disk_pos.length));
    }
    store.close().unwrap();
    let segs: Vec<PathBuf> = disk
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(segs.len(), 1, "{segs:?}");
    (disk, segs[0].clone(), events)
}

fn reopen(disk: &SimDisk, mutant: Mutant, session: u64) -> Result<Store, StoreError> {
    let mode = Mode {
        deferred: false,
        mutant,
    };
    Store::open(config(disk, mode, session).with_segment_max_bytes(1 << 20))
}

#[test]
fn torn_tail_is_cut_and_stays_cut() {
    let (disk, seg, events) = store_with_three_events(Mutant::None);
    let mut bytes = disk.read_file(&seg).unwrap();
    let good_len = bytes.len() as u64;
    bytes.extend_from_slice(&[0xA5; 37]);
    disk.write_file_durably(&seg, &bytes).unwrap();

    let store = reopen(&disk, Mutant::None, 1).unwrap();
    let torn = store
        .recovery_report()
        .torn_tail
        .clone()
        .expect("torn tail found");
    assert_eq!(torn.file, seg);
    assert_eq!(torn.offset, good_len);
    assert_eq!(torn.cut_bytes, 37);
    let vis = visible(&store);
    assert_eq!(
        vis.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        events.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    store.close().unwrap();
    assert_eq!(disk.durable_file(&seg).unwrap().len() as u64, good_len);

    let store = reopen(&disk, Mutant::None, 2).unwrap();
    assert!(store.recovery_report().torn_tail.is_none());
    assert_eq!(visible(&store), vis);
    // Appending after the cut and reopening works (the cut is not mistaken for corruption).
    store.append(&coord("a"), KIND, &1).unwrap();
    store.close().unwrap();
    let store = reopen(&disk, Mutant::None, 3).unwrap();
    assert!(store.recovery_report().torn_tail.is_none());
    assert_eq!(visible(&store).len(), 4);
}

#[test]
fn corruption_mid_segment_fails_closed_with_file_and_offset() {
    let (disk, seg, events) = store_with_three_events(Mutant::None);
    let (_, offset, length) = events[0];
    let at = offset + u64::from(length) / 2;
    let old = disk.read_file(&seg).unwrap()[usize::try_from(at).unwrap()];
    disk.corrupt(&seg, at, old ^ 0xFF).unwrap();
    match reopen(&disk, Mutant::None, 1) {
        Err(StoreError::CorruptSegment { detail, .. }) => {
            assert_eq!(detail.file(), Some(seg.as_path()));
            assert_eq!(
                detail.offset(),
                Some(offset),
                "names the damaged frame ({detail})"
            );
            let text = format!(
                "{}",
                StoreError::CorruptSegment {
                    segment_id: 0,
                    detail,
                }
            );
            assert!(text.contains(&seg.display().to_string()), "{text}");
        }
        Err(e) => panic!("expected CorruptSegment, got {e:?}"),
        Ok(_) => panic!("corruption followed by valid frames must fail open"),
    }
    // Nothing was dropped: the bytes are still there, a second open fails the same way.
    assert!(matches!(
        reopen(&disk, Mutant::None, 2),
        Err(StoreError::CorruptSegment { .. })
    ));
}
