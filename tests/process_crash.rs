//! A process crash, then a reopen, then a power loss, on `SimDisk`: what a reopened store
//! reports durable must survive the power loss (INV-DURABLE), whoever wrote it. Also what a
//! failed fsync and a full disk do to the store and to the processes after it.
//!
//! The first two groups are the two scenarios of the issue that introduced the open-time
//! fsync, each with a plain append, an atomic batch and a committed visibility fence:
//! 1. the process dies after a unit's write and before its fsync; the next process finds the
//!    unit in the page cache and reports it durable; a power loss must not lose it;
//! 2. the same, but the next process's first record rolls to a new segment (small segments):
//!    the roll must seal the old segment durably, or a power loss leaves a log that does not
//!    open ("segment starts at sequence 1 but the log continues at 0").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{CounterIds, CrashOptions, Fault, FaultKind, ManualClock, SimDisk};
use batpak::coordinate::{Coordinate, Region};
use batpak::event::EventKind;
use batpak::store::{
    AppendOptions, BatchAppendItem, CausationRef, IndexEntry, Store, StoreConfig, StoreError,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const DIR: &str = "/db";
const KIND: EventKind = EventKind::custom(1, 1);

fn config(disk: &SimDisk, session: u64) -> StoreConfig {
    let session_i = i64::try_from(session).unwrap();
    StoreConfig::new(DIR)
        .with_lifecycle_events(false)
        .with_disk(Arc::new(disk.clone()))
        .with_clock_source(Arc::new(ManualClock::new(
            1_700_000_000_000_000 + session_i * 1_000_000_000,
        )))
        .with_id_source(Arc::new(CounterIds::new(1 + session * 1_000_000)))
}

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "s").unwrap()
}

fn visible(store: &Store) -> Vec<(u128, u64)> {
    let mut v: Vec<IndexEntry> = store.query(&Region::all());
    v.sort_by_key(|e| e.global_sequence);
    v.iter().map(|e| (e.event_id, e.global_sequence)).collect()
}

fn segment(id: u64) -> PathBuf {
    Path::new(DIR).join(format!("{id:020}.seg"))
}

/// How a unit of writes is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// One `append`.
    Plain,
    /// An atomic batch of two.
    Batch,
    /// A visibility fence with two events, committed.
    Fence,
}

const UNITS: [Unit; 3] = [Unit::Plain, Unit::Batch, Unit::Fence];

