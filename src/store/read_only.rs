//! A read-only store: [`Store::<ReadOnly>::open_read_only`]. It recovers the log with the
//! in-memory cut policy (a torn tail is ignored, never cut), starts no writer and takes a
//! shared lock, so any number of read-only handles can look at a directory no writer holds.
//! Every read is `impl<S> Store<S>` (`read.rs`, `stats.rs`), so a read-only store reads exactly
//! as a writable one does; the write API exists only on `Store<Open>`.

use super::open::lock_dir_with;
use super::{ReadOnly, Store, StoreConfig, StoreError, StoreLockMode};
use crate::env::{Disk, DiskLock};
use crate::log::{self, Catalog, CutPolicy};
use crate::mutant::Mutant;
use crate::recovery::{recover_with, Recovered};
use crate::sync::atomic::Ordering;
use crate::sync::{Arc, Mutex, StdArc};
use crate::writer::observe::{Observe, Observer};
use crate::writer::shared::Shared;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::marker::PhantomData;
use std::path::Path;

impl Store<ReadOnly> {
    /// Opens the store in `cfg`'s directory for reading only, as it is now (a static view:
    /// events appended later by a writer are not seen; open again to see them).
    ///
    /// It never creates, truncates, renames or deletes anything and never writes a byte
    /// (INV-READ-ONLY):
    /// - a missing directory is an error (`IoAt` with `NotFound`), never an empty store, and so
    ///   is an existing directory that holds no store (no lock file and no segment);
    /// - it takes a **shared** lock on the directory's lock file: many read-only handles at
    ///   once, in this process or others, but not while a writer holds it (`StoreLocked`), and a
    ///   writable [`Store::open`] fails with `StoreLocked` while a read-only handle is open. A
    ///   directory without a lock file (a copied store) is read without a lock;
    /// - a torn tail (a crash in the middle of a write) is ignored in memory, and an open
    ///   visibility fence or unfinished batch stays hidden, exactly as a writable open would
    ///   recover it, but nothing is cut: [`Store::recovery_report`] says what was
    ///   ignored. Corruption fails closed with the file and offset, as in a writable open.
    ///
    /// What it reads was found on disk but is not synced by this handle: `frontier()` reports
    /// every recovered record as written, durable and visible.
    ///
    /// ```
    /// use batpak::prelude::*;
    /// use batpak::store::ReadOnly;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(StoreConfig::new(dir.path()))?;
    /// let coord = Coordinate::new("order:1", "shop")?;
    /// store.append(&coord, EventKind::custom(1, 1), &"placed")?;
    /// store.close()?;
    ///
    /// let a = Store::<ReadOnly>::open_read_only(StoreConfig::new(dir.path()))?;
    /// let b = Store::<ReadOnly>::open_read_only(StoreConfig::new(dir.path()))?;
    /// assert_eq!(a.stream("order:1").len(), 1);
    /// assert_eq!(b.by_scope("shop").len(), 1);
    /// // A writer cannot open while readers look.
    /// assert!(matches!(
    ///     Store::open(StoreConfig::new(dir.path())),
    ///     Err(StoreError::StoreLocked { .. })
    /// ));
    /// # Ok(()) }
    /// ```
    pub fn open_read_only(config: StoreConfig) -> Result<Store<ReadOnly>, StoreError> {
        let cfg = config.settings()?;
        let disk = StdArc::clone(&cfg.disk);
        let lock = if cfg.bugs.has(Mutant::ReadOnlyLocksExclusive) {
            Some(lock_dir_with(&cfg.dir, StoreLockMode::ReadOnly, || {
                disk.lock(&cfg.dir)
            })?)
        } else {
            lock_shared(&*disk, &cfg.dir)?
        };
        let cut = if cfg.bugs.has(Mutant::ReadOnlyCutsOnDisk) {
            CutPolicy::OnDisk
        } else {
            CutPolicy::InMemory
        };
        let Recovered {
            mut state,
            index,
            report,
        } = recover_with(&*disk, &cfg.dir, cut, cfg.bugs, cfg.checkpoint)?;
        let checkpoints = std::mem::take(&mut state.checkpoints.table);
        let catalog = StdArc::new(Catalog::new(disk, cfg.dir.clone(), cfg.fd_budget));
        let shared = Arc::new(Shared::new(index));
        for cell in [
            &shared.frontier.written,
            &shared.frontier.durable,
            &shared.frontier.visible,
        ] {
            cell.store(state.next_seq, Ordering::SeqCst);
        }
        *shared.stopped.write() = true;
        tracing::info!(
            dir = %cfg.dir.display(),
            records = report.records,
            torn_tail = report.torn_tail.is_some(),
            "store open read-only"
        );
        Ok(Store {
            observer: Observer::new(None),
            cfg,
            shared,
            tx: None,
            writer: None,
            lock,
            catalog,
            kinds: Mutex::new(HashMap::new()),
            ops: Mutex::new(()),
            checkpoints: super::delivery::consumer::Registry::new(checkpoints),
            projections: super::projection::Projections::read_only(report.active.map(|a| a.0)),
            recovery: report,
            _state: PhantomData,
        })
    }
}

/// The shared lock a read-only open takes, or none for a store directory that has no lock
/// file (a copy); refuses a missing directory and a directory without a store.
fn lock_shared(disk: &dyn Disk, dir: &Path) -> Result<Option<Box<dyn DiskLock>>, StoreError> {
    let io_at = |op: &'static str| {
        move |source: std::io::Error| StoreError::IoAt {
            path: dir.to_path_buf(),
            op,
            source,
        }
    };
    if !disk.exists(dir).map_err(io_at("open read-only"))? {
        return Err(io_at("open read-only")(std::io::Error::new(
            ErrorKind::NotFound,
            "no such data directory (a read-only open never creates one)",
        )));
    }
    match lock_dir_with(dir, StoreLockMode::ReadOnly, || disk.lock_shared(dir)) {
        Ok(lock) => Ok(Some(lock)),
        Err(StoreError::IoAt { source, .. }) if source.kind() == ErrorKind::NotFound => {
            let names = disk.list(dir).map_err(io_at("open read-only"))?;
            let has_segment = names
                .iter()
                .any(|n| log::segment::parse_segment_file_name(n).is_some());
            if has_segment {
                tracing::debug!(dir = %dir.display(), "read-only open without a lock file");
                Ok(None)
            } else {
                Err(io_at("open read-only")(std::io::Error::new(
                    ErrorKind::NotFound,
                    "no batpak store here (no lock file and no segment)",
                )))
            }
        }
        Err(e) => Err(e),
    }
}
