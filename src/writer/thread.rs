//! The writer thread loop: receive, decide (the state machine, no I/O), place the step's
//! frames, write, fsync once, publish, reply. Group commit: everything queued when the thread
//! wakes (up to `group_commit_max_batch` commands) shares one write per segment and one fsync.

use super::durability::{Durability, Flush};
use super::frames::Frames;
use super::observe::{Observe, Observer};
use super::place::{after_sync_failure, after_write_failure, place, GroupFailure, PlaceFailure};
use super::shared::Shared;
use super::state::{Limits, Outgoing, StepEnv, WriterState};
use super::{Command, Reply};
use crate::env::{Clock, Disk, IdSource};
use crate::error::StoreError;
use crate::log::{
    leave_clean_mark, take_clean_mark, SegmentOptions, SegmentWriter, CLEAN_FILE_NAME,
};
use crate::mutant::{Bugs, Mutant};
use crate::sync::atomic::Ordering;
use crate::sync::channel::{Receiver, RecvTimeoutError};
use crate::sync::thread::JoinHandle;
use crate::sync::{Arc, StdArc};
use std::path::PathBuf;
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

/// The writer's configuration.
#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub disk: StdArc<dyn Disk>,
    pub dir: PathBuf,
    /// How it makes segments (size, sync mode, frame limit, salts).
    pub segment: SegmentOptions,
    /// The seeded bug (mutant build only).
    pub bugs: Bugs,
    pub durability: Durability,
    pub group_commit_max_batch: usize,
    pub limits: Limits,
    pub allow_external_causes: bool,
    pub clock: StdArc<dyn Clock>,
    pub ids: StdArc<dyn IdSource>,
    pub observer: Observer,
    /// Signs every receipt when set.
    pub signer: Option<crate::signing::SigningKey>,
    /// The writer thread's stack (`None`: the platform's default).
    pub stack_size: Option<usize>,
    /// Save a recovery checkpoint ([`crate::checkpoint`]) at a clean close.
    pub checkpoint: bool,
    /// Also save one every this many records made durable (0: only at close).
    pub checkpoint_every: u64,
}

/// Opens the active segment after recovery and starts the writer thread on `state`: the last
/// segment (`active`: id, length) is continued, once what recovery read of it is durable (a
/// crashed process may have left it in the page cache only, and it is reported durable from
/// now on); an empty log gets its first segment.
pub(crate) fn start(
    state: WriterState,
    active: Option<(u64, u64)>,
    cfg: WriterConfig,
    shared: Arc<Shared>,
    rx: Receiver<Command>,
) -> Result<JoinHandle<()>, StoreError> {
    let seg = open_active(&cfg, active, state.next_seq)?;
    let dir = cfg.dir.clone();
    let stack_size = cfg.stack_size;
    let writer = Writer::new(state, seg, cfg, shared, rx);
    let mut builder = crate::sync::thread::Builder::new().name("batpak-writer".into());
    if let Some(bytes) = stack_size {
        builder = builder.stack_size(bytes);
    }
    builder
        .spawn(move || writer.run())
        .map_err(|source| StoreError::IoAt {
            path: dir,
            op: "spawn writer thread",
            source,
        })
}

/// The segment the writer appends to: the recovered last one, made durable, or a new first one
/// starting at `next_seq`.
fn open_active(
    cfg: &WriterConfig,
    active: Option<(u64, u64)>,
    next_seq: u64,
) -> Result<SegmentWriter, StoreError> {
    let (disk, dir, opts) = (StdArc::clone(&cfg.disk), &cfg.dir, cfg.segment.clone());
    let clean = take_clean_mark(&*disk, dir).map_err(|source| StoreError::IoAt {
        path: dir.join(CLEAN_FILE_NAME),
        op: "remove clean-close mark",
        source,
    })?;
    let mut seg = match active {
        Some((id, len)) => SegmentWriter::reopen(disk, dir, id, len, opts),
        None => SegmentWriter::create(disk, dir, 0, next_seq, opts),
    }
    .map_err(|source| StoreError::IoAt {
        path: dir.clone(),
        op: "open active segment",
        source,
    })?;
    seg.seed_bugs(cfg.bugs);
    if active.is_some() {
        seg.make_recovered_durable(clean)?;
    }
    Ok(seg)
}

