//! The writer thread loop: receive, decide (state machine), write, fsync once, publish,
//! reply. Group commit: everything queued when the thread wakes (up to
//! `group_commit_max_batch` commands) shares one write per segment and one fsync.

use super::state::{Outgoing, Sink, StepEnv, WriterState};
use super::Command;
use crate::codec;
use crate::env::{Clock, IdSource};
use crate::error::StoreError;
use crate::index::Index;
use crate::log::active::RollError;
use crate::log::{DiskPos, Record, SegmentWriter};
use crate::mutant::Mutant;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::channel::{Receiver, RecvTimeoutError};
use crate::sync::{Arc, Condvar, Mutex, RwLock, StdArc};
use std::cell::RefCell;
use std::time::Duration;

/// Polls of the command queue before the idle writer parks (see `next_command`).
const WRITER_SPIN_POLLS: u32 = if crate::sync::UNDER_MODEL { 0 } else { 2_000 };

/// One step of a polling loop: mostly a CPU spin hint, but every 64th poll yields, so that a
/// poller sharing a core with the thread it waits for does not starve it for a whole
/// scheduler time slice.
pub(crate) fn spin_or_yield(i: u32) {
    if i % 64 == 63 {
        crate::sync::thread::yield_now();
    } else {
        crate::sync::spin_loop();
    }
}

/// Sequence numbers that tell what the writer has done (each is "the next sequence not yet
/// covered", so 0 means nothing).
#[derive(Debug, Default)]
pub struct Frontier {
    /// Records written (possibly unsynced).
    pub written: AtomicU64,
    /// Records durable.
    pub durable: AtomicU64,
    /// Records visible (published), counting hidden records below the last visible one.
    pub visible: AtomicU64,
}

/// What the writer shares with the store handle and readers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub index: RwLock<Index>,
    pub frontier: Frontier,
    /// `true` once the writer stopped; taken for writing by the writer's exit so that no
    /// command can be enqueued after the final drain (INV-NO-HANG).
    pub gate: RwLock<bool>,
    /// Signalled whenever `frontier.durable` moves or the writer stops, and when
    /// `frontier.written` moves while `durable_waiters` is not zero (a deferred-mode waiter
    /// asks for a flush once its point is written).
    pub durable_lock: Mutex<()>,
    pub durable_cv: Condvar,
    /// Threads in `wait_for_durable`; registered before they read the frontier, so a writer
    /// that reads zero here after moving the frontier cannot leave one asleep.
    pub durable_waiters: AtomicUsize,
}

impl Shared {
    pub fn new(index: Index) -> Self {
        Self {
            index: RwLock::new(index),
            frontier: Frontier::default(),
            gate: RwLock::new(false),
            durable_lock: Mutex::new(()),
            durable_cv: Condvar::new(),
            durable_waiters: AtomicUsize::new(0),
        }
    }
}

/// The writer's configuration.
#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub frame_max: u32,
    pub sync_every_n_events: u32,
    pub flush_interval: Duration,
    pub group_commit_max_batch: usize,
    pub limits: super::state::Limits,
    pub allow_external_causes: bool,
    pub clock: StdArc<dyn Clock>,
    pub ids: StdArc<dyn IdSource>,
    #[cfg(feature = "tla-trace")]
    pub trace: Option<StdArc<crate::trace::TraceSink>>,
}

/// How a group's I/O failed; the writer latches either way.
#[derive(Debug)]
struct GroupFailure {
    /// What failed (for logs and `WriterLatched`).
    detail: String,
    /// `Some` when nothing of the group is or will ever be in the log: every command of the
    /// group gets this definite error naming the file, the operation and the cause.
    definite: Option<Definite>,
    /// Everything written before the group is durable (a cut back synced it).
    synced_before: bool,
}

/// A definite failure: the file, the operation that failed, the cause.
#[derive(Debug)]
struct Definite {
    path: std::path::PathBuf,
    op: &'static str,
    kind: std::io::ErrorKind,
    message: String,
}

impl GroupFailure {
    /// A failure whose outcome is unknown.
    fn unknown(detail: String) -> Self {
        GroupFailure {
            detail,
            definite: None,
            synced_before: false,
        }
    }

