//! Delivery on real files (and on `SimDisk` for crashes): lossy and gap-free subscriptions,
//! cursors, and durable consumers whose checkpoints are log records.
//!
//! Witnesses (each returns the INV tag it breaks; the mutant build shows each one failing on
//! its seeded bug): INV-LOSSY-NOTICE, INV-CURSOR-ORDER, INV-EXACTLY-ONCE,
//! INV-CHECKPOINT-DURABLE.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{CounterIds, CrashOptions, FaultKind, ManualClock, SimDisk};
#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use batpak::store::delivery::subscription::RecvError;
use batpak::store::{CheckpointId, ConsumerInfo};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

type Seed = fn(StoreConfig) -> StoreConfig;

fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x5, 1);
const OUT: EventKind = EventKind::custom(0x5, 2);
const LONG: Duration = Duration::from_secs(30);

fn coord(entity: &str, scope: &str) -> Coordinate {
    Coordinate::new(entity, scope).unwrap()
}

fn append_n(store: &Store, entity: &str, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            store
                .append(&coord(entity, "s"), KIND, &i)
                .unwrap()
                .sequence
        })
        .collect()
}

// ------------------------------------------------------------------ lossy subscriptions

/// INV-LOSSY-NOTICE: a subscriber that falls behind stays connected, skips ahead to the
/// newest `capacity` notifications, can read how many it missed, and hears `None` only once
/// the store closed.
fn lossy_lag(dir: &Path, seed: Seed) -> Result<(), String> {
    let store = Store::open(seed(
        StoreConfig::new(dir)
            .with_lifecycle_events(false)
            .with_broadcast_capacity(4),
    ))
    .unwrap();
    let sub = store.subscribe_lossy(&Region::entity("e"));
    let seqs = append_n(&store, "e", 20);
    let mut got = Vec::new();
    while let Some(n) = sub.try_recv() {
        got.push(n.sequence);
    }
    if got.is_empty() {
        return Err(
            "INV-LOSSY-NOTICE: a lagging subscriber received nothing (disconnected?)".into(),
        );
    }
    if got != seqs[16..] {
        return Err(format!(
            "INV-LOSSY-NOTICE: expected the newest 4 {:?}, got {got:?}",
            &seqs[16..]
        ));
    }
    let missed = sub.missed();
    if missed != 16 {
        return Err(format!(
            "INV-LOSSY-NOTICE: missed() = {missed}, 16 were skipped"
        ));
    }
    if sub.missed() != 0 {
        return Err("INV-LOSSY-NOTICE: missed() does not reset".into());
    }
    // Still connected: live events keep coming.
    let more = append_n(&store, "e", 2);
    for s in more {
        match sub.recv_timeout(LONG) {
            Ok(n) if n.sequence == s => {}
            other => {
                return Err(format!(
                    "INV-LOSSY-NOTICE: after skipping, expected {s}, got {other:?} while the store is open"
                ))
            }
        }
    }
    if sub.recv_timeout(Duration::from_millis(20)) != Err(RecvError::Timeout) {
        return Err("INV-LOSSY-NOTICE: an idle open store must time out, not close".into());
    }
    store.close().unwrap();
    if sub.recv().is_some() || sub.recv_timeout(LONG) != Err(RecvError::Closed) {
        return Err("INV-LOSSY-NOTICE: recv after close must be None / Closed".into());
    }
    Ok(())
}

#[test]
fn lossy_subscriber_that_falls_behind_stays_connected_and_counts_what_it_missed() {
    let tmp = tempfile::tempdir().unwrap();
    lossy_lag(tmp.path(), real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_lossy_disconnect_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let err = lossy_lag(tmp.path(), |c| c.with_mutant(Mutant::LossyDisconnect)).unwrap_err();
    assert!(err.starts_with("INV-LOSSY-NOTICE"), "reported as {err}");
}

#[test]
fn lossy_subscription_starts_at_the_head_and_ops_filter_and_take() {
    let tmp = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap());
    append_n(&store, "room", 3);
    let sub = store.subscribe_lossy(&Region::scope("s"));
    let listener = std::thread::spawn(move || {
        let mut ops = sub.ops().filter(|n| n.kind == OUT).take(2);
        let mut got = Vec::new();
        while let Some(n) = ops.recv() {
            got.push(n.sequence);
        }
        got
    });
    let c = coord("room", "s");
    let mut want = Vec::new();
    for i in 0..4u64 {
        store.append(&c, KIND, &i).unwrap();
        want.push(store.append(&c, OUT, &i).unwrap().sequence);
    }
    assert_eq!(listener.join().unwrap(), want[..2]);
}

