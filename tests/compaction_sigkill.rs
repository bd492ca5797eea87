//! Compaction killed with SIGKILL at random points, on real files (INV-COMPACTION): the test
//! binary re-executes itself as a child that compacts the same store over and over (the first
//! compaction drops the odd payloads, every later one rewrites the compacted segment again);
//! the parent kills it after a varying delay, reopens the directory, and checks that the store
//! holds exactly the events before or exactly those after the compaction, byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::CompactionOutcome;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const MODE_VAR: &str = "BATPAK_COMPACT_CHILD";
const DIR_VAR: &str = "BATPAK_COMPACT_DIR";
const PROTO: &str = "@@compact@@ ";
const KIND: EventKind = EventKind::custom(0x5, 1);

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .with_lifecycle_events(false)
        .with_segment_max_bytes(4096)
}

fn keep_even() -> CompactionConfig {
    CompactionConfig {
        strategy: CompactionStrategy::Retention(Box::new(|e| {
            e.event
                .payload
                .as_u64()
                .is_some_and(|n| n.is_multiple_of(2))
        })),
        min_segments: 1,
    }
}

/// seq -> (event id, raw payload) of every visible event.
fn contents(dir: &Path) -> BTreeMap<u64, (u128, Vec<u8>)> {
    let store = Store::open(cfg(dir)).unwrap();
    let out = store
        .query(&Region::all())
        .into_iter()
        .map(|e| {
            let raw = store.get_raw(e.event_id).unwrap();
            (e.global_sequence, (e.event_id, raw.event.payload))
        })
        .collect();
    store.close().unwrap();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The child: compacts the store forever, until killed.
#[test]
fn child_entry() {
    if std::env::var(MODE_VAR).is_err() {
        return;
    }
    let dir = std::env::var(DIR_VAR).unwrap();
    let store = Store::open(cfg(Path::new(&dir))).unwrap();
    println!("{PROTO}READY");
    loop {
        let r = store.compact(&keep_even()).unwrap();
        assert_eq!(r.outcome, CompactionOutcome::Performed);
    }
}

#[test]
fn compaction_killed_at_random_points_recovers_to_before_or_after() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    {
        let store = Store::open(cfg(&pristine)).unwrap();
        for i in 0..3000u64 {
            let coord = Coordinate::new(format!("acct:{}", i % 7), "kill").unwrap();
            store.append(&coord, KIND, &i).unwrap();
        }
        store.close().unwrap();
    }
    let before = contents(&pristine);
    let after = {
        let d = tmp.path().join("reference");
        copy_dir(&pristine, &d);
        let store = Store::open(cfg(&d)).unwrap();
        store.compact(&keep_even()).unwrap();
        store.close().unwrap();
        contents(&d)
    };
    assert!(after.len() < before.len());
    // A simple generator for the kill delays (the timing is random anyway).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut saw_before, mut saw_after) = (0, 0);
    for round in 0..24u32 {
        let dir = tmp.path().join(format!("round{round}"));
        copy_dir(&pristine, &dir);
        // Half the rounds kill the first compaction, half a later one (over a compacted log).
        let delay_us = if round % 2 == 0 {
            next() % 40_000
        } else {
            40_000 + next() % 200_000
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(MODE_VAR, "1")
            .env(DIR_VAR, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("child ended before READY").unwrap();
            if line.contains(PROTO) {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(delay_us));
        child.kill().unwrap();
        child.wait().unwrap();
        let got = contents(&dir);
        if got == before {
            saw_before += 1;
        } else if got == after {
            saw_after += 1;
        } else {
            panic!(
                "INV-COMPACTION: round {round} (killed after {delay_us} us): {} events, neither the {} before nor the {} after",
                got.len(),
                before.len(),
                after.len()
            );
        }
        // A second open (read-only this time) agrees, and nothing superseded is left.
        let ro = Store::<batpak::store::ReadOnly>::open_read_only(cfg(&dir)).unwrap();
        assert_eq!(ro.query(&Region::all()).len(), got.len());
        drop(ro);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    println!("compaction SIGKILL: {saw_before} round(s) recovered to before, {saw_after} to after");
    assert!(saw_after > 0, "no kill landed after a compaction finished");
}