    /// A failure that left nothing of the group in the log.
    fn definite(
        detail: String,
        path: std::path::PathBuf,
        op: &'static str,
        error: &std::io::Error,
    ) -> Self {
        GroupFailure {
            detail,
            definite: Some(Definite {
                path,
                op,
                kind: error.kind(),
                message: error.to_string(),
            }),
            synced_before: false,
        }
    }

    /// The error the group's commands get.
    fn error(&self) -> StoreError {
        match &self.definite {
            Some(d) => StoreError::IoAt {
                path: d.path.clone(),
                op: d.op,
                source: std::io::Error::new(d.kind, d.message.clone()),
            },
            None => StoreError::OutcomeUnknown {
                detail: self.detail.clone(),
            },
        }
    }
}

/// After a failed write to `seg` (disk full, I/O error, maybe after writing part of it). If
/// the group did not roll (all of it was in this write) and the failed bytes can be cut back
/// off durably, nothing of the group is or will be in the log: a definite failure. Otherwise
/// its outcome is unknown, and what `seg` holds past its last sync is cut off (it may hold
/// part of the group).
fn after_write_failure(
    seg: &mut SegmentWriter,
    error: &std::io::Error,
    rolled: bool,
) -> GroupFailure {
    let path = seg.path();
    let mut detail = format!("write to {} failed: {error}", path.display());
    if !rolled {
        match seg.cut_back() {
            Ok(()) => {
                let mut f = GroupFailure::definite(detail, path, "write segment", error);
                f.synced_before = true;
                return f;
            }
            Err(e) => detail = format!("{detail}; cutting it back failed: {e}"),
        }
    }
    discard_unsynced(seg, &mut detail);
    GroupFailure::unknown(detail)
}

/// After a failed sync of `seg`: the kernel may have dropped its unsynced pages or marked them
/// clean without writing them, so a retry would succeed and prove nothing (Linux). They are
/// cut off, so that no later process finds them in the page cache and takes them for durable.
/// Definite only if the group had written nothing (`wrote_nothing`): whatever of its bytes
/// reached the platter before the error is unknown.
fn after_sync_failure(
    seg: &mut SegmentWriter,
    error: &std::io::Error,
    wrote_nothing: bool,
) -> GroupFailure {
    let path = seg.path();
    let mut detail = format!("sync of {} failed: {error}", path.display());
    discard_unsynced(seg, &mut detail);
    if wrote_nothing {
        GroupFailure::definite(detail, path, "seal segment", error)
    } else {
        GroupFailure::unknown(detail)
    }
}

fn discard_unsynced(seg: &mut SegmentWriter, detail: &mut String) {
    match seg.discard_unsynced() {
        Ok(len) => tracing::warn!(
            file = %seg.path().display(),
            len,
            "cut the segment back to its last synced length"
        ),
        Err(e) => *detail = format!("{detail}; cutting off its unsynced bytes failed: {e}"),
    }
}

/// Buffers the frames of one group for the active segment, rolling segments between frames.
struct GroupSink<'a> {
    seg: &'a mut SegmentWriter,
    buf: &'a mut Vec<u8>,
    frame_max: u32,
    /// The active segment when the group began.
    group_segment: u64,
    /// Set when a segment roll failed: the writer latches.
    failure: &'a RefCell<Option<GroupFailure>>,
}

