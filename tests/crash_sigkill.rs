//! Real crashes: the test binary re-executes itself as a child process (`child_entry`), the
//! child writes to a store in a temporary directory and reports every acknowledged write on
//! stdout, and the parent kills it with SIGKILL at a varying point, then reopens the store
//! and checks INV-DURABLE, INV-STABLE-SEQ, INV-PREFIX, INV-BATCH-ATOMIC and INV-FENCE-CRASH.
//! One child is killed between a write and its fsync (a `Disk` wrapper holds the fsync): the
//! reopening store finds the write in the page cache and, counted by a `Disk` wrapper over
//! `FsDisk`, syncs it before reporting it durable.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::env::{Disk, DiskFile, DiskLock, FsDisk};
use batpak::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MODE_VAR: &str = "BATPAK_CHILD_MODE";
const DIR_VAR: &str = "BATPAK_DIR";
const PROTO: &str = "@@batpak@@ ";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x3, type_id = 1)]
struct Mark {
    marker: String,
    n: u64,
    item: u32,
}

fn mark(marker: &str, n: u64, item: u32) -> Mark {
    Mark {
        marker: marker.into(),
        n,
        item,
    }
}

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "crash").unwrap()
}

// ---------------------------------------------------------------------------------- disk

/// `FsDisk`, counting the syncs of every file and directory; once `hold` is set, a data sync
/// announces itself on stdout and never returns (the process is killed there, between the
/// write and its fsync).
#[derive(Debug, Clone, Default)]
struct CountingDisk {
    syncs: Arc<Mutex<BTreeMap<PathBuf, usize>>>,
    hold: Arc<AtomicBool>,
}

impl CountingDisk {
    fn count(&self, path: &Path) {
        *self
            .syncs
            .lock()
            .unwrap()
            .entry(path.to_path_buf())
            .or_default() += 1;
    }

