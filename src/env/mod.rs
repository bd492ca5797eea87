//! What the outside world gives the store: files ([`Disk`]), time ([`Clock`]), ids
//! ([`IdSource`]) and randomness ([`Entropy`]).
//!
//! Production uses [`FsDisk`], [`SystemClock`] and [`RandomIds`]. Tests, the crash-state
//! enumerator, the fuzzer and the loom/shuttle models use `SimDisk` (in the hidden `__testing` door), [`ManualClock`] and
//! [`CounterIds`], so a run is deterministic and every crash image the crash model allows can
//! be produced.
//!
//! # The crash model (shared by every implementation)
//! The OS page cache sits between the store and the platter. Bytes appended to a file but not
//! yet covered by a successful [`DiskFile::sync_data`] are *not durable*:
//! - a **process crash** (SIGKILL, OOM kill, panic) keeps the page cache: the next process
//!   reads them, and they are still not durable until someone syncs them;
//! - a **power loss** keeps the durable bytes plus, per file, any prefix of the unsynced
//!   operations, with the last surviving append possibly torn (a prefix of its bytes) or
//!   replaced by garbage;
//! - a **failed sync** may mark the unsynced pages clean without writing them (Linux): a later
//!   successful sync proves nothing about them.
//!
//! A directory entry created, removed or renamed since the last [`Disk::sync_dir`] of its
//! directory may or may not survive a power loss. Everything synced survives.

mod clock;
mod entropy;
mod fs;
pub(crate) mod sim;

use std::fmt;
use std::io;
use std::path::Path;

pub use clock::{Clock, CounterIds, FnClock, IdSource, ManualClock, RandomIds, SystemClock};
pub use entropy::{Entropy, OsEntropy, SeededEntropy};
pub use fs::{FsDisk, LOCK_FILE_NAME};

/// A file opened through a [`Disk`].
///
/// Contracts: `read_at` never reads past the end and returns how many bytes it read;
/// `append` writes all of `data` at the end of the file or fails; after a successful
/// `sync_data` every byte appended before it, and every truncation before it, survives a crash.
/// A handle refers to the file itself, not its name: it keeps working after a rename or remove.
#[expect(
    clippy::len_without_is_empty,
    reason = "len is fallible I/O; callers compare it with offsets, not with zero"
)]
pub trait DiskFile: Send + Sync + fmt::Debug {
    /// Current length in bytes (including unsynced appends).
    fn len(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; returns the number of bytes read (0 at EOF).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Appends all of `data` at the end of the file.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Makes the file's data (appends and truncations so far) durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync` rather than `fdatasync`).
    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// A held lock on a directory (exclusive from [`Disk::lock`], shared from
/// [`Disk::lock_shared`]); dropping it releases the lock.
pub trait DiskLock: Send + Sync + fmt::Debug {}

/// The storage seam: every byte the store reads or writes goes through this trait.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents if missing (durably: parents are synced).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the regular files directly inside `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new empty file; fails with `AlreadyExists` if it exists. The new directory
    /// entry is durable only after [`Disk::sync_dir`].
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Opens an existing file (read-only unless `writable`).
    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn DiskFile>>;
    /// Removes a file (durable only after [`Disk::sync_dir`]).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing `to` (durable only after [`Disk::sync_dir`]).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, removals, renames) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `dir`; fails with `WouldBlock` if another holder has it.
    /// The lock lives in the file [`LOCK_FILE_NAME`] inside `dir`, created (durably) if
    /// missing, so it shows up in [`Disk::list`].
    fn lock(&self, dir: &Path) -> io::Result<Box<dyn DiskLock>>;
    /// Takes a shared lock on `dir`: any number of shared holders at once, none while an
    /// exclusive holder has it (and [`Disk::lock`] fails with `WouldBlock` while a shared holder
    /// has it). Creates nothing: fails with `NotFound` if [`LOCK_FILE_NAME`] does not exist
    /// (then no writer has ever opened the directory), `WouldBlock` if an exclusive holder has
    /// it. What a read-only open takes.
    ///
    /// The provided method refuses with `Unsupported`, so a `Disk` written before it existed
    /// keeps compiling and a read-only open over it fails with a clear error.
    fn lock_shared(&self, dir: &Path) -> io::Result<Box<dyn DiskLock>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "lock_shared {}: this Disk does not implement shared locks",
                dir.display()
            ),
        ))
    }
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Makes `to` a new name of the existing file `from` (a hard link; `to` must not exist).
    /// The new entry is durable only after [`Disk::sync_dir`] of `to`'s directory. Used for
    /// files that never change again (sealed segments in a snapshot); a caller falls back to a
    /// copy when it fails.
    ///
    /// The provided method refuses with `Unsupported` (a `Disk` without links copies).
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "hard_link {} -> {}: this Disk does not make hard links",
                from.display(),
                to.display()
            ),
        ))
    }
}
