//! `StoreConfig`: where the store lives and how it behaves.
//!
//! The configuration has upstream's shape (public fields, grouped in [`BatchConfig`],
//! [`WriterConfig`], [`SyncConfig`] and [`IndexConfig`]) and its builder methods; this crate's
//! own settings (clock, id and entropy sources, the disk, deferred-flush interval, lifecycle
//! events, ...) sit in [`StoreConfig::extra`], set through builder methods. Nothing is checked
//! while a configuration is built: `Store::open` checks the whole of it, however it was made
//! (builder calls or a struct literal), and refuses invalid values with
//! `StoreError::Configuration` naming the field. What the writer and readers then use is the
//! checked form ([`Settings`]), never the configuration itself.

use crate::codec::FRAME_BYTES_LIMIT;
use crate::coordinate::COORDINATE_PART_MAX_BYTES;
use crate::env::{
    Clock, Disk, Entropy, FnClock, FsDisk, IdSource, OsEntropy, RandomIds, SystemClock,
};
use crate::error::StoreError;
use crate::mutant::Bugs;
#[cfg(batpak_mutant)]
use crate::mutant::Mutant;
use crate::payload_registry::EventPayloadValidation;
use crate::signing::SigningKey;
use crate::sync::StdArc;
use crate::writer::durability::Durability;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use super::config_compat::{IndexConfig, RestartPolicy};
pub use crate::log::segment::SyncMode;

/// Room a frame needs beyond the payload: header fields and two coordinate parts.
pub(crate) const FRAME_OVERHEAD_MAX: u64 = 256 + 2 * COORDINATE_PART_MAX_BYTES as u64;

/// Default largest payload of one event: 16 MiB, upstream's default.
pub const SINGLE_APPEND_MAX_BYTES_DEFAULT: u32 = 16 * 1024 * 1024;

/// Largest payload limit a configuration may set: 64 MiB, upstream's maximum.
pub const SINGLE_APPEND_MAX_BYTES_LIMIT: u32 = 64 * 1024 * 1024;

/// Default number of segment files kept open for reading (upstream's `fd_budget` default).
pub const FD_BUDGET_DEFAULT: usize = 64;

/// Smallest stack the writer thread gets: a smaller [`WriterConfig::stack_size`] is raised
/// to it, so a configuration upstream accepts cannot overflow the writer's stack here.
pub const WRITER_STACK_MIN_BYTES: usize = 256 * 1024;

/// Batch limits and group commit (upstream's `BatchConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Largest number of events in one batch (default 10,000; at least 1).
    pub max_size: u32,
    /// Largest total payload of one batch, in bytes (default 64 MiB).
    pub max_bytes: u32,
    /// Most commands the writer drains into one group (one write, one fsync); default 1024.
    /// `0` drains whatever is queued, at most the writer queue's capacity. Group commit never
    /// needs idempotency keys here (each command's outcome is exact).
    pub group_commit_max_batch: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_size: 10_000,
            max_bytes: 64 * 1024 * 1024,
            group_commit_max_batch: 1024,
        }
    }
}

/// The writer thread: its queue, stack, and what happens when it stops (upstream's
/// `WriterConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// Capacity of the writer's command queue (default 4096; at least 1).
    pub channel_capacity: usize,
    /// Queue fill, in percent of `channel_capacity` (rounded up), from which `try_submit*`
    /// refuses with `Backpressure` (default 75; 1 to 100).
    /// [`StoreConfig::with_writer_pressure_threshold`] sets an exact queue length instead.
    pub pressure_retry_threshold_pct: u8,
    /// The writer thread's stack size (`None`: the platform's default for new threads); at
    /// least [`WRITER_STACK_MIN_BYTES`] is used.
    pub stack_size: Option<usize>,
    /// Accepted for upstream's shape, without effect: upstream restarts a panicked writer
    /// thread; this writer does not panic on input (clippy denies it), and if it stops for any
    /// reason every pending and later call answers `WriterCrashed` rather than running on
    /// with a writer whose state may be inconsistent.
    pub restart_policy: RestartPolicy,
    /// Accepted for upstream's shape, without effect: at shutdown this writer answers every
    /// queued command (the queue is bounded by `channel_capacity`), upstream at most this
    /// many.
    pub shutdown_drain_limit: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 4096,
            pressure_retry_threshold_pct: 75,
            stack_size: None,
            restart_policy: RestartPolicy::default(),
            shutdown_drain_limit: 1024,
        }
    }
}

