//! `StoreConfig`: where the store lives and how it behaves. Invalid values are refused at
//! `Store::open` with `StoreError::Configuration`.

use crate::codec::FRAME_BYTES_LIMIT;
use crate::coordinate::COORDINATE_PART_MAX_BYTES;
use crate::env::{Clock, Disk, Entropy, FsDisk, IdSource, OsEntropy, RandomIds, SystemClock};
use crate::error::StoreError;
use crate::mutant::Bugs;
#[cfg(batpak_mutant)]
use crate::mutant::Mutant;
use crate::sync::StdArc;
use crate::writer::durability::Durability;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::log::segment::SyncMode;

/// Room a frame needs beyond the payload: header fields and two coordinate parts.
pub(crate) const FRAME_OVERHEAD_MAX: u64 = 256 + 2 * COORDINATE_PART_MAX_BYTES as u64;

/// Default largest payload of one event: 16 MiB, upstream's default.
pub const SINGLE_APPEND_MAX_BYTES_DEFAULT: u32 = 16 * 1024 * 1024;

/// Largest payload limit a configuration may set: 64 MiB, upstream's maximum.
pub const SINGLE_APPEND_MAX_BYTES_LIMIT: u32 = 64 * 1024 * 1024;

/// Default number of segment files kept open for reading (upstream's `fd_budget` default).
pub const FD_BUDGET_DEFAULT: usize = 64;

/// Store configuration (builder style).
#[derive(Clone)]
pub struct StoreConfig {
    pub(crate) dir: PathBuf,
    pub(crate) segment_max_bytes: u64,
    pub(crate) sync_every_n_events: u32,
    pub(crate) sync_mode: SyncMode,
    pub(crate) flush_interval: Duration,
    pub(crate) writer_channel_capacity: usize,
    pub(crate) writer_pressure_threshold: Option<usize>,
    pub(crate) single_append_max_bytes: u64,
    pub(crate) batch_max_size: usize,
    pub(crate) batch_max_bytes: u64,
    pub(crate) group_commit_max_batch: usize,
    /// Set by `with_frame_max_bytes`; otherwise derived from the payload limit.
    pub(crate) frame_max_bytes: Option<u32>,
    pub(crate) fd_budget: usize,
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
    /// What `open` does about clashing payload kinds (builder in `store/trust.rs`).
    pub(crate) event_payload_validation: crate::payload_registry::EventPayloadValidation,
    /// Signs every receipt when set.
    pub(crate) signing_key: Option<crate::signing::SigningKey>,
    /// In-memory projection snapshots (builder in `store/projection/snapshots.rs`).
    pub(crate) projection_snapshots: Option<super::projection::SnapshotPolicy>,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("dir", &self.dir)
            .field("segment_max_bytes", &self.segment_max_bytes)
            .field("sync_every_n_events", &self.sync_every_n_events)
            .field("sync_mode", &self.sync_mode)
            .field("flush_interval", &self.flush_interval)
            .field("writer_channel_capacity", &self.writer_channel_capacity)
            .field("single_append_max_bytes", &self.single_append_max_bytes)
            .field("batch_max_size", &self.batch_max_size)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("group_commit_max_batch", &self.group_commit_max_batch)
            .field("frame_max_bytes", &self.frame_max_bytes)
            .field("fd_budget", &self.fd_budget)
            .field("disk", &self.disk)
            .field("event_payload_validation", &self.event_payload_validation)
            .field("signing_key", &self.signing_key)
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
            dir: dir.into(),
            segment_max_bytes: 64 * 1024 * 1024,
            sync_every_n_events: 1,
            sync_mode: SyncMode::SyncData,
            flush_interval: Duration::from_millis(50),
            writer_channel_capacity: 4096,
            writer_pressure_threshold: None,
            single_append_max_bytes: u64::from(SINGLE_APPEND_MAX_BYTES_DEFAULT),
            batch_max_size: 10_000,
            batch_max_bytes: 64 * 1024 * 1024,
            group_commit_max_batch: 1024,
            frame_max_bytes: None,
            fd_budget: FD_BUDGET_DEFAULT,
            allow_external_causes: false,
            lifecycle_events: true,
            broadcast_capacity: 8192,
            clock: StdArc::new(SystemClock),
            ids: StdArc::new(RandomIds::default()),
            disk: StdArc::new(FsDisk),
            entropy: StdArc::new(OsEntropy),
            bugs: Bugs::default(),
            trace: None,
            event_payload_validation: Default::default(),
            signing_key: None,
            projection_snapshots: None,
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