impl Sink for GroupSink<'_> {
    fn emit(&mut self, record: &Record<'_>) -> Result<DiskPos, StoreError> {
        let mut start = self.buf.len();
        let len = codec::encode_into(record, self.frame_max, self.seg.salt(), self.buf)
            .map_err(|e| StoreError::Serialization(Box::new(e)))?;
        if !self.seg.fits(start as u64, len as u64) {
            // The frame crosses segment_max_bytes (or the segment's frame limit): flush what
            // precedes it, seal, roll.
            let rolled = self.seg.segment_id() != self.group_segment;
            // Nothing of the group is written anywhere yet (so a failure of the roll itself
            // leaves nothing of it in the log).
            let wrote_nothing = !rolled && start == 0;
            let next = self.next_segment_path();
            let failure = match self.seg.write(self.buf.get(..start).unwrap_or(&[])) {
                Err(e) => Some(after_write_failure(self.seg, &e, rolled)),
                Ok(()) => match self.seg.roll(record.seq) {
                    Ok(()) => None,
                    Err(RollError::Seal(e)) => {
                        Some(after_sync_failure(self.seg, &e, wrote_nothing))
                    }
                    // The old segment is sealed (synced): nothing to cut there; the new one
                    // was left without a header (recovery removes it).
                    Err(RollError::Create(e)) => {
                        let detail = format!("creating {} failed: {e}", next.display());
                        Some(if wrote_nothing {
                            GroupFailure::definite(detail, next, "create segment", &e)
                        } else {
                            GroupFailure::unknown(detail)
                        })
                    }
                },
            };
            if let Some(failure) = failure {
                // The group's earlier frames are written (or their fate is unknown): they must
                // never be written again, or their sequences would repeat and recovery would
                // refuse the log as corrupt. The writer latches after this command.
                self.buf.clear();
                let e = failure.error();
                *self.failure.borrow_mut() = Some(failure);
                return Err(e);
            }
            self.buf.drain(..start);
            start = 0;
            // The frame moves to the new segment: seal it with that segment's salt.
            codec::reseal(self.buf, self.seg.salt());
        }
        Ok(DiskPos {
            segment_id: self.seg.segment_id(),
            offset: self.seg.len() + start as u64,
            length: len as u32,
        })
    }
}

impl GroupSink<'_> {
    /// The path of the segment a roll would create.
    fn next_segment_path(&self) -> std::path::PathBuf {
        self.seg
            .path()
            .with_file_name(crate::log::segment::segment_file_name(
                self.seg.segment_id().saturating_add(1),
            ))
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub state: WriterState,
    pub seg: SegmentWriter,
    pub cfg: WriterConfig,
    pub shared: Arc<Shared>,
    pub rx: Receiver<Command>,
    buf: Vec<u8>,
    unsynced_events: u64,
    /// Deferred mode: when (monotonic µs) the oldest record not yet synced was written. The
    /// flush bound runs from it, whatever commands come after (INV-FLUSH-BOUND).
    oldest_unsynced_us: Option<u64>,
    /// Origin of the real monotonic reading (when the clock gives none).
    started: std::time::Instant,
}

impl Writer {
    pub fn new(
        state: WriterState,
        seg: SegmentWriter,
        cfg: WriterConfig,
        shared: Arc<Shared>,
        rx: Receiver<Command>,
    ) -> Self {
        let next = state.next_seq;
        shared.frontier.written.store(next, Ordering::SeqCst);
        shared.frontier.durable.store(next, Ordering::SeqCst);
        shared.frontier.visible.store(next, Ordering::SeqCst);
        Self {
            state,
            seg,
            cfg,
            shared,
            rx,
            buf: Vec::with_capacity(64 * 1024),
            unsynced_events: 0,
            oldest_unsynced_us: None,
            started: std::time::Instant::now(),
        }
    }

    /// Monotonic microseconds: the clock's own reading if it has one (test clocks), else real
    /// time since the writer started.
    fn mono_us(&self) -> u64 {
        self.cfg.clock.monotonic_us().unwrap_or_else(|| {
            u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
        })
    }

    fn flush_interval_us(&self) -> u64 {
        u64::try_from(self.cfg.flush_interval.as_micros()).unwrap_or(u64::MAX)
    }

    /// Deferred mode with unsynced records: how long until the oldest of them is due.
    fn flush_due_in(&self) -> Option<Duration> {
        let oldest = self
            .oldest_unsynced_us
            .filter(|_| self.unsynced_events > 0)?;
        let age = self.mono_us().saturating_sub(oldest);
        Some(Duration::from_micros(
            self.flush_interval_us().saturating_sub(age),
        ))
    }

    fn durable_mode(&self) -> bool {
        self.cfg.sync_every_n_events <= 1
    }