/// When the log is synced (upstream's `SyncConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// `fsync` ([`SyncMode::SyncAll`]) or `fdatasync` ([`SyncMode::SyncData`], the default).
    pub mode: SyncMode,
    /// `1` (the default): an append is acknowledged only once durable (group commit).
    /// `n > 1`: deferred durability: appends are acknowledged (and visible) once written, and
    /// synced every `n` events or after the flush interval
    /// ([`StoreConfig::with_flush_interval`]), whichever comes first; a crash may lose
    /// acknowledged but unsynced events. `0` is refused.
    pub every_n_events: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            mode: SyncMode::SyncData,
            every_n_events: 1,
        }
    }
}

/// This crate's settings beyond upstream's configuration shape, set with the builder methods
/// of [`StoreConfig`] (`with_flush_interval`, `with_lifecycle_events`, `with_external_causes`,
/// `with_frame_max_bytes`, `with_writer_pressure_threshold`, `with_clock_source`,
/// `with_id_source`, `with_entropy_source`, `with_disk`). A struct literal keeps them with
/// `..StoreConfig::new(dir)`.
#[derive(Clone)]
pub struct ExtraConfig {
    flush_interval: Duration,
    writer_pressure_threshold: Option<usize>,
    /// Set by `with_frame_max_bytes`; otherwise derived from the payload limit.
    frame_max_bytes: Option<u32>,
    allow_external_causes: bool,
    lifecycle_events: bool,
    /// Set by `with_checkpoint_every_n_events` (0: the checkpoint is saved at close only).
    checkpoint_every: u64,
    /// Set by `with_clock_source`; wins over [`StoreConfig::clock`].
    clock: Option<StdArc<dyn Clock>>,
    ids: StdArc<dyn IdSource>,
    pub(crate) disk: StdArc<dyn Disk>,
    entropy: StdArc<dyn Entropy>,
    /// The seeded bug (mutant build only, see [`crate::mutant`]).
    bugs: Bugs,
    /// Where the TLA+ trace events go (set only with the feature `tla-trace`).
    trace: Option<StdArc<crate::trace::TraceSink>>,
    /// In-memory projection snapshots (builder in `store/projection/snapshots.rs`).
    pub(crate) projection_snapshots: Option<super::projection::SnapshotPolicy>,
}

impl Default for ExtraConfig {
    /// Deferred flushes every 50 ms, the pressure threshold from the percentage, the frame
    /// limit from the payload limit, no external causes, lifecycle events on, the system
    /// clock, UUIDv7 ids, real files and segment salts from the OS's entropy.
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(50),
            writer_pressure_threshold: None,
            frame_max_bytes: None,
            allow_external_causes: false,
            lifecycle_events: true,
            checkpoint_every: 0,
            clock: None,
            ids: StdArc::new(RandomIds::default()),
            disk: StdArc::new(FsDisk),
            entropy: StdArc::new(OsEntropy),
            bugs: Bugs::default(),
            trace: None,
            projection_snapshots: None,
        }
    }
}

impl fmt::Debug for ExtraConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtraConfig")
            .field("flush_interval", &self.flush_interval)
            .field("writer_pressure_threshold", &self.writer_pressure_threshold)
            .field("frame_max_bytes", &self.frame_max_bytes)
            .field("allow_external_causes", &self.allow_external_causes)
            .field("lifecycle_events", &self.lifecycle_events)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("clock", &self.clock)
            .field("disk", &self.disk)
            .field("projection_snapshots", &self.projection_snapshots)
            .finish_non_exhaustive()
    }
}

