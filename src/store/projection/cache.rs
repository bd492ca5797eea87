//! The on-disk projection cache: upstream's [`ProjectionCache`] trait, [`NoCache`] and the
//! file-backed [`NativeCache`].
//!
//! Unlike upstream (TIER2 D2, D9): the key is a blake3 hash of the store's identity, the
//! target, the projection's type *name*, its schema version and its kinds (stable across
//! builds, never shared by two stores); a `NativeCache` file name is the key's 64 hex digits
//! whatever the entity's length; a row is written only at an event at or below the durable
//! frontier, and checked against today's stream before it is used.

use super::super::{Open, ReadOnly, Store, StoreConfig};
use crate::env::{Disk, FsDisk};
use crate::error::StoreError;
use crate::sync::StdArc;
use std::path::{Component, Path, PathBuf};

/// What a cache backend can do.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct CacheCapabilities {
    /// The backend uses [`ProjectionCache::prefetch`] hints.
    pub supports_prefetch: bool,
    /// The backend stores nothing ([`NoCache`]).
    pub is_noop: bool,
}

impl CacheCapabilities {
    /// Nothing special.
    pub const fn none() -> Self {
        Self {
            supports_prefetch: false,
            is_noop: false,
        }
    }

    /// Uses prefetch hints.
    pub const fn prefetch_hints() -> Self {
        Self {
            supports_prefetch: true,
            is_noop: false,
        }
    }
}

/// What a cache row says about its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheMeta {
    /// The global sequence of the last event folded into the state.
    pub watermark: u64,
    /// When the row was written (µs since the epoch, the store's clock).
    pub cached_at_us: i64,
    /// A monotonic reading when written, if the backend keeps one.
    pub cached_at_mono_ns: Option<i64>,
    /// The writing process's boot id, if the backend keeps one.
    pub process_boot_ns: Option<u64>,
}

/// A store for projection states keyed by opaque bytes (upstream's trait). The store
/// validates every row it reads, so a backend may lose, keep or return old rows freely; it
/// must only return a value it was given for that key.
pub trait ProjectionCache: Send + Sync + 'static {
    /// What the backend can do.
    fn capabilities(&self) -> CacheCapabilities;

    /// The row for `key`, if any.
    ///
    /// # Errors
    /// The backend's I/O error.
    fn get(&self, key: &[u8]) -> Result<Option<(Vec<u8>, CacheMeta)>, StoreError>;

    /// Stores a row for `key`, replacing any.
    ///
    /// # Errors
    /// The backend's I/O error.
    fn put(&self, key: &[u8], value: &[u8], meta: CacheMeta) -> Result<(), StoreError>;

    /// Removes every row whose key starts with `prefix`; returns how many.
    ///
    /// # Errors
    /// The backend's I/O error.
    fn delete_prefix(&self, prefix: &[u8]) -> Result<u64, StoreError>;

    /// Makes written rows durable.
    ///
    /// # Errors
    /// The backend's I/O error.
    fn sync(&self) -> Result<(), StoreError>;

    /// A hint that `key` will be read soon. Default: nothing.
    ///
    /// # Errors
    /// The backend's I/O error.
    fn prefetch(&self, _key: &[u8], _predicted_meta: CacheMeta) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A cache that keeps nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCache;

impl ProjectionCache for NoCache {
    fn capabilities(&self) -> CacheCapabilities {
        CacheCapabilities {
            supports_prefetch: false,
            is_noop: true,
        }
    }
    fn get(&self, _key: &[u8]) -> Result<Option<(Vec<u8>, CacheMeta)>, StoreError> {
        Ok(None)
    }
    fn put(&self, _key: &[u8], _value: &[u8], _meta: CacheMeta) -> Result<(), StoreError> {
        Ok(())
    }
    fn delete_prefix(&self, _prefix: &[u8]) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Row file layout: magic, watermark, cached_at_us, value length, blake3 of the value, the
/// value. A torn or foreign file fails the checks and reads as a miss.
const MAGIC: &[u8; 8] = b"BPKPROJ1";
const HEADER: usize = 8 + 8 + 8 + 8 + 32;
/// Longest key a `NativeCache` accepts (the store's keys are 32 bytes).
const KEY_MAX: usize = 64;

/// A cache of one file per row in a directory, through the [`Disk`] trait. File names are
/// the key in hex (64 characters for the store's 32-byte keys), so they never exceed a file
/// system's name limit; a row is written to a temporary file, synced and renamed over the
/// old one, then the directory is synced.
#[derive(Debug, Clone)]
pub struct NativeCache {
    dir: PathBuf,
    disk: StdArc<dyn Disk>,
}

impl NativeCache {
    /// Opens (creating it if needed) the cache directory `path` on the real file system.
    ///
    /// # Errors
    /// Creating the directory failed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with_disk(path, StdArc::new(FsDisk))
    }