    fn syncs_of(&self, path: &Path) -> usize {
        self.syncs.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn file(&self, inner: Box<dyn DiskFile>, path: &Path) -> Box<dyn DiskFile> {
        Box::new(CountingFile {
            inner,
            path: path.to_path_buf(),
            disk: self.clone(),
        })
    }
}

impl Disk for CountingDisk {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        FsDisk.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        FsDisk.list(dir)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn DiskFile>> {
        Ok(self.file(FsDisk.create_new(path)?, path))
    }
    fn open(&self, path: &Path, writable: bool) -> std::io::Result<Box<dyn DiskFile>> {
        Ok(self.file(FsDisk.open(path, writable)?, path))
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        FsDisk.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        FsDisk.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.count(dir);
        FsDisk.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> std::io::Result<Box<dyn DiskLock>> {
        FsDisk.lock(dir)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        FsDisk.exists(path)
    }
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn DiskFile>,
    path: PathBuf,
    disk: CountingDisk,
}

impl CountingFile {
    fn before_sync(&self) {
        if self.disk.hold.load(Ordering::SeqCst) {
            let mut o = std::io::stdout().lock();
            writeln!(o, "{PROTO}WRITTEN_NOT_SYNCED").unwrap();
            o.flush().unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        self.disk.count(&self.path);
    }
}

impl DiskFile for CountingFile {
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
        self.before_sync();
        self.inner.sync_data()
    }
    fn sync_all(&mut self) -> std::io::Result<()> {
        self.before_sync();
        self.inner.sync_all()
    }
}

// ---------------------------------------------------------------------------------- child

/// The child side. Does nothing unless the parent set `BATPAK_CHILD_MODE`.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var(MODE_VAR) else {
        return;
    };
    let dir = std::env::var(DIR_VAR).unwrap();
    let disk = CountingDisk::default();
    let store = Store::open(
        StoreConfig::new(&dir)
            .with_lifecycle_events(false)
            .with_disk(Arc::new(disk.clone())),
    )
    .unwrap();
    let out = std::io::stdout();
    let say = |line: String| {
        let mut o = out.lock();
        // The marker lets the parent find the line even when libtest's own "test child_entry
        // ... " text precedes it on the same line.
        writeln!(o, "{PROTO}{line}").unwrap();
        o.flush().unwrap();
    };
    match mode.as_str() {
        "held_fsync" => {
            let r = store
                .append_typed(&coord("h"), &mark("synced", 0, 0))
                .unwrap();
            say(format!("ACK {} {:x} 0", r.sequence, r.event_id));
            // The next write reaches the page cache; its fsync never returns.
            disk.hold.store(true, Ordering::SeqCst);
            let items = (0..2u32)
                .map(|k| {
                    BatchAppendItem::typed(
                        coord("h"),
                        &mark("unsynced", 1, k),
                        AppendOptions::default(),
                        CausationRef::None,
                    )
                    .unwrap()
                })
                .collect();
            let _ = store.append_batch(items);
        }
        "appends" => {
            for n in 0..1_000_000u64 {
                let r = store
                    .append_typed(&coord(&format!("acct:{}", n % 4)), &mark("single", n, 0))
                    .unwrap();
                say(format!("ACK {} {:x} {n}", r.sequence, r.event_id));
            }
        }
        "batches" => {
            for n in 0..1_000_000u64 {
                let items = (0..3u32)
                    .map(|k| {
                        BatchAppendItem::typed(
                            coord(&format!("batch:{}", (n + u64::from(k)) % 5)),
                            &mark("batch", n, k),
                            AppendOptions::default(),
                            if k == 0 {
                                CausationRef::None
                            } else {
                                CausationRef::PriorItem(k as usize - 1)
                            },
                        )
                        .unwrap()
                    })
                    .collect();
                let rs = store.append_batch(items).unwrap();
                let parts: Vec<String> = rs
                    .iter()
                    .map(|r| format!("{} {:x}", r.sequence, r.event_id))
                    .collect();
                say(format!("BATCH {n} {}", parts.join(" ")));
            }
        }
        "fence_open" | "fence_committed" => {
            let r = store
                .append_typed(&coord("fe"), &mark("pre", 0, 0))
                .unwrap();
            say(format!("ACK {} {:x} 0", r.sequence, r.event_id));
            let r = store
                .append_typed(&coord("other"), &mark("pre", 1, 0))
                .unwrap();
            say(format!("ACK {} {:x} 1", r.sequence, r.event_id));
            let fence = store.begin_visibility_fence().unwrap();
            let tickets: Vec<AppendTicket> = (0..3u32)
                .map(|k| {
                    fence
                        .submit_typed(&coord("fe"), &mark("fenced", 2, k))
                        .unwrap()
                })
                .collect();
            store.sync().unwrap();
            say("READY".into());
            if mode == "fence_committed" {
                fence.commit().unwrap();
                for t in tickets {
                    let r = t.wait().unwrap();
                    say(format!("FENCED {} {:x}", r.sequence, r.event_id));
                }
                say("COMMITTED".into());
            } else {
                // Keep the fence open: never commit, cancel or drop it.
                std::mem::forget(fence);
                std::mem::forget(tickets);
            }
        }
        other => panic!("unknown child mode {other}"),
    }
    // Wait to be killed (bounded, in case the parent is gone).
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(3);
}

// ---------------------------------------------------------------------------------- parent

/// Kills the child on drop, so a failing assertion never leaves it running.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(mode: &str, dir: &Path) -> (Killer, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(MODE_VAR, mode)
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (Killer(child), stdout)
}

/// Reads the child's next protocol line (skipping libtest's own output).
fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).unwrap();
        assert!(n > 0, "child exited before the expected output");
        if let Some(at) = line.find(PROTO) {
            return line[at + PROTO.len()..].trim().to_string();
        }
    }
}

/// SIGKILL (`Child::kill` on unix) and reap.
fn sigkill(mut k: Killer) {
    k.0.kill().unwrap();
    let status = k.0.wait().unwrap();
    assert!(!status.success(), "child was not killed: {status:?}");
}

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn parse_id(s: &str) -> u128 {
    u128::from_str_radix(s, 16).unwrap()
}

