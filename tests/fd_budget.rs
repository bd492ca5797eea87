//! File descriptors stay bounded however many segments the log has: readers keep at most
//! `fd_budget` segment files open (least recently used closed first), and descriptors held for
//! reading never make a segment roll fail (the writer releases them and tries again), so a
//! reader that ran out of descriptors never latches the writer.
//!
//! Run under a real per-process limit: the test re-executes its binary as a child under
//! `ulimit -n 256` (the limit applies to the child only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::FD_BUDGET_DEFAULT;
use std::path::Path;
use std::process::Command;

const CHILD_VAR: &str = "BATPAK_FD_CHILD";
const LIMIT: u32 = 256;

fn coord(i: u64) -> Coordinate {
    Coordinate::new(format!("fd:{}", i % 7), "fds").unwrap()
}

fn kind() -> EventKind {
    EventKind::custom(0x2, 1)
}

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Fills a store of 1 KiB segments with `n` events (batches of 30); returns their ids.
fn fill(store: &Store, n: u64) -> Vec<u128> {
    let mut ids = Vec::new();
    for b in 0..n / 30 {
        let items = (0..30)
            .map(|i| {
                let k = b * 30 + i;
                BatchAppendItem::new(
                    coord(k),
                    kind(),
                    &format!("event {k:05} padded to take a good part of a small segment"),
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .unwrap()
            })
            .collect();
        ids.extend(
            store
                .append_batch(items)
                .unwrap()
                .iter()
                .map(|r| r.event_id),
        );
    }
    ids
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count()
}

/// The default budget: 500 segments, every event read (twice), descriptors stay near the
/// budget, and appends that roll segments keep working.
fn default_budget(dir: &Path) {
    let cfg = || {
        StoreConfig::new(dir)
            .with_lifecycle_events(false)
            .with_segment_max_bytes(1024)
    };
    let store = Store::open(cfg()).unwrap();
    let ids = fill(&store, 3000);
    assert!(segments(dir) >= 500, "{} segments", segments(dir));
    for round in 0..2 {
        for id in &ids {
            store
                .get(*id)
                .unwrap_or_else(|e| panic!("read {round} of {id:032x}: {e}"));
        }
        let fds = open_fds();
        assert!(
            fds <= FD_BUDGET_DEFAULT + 16,
            "{fds} descriptors open after reading {} segments",
            segments(dir)
        );
    }
    // Rolls still work, and so does a reopen.
    let more = fill(&store, 90);
    store.close().unwrap();
    let store = Store::open(cfg()).unwrap();
    for id in ids.iter().chain(&more) {
        store.get(*id).unwrap();
    }
    println!(
        "default budget: {} segments, {} events read twice, {} descriptors open",
        segments(dir),
        ids.len(),
        open_fds()
    );
}

/// A budget above what the process may open: readers run out of descriptors (those reads
/// fail with an error naming the file), yet the next roll succeeds (the writer releases the
/// readers' descriptors) and the writer never latches.
fn budget_above_the_limit(dir: &Path) {
    let cfg = || {
        StoreConfig::new(dir)
            .with_lifecycle_events(false)
            .with_segment_max_bytes(1024)
            .with_fd_budget(100_000)
    };
    let store = Store::open(cfg()).unwrap();
    let ids = fill(&store, 3000);
    let mut failed = 0;
    for id in &ids {
        match store.get(*id) {
            Ok(_) => {}
            Err(StoreError::IoAt { path, op, .. }) => {
                assert_eq!(op, "open segment for reading");
                assert!(path.starts_with(dir));
                failed += 1;
            }
            Err(e) => panic!("unexpected read error: {e}"),
        }
    }
    assert!(
        failed > 0,
        "the limit never bit: {} descriptors",
        open_fds()
    );
    // Every append below rolls segments while the readers hold (nearly) every descriptor.
    let more = fill(&store, 90);
    assert_eq!(more.len(), 90);
    store.sync().unwrap();
    store.close().unwrap();
    let store = Store::open(cfg()).unwrap();
    assert_eq!(store.stats().event_count, 3090);
    println!(
        "budget above the limit: {failed} reads failed for lack of descriptors, appends went on"
    );
}

/// The child side: runs only when the parent set `BATPAK_FD_CHILD`.
#[test]
fn child_entry() {
    let Ok(which) = std::env::var(CHILD_VAR) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    match which.as_str() {
        "default" => default_budget(dir.path()),
        "above" => budget_above_the_limit(dir.path()),
        other => panic!("unknown child {other}"),
    }
    println!("@@batpak@@ child {which} done");
}

fn run_child(which: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {LIMIT} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, which)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&format!("@@batpak@@ child {which} done")),
        "child {which} under ulimit -n {LIMIT} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in stdout.lines().filter(|l| l.contains("budget")) {
        println!("{line}");
    }
}

#[test]
fn with_the_default_budget_500_segments_read_and_roll_under_ulimit_256() {
    run_child("default");
}

#[test]
fn readers_out_of_descriptors_never_make_a_roll_fail() {
    run_child("above");
}
