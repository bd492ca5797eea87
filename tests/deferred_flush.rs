//! INV-FLUSH-BOUND on real files: in the deferred mode (`with_sync_every_n_events(n)`), a
//! written record is synced within the flush interval of being written even under a steady
//! trickle of appends that never reaches `n` (the interval used to restart with every command,
//! so a trickle was never synced). Syncs are counted by a `Disk` wrapper over `FsDisk`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::env::{Disk, DiskFile, DiskLock, FsDisk, ManualClock};
use batpak::prelude::*;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `FsDisk`, counting file syncs.
#[derive(Debug, Default)]
struct CountingDisk {
    syncs: Arc<AtomicU64>,
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn DiskFile>,
    syncs: Arc<AtomicU64>,
}

impl DiskFile for CountingFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_all()
    }
}

impl CountingDisk {
    fn wrap(&self, f: Box<dyn DiskFile>) -> Box<dyn DiskFile> {
        Box::new(CountingFile {
            inner: f,
            syncs: Arc::clone(&self.syncs),
        })
    }
}

impl Disk for CountingDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        FsDisk.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsDisk.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        FsDisk.create_new(path).map(|f| self.wrap(f))
    }
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn DiskFile>> {
        FsDisk.open(path, writable).map(|f| self.wrap(f))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsDisk.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FsDisk.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        FsDisk.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> io::Result<Box<dyn DiskLock>> {
        FsDisk.lock(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        FsDisk.exists(path)
    }
}

fn coord() -> Coordinate {
    Coordinate::new("trickle:1", "flush").unwrap()
}

fn kind() -> EventKind {
    EventKind::custom(0x2, 3)
}

#[test]
fn a_trickle_of_appends_is_fsynced_within_the_flush_interval_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(CountingDisk::default());
    let syncs = Arc::clone(&disk.syncs);
    let store = Store::open(
        StoreConfig::new(dir.path())
            .with_disk(disk)
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_millis(50)),
    )
    .unwrap();
    let before = syncs.load(Ordering::SeqCst);
    let start = Instant::now();
    let mut appends = 0u64;
    let mut durable_seen = 0;
    // One append every 5 ms for a second: 200 appends, far below the 1000-event threshold.
    while start.elapsed() < Duration::from_secs(1) {
        store.append(&coord(), kind(), &appends).unwrap();
        appends += 1;
        durable_seen = durable_seen.max(store.frontier().durable);
        std::thread::sleep(Duration::from_millis(5));
    }
    let during = syncs.load(Ordering::SeqCst) - before;
    println!("{appends} appends in 1 s: {during} fsyncs, durable frontier reached {durable_seen}");
    assert!(
        during >= 2,
        "INV-FLUSH-BOUND: {during} fsyncs during a 1 s trickle of {appends} appends with a 50 ms flush interval"
    );
    assert!(
        durable_seen > 0,
        "the durable frontier never moved during the trickle"
    );
    store.close().unwrap();
}

#[test]
fn with_a_manual_clock_the_trickle_is_synced_once_the_oldest_write_is_due() {
    // Real files, logical time: the interval is an hour of the manual clock (never reached in
    // real time), each append a tenth of it later.
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(CountingDisk::default());
    let syncs = Arc::clone(&disk.syncs);
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let store = Store::open(
        StoreConfig::new(dir.path())
            .with_disk(disk)
            .with_clock_source(clock.clone())
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_secs(3600)),
    )
    .unwrap();
    let before = syncs.load(Ordering::SeqCst);
    let step = 360_000_000i64;
    // (sequence, logical time written)
    let mut written: Vec<(u64, i64)> = Vec::new();
    let mut now = 0i64;
    for i in 0..40u32 {
        let r = store.append(&coord(), kind(), &i).unwrap();
        written.push((r.sequence, now));
        let durable = store.frontier().durable;
        if i < 10 {
            assert_eq!(durable, 0, "synced before the first write was due");
        }
        // Whatever was an hour old when this append ran is durable by its reply (the writer
        // may also have synced on its own, by the timer, as soon as the clock said so).
        for &(seq, at) in &written {
            assert!(
                now - at < 3_600_000_000 || seq < durable,
                "INV-FLUSH-BOUND: record {seq} written at {at} µs unsynced at {now} µs"
            );
        }
        clock.advance(step);
        now += step;
        if i == 20 {
            // The wall clock steps back two hours: the flush bound does not care.
            clock.advance(-7_200_000_000);
        }
    }
    let n = syncs.load(Ordering::SeqCst) - before;
    println!("40 appends over 4 logical hours: {n} fsyncs");
    assert!(
        (3..=8).contains(&n),
        "{n} fsyncs for 4 hours at a 1-hour interval"
    );
    store.close().unwrap();
}