fn visible_marks(store: &Store) -> Vec<(IndexEntry, Mark)> {
    let mut all = store.query(&Region::all());
    all.sort_by_key(|e| e.global_sequence);
    all.into_iter()
        .map(|e| {
            let m = store.get_typed::<Mark>(e.event_id).unwrap().event.payload;
            (e, m)
        })
        .collect()
}

/// Every entity's visible stream has clocks 1, 2, 3, ... linked by the hash chain (no hidden
/// events in these runs).
fn assert_chains_unbroken(store: &Store) {
    let entities: BTreeSet<String> = store
        .query(&Region::all())
        .iter()
        .map(|e| e.coord.entity().to_string())
        .collect();
    for entity in entities {
        let s = store.stream(&entity);
        assert_eq!(s[0].hash_chain.prev_hash, [0u8; 32]);
        for (i, e) in s.iter().enumerate() {
            assert_eq!(e.clock, i as u32 + 1, "entity {entity}");
        }
        for w in s.windows(2) {
            assert_eq!(w[1].hash_chain.prev_hash, w[0].hash_chain.event_hash);
        }
    }
}

#[test]
fn acknowledged_appends_survive_sigkill_with_their_sequences_and_the_log_stays_a_prefix() {
    let mut rng = Lcg(0x5eed_0001);
    for round in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let kill_after = 1 + rng.next() % 150;
        let (child, mut out) = spawn_child("appends", tmp.path());
        let mut acked: Vec<(u64, u128, u64)> = Vec::new();
        while (acked.len() as u64) < kill_after {
            let line = next_line(&mut out);
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f[0], "ACK", "{line}");
            acked.push((f[1].parse().unwrap(), parse_id(f[2]), f[3].parse().unwrap()));
        }
        // No acknowledgement line was missed.
        assert!(acked.iter().enumerate().all(|(i, a)| a.2 == i as u64));
        if rng.next().is_multiple_of(2) {
            std::thread::sleep(Duration::from_micros(rng.next() % 3000));
        }
        sigkill(child);

        let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
        let visible = visible_marks(&store);
        // INV-DURABLE + INV-STABLE-SEQ: every acknowledged event, same id, sequence, payload.
        for (seq, id, n) in &acked {
            let e = store
                .entry(*id)
                .unwrap_or_else(|| panic!("round {round}: acknowledged event {n} lost"));
            assert_eq!(e.global_sequence, *seq, "round {round}");
            let got = store.get_typed::<Mark>(*id).unwrap();
            assert_eq!(got.event.payload, mark("single", *n, 0));
            assert_eq!(got.coordinate, coord(&format!("acct:{}", n % 4)));
        }
        // INV-PREFIX: the visible events are exactly the first k written (sequences 0..k,
        // payload counters 0..k), with no hole.
        assert!(visible.len() >= acked.len());
        for (i, (e, m)) in visible.iter().enumerate() {
            assert_eq!(
                e.global_sequence, i as u64,
                "round {round}: hole in the log"
            );
            assert_eq!(m.n, i as u64, "round {round}");
        }
        assert_chains_unbroken(&store);
        // The store continues where the log ends.
        let next = store
            .append_typed(&coord("acct:0"), &mark("after", 0, 0))
            .unwrap();
        assert_eq!(next.sequence, visible.len() as u64);
        let snapshot: Vec<u128> = visible.iter().map(|(e, _)| e.event_id).collect();
        store.close().unwrap();
        // Recovery is idempotent: a second reopen shows the same log.
        let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
        let again: Vec<u128> = visible_marks(&store)
            .iter()
            .map(|(e, _)| e.event_id)
            .collect();
        assert_eq!(again.len(), snapshot.len() + 1);
        assert_eq!(&again[..snapshot.len()], &snapshot[..]);
        store.close().unwrap();
    }
}