    /// [`NativeCache::open`] on `disk` (a store's `Disk`, or a simulated one in tests).
    ///
    /// # Errors
    /// Creating the directory failed.
    pub fn open_with_disk(
        path: impl AsRef<Path>,
        disk: StdArc<dyn Disk>,
    ) -> Result<Self, StoreError> {
        let dir = path.as_ref().to_path_buf();
        disk.create_dir_all(&dir)
            .map_err(|source| StoreError::IoAt {
                path: dir.clone(),
                op: "create projection cache directory",
                source,
            })?;
        Ok(Self { dir, disk })
    }

    fn file(&self, key: &[u8]) -> Result<PathBuf, StoreError> {
        if key.is_empty() || key.len() > KEY_MAX {
            return Err(StoreError::Configuration(format!(
                "projection cache key of {} bytes: NativeCache takes 1..={KEY_MAX}",
                key.len()
            )));
        }
        Ok(self.dir.join(hex(key)))
    }

    fn io(&self, path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::IoAt { path, op, source }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn le8(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl ProjectionCache for NativeCache {
    fn capabilities(&self) -> CacheCapabilities {
        CacheCapabilities::none()
    }

    fn get(&self, key: &[u8]) -> Result<Option<(Vec<u8>, CacheMeta)>, StoreError> {
        let path = self.file(key)?;
        let f = match self.disk.open(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&path, "open projection cache row")(e)),
        };
        let len = f
            .len()
            .map_err(self.io(&path, "read projection cache row"))? as usize;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = f
                .read_at(done as u64, buf.get_mut(done..).unwrap_or(&mut []))
                .map_err(self.io(&path, "read projection cache row"))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        let parsed = (|| {
            if buf.get(..8)? != MAGIC {
                return None;
            }
            let watermark = le8(&buf, 8)?;
            let cached_at_us = le8(&buf, 16)? as i64;
            let vlen = le8(&buf, 24)? as usize;
            let sum = buf.get(32..HEADER)?;
            let value = buf.get(HEADER..HEADER.checked_add(vlen)?)?;
            if buf.len() != HEADER + vlen || blake3::hash(value).as_bytes() != sum {
                return None;
            }
            Some((
                value.to_vec(),
                CacheMeta {
                    watermark,
                    cached_at_us,
                    cached_at_mono_ns: None,
                    process_boot_ns: None,
                },
            ))
        })();
        if parsed.is_none() {
            tracing::warn!(file = %path.display(), "projection cache row is damaged; ignored");
        }
        Ok(parsed)
    }

    fn put(&self, key: &[u8], value: &[u8], meta: CacheMeta) -> Result<(), StoreError> {
        let path = self.file(key)?;
        let tmp = path.with_extension("tmp");
        let mut row = Vec::with_capacity(HEADER + value.len());
        row.extend_from_slice(MAGIC);
        row.extend_from_slice(&meta.watermark.to_le_bytes());
        row.extend_from_slice(&meta.cached_at_us.to_le_bytes());
        row.extend_from_slice(&(value.len() as u64).to_le_bytes());
        row.extend_from_slice(blake3::hash(value).as_bytes());
        row.extend_from_slice(value);
        // A leftover from an interrupted put.
        if self.disk.exists(&tmp).unwrap_or(false) {
            self.disk
                .remove(&tmp)
                .map_err(self.io(&tmp, "remove stale projection cache file"))?;
        }
        let mut f = self
            .disk
            .create_new(&tmp)
            .map_err(self.io(&tmp, "create projection cache row"))?;
        f.append(&row)
            .map_err(self.io(&tmp, "write projection cache row"))?;
        f.sync_data()
            .map_err(self.io(&tmp, "sync projection cache row"))?;
        drop(f);
        self.disk
            .rename(&tmp, &path)
            .map_err(self.io(&path, "rename projection cache row"))?;
        self.disk
            .sync_dir(&self.dir)
            .map_err(self.io(&self.dir, "sync projection cache directory"))
    }

    fn delete_prefix(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let want = hex(prefix);
        let names = self
            .disk
            .list(&self.dir)
            .map_err(self.io(&self.dir, "list projection cache"))?;
        let mut n = 0;
        for name in names
            .iter()
            .filter(|n| n.starts_with(&want) && !n.ends_with(".tmp"))
        {
            let p = self.dir.join(name);
            self.disk
                .remove(&p)
                .map_err(self.io(&p, "remove projection cache row"))?;
            n += 1;
        }
        if n > 0 {
            self.disk
                .sync_dir(&self.dir)
                .map_err(self.io(&self.dir, "sync projection cache directory"))?;
        }
        Ok(n)
    }

    fn sync(&self) -> Result<(), StoreError> {
        // Every put is durable when it returns.
        Ok(())
    }
}

impl Store<Open> {
    /// Opens the store with a projection cache: `project` of an incremental type resumes
    /// from the cache's row when it matches today's stream, and writes rows at the durable
    /// frontier.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with_cache(
        config: StoreConfig,
        cache: Box<dyn ProjectionCache>,
    ) -> Result<Self, StoreError> {
        let store = Self::open(config)?;
        store.projections.set_cache(StdArc::from(cache));
        Ok(store)
    }

