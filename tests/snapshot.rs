//! Online snapshots on real files and on the simulated disk (INV-SNAPSHOT): a snapshot taken
//! while four threads append and a fence is open opens as the store at one frontier; once
//! `snapshot()` returned it survives a power loss; sealed segments are shared, the last one
//! never is.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{CrashOptions, SimDisk};
#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use batpak::store::ReadOnly;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Seed = fn(StoreConfig) -> StoreConfig;

fn real(c: StoreConfig) -> StoreConfig {
    c
}

fn kind() -> EventKind {
    EventKind::custom(0x3, 1)
}

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .with_lifecycle_events(false)
        .with_segment_max_bytes(2048)
}

/// Every visible event of the store at `dir` (opened read-only): seq -> (id, payload bytes).
fn contents(c: StoreConfig) -> BTreeMap<u64, (u128, Vec<u8>)> {
    let ro = Store::<ReadOnly>::open_read_only(c).unwrap();
    ro.query(&Region::all())
        .into_iter()
        .map(|e| {
            let raw = ro.get_raw(e.event_id).unwrap();
            (e.global_sequence, (e.event_id, raw.event.payload))
        })
        .collect()
}

/// Appends until `stop`, retrying while a fence is open (plain appends are refused then).
fn appender(store: &Store, t: u32, stop: &AtomicBool) -> u32 {
    let coord = Coordinate::new(format!("writer:{t}"), "load").unwrap();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) || n < 50 {
        match store.append(&coord, kind(), &format!("t{t} n{n}")) {
            Ok(_) => n += 1,
            Err(StoreError::VisibilityFenceActive) => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Err(e) => panic!("append: {e}"),
        }
    }
    n
}

#[test]
fn a_snapshot_while_four_threads_append_and_a_fence_is_open_opens_at_one_frontier() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let store = Store::open(cfg(&live)).unwrap();
    let stop = AtomicBool::new(false);
    let mut snaps = Vec::new();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let (store, stop) = (&store, &stop);
                s.spawn(move || appender(store, t, stop))
            })
            .collect();
        let fenced = Coordinate::new("fenced", "load").unwrap();
        for k in 0..6u32 {
            std::thread::sleep(Duration::from_millis(20));
            let fence = store.begin_visibility_fence().unwrap();
            let tickets: Vec<_> = (0..3)
                .map(|i| {
                    fence
                        .submit(&fenced, kind(), &format!("fence {k} item {i}"))
                        .unwrap()
                })
                .collect();
            let before = store.frontier().durable;
            let dest = root.path().join(format!("snap{k}"));
            store.snapshot(&dest).unwrap();
            let after = store.frontier().written;
            let committed = k % 2 == 0;
            if committed {
                fence.commit().unwrap();
            } else {
                fence.cancel().unwrap();
            }
            let ids: Vec<u128> = tickets
                .into_iter()
                .filter_map(|t| t.wait().ok().map(|r| r.event_id))
                .collect();
            assert_eq!(ids.len(), if committed { 3 } else { 0 });
            snaps.push((dest, before, after, ids));
        }
        stop.store(true, Ordering::Relaxed);
        let total: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(total >= 200);
    });
    store.close().unwrap();
    let fin = contents(cfg(&live));
    let mut distinct = HashSet::new();
    for (dest, before, after, fenced_ids) in &snaps {
        let snap = contents(cfg(dest));
        let top = *snap.keys().last().unwrap();
        distinct.insert(top);
        // Nothing above the frontier the call started from could have been durable.
        assert!(
            top < *after,
            "{}: seq {top} >= written {after}",
            dest.display()
        );
        for (seq, ev) in &snap {
            assert_eq!(
                fin.get(seq),
                Some(ev),
                "snapshot event {seq} differs from the store's"
            );
            assert!(
                !fenced_ids.contains(&ev.0),
                "the open fence's event is visible"
            );
        }
        // One frontier: every event of the store at or below the snapshot's last one is in it,
        // except the fence that was open (committed or cancelled later), and everything
        // durable when the call started is there.
        for (seq, ev) in fin.range(..=top.max(before.saturating_sub(1))) {
            if !fenced_ids.contains(&ev.0) {
                assert_eq!(
                    snap.get(seq),
                    Some(ev),
                    "event {seq} missing from {}",
                    dest.display()
                );
            }
        }
        // The snapshot is a store: a writable open recovers it and can go on.
        let s = Store::open(cfg(dest)).unwrap();
        s.append(&Coordinate::new("after", "x").unwrap(), kind(), &1u8)
            .unwrap();
        s.close().unwrap();
    }
    assert!(distinct.len() > 1, "the snapshots saw different frontiers");
    // Writing to a snapshot never touched the live store.
    assert_eq!(contents(cfg(&live)), fin);
}

#[test]
fn sealed_segments_are_hard_links_and_the_last_segment_is_a_copy() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let store = Store::open(cfg(&live)).unwrap();
    let coord = Coordinate::new("a", "s").unwrap();
    for i in 0..100u32 {
        store.append(&coord, kind(), &format!("event {i}")).unwrap();
    }
    let dest = root.path().join("snap");
    store.snapshot(&dest).unwrap();
    let mut segs: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() > 3);
    let (last, sealed) = segs.split_last().unwrap();
    for p in sealed {
        assert_eq!(std::fs::metadata(p).unwrap().nlink(), 2, "{}", p.display());
    }
    assert_eq!(std::fs::metadata(last).unwrap().nlink(), 1);
    // The snapshot opened writable appends to its own last segment only.
    let live_before: Vec<_> = sealed
        .iter()
        .map(|p| std::fs::read(live.join(p.file_name().unwrap())).unwrap())
        .collect();
    let s = Store::open(cfg(&dest)).unwrap();
    for i in 0..50u32 {
        s.append(&coord, kind(), &format!("snapshot-only {i}"))
            .unwrap();
    }
    s.close().unwrap();
    let live_after: Vec<_> = sealed
        .iter()
        .map(|p| std::fs::read(live.join(p.file_name().unwrap())).unwrap())
        .collect();
    assert_eq!(live_before, live_after);
    assert_eq!(store.stream("a").len(), 100);
}

