//! Seeded bugs ("implementation mutants"): each one breaks an invariant on purpose, so that
//! the invariant's witness test can show that it catches the bug (a test that cannot fail
//! proves nothing). Names follow the spec's mutants (`spec/README.md`, `snake_case` there,
//! `CamelCase` here) where the spec seeds the same bug.
//!
//! They exist only in the mutant build, `--cfg batpak_mutant` (`just test-mutants`, and every
//! loom and shuttle build): there [`Mutant`] is public (`batpak::__testing::Mutant`) and
//! `StoreConfig::with_mutant` seeds one. In every other build a store carries a zero-sized
//! [`Bugs`] whose [`Bugs::has`] is `false` at compile time, so each seeded branch compiles away
//! and no seeded bug can be reached at run time.

/// A seeded bug; the doc line of each says which invariant it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(not(batpak_mutant), allow(dead_code))]
pub enum Mutant {
    /// No seeded bug.
    #[default]
    None,
    /// Recovery publishes batches without their commit record (spec `recover_partial_batch`;
    /// breaks INV-BATCH-ATOMIC).
    RecoverPartialBatch,
    /// Recovery hides everything after an unfinished unit (spec
    /// `recovery_stops_at_hidden_unit`; breaks INV-NO-COLLATERAL).
    RecoveryStopsAtHiddenUnit,
    /// Recovery ignores fence records: fenced events count as plain, so a fence open at the
    /// crash becomes visible (spec `recover_open_fence_visible`; breaks INV-FENCE-CRASH).
    RecoverOpenFenceVisible,
    /// Recovery does not cut the torn tail on disk (spec `recovery_keeps_torn_tail`; breaks
    /// INV-RECOVERY-IDEMPOTENT).
    RecoveryKeepsTornTail,
    /// Recovery cuts at the first damage without looking for valid records after it, so a
    /// hole (a lost write before a kept one) silently drops the records after it (breaks
    /// INV-CORRUPTION-FAILS-CLOSED).
    RecoveryCutsAtHole,
    /// The durable mode acknowledges before fsync (spec `ack_before_fsync`; breaks
    /// INV-DURABLE).
    AckBeforeFsync,
    /// Fenced events are published as they are written, before the fence commits (spec
    /// `visible_before_commit`; breaks INV-FENCE-HIDDEN).
    VisibleBeforeCommit,
    /// Fence commit is acknowledged without syncing its record (spec
    /// `fence_commit_ack_before_durable`; breaks INV-FENCE-CRASH).
    FenceCommitAckBeforeDurable,
    /// A cancelled fence's events are published anyway, live and in recovery (spec
    /// `recover_cancel_as_commit`, which seeds it in recovery only; breaks INV-NO-RESURRECT).
    CancelAsCommit,
    /// Recovery renumbers sequences densely over visible events (spec `recovery_renumbers`;
    /// breaks INV-STABLE-SEQ).
    RecoveryRenumbers,
    /// A read-only open recovers with the writable open's cut policy, so it truncates a torn
    /// tail and removes record-less segments on disk (breaks INV-READ-ONLY).
    ReadOnlyCutsOnDisk,
    /// A read-only open takes the writer's exclusive lock (creating the lock file if missing),
    /// so a second reader is refused (upstream's D12; breaks INV-READ-ONLY).
    ReadOnlyLocksExclusive,
    /// A snapshot syncs neither its files nor its directory, so `snapshot()` returns `Ok` for
    /// a copy a power loss can take away (upstream's D13; breaks INV-SNAPSHOT).
    SnapshotSkipsSync,
    /// A snapshot copies every segment as it is now instead of stopping at the durable
    /// frontier, so it holds records written after it started, and a torn write in progress
    /// (breaks INV-SNAPSHOT).
    SnapshotPastFrontier,
    /// The entity clock restarts inside a fence (breaks INV-CHAIN).
    ChainRestartsInFence,
    /// Dropping a fence sends its cancel with a blocking send (breaks INV-DROP).
    DropBlocks,
    /// The writer publishes a group one event per index write lock, so a reader can see part
    /// of a batch or fence (spec `batch_publish_per_event`; breaks INV-BATCH-ATOMIC,
    /// INV-FENCE-HIDDEN, INV-READ-ISOLATION).
    BatchPublishPerEvent,
    /// `try_submit` enqueues first and then reports `Backpressure` if the queue looks full, so
    /// a "definite" refusal is written anyway (breaks INV-DEFINITE-ERRORS).
    BackpressureAfterSend,
    /// The writer stamps events with the raw wall-clock reading instead of the hybrid logical
    /// clock, so time goes backwards when the clock steps back (breaks INV-HLC-MONOTONE).
    RawWallClock,
    /// A batch whose keys are all known is written again instead of answered with the
    /// original receipts (breaks INV-IDEMPOTENT).
    BatchRetryWritesAgain,
    /// `wait_for_durable` overlooks the writer's exit and sleeps until its timeout
    /// (breaks INV-NO-HANG).
    WaitIgnoresWriterExit,
    /// Open counts what recovery read (possibly from the page cache a crashed process left)
    /// as durable without syncing it (spec `recovery_trusts_page_cache`; breaks INV-DURABLE
    /// after a process crash and then a power loss).
    RecoveryTrustsPageCache,
    /// A segment roll does not sync the segment it seals (breaks INV-PREFIX / INV-DURABLE: a
    /// power loss keeps the new segment and loses the old one's unsynced tail).
    RollSkipsSealSync,
    /// After a failed fsync the writer retries it and acknowledges when the retry succeeds
    /// (spec `fsync_retry_acks`; breaks INV-DURABLE: the retry proves nothing about the pages
    /// the failed one marked clean).
    FsyncRetryAcks,
    /// A write that fails with ENOSPC is taken as done and acknowledged (breaks INV-DURABLE /
    /// INV-DEFINITE-ERRORS).
    NoSpaceSwallowed,
    /// A fence remembers only the last thread that used it as its holder, so the thread that
    /// began it blocks forever on its own fenced ticket after a scoped worker submitted
    /// through it (breaks INV-NO-HANG).
    FenceRemembersLastThread,
    /// An idempotent retry of a key whose original is pending in the open fence answers the
    /// original receipt at once, before the fence decides: after a cancel the retry holds a
    /// receipt for an event that never becomes visible (breaks INV-IDEMPOTENT).
    IdempotentRetryAnswersEarly,
    /// Recovery looks for valid records after damage from the next byte on, inside the
    /// damaged frame's own extent, so a frame-shaped piece of a torn record's payload turns a
    /// torn tail into "corruption" and the store does not open (breaks
    /// INV-RECOVERY-IDEMPOTENT).
    RecoveryLooksInsideTornFrame,
    /// Deferred mode: the flush timer restarts with every command instead of running from
    /// the oldest unsynced write, so a steady trickle of appends is never synced (breaks
    /// INV-FLUSH-BOUND).
    FlushTimerRestarts,
    /// After a failed fsync in deferred mode the writer takes back what was not durable:
    /// it lowers the visible frontier to the durable one and drops the unsynced events from
    /// the index, so events a reader saw disappear within the process (breaks
    /// INV-MONOTONE-VISIBLE).
    LatchHidesUnsynced,
    /// Compare-and-swap reads `Some(0)` as "no expectation" instead of "no events yet", so an
    /// append that expects an empty entity lands after its events (breaks INV-CAS).
    CasZeroMeansAny,
    /// The writer does not check that a causation id names an existing event (breaks
    /// INV-CAUSAL).
    CausationUnchecked,
    /// The frame decoder reads the frame header without checking that the buffer holds one,
    /// so a short buffer panics (breaks INV-BOUNDED-DECODE). Seeded per thread
    /// ([`seed_thread`]): the codec has no store configuration.
    DecodeReadsPastEnd,
    /// After an unclean shutdown `open` only syncs the recovered last segment instead of
    /// rewriting it: pages a failed fsync of the crashed process marked clean are skipped by
    /// the sync and lost by a power loss, yet reported durable (breaks INV-DURABLE after a
    /// failed fsync, a process crash and a power loss).
    RecoveryFsyncTrustsCleanPages,
    /// `open` does not take the directory lock, so two stores write one directory (breaks
    /// INV-EXCLUSIVE).
    OpenSkipsLock,
    /// The waits take the target point's sequence as exclusive, so `wait_for_durable(&r, ..)`
    /// returns once everything *before* `r` is durable, `r` itself not yet (spec
    /// `wait_before_durable`; breaks INV-DURABLE).
    WaitPointExclusive,
    /// `commit_with` writes the consumer's checkpoint as its own record before the outputs'
    /// batch instead of inside it, so a crash between them keeps the checkpoint and loses the
    /// outputs (spec `checkpoint_not_atomic`; breaks INV-EXACTLY-ONCE).
    CheckpointNotAtomic,
    /// A checkpoint is acknowledged without syncing its record, and consumers deliver events
    /// that are visible but not yet durable, so an acknowledged checkpoint can point past the
    /// durable frontier (spec `checkpoint_past_durable`; breaks INV-CHECKPOINT-DURABLE).
    CheckpointAckBeforeDurable,
    /// Consumers and cursors are handed events that are visible but not yet durable (the
    /// checkpoint itself is still synced before it is acknowledged), so a crash can take back
    /// an event a consumer acted on and give its sequence to another (breaks
    /// INV-CHECKPOINT-DURABLE).
    DeliverBeforeDurable,
    /// A cursor reads the durable frontier before it takes the index read lock, so a fence
    /// commit published in between shows only the fence's events below the stale frontier:
    /// half a unit in one poll (breaks INV-READ-ISOLATION / INV-CURSOR-ORDER).
    FrontierReadBeforeIndex,
    /// A lossy subscriber that falls behind is disconnected: `recv()` answers `None` while the
    /// store is open (breaks INV-LOSSY-NOTICE).
    LossyDisconnect,
    /// A cursor's poll reads one sequence too far back after a seek and delivers the event it
    /// was positioned after again (breaks INV-CURSOR-ORDER).
    CursorRedelivers,
    /// `project` serves a kept projection snapshot as it is, without folding the events
    /// appended after it (breaks INV-PROJECTION).
    ProjectionStaleSnapshot,
    /// The projection cache persists a row at the last visible event instead of the last
    /// durable one, so a row can cover events a power loss takes back (upstream's D2; breaks
    /// INV-PROJECTION).
    ProjectionCacheAboveDurable,
    /// A read-only store with a projection cache writes rows at any recovered event, also in
    /// the last segment, whose bytes may still be only in the page cache of a writer that
    /// crashed (breaks INV-PROJECTION: a row could cover events a power loss takes back).
    ReadOnlyCacheAboveSealed,
    /// A reactor without a checkpoint writes its reactions without idempotency keys, so a
    /// replay after a restart writes them again (breaks INV-EXACTLY-ONCE).
    ReactionKeysOmitted,
    /// Compaction decides event by event instead of unit by unit, so it keeps part of a
    /// committed batch or fence and drops the rest (breaks INV-COMPACTION, INV-BATCH-ATOMIC).
    CompactionSplitsUnit,
    /// Compaction removes the merged segments before the compacted one is durable (and skips
    /// its sync), so a power loss in between loses their events (breaks INV-COMPACTION,
    /// INV-DURABLE).
    CompactionDeletesBeforeDurable,
    /// Compaction takes a fence that is still open for one a crash left (a consumer's
    /// checkpoint written while it is open ends it) and removes or moves its records under the
    /// writer (upstream's D14; breaks INV-COMPACTION, INV-FENCE-HIDDEN).
    CompactionTakesOpenFence,
    /// Recovery removes the segments a compaction superseded before it syncs the directory
    /// that holds the compaction's rename (the order before a71efeb; spec
    /// `recovery_unlinks_before_dir_sync`): after a compaction that crashed before its own
    /// directory sync, a power loss during recovery can keep the unlinks and lose the rename,
    /// and with it the compacted records (breaks INV-COMPACTION, INV-DURABLE).
    RecoveryUnlinksBeforeDirSync,
    /// A read whose event a compaction moved between the index lookup and the file read
    /// returns that read's error (the old file is gone or renamed over) instead of reading
    /// the event at its new position (breaks INV-COMPACTION: a concurrent compaction makes a
    /// read of a kept event fail). To make the race happen in every run, it also sleeps
    /// 2 ms before that first read.
    CompactionReadRace,
    /// `cursor_worker` returns before its worker registered its consumer (which the worker
    /// does late), so a `consumer(id)` right after spawning can take the id from it
    /// (breaks the worker's documented contract: registered when spawning returns).
    WorkerRegistersLate,
    /// The writer moves the durable frontier after it publishes a group (and, to widen the
    /// window, sleeps 20 ms in between), so a cursor that reads the frontier under the index
    /// lock can see a fence published whose last event (sharing the commit's group) is still
    /// above the frontier: half the fence delivered (breaks INV-CURSOR-ORDER /
    /// INV-READ-ISOLATION).
    DurableAfterPublish,
    /// Recovery trusts the recovery checkpoint's saved hashes by sequence number alone: it
    /// skips the fingerprints of the segments the checkpoint covers and the per-frame match
    /// (event id, segment, offset, length), so a checkpoint that is stale or of another store
    /// hands recovery hashes of other events (breaks INV-STABLE-SEQ / INV-CHAIN: the open
    /// differs from a full scan, or fails on a chain it misjudges).
    TrustStaleCheckpoint,
    /// The running writer keeps the idempotency keys of events a compaction removed: a retry
    /// answers the original receipt of an event that no longer exists, while a reopened store
    /// appends it anew (breaks INV-IDEMPOTENT).
    CompactionKeepsKeys,
    /// A checkpoint open's index helper installs its id table without the ids of the last
    /// events the opening thread published (and without the count check that would rebuild
    /// it), so `get` and `contains` miss events the open made visible (breaks INV-DURABLE:
    /// visible by every read API).
    RecoveryIndexLosesLastIds,
}