#[test]
fn scan_folds_notifications() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
    let sub = store.subscribe_from(&Region::all(), None);
    append_n(&store, "x", 3);
    let mut sums = sub.ops().take(3).scan(0u64, |acc, n| {
        *acc += n.sequence;
        Some(*acc)
    });
    assert_eq!(sums.recv(), Some(0));
    assert_eq!(sums.recv(), Some(1));
    assert_eq!(sums.recv(), Some(3));
    assert_eq!(sums.recv(), None, "take(3) ends the fold");
}

#[test]
fn subscribe_from_catches_up_from_history_into_live_without_a_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(
            StoreConfig::new(tmp.path())
                .with_lifecycle_events(false)
                .with_broadcast_capacity(1),
        )
        .unwrap(),
    );
    let mut want = append_n(&store, "h", 50);
    let sub = store.subscribe_from(&Region::entity("h"), None);
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            let mut v = Vec::new();
            for i in 0..200u64 {
                v.push(store.append(&coord("h", "s"), KIND, &i).unwrap().sequence);
                if i % 50 == 0 {
                    store.append(&coord("other", "s"), KIND, &i).unwrap();
                }
            }
            v
        })
    };
    let mut got = Vec::new();
    while got.len() < 250 {
        got.push(sub.recv_timeout(LONG).unwrap().sequence);
    }
    want.extend(writer.join().unwrap());
    assert_eq!(got, want, "history then live, each once, in order");
    assert_eq!(sub.missed(), 0, "a gap-free subscription never skips");
    // From a position: only what follows it.
    let from = store.subscribe_from(&Region::entity("h"), Some(want[247]));
    assert_eq!(from.try_recv().unwrap().sequence, want[248]);
}

// ------------------------------------------------------------------ cursors

/// INV-CURSOR-ORDER: a cursor delivers the region's visible events in sequence order, each
/// once per pass, across polls of any size, seeks and concurrent appends.
fn cursor_order(dir: &Path, seed: Seed) -> Result<(), String> {
    let store = Store::open(seed(StoreConfig::new(dir).with_lifecycle_events(false))).unwrap();
    let region = Region::entity("acct");
    let mut want = Vec::new();
    for i in 0..30u64 {
        let entity = if i % 3 == 0 { "acct:1" } else { "acct:2" };
        want.push(
            store
                .append(&coord(entity, "s"), KIND, &i)
                .unwrap()
                .sequence,
        );
        store.append(&coord("accts", "s"), KIND, &i).unwrap();
    }
    let mut cursor = store.cursor_guaranteed(&region);
    let mut got = Vec::new();
    for size in [1usize, 2, 3, 5, 8, 13, 100].iter().cycle() {
        let batch = cursor.poll_batch(*size);
        if batch.is_empty() || got.len() > want.len() {
            break;
        }
        got.extend(batch.iter().map(|e| e.global_sequence));
    }
    if got != want {
        return Err(format!(
            "INV-CURSOR-ORDER: first pass {got:?}, expected {want:?}"
        ));
    }
    if cursor.position() != want.last().copied() {
        return Err("INV-CURSOR-ORDER: position is not the last delivered".into());
    }
    cursor.seek(Some(want[9]));
    let again: Vec<u64> = std::iter::from_fn(|| cursor.poll().map(|e| e.global_sequence))
        .take(want.len() + 1)
        .collect();
    if again != want[10..] {
        return Err(format!(
            "INV-CURSOR-ORDER: after seek, {again:?}, expected {:?}",
            &want[10..]
        ));
    }
    Ok(())
}