#[test]
fn batches_killed_by_sigkill_are_all_or_nothing_and_acknowledged_ones_survive() {
    let mut rng = Lcg(0x5eed_0002);
    for round in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let kill_after = 1 + rng.next() % 60;
        let (child, mut out) = spawn_child("batches", tmp.path());
        let mut acked: Vec<(u64, Vec<(u64, u128)>)> = Vec::new();
        while (acked.len() as u64) < kill_after {
            let line = next_line(&mut out);
            let f: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(f[0], "BATCH", "{line}");
            let n: u64 = f[1].parse().unwrap();
            let items = f[2..]
                .chunks(2)
                .map(|c| (c[0].parse().unwrap(), parse_id(c[1])))
                .collect::<Vec<_>>();
            assert_eq!(items.len(), 3);
            acked.push((n, items));
        }
        // No acknowledgement line was missed.
        assert!(acked.iter().enumerate().all(|(i, a)| a.0 == i as u64));
        if rng.next().is_multiple_of(2) {
            std::thread::sleep(Duration::from_micros(rng.next() % 3000));
        }
        sigkill(child);

        let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
        for (n, items) in &acked {
            for (k, (seq, id)) in items.iter().enumerate() {
                let e = store
                    .entry(*id)
                    .unwrap_or_else(|| panic!("round {round}: batch {n} item {k} lost"));
                assert_eq!(e.global_sequence, *seq);
                assert_eq!(
                    store.get_typed::<Mark>(*id).unwrap().event.payload,
                    mark("batch", *n, k as u32)
                );
                if k > 0 {
                    assert_eq!(e.causation_id, Some(items[k - 1].1));
                }
            }
        }
        // INV-BATCH-ATOMIC: every visible batch has all three items; INV-PREFIX: the visible
        // batches are 0..m, in order, with strictly increasing sequences.
        let visible = visible_marks(&store);
        let mut by_batch: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for (_, m) in &visible {
            assert_eq!(m.marker, "batch");
            by_batch.entry(m.n).or_default().push(m.item);
        }
        for (n, items) in &by_batch {
            assert_eq!(items, &vec![0, 1, 2], "round {round}: batch {n} is partial");
        }
        let ns: Vec<u64> = by_batch.keys().copied().collect();
        assert_eq!(
            ns,
            (0..ns.len() as u64).collect::<Vec<_>>(),
            "round {round}"
        );
        assert!(ns.len() >= acked.len());
        assert!(visible
            .windows(2)
            .all(|w| w[1].0.global_sequence > w[0].0.global_sequence));
        assert!(visible
            .windows(2)
            .all(|w| (w[1].1.n, w[1].1.item) > (w[0].1.n, w[0].1.item)));
        assert_chains_unbroken(&store);
        // A new batch still goes through after recovery.
        let items = (0..3u32)
            .map(|k| {
                BatchAppendItem::typed(
                    coord("batch:after"),
                    &mark("batch", ns.len() as u64, k),
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .unwrap()
            })
            .collect();
        let rs = store.append_batch(items).unwrap();
        assert!(rs[0].sequence > visible.last().map_or(0, |v| v.0.global_sequence));
        store.close().unwrap();
        let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
        assert_eq!(visible_marks(&store).len(), visible.len() + 3);
        store.close().unwrap();
    }
}

fn read_pre_acks(out: &mut BufReader<ChildStdout>) -> Vec<(u64, u128)> {
    let mut pre = Vec::new();
    loop {
        let line = next_line(out);
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[0] {
            "ACK" => pre.push((f[1].parse().unwrap(), parse_id(f[2]))),
            "READY" => return pre,
            other => panic!("unexpected {other}"),
        }
    }
}