/// Store configuration: upstream's public fields and builder methods, plus this crate's own
/// settings in [`extra`](StoreConfig::extra).
///
/// Both ways of writing one are checked the same, at `Store::open`:
///
/// ```
/// use batpak::prelude::*;
/// use batpak::store::SyncConfig;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let built = StoreConfig::new(dir.path())
///     .with_segment_max_bytes(4096)
///     .with_sync_every_n_events(1);
/// let literal = StoreConfig {
///     data_dir: dir.path().to_path_buf(),
///     segment_max_bytes: 4096,
///     sync: SyncConfig { every_n_events: 1, ..SyncConfig::default() },
///     ..StoreConfig::new("")
/// };
/// assert_eq!(format!("{built:?}"), format!("{literal:?}"));
///
/// let bad = StoreConfig { sync: SyncConfig { every_n_events: 0, ..SyncConfig::default() }, ..literal };
/// let err = Store::open(bad).unwrap_err();
/// assert!(err.to_string().contains("sync.every_n_events"), "{err}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StoreConfig {
    /// The data directory (created if missing; an empty path is refused).
    pub data_dir: PathBuf,
    /// Roll to a new segment file when the active one would exceed this many bytes (default
    /// 64 MiB; at least 104; no upper bound: offsets are 64-bit).
    pub segment_max_bytes: u64,
    /// How many segment files readers keep open at most (default 64; at least 1).
    pub fd_budget: usize,
    /// How many notifications a lossy subscriber may fall behind (default 8192; at least 1).
    pub broadcast_capacity: usize,
    /// Largest payload of one event, in bytes: 1 to 64 MiB, default 16 MiB.
    pub single_append_max_bytes: u32,
    /// Batch limits and group commit.
    pub batch: BatchConfig,
    /// The writer thread.
    pub writer: WriterConfig,
    /// When the log is synced.
    pub sync: SyncConfig,
    /// Upstream's index and checkpoint switches (accepted; see [`IndexConfig`]).
    pub index: IndexConfig,
    /// Wall clock in microseconds since the Unix epoch (`None`: the system clock, or the
    /// clock set with [`StoreConfig::with_clock_source`]).
    pub clock: Option<StdArc<dyn Fn() -> i64 + Send + Sync>>,
    /// Receipt signing keys: the last one signs new receipts, every one verifies
    /// ([`crate::store::Store::verify_append_receipt`]), so keys can be rotated.
    pub signing_keys: Vec<SigningKey>,
    /// What `Store::open` does when two linked `#[derive(EventPayload)]` types claim one kind.
    pub event_payload_validation: EventPayloadValidation,
    /// This crate's own settings (see [`ExtraConfig`]).
    pub extra: ExtraConfig,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("data_dir", &self.data_dir)
            .field("segment_max_bytes", &self.segment_max_bytes)
            .field("fd_budget", &self.fd_budget)
            .field("broadcast_capacity", &self.broadcast_capacity)
            .field("single_append_max_bytes", &self.single_append_max_bytes)
            .field("batch", &self.batch)
            .field("writer", &self.writer)
            .field("sync", &self.sync)
            .field("index", &self.index)
            .field("clock", &self.clock.as_ref().map(|_| "Fn() -> i64"))
            .field("signing_keys", &self.signing_keys)
            .field("event_payload_validation", &self.event_payload_validation)
            .field("extra", &self.extra)
            .finish()
    }
}