#[test]
fn cursor_delivers_the_region_in_sequence_order_once_per_pass() {
    let tmp = tempfile::tempdir().unwrap();
    cursor_order(tmp.path(), real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_cursor_redelivers_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let err = cursor_order(tmp.path(), |c| c.with_mutant(Mutant::CursorRedelivers)).unwrap_err();
    assert!(err.starts_with("INV-CURSOR-ORDER"), "reported as {err}");
}

#[test]
fn cursor_never_sees_an_open_or_cancelled_fence_and_sees_a_committed_one_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
    let mut cursor = store.cursor_guaranteed(&Region::all());
    let fence = store.begin_visibility_fence().unwrap();
    let _t: Vec<_> = (0..3u64)
        .map(|i| fence.submit(&coord("f", "s"), KIND, &i).unwrap())
        .collect();
    store.sync().unwrap();
    assert!(
        cursor.poll_wait(10, Duration::from_millis(20)).is_empty(),
        "open fence hidden"
    );
    fence.cancel().unwrap();
    assert!(
        cursor.poll_batch(10).is_empty(),
        "cancelled fence never delivered"
    );
    let fence = store.begin_visibility_fence().unwrap();
    let tickets: Vec<_> = (0..3u64)
        .map(|i| fence.submit(&coord("g", "s"), KIND, &i).unwrap())
        .collect();
    fence.commit().unwrap();
    let want: Vec<u64> = tickets
        .into_iter()
        .map(|t| t.wait().unwrap().sequence)
        .collect();
    let got: Vec<u64> = cursor
        .poll_batch(10)
        .iter()
        .map(|e| e.global_sequence)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn poll_wait_wakes_on_publish_and_returns_when_the_store_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let store =
        Arc::new(Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap());
    let mut cursor = store.cursor_guaranteed(&Region::all());
    let w = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            store.append(&coord("w", "s"), KIND, &1u8).unwrap().sequence
        })
    };
    let got = cursor.poll_wait(10, LONG);
    let seq = w.join().unwrap();
    assert_eq!(
        got.iter().map(|e| e.global_sequence).collect::<Vec<_>>(),
        [seq]
    );
    let waiter = std::thread::spawn(move || cursor.poll_wait(10, LONG).len());
    std::thread::sleep(Duration::from_millis(30));
    Arc::try_unwrap(store).unwrap().close().unwrap();
    assert_eq!(waiter.join().unwrap(), 0, "a closed store ends the wait");
}

#[test]
fn draining_many_events_through_a_cursor_visits_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_sync_every_n_events(10_000),
    )
    .unwrap();
    let items: Vec<BatchAppendItem> = (0..5000u64)
        .map(|i| {
            let e = if i % 2 == 0 { "a" } else { "b" };
            BatchAppendItem::new(
                coord(e, "s"),
                KIND,
                &i,
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect();
    store.append_batch(items).unwrap();
    store.sync().unwrap();
    let mut cursor = store.cursor_guaranteed(&Region::entity("a"));
    let mut n = 0;
    let mut last = None;
    loop {
        let b = cursor.poll_batch(64);
        if b.is_empty() {
            break;
        }
        for e in b {
            assert!(last < Some(e.global_sequence));
            last = Some(e.global_sequence);
            n += 1;
        }
    }
    assert_eq!(n, 2500);
}

// ------------------------------------------------------------------ consumers

#[test]
fn consumer_resumes_after_its_commit_across_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let id = CheckpointId::new("projector-1");
    let region = Region::entity("o");
    let seqs;
    {
        let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
        seqs = append_n(&store, "o", 10);
        let mut c = store.consumer(&id, &region).unwrap();
        let first = c.poll(6, LONG);
        assert_eq!(first.len(), 6);
        c.commit().unwrap();
        assert_eq!(c.committed(), Some(seqs[5]));
        // Delivered but not committed: comes again after the reopen.
        assert_eq!(c.poll(2, LONG).len(), 2);
        assert_eq!(c.lag(), 4);
        drop(c);
        store.close().unwrap();
    }
    let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
    let infos = store.consumers();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].committed, Some(seqs[5]));
    assert_eq!(infos[0].lag, 4);
    let mut c = store.consumer(&id, &region).unwrap();
    assert_eq!(c.committed(), Some(seqs[5]));
    let rest: Vec<u64> = c
        .poll(100, LONG)
        .iter()
        .map(|e| e.global_sequence)
        .collect();
    assert_eq!(rest, seqs[6..], "no skip, no repeat of committed events");
    c.commit_at(seqs[7]).unwrap();
    assert!(
        c.commit_at(seqs[9] + 1).is_err(),
        "never past what was delivered"
    );
    drop(c);
    drop(store);
    let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
    let mut c = store.consumer(&id, &region).unwrap();
    let rest: Vec<u64> = c
        .poll(100, LONG)
        .iter()
        .map(|e| e.global_sequence)
        .collect();
    assert_eq!(rest, seqs[8..]);
}