/// A child killed between a write (an atomic batch, in the page cache) and its fsync: the
/// reopening store finds the batch and reports it durable only after syncing the segment that
/// holds it and the directory (counted through a `Disk` wrapper over `FsDisk`).
#[test]
fn a_write_killed_before_its_fsync_is_synced_by_the_reopening_store_before_it_is_reported_durable()
{
    for _ in 0..2 {
        let tmp = tempfile::tempdir().unwrap();
        let (child, mut out) = spawn_child("held_fsync", tmp.path());
        let line = next_line(&mut out);
        assert!(line.starts_with("ACK 0 "), "{line}");
        assert_eq!(next_line(&mut out), "WRITTEN_NOT_SYNCED");
        sigkill(child);

        let disk = CountingDisk::default();
        let store = Store::open(
            StoreConfig::new(tmp.path())
                .with_lifecycle_events(false)
                .with_disk(Arc::new(disk.clone())),
        )
        .unwrap();
        let visible = visible_marks(&store);
        let markers: Vec<&str> = visible.iter().map(|(_, m)| m.marker.as_str()).collect();
        assert_eq!(
            markers,
            ["synced", "unsynced", "unsynced"],
            "the killed process's batch is in the page cache"
        );
        let f = store.frontier();
        assert_eq!(
            f.durable, f.written,
            "the reopened store reports it durable"
        );
        let segment = tmp.path().join(format!("{:020}.seg", 0));
        assert!(
            disk.syncs_of(&segment) >= 1,
            "INV-DURABLE: the reopening store reported the killed process's unsynced batch \
             durable without syncing {} (syncs: {:?})",
            segment.display(),
            disk.syncs.lock().unwrap()
        );
        assert!(
            disk.syncs_of(tmp.path()) >= 1,
            "the directory is synced too (syncs: {:?})",
            disk.syncs.lock().unwrap()
        );
        store.close().unwrap();
    }
}

#[test]
fn a_fence_open_at_sigkill_stays_hidden_after_recovery() {
    for _ in 0..2 {
        let tmp = tempfile::tempdir().unwrap();
        let (child, mut out) = spawn_child("fence_open", tmp.path());
        let pre = read_pre_acks(&mut out);
        assert_eq!(pre.len(), 2);
        sigkill(child);

        let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
        let visible = visible_marks(&store);
        assert_eq!(visible.len(), 2, "{visible:?}");
        for (seq, id) in &pre {
            assert_eq!(store.entry(*id).unwrap().global_sequence, *seq);
        }
        assert!(
            !visible.iter().any(|(_, m)| m.marker == "fenced"),
            "an uncommitted fence became visible after a crash"
        );
        // The entity chain still counts the hidden (written, durable) fenced events.
        let next = store
            .append_typed(&coord("fe"), &mark("after", 3, 0))
            .unwrap();
        assert_eq!(next.clock, 5);
        // A new fence can begin after recovery.
        store.begin_visibility_fence().unwrap().cancel().unwrap();
        store.close().unwrap();
        let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
        let visible = visible_marks(&store);
        assert_eq!(visible.len(), 3);
        assert!(!visible.iter().any(|(_, m)| m.marker == "fenced"));
        store.close().unwrap();
    }
}

#[test]
fn a_fence_committed_before_sigkill_is_fully_visible_after_recovery() {
    for _ in 0..2 {
        let tmp = tempfile::tempdir().unwrap();
        let (child, mut out) = spawn_child("fence_committed", tmp.path());
        let pre = read_pre_acks(&mut out);
        let mut fenced = Vec::new();
        loop {
            let line = next_line(&mut out);
            let f: Vec<&str> = line.split_whitespace().collect();
            match f[0] {
                "FENCED" => fenced.push((f[1].parse::<u64>().unwrap(), parse_id(f[2]))),
                "COMMITTED" => break,
                other => panic!("unexpected {other}"),
            }
        }
        sigkill(child);

        let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
        let visible = visible_marks(&store);
        assert_eq!(visible.len(), 5, "{visible:?}");
        for (seq, id) in pre.iter().chain(fenced.iter()) {
            assert_eq!(store.entry(*id).unwrap().global_sequence, *seq);
        }
        let fenced_visible: Vec<u32> = visible
            .iter()
            .filter(|(_, m)| m.marker == "fenced")
            .map(|(_, m)| m.item)
            .collect();
        assert_eq!(fenced_visible, vec![0, 1, 2]);
        assert_eq!(
            store
                .stream("fe")
                .iter()
                .map(|e| e.clock)
                .collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_chains_unbroken(&store);
        store.close().unwrap();
    }
}