impl StoreConfig {
    /// Defaults: 64 MiB segments, durable acknowledgements (sync every event, with group
    /// commit), `fdatasync`, a 4096-command writer queue, 16 MiB payloads (upstream's
    /// default), batches of at most 10,000 events / 64 MiB, 64 segment files open for reading,
    /// real files, the system clock, UUIDv7 ids and segment salts from the OS's entropy
    /// ([`crate::env::RandomIds`], [`crate::env::OsEntropy`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: dir.into(),
            segment_max_bytes: 64 * 1024 * 1024,
            fd_budget: FD_BUDGET_DEFAULT,
            broadcast_capacity: 8192,
            single_append_max_bytes: SINGLE_APPEND_MAX_BYTES_DEFAULT,
            batch: BatchConfig::default(),
            writer: WriterConfig::default(),
            sync: SyncConfig::default(),
            index: IndexConfig::default(),
            clock: None,
            signing_keys: Vec::new(),
            event_payload_validation: EventPayloadValidation::default(),
            extra: ExtraConfig::default(),
        }
    }

    /// How many notifications a lossy subscriber ([`crate::store::Store::subscribe_lossy`])
    /// may fall behind (default 8192). One that falls further skips ahead to the newest
    /// `capacity` notifications and counts the ones it skipped
    /// ([`crate::store::delivery::subscription::Subscription::missed`]); it is never
    /// disconnected, and the writer never waits for it. At least 1.
    pub fn with_broadcast_capacity(mut self, capacity: usize) -> Self {
        self.broadcast_capacity = capacity;
        self
    }

    /// Roll to a new segment file when the active one would exceed this many bytes (at least
    /// 104; no upper bound: offsets are 64-bit).
    pub fn with_segment_max_bytes(mut self, bytes: u64) -> Self {
        self.segment_max_bytes = bytes;
        self
    }

    /// [`SyncConfig::every_n_events`]: `1` (the default): an append is acknowledged only once
    /// durable (group commit). `n > 1`: deferred durability: appends are acknowledged (and
    /// visible) once written, and fsynced every `n` events or after the flush interval,
    /// whichever comes first; a crash may lose acknowledged but unsynced events. `frontier()`
    /// and `wait_for_durable` tell what is durable. `0` is refused.
    pub fn with_sync_every_n_events(mut self, n: u32) -> Self {
        self.sync.every_n_events = n;
        self
    }

    /// `fsync` (`SyncAll`) or `fdatasync` (`SyncData`, the default).
    pub fn with_sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync.mode = mode;
        self
    }

    /// Deferred mode: the longest time written events stay unsynced (default 50 ms; must be
    /// positive).
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.extra.flush_interval = interval;
        self
    }

    /// Capacity of the writer's command queue (at least 1).
    pub fn with_writer_channel_capacity(mut self, capacity: usize) -> Self {
        self.writer.channel_capacity = capacity;
        self
    }

    /// Queue length from which `try_submit*` refuses with `Backpressure` (default: 75% of the
    /// capacity, [`WriterConfig::pressure_retry_threshold_pct`]). Wins over the percentage.
    pub fn with_writer_pressure_threshold(mut self, threshold: usize) -> Self {
        self.extra.writer_pressure_threshold = Some(threshold);
        self
    }

    /// [`WriterConfig::pressure_retry_threshold_pct`] (1 to 100): the queue fill, in percent
    /// of its capacity, from which `try_submit*` refuses with `Backpressure`. Clears an exact
    /// threshold set with [`StoreConfig::with_writer_pressure_threshold`].
    pub fn with_writer_pressure_retry_threshold_pct(mut self, pct: u8) -> Self {
        self.writer.pressure_retry_threshold_pct = pct;
        self.extra.writer_pressure_threshold = None;
        self
    }

    /// [`WriterConfig::stack_size`]: the writer thread's stack (`None`: the platform's
    /// default); at least [`WRITER_STACK_MIN_BYTES`] is used.
    pub fn with_writer_stack_size(mut self, bytes: Option<usize>) -> Self {
        self.writer.stack_size = bytes;
        self
    }

    /// Largest payload of one event, in bytes (`u32`, upstream's argument type): 1 to 64 MiB
    /// (upstream's range), default 16 MiB. The largest frame follows from it (see
    /// [`StoreConfig::with_frame_max_bytes`]).
    pub fn with_single_append_max_bytes(mut self, bytes: u32) -> Self {
        self.single_append_max_bytes = bytes;
        self
    }

    /// Largest number of events in one batch (`u32`, upstream's argument type).
    pub fn with_batch_max_size(mut self, n: u32) -> Self {
        self.batch.max_size = n;
        self
    }

    /// Largest total payload of one batch, in bytes (`u32`, upstream's argument type).
    pub fn with_batch_max_bytes(mut self, bytes: u32) -> Self {
        self.batch.max_bytes = bytes;
        self
    }

    /// Most commands the writer drains into one group (one write, one fsync); `u32`,
    /// upstream's argument type. `0` drains whatever is queued (upstream's "unbounded"),
    /// which is at most the writer queue's capacity, so a group's memory stays bounded.
    pub fn with_group_commit_max_batch(mut self, n: u32) -> Self {
        self.batch.group_commit_max_batch = n;
        self
    }

    /// Wall clock in microseconds (upstream's signature): `Some` replaces any clock set
    /// before; `None` keeps the one set with [`StoreConfig::with_clock_source`], or the system
    /// clock.
    pub fn with_clock(mut self, clock: Option<StdArc<dyn Fn() -> i64 + Send + Sync>>) -> Self {
        if clock.is_some() {
            self.extra.clock = None;
        }
        self.clock = clock;
        self
    }

    /// Any [`Clock`] (deterministic tests: `ManualClock`); replaces any clock set before. The
    /// clock may step back or jump; event times never decrease (INV-HLC-MONOTONE,
    /// `spec/FORMAT.md`).
    pub fn with_clock_source(mut self, clock: StdArc<dyn Clock>) -> Self {
        self.clock = None;
        self.extra.clock = Some(clock);
        self
    }

    /// Any [`IdSource`] (deterministic tests: `CounterIds`).
    pub fn with_id_source(mut self, ids: StdArc<dyn IdSource>) -> Self {
        self.extra.ids = ids;
        self
    }

    /// Where segment salts come from (default: the OS; deterministic tests and models:
    /// `SeededEntropy`). See `spec/FORMAT.md`.
    pub fn with_entropy_source(mut self, entropy: StdArc<dyn Entropy>) -> Self {
        self.extra.entropy = entropy;
        self
    }

    /// Any [`Disk`] (tests and models: `SimDisk`).
    pub fn with_disk(mut self, disk: StdArc<dyn Disk>) -> Self {
        self.extra.disk = disk;
        self
    }

    /// Admit causation ids that name no event in this store (walks report them as external
    /// roots). Off by default (INV-CAUSAL).
    pub fn with_external_causes(mut self, allow: bool) -> Self {
        self.extra.allow_external_causes = allow;
        self
    }

    /// Largest frame body the writer produces (bytes). By default it is derived from the
    /// payload limit (payload plus room for the header fields and coordinates); set it only to
    /// go above that. It must leave that room, and may not exceed the format's limit
    /// ([`crate::codec::FRAME_BYTES_LIMIT`]). Each segment file records the limit it was
    /// written with, so a later open with a smaller one still reads every record.
    pub fn with_frame_max_bytes(mut self, bytes: u32) -> Self {
        self.extra.frame_max_bytes = Some(bytes);
        self
    }

    /// How many segment files readers keep open at most (default 64, upstream's
    /// `fd_budget`); least recently used ones are closed first. At least 1. The writer's
    /// own descriptors come on top: the active segment and the directory lock, and during a
    /// segment roll briefly two more (the new segment, and the directory it syncs). A roll
    /// that cannot get them closes the readers' descriptors and tries again, so reads never
    /// make the writer fail.
    pub fn with_fd_budget(mut self, fd_budget: usize) -> Self {
        self.fd_budget = fd_budget;
        self
    }

    /// Saves the recovery checkpoint every `n` records made durable as well as at a clean
    /// close (default 0: at close only). The checkpoint (the file `recovery.ckpt` in the data
    /// directory, on with [`StoreConfig::with_enable_checkpoint`], the default) holds the chain
    /// hash of every durable visible event, which the next open takes instead of computing it
    /// (about a third of an open's work); it is a cache that is validated against the
    /// segments and never changes what an open returns (see the crate's `ARCHITECTURE.md`,
    /// "Recovery checkpoint"). A periodic one helps the open after a crash or `SIGKILL`,
    /// which finds the last one saved and computes the hashes of what came after it.
    ///
    /// Each save rewrites the whole file (36 bytes per visible event, written and synced by the
    /// writer thread between two groups, which waits for it), so `n` trades the writer's
    /// pauses against the hashes a crashed store's next open computes.
    ///
    /// ```
    /// use batpak::prelude::*;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let config = StoreConfig::new(dir.path()).with_checkpoint_every_n_events(100_000);
    /// let store = Store::open(config.clone())?;
    /// let entity = Coordinate::new("account:1", "bank")?;
    /// store.append(&entity, EventKind::custom(1, 1), &"opened")?;
    /// store.close()?;
    /// assert!(dir.path().join("recovery.ckpt").exists());
    /// // The next open takes the saved hashes; the result is what a full scan gives.
    /// let store = Store::open(config)?;
    /// assert_eq!(store.stream("account:1").len(), 1);
    /// # store.close()?;
    /// # Ok(()) }
    /// ```
    pub fn with_checkpoint_every_n_events(mut self, n: u64) -> Self {
        self.extra.checkpoint_every = n;
        self
    }

    /// Whether the store records its own lifecycle (default `true`, as upstream): a writable
    /// open appends a [`EventKind::SYSTEM_OPEN_COMPLETED`](crate::event::EventKind) event once
    /// recovery is done, and an explicit `close()` a
    /// [`EventKind::SYSTEM_CLOSE_COMPLETED`](crate::event::EventKind) event before the writer
    /// stops, both at `batpak:store` / `batpak:lifecycle`
    /// ([`LIFECYCLE_ENTITY`](super::LIFECYCLE_ENTITY), [`LIFECYCLE_SCOPE`](super::LIFECYCLE_SCOPE)).
    ///
    /// They are ordinary events: they take sequences and count in `stats()`, and
    /// `Region::all()`, `by_scope("batpak:lifecycle")` and `by_fact` return them. Turn them off
    /// for a log that holds only the application's events.
    pub fn with_lifecycle_events(mut self, enabled: bool) -> Self {
        self.extra.lifecycle_events = enabled;
        self
    }

    /// Seeds a bug, for the invariant witnesses (mutant build only: `--cfg batpak_mutant`).
    #[cfg(batpak_mutant)]
    #[doc(hidden)]
    pub fn with_mutant(mut self, mutant: Mutant) -> Self {
        self.extra.bugs = Bugs::seed(mutant);
        self
    }

    /// Emits the store's TLA+ trace events into `sink` (feature `tla-trace`; see
    /// [`crate::trace`]).
    #[cfg(feature = "tla-trace")]
    pub fn with_trace_sink(mut self, sink: StdArc<crate::trace::TraceSink>) -> Self {
        self.extra.trace = Some(sink);
        self
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Checks the whole configuration and turns it into what the store runs with. Every
    /// refusal names the field (upstream's path for upstream's fields, the builder's name for
    /// this crate's own).
    pub(crate) fn settings(&self) -> Result<Settings, StoreError> {
        let bad = |m: String| Err(StoreError::Configuration(m));
        let x = &self.extra;
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir is empty".into());
        }
        if self.broadcast_capacity == 0 {
            return bad("broadcast_capacity must be at least 1".into());
        }
        if self.sync.every_n_events == 0 {
            return bad("sync.every_n_events must be at least 1".into());
        }
        if self.writer.channel_capacity == 0 {
            return bad("writer.channel_capacity must be at least 1".into());
        }
        let pct = self.writer.pressure_retry_threshold_pct;
        if x.writer_pressure_threshold.is_none() && !(1..=100).contains(&pct) {
            return bad(format!(
                "writer.pressure_retry_threshold_pct {pct} is not between 1 and 100"
            ));
        }
        if self.batch.max_size == 0 {
            return bad("batch.max_size must be at least 1".into());
        }
        if self.single_append_max_bytes == 0 {
            return bad("single_append_max_bytes must be at least 1".into());
        }
        if self.single_append_max_bytes > SINGLE_APPEND_MAX_BYTES_LIMIT {
            return bad(format!(
                "single_append_max_bytes {} is above the maximum {SINGLE_APPEND_MAX_BYTES_LIMIT} (64 MiB)",
                self.single_append_max_bytes
            ));
        }
        if self.fd_budget == 0 {
            return bad("fd_budget must be at least 1".into());
        }
        if x.flush_interval.is_zero() {
            return bad("flush_interval (with_flush_interval) must be positive".into());
        }
        let single_append_max_bytes = u64::from(self.single_append_max_bytes);
        let frame_max = x.frame_max_bytes.unwrap_or_else(|| {
            u32::try_from(single_append_max_bytes + FRAME_OVERHEAD_MAX).unwrap_or(u32::MAX)
        });
        if single_append_max_bytes + FRAME_OVERHEAD_MAX > u64::from(frame_max) {
            return bad(format!(
                "frame_max_bytes {frame_max} (with_frame_max_bytes) leaves no room for single_append_max_bytes {single_append_max_bytes} plus {FRAME_OVERHEAD_MAX} bytes of header",
            ));
        }
        if frame_max > FRAME_BYTES_LIMIT {
            return bad(format!(
                "frame_max_bytes {frame_max} (with_frame_max_bytes) is above the format's limit {FRAME_BYTES_LIMIT}"
            ));
        }
        let min_segment = crate::log::SEGMENT_HEADER_BYTES as u64 + 64;
        if self.segment_max_bytes < min_segment {
            return bad(format!(
                "segment_max_bytes {} is below the minimum {min_segment}",
                self.segment_max_bytes
            ));
        }
        let capacity = self.writer.channel_capacity;
        let pressure_threshold = x.writer_pressure_threshold.unwrap_or_else(|| {
            capacity
                .saturating_mul(usize::from(pct))
                .div_ceil(100)
                .max(1)
        });
        let clock: StdArc<dyn Clock> = match (&x.clock, &self.clock) {
            (Some(c), _) => StdArc::clone(c),
            (None, Some(f)) => StdArc::new(FnClock(StdArc::clone(f))),
            (None, None) => StdArc::new(SystemClock),
        };
        let group_max = match self.batch.group_commit_max_batch {
            0 => capacity,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        Ok(Settings {
            dir: self.data_dir.clone(),
            segment_max_bytes: self.segment_max_bytes,
            sync_every_n_events: self.sync.every_n_events,
            sync_mode: self.sync.mode,
            flush_interval: x.flush_interval,
            writer_channel_capacity: capacity,
            pressure_threshold,
            writer_stack_size: self
                .writer
                .stack_size
                .map(|s| s.max(WRITER_STACK_MIN_BYTES)),
            single_append_max_bytes,
            batch_max_size: usize::try_from(self.batch.max_size).unwrap_or(usize::MAX),
            batch_max_bytes: u64::from(self.batch.max_bytes),
            group_max,
            frame_max,
            fd_budget: self.fd_budget,
            checkpoint: self.index.enable_checkpoint,
            checkpoint_every: x.checkpoint_every,
            allow_external_causes: x.allow_external_causes,
            lifecycle_events: x.lifecycle_events,
            broadcast_capacity: self.broadcast_capacity,
            clock,
            ids: StdArc::clone(&x.ids),
            disk: StdArc::clone(&x.disk),
            entropy: StdArc::clone(&x.entropy),
            bugs: x.bugs,
            trace: x.trace.clone(),
            projection_snapshots: x.projection_snapshots,
            event_payload_validation: self.event_payload_validation,
            signing_keys: self.signing_keys.clone(),
        })
    }
}