#[test]
fn checkpoint_ids_are_validated_one_consumer_per_id_and_regions_must_match() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
    for bad in ["", "../x", "a/b", "sp ace", &"x".repeat(129), "é"] {
        assert!(matches!(
            store.consumer(&CheckpointId::new(bad), &Region::all()),
            Err(StoreError::InvalidCheckpointId { .. })
        ));
        assert!(CheckpointId::try_new(bad).is_err());
    }
    assert!(CheckpointId::try_new("Ok.id_1-2").is_ok());
    let id = CheckpointId::new("c");
    let mut c = store.consumer(&id, &Region::entity("a")).unwrap();
    assert!(matches!(
        store.consumer(&id, &Region::entity("a")),
        Err(StoreError::ConsumerBusy { .. })
    ));
    append_n(&store, "a", 1);
    assert_eq!(c.poll(10, LONG).len(), 1);
    c.commit().unwrap();
    assert!(matches!(
        store.delete_consumer(&id),
        Err(StoreError::ConsumerBusy { .. })
    ));
    drop(c);
    assert!(matches!(
        store.consumer(&id, &Region::entity("b")),
        Err(StoreError::CursorCheckpointRegionMismatch { .. })
    ));
    let ids: Vec<String> = store
        .consumers()
        .into_iter()
        .map(|i: ConsumerInfo| i.id.to_string())
        .collect();
    assert_eq!(ids, ["c"]);
    store.delete_consumer(&id).unwrap();
    assert!(store.consumers().is_empty());
    store.close().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
    assert!(store.consumers().is_empty(), "the delete is durable");
    assert!(
        store.consumer(&id, &Region::entity("b")).is_ok(),
        "the id is free again"
    );
}

#[test]
fn checkpoints_are_not_events() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
    append_n(&store, "a", 2);
    let mut c = store
        .consumer(&CheckpointId::new("c"), &Region::all())
        .unwrap();
    assert_eq!(c.poll(10, LONG).len(), 2);
    c.commit().unwrap();
    assert!(
        c.poll(10, Duration::from_millis(20)).is_empty(),
        "a consumer never sees its checkpoint"
    );
    assert_eq!(store.query(&Region::all()).len(), 2);
}

fn sim_config(disk: &SimDisk, session: u64, seed: Seed) -> StoreConfig {
    seed(
        StoreConfig::new("/db")
            .with_lifecycle_events(false)
            .with_disk(Arc::new(disk.clone()))
            .with_clock_source(Arc::new(ManualClock::new(
                1_700_000_000_000_000 + i64::try_from(session).unwrap() * 1_000_000_000,
            )))
            .with_id_source(Arc::new(CounterIds::new(1 + session * 1_000_000))),
    )
}

