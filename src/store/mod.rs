//! The public API: `Store<Open>`, its configuration, writes (append, submit, batch, outbox,
//! visibility fence), reads and lifecycle.

mod batch;
mod config;
mod fence;
mod outbox;
mod ticket;

pub use batch::BatchAppendItem;
pub use config::{
    StoreConfig, SyncMode, FD_BUDGET_DEFAULT, SINGLE_APPEND_MAX_BYTES_DEFAULT,
    SINGLE_APPEND_MAX_BYTES_LIMIT,
};
pub use fence::VisibilityFence;
pub use outbox::Outbox;
pub use ticket::{AppendTicket, BatchAppendTicket};

pub use crate::error::{BatchStage, StoreError};
pub use crate::guard::DenialRecord;
pub use crate::index::IndexEntry;
pub use crate::writer::{AppendOptions, AppendReceipt, CausationRef};

use crate::coordinate::{Coordinate, Region};
use crate::env::{Disk, DiskLock};
use crate::event::{Event, EventHeader, EventKind, EventPayload, EventPosition, StoredEvent};
use crate::log::{self, Catalog, CutPolicy, SegmentWriter};
#[cfg(batpak_mutant)]
pub use crate::mutant::Mutant;
#[cfg(not(batpak_mutant))]
use crate::mutant::Mutant;
use crate::recovery::{recover, Recovered};
use crate::sync::atomic::Ordering;
use crate::sync::channel::{self, Sender, TrySendError};
use crate::sync::{Arc, Mutex, StdArc};
use crate::writer::observe::{Observe, Observer};
use crate::writer::shared::Shared;
use crate::writer::state::Limits;
use crate::writer::thread::{Writer, WriterConfig};
use crate::writer::{AppendItem, Command};
use batch::encode_payload;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;
use ticket::{wait_reply, FenceWatch};

/// Marker: a store open for reading and writing.
#[derive(Debug, Clone, Copy)]
pub struct Open;

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
    /// Commands waiting in the writer queue.
    pub writer_queue_len: usize,
    /// Writer queue capacity.
    pub writer_queue_capacity: usize,
    /// The data directory.
    pub dir: std::path::PathBuf,
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
    cfg: StoreConfig,
    shared: Arc<Shared>,
    tx: Option<Sender<Command>>,
    writer: Option<crate::sync::thread::JoinHandle<()>>,
    lock: Option<Box<dyn DiskLock>>,
    catalog: StdArc<Catalog>,
    kinds: Mutex<HashMap<EventKind, &'static str>>,
    recovery: log::RecoveryReport,
    observer: Observer,
    _state: PhantomData<S>,
}

impl<S> std::fmt::Debug for Store<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.cfg.dir).finish()
    }
}