#[cfg(batpak_mutant)]
crate::sync::per_thread::thread_local! {
    static THREAD_BUG: crate::sync::per_thread::Cell<Mutant> = const { crate::sync::per_thread::Cell::new(Mutant::None) };
}

/// Seeds `mutant` on this thread for code that has no store configuration (the codec) until
/// the guard is dropped (mutant build only).
#[cfg(batpak_mutant)]
pub fn seed_thread(mutant: Mutant) -> ThreadBug {
    THREAD_BUG.with(|b| b.set(mutant));
    ThreadBug(())
}

/// Clears the bug [`seed_thread`] seeded when dropped.
#[cfg(batpak_mutant)]
#[derive(Debug)]
pub struct ThreadBug(());

#[cfg(batpak_mutant)]
impl Drop for ThreadBug {
    fn drop(&mut self) {
        THREAD_BUG.with(|b| b.set(Mutant::None));
    }
}

/// Whether `mutant` is seeded on this thread (always `false` outside the mutant build).
#[inline(always)]
pub(crate) fn thread_has(mutant: Mutant) -> bool {
    #[cfg(batpak_mutant)]
    return THREAD_BUG.with(|b| b.get() as u8 == mutant as u8);
    #[cfg(not(batpak_mutant))]
    {
        let _ = mutant;
        false
    }
}

/// The seeded bug a store runs with: [`Mutant`] in the mutant build, nothing otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bugs {
    #[cfg(batpak_mutant)]
    seeded: Mutant,
}

impl Bugs {
    /// Runs with `mutant` seeded.
    #[cfg(batpak_mutant)]
    pub(crate) const fn seed(mutant: Mutant) -> Self {
        Self { seeded: mutant }
    }

    /// Whether `mutant` is the seeded bug (always `false` outside the mutant build).
    #[inline(always)]
    pub(crate) const fn has(self, mutant: Mutant) -> bool {
        #[cfg(batpak_mutant)]
        return self.seeded as u8 == mutant as u8;
        #[cfg(not(batpak_mutant))]
        {
            let _ = mutant;
            false
        }
    }
}