    /// Opens the store with a [`NativeCache`] in `cache_path` (on the store's `Disk`).
    ///
    /// # Errors
    /// As [`Store::open`]; creating the cache directory failed.
    pub fn open_with_native_cache(
        config: StoreConfig,
        cache_path: impl AsRef<Path>,
    ) -> Result<Self, StoreError> {
        let cache = NativeCache::open_with_disk(cache_path, StdArc::clone(&config.extra.disk))?;
        Self::open_with_cache(config, Box::new(cache))
    }
}

impl Store<ReadOnly> {
    /// [`Store::open_read_only`] with a projection cache (upstream's name): `project` of an
    /// incremental type resumes from the cache's row when it matches today's stream, and
    /// writes rows, but only at events of sealed segments (synced when the writer rolled past
    /// them): a read-only handle syncs nothing, and the last segment may hold bytes a crashed
    /// writer never synced. Nothing is written to the store's directory (INV-READ-ONLY): the
    /// cache must live elsewhere.
    ///
    /// # Errors
    /// As [`Store::open_read_only`].
    pub fn open_read_only_with_cache(
        config: StoreConfig,
        cache: Box<dyn ProjectionCache>,
    ) -> Result<Store<ReadOnly>, StoreError> {
        let store = Self::open_read_only(config)?;
        store.projections.set_cache(StdArc::from(cache));
        Ok(store)
    }

    /// [`Store::open_read_only_with_cache`] with a [`NativeCache`] in `cache_path` (on the
    /// store's `Disk`), created if missing once the store opened.
    ///
    /// ```
    /// use batpak::prelude::*;
    /// use batpak::store::ReadOnly;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let (data, cache) = (dir.path().join("data"), dir.path().join("cache"));
    /// Store::open(StoreConfig::new(&data))?.close()?;
    /// let reader = Store::<ReadOnly>::open_read_only_with_native_cache(
    ///     StoreConfig::new(&data),
    ///     &cache,
    /// )?;
    /// assert_eq!(reader.stream("order:1").len(), 0);
    /// // The cache may not live in the store's directory: a read-only open writes nothing there.
    /// assert!(matches!(
    ///     Store::<ReadOnly>::open_read_only_with_native_cache(
    ///         StoreConfig::new(&data),
    ///         data.join("cache"),
    ///     ),
    ///     Err(StoreError::Configuration(_))
    /// ));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Store::open_read_only`]; [`StoreError::Configuration`] if `cache_path` is the
    /// store's directory or inside it (paths compared as written, `.` and `..` resolved, not
    /// through symbolic links), checked before anything is opened; creating the cache
    /// directory failed.
    pub fn open_read_only_with_native_cache(
        config: StoreConfig,
        cache_path: impl AsRef<Path>,
    ) -> Result<Store<ReadOnly>, StoreError> {
        let cache_path = cache_path.as_ref();
        let dir = config.data_dir.clone();
        if within(cache_path, &dir) {
            return Err(StoreError::Configuration(format!(
                "projection cache {} is inside the store directory {}: a read-only open writes \
                 nothing there (INV-READ-ONLY); put the cache elsewhere",
                cache_path.display(),
                dir.display()
            )));
        }
        let store = Self::open_read_only(config)?;
        let cache = NativeCache::open_with_disk(cache_path, StdArc::clone(&store.cfg.disk))?;
        store.projections.set_cache(StdArc::new(cache));
        tracing::info!(
            dir = %dir.display(),
            cache = %cache_path.display(),
            "read-only store with a projection cache; rows only at events of sealed segments"
        );
        Ok(store)
    }
}

/// `p` with `.` dropped and `..` applied to what precedes it.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Whether `path` is `dir` or lies inside it, comparing the paths as written (made absolute
/// against the working directory when only one of them is).
fn within(path: &Path, dir: &Path) -> bool {
    let (mut a, mut b) = (path.to_path_buf(), dir.to_path_buf());
    if a.is_absolute() != b.is_absolute() {
        if let (Ok(x), Ok(y)) = (std::path::absolute(&a), std::path::absolute(&b)) {
            (a, b) = (x, y);
        }
    }
    lexical(&a).starts_with(lexical(&b))
}
