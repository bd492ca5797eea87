//! The deterministic multi-session simulator, in the spirit of FoundationDB's simulation and
//! TigerBeetle's VOPR: one seed drives many sessions of the real [`Store`] on one
//! [`SimDisk`] - random workloads ([`Op`]: appends, batches, the outbox, fences committed,
//! cancelled and dropped, fenced batches and outbox flushes, syncs, waits for durability), in
//! durable and deferred mode, with small segments so that rolls happen - and random process
//! crashes, power losses, failed fsyncs (pages kept or dropped), full disks with short writes,
//! I/O errors and dead disks, between sessions and inside them (a fault at a chosen disk
//! operation, counted from the open so that recovery is hit too).
//!
//! The judge is the oracle, not the store. The simulator keeps, next to the disk, what every
//! client was told ([`Acks`]: receipts, `sync()`/`wait_for_durable` answers,
//! `frontier().durable`, over all sessions) and, at every crash, the written log (read from
//! the disk by the independent [`WrittenLog`] reader) and what of it is on the platter. Then:
//! - **INV-DURABLE**: whenever the writer is quiet (after the open, after an operation that
//!   met a failed fsync, at the end of every session) everything promised durable so far is
//!   on the platter (the disk's durable prefix, not what the store believes); after every
//!   recovery every event acknowledged durable is visible with its id, sequence, coordinate,
//!   kind and payload;
//! - **the latch**: after a failed fsync nothing more is acknowledged in that session;
//! - **INV-PREFIX**: a crash image must be a prefix of the written log (a later record kept
//!   while an earlier one is lost means the store let a write reach the disk before an earlier
//!   one was synced), recovery keeps exactly its intact records and cuts a torn tail;
//! - the recovered store shows exactly the oracle's `recover(Image(keep, torn))`
//!   ([`crate::conformance::expected_visible`]), named by the invariant a difference breaks
//!   (INV-NO-RESURRECT, INV-FENCE-CRASH, INV-BATCH-ATOMIC, INV-NO-COLLATERAL, ...);
//! - **INV-STABLE-SEQ**: what recovery kept keeps its sequences, ids and bytes in every later
//!   session; **INV-CHAIN** and **INV-HLC-MONOTONE** over the visible events, after every
//!   recovery and every operation, while every session's clock starts where the last one
//!   stopped, give or take hours (it steps back too);
//! - the live checks of [`Runner`] after every operation (fences hidden until commit, a
//!   cancelled fence never visible, acknowledged events visible, definite errors wrote
//!   nothing);
//! - **INV-PROJECTION** ([`crate::projections`]): every store runs with in-memory projection
//!   snapshots and a `NativeCache` on a cache disk that crashes with it; after every recovery
//!   and every operation that moved the visible or durable frontier, `project`, `project_at`
//!   and `project_region` equal a plain fold of the visible stream (the oracle's `Recover`
//!   after a crash), and every cache row covers only events on the platter (the folds wait
//!   while a fault planned at a fixed disk operation has yet to fire);
//! - **INV-COMPACTION** ([`crate::compaction::sim_compaction`]): a share of the seeds
//!   ([`SimOptions::compaction_percent`]) compacts a copy of the disk the sessions left -
//!   after the final recovery, or (half of them) after a random session in the middle of the
//!   seed, as the next process finds it (torn tails, unsynced pages, open fences a crash
//!   left: the step's open recovers it first) - judged by the compaction oracle and cut by a
//!   process crash, a power loss or a failed fsync at a random one of its disk operations
//!   (or run across an open fence); the cut compaction's recovered disk then takes more
//!   writes and another crash (crash after compaction, reopen, writes, crash). Its randomness
//!   is a stream of its own, so the sessions of every seed are the same with it or without
//!   it;
//! - lifecycle events: a share of the seeds ([`SimOptions::lifecycle_percent`], a stream of
//!   its own) runs every session with `with_lifecycle_events(true)`, so every open and close
//!   appends its lifecycle event, which the oracle sees in the written log like any other;
//! - periodic recovery checkpoints: a share of the seeds
//!   ([`SimOptions::periodic_checkpoint_percent`], a stream of its own) saves the recovery
//!   checkpoint every 1 to 8 durable records (`with_checkpoint_every_n_events`), so process
//!   crashes, power losses and faults strike with a recent checkpoint on disk and in the middle
//!   of its write (temporary file, fsync, rename, directory fsync); every recovery is judged
//!   as without it (the checkpoint is a cache: INV-STABLE-SEQ, INV-CORRUPTION-FAILS-CLOSED).
//!
//! Determinism: a sequential client per session ([`Runner`]), `ManualClock`, `CounterIds`,
//! seeded salts, the flush timer never due; everything random comes from one splitmix64 stream
//! ([`SplitMix`]) of the seed, so a failing seed replays exactly ([`simulate`]).

use crate::check::{check_recovered, open_violation, violation, visible, Check, Violation};
use crate::compaction::{sim_compaction, SimCompactionStats};
use crate::conformance::{Abstract, WrittenLog};
use crate::oracle::DiskState;
use crate::projections::{self, ProjectionStats};
use crate::record::LogRecord;
use crate::workload::{
    barrier, config, Acks, HarnessSalts, Mode, Mutant, Op, Runner, SaltView, SplitMix, DIR, T0,
};
use batpak::__testing::env::{FailedSync, Fault, FaultError, FaultKind, ManualClock, SimDisk};
use batpak::event::EventKind;
use batpak::store::{Store, LIFECYCLE_ENTITY, LIFECYCLE_SCOPE};
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// How a session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// `close()`: a clean shutdown (the next process finds the disk as it is).
    Close,
    /// The process dies (SIGKILL): the page cache survives, nothing becomes durable.
    ProcessCrash,
    /// The power is lost: the disk keeps the image the chooser bytes pick (byte `i`, modulo
    /// n, picks among the n outcomes of the `i`-th file or directory with more than one), and
    /// what it keeps is durable.
    PowerLoss(Vec<u8>),
}

/// A fault planned for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedFault {
    /// `fault` at the session's `offset`-th disk operation (counted from the open's first, so
    /// small offsets hit recovery).
    AtOp {
        /// Operations since the session started.
        offset: u64,
        /// The fault.
        fault: Fault,
    },
    /// `fault` at the `offset`-th disk operation after the open returned and the simulator
    /// checked its recovery (not scheduled if the open failed).
    AfterOpen {
        /// Operations since the open returned.
        offset: u64,
        /// The fault.
        fault: Fault,
    },
    /// A failed operation (transient EIO: at an fsync the pages are marked clean, kept or
    /// dropped) and the process dies at the next operation (a process that panics on an I/O
    /// error, as PostgreSQL does on a failed fsync).
    FailThenCrash {
        /// Operations since the session started.
        offset: u64,
        /// A failed fsync drops the pages it covered.
        drop_pages: bool,
    },
    /// `fault` at the first disk operation named `name` (`"sync_data"`, `"append"`, ...)
    /// issued from client operation `before_op` on.
    Next {
        /// The client operation from which the fault is armed.
        before_op: usize,
        /// The disk operation's name.
        name: &'static str,
        /// The fault.
        fault: Fault,
    },
}

/// One session: a process that opens the store, runs a workload and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    /// Deferred durability (`sync_every_n_events(sync_every)`) instead of durable appends.
    pub deferred: bool,
    /// Events between the deferred mode's automatic fsyncs.
    pub sync_every: u32,
    /// The workload.
    pub ops: Vec<Op>,
    /// How far the wall clock moves before each operation (microseconds; negative: it steps
    /// back; missing: 1 ms).
    pub clock_steps: Vec<i64>,
    /// Faults.
    pub faults: Vec<PlannedFault>,
    /// How the session ends.
    pub end: End,
    /// Where the wall clock starts, relative to where the last session left it.
    pub clock_start_us: i64,
}

