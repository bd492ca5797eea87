//! Opening and closing a store: lock the directory, recover, start the writer; and the
//! shutdown that `close` and `Drop` share.

use super::config::Settings;
use super::delivery::consumer::Registry;
use super::ticket::wait_reply;
use super::{Open, Store, StoreConfig, StoreError, StoreLockMode, StoreState};
use crate::env::{Disk, DiskLock};
use crate::index::IndexEntry;
use crate::log::{self, Catalog, CutPolicy, SegmentOptions};
use crate::mutant::Bugs;
#[cfg(batpak_mutant)]
use crate::mutant::Mutant;
use crate::recovery::{recover_with, Recovered};
use crate::region::Region;
use crate::sync::channel;
use crate::sync::{Arc, Mutex, StdArc};
use crate::writer::observe::{Observe, Observer};
use crate::writer::shared::Shared;
use crate::writer::state::Limits;
use crate::writer::thread::{self, WriterConfig};
use crate::writer::Command;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

impl Store<Open> {
    /// Opens (or creates) the store in `cfg`'s directory: takes the directory lock, recovers
    /// the log (cutting a torn tail, refusing corruption with the file and offset), syncs what
    /// it recovered (a crashed process may have left it in the page cache only, and it is
    /// reported durable from now on), rebuilds the index and starts the writer thread.
    ///
    /// After an unclean shutdown (a crash, or a close after a failed fsync) the last segment
    /// is not only synced but rewritten (a durable copy renamed over it): a failed fsync of the
    /// crashed process may have left pages that read back but never reach the disk. That needs
    /// free space for a copy of the last segment (at most `segment_max_bytes`); without it
    /// `open` fails with `IoAt { op: "rewrite recovered segment", .. }` and a `StorageFull`
    /// source, and succeeds once space is freed.
    ///
    /// If the sync fails, `open` fails with `IoAt { op: "sync recovered segment", .. }`, after
    /// rewriting the segment durably so that the next open trusts only bytes on the disk.
    pub fn open(config: StoreConfig) -> Result<Store<Open>, StoreError> {
        let cfg = config.settings()?;
        crate::payload_registry::check_at_open(cfg.event_payload_validation)
            .map_err(StoreError::EventPayloadRegistry)?;
        let disk = StdArc::clone(&cfg.disk);
        let lock = create_and_lock_dir(&*disk, &cfg.dir, cfg.bugs)?;
        let Recovered {
            mut state,
            index,
            report,
        } = recover_with(
            &*disk,
            &cfg.dir,
            CutPolicy::OnDisk,
            cfg.bugs,
            cfg.checkpoint,
        )?;
        let checkpoints = std::mem::take(&mut state.checkpoints.table);
        let observer = Observer::new(cfg.trace.clone());
        observer.recover(&report, &index);
        let catalog = StdArc::new(Catalog::new(disk, cfg.dir.clone(), cfg.fd_budget));
        let shared = Arc::new(Shared::new(index));
        let (tx, rx) = channel::bounded(cfg.writer_channel_capacity);
        let wcfg = writer_config(&cfg, &catalog, observer.clone());
        let handle = thread::start(state, report.active, wcfg, Arc::clone(&shared), rx)?;
        tracing::info!(dir = %cfg.dir.display(), records = report.records, "store open");
        let store = Store {
            cfg,
            shared,
            tx: Some(tx),
            writer: Some(handle),
            lock: Some(lock),
            catalog,
            kinds: Mutex::new(HashMap::new()),
            ops: Mutex::new(()),
            recovery: report,
            observer,
            checkpoints: Registry::new(checkpoints),
            projections: Default::default(),
            _state: PhantomData,
        };
        // A failure here drops the store, which stops the writer and releases the lock.
        store.record_open()?;
        Ok(store)
    }
}

impl<S> Store<S> {
    /// What recovery found at open (segments, records, the torn tail: cut by a writable open,
    /// ignored in memory by a read-only one, which removes no segment either).
    pub fn recovery_report(&self) -> &log::RecoveryReport {
        &self.recovery
    }
}

impl<S: StoreState> Store<S> {
    /// Records `SYSTEM_CLOSE_COMPLETED` (a writable store with lifecycle events on; skipped
    /// with a warning if the writer cannot write any more), then stops the writer after it has
    /// drained its queue (an open fence is cancelled), syncs and releases the directory lock. A
    /// read-only store has no writer: it releases its shared lock (what dropping either does
    /// too). On success it returns the [`Closed`](super::Closed) marker (upstream's shape:
    /// `let _closed: Closed = store.close()?;`).
    pub fn close(mut self) -> Result<super::Closed, StoreError> {
        S::before_close(&self);
        super::flow::done("close", self.shutdown().map(|()| super::Closed))
    }
}

