//! A full disk on a real, small file system: a 1 MiB tmpfs mounted for the test. Mounting needs
//! root (or CAP_SYS_ADMIN); where it is not permitted the test prints why and passes without
//! checking anything.
//!
//! What a full disk must do (the crash terms of INVARIANTS.md): the write that failed gets a
//! definite error naming the file and the cause (`StorageFull`); everything acknowledged
//! before it stays intact and readable; no panic, no hang. The writer then refuses writes until
//! the store is reopened (its state machine already took the failed group's sequences), and
//! once space is freed a reopened store appends again, continuing every entity's chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::coordinate::{Coordinate, Region};
use batpak::event::EventKind;
use batpak::store::{AppendReceipt, Store, StoreConfig, StoreError};
use std::path::{Path, PathBuf};
use std::process::Command;

const KIND: EventKind = EventKind::custom(1, 1);

/// A size-limited tmpfs, unmounted (and its mount point removed) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it), or says why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "full").unwrap()
}

/// Appends 2 KiB events until one fails; returns the acknowledged ones and the error.
fn fill(store: &Store) -> (Vec<(AppendReceipt, u64)>, StoreError) {
    let mut acked = Vec::new();
    for n in 0..100_000u64 {
        let payload = serde_json::json!({"n": n, "pad": "x".repeat(2048)});
        match store.append(&coord(&format!("e{}", n % 3)), KIND, &payload) {
            Ok(r) => acked.push((r, n)),
            Err(e) => return (acked, e),
        }
    }
    panic!("a 1 MiB file system took 200 MiB of events");
}

fn check_full_disk(segment_max_bytes: u64) {
    let fs = match Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => {
            println!("SKIP disk-full test on a real file system: {why}");
            return;
        }
    };
    // Ballast: space to free once the disk is full.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 256 * 1024]).unwrap();
    let dir: PathBuf = fs.path().join("db");
    let cfg = || {
        StoreConfig::new(&dir)
            .with_lifecycle_events(false)
            .with_segment_max_bytes(segment_max_bytes)
    };
    let store = Store::open(cfg()).unwrap();
    let (acked, err) = fill(&store);
    assert!(acked.len() > 10, "only {} events fit", acked.len());
    println!(
        "segments of {segment_max_bytes} bytes: {} events acknowledged, then: {err}",
        acked.len()
    );
    // A definite error naming the file and the cause.
    assert!(err.is_definite(), "{err:?}");
    match &err {
        StoreError::IoAt { path, source, .. } => {
            assert!(path.starts_with(&dir), "{}", path.display());
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{source}");
        }
        other => panic!("expected IoAt(StorageFull), got {other:?}"),
    }
    // Everything acknowledged is intact and readable.
    let check_acked = |store: &Store| {
        for (r, n) in &acked {
            let e = store.get(r.event_id).unwrap();
            assert_eq!(e.event.payload["n"], *n);
            assert_eq!(store.entry(r.event_id).unwrap().global_sequence, r.sequence);
        }
    };
    check_acked(&store);
    assert_eq!(store.frontier().durable, acked.len() as u64);
    // Writes are refused until the store is reopened.
    let again = store.append(&coord("e0"), KIND, &1).unwrap_err();
    assert!(
        matches!(again, StoreError::WriterLatched { .. }),
        "{again:?}"
    );
    store.close().unwrap();
    // Free space; the reopened store has exactly the acknowledged events and appends again.
    std::fs::remove_file(&ballast).unwrap();
    let store = Store::open(cfg()).unwrap();
    assert!(store.recovery_report().torn_tail.is_none());
    assert_eq!(store.query(&Region::all()).len(), acked.len());
    check_acked(&store);
    let next = store.append(&coord("e0"), KIND, &"after").unwrap();
    assert_eq!(next.sequence, acked.len() as u64);
    let e0 = acked
        .iter()
        .filter(|(r, n)| n % 3 == 0 && r.sequence < next.sequence)
        .count();
    assert_eq!(next.clock, e0 as u32 + 1, "the entity's chain continues");
    store.close().unwrap();
}

#[test]
fn a_full_disk_fails_the_write_definitely_keeps_what_was_acknowledged_and_recovers_after_freeing_space(
) {
    check_full_disk(64 * 1024 * 1024);
}

/// The same with 64 KiB segments: the disk fills up around segment rolls too.
#[test]
fn a_full_disk_with_small_segments() {
    check_full_disk(64 * 1024);
}