/// What the simulator exercised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Seeds run.
    pub seeds: u64,
    /// Sessions run (opens attempted).
    pub sessions: u64,
    /// Recoveries checked against the oracle.
    pub recoveries: u64,
    /// Recoveries that cut a torn tail.
    pub torn_recoveries: u64,
    /// Opens that failed because of an injected fault.
    pub failed_opens: u64,
    /// Client operations run.
    pub ops: u64,
    /// Events acknowledged.
    pub acked_events: u64,
    /// Acknowledged events a crash legitimately lost (never promised durable).
    pub lost_events: u64,
    /// Sessions ended with `close()`.
    pub closes: u64,
    /// Process crashes (session ends and faults inside sessions).
    pub process_crashes: u64,
    /// Power losses.
    pub power_losses: u64,
    /// Power losses that lost records.
    pub lossy_power_losses: u64,
    /// Failed fsyncs (`sync_data`/`sync_all` failing with EIO or ENOSPC), pages kept.
    pub failed_fsyncs_kept: u64,
    /// Failed fsyncs, pages dropped.
    pub failed_fsyncs_dropped: u64,
    /// Full disks (ENOSPC) at a write.
    pub enospc: u64,
    /// Of them with a short write (part of the bytes written).
    pub short_writes: u64,
    /// Other I/O errors: EIO at a write, and EIO or ENOSPC at a read, open, truncation,
    /// directory operation ...
    pub eio: u64,
    /// Disks that died (persistent fault) inside a session.
    pub dead_disks: u64,
    /// Faults that fired during an open (recovery).
    pub faults_in_recovery: u64,
    /// Events handed out to the durable consumers.
    pub consumer_handed_out: u64,
    /// Consumer checkpoints acknowledged (`commit_with` and `commit`).
    pub consumer_commits: u64,
    /// The projection checks ([`crate::projections`]).
    pub projections: ProjectionStats,
    /// The compaction step ([`crate::compaction::sim_compaction`]).
    pub compaction: SimCompactionStats,
    /// Seeds whose sessions ran with lifecycle events.
    pub lifecycle_seeds: u64,
    /// Seeds whose sessions saved the recovery checkpoint every few durable records
    /// ([`SimOptions::periodic_checkpoint_percent`]).
    pub periodic_checkpoint_seeds: u64,
    /// Process crashes and power losses that struck with a recovery checkpoint on disk.
    pub crashes_with_checkpoint: u64,
    /// Of those, the ones that struck in the middle of a checkpoint's write (its temporary file
    /// on disk).
    pub crashes_in_checkpoint_write: u64,
}

impl SimStats {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &SimStats) {
        self.seeds += o.seeds;
        self.sessions += o.sessions;
        self.recoveries += o.recoveries;
        self.torn_recoveries += o.torn_recoveries;
        self.failed_opens += o.failed_opens;
        self.ops += o.ops;
        self.acked_events += o.acked_events;
        self.lost_events += o.lost_events;
        self.closes += o.closes;
        self.process_crashes += o.process_crashes;
        self.power_losses += o.power_losses;
        self.lossy_power_losses += o.lossy_power_losses;
        self.failed_fsyncs_kept += o.failed_fsyncs_kept;
        self.failed_fsyncs_dropped += o.failed_fsyncs_dropped;
        self.enospc += o.enospc;
        self.short_writes += o.short_writes;
        self.eio += o.eio;
        self.dead_disks += o.dead_disks;
        self.faults_in_recovery += o.faults_in_recovery;
        self.consumer_handed_out += o.consumer_handed_out;
        self.consumer_commits += o.consumer_commits;
        self.projections.add(&o.projections);
        self.compaction.add(&o.compaction);
        self.lifecycle_seeds += o.lifecycle_seeds;
        self.periodic_checkpoint_seeds += o.periodic_checkpoint_seeds;
        self.crashes_with_checkpoint += o.crashes_with_checkpoint;
        self.crashes_in_checkpoint_write += o.crashes_in_checkpoint_write;
    }
}

impl fmt::Display for SimStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seeds, {} sessions, {} ops, {} events acknowledged ({} lost, never durable), \
             {} recoveries checked ({} torn tails cut), {} failed opens; \
             ends: {} closes, {} process crashes, {} power losses ({} lossy); \
             faults fired: {} failed fsyncs (pages kept) + {} (pages dropped), {} ENOSPC \
             ({} short writes), {} other I/O errors, {} dead disks, {} during recovery; \
             consumers: {} events handed out, {} checkpoints acknowledged; \
             projections: {} folds equal to the plain fold ({} after a recovery, {} non-empty), \
             {} cache rows on the platter, {} folds failed under a fault; \
             compactions: {} judged ({} dropped events, {} across an open fence, {} in the \
             middle of a seed), cut by {} process crashes, {} power losses, {} failed fsyncs \
             ({} then more writes and a crash), {} refused (definite error); {} seeds with \
             lifecycle events; recovery checkpoints: {} seeds saving one every few records, {} \
             crashes with one on disk ({} in the middle of its write)",
            self.seeds,
            self.sessions,
            self.ops,
            self.acked_events,
            self.lost_events,
            self.recoveries,
            self.torn_recoveries,
            self.failed_opens,
            self.closes,
            self.process_crashes,
            self.power_losses,
            self.lossy_power_losses,
            self.failed_fsyncs_kept,
            self.failed_fsyncs_dropped,
            self.enospc,
            self.short_writes,
            self.eio,
            self.dead_disks,
            self.faults_in_recovery,
            self.consumer_handed_out,
            self.consumer_commits,
            self.projections.folds,
            self.projections.after_recovery,
            self.projections.non_empty,
            self.projections.cache_rows,
            self.projections.errors,
            self.compaction.runs,
            self.compaction.dropped,
            self.compaction.open_fence,
            self.compaction.mid_run,
            self.compaction.process_crashes,
            self.compaction.power_losses,
            self.compaction.failed_fsyncs,
            self.compaction.writes_after,
            self.compaction.refused,
            self.lifecycle_seeds,
            self.periodic_checkpoint_seeds,
            self.crashes_with_checkpoint,
            self.crashes_in_checkpoint_write
        )
    }
}

/// A session between its workload and its end.
pub struct Opened {
    /// The store, if the open succeeded.
    pub store: Option<Store>,
    watches: Vec<Watch>,
    open_end: u64,
}

/// What the next recovery must produce: the written log at the last crash, and which image
/// of it the crash left.
#[derive(Debug, Clone, Default)]
struct Expectation {
    /// The written log at the crash.
    log: Vec<LogRecord>,
    abs: Abstract,
    /// Records recovery keeps (`DiskState::recover`).
    keep: usize,
    /// Global sequences recovery makes visible (`DiskState::recover`).
    visible: BTreeSet<u64>,
    /// The image has a torn tail recovery must cut.
    torn: bool,
    what: String,
}

/// A scheduled fault and where it fired.
#[derive(Debug, Clone)]
struct Watch {
    /// A fixed operation index, or the first operation with this name from an index on.
    at: Target,
    fault: Fault,
    /// The client operation from which a named fault is armed.
    before_op: Option<usize>,
    /// (index, operation name) once it fired.
    fired: Option<(u64, &'static str)>,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Index(u64),
    Named(&'static str, Option<u64>),
}

impl Watch {
    /// Looks whether it fired (the writer must be quiet).
    fn resolve(&mut self, disk: &SimDisk, names: &mut Option<Vec<&'static str>>) {
        if self.fired.is_some() {
            return;
        }
        let count = disk.op_count();
        let names = names.get_or_insert_with(|| disk.op_names());
        match self.at {
            Target::Index(i) if i < count => {
                self.fired = names
                    .get(usize::try_from(i).unwrap_or(usize::MAX))
                    .map(|n| (i, *n));
            }
            Target::Named(name, Some(from)) => {
                let from = usize::try_from(from).unwrap_or(usize::MAX);
                self.fired = names
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, n)| **n == name)
                    .map(|(i, n)| (i as u64, *n));
            }
            _ => {}
        }
    }