#[test]
fn a_snapshot_refuses_a_non_empty_destination_and_the_stores_own_directory() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let store = Store::open(cfg(&live)).unwrap();
    store
        .append(&Coordinate::new("a", "s").unwrap(), kind(), &1u8)
        .unwrap();
    let err = store.snapshot(&live).unwrap_err();
    assert!(err.to_string().contains("own directory"), "{err}");
    let full = root.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), b"keep me").unwrap();
    let err = store.snapshot(&full).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(std::fs::read(full.join("notes.txt")).unwrap(), b"keep me");
    // An empty existing directory and a missing nested one are fine.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    store.snapshot(&empty).unwrap();
    store.snapshot(&root.path().join("a/b/c")).unwrap();
    assert_eq!(contents(cfg(&empty)).len(), 1);
    assert_eq!(contents(cfg(&root.path().join("a/b/c"))).len(), 1);
    // A snapshot of an empty store is an empty store.
    let e = Store::open(cfg(&root.path().join("e"))).unwrap();
    e.snapshot(&root.path().join("e-snap")).unwrap();
    assert!(contents(cfg(&root.path().join("e-snap"))).is_empty());
}

#[test]
fn a_read_only_store_snapshots_what_it_sees_and_writes_nothing_in_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let store = Store::open(cfg(&live)).unwrap();
    for i in 0..30u32 {
        store
            .append(&Coordinate::new("a", "s").unwrap(), kind(), &i)
            .unwrap();
    }
    store.close().unwrap();
    let ro = Store::<ReadOnly>::open_read_only(cfg(&live)).unwrap();
    ro.snapshot(&root.path().join("snap")).unwrap();
    drop(ro);
    assert_eq!(
        contents(cfg(&root.path().join("snap"))),
        contents(cfg(&live))
    );
}

/// A snapshot on the simulated disk, then a power loss that keeps only what is durable: the
/// snapshot still opens with the same events; and it never holds what was not durable when
/// it started. `Err` names INV-SNAPSHOT.
fn snapshot_is_durable_and_stops_at_the_frontier(seed: Seed) -> Result<(), String> {
    let disk = SimDisk::new();
    let on = |d: &SimDisk, dir: &str| {
        seed(
            StoreConfig::new(dir)
                .with_lifecycle_events(false)
                .with_disk(Arc::new(d.clone())),
        )
    };
    // Deferred durability: the last appends are written but not yet durable.
    let store = Store::open(
        on(&disk, "/live")
            .with_segment_max_bytes(600)
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_secs(3600)),
    )
    .unwrap();
    let coord = Coordinate::new("a", "s").unwrap();
    for i in 0..20u32 {
        store.append(&coord, kind(), &i).unwrap();
    }
    store.sync().unwrap();
    for i in 20..25u32 {
        store.append(&coord, kind(), &i).unwrap();
    }
    let durable = store.frontier().durable;
    assert_eq!(durable, 20);
    store.snapshot(Path::new("/snap")).unwrap();
    let seen = |d: &SimDisk| -> Result<Vec<u64>, String> {
        let ro = Store::<ReadOnly>::open_read_only(on(d, "/snap")).map_err(|e| e.to_string())?;
        Ok(ro
            .query(&Region::all())
            .iter()
            .map(|e| e.global_sequence)
            .collect())
    };
    let before = seen(&disk)?;
    if before != (0..durable).collect::<Vec<_>>() {
        return Err(format!(
            "INV-SNAPSHOT: the snapshot holds {before:?}, not exactly the records below the durable frontier {durable}"
        ));
    }
    // Every state a power loss may leave from here (the live store's unsynced tail in any
    // prefix, directory entries kept or lost): the snapshot is there, whole.
    let images = disk.crash_images(&CrashOptions::default());
    assert!(
        images.len() > 1,
        "the live store's unsynced tail gives several images"
    );
    for image in &images {
        let after = image.power_loss_disk();
        let survived = seen(&after).map_err(|e| {
            format!(
                "INV-SNAPSHOT: after a power loss ({}): {e}",
                image.describe()
            )
        })?;
        if survived != before {
            return Err(format!(
                "INV-SNAPSHOT: a power loss after snapshot() returned changed it ({}): {survived:?} != {before:?}",
                image.describe()
            ));
        }
    }
    std::mem::forget(store);
    Ok(())
}

#[test]
fn a_snapshot_is_durable_once_it_returned_and_stops_at_the_durable_frontier() {
    snapshot_is_durable_and_stops_at_the_frontier(real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_snapshot_skips_sync_is_caught() {
    let err =
        snapshot_is_durable_and_stops_at_the_frontier(|c| c.with_mutant(Mutant::SnapshotSkipsSync))
            .unwrap_err();
    assert!(err.starts_with("INV-SNAPSHOT"), "{err}");
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_snapshot_past_frontier_is_caught() {
    let err = snapshot_is_durable_and_stops_at_the_frontier(|c| {
        c.with_mutant(Mutant::SnapshotPastFrontier)
    })
    .unwrap_err();
    assert!(err.starts_with("INV-SNAPSHOT"), "{err}");
}