/// The writer's configuration from the store's: limits, durability, sources, and how it makes
/// segments (a roll that cannot create the next file first closes the catalog's readers).
fn writer_config(cfg: &Settings, catalog: &StdArc<Catalog>, observer: Observer) -> WriterConfig {
    let relief = StdArc::clone(catalog);
    WriterConfig {
        disk: StdArc::clone(&cfg.disk),
        dir: cfg.dir.clone(),
        segment: SegmentOptions {
            segment_max_bytes: cfg.segment_max_bytes,
            sync_mode: cfg.sync_mode,
            frame_max: cfg.frame_max,
            entropy: StdArc::clone(&cfg.entropy),
            fd_relief: Some(StdArc::new(move || relief.release())),
        },
        bugs: cfg.bugs,
        durability: cfg.durability(),
        group_commit_max_batch: cfg.group_max,
        limits: Limits {
            batch_max_size: cfg.batch_max_size,
            batch_max_bytes: cfg.batch_max_bytes,
            single_append_max_bytes: cfg.single_append_max_bytes,
        },
        allow_external_causes: cfg.allow_external_causes,
        clock: StdArc::clone(&cfg.clock),
        ids: StdArc::clone(&cfg.ids),
        observer,
        signer: cfg.signer().cloned(),
        stack_size: cfg.writer_stack_size,
        checkpoint: cfg.checkpoint,
        checkpoint_every: cfg.checkpoint_every,
    }
}

impl<S> Store<S> {
    /// Shutdown: the writer drains its queue, cancels an open fence, syncs and stops; then the
    /// directory lock is released. Idempotent.
    fn shutdown(&mut self) -> Result<(), StoreError> {
        let mut result = Ok(());
        if let Some(tx) = self.tx.take() {
            let (reply, rx) = channel::bounded(1);
            let gate_open = !*self.shared.stopped.read();
            if gate_open && tx.send(Command::Shutdown { reply }).is_ok() {
                result = wait_reply(&rx, 0);
            }
            drop(tx);
        }
        if let Some(h) = self.writer.take() {
            if h.join().is_err() {
                tracing::error!("writer thread panicked");
                result = result.and(Err(StoreError::WriterCrashed));
            }
        }
        self.lock.take();
        result
    }
}

impl<S> Drop for Store<S> {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "store drop: shutdown failed");
        }
    }
}

/// Creates the data directory if needed and takes its lock (what `open` does first).
fn create_and_lock_dir(
    disk: &dyn Disk,
    dir: &std::path::Path,
    bugs: Bugs,
) -> Result<Box<dyn DiskLock>, StoreError> {
    disk.create_dir_all(dir)
        .map_err(|source| StoreError::IoAt {
            path: dir.to_path_buf(),
            op: "create data directory",
            source,
        })?;
    #[cfg(batpak_mutant)]
    if bugs.has(Mutant::OpenSkipsLock) {
        return Ok(Box::new(NoLock));
    }
    let _ = bugs;
    lock_dir(disk, dir)
}

/// Takes the directory lock (INV-EXCLUSIVE). A lock that is busy is retried for a short while
/// before `StoreLocked`: a child process forked by another thread between its fork and exec
/// briefly holds copies of every descriptor, including a just-closed store's lock.
fn lock_dir(disk: &dyn Disk, dir: &std::path::Path) -> Result<Box<dyn DiskLock>, StoreError> {
    lock_dir_with(dir, StoreLockMode::Mutable, || disk.lock(dir))
}

/// [`lock_dir`]'s retries around any way of taking the lock (a read-only open takes a shared
/// one).
pub(super) fn lock_dir_with(
    dir: &std::path::Path,
    mode: StoreLockMode,
    take: impl Fn() -> std::io::Result<Box<dyn DiskLock>>,
) -> Result<Box<dyn DiskLock>, StoreError> {
    const ATTEMPTS: u32 = 20;
    let mut attempt = 0;
    loop {
        match take() {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                attempt += 1;
                if attempt >= ATTEMPTS {
                    return Err(StoreError::StoreLocked {
                        path: dir.to_path_buf(),
                        mode,
                    });
                }
                crate::sync::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(StoreError::IoAt {
                    path: dir.to_path_buf(),
                    op: "lock data directory",
                    source,
                })
            }
        }
    }
}

/// What a [`Store::open`] of `cfg` would show as visible, without starting a writer thread:
/// takes the directory lock (creating the directory if needed, as `open` does), runs the same
/// recovery (cutting a torn tail, refusing corruption) and returns every visible index entry in
/// sequence order; the lock is released on return.
///
/// For the concurrency models, which recover many crash images of one run and cannot afford a
/// writer thread per image (each one multiplies the interleavings a model checker explores).
/// Errors are those of `open`'s directory, lock and recovery steps.
#[doc(hidden)]
pub fn recover_visible(config: &StoreConfig) -> Result<Vec<IndexEntry>, StoreError> {
    let cfg = config.settings()?;
    let disk = &*cfg.disk;
    let lock = create_and_lock_dir(disk, &cfg.dir, cfg.bugs)?;
    let recovered = recover_with(disk, &cfg.dir, CutPolicy::OnDisk, cfg.bugs, cfg.checkpoint);
    drop(lock);
    Ok(recovered?.index.query(&Region::all()))
}

/// The "lock" a store runs with under [`Mutant::OpenSkipsLock`]: holds nothing.
#[cfg(batpak_mutant)]
#[derive(Debug)]
struct NoLock;

#[cfg(batpak_mutant)]
impl DiskLock for NoLock {}