    /// A failed fsync: the store must latch.
    fn is_failed_fsync(&self) -> bool {
        self.fault.kind == FaultKind::Transient
            && self
                .fired
                .is_some_and(|(_, n)| n == "sync_data" || n == "sync_all")
    }
}

/// The simulator's state: one disk, many sessions.
pub struct Sim {
    disk: SimDisk,
    /// The projection cache's disk (crashes with `disk`).
    cache_disk: SimDisk,
    /// Records of the written log known to be on the platter in this session (the platter
    /// only grows within one).
    rows_durable: u64,
    /// Whether the projection checks run ([`crate::projections`]).
    projections: bool,
    /// Whether every open and close records its lifecycle event
    /// (`StoreConfig::with_lifecycle_events`).
    lifecycle: bool,
    /// `StoreConfig::with_checkpoint_every_n_events`, if not the default (at close only).
    checkpoint_every: Option<u64>,
    /// The store's (visible, durable) frontier at the last live projection check of the
    /// session: nothing to check again while it stays.
    projected_at: Option<(u64, u64)>,
    mutant: Mutant,
    segment_max_bytes: u64,
    session: u64,
    clock_us: i64,
    acks: Acks,
    n: u64,
    expect: Expectation,
    /// The records the last successful recovery kept (made durable): every later session
    /// must read them unchanged.
    stable: Vec<LogRecord>,
    /// What it exercised.
    pub stats: SimStats,
    /// One line per session and crash (printed with a failing seed).
    pub journal: Vec<String>,
}

/// The written log's records that are on the platter now, as a prefix.
fn platter(disk: &SimDisk, written: &WrittenLog) -> usize {
    written.durable_len(disk, Path::new(DIR))
}

fn chooser(bytes: &[u8]) -> impl FnMut(usize) -> usize + '_ {
    let mut it = bytes.iter();
    move |_| it.next().map_or(0, |&b| usize::from(b))
}

impl Sim {
    /// A fresh disk; the store runs with `mutant` and `segment_max_bytes`-byte segments.
    pub fn new(mutant: Mutant, segment_max_bytes: u64) -> Self {
        Sim {
            disk: SimDisk::new(),
            cache_disk: SimDisk::new(),
            rows_durable: 0,
            projections: true,
            lifecycle: false,
            checkpoint_every: None,
            projected_at: None,
            mutant,
            segment_max_bytes,
            session: 0,
            clock_us: T0,
            acks: Acks::default(),
            n: 0,
            expect: Expectation {
                what: "a fresh disk".into(),
                ..Expectation::default()
            },
            stable: Vec::new(),
            stats: SimStats::default(),
            journal: Vec::new(),
        }
    }

    /// Without the projection checks (and without snapshots or a cache in the store).
    pub fn without_projections(mut self) -> Self {
        self.projections = false;
        self
    }

    /// With lifecycle events: every open appends `SYSTEM_OPEN_COMPLETED` and every `close()`
    /// `SYSTEM_CLOSE_COMPLETED`, events the oracle sees in the written log like any other.
    pub fn with_lifecycle_events(mut self) -> Self {
        self.lifecycle = true;
        self
    }

    /// Every session saves the recovery checkpoint every `n` durable records
    /// (`StoreConfig::with_checkpoint_every_n_events`), not only at a clean close: crashes and
    /// power losses strike with a recent one on disk, and in the middle of its write.
    pub fn with_checkpoint_every(mut self, n: u64) -> Self {
        self.checkpoint_every = Some(n);
        self
    }

    /// The disk (the live process's handle).
    pub fn disk(&self) -> &SimDisk {
        &self.disk
    }

    /// Everything acknowledged so far (lost, never durable events pruned).
    pub fn acks(&self) -> &Acks {
        &self.acks
    }

    /// Runs one session: open (recovery checked against the oracle), the workload, the end.
    pub fn run_session(&mut self, plan: &SessionPlan) -> Check {
        let s = self.begin_session(plan);
        let ctx = |v: Violation| v.context(format!("session {s}"));
        let opened = self.open_and_run(plan).map_err(ctx)?;
        self.finish(opened, plan).map_err(ctx)
    }

    /// Counts and journals a new session; returns its number.
    pub fn begin_session(&mut self, plan: &SessionPlan) -> u64 {
        self.session += 1;
        self.stats.sessions += 1;
        self.journal.push(format!(
            "session {}: {} {}, {} ops, faults {:?}, end {:?}",
            self.session,
            if plan.deferred { "deferred" } else { "durable" },
            plan.sync_every,
            plan.ops.len(),
            plan.faults,
            plan.end
        ));
        self.session
    }

    /// Opens once more with no fault and checks the recovery (the end of a simulation).
    pub fn final_recovery(&mut self) -> Check {
        let plan = SessionPlan {
            deferred: false,
            sync_every: 1,
            ops: Vec::new(),
            clock_steps: Vec::new(),
            faults: Vec::new(),
            end: End::Close,
            clock_start_us: 1_000,
        };
        self.run_session(&plan)
    }