impl Store<Open> {
    /// Opens (or creates) the store in `cfg`'s directory: takes the directory lock, recovers
    /// the log (cutting a torn tail, refusing corruption with the file and offset), syncs what
    /// it recovered (a crashed process may have left it in the page cache only, and it is
    /// reported durable from now on), rebuilds the index and starts the writer thread.
    ///
    /// If that sync fails, `open` fails with `IoAt { op: "sync recovered segment", .. }`, after
    /// rewriting the segment durably so that the next open trusts only bytes on the disk.
    pub fn open(cfg: StoreConfig) -> Result<Store<Open>, StoreError> {
        cfg.validate()?;
        let disk = StdArc::clone(&cfg.disk);
        let dir = cfg.dir.clone();
        let lock = create_and_lock_dir(&*disk, &dir)?;
        let Recovered {
            state,
            index,
            report,
        } = recover(&*disk, &dir, CutPolicy::OnDisk, cfg.bugs)?;
        let observer = Observer::new(cfg.trace.clone());
        observer.recover(&report, &index);
        let catalog = StdArc::new(Catalog::new(
            StdArc::clone(&disk),
            dir.clone(),
            cfg.fd_budget,
        ));
        let relief = StdArc::clone(&catalog);
        let seg_opts = log::SegmentOptions {
            segment_max_bytes: cfg.segment_max_bytes,
            sync_mode: cfg.sync_mode,
            frame_max: cfg.frame_max(),
            entropy: StdArc::clone(&cfg.entropy),
            fd_relief: Some(StdArc::new(move || relief.release())),
        };
        let mut seg = match report.active {
            Some((id, len)) => SegmentWriter::reopen(StdArc::clone(&disk), &dir, id, len, seg_opts),
            None => SegmentWriter::create(StdArc::clone(&disk), &dir, 0, state.next_seq, seg_opts),
        }
        .map_err(|source| StoreError::IoAt {
            path: dir.clone(),
            op: "open active segment",
            source,
        })?;
        seg.seed_bugs(cfg.bugs);
        if report.active.is_some() {
            seg.make_recovered_durable()?;
        }
        let shared = Arc::new(Shared::new(index));
        let (tx, rx) = channel::bounded(cfg.writer_channel_capacity);
        let wcfg = WriterConfig {
            frame_max: cfg.frame_max(),
            durability: cfg.durability(),
            group_commit_max_batch: cfg.group_max(),
            limits: Limits {
                batch_max_size: cfg.batch_max_size,
                batch_max_bytes: cfg.batch_max_bytes,
                single_append_max_bytes: cfg.single_append_max_bytes,
            },
            allow_external_causes: cfg.allow_external_causes,
            clock: StdArc::clone(&cfg.clock),
            ids: StdArc::clone(&cfg.ids),
            observer: observer.clone(),
        };
        let writer = Writer::new(state, seg, wcfg, Arc::clone(&shared), rx);
        let handle = crate::sync::thread::Builder::new()
            .name("batpak-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| StoreError::IoAt {
                path: dir.clone(),
                op: "spawn writer thread",
                source,
            })?;
        tracing::info!(dir = %dir.display(), records = report.records, "store open");
        Ok(Store {
            cfg,
            shared,
            tx: Some(tx),
            writer: Some(handle),
            lock: Some(lock),
            catalog,
            kinds: Mutex::new(HashMap::new()),
            recovery: report,
            observer,
            _state: PhantomData,
        })
    }

    /// What recovery found at open (segments, records, torn tail cut).
    pub fn recovery_report(&self) -> &log::RecoveryReport {
        &self.recovery
    }

    // ------------------------------------------------------------------ plumbing

    pub(crate) fn send(&self, cmd: Command) -> Result<(), StoreError> {
        let gate = self.shared.stopped.read();
        if *gate {
            return Err(StoreError::WriterCrashed);
        }
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        self.observer.send(tx, cmd)
    }

    pub(crate) fn try_send(&self, cmd: Command) -> Result<(), StoreError> {
        let gate = self.shared.stopped.read();
        if *gate {
            return Err(StoreError::WriterCrashed);
        }
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let threshold = self.cfg.pressure_threshold();
        if self.cfg.bugs.has(Mutant::BackpressureAfterSend) {
            return match tx.try_send(cmd) {
                Ok(()) if tx.len() >= threshold => Err(StoreError::Backpressure {
                    queued: tx.len(),
                    threshold,
                }),
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => Err(StoreError::Backpressure {
                    queued: tx.len(),
                    threshold,
                }),
                Err(TrySendError::Disconnected(_)) => Err(StoreError::WriterCrashed),
            };
        }
        let queued = tx.len();
        if queued >= threshold {
            return Err(StoreError::Backpressure { queued, threshold });
        }
        match self.observer.try_send(tx, cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::Backpressure {
                queued: tx.len(),
                threshold,
            }),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::WriterCrashed),
        }
    }

    /// Sends a command without ever blocking the calling thread: `try_send`, and if the
    /// queue is full, a helper thread does the blocking send (the fence drop path).
    pub(crate) fn send_detached(&self, cmd: Command) -> Result<(), String> {
        if *self.shared.stopped.read() {
            return Err("writer is gone".into());
        }
        let Some(tx) = self.tx.as_ref() else {
            return Err("store is closed".into());
        };
        if self.cfg.bugs.has(Mutant::DropBlocks) {
            return tx
                .send(cmd)
                .map_err(|_| "writer channel disconnected".to_string());
        }
        match self.observer.try_send(tx, cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err("writer channel disconnected".into()),
            Err(TrySendError::Full(cmd)) => {
                let tx = tx.clone();
                let observer = self.observer.clone();
                crate::sync::thread::Builder::new()
                    .name("batpak-fence-drop-cancel".into())
                    .spawn(move || {
                        if observer.send(&tx, cmd).is_err() {
                            tracing::warn!(
                                "fence drop-cancel: writer gone before the cancel landed"
                            );
                        }
                    })
                    .map(|_| ())
                    .map_err(|e| format!("failed to spawn drop-cancel helper: {e}"))
            }
        }
    }

    fn spin_polls(&self) -> u32 {
        if self.cfg.durability().is_deferred() {
            ticket::SPIN_POLLS_DEFERRED
        } else {
            ticket::SPIN_POLLS_DURABLE
        }
    }

    fn item(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendItem, StoreError> {
        if kind.is_reserved() {
            return Err(StoreError::Configuration(format!(
                "event kind {kind} is in a reserved category (0x0 system, 0xD effects)"
            )));
        }
        self.system_item(coord, kind, payload, options)
    }

    fn system_item(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendItem, StoreError> {
        let payload = encode_payload(payload)?;
        if payload.len() as u64 > self.cfg.single_append_max_bytes {
            return Err(StoreError::TooLarge {
                what: "payload",
                size: payload.len() as u64,
                max: self.cfg.single_append_max_bytes,
            });
        }
        Ok(AppendItem {
            coord: coord.clone(),
            kind,
            payload,
            options,
            causation_ref: CausationRef::None,
        })
    }

    fn register_kind<T: EventPayload>(&self) -> Result<(), StoreError> {
        let name = std::any::type_name::<T>();
        let mut kinds = self.kinds.lock();
        match kinds.get(&T::KIND) {
            Some(first) if *first != name => Err(StoreError::DuplicateEventKind {
                kind: T::KIND,
                first,
                second: name,
            }),
            Some(_) => Ok(()),
            None => {
                kinds.insert(T::KIND, name);
                Ok(())
            }
        }
    }

    /// Registers a payload type up front, so a second type claiming the same kind is refused
    /// right away with `DuplicateEventKind` (typed appends and reads register implicitly).
    pub fn register_payload<T: EventPayload>(&self) -> Result<(), StoreError> {
        self.register_kind::<T>()
    }

    pub(crate) fn submit_item(
        &self,
        item: AppendItem,
        fence: Option<&Arc<FenceWatch>>,
        try_only: bool,
    ) -> Result<AppendTicket, StoreError> {
        let (reply, rx) = channel::bounded(1);
        let cmd = Command::Append {
            item,
            fence: fence.map(|w| w.token()),
            reply,
        };
        if try_only {
            self.try_send(cmd)?;
        } else {
            self.send(cmd)?;
        }
        Ok(AppendTicket::new(rx, self.spin_polls(), fence.cloned()))
    }

    pub(crate) fn submit_items(
        &self,
        items: Vec<BatchAppendItem>,
        fence: Option<&Arc<FenceWatch>>,
        reply_when_staged: bool,
        try_only: bool,
    ) -> Result<BatchAppendTicket, StoreError> {
        let (reply, rx) = channel::bounded(1);
        let cmd = Command::Batch {
            items: items.into_iter().map(|i| i.item).collect(),
            fence: fence.map(|w| w.token()),
            reply_when_staged,
            reply,
        };
        if try_only {
            self.try_send(cmd)?;
        } else {
            self.send(cmd)?;
        }
        Ok(BatchAppendTicket::new(
            rx,
            self.spin_polls(),
            // A staged flush answers without waiting for the commit: no guard needed.
            fence.filter(|_| !reply_when_staged).cloned(),
        ))
    }

    fn request<T>(
        &self,
        make: impl FnOnce(crate::writer::Reply<T>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, rx) = channel::bounded(1);
        self.send(make(reply))?;
        wait_reply(&rx, self.spin_polls())
    }

    // ------------------------------------------------------------------ writes

    /// Appends one event and waits for its receipt (durable in the default mode).
    pub fn append(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<AppendReceipt, StoreError> {
        self.append_with_options(coord, kind, payload, AppendOptions::default())
    }

    /// Appends a typed event (kind `T::KIND`).
    pub fn append_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
    ) -> Result<AppendReceipt, StoreError> {
        self.register_kind::<T>()?;
        self.append(coord, T::KIND, payload)
    }

    /// Appends with options (CAS, idempotency, correlation, causation, flags).
    pub fn append_with_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendReceipt, StoreError> {
        let item = self.item(coord, kind, payload, options)?;
        self.submit_item(item, None, false)?.wait()
    }

    /// Typed [`Store::append_with_options`].
    pub fn append_typed_with_options<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
        options: AppendOptions,
    ) -> Result<AppendReceipt, StoreError> {
        self.register_kind::<T>()?;
        self.append_with_options(coord, T::KIND, payload, options)
    }

    /// Appends a reaction: an event caused by `causation_id` in conversation `correlation_id`.
    pub fn append_reaction(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendReceipt, StoreError> {
        let options = AppendOptions::reaction(correlation_id, causation_id);
        self.append_with_options(coord, kind, payload, options)
    }

    /// Typed [`Store::append_reaction`].
    pub fn append_reaction_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendReceipt, StoreError> {
        self.register_kind::<T>()?;
        self.append_reaction(coord, T::KIND, payload, correlation_id, causation_id)
    }

    /// Appends an atomic batch: all events become visible together or none does.
    pub fn append_batch(
        &self,
        items: Vec<BatchAppendItem>,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        self.submit_batch(items)?.wait()
    }

    /// Records a gate denial as a system event (kind [`EventKind::SYSTEM_DENIAL`]) on the
    /// entity's chain, with the decision trace (which gates permitted, denied or were
    /// skipped), so audits can replay decisions. Read it back with [`Store::get_typed`] as a
    /// [`DenialRecord`].
    pub fn append_denial(
        &self,
        coord: &Coordinate,
        denial: &crate::guard::Denial,
        trace: &crate::guard::DecisionTrace,
    ) -> Result<AppendReceipt, StoreError> {
        let record = DenialRecord {
            denial: denial.clone(),
            trace: trace.clone(),
        };
        let item = self.system_item(
            coord,
            EventKind::SYSTEM_DENIAL,
            &record,
            AppendOptions::default(),
        )?;
        self.submit_item(item, None, false)?.wait()
    }

    /// Submits an append without waiting; the ticket answers later.
    pub fn submit(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.item(coord, kind, payload, AppendOptions::default())?;
        self.submit_item(item, None, false)
    }

    /// Submits with options.
    pub fn submit_with_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.item(coord, kind, payload, options)?;
        self.submit_item(item, None, false)
    }

    /// Submits a typed append.
    pub fn submit_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
    ) -> Result<AppendTicket, StoreError> {
        self.register_kind::<T>()?;
        self.submit(coord, T::KIND, payload)
    }

    /// Submits a reaction.
    pub fn submit_reaction(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendTicket, StoreError> {
        let options = AppendOptions::reaction(correlation_id, causation_id);
        self.submit_with_options(coord, kind, payload, options)
    }

    /// Submits a typed reaction.
    pub fn submit_reaction_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
        correlation_id: u128,
        causation_id: u128,
    ) -> Result<AppendTicket, StoreError> {
        self.register_kind::<T>()?;
        self.submit_reaction(coord, T::KIND, payload, correlation_id, causation_id)
    }

    /// Submits an atomic batch.
    pub fn submit_batch(
        &self,
        items: Vec<BatchAppendItem>,
    ) -> Result<BatchAppendTicket, StoreError> {
        self.submit_items(items, None, false, false)
    }

    /// Like [`Store::submit`] but never blocks: refuses with `Backpressure` (retryable) when
    /// the writer queue is at its threshold.
    pub fn try_submit(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.item(coord, kind, payload, AppendOptions::default())?;
        self.submit_item(item, None, true)
    }

    /// Non-blocking [`Store::submit_with_options`].
    pub fn try_submit_with_options(
        &self,
        coord: &Coordinate,
        kind: EventKind,
        payload: &impl Serialize,
        options: AppendOptions,
    ) -> Result<AppendTicket, StoreError> {
        let item = self.item(coord, kind, payload, options)?;
        self.submit_item(item, None, true)
    }

    /// Non-blocking [`Store::submit_typed`].
    pub fn try_submit_typed<T: EventPayload>(
        &self,
        coord: &Coordinate,
        payload: &T,
    ) -> Result<AppendTicket, StoreError> {
        self.register_kind::<T>()?;
        self.try_submit(coord, T::KIND, payload)
    }

    /// Non-blocking [`Store::submit_batch`].
    pub fn try_submit_batch(
        &self,
        items: Vec<BatchAppendItem>,
    ) -> Result<BatchAppendTicket, StoreError> {
        self.submit_items(items, None, false, true)
    }

    /// How full the writer queue is.
    pub fn writer_pressure(&self) -> WriterPressure {
        let queued = self.tx.as_ref().map(|t| t.len()).unwrap_or(0);
        WriterPressure {
            queued,
            capacity: self.cfg.writer_channel_capacity,
            threshold: self.cfg.pressure_threshold(),
        }
    }

    /// An outbox: stage events, then flush them as one atomic batch.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox::new(self, None)
    }

    /// Opens a visibility fence: writes under it are durable but hidden until `commit()`.
    /// One fence at a time (`VisibilityFenceActive`); while it is open, unfenced writes are
    /// refused with `VisibilityFenceActive` (decided by the writer thread).
    pub fn begin_visibility_fence(&self) -> Result<VisibilityFence<'_>, StoreError> {
        let token = self.request(|reply| Command::FenceBegin { reply })?;
        Ok(VisibilityFence::new(self, token))
    }

    /// Makes everything written so far durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.request(|reply| Command::Sync { reply })
    }

    /// Waits until every record below `point` (a sequence, e.g. `receipt.sequence + 1`) is
    /// durable, or `timeout` elapses (`Timeout`). Blocks while the point is not yet written
    /// (another thread may still append it) and asks the writer for a flush in the deferred
    /// mode once it is. Never waits past `timeout`; a writer that dies meanwhile answers
    /// `WriterCrashed` at once, a latched one `WriterLatched` (INV-NO-HANG).
    pub fn wait_for_durable(&self, point: u64, timeout: Duration) -> Result<(), StoreError> {
        self.wait_durable_seq(point, timeout)
    }

    /// The wait behind every shape of `wait_for_durable`: until `frontier.durable >= point`.
    ///
    /// Sleeps on the writer's frontier signal (`durable_cv`: every fsync, every written-frontier
    /// move while someone waits, the writer's exit). Sends a `Sync` on entry (its answer
    /// reports a latched writer) and, in the deferred mode, another one once the point is
    /// written if no earlier one covered it; the `Ok` answer to a `Sync` sent when
    /// `written >= point` means the point is durable. Sends never block: with the queue full
    /// the request is retried after a short sleep.
    pub(crate) fn wait_durable_seq(&self, point: u64, timeout: Duration) -> Result<(), StoreError> {
        let f = &self.shared.frontier;
        if f.durable.load(Ordering::SeqCst) >= point {
            return Ok(());
        }
        let start = std::time::Instant::now();
        let deadline = start.checked_add(timeout);
        let deferred = self.cfg.durability().is_deferred();
        let timed_out = || {
            let (d, w) = (
                f.durable.load(Ordering::SeqCst),
                f.written.load(Ordering::SeqCst),
            );
            let state = if w >= point {
                "written, not yet durable"
            } else {
                "not yet written"
            };
            StoreError::Timeout {
                what: format!(
                    "durability of sequence {point} ({state}; durable frontier {d}, written {w}) after {} ms",
                    start.elapsed().as_millis()
                ),
            }
        };
        // The reply of the outstanding Sync, and the written frontier when the last one was sent
        // (`None`: none sent yet).
        let mut pending: Option<crate::sync::channel::Receiver<Result<(), StoreError>>> = None;
        let mut asked_at: Option<u64> = None;
        let _waiting = DurableWaiter::register(&self.shared);
        let writer_gone =
            || !self.cfg.bugs.has(Mutant::WaitIgnoresWriterExit) && *self.shared.stopped.read();
        loop {
            if f.durable.load(Ordering::SeqCst) >= point {
                return Ok(());
            }
            if writer_gone() {
                return Err(StoreError::WriterCrashed);
            }
            let now = std::time::Instant::now();
            let remaining = match deadline {
                Some(d) if now >= d => return Err(timed_out()),
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            if let Some(rx) = &pending {
                match rx.recv_timeout(remaining) {
                    Ok(Ok(())) => pending = None,
                    Ok(Err(e)) => return Err(e),
                    Err(channel::RecvTimeoutError::Timeout) => {}
                    Err(channel::RecvTimeoutError::Disconnected) => {
                        if f.durable.load(Ordering::SeqCst) >= point {
                            return Ok(());
                        }
                        if !self.cfg.bugs.has(Mutant::WaitIgnoresWriterExit) {
                            return Err(StoreError::WriterCrashed);
                        }
                        pending = None;
                    }
                }
                continue;
            }
            let written = f.written.load(Ordering::SeqCst);
            let covered = asked_at.is_some_and(|w| w >= point);
            if asked_at.is_none() || (deferred && written >= point && !covered) {
                let (reply, rx) = channel::bounded(1);
                match self.try_send(Command::Sync { reply }) {
                    Ok(()) => {
                        pending = Some(rx);
                        asked_at = Some(written);
                        continue;
                    }
                    // The queue is full: the writer is busy (and flushes on its own when the
                    // queue drains); ask again shortly.
                    Err(StoreError::Backpressure { .. }) => {
                        crate::sync::thread::sleep(remaining.min(Duration::from_millis(1)));
                        continue;
                    }
                    Err(StoreError::WriterCrashed)
                        if self.cfg.bugs.has(Mutant::WaitIgnoresWriterExit) =>
                    {
                        asked_at = Some(written);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let g = self.shared.durable_lock.lock();
            if f.durable.load(Ordering::SeqCst) >= point
                || f.written.load(Ordering::SeqCst) != written
                || writer_gone()
            {
                continue;
            }
            drop(self.shared.durable_cv.wait_timeout(g, remaining));
        }
    }

    /// Stops the writer after it has drained its queue (an open fence is cancelled), syncs and
    /// releases the directory lock.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    // ------------------------------------------------------------------ reads

    /// The sequence numbers the writer has reached.
    pub fn frontier(&self) -> Frontier {
        let (written, durable, visible) = self.shared.frontier.load();
        Frontier {
            written,
            durable,
            visible,
        }
    }

    /// Counters.
    pub fn stats(&self) -> StoreStats {
        let index = self.shared.index.read();
        let p = self.writer_pressure();
        StoreStats {
            event_count: index.len(),
            entity_count: index.entity_count(),
            scope_count: index.scope_count(),
            frontier: self.frontier(),
            writer_queue_len: p.queued,
            writer_queue_capacity: p.capacity,
            dir: self.cfg.dir.clone(),
        }
    }

    /// The entity's visible events, oldest first.
    pub fn stream(&self, entity: &str) -> Vec<IndexEntry> {
        self.shared.index.read().stream(entity)
    }

    /// The scope's visible events.
    pub fn by_scope(&self, scope: &str) -> Vec<IndexEntry> {
        self.shared.index.read().by_scope(scope)
    }

    /// Visible events of one kind.
    pub fn by_fact(&self, kind: EventKind) -> Vec<IndexEntry> {
        self.shared.index.read().by_fact(kind)
    }

    /// Visible events of kind `T::KIND`.
    pub fn by_fact_typed<T: EventPayload>(&self) -> Vec<IndexEntry> {
        self.by_fact(T::KIND)
    }

    /// Visible events selected by `region`.
    pub fn query(&self, region: &Region) -> Vec<IndexEntry> {
        self.shared.index.read().query(region)
    }

    /// The entity's earlier visible events before `event_id`, newest first, along the chain.
    pub fn walk_ancestors(&self, event_id: u128, limit: usize) -> Vec<IndexEntry> {
        self.shared.index.read().walk_ancestors(event_id, limit)
    }

    /// Causes of `event_id`, nearest first, following causation links (at most `limit`).
    /// Stops at a root, at a cause outside the store (an external root) or at `limit`.
    pub fn causes(&self, event_id: u128, limit: usize) -> Vec<IndexEntry> {
        let index = self.shared.index.read();
        let mut out = Vec::new();
        let mut cur = index.get(event_id).and_then(|e| e.causation_id);
        while let Some(c) = cur {
            if out.len() >= limit {
                break;
            }
            let Some(e) = index.get(c) else { break };
            cur = e.causation_id;
            out.push(e);
        }
        out
    }

    /// Visible events naming `event_id` as their cause.
    pub fn effects(&self, event_id: u128) -> Vec<IndexEntry> {
        self.shared.index.read().effects(event_id)
    }

    /// Visible events of a correlation (conversation), in order.
    pub fn correlated(&self, correlation_id: u128) -> Vec<IndexEntry> {
        self.shared.index.read().correlated(correlation_id)
    }

    /// The index entry of a visible event.
    pub fn entry(&self, event_id: u128) -> Option<IndexEntry> {
        self.shared.index.read().get(event_id)
    }

    /// Reads a visible event's raw MessagePack payload from disk (CRC verified).
    pub fn get_raw(&self, event_id: u128) -> Result<StoredEvent<Vec<u8>>, StoreError> {
        let entry = self.entry(event_id).ok_or(StoreError::NotFound(event_id))?;
        let frame = self.catalog.read_event(entry.disk_pos, event_id)?;
        Ok(StoredEvent {
            coordinate: entry.coord.clone(),
            event: Event {
                header: EventHeader {
                    event_id,
                    correlation_id: entry.correlation_id,
                    causation_id: entry.causation_id,
                    timestamp_us: frame.timestamp_us,
                    position: EventPosition {
                        wall_ms: entry.wall_ms,
                        clock: entry.clock,
                    },
                    payload_size: frame.payload.len() as u32,
                    event_kind: entry.kind,
                    flags: frame.flags,
                    content_hash: *blake3::hash(&frame.payload).as_bytes(),
                },
                payload: frame.payload,
                hash_chain: Some(entry.hash_chain),
            },
        })
    }

    /// Reads a visible event with its payload as JSON.
    pub fn get(&self, event_id: u128) -> Result<StoredEvent<serde_json::Value>, StoreError> {
        self.get_as::<serde_json::Value>(event_id)
    }

    /// Reads a visible event with its payload decoded as `T` (its kind must be `T::KIND`).
    pub fn get_typed<T: EventPayload>(&self, event_id: u128) -> Result<StoredEvent<T>, StoreError> {
        self.register_kind::<T>()?;
        let e = self.get_as::<T>(event_id)?;
        if e.event.header.event_kind != T::KIND {
            return Err(StoreError::ser(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "event {event_id:032x} has kind {} but {} has kind {}",
                    e.event.header.event_kind,
                    std::any::type_name::<T>(),
                    T::KIND
                ),
            )));
        }
        Ok(e)
    }

    fn get_as<T: DeserializeOwned>(&self, event_id: u128) -> Result<StoredEvent<T>, StoreError> {
        let raw = self.get_raw(event_id)?;
        let payload: T = rmp_serde::from_slice(&raw.event.payload).map_err(StoreError::ser)?;
        Ok(StoredEvent {
            coordinate: raw.coordinate,
            event: Event {
                header: raw.event.header,
                payload,
                hash_chain: raw.event.hash_chain,
            },
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.cfg.dir
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
) -> Result<Box<dyn DiskLock>, StoreError> {
    disk.create_dir_all(dir)
        .map_err(|source| StoreError::IoAt {
            path: dir.to_path_buf(),
            op: "create data directory",
            source,
        })?;
    lock_dir(disk, dir)
}

/// Takes the directory lock (INV-EXCLUSIVE). A lock that is busy is retried for a short while
/// before `StoreLocked`: a child process forked by another thread between its fork and exec
/// briefly holds copies of every descriptor, including a just-closed store's lock.
fn lock_dir(disk: &dyn Disk, dir: &std::path::Path) -> Result<Box<dyn DiskLock>, StoreError> {
    const ATTEMPTS: u32 = 20;
    let mut attempt = 0;
    loop {
        match disk.lock(dir) {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                attempt += 1;
                if attempt >= ATTEMPTS {
                    return Err(StoreError::StoreLocked {
                        dir: dir.to_path_buf(),
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
pub fn recover_visible(cfg: &StoreConfig) -> Result<Vec<IndexEntry>, StoreError> {
    cfg.validate()?;
    let disk = &*cfg.disk;
    let lock = create_and_lock_dir(disk, &cfg.dir)?;
    let recovered = recover(disk, &cfg.dir, CutPolicy::OnDisk, cfg.bugs);
    drop(lock);
    Ok(recovered?.index.query(&Region::all()))
}

/// Counts a thread in `wait_for_durable` for as long as it lives (see `Shared::durable_waiters`).
struct DurableWaiter<'a>(&'a Shared);

impl<'a> DurableWaiter<'a> {
    fn register(shared: &'a Shared) -> Self {
        shared.durable_waiters.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for DurableWaiter<'_> {
    fn drop(&mut self) {
        self.0.durable_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