/// The frontier as the writer last stored it: the cells are for other threads; this copy
/// lets the writer state what it believes of them without loading them again.
#[derive(Debug)]
struct Mirror {
    written: u64,
    durable: u64,
    visible: u64,
}

impl Mirror {
    fn new(next: u64) -> Self {
        Self {
            written: next,
            durable: next,
            visible: next,
        }
    }

    /// A group is written (and synced if `fsync`) and published up to `written`.
    /// `immediate`: acknowledgements wait for durability, so nothing is published before it
    /// is durable.
    fn advance(&mut self, written: u64, fsync: bool, immediate: bool) {
        assert!(
            written >= self.written,
            "INV-STABLE-SEQ: the written frontier never moves back"
        );
        self.written = written;
        if fsync {
            self.durable = written;
        }
        self.visible = written;
        assert!(
            self.written >= self.durable && self.written >= self.visible,
            "the frontier: written >= durable and written >= visible"
        );
        assert!(
            !immediate || self.durable >= self.visible,
            "INV-DURABLE: with immediate durability nothing is published before it is durable"
        );
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    state: WriterState,
    seg: SegmentWriter,
    cfg: WriterConfig,
    shared: Arc<Shared>,
    rx: Receiver<Command>,
    frames: Frames,
    flush: Flush,
    /// The frontier as this thread last stored it.
    mirror: Mirror,
    /// Origin of the real monotonic reading (when the clock gives none).
    started: std::time::Instant,
    /// The durable frontier when the last recovery checkpoint was saved (or at open).
    checkpointed: u64,
}

impl Writer {
    fn new(
        mut state: WriterState,
        seg: SegmentWriter,
        cfg: WriterConfig,
        shared: Arc<Shared>,
        rx: Receiver<Command>,
    ) -> Self {
        let next = state.next_seq;
        shared.frontier.written.store(next, Ordering::SeqCst);
        shared.frontier.durable.store(next, Ordering::SeqCst);
        shared.frontier.visible.store(next, Ordering::SeqCst);
        if cfg.observer.wants_units() {
            state.units.ready_units = Some(Vec::new());
        }
        Self {
            frames: Frames::new(cfg.segment.frame_max, seg.salt(), next),
            mirror: Mirror::new(next),
            flush: Flush::new(cfg.durability),
            state,
            seg,
            cfg,
            shared,
            rx,
            started: std::time::Instant::now(),
            checkpointed: next,
        }
    }