    /// The first part of a session (after [`Sim::begin_session`]): its faults scheduled, the
    /// open (its recovery checked against the oracle), the workload (each operation checked).
    /// The store stays open (if the open succeeded) for [`Sim::finish`] or a caller's own end.
    pub fn open_and_run(&mut self, plan: &SessionPlan) -> Result<Opened, Violation> {
        let start = self.disk.op_count();
        let mut watches = self.schedule(start, &plan.faults);
        self.clock_us = self.clock_us.saturating_add(plan.clock_start_us);
        let clock = Arc::new(ManualClock::new(self.clock_us));
        let salts = Arc::new(HarnessSalts::starting_at(self.session << 20));
        let mode = Mode {
            deferred: plan.deferred,
            mutant: self.mutant,
        };
        let mut cfg = config(&self.disk, mode, self.session)
            .with_clock_source(Arc::clone(&clock) as Arc<dyn batpak::__testing::env::Clock>)
            .with_entropy_source(Arc::clone(&salts) as Arc<dyn batpak::__testing::env::Entropy>)
            .with_segment_max_bytes(self.segment_max_bytes)
            .with_lifecycle_events(self.lifecycle);
        if plan.deferred {
            cfg = cfg.with_sync_every_n_events(plan.sync_every.max(2));
        }
        if let Some(n) = self.checkpoint_every {
            cfg = cfg.with_checkpoint_every_n_events(n);
        }
        self.rows_durable = 0;
        self.projected_at = None;
        let opened = if self.projections {
            cfg = cfg.with_projection_snapshots(projections::SNAPSHOTS);
            let cache = projections::open_cache(&self.cache_disk);
            Store::open_with_cache(cfg, Box::new(cache))
        } else {
            Store::open(cfg)
        };
        let open_end = self.disk.op_count();
        let store = match opened {
            Ok(s) => Some(s),
            Err(e) => {
                let mut names = None;
                watches
                    .iter_mut()
                    .for_each(|w| w.resolve(&self.disk, &mut names));
                if !watches.iter().any(|w| w.fired.is_some()) {
                    return Err(open_violation(
                        &e,
                        "INV-PREFIX",
                        &format!("recovery after {}", self.expect.what),
                    ));
                }
                self.stats.failed_opens += 1;
                self.journal.push(format!("  open failed: {e}"));
                None
            }
        };
        if let Some(store) = &store {
            let indexed = plan.faults.iter().any(|f| {
                !matches!(
                    f,
                    PlannedFault::Next { .. } | PlannedFault::AfterOpen { .. }
                )
            });
            self.check_recovery(store, !indexed)?;
            let acks = std::mem::take(&mut self.acks);
            let acked_before = acks.events.len() + acks.staged.len();
            let mut runner = Runner::new(store, acks, !plan.faults.is_empty())
                .counting_from(self.n)
                .with_salts(SaltView {
                    disk: self.disk.clone(),
                    salts: Arc::clone(&salts),
                });
            let d = store.frontier().durable;
            if d > runner.acks.durable_len() {
                runner.acks.claims.push(crate::workload::Claim {
                    inv: "INV-DURABLE",
                    seq: d - 1,
                    what: "frontier().durable after the open".into(),
                });
            }
            let written = WrittenLog::read(&self.disk, Path::new(DIR));
            let mut r = self.check_platter("after the open", &runner.acks, &written);
            // The projections after the recovery (once what the open promised is checked:
            // a row covers what the store believes durable).
            if r.is_ok() && self.projections && !self.index_fault_pending(store, &watches) {
                r = self.check_recovered_projections(store, !plan.faults.is_empty());
            }
            // Faults counted from after the open (and its checks, whose reads are disk
            // operations too).
            let after = self.disk.op_count();
            for f in &plan.faults {
                if let PlannedFault::AfterOpen { offset, fault } = *f {
                    self.disk.fail_with(after + offset, fault);
                    watches.push(Watch {
                        at: Target::Index(after + offset),
                        fault,
                        before_op: None,
                        fired: None,
                    });
                }
            }
            if r.is_ok() {
                r = self.run_ops(store, &mut runner, plan, &clock, &mut watches);
            }
            self.n = runner.counter();
            self.acks = runner.abandon();
            let acked_after = self.acks.events.len() + self.acks.staged.len();
            self.stats.acked_events += acked_after.saturating_sub(acked_before) as u64;
            r?;
        }
        let steps: i64 = (0..plan.ops.len())
            .map(|j| plan.clock_steps.get(j).copied().unwrap_or(1_000))
            .sum();
        self.clock_us = self.clock_us.saturating_add(steps);
        Ok(Opened {
            store,
            watches,
            open_end,
        })
    }

    /// Schedules the faults planned at fixed operations; named ones are armed later.
    fn schedule(&self, start: u64, faults: &[PlannedFault]) -> Vec<Watch> {
        let mut out = Vec::new();
        for f in faults {
            match *f {
                PlannedFault::AtOp { offset, fault } => {
                    self.disk.fail_with(start + offset, fault);
                    out.push(Watch {
                        at: Target::Index(start + offset),
                        fault,
                        before_op: None,
                        fired: None,
                    });
                }
                PlannedFault::FailThenCrash { offset, drop_pages } => {
                    let mut fail = Fault::new(FaultKind::Transient);
                    if drop_pages {
                        fail = fail.drop_pages();
                    }
                    let crash = Fault::new(FaultKind::ProcessCrash);
                    for (i, fault) in [(start + offset, fail), (start + offset + 1, crash)] {
                        self.disk.fail_with(i, fault);
                        out.push(Watch {
                            at: Target::Index(i),
                            fault,
                            before_op: None,
                            fired: None,
                        });
                    }
                }
                // Scheduled once the open returned.
                PlannedFault::AfterOpen { .. } => {}
                PlannedFault::Next {
                    before_op,
                    name,
                    fault,
                } => out.push(Watch {
                    at: Target::Named(name, None),
                    fault,
                    before_op: Some(before_op),
                    fired: None,
                }),
            }
        }
        out
    }

    /// INV-DURABLE at a quiet point (the writer idle): everything promised durable in `acks` is
    /// on the platter, and the platter holds a prefix of the written log (INV-PREFIX).
    pub fn check_platter(&self, when: &str, acks: &Acks, written: &WrittenLog) -> Check {
        let promised = acks.durable_len();
        if promised == 0 {
            return Ok(());
        }
        let platter = self.disk.crash_with(&mut |_| 0).power_loss_disk();
        let c = written.classify(&platter, Path::new(DIR));
        if let Some((file, offset)) = &c.hole {
            return Err(violation(
                "INV-PREFIX",
                format!(
                    "{when}: the platter holds records after {}:{offset} but not the ones there: \
                     a write reached the disk before an earlier one was synced (a power loss \
                     now keeps a log that is not a prefix of the written one)",
                    file.display()
                ),
            ));
        }
        let on_disk = c.intact as u64;
        if promised > on_disk {
            let c = acks
                .claims
                .iter()
                .filter(|c| c.seq >= on_disk)
                .min_by_key(|c| c.seq);
            let (inv, what) = c.map_or(("INV-DURABLE", String::new()), |c| {
                (c.inv, format!("{} (record {})", c.what, c.seq))
            });
            return Err(violation(
                inv,
                format!(
                    "{when}: {what} promised durable, {promised} records promised in all, \
                     only {on_disk} are on the platter (a power loss now loses them)"
                ),
            ));
        }
        Ok(())
    }