    /// The thread body.
    pub fn run(mut self) {
        let _span = tracing::info_span!("batpak-writer").entered();
        loop {
            let first = if let Some(due) = self.flush_due_in() {
                if due.is_zero() {
                    let mut out = Vec::new();
                    let segment = self.seg.segment_id();
                    self.finish_group(&mut out, true, segment);
                    continue;
                }
                let polled = match self.poll_command() {
                    Ok(c) => Ok(c),
                    Err(()) => self.rx.recv_timeout(due),
                };
                match polled {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => {
                        let mut out = Vec::new();
                        let segment = self.seg.segment_id();
                        self.finish_group(&mut out, true, segment);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.next_command() {
                    Some(c) => c,
                    None => break,
                }
            };
            let mut cmds = vec![first];
            while cmds.len() < self.cfg.group_commit_max_batch {
                match self.rx.try_recv() {
                    Ok(c) => cmds.push(c),
                    Err(_) => break,
                }
            }
            if let Some(reply) = self.process_group(cmds) {
                let _ = reply.send(Ok(()));
                break;
            }
        }
        self.exit();
    }

    /// Waits for the next command, polling briefly before parking so that a caller who
    /// submits right after its previous reply does not pay for waking the writer.
    fn next_command(&self) -> Option<Command> {
        match self.poll_command() {
            Ok(c) => Some(c),
            Err(()) => self.rx.recv().ok(),
        }
    }

    /// Polls the queue for a while; `Err(())` when nothing came (or the queue is closed: the
    /// blocking receive that follows reports that).
    // Under the model checkers WRITER_SPIN_POLLS is 0 and the loop is empty on purpose.
    #[allow(clippy::reversed_empty_ranges)]
    fn poll_command(&self) -> Result<Command, ()> {
        for i in 0..WRITER_SPIN_POLLS {
            match self.rx.try_recv() {
                Ok(c) => return Ok(c),
                Err(crate::sync::channel::TryRecvError::Empty) => spin_or_yield(i),
                Err(crate::sync::channel::TryRecvError::Disconnected) => return Err(()),
            }
        }
        Err(())
    }

    /// Decides, writes, syncs, publishes and answers one group. Returns the shutdown reply
    /// if the group held a shutdown.
    fn process_group(&mut self, cmds: Vec<Command>) -> Option<super::Reply<()>> {
        let mut out: Vec<Outgoing> = Vec::with_capacity(cmds.len());
        let mut force_sync = false;
        let mut shutdown = None;
        let before = self.state.next_seq;
        let group_segment = self.seg.segment_id();
        let failure = RefCell::new(None);
        {
            let index = self.shared.index.read();
            let mut sink = GroupSink {
                seg: &mut self.seg,
                buf: &mut self.buf,
                frame_max: self.cfg.frame_max,
                group_segment,
                failure: &failure,
            };
            let mut env = StepEnv {
                sink: &mut sink,
                clock: &*self.cfg.clock,
                ids: &*self.cfg.ids,
                index: &index,
                limits: self.cfg.limits,
                allow_external_causes: self.cfg.allow_external_causes,
                #[cfg(feature = "tla-trace")]
                trace: self.cfg.trace.as_deref(),
            };
            for cmd in cmds {
                if let Some(r) = self.state.step(cmd, &mut env, &mut out, &mut force_sync) {
                    shutdown = Some(r);
                }
                // A failed roll latches at once: later commands of the group are refused.
                if self.state.latched.is_none() {
                    self.state.latched = failure.borrow().as_ref().map(|f| f.detail.clone());
                }
            }
        }
        if let Some(f) = failure.into_inner() {
            self.latch_group(&mut out, &f);
        }
        self.unsynced_events += self.state.next_seq - before;
        let mut sync_now = force_sync
            || self.durable_mode()
            || self.unsynced_events >= u64::from(self.cfg.sync_every_n_events);
        if !sync_now && self.unsynced_events > 0 {
            // The bound runs from the oldest unsynced write: a steady trickle of commands
            // must not keep pushing the flush out.
            let now = self.mono_us();
            let oldest = match self.oldest_unsynced_us {
                Some(t) if !self.state.bugs.has(Mutant::FlushTimerRestarts) => t,
                _ => now,
            };
            self.oldest_unsynced_us = Some(oldest);
            sync_now = now.saturating_sub(oldest) >= self.flush_interval_us();
        }
        self.finish_group(&mut out, sync_now, group_segment);
        shutdown
    }

    /// Write, Fsync, Publish, Reply. `group_segment`: the active segment when the group began
    /// (the group rolled if it differs now).
    fn finish_group(&mut self, out: &mut Vec<Outgoing>, sync_now: bool, group_segment: u64) {
        if let Some(detail) = self.state.latched.clone() {
            // A latched writer does no more I/O, and its frontiers stay where the failure left
            // them: records counted in `next_seq` since then were never written (their buffer
            // was dropped). Retrying a failed fsync may succeed while the pages it failed to
            // persist are gone, so nothing may be reported durable (nor `sync()` answered Ok).
            self.buf.clear();
            self.state.ready.clear();
            self.latch(out, &detail);
            #[cfg(feature = "tla-trace")]
            {
                self.state.trace_units.clear();
                self.state.trace_acks.clear();
            }
            reply_all(out, false);
            return;
        }
        let written = self.seg.write(&self.buf);
        self.buf.clear();
        if let Err(e) = written {
            let rolled = self.seg.segment_id() != group_segment;
            #[cfg(feature = "tla-trace")]
            self.trace_fsync_fail();
            let f = after_write_failure(&mut self.seg, &e, rolled);
            self.latch_group(out, &f);
            reply_all(out, false);
            return;
        }
        let fsync = sync_now && !self.state.bugs.has(Mutant::AckBeforeFsync);
        if fsync {
            let mut synced = self.seg.sync();
            if synced.is_err() && self.state.bugs.has(Mutant::FsyncRetryAcks) {
                synced = self.seg.sync();
            }
            if let Err(e) = synced {
                #[cfg(feature = "tla-trace")]
                self.trace_fsync_fail();
                let f = after_sync_failure(&mut self.seg, &e, false);
                self.latch_group(out, &f);
                reply_all(out, false);
                return;
            }
        }
        let written = self.state.next_seq;
        #[cfg(feature = "tla-trace")]
        if fsync && written > self.shared.frontier.durable.load(Ordering::SeqCst) {
            crate::trace::tla_trace!(
                self.cfg.trace.as_deref(),
                "Fsync",
                "",
                vec![u128::from(written)]
            );
        }
        self.shared
            .frontier
            .written
            .store(written, Ordering::SeqCst);
        if fsync {
            self.unsynced_events = 0;
            self.oldest_unsynced_us = None;
        }
        // Publish: the whole group becomes visible under one write lock (INV-READ-ISOLATION).
        let ready = std::mem::take(&mut self.state.ready);
        #[cfg(feature = "tla-trace")]
        {
            // Emitted before the index publish: a reader cannot tell, and the Publish steps
            // must precede the replies either way. (Taken even without a sink: no growth.)
            let units = std::mem::take(&mut self.state.trace_units);
            if let Some(sink) = self.cfg.trace.as_deref() {
                for ev in crate::writer::trace::publish_events(&units, &ready) {
                    sink.emit(ev);
                }
            }
        }
        if !ready.is_empty() && self.state.bugs.has(Mutant::BatchPublishPerEvent) {
            for slot in ready.iter() {
                let mut index = self.shared.index.write();
                self.state
                    .publish_into(&mut index, std::slice::from_ref(slot));
            }
            self.state.settle_published(&ready);
        } else if !ready.is_empty() {
            let mut index = self.shared.index.write();
            self.state.publish_into(&mut index, &ready);
            drop(index);
            self.state.settle_published(&ready);
        }
        self.shared
            .frontier
            .visible
            .store(written, Ordering::SeqCst);
        if fsync {
            self.shared
                .frontier
                .durable
                .store(written, Ordering::SeqCst);
        }
        if fsync || self.shared.durable_waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.shared.durable_lock.lock();
            self.shared.durable_cv.notify_all();
        }
        #[cfg(feature = "tla-trace")]
        for ev in self.state.trace_acks.drain(..) {
            if let Some(sink) = self.cfg.trace.as_deref() {
                sink.emit(ev);
            }
        }
        reply_all(out, fsync || self.state.bugs.has(Mutant::AckBeforeFsync));
    }

    /// The spec's `FsyncFail`: the group's write or fsync failed with records not yet durable.
    #[cfg(feature = "tla-trace")]
    fn trace_fsync_fail(&self) {
        if self.state.next_seq > self.shared.frontier.durable.load(Ordering::SeqCst) {
            crate::trace::tla_trace!(self.cfg.trace.as_deref(), "FsyncFail", "", Vec::new());
        }
    }

    /// Latches after the group's I/O failed. A definite failure (nothing of the group is in
    /// the log) gives every command of the group a definite error naming the file and the
    /// cause (`StorageFull` for a full disk); after a cut back, whose sync made everything
    /// written before the group durable, the durable frontier says so. Either way later
    /// writes are refused until the store is
    /// reopened: the state machine has already taken the group's sequences, so the writer
    /// cannot go on after them.
    fn latch_group(&mut self, out: &mut Vec<Outgoing>, failure: &GroupFailure) {
        if failure.synced_before {
            let written = self.shared.frontier.written.load(Ordering::SeqCst);
            self.shared
                .frontier
                .durable
                .store(written, Ordering::SeqCst);
            let _g = self.shared.durable_lock.lock();
            self.shared.durable_cv.notify_all();
        }
        self.latch_with(out, &failure.detail, || failure.error());
    }

    /// Latch after an I/O failure: every acknowledgement of this group becomes an
    /// indeterminate error, nothing of it is published, and later writes are refused.
    fn latch(&mut self, out: &mut Vec<Outgoing>, detail: &str) {
        let unknown = || StoreError::OutcomeUnknown {
            detail: detail.to_string(),
        };
        self.latch_with(out, detail, unknown);
    }

    /// [`Writer::latch`] with the error `error()` for every acknowledgement of the group.
    fn latch_with(
        &mut self,
        out: &mut Vec<Outgoing>,
        detail: &str,
        error: impl Fn() -> StoreError,
    ) {
        tracing::error!(error = %detail, "writer I/O failure: latching, writes refused until reopen");
        self.state.latched = Some(detail.to_string());
        self.state.ready.clear();
        // Nothing will be synced any more: no flush is due.
        self.unsynced_events = 0;
        self.oldest_unsynced_us = None;
        #[cfg(feature = "tla-trace")]
        {
            self.state.trace_units.clear();
            self.state.trace_acks.clear();
        }
        for o in out.iter_mut() {
            match o {
                Outgoing::Receipt(_, r @ Ok(_)) => *r = Err(error()),
                Outgoing::Receipts(_, r @ Ok(_)) => *r = Err(error()),
                Outgoing::Unit(_, r @ Ok(_)) => *r = Err(error()),
                Outgoing::Token(_, r @ Ok(_)) => *r = Err(error()),
                _ => {}
            }
        }
        self.state.fail_fence_waiters(out, detail);
    }

    /// Stops: no command can be enqueued after this; queued ones are dropped, which answers
    /// their callers with `WriterCrashed` (INV-NO-HANG).
    fn exit(&mut self) {
        let mut out = Vec::new();
        self.state
            .fail_fence_waiters(&mut out, "the writer stopped");
        reply_all(&mut out, false);
        // Senders hold the gate's read lock while they send; one blocked on a full queue
        // needs the queue drained to finish, so drain until the write lock is ours.
        loop {
            while self.rx.try_recv().is_ok() {}
            if let Some(mut gate) = self.shared.gate.try_write() {
                *gate = true;
                break;
            }
            crate::sync::thread::yield_now();
        }
        while self.rx.try_recv().is_ok() {}
        let _g = self.shared.durable_lock.lock();
        self.shared.durable_cv.notify_all();
        tracing::info!("writer stopped");
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A panic unwinding through the writer still closes the gate and drains the queue.
        if !*self.shared.gate.read() {
            self.exit();
        }
    }
}

fn reply_all(out: &mut Vec<Outgoing>, durable: bool) {
    for o in out.drain(..) {
        match o {
            Outgoing::Receipt(tx, r) => {
                let _ = tx.send(r.map(|mut x| {
                    x.durable = durable;
                    x
                }));
            }
            Outgoing::Receipts(tx, r) => {
                let _ = tx.send(r.map(|mut v| {
                    for x in v.iter_mut() {
                        x.durable = durable;
                    }
                    v
                }));
            }
            Outgoing::Unit(tx, r) => {
                let _ = tx.send(r);
            }
            Outgoing::Token(tx, r) => {
                let _ = tx.send(r);
            }
        }
    }
}
