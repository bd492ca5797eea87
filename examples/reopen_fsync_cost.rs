//! What reopening a store costs, and what part of it is the open-time fsync (a store reports
//! what recovery found durable only after syncing it: bytes a crashed process left in the page
//! cache are not on the disk yet).
//!
//! Fills a store in a temporary directory (on the real file system) with N events (default
//! 1,000,000, in batches of 1000), closes it, then:
//! - reopens it cleanly several times;
//! - lets a child process append M more events (default 10,000) without syncing them (deferred
//!   durability) and abort - a process crash: the events sit in the page cache - and reopens.
//!
//! Every reopen goes through a `Disk` wrapper over `FsDisk` that counts the syncs and the time
//! spent in them. Run: `cargo run --release --example reopen_fsync_cost [-- N [M]]`.

use batpak::env::{Disk, DiskFile, DiskLock, FsDisk};
use batpak::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `FsDisk`, counting syncs (files and directories) and the time spent in them.
#[derive(Debug, Clone, Default)]
struct Counting {
    syncs: Arc<AtomicU64>,
    nanos: Arc<AtomicU64>,
}

impl Counting {
    fn timed<T>(&self, f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        let t = Instant::now();
        let r = f();
        let nanos = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        r
    }

    fn take(&self) -> (u64, Duration) {
        let n = self.syncs.swap(0, Ordering::Relaxed);
        let ns = self.nanos.swap(0, Ordering::Relaxed);
        (n, Duration::from_nanos(ns))
    }
}

impl Disk for Counting {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        FsDisk.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        FsDisk.list(dir)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn DiskFile>> {
        let inner = FsDisk.create_new(path)?;
        Ok(Box::new(CountingFile {
            inner,
            disk: self.clone(),
        }))
    }
    fn open(&self, path: &Path, writable: bool) -> std::io::Result<Box<dyn DiskFile>> {
        let inner = FsDisk.open(path, writable)?;
        Ok(Box::new(CountingFile {
            inner,
            disk: self.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        FsDisk.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        FsDisk.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.timed(|| FsDisk.sync_dir(dir))
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
    disk: Counting,
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
        let inner = &mut self.inner;
        self.disk.timed(|| inner.sync_data())
    }
    fn sync_all(&mut self) -> std::io::Result<()> {
        let inner = &mut self.inner;
        self.disk.timed(|| inner.sync_all())
    }
}

fn append_events(store: &Store, from: u64, n: u64) -> Result<(), StoreError> {
    let kind = EventKind::custom(0x1, 1);
    let mut i = from;
    while i < from + n {
        let mut items = Vec::with_capacity(1000);
        for j in i..(i + 1000).min(from + n) {
            let c = Coordinate::new(format!("entity:{}", j % 100), "bench")?;
            let payload = serde_json::json!({"user": format!("user-{j:06}"), "amount": j * 7, "note": "about one hundred bytes of payload in total"});
            items.push(BatchAppendItem::new(
                c,
                kind,
                &payload,
                AppendOptions::default(),
                CausationRef::None,
            )?);
        }
        i += items.len() as u64;
        store.append_batch(items)?;
    }
    Ok(())
}

const CHILD: &str = "BATPAK_REOPEN_COST_CHILD";

fn reopen(dir: &Path, what: &str) -> Result<(), Box<dyn std::error::Error>> {
    let disk = Counting::default();
    let t = Instant::now();
    let store = Store::open(StoreConfig::new(dir).with_disk(Arc::new(disk.clone())))?;
    let el = t.elapsed();
    let (syncs, in_syncs) = disk.take();
    let f = store.frontier();
    println!(
        "{what}: {} events in {:.3} s; {syncs} syncs took {:.3} ms; durable frontier {} of {} written",
        store.stats().event_count,
        el.as_secs_f64(),
        in_syncs.as_secs_f64() * 1e3,
        f.durable,
        f.written
    );
    store.close()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (n, m) = (arg(1, 1_000_000), arg(2, 10_000));
    if let Ok(dir) = std::env::var(CHILD) {
        // The child: m unsynced events, then a process crash.
        let store = Store::open(
            StoreConfig::new(&dir)
                .with_sync_every_n_events(u32::MAX)
                .with_flush_interval(Duration::from_secs(3600)),
        )?;
        append_events(&store, n, m)?;
        std::process::abort();
    }
    let tmp = tempfile::tempdir_in(std::env::current_dir()?)?;
    let dir = tmp.path();
    let t = Instant::now();
    let store = Store::open(StoreConfig::new(dir))?;
    append_events(&store, 0, n)?;
    store.close()?;
    println!("filled {n} events in {:.1} s", t.elapsed().as_secs_f64());
    for i in 1..=5 {
        reopen(dir, &format!("clean reopen {i}"))?;
    }
    let status = std::process::Command::new(std::env::current_exe()?)
        .args([n.to_string(), m.to_string()])
        .env(CHILD, dir)
        .status()?;
    println!("child wrote {m} unsynced events and died ({status})");
    reopen(dir, "reopen after the process crash")?;
    reopen(dir, "clean reopen after that")?;
    Ok(())
}
