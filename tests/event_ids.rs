//! Event ids are unique across stores, processes and machines, and strictly increasing within
//! a store: many stores opened at one instant (threads, and child processes of this test
//! binary), configurations built back to back, and a clock that steps back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::env::{IdSource, ManualClock, RandomIds};
use batpak::prelude::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{SystemTime, UNIX_EPOCH};

const KIND: EventKind = EventKind::custom(0x4, 1);
const EVENTS_PER_STORE: usize = 400;
const CHILD_DIR_VAR: &str = "BATPAK_IDS_CHILD_DIR";
const CHILD_START_VAR: &str = "BATPAK_IDS_CHILD_START_US";
const PROTO: &str = "@@batpak-ids@@ ";

fn now_us() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// Writes `EVENTS_PER_STORE` events in four batches (four fsyncs) and returns their ids in
/// sequence order.
fn write_some(store: &Store, tag: &str) -> Vec<u128> {
    let mut ids = Vec::with_capacity(EVENTS_PER_STORE);
    for b in 0..4 {
        let items = (0..EVENTS_PER_STORE / 4)
            .map(|i| {
                BatchAppendItem::new(
                    Coordinate::new(format!("{tag}:{}", i % 7), "ids").unwrap(),
                    KIND,
                    &serde_json::json!({ "b": b, "i": i }),
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .unwrap()
            })
            .collect();
        let rs = store.append_batch(items).unwrap();
        ids.extend(rs.iter().map(|r| r.event_id));
    }
    ids
}

/// UUIDv7 shape: version 7, RFC variant, and a millisecond prefix inside `[lo_ms, hi_ms]`.
fn assert_v7(id: u128, lo_ms: u64, hi_ms: u64) {
    assert_eq!((id >> 76) & 0xF, 7, "{id:032x} is not version 7");
    assert_eq!((id >> 62) & 0b11, 0b10, "{id:032x} has the wrong variant");
    let ms = u64::try_from(id >> 80).unwrap();
    assert!(
        (lo_ms..=hi_ms).contains(&ms),
        "{id:032x}: millisecond prefix {ms} outside [{lo_ms}, {hi_ms}]"
    );
}

fn assert_strictly_increasing(ids: &[u128], what: &str) {
    for w in ids.windows(2) {
        assert!(
            w[0] < w[1],
            "{what}: id {:032x} follows {:032x}",
            w[1],
            w[0]
        );
    }
}

fn count_repeats(all: &[Vec<u128>]) -> usize {
    let mut seen = HashSet::new();
    all.iter().flatten().filter(|id| !seen.insert(**id)).count()
}

#[test]
fn ids_of_stores_opened_at_the_same_instant_in_threads_never_repeat() {
    const STORES: usize = 8;
    let tmp = tempfile::tempdir().unwrap();
    let lo_ms = u64::try_from(now_us() / 1000).unwrap();
    let barrier = Arc::new(Barrier::new(STORES));
    let handles: Vec<_> = (0..STORES)
        .map(|n| {
            let dir = tmp.path().join(format!("tenant-{n}"));
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                // The configuration (and so its id source) is built at the same instant in
                // every thread, as a service opening one store per tenant at start-up does.
                let store = Store::open(StoreConfig::new(&dir)).unwrap();
                let ids = write_some(&store, "tenant");
                store.close().unwrap();
                ids
            })
        })
        .collect();
    let all: Vec<Vec<u128>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let hi_ms = u64::try_from(now_us() / 1000).unwrap();
    for (n, ids) in all.iter().enumerate() {
        assert_strictly_increasing(ids, &format!("store {n}"));
        for &id in ids {
            assert_v7(id, lo_ms, hi_ms);
        }
    }
    let repeats = count_repeats(&all);
    assert_eq!(
        repeats,
        0,
        "{repeats} of {} ids repeat across {STORES} stores opened at one instant",
        STORES * EVENTS_PER_STORE
    );
}