fn outputs(n: u64) -> Vec<BatchAppendItem> {
    (0..n)
        .map(|i| {
            BatchAppendItem::new(
                coord("out", "s"),
                OUT,
                &serde_json::json!({"reaction": i, "pad": "x".repeat(40)}),
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect()
}

/// INV-EXACTLY-ONCE: a process that dies in `commit_with` before its fsync leaves, after
/// every power loss the crash model allows, the outputs present if and only if the
/// checkpoint moved, and a resumed consumer that repeats the work reaches exactly one copy.
fn exactly_once(seed: Seed) -> Result<usize, String> {
    let disk = SimDisk::new();
    let id = CheckpointId::new("reactor");
    let region = Region::entity("in");
    let input;
    {
        let store = Store::open(sim_config(&disk, 0, seed)).unwrap();
        input = append_n(&store, "in", 3);
        let mut c = store.consumer(&id, &region).unwrap();
        assert_eq!(c.poll(1, LONG).len(), 1);
        c.commit_with(outputs(1)).unwrap();
        assert_eq!(c.poll(2, LONG).len(), 2);
        disk.fail_next("sync_data", FaultKind::ProcessCrash);
        let r = c.commit_with(outputs(2));
        assert!(
            r.is_err(),
            "the process died before the fsync, yet commit_with answered {r:?}"
        );
    }
    let crashed = disk.process_crash();
    let opts = CrashOptions {
        subsets: true,
        max_subset_ops: 8,
    };
    let images = crashed.crash_images(&opts);
    for (n, img) in images.iter().enumerate() {
        let d = img.power_loss_disk();
        let store = Store::open(sim_config(&d, 2 + n as u64, real))
            .map_err(|e| format!("INV-EXACTLY-ONCE: image {n} does not open: {e}"))?;
        let outs = store.by_fact(OUT).len();
        let committed = store.consumers().first().and_then(|i| i.committed);
        let ok = match committed {
            Some(s) if s == input[0] => outs == 1,
            Some(s) if s == input[2] => outs == 3,
            other => {
                return Err(format!(
                    "INV-EXACTLY-ONCE: image {n}: checkpoint at {other:?}"
                ))
            }
        };
        if !ok {
            return Err(format!(
                "INV-EXACTLY-ONCE: image {n} [{}]: checkpoint {committed:?} with {outs} outputs",
                img.describe()
            ));
        }
        // Resume: redo what the checkpoint does not cover; exactly 3 outputs in the end.
        let mut c = store.consumer(&id, &region).unwrap();
        let todo = c.poll(10, Duration::from_millis(1)).len() as u64;
        if todo > 0 {
            c.commit_with(outputs(todo)).unwrap();
        }
        let outs = store.by_fact(OUT).len();
        if outs != 3 {
            return Err(format!(
                "INV-EXACTLY-ONCE: image {n}: {outs} outputs after resuming"
            ));
        }
    }
    Ok(images.len())
}

#[test]
fn commit_with_is_exactly_once_across_a_process_crash_and_every_power_loss() {
    let images = exactly_once(real).unwrap();
    assert!(images > 3, "the crash model offered only {images} images");
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_checkpoint_not_atomic_is_caught() {
    let err = exactly_once(|c| c.with_mutant(Mutant::CheckpointNotAtomic)).unwrap_err();
    assert!(err.starts_with("INV-EXACTLY-ONCE"), "reported as {err}");
}

/// INV-CHECKPOINT-DURABLE: in deferred durability a consumer is handed only durable events
/// and an acknowledged checkpoint is durable, so it never points past the durable frontier.
fn checkpoint_durable(dir: &Path, seed: Seed) -> Result<(), String> {
    let store = Store::open(seed(
        StoreConfig::new(dir)
            .with_lifecycle_events(false)
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_secs(3600)),
    ))
    .unwrap();
    let mut c = store
        .consumer(&CheckpointId::new("d"), &Region::all())
        .unwrap();
    append_n(&store, "a", 5);
    let got = c.poll(10, Duration::from_millis(50));
    let durable = store.frontier().durable;
    if got.iter().any(|e| e.global_sequence >= durable) {
        return Err(
            "INV-CHECKPOINT-DURABLE: a consumer was handed an event that is not durable".into(),
        );
    }
    store.sync().unwrap();
    let got = c.poll(10, LONG);
    if got.is_empty() {
        return Err("INV-CHECKPOINT-DURABLE: durable events were not delivered".into());
    }
    append_n(&store, "a", 3);
    let _ = c.poll(10, Duration::from_millis(50));
    c.commit().unwrap();
    let durable = store.frontier().durable;
    if c.committed().is_some_and(|s| s >= durable) {
        return Err(format!(
            "INV-CHECKPOINT-DURABLE: acknowledged checkpoint {:?} is past the durable frontier {durable}",
            c.committed()
        ));
    }
    Ok(())
}

#[test]
fn consumers_see_only_durable_events_and_checkpoints_are_durable_when_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    checkpoint_durable(tmp.path(), real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_checkpoint_ack_before_durable_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let err = checkpoint_durable(tmp.path(), |c| {
        c.with_mutant(Mutant::CheckpointAckBeforeDurable)
    })
    .unwrap_err();
    assert!(
        err.starts_with("INV-CHECKPOINT-DURABLE"),
        "reported as {err}"
    );
}

/// A `Disk` over the real file system whose file syncs take 30 ms while `slow` is set: it
/// keeps the writer busy so that commands sent meanwhile share its next group.
#[derive(Debug)]
struct SlowSyncDisk {
    inner: batpak::env::FsDisk,
    slow: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct SlowSyncFile {
    inner: Box<dyn batpak::env::DiskFile>,
    slow: Arc<std::sync::atomic::AtomicBool>,
}

impl batpak::env::DiskFile for SlowSyncFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.inner.append(data)
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        if self.slow.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(30));
        }
        self.inner.sync_data()
    }
}

