//! Read-only open on real files (INV-READ-ONLY): it never creates, truncates, renames or
//! deletes anything and never writes a byte, also on a torn or damaged store; many readers
//! share a directory no writer holds; every read works on it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::SimDisk;
#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use batpak::store::ReadOnly;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a test configures the store's seeded bug (the mutant witnesses seed one).
type Seed = fn(StoreConfig) -> StoreConfig;

fn real(c: StoreConfig) -> StoreConfig {
    c
}

#[derive(serde::Serialize, serde::Deserialize, EventPayload, Debug, PartialEq)]
#[batpak(category = 0x2, type_id = 7)]
struct Deposit {
    cents: u64,
}

fn coord(n: u32) -> Coordinate {
    Coordinate::new(format!("acct:{n}"), "bank").unwrap()
}

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .with_lifecycle_events(false)
        .with_segment_max_bytes(1024)
}

/// A closed store of `n` deposits over three accounts and small segments.
fn fill(dir: &Path, n: u32) -> Vec<AppendReceipt> {
    let store = Store::open(cfg(dir)).unwrap();
    let receipts = (0..n)
        .map(|i| {
            store
                .append_typed(
                    &coord(i % 3),
                    &Deposit {
                        cents: u64::from(i),
                    },
                )
                .unwrap()
        })
        .collect();
    store.close().unwrap();
    receipts
}

/// Every entry in `dir` (recursively) with its bytes; directories as `None`.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.clone(), None);
                todo.push(p);
            } else {
                out.insert(p.clone(), Some(fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Tears the last frame of the last segment (a crash in the middle of a write) and leaves an
/// empty next segment after it (an interrupted roll).
fn tear(dir: &Path) -> PathBuf {
    let segs = segments(dir);
    let last = segs.last().unwrap().clone();
    let len = fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let next = dir.join(format!("{:020}.seg", segs.len()));
    fs::File::create(&next).unwrap().write_all(&[0; 7]).unwrap();
    last
}

/// Opens `dir` read-only with `seed`, reads everything through every read API, and checks
/// that no file changed; `Err` names INV-READ-ONLY.
fn read_only_changes_nothing(dir: &Path, seed: Seed) -> Result<usize, String> {
    let before = tree(dir);
    let n = {
        let ro = Store::<ReadOnly>::open_read_only(seed(cfg(dir))).map_err(|e| e.to_string())?;
        let all = ro.query(&Region::all());
        for e in &all {
            let got = ro
                .get_typed::<Deposit>(e.event_id)
                .map_err(|e| e.to_string())?;
            assert_eq!(got.event.header.event_id, e.event_id);
            ro.get(e.event_id).map_err(|e| e.to_string())?;
        }
        all.len()
    };
    let after = tree(dir);
    if before != after {
        let changed: Vec<_> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .collect();
        return Err(format!(
            "INV-READ-ONLY: a read-only open changed the directory: {changed:?}"
        ));
    }
    Ok(n)
}

#[test]
fn read_only_reads_every_event_and_leaves_a_clean_store_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let receipts = fill(dir.path(), 60);
    assert!(segments(dir.path()).len() > 3, "several segments");
    assert_eq!(read_only_changes_nothing(dir.path(), real), Ok(60));

    let ro = Store::<ReadOnly>::open_read_only(cfg(dir.path())).unwrap();
    assert_eq!(ro.stream("acct:1").len(), 20);
    assert_eq!(ro.by_scope("bank").len(), 60);
    assert_eq!(ro.by_fact_typed::<Deposit>().len(), 60);
    let last = receipts.last().unwrap();
    let e = ro.get_typed::<Deposit>(last.event_id).unwrap();
    assert_eq!(e.event.payload, Deposit { cents: 59 });
    // The entity chain: acct:0 holds events 0, 3, ..., 57; walk back from the newest.
    let newest = ro.stream("acct:0").last().unwrap().event_id;
    // The event itself, then its 19 ancestors.
    assert_eq!(ro.walk_ancestors(newest, 100).len(), 20);
    let stats = ro.stats();
    assert_eq!((stats.event_count, stats.entity_count), (60, 3));
    assert_eq!(ro.frontier().visible, 60);
    assert_eq!(ro.recovery_report().records, 60);
    ro.close().unwrap();
}

#[test]
fn read_only_ignores_a_torn_tail_in_memory_and_changes_no_byte() {
    read_only_on_a_torn_tail(real).unwrap();
}

fn read_only_on_a_torn_tail(seed: Seed) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 40);
    let torn = tear(dir.path());
    assert_eq!(read_only_changes_nothing(dir.path(), seed)?, 39);
    let ro = Store::<ReadOnly>::open_read_only(seed(cfg(dir.path()))).unwrap();
    let tail = ro.recovery_report().torn_tail.clone().unwrap();
    assert_eq!(tail.file, torn);
    assert!(ro.recovery_report().removed_segments.is_empty());
    drop(ro);
    // A writable open afterwards still finds (and cuts) the same tail: nothing was repaired
    // behind its back.
    let rw = Store::open(cfg(dir.path())).unwrap();
    assert_eq!(rw.recovery_report().torn_tail.as_ref(), Some(&tail));
    assert_eq!(rw.query(&Region::all()).len(), 39);
    Ok(())
}

