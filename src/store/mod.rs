//! The public API: [`Store`] and its configuration ([`StoreConfig`]). The source is split by
//! concern: opening and closing (`open.rs`), handing commands to the writer (`send.rs`),
//! writes (`write.rs`: append, submit, batch, outbox, visibility fence), waiting for
//! durability (`wait.rs`), reads (`read.rs`, written once for every `Store<S>`) and what the
//! store reports about itself (`stats.rs`).

mod applied;
mod batch;
mod compaction;
mod config;
mod config_compat;
pub mod delivery;
mod fence;
mod flow;
mod lifecycle;
pub(crate) mod open;
mod outbox;
pub mod projection;
mod read;
mod read_only;
mod send;
mod snapshot;
mod stats;
mod ticket;
mod transition;
mod trust;
mod wait;
mod write;

/// Upstream's path for the compaction result types (`store::segment::{CompactionOutcome,
/// CompactionResult}`); this crate's segment internals are not public.
pub mod segment {
    pub use super::compaction::{CompactionOutcome, CompactionResult};
}

pub use crate::signing::SigningKey;
pub use batch::BatchAppendItem;
pub use compaction::{
    CompactionConfig, CompactionOutcome, CompactionResult, CompactionStrategy, RetentionPredicate,
};
pub use config::{
    BatchConfig, ExtraConfig, IndexConfig, RestartPolicy, StoreConfig, SyncConfig, SyncMode,
    WriterConfig, FD_BUDGET_DEFAULT, SINGLE_APPEND_MAX_BYTES_DEFAULT,
    SINGLE_APPEND_MAX_BYTES_LIMIT, WRITER_STACK_MIN_BYTES,
};
pub use delivery::{
    AtLeastOnce, CursorGapConfig, CursorWorkerAction, CursorWorkerConfig, CursorWorkerHandle,
    GapObservation, MultiDispatchError, MultiReactive, ReactionBatch, ReactorConfig, ReactorError,
    TypedReactive, TypedReactorHandle,
};
pub use delivery::{
    CheckpointId, Consumer, ConsumerInfo, Cursor, IdempotencyKey, Notification, ObservedOnce,
    RecvError, Subscription, SubscriptionOps,
};
pub use fence::VisibilityFence;
pub use lifecycle::{CloseCompleted, OpenCompleted, LIFECYCLE_ENTITY, LIFECYCLE_SCOPE};
pub use outbox::Outbox;
pub use projection::{
    Aggregate, CacheCapabilities, CacheMeta, ExecuteError, Freshness, NativeCache, NoCache,
    ProjectionCache, ProjectionWatcher, SnapshotPolicy, WatcherError,
};
pub use ticket::{AppendTicket, BatchAppendTicket};

pub use crate::append::{DenialReceipt, DurabilityGate, HlcPoint, WatermarkKind};
pub use crate::error::{BatchStage, CorruptionDetail, StoreError, StoreLockMode};
pub use crate::guard::DenialRecord;
pub use crate::index::IndexEntry;
pub use crate::writer::{AppendOptions, AppendReceipt, CausationRef};

pub use crate::log::{RecoveryReport, TornTail};

use crate::env::DiskLock;
use crate::event::EventKind;
use crate::log::{self, Catalog};
use crate::sync::channel::Sender;
use crate::sync::{Arc, Mutex, StdArc};
use crate::writer::observe::Observer;
use crate::writer::shared::Shared;
use crate::writer::Command;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::marker::PhantomData;

/// Marker: a store open for reading and writing.
#[derive(Debug, Clone, Copy)]
pub struct Open;

/// Marker: a store that [`Store::close`] shut down cleanly (the writer drained and synced,
/// the lock released). Upstream's typestate marker; it carries nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Marker: a store open for reading only ([`Store::<ReadOnly>::open_read_only`]): every read,
/// no write, no writer thread, a shared directory lock.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Open {}
    impl Sealed for super::ReadOnly {}
}

/// The state of a [`Store`]: [`Open`] or [`ReadOnly`] (sealed: no other).
pub trait StoreState: sealed::Sealed + Sized {
    /// What `close()` does before the store stops (the writable store records
    /// `SYSTEM_CLOSE_COMPLETED`).
    #[doc(hidden)]
    fn before_close(store: &Store<Self>);
}