/// A checked configuration: what a store runs with (built only by
/// [`StoreConfig::settings`], so every value in it passed the checks).
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) dir: PathBuf,
    pub(crate) segment_max_bytes: u64,
    pub(crate) sync_every_n_events: u32,
    pub(crate) sync_mode: SyncMode,
    pub(crate) flush_interval: Duration,
    pub(crate) writer_channel_capacity: usize,
    /// Queue length from which `try_submit*` refuses.
    pub(crate) pressure_threshold: usize,
    pub(crate) writer_stack_size: Option<usize>,
    pub(crate) single_append_max_bytes: u64,
    pub(crate) batch_max_size: usize,
    pub(crate) batch_max_bytes: u64,
    /// The writer's group size (`0` resolved to the queue's capacity).
    pub(crate) group_max: usize,
    /// The largest frame body the writer produces.
    pub(crate) frame_max: u32,
    pub(crate) fd_budget: usize,
    /// Save and use the recovery checkpoint (upstream's `index.enable_checkpoint`).
    pub(crate) checkpoint: bool,
    /// Save one every this many durable records too (0: only at close).
    pub(crate) checkpoint_every: u64,
    pub(crate) allow_external_causes: bool,
    pub(crate) lifecycle_events: bool,
    /// How far a lossy subscriber may fall behind before it skips ahead.
    pub(crate) broadcast_capacity: usize,
    pub(crate) clock: StdArc<dyn Clock>,
    pub(crate) ids: StdArc<dyn IdSource>,
    pub(crate) disk: StdArc<dyn Disk>,
    pub(crate) entropy: StdArc<dyn Entropy>,
    /// The seeded bug (mutant build only, see [`crate::mutant`]).
    pub(crate) bugs: Bugs,
    /// Where the TLA+ trace events go (set only with the feature `tla-trace`).
    pub(crate) trace: Option<StdArc<crate::trace::TraceSink>>,
    /// What `open` does about clashing payload kinds.
    pub(crate) event_payload_validation: EventPayloadValidation,
    /// Verify receipts; the last one signs.
    pub(crate) signing_keys: Vec<SigningKey>,
    /// In-memory projection snapshots.
    pub(crate) projection_snapshots: Option<super::projection::SnapshotPolicy>,
}

impl Settings {
    /// What an acknowledgement promises: immediate for `sync_every_n_events` 1, deferred
    /// above.
    pub(crate) fn durability(&self) -> Durability {
        Durability::from_sync_every(self.sync_every_n_events, self.flush_interval)
    }

    /// The key that signs new receipts.
    pub(crate) fn signer(&self) -> Option<&SigningKey> {
        self.signing_keys.last()
    }
}