#[test]
fn read_only_fails_closed_on_corruption_and_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 40);
    let first = segments(dir.path())[0].clone();
    let mut bytes = fs::read(&first).unwrap();
    bytes[60] ^= 0xFF;
    fs::write(&first, &bytes).unwrap();
    let before = tree(dir.path());
    let err = Store::<ReadOnly>::open_read_only(cfg(dir.path())).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, StoreError::CorruptSegment { detail, .. } if detail.file() == Some(first.as_path())),
        "{msg}"
    );
    assert!(msg.contains(&first.display().to_string()), "{msg}");
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn read_only_never_creates_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("stroe");
    let err = Store::<ReadOnly>::open_read_only(cfg(&typo)).unwrap_err();
    assert!(
        matches!(&err, StoreError::IoAt { source, path, .. }
            if source.kind() == std::io::ErrorKind::NotFound && *path == typo),
        "{err}"
    );
    assert!(!typo.exists());
    // An existing directory that holds no store is refused too, and stays empty.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let err = Store::<ReadOnly>::open_read_only(cfg(&empty)).unwrap_err();
    assert!(err.to_string().contains("no batpak store"), "{err}");
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn many_readers_share_a_directory_and_exclude_the_writer() {
    many_readers_share(real).unwrap();
}

fn many_readers_share(seed: Seed) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 10);
    let open = || Store::<ReadOnly>::open_read_only(seed(cfg(dir.path())));
    let a = open().map_err(|e| e.to_string())?;
    let b = open().map_err(|e| {
        format!("INV-READ-ONLY: a second reader of a directory no writer holds is refused: {e}")
    })?;
    // Shared handles across threads.
    let a = Arc::new(a);
    let counts: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let a = Arc::clone(&a);
                s.spawn(move || a.query(&Region::all()).len())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(counts, vec![10; 4]);
    assert_eq!(b.stats().event_count, 10);
    assert!(matches!(
        Store::open(cfg(dir.path())),
        Err(StoreError::StoreLocked { .. })
    ));
    drop(a);
    drop(b);
    // Every reader gone: the writer opens; while it runs, a reader is refused.
    let w = Store::open(cfg(dir.path())).unwrap();
    assert!(matches!(open(), Err(StoreError::StoreLocked { .. })));
    w.close().unwrap();
    open().map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn a_copied_store_without_a_lock_file_opens_read_only_without_creating_one() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 12);
    fs::remove_file(dir.path().join("LOCK")).unwrap();
    assert_eq!(read_only_changes_nothing(dir.path(), real), Ok(12));
    assert!(!dir.path().join("LOCK").exists());
}

#[test]
fn the_static_view_does_not_follow_later_writes_and_reads_survive_them() {
    let dir = tempfile::tempdir().unwrap();
    let receipts = fill(dir.path(), 5);
    let ro = Store::<ReadOnly>::open_read_only(cfg(dir.path())).unwrap();
    drop(ro);
    let w = Store::open(cfg(dir.path())).unwrap();
    w.append_typed(&coord(9), &Deposit { cents: 1 }).unwrap();
    w.close().unwrap();
    let ro = Store::<ReadOnly>::open_read_only(cfg(dir.path())).unwrap();
    assert_eq!(ro.query(&Region::all()).len(), 6);
    assert_eq!(
        ro.get_typed::<Deposit>(receipts[4].event_id)
            .unwrap()
            .event
            .payload,
        Deposit { cents: 4 }
    );
}