impl StoreState for Open {
    fn before_close(store: &Store<Self>) {
        store.record_close();
    }
}

impl StoreState for ReadOnly {
    fn before_close(_: &Store<Self>) {}
}

/// What `frontier()` reports: the next sequence not yet accepted / written / durable /
/// visible (so every record below `durable` survives a crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    /// Records written to the log (possibly unsynced).
    pub written: u64,
    /// Records durable.
    pub durable: u64,
    /// Records published to readers (hidden units below it stay hidden).
    pub visible: u64,
}

/// Counters `stats()` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoreStats {
    /// Visible events.
    pub event_count: usize,
    /// Entities with visible events.
    pub entity_count: usize,
    /// Scopes with visible events.
    pub scope_count: usize,
    /// The frontier.
    pub frontier: Frontier,
    /// The next global sequence the writer assigns (every sequence below it is taken; equals
    /// `frontier.written`). Upstream's name.
    pub global_sequence: u64,
    /// Commands waiting in the writer queue.
    pub writer_queue_len: usize,
    /// Writer queue capacity.
    pub writer_queue_capacity: usize,
    /// The data directory.
    pub dir: std::path::PathBuf,
}

/// What `diagnostics()` reports: the counters, the configuration that shapes the log, and
/// what recovery found at open. For people and logs; fields may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreDiagnostics {
    /// Visible events.
    pub event_count: usize,
    /// Bytes the in-memory index holds for those events (fixed-width records, the id table,
    /// the position lists and side tables; interned coordinate strings aside): about 120 per
    /// event for events without correlation or causation ids.
    pub index_bytes: usize,
    /// The next global sequence the writer assigns (see [`StoreStats::global_sequence`]).
    pub global_sequence: u64,
    /// The visible frontier: events below it are published (hidden units below it stay
    /// hidden).
    pub visible_sequence: u64,
    /// The frontier.
    pub frontier: Frontier,
    /// The data directory.
    pub data_dir: std::path::PathBuf,
    /// Segment size at which the writer rolls to a new segment.
    pub segment_max_bytes: u64,
    /// Most segment files open for reading at once.
    pub fd_budget: usize,
    /// The sync policy: every how many events the writer fsyncs (1 = every acknowledged
    /// event is durable).
    pub sync_every_n_events: u32,
    /// How full the writer queue is.
    pub writer_pressure: WriterPressure,
    /// What recovery found at open.
    pub recovery: RecoveryReport,
}

/// How full the writer queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterPressure {
    /// Commands queued.
    pub queued: usize,
    /// Capacity.
    pub capacity: usize,
    /// From this length on `try_submit*` refuses.
    pub threshold: usize,
}

impl WriterPressure {
    /// Whether `try_submit*` would refuse now.
    pub fn is_saturated(&self) -> bool {
        self.queued >= self.threshold
    }
}

/// The event store. One per data directory (INV-EXCLUSIVE).
///
/// Dropping it without `close()` drains the writer queue, cancels an open fence, syncs and
/// releases the directory lock (INV-DROP).
pub struct Store<S = Open> {
    cfg: config::Settings,
    shared: Arc<Shared>,
    tx: Option<Sender<Command>>,
    writer: Option<crate::sync::thread::JoinHandle<()>>,
    /// The directory lock: exclusive for `Open`, shared (or none, for a copy without a lock
    /// file) for `ReadOnly`.
    lock: Option<Box<dyn DiskLock>>,
    catalog: StdArc<Catalog>,
    kinds: Mutex<HashMap<EventKind, &'static str>>,
    /// Held by a snapshot (and compaction): one of them at a time reads or replaces the
    /// segment files as a whole.
    ops: Mutex<()>,
    recovery: log::RecoveryReport,
    observer: Observer,
    /// Durable consumers' checkpoints and which ids are live.
    checkpoints: delivery::consumer::Registry,
    /// Projection snapshots and the projection cache.
    projections: projection::Projections,
    _state: PhantomData<S>,
}

impl<S> std::fmt::Debug for Store<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.cfg.dir).finish()
    }
}

/// Upstream's module path for the typed reactor's handle and error
/// (`batpak::store::reactor_typed::TypedReactorHandle`); the items live in
/// [`delivery::reactor`].
pub mod reactor_typed {
    pub use super::delivery::reactor::{ReactorConfig, ReactorError, TypedReactorHandle};
}