    /// `1` (the default): an append is acknowledged only once durable (group commit).
    /// `n > 1`: deferred durability: appends are acknowledged (and visible) once written, and
    /// fsynced every `n` events or after the flush interval, whichever comes first; a crash
    /// may lose acknowledged but unsynced events. `frontier()` and `wait_for_durable` tell
    /// what is durable. `0` is refused.
    pub fn with_sync_every_n_events(mut self, n: u32) -> Self {
        self.sync_every_n_events = n;
        self
    }

    /// `fsync` (`SyncAll`) or `fdatasync` (`SyncData`, the default).
    pub fn with_sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }

    /// Deferred mode: the longest time written events stay unsynced (default 50 ms).
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Capacity of the writer's command queue (at least 1).
    pub fn with_writer_channel_capacity(mut self, capacity: usize) -> Self {
        self.writer_channel_capacity = capacity;
        self
    }

    /// Queue length from which `try_submit*` refuses with `Backpressure` (default: 3/4 of the
    /// capacity).
    pub fn with_writer_pressure_threshold(mut self, threshold: usize) -> Self {
        self.writer_pressure_threshold = Some(threshold);
        self
    }

    /// Largest payload of one event, in bytes (`u32`, upstream's argument type): 1 to 64 MiB
    /// (upstream's range), default 16 MiB. The largest frame follows from it (see
    /// [`StoreConfig::with_frame_max_bytes`]).
    pub fn with_single_append_max_bytes(mut self, bytes: u32) -> Self {
        self.single_append_max_bytes = u64::from(bytes);
        self
    }

    /// Largest number of events in one batch (`u32`, upstream's argument type).
    pub fn with_batch_max_size(mut self, n: u32) -> Self {
        self.batch_max_size = usize::try_from(n).unwrap_or(usize::MAX);
        self
    }

    /// Largest total payload of one batch, in bytes (`u32`, upstream's argument type).
    pub fn with_batch_max_bytes(mut self, bytes: u32) -> Self {
        self.batch_max_bytes = u64::from(bytes);
        self
    }

    /// Most commands the writer drains into one group (one write, one fsync); `u32`,
    /// upstream's argument type. `0` drains whatever is queued (upstream's "unbounded"),
    /// which is at most the writer queue's capacity, so a group's memory stays bounded.
    pub fn with_group_commit_max_batch(mut self, n: u32) -> Self {
        self.group_commit_max_batch = usize::try_from(n).unwrap_or(usize::MAX);
        self
    }

    /// Wall clock in microseconds (upstream's signature); `None` keeps the system clock.
    pub fn with_clock(mut self, clock: Option<StdArc<dyn Fn() -> i64 + Send + Sync>>) -> Self {
        if let Some(f) = clock {
            self.clock = StdArc::new(crate::env::FnClock(f));
        }
        self
    }

    /// Any [`Clock`] (deterministic tests: `ManualClock`). The clock may step back or jump;
    /// event times never decrease (INV-HLC-MONOTONE, `spec/FORMAT.md`).
    pub fn with_clock_source(mut self, clock: StdArc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Any [`IdSource`] (deterministic tests: `CounterIds`).
    pub fn with_id_source(mut self, ids: StdArc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// Where segment salts come from (default: the OS; deterministic tests and models:
    /// `SeededEntropy`). See `spec/FORMAT.md`.
    pub fn with_entropy_source(mut self, entropy: StdArc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Any [`Disk`] (tests and models: `SimDisk`).
    pub fn with_disk(mut self, disk: StdArc<dyn Disk>) -> Self {
        self.disk = disk;
        self
    }

    /// Admit causation ids that name no event in this store (walks report them as external
    /// roots). Off by default (INV-CAUSAL).
    pub fn with_external_causes(mut self, allow: bool) -> Self {
        self.allow_external_causes = allow;
        self
    }

    /// Largest frame body the writer produces (bytes). By default it is derived from the
    /// payload limit (payload plus room for the header fields and coordinates); set it only to
    /// go above that. It must leave that room, and may not exceed the format's limit
    /// ([`crate::codec::FRAME_BYTES_LIMIT`]). Each segment file records the limit it was
    /// written with, so a later open with a smaller one still reads every record.
    pub fn with_frame_max_bytes(mut self, bytes: u32) -> Self {
        self.frame_max_bytes = Some(bytes);
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
        self.lifecycle_events = enabled;
        self
    }

    /// Seeds a bug, for the invariant witnesses (mutant build only: `--cfg batpak_mutant`).
    #[cfg(batpak_mutant)]
    #[doc(hidden)]
    pub fn with_mutant(mut self, mutant: Mutant) -> Self {
        self.bugs = Bugs::seed(mutant);
        self
    }

    /// Emits the store's TLA+ trace events into `sink` (feature `tla-trace`; see
    /// [`crate::trace`]).
    #[cfg(feature = "tla-trace")]
    pub fn with_trace_sink(mut self, sink: StdArc<crate::trace::TraceSink>) -> Self {
        self.trace = Some(sink);
        self
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The largest frame body the writer produces: the explicit setting, or the payload
    /// limit plus header room.
    pub(crate) fn frame_max(&self) -> u32 {
        self.frame_max_bytes.unwrap_or_else(|| {
            u32::try_from(self.single_append_max_bytes + FRAME_OVERHEAD_MAX).unwrap_or(u32::MAX)
        })
    }

    /// What an acknowledgement promises: immediate for `sync_every_n_events` 1, deferred
    /// above.
    pub(crate) fn durability(&self) -> Durability {
        Durability::from_sync_every(self.sync_every_n_events, self.flush_interval)
    }

    /// The writer's group size: `0` means "what is queued", at most the queue's capacity.
    pub(crate) fn group_max(&self) -> usize {
        match self.group_commit_max_batch {
            0 => self.writer_channel_capacity,
            n => n,
        }
    }

    pub(crate) fn pressure_threshold(&self) -> usize {
        self.writer_pressure_threshold
            .unwrap_or_else(|| (self.writer_channel_capacity * 3 / 4).max(1))
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Configuration(m));
        if self.broadcast_capacity == 0 {
            return bad("broadcast_capacity must be at least 1".into());
        }
        if self.dir.as_os_str().is_empty() {
            return bad("data directory is empty".into());
        }
        if self.sync_every_n_events == 0 {
            return bad("sync_every_n_events must be at least 1".into());
        }
        if self.writer_channel_capacity == 0 {
            return bad("writer_channel_capacity must be at least 1".into());
        }
        if self.batch_max_size == 0 {
            return bad("batch_max_size must be at least 1".into());
        }
        if self.single_append_max_bytes == 0 {
            return bad("single_append_max_bytes must be at least 1".into());
        }
        if self.single_append_max_bytes > u64::from(SINGLE_APPEND_MAX_BYTES_LIMIT) {
            return bad(format!(
                "single_append_max_bytes {} is above the maximum {SINGLE_APPEND_MAX_BYTES_LIMIT} (64 MiB)",
                self.single_append_max_bytes
            ));
        }
        if self.fd_budget == 0 {
            return bad("fd_budget must be at least 1".into());
        }
        if self.flush_interval.is_zero() {
            return bad("flush_interval must be positive".into());
        }
        let frame_max = self.frame_max();
        if self.single_append_max_bytes + FRAME_OVERHEAD_MAX > u64::from(frame_max) {
            return bad(format!(
                "frame_max_bytes {frame_max} leaves no room for single_append_max_bytes {} plus {FRAME_OVERHEAD_MAX} bytes of header",
                self.single_append_max_bytes
            ));
        }
        if frame_max > FRAME_BYTES_LIMIT {
            return bad(format!(
                "frame_max_bytes {frame_max} is above the format's limit {FRAME_BYTES_LIMIT}"
            ));
        }
        let min_segment = crate::log::SEGMENT_HEADER_BYTES as u64 + 64;
        if self.segment_max_bytes < min_segment {
            return bad(format!(
                "segment_max_bytes {} is below the minimum {min_segment}",
                self.segment_max_bytes
            ));
        }
        Ok(())
    }
}