/// A process crash with a fence open and an unfinished batch on disk: the read-only view
/// shows what a writable open would, with the fence and the batch hidden, and the simulated
/// disk sees only reads.
#[test]
fn after_a_process_crash_an_open_fence_stays_hidden_and_only_reads_happen() {
    let disk = SimDisk::new();
    let c = || {
        StoreConfig::new("/s")
            .with_lifecycle_events(false)
            .with_disk(Arc::new(disk.clone()))
    };
    let store = Store::open(c()).unwrap();
    for cents in [1, 3] {
        store.append_typed(&coord(1), &Deposit { cents }).unwrap();
    }
    let fence = store.begin_visibility_fence().unwrap();
    let _t = fence
        .submit_typed(&coord(2), &Deposit { cents: 2 })
        .unwrap();
    // The fence's begin record and event are written (not committed) before the crash.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.frontier().written < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "fenced write never written"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    fence.abandon();
    let after = disk.process_crash();
    std::mem::forget(store);
    let files = |d: &SimDisk| {
        d.files()
            .into_iter()
            .map(|p| {
                let b = d.read_file(&p);
                (p, b)
            })
            .collect::<Vec<_>>()
    };
    let before = files(&after);
    let ops_before = after.op_count();
    let ro = Store::<ReadOnly>::open_read_only(
        StoreConfig::new("/s")
            .with_lifecycle_events(false)
            .with_disk(Arc::new(after.clone())),
    )
    .unwrap();
    let all = ro.query(&Region::all());
    for e in &all {
        ro.get_raw(e.event_id).unwrap();
    }
    let cents: Vec<u64> = all
        .iter()
        .map(|e| {
            ro.get_typed::<Deposit>(e.event_id)
                .unwrap()
                .event
                .payload
                .cents
        })
        .collect();
    assert_eq!(cents, vec![1, 3], "the open fence's event stays hidden");
    drop(ro);
    assert_eq!(files(&after), before);
    let ops: Vec<&str> = after.op_names()[ops_before as usize..].to_vec();
    let allowed = ["exists", "lock_shared", "list", "open", "len", "read_at"];
    assert!(
        ops.iter().all(|o| allowed.contains(o)),
        "a read-only open did more than read: {ops:?}"
    );
    // A writable open agrees.
    let rw = Store::open(
        StoreConfig::new("/s")
            .with_lifecycle_events(false)
            .with_disk(Arc::new(after)),
    )
    .unwrap();
    assert_eq!(rw.query(&Region::all()).len(), 2);
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_read_only_cuts_on_disk_is_caught() {
    let err = read_only_on_a_torn_tail(|c| c.with_mutant(Mutant::ReadOnlyCutsOnDisk)).unwrap_err();
    assert!(err.starts_with("INV-READ-ONLY"), "{err}");
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_read_only_locks_exclusive_is_caught() {
    let err = many_readers_share(|c| c.with_mutant(Mutant::ReadOnlyLocksExclusive)).unwrap_err();
    assert!(err.starts_with("INV-READ-ONLY"), "{err}");
}

/// A reader that dies (SIGKILL) releases its shared lock, like `flock` does: the next writer
/// opens. Its stale handle's drop releases nothing of the next process's.
#[test]
fn a_crashed_readers_shared_lock_is_released() {
    let disk = SimDisk::new();
    let c = |d: &SimDisk| {
        StoreConfig::new("/r")
            .with_lifecycle_events(false)
            .with_disk(Arc::new(d.clone()))
    };
    Store::open(c(&disk)).unwrap().close().unwrap();
    let reader = Store::<ReadOnly>::open_read_only(c(&disk)).unwrap();
    assert!(matches!(
        Store::open(c(&disk)),
        Err(StoreError::StoreLocked { .. })
    ));
    let next = disk.process_crash();
    let writer = Store::open(c(&next)).unwrap();
    drop(reader);
    assert!(matches!(
        Store::<ReadOnly>::open_read_only(c(&next)),
        Err(StoreError::StoreLocked { .. })
    ));
    writer.close().unwrap();
    Store::<ReadOnly>::open_read_only(c(&next)).unwrap();
}