impl batpak::env::Disk for SlowSyncDisk {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn batpak::env::DiskFile>> {
        Ok(Box::new(SlowSyncFile {
            inner: self.inner.create_new(path)?,
            slow: self.slow.clone(),
        }))
    }
    fn open(&self, path: &Path, writable: bool) -> std::io::Result<Box<dyn batpak::env::DiskFile>> {
        Ok(Box::new(SlowSyncFile {
            inner: self.inner.open(path, writable)?,
            slow: self.slow.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> std::io::Result<Box<dyn batpak::env::DiskLock>> {
        self.inner.lock(dir)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
}

/// Witness (INV-CURSOR-ORDER / INV-READ-ISOLATION): a fence whose last event shares the
/// commit's group (the writer was busy with a slow sync when both were sent) is delivered to a
/// cursor whole or not at all, while a reader thread polls throughout. `rounds` fences, each
/// `f1` (staged and synced on its own) then `f2` with the commit.
fn fence_sharing_the_commit_group(dir: &Path, seed: Seed, rounds: u64) -> Result<(), String> {
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let disk = SlowSyncDisk {
        inner: batpak::env::FsDisk,
        slow: slow.clone(),
    };
    let store = Arc::new(
        Store::open(seed(
            StoreConfig::new(dir)
                .with_lifecycle_events(false)
                .with_disk(std::sync::Arc::new(disk)),
        ))
        .unwrap(),
    );
    for round in 0..rounds {
        let scope = format!("r{round}");
        let region = Region::scope(&scope);
        let mut cursor = store.cursor_guaranteed(&region);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got: Vec<String> = Vec::new();
                loop {
                    let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                    got.extend(
                        cursor
                            .poll_batch(16)
                            .into_iter()
                            .map(|e| e.coord.entity().to_owned()),
                    );
                    if got.len() == 1 || got.len() > 2 {
                        return Err(format!(
                            "INV-CURSOR-ORDER: the cursor delivered {got:?} of the fence [f1, f2]"
                        ));
                    }
                    if done {
                        return Ok(got);
                    }
                }
            })
        };
        let fence = store.begin_visibility_fence().unwrap();
        {
            let mut ob = fence.outbox();
            ob.stage(coord("f1", &scope), KIND, &round).unwrap();
            ob.flush().unwrap();
        }
        slow.store(true, std::sync::atomic::Ordering::SeqCst);
        // A fenced event outside the cursor's region keeps the writer in a slow sync.
        let busy = fence.submit(&coord("x", "busy"), KIND, &round).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let f2 = fence.submit(&coord("f2", &scope), KIND, &round).unwrap();
        fence.commit().unwrap();
        f2.wait().unwrap();
        busy.wait().unwrap();
        slow.store(false, std::sync::atomic::Ordering::SeqCst);
        // The reader's last poll comes after the commit returned: it sees the whole fence.
        std::thread::sleep(Duration::from_millis(30));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let got = reader.join().unwrap()?;
        if got != ["f1", "f2"] {
            return Err(format!("INV-CURSOR-ORDER: the cursor ended with {got:?}"));
        }
    }
    Ok(())
}

#[test]
fn a_fence_sharing_the_commit_group_is_delivered_whole() {
    let tmp = tempfile::tempdir().unwrap();
    fence_sharing_the_commit_group(tmp.path(), real, 8).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_durable_after_publish_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fence_sharing_the_commit_group(
        tmp.path(),
        |c| c.with_mutant(Mutant::DurableAfterPublish),
        8,
    )
    .unwrap_err();
    assert!(err.starts_with("INV-CURSOR-ORDER"), "{err}");
}