fn two_items(entity: &str) -> Vec<BatchAppendItem> {
    (0..2)
        .map(|i| {
            BatchAppendItem::new(
                coord(entity),
                KIND,
                &json!({"item": i}),
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect()
}

/// Writes `unit` on `entity`; returns what the unit's final call answered (for a fence: the
/// commit, after its events were written and synced) and how many events it holds.
fn write_unit(
    store: &Store,
    unit: Unit,
    entity: &str,
    before_last_fsync: &dyn Fn(),
) -> Result<usize, StoreError> {
    match unit {
        Unit::Plain => {
            before_last_fsync();
            let r = store.append(&coord(entity), KIND, &json!({"plain": entity}))?;
            assert!(r.durable);
            Ok(1)
        }
        Unit::Batch => {
            before_last_fsync();
            let rs = store.append_batch(two_items(entity))?;
            assert!(rs.iter().all(|r| r.durable));
            Ok(2)
        }
        Unit::Fence => {
            let fence = store.begin_visibility_fence()?;
            let tickets: Vec<_> = (0..2)
                .map(|i| {
                    fence
                        .submit(&coord(entity), KIND, &json!({"fenced": i}))
                        .unwrap()
                })
                .collect();
            // The fenced events are written and synced; only the commit is left.
            store.sync()?;
            before_last_fsync();
            fence.commit()?;
            for t in tickets {
                assert!(t.wait()?.durable);
            }
            Ok(2)
        }
    }
}

/// Session 0 (durable mode) writes `unit` on entity "a", and its process dies after the
/// unit's last write, before that write's fsync. Returns the next process's handle.
fn die_between_write_and_fsync(disk: &SimDisk, unit: Unit) -> SimDisk {
    let store = Store::open(config(disk, 0)).unwrap();
    let r = write_unit(&store, unit, "a", &|| {
        disk.fail_next("sync_data", FaultKind::ProcessCrash)
    });
    assert!(
        r.is_err(),
        "the process died before the fsync, yet {unit:?} answered {r:?}"
    );
    drop(store);
    disk.process_crash()
}

/// Every power loss `disk` may suffer now (subsets of unsynced appends included) keeps
/// exactly `seen` visible, and so does the one that loses every unsynced byte.
fn every_power_loss_keeps(disk: &SimDisk, seen: &[(u128, u64)], what: &str) {
    let opts = CrashOptions {
        subsets: true,
        max_subset_ops: 8,
    };
    for img in disk.crash_images(&opts) {
        let d = img.power_loss_disk();
        let store = Store::open(config(&d, 7)).unwrap_or_else(|e| {
            panic!(
                "INV-DURABLE: {what}: after a power loss the store does not open: {e} [{}]",
                img.describe()
            )
        });
        assert_eq!(
            visible(&store),
            seen,
            "INV-DURABLE: {what}: a power loss changed what was reported durable [{}]",
            img.describe()
        );
    }
    let lost = disk.power_loss(&mut |_| 0);
    let store = Store::open(config(&lost, 8)).unwrap_or_else(|e| {
        panic!("INV-DURABLE: {what}: after the power loss that keeps only synced bytes the store does not open: {e}")
    });
    assert_eq!(
        visible(&store),
        seen,
        "INV-DURABLE: {what}: the power loss that keeps only synced bytes lost what the reopened store reported durable"
    );
}

// ------------------------------------------------------------------ scenario 1

fn reopen_reports_durable_then_power_loss(unit: Unit) {
    let disk = SimDisk::new();
    let disk = die_between_write_and_fsync(&disk, unit);
    let store = Store::open(config(&disk, 1)).unwrap();
    let seen = visible(&store);
    let n = if unit == Unit::Plain { 1 } else { 2 };
    assert_eq!(
        seen.len(),
        n,
        "the next process finds the {unit:?} in the page cache"
    );
    let f = store.frontier();
    assert_eq!(f.durable, f.written, "and reports it durable");
    store.sync().unwrap();
    store
        .wait_for_durable(
            batpak::store::HlcPoint {
                wall_ms: 0,
                global_sequence: f.durable.saturating_sub(1),
            },
            Duration::from_secs(5),
        )
        .unwrap();
    store.close().unwrap();
    every_power_loss_keeps(
        &disk,
        &seen,
        &format!("{unit:?} found after a process crash"),
    );
}

#[test]
fn a_plain_append_found_after_a_process_crash_survives_a_power_loss() {
    reopen_reports_durable_then_power_loss(Unit::Plain);
}

#[test]
fn a_batch_found_after_a_process_crash_survives_a_power_loss() {
    reopen_reports_durable_then_power_loss(Unit::Batch);
}

#[test]
fn a_committed_fence_found_after_a_process_crash_survives_a_power_loss() {
    reopen_reports_durable_then_power_loss(Unit::Fence);
}

// ------------------------------------------------------------------ scenario 2

fn roll_after_process_crash_then_power_loss(first: Unit, second: Unit) {
    let disk = SimDisk::new();
    let disk = die_between_write_and_fsync(&disk, first);
    let seg0 = disk.read_file(&segment(0)).unwrap().len() as u64;
    // Segments so small that the next process's first record rolls to a new segment.
    let small = |c: StoreConfig| c.with_segment_max_bytes(seg0 + 8);
    let store = Store::open(small(config(&disk, 1))).unwrap();
    let found = visible(&store);
    assert!(!found.is_empty());
    write_unit(&store, second, "b", &|| {}).expect("the second unit is acknowledged durable");
    assert!(
        disk.read_file(&segment(1)).is_some(),
        "the second unit rolled"
    );
    let seen = visible(&store);
    store.close().unwrap();
    let what = format!("{first:?} found after a process crash, then a {second:?} that rolled");
    let lost = disk.power_loss(&mut |_| 0);
    let store = match Store::open(small(config(&lost, 2))) {
        Ok(s) => s,
        Err(e) => panic!("INV-DURABLE: {what}: after the power loss the store does not open: {e}"),
    };
    assert_eq!(visible(&store), seen, "INV-DURABLE: {what}");
    drop(store);
    every_power_loss_keeps(&lost, &seen, &what);
}

#[test]
fn a_roll_after_a_process_crash_seals_the_found_plain_append_durably() {
    roll_after_process_crash_then_power_loss(Unit::Plain, Unit::Plain);
}

#[test]
fn a_roll_after_a_process_crash_seals_the_found_batch_durably() {
    roll_after_process_crash_then_power_loss(Unit::Batch, Unit::Batch);
}

#[test]
fn a_roll_after_a_process_crash_seals_the_found_fence_durably() {
    roll_after_process_crash_then_power_loss(Unit::Fence, Unit::Fence);
}

#[test]
fn a_roll_after_a_process_crash_seals_the_segment_whatever_the_units() {
    for first in UNITS {
        for second in UNITS {
            roll_after_process_crash_then_power_loss(first, second);
        }
    }
}

// ------------------------------------------------------------------ failed fsync at open

/// The next process's open-time fsync fails: the kernel may have marked the found pages clean
/// without writing them, so a retry would succeed and prove nothing. The open fails, and the
/// next open reports durable only what is on the platter.
#[test]
fn a_failed_fsync_at_open_fails_the_open_and_the_next_open_trusts_only_the_platter() {
    for drop_pages in [false, true] {
        let disk = SimDisk::new();
        let disk = die_between_write_and_fsync(&disk, Unit::Plain);
        let fault = Fault::new(FaultKind::Transient);
        disk.fail_next(
            "sync_data",
            if drop_pages {
                fault.drop_pages()
            } else {
                fault
            },
        );
        match Store::open(config(&disk, 1)) {
            Err(StoreError::IoAt { op, path, .. }) => {
                assert_eq!(op, "sync recovered segment");
                assert_eq!(path, segment(0));
            }
            Err(e) => panic!("expected the failed sync, got {e}"),
            Ok(_) => panic!("the open-time fsync failed, yet open succeeded"),
        }
        let store = Store::open(config(&disk, 2)).unwrap();
        let seen = visible(&store);
        // Kept pages were rewritten durably; dropped ones read back as what the platter has.
        assert_eq!(
            seen.len(),
            usize::from(!drop_pages),
            "drop_pages {drop_pages}"
        );
        let f = store.frontier();
        assert_eq!(f.durable, f.written);
        store.close().unwrap();
        every_power_loss_keeps(
            &disk,
            &seen,
            &format!("failed open-time fsync (drop pages: {drop_pages})"),
        );
    }
}

// ------------------------------------------------------------------ failed fsync while running

/// A failed fsync latches the writer (indeterminate outcome, later writes refused), and the
/// bytes it failed to persist are cut off: no later process finds them in the page cache and
/// reports them durable.
#[test]
fn a_failed_fsync_latches_and_no_later_process_takes_its_bytes_for_durable() {
    for drop_pages in [false, true] {
        let disk = SimDisk::new();
        let store = Store::open(config(&disk, 0)).unwrap();
        let a = store.append(&coord("a"), KIND, &json!({"n": 1})).unwrap();
        let fault = Fault::new(FaultKind::Transient);
        disk.fail_next(
            "sync_data",
            if drop_pages {
                fault.drop_pages()
            } else {
                fault
            },
        );
        let err = store
            .append(&coord("a"), KIND, &json!({"n": 2}))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::OutcomeUnknown { .. }) && !err.is_definite(),
            "{err:?}"
        );
        let err = store
            .append(&coord("a"), KIND, &json!({"n": 3}))
            .unwrap_err();
        assert!(matches!(err, StoreError::WriterLatched { .. }), "{err:?}");
        assert!(
            store.sync().is_err(),
            "a latched store cannot make anything durable"
        );
        assert_eq!(
            store.get(a.event_id).unwrap().event.payload,
            json!({"n": 1})
        );
        assert_eq!(store.frontier().durable, 1);
        // The process dies; the next one must not find the unsynced append.
        drop(store);
        let disk = disk.process_crash();
        let store = Store::open(config(&disk, 1)).unwrap();
        let seen = visible(&store);
        assert_eq!(seen, vec![(a.event_id, 0)], "drop_pages {drop_pages}");
        store.close().unwrap();
        every_power_loss_keeps(&disk, &seen, "after a failed fsync");
    }
}

// ------------------------------------------------------------------ disk full

/// A write that fails because the disk is full (after writing part of its bytes) is a definite
/// error naming the file and the cause; everything acknowledged before it stays intact and
/// readable; the writer latches, and the store works again once reopened.
#[test]
fn a_full_disk_is_a_definite_error_and_the_store_works_again_after_reopen() {
    for deferred in [false, true] {
        let disk = SimDisk::new();
        let cfg = |session| {
            let c = config(&disk, session);
            if deferred {
                c.with_sync_every_n_events(1000)
                    .with_flush_interval(Duration::from_secs(3600))
            } else {
                c
            }
        };
        let store = Store::open(cfg(0)).unwrap();
        let a = store.append(&coord("a"), KIND, &json!({"n": 1})).unwrap();
        disk.fail_next(
            "append",
            Fault::new(FaultKind::Transient).no_space().short_write(20),
        );
        let err = store
            .append(&coord("a"), KIND, &json!({"n": 2}))
            .unwrap_err();
        assert!(err.is_definite(), "{err:?}");
        match &err {
            StoreError::IoAt { op, path, source } => {
                assert_eq!(*op, "write segment");
                assert_eq!(path, &segment(0));
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{source}");
            }
            other => panic!("expected IoAt, got {other:?}"),
        }
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(
            store.get(a.event_id).unwrap().event.payload,
            json!({"n": 1})
        );
        assert!(matches!(
            store.append(&coord("a"), KIND, &json!({"n": 3})),
            Err(StoreError::WriterLatched { .. })
        ));
        // The cut-back synced what came before: the deferred append is durable now.
        assert_eq!(store.frontier().durable, 1);
        assert_eq!(visible(&store), vec![(a.event_id, 0)]);
        // Nothing of the failed write is in any state the disk may be left in.
        for img in disk.crash_images(&CrashOptions::default()) {
            let store = Store::open(config(&img.power_loss_disk(), 9)).unwrap();
            assert_eq!(visible(&store), vec![(a.event_id, 0)], "{}", img.describe());
        }
        store.close().unwrap();
        let store = Store::open(cfg(1)).unwrap();
        assert!(store.recovery_report().torn_tail.is_none());
        assert_eq!(visible(&store), vec![(a.event_id, 0)]);
        let c = store.append(&coord("a"), KIND, &json!({"n": 3})).unwrap();
        assert_eq!(c.sequence, 1);
        assert_eq!(c.clock, 2, "the entity chain continues");
        store.sync().unwrap();
        let seen = visible(&store);
        store.close().unwrap();
        every_power_loss_keeps(&disk, &seen, "after a full disk and a reopen");
    }
}