#[test]
fn ids_of_stores_whose_configurations_are_built_in_one_loop_never_repeat() {
    // A service opening one store per tenant at start-up: the configurations are built in a
    // loop, within the same few microseconds, then every tenant writes from its own thread.
    const STORES: usize = 8;
    let tmp = tempfile::tempdir().unwrap();
    let cfgs: Vec<StoreConfig> = (0..STORES)
        .map(|n| StoreConfig::new(tmp.path().join(format!("tenant-{n}"))))
        .collect();
    let stores: Vec<Store> = cfgs.into_iter().map(|c| Store::open(c).unwrap()).collect();
    let all: Vec<Vec<u128>> = std::thread::scope(|s| {
        let hs: Vec<_> = stores
            .iter()
            .map(|store| s.spawn(move || write_some(store, "tenant")))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for store in stores {
        store.close().unwrap();
    }
    let repeats = count_repeats(&all);
    assert_eq!(
        repeats,
        0,
        "{repeats} of {} ids repeat across {STORES} stores configured in one loop",
        STORES * EVENTS_PER_STORE
    );
    for (n, ids) in all.iter().enumerate() {
        assert_strictly_increasing(ids, &format!("store {n}"));
    }

    // The id sources alone, many built back to back, all fed the same clock reading.
    let t = now_us();
    let sources: Vec<RandomIds> = (0..64).map(|_| RandomIds::default()).collect();
    let streams: Vec<Vec<u128>> = sources
        .iter()
        .map(|src| (0..100).map(|_| src.next_id(t)).collect())
        .collect();
    let repeats = count_repeats(&streams);
    assert_eq!(
        repeats, 0,
        "{repeats} of 6400 ids repeat across 64 sources built back to back"
    );
}

#[test]
fn two_configurations_built_back_to_back_give_different_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (ca, cb) = (StoreConfig::new(&a), StoreConfig::new(&b));
    let sa = Store::open(ca).unwrap();
    let sb = Store::open(cb).unwrap();
    let ia = write_some(&sa, "x");
    let ib = write_some(&sb, "x");
    sa.close().unwrap();
    sb.close().unwrap();
    assert_eq!(count_repeats(&[ia, ib]), 0);

    // The id sources themselves, at the very same clock reading.
    let (x, y) = (RandomIds::default(), RandomIds::default());
    let t = now_us();
    let xs: Vec<u128> = (0..1000).map(|_| x.next_id(t)).collect();
    let ys: Vec<u128> = (0..1000).map(|_| y.next_id(t)).collect();
    assert_strictly_increasing(&xs, "first source");
    assert_strictly_increasing(&ys, "second source");
    assert_eq!(count_repeats(&[xs, ys]), 0);
}

/// The child side of the multi-process test: does nothing unless the parent set the variables.
/// Waits for the agreed start instant, then opens a store, writes, and prints the ids.
#[test]
fn child_entry_ids() {
    let (Ok(dir), Ok(start)) = (std::env::var(CHILD_DIR_VAR), std::env::var(CHILD_START_VAR))
    else {
        return;
    };
    let start: i64 = start.parse().unwrap();
    while now_us() < start {
        std::hint::spin_loop();
    }
    let store = Store::open(StoreConfig::new(&dir)).unwrap();
    let ids = write_some(&store, "proc");
    store.close().unwrap();
    let out = std::io::stdout();
    let mut o = out.lock();
    for id in ids {
        writeln!(o, "{PROTO}{id:032x}").unwrap();
    }
    o.flush().unwrap();
}

#[test]
fn ids_of_stores_opened_at_the_same_instant_in_parallel_processes_never_repeat() {
    const PROCS: usize = 6;
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // Far enough ahead that every child is running and spinning when the instant comes.
    let start = now_us() + 1_500_000;
    let children: Vec<_> = (0..PROCS)
        .map(|n| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_entry_ids",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR_VAR, tmp.path().join(format!("proc-{n}")))
                .env(CHILD_START_VAR, start.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut all = Vec::new();
    for mut child in children {
        let stdout = child.stdout.take().unwrap();
        let ids: Vec<u128> = BufReader::new(stdout)
            .lines()
            .map(Result::unwrap)
            .filter_map(|l| {
                l.find(PROTO)
                    .map(|at| u128::from_str_radix(l[at + PROTO.len()..].trim(), 16).unwrap())
            })
            .collect();
        assert!(child.wait().unwrap().success(), "a child process failed");
        assert_eq!(ids.len(), EVENTS_PER_STORE, "a child reported too few ids");
        assert_strictly_increasing(&ids, "child store");
        all.push(ids);
    }
    let repeats = count_repeats(&all);
    assert_eq!(
        repeats,
        0,
        "{repeats} of {} ids repeat across {PROCS} processes opened at one instant",
        PROCS * EVENTS_PER_STORE
    );
}

#[test]
fn ids_stay_strictly_increasing_within_a_store_when_the_clock_steps_back() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = 1_700_000_000_000_000_i64;
    let clock = Arc::new(ManualClock::new(t0));
    let cfg = || StoreConfig::new(tmp.path()).with_clock_source(clock.clone());
    let c = Coordinate::new("ids", "s").unwrap();
    let mut ids = Vec::new();
    let store = Store::open(cfg()).unwrap();
    for step in [0, -7_200_000_000, 3_600_000_000, -1_000, 0, -86_400_000_000] {
        clock.advance(step);
        for n in 0..20 {
            ids.push(store.append(&c, KIND, &n).unwrap().event_id);
        }
    }
    store.close().unwrap();
    // Reopen with a clock two hours behind the last event.
    clock.set(t0 - 7_200_000_000);
    let store = Store::open(cfg()).unwrap();
    for n in 0..20 {
        ids.push(store.append(&c, KIND, &n).unwrap().event_id);
    }
    let by_seq: Vec<u128> = store.stream("ids").iter().map(|e| e.event_id).collect();
    store.close().unwrap();
    assert_eq!(by_seq, ids);
    assert_strictly_increasing(&ids, "one store, clock stepping back, across a reopen");

    // The source alone, fed a clock that steps back and stalls.
    let src = RandomIds::default();
    let mut last = 0u128;
    for t in [
        t0,
        t0,
        t0 - 5_000_000,
        t0 + 1,
        t0 - 3_600_000_000,
        0,
        -5,
        t0 + 2_000,
    ] {
        for _ in 0..50 {
            let id = src.next_id(t);
            assert!(id > last, "{id:032x} after {last:032x} at clock {t}");
            last = id;
        }
    }
}
