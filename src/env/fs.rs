//! [`FsDisk`]: the production [`Disk`] over real files (`std::fs`).

use super::{Disk, DiskFile, DiskLock};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Name of the lock file [`Disk::lock`] creates inside the locked directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// The real file system.
///
/// Every error is an [`io::Error`] of the underlying kind whose message names the operation
/// and the path.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsDisk;

impl FsDisk {
    /// The real file system.
    pub fn new() -> Self {
        FsDisk
    }
}

/// An I/O error with the operation and path that met it; the original error (with its raw OS
/// error code, e.g. ENOSPC or EIO) is the source.
#[derive(Debug)]
struct PathError {
    message: String,
    source: io::Error,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Wraps `err` so its message names the operation and the path; keeps the error kind, and
/// the original error as the source.
fn with_path(op: &str, path: &Path, err: io::Error) -> io::Error {
    io::Error::new(
        err.kind(),
        PathError {
            message: format!("{op} {}: {err}", path.display()),
            source: err,
        },
    )
}

/// Syncs the directory `dir` (so entries created, removed or renamed in it are durable).
fn sync_dir_at(dir: &Path) -> io::Result<()> {
    let d = File::open(dir).map_err(|e| with_path("sync_dir", dir, e))?;
    d.sync_all().map_err(|e| with_path("sync_dir", dir, e))
}

/// The directory that holds `path` (`.` for a bare relative name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl Disk for FsDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // The directories missing now, deepest first: each one's entry lives in its parent,
        // so after creating them every parent of a created directory is synced.
        let mut missing: Vec<&Path> = Vec::new();
        for anc in dir.ancestors() {
            if anc.as_os_str().is_empty() {
                break;
            }
            let exists = anc
                .try_exists()
                .map_err(|e| with_path("create_dir_all", anc, e))?;
            if exists {
                break;
            }
            missing.push(anc);
        }
        std::fs::create_dir_all(dir).map_err(|e| with_path("create_dir_all", dir, e))?;
        for created in missing.iter().rev() {
            sync_dir_at(parent_dir(created))?;
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| with_path("list", dir, e))? {
            let entry = entry.map_err(|e| with_path("list", dir, e))?;
            let ty = entry.file_type().map_err(|e| with_path("list", dir, e))?;
            if ty.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(path)
            .map_err(|e| with_path("create_new", path, e))?;
        Ok(Box::new(FsFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn open(&self, path: &Path, writable: bool) -> io::Result<Box<dyn DiskFile>> {
        let file = OpenOptions::new()
            .read(true)
            .append(writable)
            .open(path)
            .map_err(|e| with_path("open", path, e))?;
        Ok(Box::new(FsFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path).map_err(|e| with_path("remove", path, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("rename {} -> {}: {e}", from.display(), to.display()),
            )
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        sync_dir_at(dir)
    }

    fn lock(&self, dir: &Path) -> io::Result<Box<dyn DiskLock>> {
        let path = dir.join(LOCK_FILE_NAME);
        let existed = path.try_exists().map_err(|e| with_path("lock", &path, e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| with_path("lock", &path, e))?;
        if !existed {
            // The lock file is created durably, as SimDisk does, so both list the same names.
            sync_dir_at(dir)?;
        }
        match file.try_lock() {
            Ok(()) => Ok(Box::new(FsLock {
                _file: file,
                _path: path,
            })),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                ErrorKind::WouldBlock,
                format!("lock {}: held by another holder", path.display()),
            )),
            Err(TryLockError::Error(e)) => Err(with_path("lock", &path, e)),
        }
    }

    fn lock_shared(&self, dir: &Path) -> io::Result<Box<dyn DiskLock>> {
        let path = dir.join(LOCK_FILE_NAME);
        // Read-only and never created: a shared holder writes nothing, not even the lock file.
        let file = OpenOptions::new()
            .read(true)
            .open(&path)
            .map_err(|e| with_path("lock_shared", &path, e))?;
        match file.try_lock_shared() {
            Ok(()) => Ok(Box::new(FsLock {
                _file: file,
                _path: path,
            })),
            Err(TryLockError::WouldBlock) => Err(io::Error::new(
                ErrorKind::WouldBlock,
                format!("lock_shared {}: held by a writer", path.display()),
            )),
            Err(TryLockError::Error(e)) => Err(with_path("lock_shared", &path, e)),
        }
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists().map_err(|e| with_path("exists", path, e))
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("hard_link {} -> {}: {e}", from.display(), to.display()),
            )
        })
    }
}

/// A file opened through [`FsDisk`] (appending when writable).
#[derive(Debug)]
struct FsFile {
    file: File,
    path: PathBuf,
}

impl DiskFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        let meta = self
            .file
            .metadata()
            .map_err(|e| with_path("len", &self.path, e))?;
        Ok(meta.len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut done = 0usize;
        while let Some(rest) = buf.get_mut(done..) {
            if rest.is_empty() {
                break;
            }
            let at = offset.saturating_add(done as u64);
            match self.file.read_at(rest, at) {
                Ok(0) => break,
                Ok(n) => done = done.saturating_add(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(with_path("read_at", &self.path, e)),
            }
        }
        Ok(done)
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| with_path("append", &self.path, e))
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| with_path("truncate", &self.path, e))
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file
            .sync_data()
            .map_err(|e| with_path("sync_data", &self.path, e))
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.file
            .sync_all()
            .map_err(|e| with_path("sync_all", &self.path, e))
    }
}

/// A held `flock` (exclusive or shared) on `dir/LOCK`; closing the file (drop) releases it.
#[derive(Debug)]
struct FsLock {
    _file: File,
    _path: PathBuf,
}

impl DiskLock for FsLock {}