    /// Monotonic microseconds: the clock's own reading if it has one (test clocks), else real
    /// time since the writer started.
    fn mono_us(clock: &dyn Clock, started: std::time::Instant) -> u64 {
        clock
            .monotonic_us()
            .unwrap_or_else(|| u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// Deferred mode with unsynced records: how long until the oldest of them is due.
    fn flush_due_in(&self) -> Option<Duration> {
        let (clock, started) = (&*self.cfg.clock, self.started);
        self.flush.due_in(|| Self::mono_us(clock, started))
    }

    /// The thread body.
    pub fn run(mut self) {
        let _span = tracing::info_span!("batpak-writer").entered();
        loop {
            let first = if let Some(due) = self.flush_due_in() {
                if due.is_zero() {
                    self.flush_due();
                    continue;
                }
                let polled = match self.poll_command() {
                    Ok(c) => Ok(c),
                    Err(()) => self.rx.recv_timeout(due),
                };
                match polled {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => {
                        self.flush_due();
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
            if let Some(reply) = self.process_group(self.drain_after(first)) {
                self.mark_clean();
                let _ = reply.send(Ok(()));
                break;
            }
        }
        self.exit();
    }

    /// A clean shutdown: every byte written was synced by a successful fsync, so the next open
    /// need not rewrite the last segment (see [`CLEAN_FILE_NAME`]). Not after a failed fsync
    /// whose bytes are still in the file (their pages may be clean without being on disk), nor
    /// with the durable frontier behind the written one; a latch after a full disk whose cut
    /// back was synced, or a failed fsync whose bytes were cut off, leaves the file as synced
    /// and may leave the mark. A failure to leave the mark only costs the next open a rewrite.
    fn mark_clean(&mut self) {
        let written = self.shared.frontier.written.load(Ordering::SeqCst);
        let durable = self.shared.frontier.durable.load(Ordering::SeqCst);
        if durable != written || self.seg.in_doubt() {
            tracing::warn!(
                written,
                durable,
                in_doubt = self.seg.in_doubt(),
                "shutdown with unsynced bytes: the next open rewrites the last segment"
            );
            return;
        }
        if self.cfg.checkpoint {
            self.save_checkpoint(durable);
        }
        if let Err(e) = leave_clean_mark(&*self.cfg.disk, &self.cfg.dir) {
            tracing::warn!(error = %e, "could not leave the clean-close mark; the next open rewrites the last segment");
        }
    }

    /// Saves a recovery checkpoint of the visible events below `durable` (everything there is
    /// synced, so no crash can take it back). The entries and the segment fingerprints are
    /// gathered under the index's read lock (a compaction moves positions and swaps files
    /// under its write lock, so they are of one state); the file is written after it is
    /// released (a compaction in between makes the file stale: the next open ignores it). A
    /// failure is logged, never an error of the store.
    fn save_checkpoint(&mut self, durable: u64) {
        let (disk, dir) = (&*self.cfg.disk, &self.cfg.dir);
        let collected = {
            let index = self.shared.index.read();
            crate::checkpoint::collect(disk, dir, &index, durable)
        };
        crate::checkpoint::save(disk, dir, collected, durable, self.cfg.segment.sync_mode);
        self.checkpointed = durable;
    }

    /// The deferred flush bound is reached with nothing queued: an empty group that syncs.
    fn flush_due(&mut self) {
        let mut out = Vec::new();
        let segment = self.seg.segment_id();
        self.finish_group(&mut out, true, segment);
    }

    /// `first` and whatever else is queued, up to the group's size.
    fn drain_after(&self, first: Command) -> Vec<Command> {
        let mut cmds = vec![first];
        while cmds.len() < self.cfg.group_commit_max_batch {
            match self.rx.try_recv() {
                Ok(c) => cmds.push(c),
                Err(_) => break,
            }
        }
        cmds
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

    /// Decides, places, writes, syncs, publishes and answers one group. Returns the shutdown
    /// reply if the group held a shutdown.
    fn process_group(&mut self, cmds: Vec<Command>) -> Option<Reply<()>> {
        let mut out: Vec<Outgoing> = Vec::with_capacity(cmds.len());
        let before = self.state.next_seq;
        let group_segment = self.seg.segment_id();
        let (forced, shutdown, failure) = self.decide(cmds, group_segment, &mut out);
        if let Some(f) = failure {
            self.latch_group(&mut out, &f);
        }
        let records = self.state.next_seq - before;
        let (clock, started) = (&*self.cfg.clock, self.started);
        let now = || Self::mono_us(clock, started);
        let sync_now = self.flush.must_sync(records, forced, now, self.state.bugs);
        self.finish_group(&mut out, sync_now, group_segment);
        shutdown
    }

    /// Steps through the group's commands, placing each step's frames before the next step
    /// is decided. Returns whether a command needs the group synced, the shutdown reply, and
    /// the I/O failure of a placement (after which the writer is latched and later commands
    /// are refused).
    fn decide(
        &mut self,
        cmds: Vec<Command>,
        group_segment: u64,
        out: &mut Vec<Outgoing>,
    ) -> (bool, Option<Reply<()>>, Option<GroupFailure>) {
        let (mut forced, mut shutdown, mut failure) = (false, None, None);
        let index = self.shared.index.read();
        for cmd in cmds {
            let mut env = StepEnv {
                frames: &mut self.frames,
                clock: &*self.cfg.clock,
                ids: &*self.cfg.ids,
                index: &index,
                limits: self.cfg.limits,
                allow_external_causes: self.cfg.allow_external_causes,
                signer: self.cfg.signer.as_ref(),
            };
            let mut step = self.state.step(cmd, &mut env);
            forced |= step.sync;
            if let Some(r) = step.shutdown.take() {
                shutdown = Some(r);
            }
            match place(&mut self.seg, &mut self.frames, group_segment) {
                Ok(()) => {
                    self.cfg.observer.step(&step);
                    self.state.apply(step, &mut self.frames, out);
                }
                Err(PlaceFailure { failure: f, seq }) => {
                    out.extend(step.fail(f.error(), seq));
                    // A failed roll latches at once: later commands of the group are refused.
                    if self.state.latched.is_none() {
                        self.state.latched = Some(f.detail.clone());
                    }
                    failure = Some(f);
                }
            }
        }
        (forced, shutdown, failure)
    }

    /// Write, Fsync, Publish, Reply. `group_segment`: the active segment when the group began
    /// (the group rolled if it differs now).
    fn finish_group(&mut self, out: &mut Vec<Outgoing>, sync_now: bool, group_segment: u64) {
        if let Some(detail) = self.state.latched.clone() {
            // A latched writer does no more I/O, and its frontiers stay where the failure left
            // them: records counted in `next_seq` since then were never written (their buffer
            // was dropped). Retrying a failed fsync may succeed while the pages it failed to
            // persist are gone, so nothing may be reported durable (nor `sync()` answered Ok).
            self.frames.discard();
            self.latch(out, &detail);
            reply_all(out, false);
            return;
        }
        let fsync = sync_now && !self.state.bugs.has(Mutant::AckBeforeFsync);
        if let Err(f) = self.write_and_sync(fsync, group_segment) {
            self.latch_group(out, &f);
            reply_all(out, false);
            return;
        }
        let written = self.state.next_seq;
        let immediate =
            !self.cfg.durability.is_deferred() && !self.state.bugs.has(Mutant::AckBeforeFsync);
        self.mirror.advance(written, fsync, immediate);
        if fsync {
            self.cfg.observer.fsync(written, &self.shared.frontier);
        }
        self.shared
            .frontier
            .written
            .store(written, Ordering::SeqCst);
        if fsync {
            self.flush.synced();
            // Durable before the publish: a cursor reads this frontier under the index's read
            // lock and delivers what the index holds below it, so every group the index holds
            // must already be below it whole. Stored after the publish, a fence's commit group
            // (its last fenced event and the commit record) could be seen published with the
            // frontier still inside it: half the fence delivered (stress/loom scenario (h)).
            if !self.state.bugs.has(Mutant::DurableAfterPublish) {
                self.shared
                    .frontier
                    .durable
                    .store(written, Ordering::SeqCst);
            }
        }
        self.publish();
        if fsync && self.state.bugs.has(Mutant::DurableAfterPublish) {
            // The seeded bug: the old order, with the window between the two made wide.
            crate::sync::thread::sleep(Duration::from_millis(20));
            self.shared
                .frontier
                .durable
                .store(written, Ordering::SeqCst);
        }
        self.shared
            .frontier
            .visible
            .store(written, Ordering::SeqCst);
        if fsync || self.shared.durable_waiters.load(Ordering::SeqCst) > 0 {
            self.shared.wake_durable_waiters();
        }
        self.shared.notify_published();
        self.cfg.observer.replies(out);
        reply_all(out, fsync || self.state.bugs.has(Mutant::AckBeforeFsync));
        let every = self.cfg.checkpoint_every;
        if fsync && self.cfg.checkpoint && every > 0 && written - self.checkpointed >= every {
            // After the replies: the checkpoint costs the next group's latency, not this one's.
            self.save_checkpoint(written);
        }
    }

    /// Writes the group's bytes and, if `fsync`, syncs the segment. A failure is returned
    /// for the writer to latch on (its unsynced bytes already cut off).
    fn write_and_sync(&mut self, fsync: bool, group_segment: u64) -> Result<(), GroupFailure> {
        let written = self.seg.write(&self.frames.buf);
        self.frames.buf.clear();
        if let Err(e) = written {
            let rolled = self.seg.segment_id() != group_segment;
            self.cfg
                .observer
                .fsync_failed(self.state.next_seq, &self.shared.frontier);
            return Err(after_write_failure(&mut self.seg, &e, rolled));
        }
        if !fsync {
            return Ok(());
        }
        let mut synced = self.seg.sync();
        if synced.is_err() && self.state.bugs.has(Mutant::FsyncRetryAcks) {
            synced = self.seg.sync();
        }
        synced.map_err(|e| {
            self.cfg
                .observer
                .fsync_failed(self.state.next_seq, &self.shared.frontier);
            after_sync_failure(&mut self.seg, &e, false)
        })
    }

    /// Publish: the whole group becomes visible under one write lock (INV-READ-ISOLATION).
    fn publish(&mut self) {
        let ready = std::mem::take(&mut self.state.units.ready);
        if let Some(units) = self.state.units.ready_units.as_mut() {
            // Reported before the index publish: a reader cannot tell, and the Publish steps
            // must precede the replies either way.
            self.cfg.observer.publish(units, &ready);
            units.clear();
        }
        if ready.is_empty() {
            self.state.units.ready = ready;
            return;
        }
        if self.state.bugs.has(Mutant::BatchPublishPerEvent) {
            for slot in ready.iter() {
                let mut index = self.shared.index.write();
                self.state
                    .publish_into(&mut index, std::slice::from_ref(slot));
            }
        } else {
            let mut index = self.shared.index.write();
            self.state.publish_into(&mut index, &ready);
        }
        self.state.settle_published(&ready);
        // The buffer's allocation serves the next group.
        let mut ready = ready;
        ready.clear();
        self.state.units.ready = ready;
    }

    /// Latches after the group's I/O failed. A definite failure (nothing of the group is in
    /// the log) gives every command of the group a definite error naming the file and the
    /// cause (`StorageFull` for a full disk); after a cut back, whose sync made everything
    /// written before the group durable, the durable frontier says so. Either way later
    /// writes are refused until the store is reopened: the state machine has already taken
    /// the group's sequences, so the writer cannot go on after them.
    fn latch_group(&mut self, out: &mut Vec<Outgoing>, failure: &GroupFailure) {
        if failure.synced_before {
            let written = self.shared.frontier.written.load(Ordering::SeqCst);
            self.mirror.durable = written;
            self.shared
                .frontier
                .durable
                .store(written, Ordering::SeqCst);
            self.shared.wake_durable_waiters();
            self.shared.notify_published();
        }
        #[cfg(batpak_mutant)]
        if self.state.bugs.has(Mutant::LatchHidesUnsynced) {
            let durable = self.shared.frontier.durable.load(Ordering::SeqCst);
            self.shared.index.write().retain_below(durable);
            self.shared
                .frontier
                .visible
                .store(durable, Ordering::SeqCst);
        }
        self.latch_with(out, &failure.detail, &|| failure.error());
    }

    /// Latch after an I/O failure: every acknowledgement of this group becomes an
    /// indeterminate error, nothing of it is published, and later writes are refused.
    fn latch(&mut self, out: &mut Vec<Outgoing>, detail: &str) {
        let unknown = || StoreError::OutcomeUnknown {
            detail: detail.to_string(),
        };
        self.latch_with(out, detail, &unknown);
    }

    /// [`Writer::latch`] with the error `error()` for every acknowledgement of the group.
    fn latch_with(
        &mut self,
        out: &mut Vec<Outgoing>,
        detail: &str,
        error: &impl Fn() -> StoreError,
    ) {
        tracing::error!(error = %detail, "writer I/O failure: latching, writes refused until reopen");
        self.state.latched = Some(detail.to_string());
        self.state.units.ready.clear();
        if let Some(units) = self.state.units.ready_units.as_mut() {
            units.clear();
        }
        // Nothing will be synced any more: no flush is due.
        self.flush.synced();
        for o in out.iter_mut() {
            o.fail(error);
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
            if let Some(mut stopped) = self.shared.stopped.try_write() {
                *stopped = true;
                break;
            }
            crate::sync::thread::yield_now();
        }
        while self.rx.try_recv().is_ok() {}
        self.shared.wake_durable_waiters();
        self.shared.notify_published();
        tracing::info!("writer stopped");
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A panic unwinding through the writer still closes the gate and drains the queue.
        if !*self.shared.stopped.read() {
            self.exit();
        }
    }
}

/// Sends every answer; receipts say whether they are `durable`.
fn reply_all(out: &mut Vec<Outgoing>, durable: bool) {
    use super::state::Answer;
    for o in out.drain(..) {
        match o.answer {
            Answer::Receipt(tx, r) => {
                let _ = tx.send(r.map(|mut x| {
                    x.durable = durable;
                    x
                }));
            }
            Answer::Receipts(tx, r) => {
                let _ = tx.send(r.map(|mut v| {
                    for x in v.iter_mut() {
                        x.durable = durable;
                    }
                    v
                }));
            }
            Answer::Unit(tx, r) => {
                let _ = tx.send(r);
            }
            Answer::Token(tx, r) => {
                let _ = tx.send(r);
            }
        }
    }
}