    fn run_ops(
        &mut self,
        store: &Store,
        runner: &mut Runner<'_>,
        plan: &SessionPlan,
        clock: &ManualClock,
        watches: &mut [Watch],
    ) -> Check {
        // (client operation, `oks` before it) once a failed fsync fired.
        let mut latched: Option<(usize, usize, u64)> = None;
        // Records whose promise was checked against the platter.
        let mut verified = runner.acks.durable_len();
        for (j, &op) in plan.ops.iter().enumerate() {
            let arming: Vec<usize> = (0..watches.len())
                .filter(|&i| watches[i].before_op == Some(j))
                .collect();
            if !arming.is_empty() {
                barrier(store);
                for i in arming {
                    let from = self.disk.op_count();
                    if let Target::Named(name, _) = watches[i].at {
                        watches[i].at = Target::Named(name, Some(from));
                        self.disk.fail_next(name, watches[i].fault);
                    }
                }
            }
            clock.advance(plan.clock_steps.get(j).copied().unwrap_or(1_000));
            self.stats.ops += 1;
            let errors = runner.acks.errors.len();
            let r = runner.run(op);
            for e in &runner.acks.errors[errors..] {
                self.journal.push(format!("  op {j}: {e}"));
            }
            r.map_err(|v| v.context(format!("op {j} {op:?}")))?;
            if let Op::ConsumerPoll { c, .. } = op {
                // Everything handed out is on the platter (not only what the store believes
                // durable): a power loss now must not take it back.
                let g = &runner.acks.consumers[usize::from(c % 2)];
                if let Some(&last) = g.delivered.keys().next_back() {
                    let written = WrittenLog::read(&self.disk, Path::new(DIR));
                    let on_platter = platter(&self.disk, &written) as u64;
                    if last >= on_platter {
                        return Err(violation(
                            "INV-CHECKPOINT-DURABLE",
                            format!(
                                "op {j} {op:?}: a consumer was handed seq {last}, only \
                                 {on_platter} records are on the platter"
                            ),
                        ));
                    }
                }
            }
            if runner.acks.durable_len() > verified {
                // A new promise: once the writer is quiet it must be on the platter.
                barrier(store);
                let written = WrittenLog::read(&self.disk, Path::new(DIR));
                self.check_platter(&format!("op {j} {op:?}"), &runner.acks, &written)?;
                verified = runner.acks.durable_len();
            }
            if self.projections && !self.index_fault_pending(store, watches) {
                self.check_live_projections(store, !plan.faults.is_empty())
                    .map_err(|v| v.context(format!("op {j} {op:?}")))?;
            }
            if let Some((k, at_oks, idx)) = latched {
                if runner.acks.oks > at_oks {
                    return Err(violation(
                        "INV-DURABLE",
                        format!(
                            "op {j} {op:?} was answered Ok after the failed fsync at disk op \
                             {idx} (during op {k}): a store whose fsync failed must latch"
                        ),
                    ));
                }
                continue;
            }
            let open: Vec<usize> = (0..watches.len())
                .filter(|&i| {
                    watches[i].fired.is_none() && watches[i].fault.kind == FaultKind::Transient
                })
                .filter(|&i| match watches[i].at {
                    Target::Index(_) => true,
                    Target::Named(_, from) => from.is_some(),
                })
                .collect();
            if open.is_empty() {
                continue;
            }
            barrier(store);
            let mut names = None;
            for i in open {
                watches[i].resolve(&self.disk, &mut names);
                if watches[i].is_failed_fsync() {
                    let idx = watches[i].fired.map_or(0, |(x, _)| x);
                    let names = self.disk.op_names();
                    let i = usize::try_from(idx).unwrap_or(usize::MAX);
                    // The sync of a segment file just created and holding only its header:
                    // the store removes that file and creates it again, so no byte of the log
                    // was at stake and the store need not latch (what it promises is still
                    // checked against the platter below). The same pattern is the sync of a
                    // recovery checkpoint's temporary file (created, written once, synced): a
                    // cache that is dropped when its sync fails, no byte of the log either.
                    let fresh_header = i >= 2
                        && names.get(i - 2) == Some(&"create_new")
                        && names.get(i - 1) == Some(&"append");
                    self.journal.push(format!(
                        "  failed fsync at disk op {idx} during op {j} {op:?}{}",
                        if fresh_header {
                            " (a new segment's header)"
                        } else {
                            ""
                        }
                    ));
                    if !fresh_header {
                        latched = Some((j, runner.acks.oks, idx));
                    }
                    let written = WrittenLog::read(&self.disk, Path::new(DIR));
                    self.check_platter(
                        &format!("op {j} {op:?}, which met a failed fsync at disk op {idx}"),
                        &runner.acks,
                        &written,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Tallies the faults that fired (`open_end`: the first operation after the open).
    fn tally(&mut self, watches: &mut [Watch], open_end: u64) {
        let mut names = None;
        for w in watches.iter_mut() {
            w.resolve(&self.disk, &mut names);
            let Some((idx, name)) = w.fired else {
                continue;
            };
            if idx < open_end {
                self.stats.faults_in_recovery += 1;
            }
            match w.fault.kind {
                FaultKind::ProcessCrash => self.stats.process_crashes += 1,
                FaultKind::Persistent => self.stats.dead_disks += 1,
                FaultKind::Transient => {
                    let sync = name == "sync_data" || name == "sync_all";
                    let no_space = w.fault.error == FaultError::NoSpace;
                    if sync {
                        if w.fault.failed_sync == FailedSync::DropPages {
                            self.stats.failed_fsyncs_dropped += 1;
                        } else {
                            self.stats.failed_fsyncs_kept += 1;
                        }
                    } else if no_space && name == "append" {
                        self.stats.enospc += 1;
                        if w.fault.short_write.is_some() {
                            self.stats.short_writes += 1;
                        }
                    } else {
                        self.stats.eio += 1;
                    }
                }
            }
            self.journal.push(format!(
                "  fault {:?} fired at disk op {idx} ({name})",
                w.fault
            ));
        }
    }

    /// The end of a session: `close()`, or a process crash, or a power loss (always, once the
    /// disk died); then what the next recovery must produce.
    pub fn finish(&mut self, opened: Opened, plan: &SessionPlan) -> Check {
        let Opened {
            mut store,
            mut watches,
            open_end,
        } = opened;
        let watches = &mut watches[..];
        if let Some(s) = &store {
            barrier(s);
        }
        let fired = |watches: &mut [Watch], disk: &SimDisk, k: FaultKind| {
            let mut names = None;
            watches.iter_mut().for_each(|w| w.resolve(disk, &mut names));
            watches
                .iter()
                .any(|w| w.fired.is_some() && w.fault.kind == k)
        };
        let mut close = plan.end == End::Close
            && !fired(watches, &self.disk, FaultKind::Persistent)
            && !fired(watches, &self.disk, FaultKind::ProcessCrash);
        if close {
            self.stats.closes += 1;
            if let Some(s) = store.take() {
                let r = s.close();
                self.journal.push(format!("  close: {r:?}"));
            }
        }
        // A fault may also fire while closing.
        let dead = fired(watches, &self.disk, FaultKind::Persistent);
        let crashed = fired(watches, &self.disk, FaultKind::ProcessCrash);
        let faulted = watches.iter().any(|w| w.fired.is_some());
        let power = dead || matches!(plan.end, End::PowerLoss(_));
        close = close && !power && !crashed;
        let written = WrittenLog::read(&self.disk, Path::new(DIR));
        self.tally(watches, open_end);
        let acks = std::mem::take(&mut self.acks);
        let r = self.check_platter("at the end of the session", &acks, &written);
        self.acks = acks;
        r?;
        self.check_written(&written)?;
        let durable = platter(&self.disk, &written);
        if !close {
            let dir = Path::new(DIR);
            let on_disk = |name: &str| self.disk.read_file(&dir.join(name)).is_some();
            if on_disk("recovery.ckpt") || on_disk("recovery.ckpt.tmp") {
                self.stats.crashes_with_checkpoint += 1;
            }
            if on_disk("recovery.ckpt.tmp") {
                self.stats.crashes_in_checkpoint_write += 1;
            }
        }
        let kind = if power {
            let bytes = match &plan.end {
                End::PowerLoss(b) => b.clone(),
                _ => Vec::new(),
            };
            self.stats.power_losses += 1;
            self.disk = self.disk.power_loss(&mut chooser(&bytes));
            // The cache disk loses power too (its own image, from the bytes reversed).
            let rev: Vec<u8> = bytes.iter().rev().copied().collect();
            self.cache_disk = self.cache_disk.power_loss(&mut chooser(&rev));
            "power loss"
        } else if close {
            "close"
        } else {
            if !crashed {
                self.stats.process_crashes += 1;
            }
            self.disk = self.disk.process_crash();
            self.cache_disk = self.cache_disk.process_crash();
            "process crash"
        };
        drop(store);
        self.disk.clear_faults();
        let c = written.classify(&self.disk, Path::new(DIR));
        if let Some((file, offset)) = &c.hole {
            return Err(violation(
                "INV-PREFIX",
                format!(
                    "the {kind} kept a later record and lost an earlier one: the first lost unit \
                     is at {}:{offset}, records after it survived (a write reached the disk \
                     before an earlier one was synced)",
                    file.display()
                ),
            ));
        }
        // The spec's disk steps: the written log and its durable prefix (the platter, not
        // what the store believes), then the crash with the image it left. A process crash
        // may show a torn piece of a record the written log never completed (a write cut
        // short by the kill): that is the spec's torn next record, past the written log.
        let abs = written.abstract_log();
        let disk_state = DiskState {
            written: abs.records.clone(),
            durable_len: durable,
            pages_clean: false,
        };
        let past_end = c.intact == written.records.len();
        let spec_torn = c.torn && !past_end;
        let crashed = if power {
            disk_state.power_loss(c.intact, spec_torn)
        } else {
            disk_state.process_crash(c.intact, spec_torn)
        };
        let Some(crashed) = crashed else {
            panic!(
                "the file-system model left an image the spec does not allow after a {kind}: \
                 {} of {} records kept (torn: {}), {durable} on the platter",
                c.intact,
                written.records.len(),
                c.torn
            );
        };
        let (_, recovered) = crashed.recover();
        if power && c.intact < written.records.len() {
            self.stats.lossy_power_losses += 1;
        }
        self.settle_acks(&written, c.intact, close && !faulted)?;
        let what = format!(
            "a {kind} keeping {} of {} records{}",
            c.intact,
            written.records.len(),
            if c.torn { " and a torn tail" } else { "" }
        );
        self.journal.push(format!("  {what}"));
        self.expect = Expectation {
            keep: recovered.log.len(),
            visible: abs.seqs(&recovered.visible),
            log: written.records,
            abs,
            torn: c.torn,
            what,
        };
        Ok(())
    }

    /// Whether a fault planned at a fixed disk operation has yet to fire. The projection
    /// checks read the log (disk operations of their own), so they wait until it fired: the
    /// fault still hits the store's own operation it was planned for, as without them.
    fn index_fault_pending(&self, store: &Store, watches: &[Watch]) -> bool {
        barrier(store);
        let now = self.disk.op_count();
        watches
            .iter()
            .any(|w| matches!(w.at, Target::Index(i) if i >= now))
    }

    /// INV-PROJECTION after a recovery: the folds equal the plain fold of the oracle's
    /// `Recover` (the records the image kept, the sequences the spec makes visible; the store
    /// was just shown to agree), and every cache row covers events on the platter.
    fn check_recovered_projections(&mut self, store: &Store, faults: bool) -> Check {
        let e = &self.expect;
        let what = format!("projections after the recovery after {}", e.what);
        let ctx = |v: Violation| v.context(&what);
        let kept = &e.log[..e.keep.min(e.log.len())];
        let mut st = ProjectionStats::default();
        let Some(vis) = e
            .visible
            .iter()
            .map(|&s| projections::Visible::of_log(kept, s))
            .collect::<Option<Vec<_>>>()
        else {
            return Err(ctx(violation(
                "INV-PROJECTION",
                format!(
                    "the spec's Recover {:?} names a record that is no kept event",
                    e.visible
                ),
            )));
        };
        let r = projections::check_folds(store, kept, vis, faults, &mut st);
        st.after_recovery = st.folds;
        self.stats.projections.add(&st);
        r.map_err(ctx)?;
        barrier(store);
        let written = WrittenLog::read(&self.disk, Path::new(DIR));
        self.check_rows(&written).map_err(ctx)
    }

    /// INV-PROJECTION during a session: the folds equal the plain fold of the store's visible
    /// set (held by the live checks to what the client was told) over the written log's
    /// payloads, and every cache row covers events on the platter. Skipped while the visible
    /// and durable frontiers stay where the last check saw them.
    fn check_live_projections(&mut self, store: &Store, faults: bool) -> Check {
        let f = store.frontier();
        if self.projected_at.replace((f.visible, f.durable)) == Some((f.visible, f.durable)) {
            return Ok(());
        }
        barrier(store);
        let written = WrittenLog::read(&self.disk, Path::new(DIR));
        let vis = visible(store)
            .iter()
            .map(projections::Visible::of_entry)
            .collect();
        let mut st = ProjectionStats::default();
        let r = projections::check_folds(store, &written.records, vis, faults, &mut st);
        self.stats.projections.add(&st);
        r?;
        self.check_rows(&written)
    }

    /// The cache rows against the written log and the platter (the writer quiet).
    fn check_rows(&mut self, written: &WrittenLog) -> Check {
        let disk = &self.disk;
        let mut st = ProjectionStats::default();
        let r = projections::check_cache_rows(
            &self.cache_disk,
            written,
            self.rows_durable,
            || platter(disk, written) as u64,
            &mut st,
        );
        self.stats.projections.add(&st);
        if let Some(p) = r? {
            self.rows_durable = p;
        }
        Ok(())
    }

    /// INV-STABLE-SEQ across sessions: what the last successful recovery kept (and made
    /// durable) is still there, unchanged.
    pub fn check_written(&self, written: &WrittenLog) -> Check {
        for (i, r) in self.stable.iter().enumerate() {
            match written.records.get(i) {
                Some(w) if w == r => {}
                other => {
                    return Err(violation(
                        "INV-STABLE-SEQ",
                        format!(
                            "record {i}, kept by the last recovery ({r:?}), now reads {other:?}"
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Acknowledged events the crash lost are dropped from what later sessions must see; an
    /// event promised durable may not be among them.
    fn settle_acks(&mut self, written: &WrittenLog, keep: usize, clean: bool) -> Check {
        let promised = self.acks.durable_len();
        let mut lost = 0;
        let mut err = None;
        self.acks.events.retain(|a| {
            let kept = usize::try_from(a.seq).is_ok_and(|s| {
                s < keep
                    && written.records[s]
                        .event()
                        .is_some_and(|e| e.event_id == a.id)
            });
            if !kept && (a.durable || a.seq < promised || clean) && err.is_none() {
                err = Some(violation(
                    "INV-DURABLE",
                    format!(
                        "acknowledged event {:x} (seq {}, durable: {}) is not in the log the \
                         crash left ({keep} records)",
                        a.id, a.seq, a.durable
                    ),
                ));
            }
            lost += u64::from(!kept);
            kept
        });
        self.stats.lost_events += lost;
        self.acks.fenced.clear();
        self.acks.fences.clear();
        self.acks.staged.clear();
        err.map_or(Ok(()), Err)
    }

    /// The open's recovery against the oracle's expectation.
    fn check_recovery(&mut self, store: &Store, read_payloads: bool) -> Check {
        self.stats.recoveries += 1;
        let e = &self.expect;
        let report = store.recovery_report();
        let ctx = |v: Violation| v.context(format!("recovery after {}", e.what));
        if report.records != e.keep as u64 {
            return Err(ctx(violation(
                "INV-PREFIX",
                format!(
                    "recovery kept {} records, the image holds {} intact records of the {} written",
                    report.records,
                    e.keep,
                    e.log.len()
                ),
            )));
        }
        if report.torn_tail.is_some() != e.torn {
            return Err(ctx(violation(
                "INV-RECOVERY-IDEMPOTENT",
                format!(
                    "torn tail reported: {:?}, the image has one: {}",
                    report.torn_tail, e.torn
                ),
            )));
        }
        self.stats.torn_recoveries += u64::from(e.torn);
        let now = WrittenLog::read(&self.disk, Path::new(DIR));
        let mut vis = visible(store);
        if self.lifecycle {
            // The open appended its SYSTEM_OPEN_COMPLETED after the kept records (unless a
            // fault stopped it): judged apart, the recovery is judged without it.
            let opened = now.records.get(e.keep).filter(|r| is_open_event(r));
            if now.records.len() > e.keep + usize::from(opened.is_some()) {
                return Err(ctx(violation(
                    "INV-PREFIX",
                    format!(
                        "after recovery the log reads {} records: the image's {} intact ones \
                         and more than the open's lifecycle event",
                        now.records.len(),
                        e.keep
                    ),
                )));
            }
            if let Some(r) = opened {
                let id = r.event().map_or(0, |ev| ev.event_id);
                if !vis
                    .iter()
                    .any(|v| v.event_id == id && v.global_sequence == r.seq)
                {
                    return Err(ctx(violation(
                        "INV-DURABLE",
                        format!(
                            "the open's lifecycle event {id:x} (seq {}) is not visible",
                            r.seq
                        ),
                    )));
                }
                vis.retain(|v| v.event_id != id);
            }
        }
        check_recovered(
            store,
            &vis,
            report.records,
            &self.acks,
            &e.log,
            &e.abs,
            read_payloads,
        )
        .map_err(ctx)?;
        let got: BTreeSet<u64> = vis.iter().map(|v| v.global_sequence).collect();
        if got != e.visible {
            return Err(ctx(violation(
                "INV-PREFIX",
                format!("recovery shows {got:?}, the spec's Recover {:?}", e.visible),
            )));
        }
        let kept_now = now.records.get(..e.keep).unwrap_or(&now.records);
        let tail_ok = now.records.len() == e.keep || self.lifecycle;
        if !tail_ok || kept_now != &e.log[..e.keep.min(e.log.len())] {
            return Err(ctx(violation(
                "INV-PREFIX",
                format!(
                    "after recovery the log reads {} records, not the image's {} intact ones",
                    now.records.len(),
                    e.keep
                ),
            )));
        }
        crate::consumers::check_recovered(
            store,
            &mut self.acks.consumers,
            &e.log[..e.keep.min(e.log.len())],
        )
        .map_err(ctx)?;
        // Acknowledged events of units the crash left unfinished (a batch whose commit record
        // was lost) are gone; only ones never promised durable may be (checked above).
        self.stable = e.log[..e.keep.min(e.log.len())].to_vec();
        let seen: BTreeSet<u128> = vis.iter().map(|v| v.event_id).collect();
        let promised = self.acks.durable_len();
        let before = self.acks.events.len();
        if let Some(a) = self
            .acks
            .events
            .iter()
            .find(|a| !seen.contains(&a.id) && (a.durable || a.seq < promised))
        {
            return Err(ctx(violation(
                "INV-DURABLE",
                format!(
                    "acknowledged event {:x} (seq {}), promised durable, is not visible",
                    a.id, a.seq
                ),
            )));
        }
        self.acks.events.retain(|a| seen.contains(&a.id));
        self.stats.lost_events += (before - self.acks.events.len()) as u64;
        Ok(())
    }
}

impl Sim {
    /// The compaction step ([`sim_compaction`]) on a copy of the disk as the next process
    /// finds it (after `session` sessions): the sessions go on with the disk as it was (the
    /// oracle of the sessions counts records as sequences, which a compaction changes).
    fn compaction_step(&mut self, rng: &mut SplitMix, session: usize) -> Check {
        let copy = self.disk.crash_with(&mut |n| n.saturating_sub(1)).disk();
        let mut cstats = SimCompactionStats::default();
        let r = sim_compaction(&copy, rng, self.mutant, self.segment_max_bytes, &mut cstats);
        self.journal.push(format!(
            "compaction step after session {session}: {cstats:?}"
        ));
        let mid_run = self.stats.compaction.mid_run;
        self.stats.compaction = cstats;
        self.stats.compaction.mid_run = mid_run;
        r.map_err(|v| v.context(format!("the compaction step after session {session}")))
    }
}

/// Whether `r` is a `SYSTEM_OPEN_COMPLETED` event at the lifecycle coordinate.
fn is_open_event(r: &LogRecord) -> bool {
    r.event().is_some_and(|e| {
        e.kind == EventKind::SYSTEM_OPEN_COMPLETED.as_raw()
            && e.entity == LIFECYCLE_ENTITY
            && e.scope == LIFECYCLE_SCOPE
    })
}

/// What a seed's simulation looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimOptions {
    /// Fewest sessions per seed.
    pub sessions_min: usize,
    /// Most sessions per seed.
    pub sessions_max: usize,
    /// Most operations per session.
    pub ops_max: usize,
    /// The seeded bug.
    pub mutant: Mutant,
    /// Also plan a failed operation followed by a process crash at the next disk operation
    /// ([`PlannedFault::FailThenCrash`]): the crashed process leaves pages a failed fsync
    /// marked clean in the page cache. On by default (`SIM_FAIL_THEN_CRASH=0` turns it off).
    pub fail_then_crash: bool,
    /// The projection checks ([`crate::projections`]). On by default (`SIM_PROJECTIONS=0`
    /// turns them off).
    pub projections: bool,
    /// Percent of seeds that end with the compaction step
    /// ([`crate::compaction::sim_compaction`]), drawn from a stream of their own so the
    /// sessions of a seed are the same with or without it. 25 by default
    /// (`SIM_COMPACTION=P` sets it). Half of those steps run after the final recovery, half
    /// on the disk a session in the middle of the seed left (a crash image, not yet
    /// recovered; the sessions go on with the disk as it was), drawn from another stream.
    pub compaction_percent: u64,
    /// Percent of seeds whose sessions record lifecycle events (every open and close appends
    /// one), drawn from a stream of its own. 25 by default (`SIM_LIFECYCLE=P` sets it).
    pub lifecycle_percent: u64,
    /// Percent of seeds whose sessions save the recovery checkpoint every `n` durable records
    /// as well as at a clean close (`n` from 1 to 8, drawn with the choice from a stream of
    /// their own). 25 by default (`SIM_CHECKPOINT=P` sets it).
    pub periodic_checkpoint_percent: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            sessions_min: 10,
            sessions_max: 14,
            ops_max: 12,
            mutant: Mutant::None,
            fail_then_crash: true,
            projections: true,
            compaction_percent: 25,
            lifecycle_percent: 25,
            periodic_checkpoint_percent: 25,
        }
    }
}

/// A failing seed: the violation, and the journal of the run.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What broke.
    pub violation: Violation,
    /// What happened, session by session.
    pub journal: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {:#x}: {}", self.seed, self.violation)?;
        for line in &self.journal {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// A random workload of `len` operations (fence operations mostly in a valid order; some
/// unfenced writes while a fence is open, which the store must refuse).
pub fn random_ops(rng: &mut SplitMix, len: usize) -> Vec<Op> {
    let mut out = Vec::with_capacity(len);
    let mut open = false;
    while out.len() < len {
        let e = rng.below(3) as u8;
        let n = rng.below(3) as u8;
        let roll = rng.below(100);
        let op = if open {
            match roll {
                0..=24 => Op::FencedAppend { entity: e },
                25..=39 => Op::FencedBatch { n, entity: e },
                40..=49 => Op::FencedOutbox { n, entity: e },
                50..=64 => Op::FenceCommit,
                65..=74 => Op::FenceCancel,
                75..=82 => Op::FenceDrop,
                83..=87 => Op::Append { entity: e, pad: 0 },
                88..=91 => Op::Sync,
                92..=95 => consumer_op(rng),
                _ => Op::WaitDurable,
            }
        } else {
            match roll {
                0..=29 => Op::Append {
                    entity: e,
                    pad: if rng.chance(20) { 200 } else { 0 },
                },
                30..=41 => Op::Batch { n, entity: e },
                42..=46 => Op::Outbox { n, entity: e },
                47..=49 => Op::BigAppend {
                    entity: e,
                    size: rng.below(256) as u8,
                },
                50..=55 => Op::Roll,
                56..=65 => Op::Sync,
                66..=71 => Op::WaitDurable,
                72..=85 => Op::FenceBegin,
                _ => consumer_op(rng),
            }
        };
        open = match op {
            Op::FenceBegin => true,
            o if o.ends_fence() => false,
            _ => open,
        };
        out.push(op);
    }
    out
}

/// A durable consumer's step: mostly polls and commits, sometimes a resume.
fn consumer_op(rng: &mut SplitMix) -> Op {
    let c = rng.below(2) as u8;
    match rng.below(10) {
        0..=4 => Op::ConsumerPoll {
            c,
            max: rng.below(4) as u8,
        },
        5..=8 => Op::ConsumerCommit { c },
        _ => Op::ConsumerResume { c },
    }
}

fn random_fault(rng: &mut SplitMix, ops: usize, double: bool) -> Option<PlannedFault> {
    // A session of n client operations issues roughly 8 + 6n disk operations.
    let span = 8 + 6 * ops as u64;
    let transient = Fault::new(FaultKind::Transient);
    Some(match rng.below(100) {
        0..=44 => return None,
        45..=48 => PlannedFault::AtOp {
            offset: rng.below(span),
            fault: transient,
        },
        // A full disk at whatever operation comes (a write: a short one; an fsync: ENOSPC at
        // writeback, its pages kept clean), in recovery or in the workload.
        49..=52 => PlannedFault::AtOp {
            offset: rng.below(span),
            fault: transient.no_space().short_write(1 + rng.below(60) as usize),
        },
        53..=58 => PlannedFault::AtOp {
            offset: rng.below(span),
            fault: Fault::new(FaultKind::Persistent),
        },
        59..=66 => PlannedFault::AtOp {
            offset: rng.below(span),
            fault: Fault::new(FaultKind::ProcessCrash),
        },
        67..=72 if double => PlannedFault::FailThenCrash {
            offset: rng.below(span),
            drop_pages: rng.chance(50),
        },
        67..=72 => PlannedFault::AtOp {
            offset: rng.below(span),
            fault: transient.drop_pages(),
        },
        73..=84 => PlannedFault::Next {
            before_op: rng.below(ops.max(1) as u64) as usize,
            name: "sync_data",
            fault: if rng.chance(50) {
                transient.drop_pages()
            } else {
                transient
            },
        },
        _ => PlannedFault::Next {
            before_op: rng.below(ops.max(1) as u64) as usize,
            name: "append",
            fault: if rng.chance(70) {
                transient.no_space().short_write(1 + rng.below(60) as usize)
            } else {
                transient.no_space()
            },
        },
    })
}

/// A random session plan (`double`: also a failed operation followed by a process crash at
/// the next one).
pub fn random_session(rng: &mut SplitMix, ops_max: usize, double: bool) -> SessionPlan {
    let len = 1 + rng.below(ops_max.max(1) as u64) as usize;
    let ops = random_ops(rng, len);
    let clock_steps = (0..len)
        .map(|_| {
            if rng.chance(5) {
                -(rng.below(10_000_000) as i64)
            } else {
                rng.below(5_000) as i64
            }
        })
        .collect();
    let faults = random_fault(rng, len, double).into_iter().collect();
    let end = match rng.below(100) {
        0..=19 => End::Close,
        20..=59 => End::ProcessCrash,
        _ => End::PowerLoss((0..16).map(|_| rng.below(256) as u8).collect()),
    };
    // Mostly forward by up to a minute; one session in five starts up to two hours back.
    let clock_start_us = if rng.chance(20) {
        -(rng.below(7_200_000_000) as i64)
    } else {
        rng.below(60_000_000) as i64
    };
    let deferred = rng.chance(50);
    SessionPlan {
        deferred,
        sync_every: 2 + rng.below(5) as u32,
        ops,
        clock_steps,
        faults,
        end,
        clock_start_us,
    }
}

/// In a seed with periodic recovery checkpoints, a session without a fault sometimes gets a
/// process crash or a dead disk (a power loss) at the first rename or directory fsync from a
/// random client operation on: in the store's disk operations those are the checkpoint's (the
/// rename of its temporary file, then the directory fsync that makes the rename durable; a
/// segment roll's directory fsync too), so the crash strikes in the middle of its write.
fn checkpoint_crash(rng: &mut SplitMix, plan: &SessionPlan) -> Option<PlannedFault> {
    if !plan.faults.is_empty() || !rng.chance(40) {
        return None;
    }
    Some(PlannedFault::Next {
        before_op: rng.below(plan.ops.len().max(1) as u64) as usize,
        name: if rng.chance(50) { "rename" } else { "sync_dir" },
        fault: Fault::new(if rng.chance(50) {
            FaultKind::ProcessCrash
        } else {
            FaultKind::Persistent
        }),
    })
}

/// The segment size of a seed's store: small, so rolls happen.
fn segment_size(rng: &mut SplitMix) -> u64 {
    [512, 512, 1024, 4096][rng.below(4) as usize]
}

/// Runs seed `seed`: 10-14 random sessions and a final recovery. Deterministic: the same seed
/// (and options) runs the same sessions, faults and crashes, and fails the same way.
pub fn simulate(seed: u64, opts: SimOptions) -> Result<SimStats, Failure> {
    let mut rng = SplitMix(seed ^ 0x5EED_0B47_CAFE_F00D);
    let mut sim = Sim::new(opts.mutant, segment_size(&mut rng));
    if !opts.projections {
        sim = sim.without_projections();
    }
    // Lifecycle events: a stream of their own (the plans below are the same either way).
    let lifecycle = SplitMix(seed ^ 0x11FE_C7C1_E000_5EED).below(100) < opts.lifecycle_percent;
    if lifecycle {
        sim = sim.with_lifecycle_events();
        sim.stats.lifecycle_seeds = 1;
        sim.journal.push("lifecycle events on".into());
    }
    // Periodic recovery checkpoints: a stream of their own too.
    let mut ckrng = SplitMix(seed ^ 0xC4EC_4901_47E0_5EED);
    let periodic = ckrng.below(100) < opts.periodic_checkpoint_percent;
    if periodic {
        let n = 1 + ckrng.below(8);
        sim = sim.with_checkpoint_every(n);
        sim.stats.periodic_checkpoint_seeds = 1;
        sim.journal
            .push(format!("recovery checkpoint every {n} durable records"));
    }
    let span = opts.sessions_max.saturating_sub(opts.sessions_min) as u64 + 1;
    let sessions = opts.sessions_min + rng.below(span) as usize;
    let fail = |sim: &Sim, v: Violation| Failure {
        seed,
        violation: v,
        journal: sim.journal.clone(),
    };
    // The compaction step: its own random stream, so the sessions are the same whether or
    // not it runs; where it runs (after which session, or after the final recovery) from
    // another one, so its draws are the same wherever it runs.
    let mut crng = SplitMix(seed ^ 0xC0_4AC7_0000_5EED);
    let compaction = crng.below(100) < opts.compaction_percent;
    let mut prng = SplitMix(seed ^ 0x0090_5171_00C0_4AC7);
    let mid_run = (compaction && prng.chance(50)).then(|| prng.below(sessions as u64) as usize);
    for i in 0..sessions {
        let mut plan = random_session(&mut rng, opts.ops_max, opts.fail_then_crash);
        if periodic {
            plan.faults.extend(checkpoint_crash(&mut ckrng, &plan));
        }
        if let Err(v) = sim.run_session(&plan) {
            return Err(fail(&sim, v));
        }
        if mid_run == Some(i) {
            sim.stats.compaction.mid_run = 1;
            let r = sim.compaction_step(&mut crng, i + 1);
            r.map_err(|v| fail(&sim, v))?;
        }
    }
    if let Err(v) = sim.final_recovery() {
        return Err(fail(&sim, v));
    }
    if compaction && mid_run.is_none() {
        let r = sim.compaction_step(&mut crng, sessions + 1);
        r.map_err(|v| fail(&sim, v))?;
    }
    sim.stats.seeds = 1;
    for g in &sim.acks.consumers {
        sim.stats.consumer_handed_out += g.handed_out;
        sim.stats.consumer_commits += g.commits;
    }
    Ok(sim.stats)
}
