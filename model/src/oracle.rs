//! The executable reference model: a pure transcription of `spec/Store.tla`.
//!
//! Every TLA+ variable is a field of [`State`] with the same name (snake case), every action
//! is a function with the same name (`submit_append` for `SubmitAppend`, ...) returning the
//! successor state, or `None` when the action is disabled, and [`Action`]'s variants carry
//! the TLA+ action names verbatim. [`next_states`] is the spec's `Next`. The invariants
//! live in [`invariants`]. This module does not use `batpak`: it is the model the
//! implementation is checked against, so it must not depend on it.
//!
//! # Entry points for crash checkers and simulators
//! The spec separates the disk's truth from what the store reports: `durable_len` (fsynced)
//! and `pages_clean` (a failed fsync left the unsynced pages clean) against `frontier` (what
//! the store reports durable). A checker that drives the real store through crashes calls:
//! - [`process_crash`] (the process dies, the page cache survives: the next session reads
//!   the image, nothing in it is durable) and [`power_loss`] (only what reached the disk
//!   survives; what survived is durable), each with an image from [`crash_choices`];
//! - [`fsync_fail`] for a failed fsync (the writer latches, waiting callers get
//!   `OutcomeUnknown`, the unsynced pages are clean) and [`fsync`] for a successful one;
//! - [`recover_step`] for the next session's recovery, which must make what it kept
//!   durable before reporting any of it;
//! - the invariants of [`invariants`] (`inv_durable`: everything ever acknowledged or
//!   reported durable is durable and observable, over all sessions).
//!
//! A checker that follows only the disk (the written log and its durable prefix, not the
//! tickets) uses [`log::DiskState`] with the same steps, and [`recover`] /
//! [`allowed_after_recovery`] for what one recovery may produce.

pub mod invariants;
pub mod log;

use std::collections::{BTreeSet, HashSet, VecDeque};

pub use log::{
    allowed_after_recovery, crash_images, image, recover, DiskState, EventNo, RecKind, Record,
    Recovered, UnitKind,
};
use log::{
    cut_torn, ev_pos, is_commit_point, point_events, pos_of, recover_log, recover_visible, seq_at,
};

/// The spec's `Mutant` constant: a seeded bug, or `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// The protocol as specified.
    None,
    /// `"ack_before_fsync"`.
    AckBeforeFsync,
    /// `"fence_commit_ack_before_durable"`.
    FenceCommitAckBeforeDurable,
    /// `"recover_open_fence_visible"`.
    RecoverOpenFenceVisible,
    /// `"visible_before_commit"`.
    VisibleBeforeCommit,
    /// `"batch_publish_per_event"`.
    BatchPublishPerEvent,
    /// `"recover_partial_batch"`.
    RecoverPartialBatch,
    /// `"recovery_stops_at_hidden_unit"`.
    RecoveryStopsAtHiddenUnit,
    /// `"recover_cancel_as_commit"`.
    RecoverCancelAsCommit,
    /// `"recovery_renumbers"`.
    RecoveryRenumbers,
    /// `"crash_image_not_prefix"`.
    CrashImageNotPrefix,
    /// `"refuse_after_write"`.
    RefuseAfterWrite,
    /// `"publish_out_of_order"`.
    PublishOutOfOrder,
    /// `"recovery_keeps_torn_tail"`.
    RecoveryKeepsTornTail,
    /// `"publish_before_fsync"`.
    PublishBeforeFsync,
    /// `"crash_forgets_tickets"`.
    CrashForgetsTickets,
    /// `"drop_never_cancels"`.
    DropNeverCancels,
    /// `"recovery_trusts_page_cache"`: recovery reports the recovered log durable without
    /// fsyncing it.
    RecoveryTrustsPageCache,
    /// `"recovery_fsync_trusts_clean_pages"`: recovery fsyncs but does not rewrite pages a
    /// failed fsync of the previous process left clean.
    RecoveryFsyncTrustsCleanPages,
    /// `"fsync_retry_acks"`: no latch after a failed fsync; the retry's success is believed.
    FsyncRetryAcks,
    /// `"latch_reports_definite"`: the latch answers waiting callers with a definite error.
    LatchReportsDefinite,
    /// `"fenced_batch_published_at_batch_commit"`.
    FencedBatchPublishedAtBatchCommit,
    /// `"recover_fenced_batch_without_fence_commit"`.
    RecoverFencedBatchWithoutFenceCommit,
    /// `"wait_before_durable"`: a wait takes its point as exclusive, so it is answered once
    /// the records before the point are durable, the point itself not yet.
    WaitBeforeDurable,
}

impl Mutant {
    /// Every mutant with its TLA+ name.
    pub const ALL: [(Mutant, &'static str); 24] = [
        (Mutant::None, "none"),
        (Mutant::AckBeforeFsync, "ack_before_fsync"),
        (
            Mutant::FenceCommitAckBeforeDurable,
            "fence_commit_ack_before_durable",
        ),
        (
            Mutant::RecoverOpenFenceVisible,
            "recover_open_fence_visible",
        ),
        (Mutant::VisibleBeforeCommit, "visible_before_commit"),
        (Mutant::BatchPublishPerEvent, "batch_publish_per_event"),
        (Mutant::RecoverPartialBatch, "recover_partial_batch"),
        (
            Mutant::RecoveryStopsAtHiddenUnit,
            "recovery_stops_at_hidden_unit",
        ),
        (Mutant::RecoverCancelAsCommit, "recover_cancel_as_commit"),
        (Mutant::RecoveryRenumbers, "recovery_renumbers"),
        (Mutant::CrashImageNotPrefix, "crash_image_not_prefix"),
        (Mutant::RefuseAfterWrite, "refuse_after_write"),
        (Mutant::PublishOutOfOrder, "publish_out_of_order"),
        (Mutant::RecoveryKeepsTornTail, "recovery_keeps_torn_tail"),
        (Mutant::PublishBeforeFsync, "publish_before_fsync"),
        (Mutant::CrashForgetsTickets, "crash_forgets_tickets"),
        (Mutant::DropNeverCancels, "drop_never_cancels"),
        (
            Mutant::RecoveryTrustsPageCache,
            "recovery_trusts_page_cache",
        ),
        (
            Mutant::RecoveryFsyncTrustsCleanPages,
            "recovery_fsync_trusts_clean_pages",
        ),
        (Mutant::FsyncRetryAcks, "fsync_retry_acks"),
        (Mutant::LatchReportsDefinite, "latch_reports_definite"),
        (
            Mutant::FencedBatchPublishedAtBatchCommit,
            "fenced_batch_published_at_batch_commit",
        ),
        (
            Mutant::RecoverFencedBatchWithoutFenceCommit,
            "recover_fenced_batch_without_fence_commit",
        ),
        (Mutant::WaitBeforeDurable, "wait_before_durable"),
    ];

    /// The mutant named `name` in the spec (`Mutant = "..."`).
    pub fn from_name(name: &str) -> Option<Mutant> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(m, _)| *m)
    }

    /// The spec's name of this mutant.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("none", |(_, n)| n)
    }
}

/// The spec's CONSTANTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// `MaxEvents`.
    pub max_events: u32,
    /// `MaxBatches` (fenced and unfenced batches together).
    pub max_batches: u32,
    /// `BatchSize`.
    pub batch_size: u32,
    /// `MaxFences`.
    pub max_fences: u32,
    /// `MaxSyncs`.
    pub max_syncs: u32,
    /// `MaxWaits`: `wait_for_durable(point)` calls.
    pub max_waits: u32,
    /// `MaxCrashes` (process crashes and power losses together).
    pub max_crashes: u32,
    /// `MaxFsyncFails`.
    pub max_fsync_fails: u32,
    /// `QueueCap`.
    pub queue_cap: usize,
    /// `Mutant`.
    pub mutant: Mutant,
}

impl Config {
    /// The constants of `spec/Store_ci.cfg`.
    pub const CI: Config = Config {
        max_events: 2,
        max_batches: 1,
        batch_size: 2,
        max_fences: 1,
        max_syncs: 1,
        max_waits: 0,
        max_crashes: 2,
        max_fsync_fails: 1,
        queue_cap: 2,
        mutant: Mutant::None,
    };

    /// The base constants of `spec/check_mutants.sh` (each mutant may raise some).
    pub const MUTANTS: Config = Config {
        max_events: 3,
        max_batches: 1,
        batch_size: 2,
        max_fences: 1,
        max_syncs: 0,
        max_waits: 0,
        max_crashes: 1,
        max_fsync_fails: 0,
        queue_cap: 2,
        mutant: Mutant::None,
    };

    /// `MaxTickets`.
    pub fn max_tickets(&self) -> usize {
        let n = self.max_events
            + self.max_batches
            + 2 * self.max_fences
            + self.max_syncs
            + self.max_waits;
        usize::try_from(n).unwrap_or(usize::MAX)
    }
}

/// `Cmds`: what a ticket asks the writer to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cmd {
    /// An unfenced single event.
    Append,
    /// An atomic batch.
    Batch,
    /// Begin a visibility fence.
    FenceBegin,
    /// An event under the open fence.
    FenceAppend,
    /// An atomic batch under the open fence.
    FenceBatch,
    /// Commit the fence.
    FenceCommit,
    /// Cancel the fence explicitly.
    FenceCancel,
    /// The cancel request a dropped fence sends without waiting.
    FenceDrop,
    /// `sync()`.
    Sync,
    /// `wait_for_durable(point)`: its `id` is the point's sequence (1-based, a record
    /// already written).
    Wait,
}

impl Cmd {
    /// `BatchCmds`.
    pub fn is_batch(self) -> bool {
        matches!(self, Cmd::Batch | Cmd::FenceBatch)
    }

    /// `FencedCmds`: answered at the fence's commit or cancel.
    pub fn is_fenced(self) -> bool {
        matches!(self, Cmd::FenceAppend | Cmd::FenceBatch)
    }

    /// `WriteCmds`: what a latched writer refuses.
    pub fn is_write(self) -> bool {
        !matches!(self, Cmd::FenceCancel | Cmd::FenceDrop)
    }
}

/// `Statuses`: a ticket's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// In the writer's queue.
    Queued,
    /// Taken by the writer; the caller waits.
    Taken,
    /// Acknowledged.
    Ok,
    /// Definite: refused because a fence is open.
    VisibilityFenceActive,
    /// Definite: the fence was cancelled.
    VisibilityFenceCancelled,
    /// Definite: the command names a fence that is not the open one.
    FenceNotOpen,
    /// Definite: refused because the writer latched after a failed fsync.
    WriterLatched,
    /// Indeterminate: the writer died with the command pending.
    WriterCrashed,
    /// Indeterminate: an fsync failed while the command waited (the writer latched).
    OutcomeUnknown,
}

impl Status {
    /// `Definite`.
    pub fn is_definite(self) -> bool {
        matches!(
            self,
            Status::VisibilityFenceActive
                | Status::VisibilityFenceCancelled
                | Status::FenceNotOpen
                | Status::WriterLatched
        )
    }

    /// `Refusals`: definite errors decided at admission, before anything is written.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            Status::VisibilityFenceActive | Status::FenceNotOpen | Status::WriterLatched
        )
    }

    /// `Final`.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Taken)
    }
}

/// One submitted command and its reply (`Ticket(c, evs, id)`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The command.
    pub cmd: Cmd,
    /// Its events (one for appends, `BatchSize` for batches, none otherwise).
    pub evs: BTreeSet<EventNo>,
    /// Batch id (unfenced batches) or fence id (fence commands, fenced batches); 0 otherwise.
    pub id: u32,
    /// Reply status.
    pub st: Status,
    /// For `Sync`: the written-log length when the writer took it; for `Wait`: the point
    /// (`WaitMark`).
    pub mark: usize,
}

/// The spec's variables. Ticket numbers are 1-based, as in TLA+.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// `up`.
    pub up: bool,
    /// `queue`: ticket numbers in FIFO order.
    pub queue: Vec<usize>,
    /// `written`: the log as a read sees it (page cache).
    pub written: Vec<Record>,
    /// `durableLen`: disk truth, the fsynced prefix.
    pub durable_len: usize,
    /// `frontier`: what the store reports durable (a ghost across crashes).
    pub frontier: usize,
    /// `pubLen`.
    pub pub_len: usize,
    /// `visible`.
    pub visible: BTreeSet<EventNo>,
    /// `openFence` (0 = none).
    pub open_fence: u32,
    /// `held`.
    pub held: BTreeSet<u32>,
    /// `latched`.
    pub latched: bool,
    /// `pagesClean`: disk truth, a failed fsync left the unsynced pages clean.
    pub pages_clean: bool,
    /// `tickets`.
    pub tickets: Vec<Ticket>,
    /// `crashes`.
    pub crashes: u32,
    /// `fsyncFails`.
    pub fsync_fails: u32,
    /// `preCrash` (ghost; empty once recovered).
    pub pre_crash: Vec<Record>,
}

/// A crash image: `(keep, torn, lost_middle)` (see [`Action::ProcessCrash`]).
pub type CrashChoice = (usize, bool, bool);

/// The spec's action names; parameters are the action's `\E`-bound values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Client: submit an unfenced event.
    SubmitAppend,
    /// Client: submit an atomic batch.
    SubmitBatch,
    /// Client: begin a fence.
    SubmitFenceBegin,
    /// Client: submit an event under held fence `f`.
    SubmitFenceAppend(u32),
    /// Client: submit a batch under held fence `f`.
    SubmitFenceBatch(u32),
    /// Client: commit held fence `f`.
    SubmitFenceCommit(u32),
    /// Client: cancel held fence `f`.
    SubmitFenceCancel(u32),
    /// Client: drop held fence `f` (cancel request, never blocks).
    SubmitFenceDrop(u32),
    /// Client: `sync()`.
    SubmitSync,
    /// Writer: write an unfenced event.
    Append,
    /// Writer: write a batch and its `BatchCommit`.
    AppendBatch,
    /// Writer: write `FenceBegin`, open the fence.
    FenceBegin,
    /// Writer: write a fenced event.
    FenceAppend,
    /// Writer: write a batch and its `BatchCommit` under the open fence.
    FenceBatch,
    /// Writer: write `FenceCommit`, close the fence.
    FenceCommit,
    /// Writer: write `FenceCancel` (for a cancel or a drop), answer fenced tickets.
    FenceCancel,
    /// Writer: take a `Sync` (remember the written length it waits for).
    Sync,
    /// Writer: refuse the head command (admission).
    Refuse,
    /// Group commit: the written log becomes durable and is reported so.
    Fsync,
    /// A failed fsync: pages clean, the writer latches.
    FsyncFail,
    /// Publish the next durable commit point (the 1-based position is the parameter).
    Publish(usize),
    /// Answer ticket `t` (1-based) `Ok`.
    Reply(usize),
    /// The process dies (page cache survives) leaving `keep` records, optionally torn.
    ProcessCrash {
        /// Records kept (durable ones included).
        keep: usize,
        /// A torn record follows the kept ones.
        torn: bool,
        /// `crash_image_not_prefix`: durable prefix plus the last record only.
        lost_middle: bool,
    },
    /// Power is lost leaving `keep` records, optionally torn.
    PowerLoss {
        /// Records kept (durable ones included).
        keep: usize,
        /// A torn record follows the kept ones.
        torn: bool,
        /// `crash_image_not_prefix`: durable prefix plus the last record only.
        lost_middle: bool,
    },
    /// Cut the torn tail, make the log durable, rebuild visibility.
    Recover,
}

impl Action {
    /// The TLA+ action name (without parameters).
    pub fn name(&self) -> &'static str {
        match self {
            Action::SubmitAppend => "SubmitAppend",
            Action::SubmitBatch => "SubmitBatch",
            Action::SubmitFenceBegin => "SubmitFenceBegin",
            Action::SubmitFenceAppend(_) => "SubmitFenceAppend",
            Action::SubmitFenceBatch(_) => "SubmitFenceBatch",
            Action::SubmitFenceCommit(_) => "SubmitFenceCommit",
            Action::SubmitFenceCancel(_) => "SubmitFenceCancel",
            Action::SubmitFenceDrop(_) => "SubmitFenceDrop",
            Action::SubmitSync => "SubmitSync",
            Action::Append => "Append",
            Action::AppendBatch => "AppendBatch",
            Action::FenceBegin => "FenceBegin",
            Action::FenceAppend => "FenceAppend",
            Action::FenceBatch => "FenceBatch",
            Action::FenceCommit => "FenceCommit",
            Action::FenceCancel => "FenceCancel",
            Action::Sync => "Sync",
            Action::Refuse => "Refuse",
            Action::Fsync => "Fsync",
            Action::FsyncFail => "FsyncFail",
            Action::Publish(_) => "Publish",
            Action::Reply(_) => "Reply",
            Action::ProcessCrash { .. } => "ProcessCrash",
            Action::PowerLoss { .. } => "PowerLoss",
            Action::Recover => "Recover",
        }
    }
}

impl State {
    /// `Init`.
    pub fn init() -> State {
        State {
            up: true,
            queue: Vec::new(),
            written: Vec::new(),
            durable_len: 0,
            frontier: 0,
            pub_len: 0,
            visible: BTreeSet::new(),
            open_fence: 0,
            held: BTreeSet::new(),
            latched: false,
            pages_clean: false,
            tickets: Vec::new(),
            crashes: 0,
            fsync_fails: 0,
            pre_crash: Vec::new(),
        }
    }

    /// `tickets[t]` for a 1-based ticket number.
    pub fn ticket(&self, t: usize) -> Option<&Ticket> {
        t.checked_sub(1).and_then(|i| self.tickets.get(i))
    }

    fn ticket_mut(&mut self, t: usize) -> Option<&mut Ticket> {
        t.checked_sub(1).and_then(|i| self.tickets.get_mut(i))
    }

    /// `TicketsOf(c)` as 1-based numbers.
    pub fn tickets_of(&self, c: Cmd) -> impl Iterator<Item = usize> + '_ {
        (1..=self.tickets.len()).filter(move |&t| self.ticket(t).is_some_and(|k| k.cmd == c))
    }

    fn next_event(&self) -> u32 {
        let used: BTreeSet<EventNo> = self
            .tickets
            .iter()
            .flat_map(|t| t.evs.iter().copied())
            .collect();
        count(used.len()) + 1
    }

    fn next_of(&self, c: Cmd) -> u32 {
        count(self.tickets_of(c).count()) + 1
    }

    /// `NextBatch`: batch ids count both kinds of batch.
    fn next_batch(&self) -> u32 {
        count(self.tickets.iter().filter(|t| t.cmd.is_batch()).count()) + 1
    }

    /// `BatchNo(t)`: the batch id of (1-based) ticket `t`.
    pub fn batch_no(&self, t: usize) -> u32 {
        count(
            self.tickets
                .iter()
                .take(t)
                .filter(|k| k.cmd.is_batch())
                .count(),
        )
    }

    /// `DiskState` of this state: the written log, its durable prefix and the clean pages.
    pub fn disk(&self) -> DiskState {
        DiskState {
            written: self.written.clone(),
            durable_len: self.durable_len,
            pages_clean: self.pages_clean,
        }
    }

    fn head(&self) -> Option<(usize, &Ticket)> {
        let t = *self.queue.first()?;
        Some((t, self.ticket(t)?))
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn the_event(evs: &BTreeSet<EventNo>) -> EventNo {
    evs.iter().next().copied().unwrap_or(0)
}

// ----------------------------------------------------------------------------------- client

fn can_submit(cfg: &Config, s: &State) -> bool {
    s.up && s.queue.len() < cfg.queue_cap
}

fn submit(s: &State, cmd: Cmd, evs: BTreeSet<EventNo>, id: u32) -> State {
    let mut n = s.clone();
    n.tickets.push(Ticket {
        cmd,
        evs,
        id,
        st: Status::Queued,
        mark: 0,
    });
    n.queue.push(n.tickets.len());
    n
}

/// `SubmitAppend`.
pub fn submit_append(cfg: &Config, s: &State) -> Option<State> {
    let e = s.next_event();
    (can_submit(cfg, s) && e <= cfg.max_events)
        .then(|| submit(s, Cmd::Append, BTreeSet::from([e]), 0))
}

/// `SubmitBatch`.
pub fn submit_batch(cfg: &Config, s: &State) -> Option<State> {
    let (e, b) = (s.next_event(), s.next_batch());
    let last = e + cfg.batch_size - 1;
    (can_submit(cfg, s) && b <= cfg.max_batches && last <= cfg.max_events)
        .then(|| submit(s, Cmd::Batch, (e..=last).collect(), b))
}

/// `SubmitFenceBegin`.
pub fn submit_fence_begin(cfg: &Config, s: &State) -> Option<State> {
    let f = s.next_of(Cmd::FenceBegin);
    (can_submit(cfg, s) && f <= cfg.max_fences)
        .then(|| submit(s, Cmd::FenceBegin, BTreeSet::new(), f))
}

/// `SubmitFenceAppend(f)`.
pub fn submit_fence_append(cfg: &Config, s: &State, f: u32) -> Option<State> {
    let e = s.next_event();
    (can_submit(cfg, s) && s.held.contains(&f) && e <= cfg.max_events)
        .then(|| submit(s, Cmd::FenceAppend, BTreeSet::from([e]), f))
}

/// `SubmitFenceBatch(f)`: the ticket's id is the fence; its batch id is `BatchNo`.
pub fn submit_fence_batch(cfg: &Config, s: &State, f: u32) -> Option<State> {
    let (e, b) = (s.next_event(), s.next_batch());
    let last = e + cfg.batch_size - 1;
    (can_submit(cfg, s) && s.held.contains(&f) && b <= cfg.max_batches && last <= cfg.max_events)
        .then(|| submit(s, Cmd::FenceBatch, (e..=last).collect(), f))
}

fn submit_close(s: &State, f: u32, cmd: Cmd) -> State {
    let mut n = submit(s, cmd, BTreeSet::new(), f);
    n.held.remove(&f);
    n
}

/// `SubmitFenceCommit(f)`.
pub fn submit_fence_commit(cfg: &Config, s: &State, f: u32) -> Option<State> {
    (can_submit(cfg, s) && s.held.contains(&f)).then(|| submit_close(s, f, Cmd::FenceCommit))
}

/// `SubmitFenceCancel(f)`.
pub fn submit_fence_cancel(cfg: &Config, s: &State, f: u32) -> Option<State> {
    (can_submit(cfg, s) && s.held.contains(&f)).then(|| submit_close(s, f, Cmd::FenceCancel))
}

/// `SubmitFenceDrop(f)`: never blocks, so it ignores the queue capacity.
pub fn submit_fence_drop(_cfg: &Config, s: &State, f: u32) -> Option<State> {
    (s.up && s.held.contains(&f)).then(|| submit_close(s, f, Cmd::FenceDrop))
}

/// `SubmitSync`, its `sync()` disjunct.
pub fn submit_sync(cfg: &Config, s: &State) -> Option<State> {
    (can_submit(cfg, s) && count(s.tickets_of(Cmd::Sync).count()) < cfg.max_syncs)
        .then(|| submit(s, Cmd::Sync, BTreeSet::new(), 0))
}

/// `SubmitSync`, its `wait_for_durable(point)` disjunct for the point `seq` (a record
/// already written, `1..=Len(written)`, durable or not).
pub fn submit_wait(cfg: &Config, s: &State, seq: usize) -> Option<State> {
    let id = u32::try_from(seq).ok()?;
    (can_submit(cfg, s)
        && count(s.tickets_of(Cmd::Wait).count()) < cfg.max_waits
        && (1..=s.written.len()).contains(&seq))
    .then(|| submit(s, Cmd::Wait, BTreeSet::new(), id))
}

// ----------------------------------------------------------------------------------- writer

/// `Refusal(c)`: the definite error the head command gets instead of running.
pub fn refusal(s: &State, c: &Ticket) -> Option<Status> {
    if s.latched && c.cmd.is_write() {
        return Some(Status::WriterLatched);
    }
    match c.cmd {
        Cmd::Append | Cmd::Batch | Cmd::FenceBegin if s.open_fence != 0 => {
            Some(Status::VisibilityFenceActive)
        }
        Cmd::FenceAppend
        | Cmd::FenceBatch
        | Cmd::FenceCommit
        | Cmd::FenceCancel
        | Cmd::FenceDrop
            if s.open_fence != c.id =>
        {
            Some(Status::FenceNotOpen)
        }
        _ => None,
    }
}

/// The head ticket if the writer runs, its command is `cmd` and it is admitted.
fn admitted<'a>(s: &'a State, cmds: &[Cmd]) -> Option<(usize, &'a Ticket)> {
    let (t, c) = s.head().filter(|_| s.up)?;
    (cmds.contains(&c.cmd) && refusal(s, c).is_none()).then_some((t, c))
}

/// `Take(st)`: dequeue the head and set its status.
fn take(n: &mut State, t: usize, st: Status) {
    n.queue.remove(0);
    if let Some(k) = n.ticket_mut(t) {
        k.st = st;
    }
}

fn push(n: &mut State, k: RecKind, e: EventNo, u: UnitKind, id: u32) {
    let seq = seq_at(n.written.len());
    n.written.push(Record::new(k, e, u, id, seq));
}

/// `Append`.
pub fn append(_cfg: &Config, s: &State) -> Option<State> {
    let (t, c) = admitted(s, &[Cmd::Append])?;
    let mut n = s.clone();
    push(&mut n, RecKind::Event, the_event(&c.evs), UnitKind::None, 0);
    take(&mut n, t, Status::Taken);
    Some(n)
}

/// The batch's events and its `BatchCommit` (batch `b`, under fence `f` or 0) in one write.
fn push_batch(cfg: &Config, n: &mut State, evs: &BTreeSet<EventNo>, b: u32, f: u32) {
    let first = evs.iter().next().copied().unwrap_or(0);
    for i in 0..cfg.batch_size {
        let seq = seq_at(n.written.len());
        n.written
            .push(Record::in_batch(RecKind::Event, first + i, b, f, seq));
    }
    let seq = seq_at(n.written.len());
    n.written
        .push(Record::in_batch(RecKind::BatchCommit, 0, b, f, seq));
}

/// `AppendBatch`: the events and the `BatchCommit` in one write.
pub fn append_batch(cfg: &Config, s: &State) -> Option<State> {
    let (t, c) = admitted(s, &[Cmd::Batch])?;
    let mut n = s.clone();
    push_batch(cfg, &mut n, &c.evs, c.id, 0);
    take(&mut n, t, Status::Taken);
    Some(n)
}

/// `FenceBegin`.
pub fn fence_begin(_cfg: &Config, s: &State) -> Option<State> {
    let (t, c) = admitted(s, &[Cmd::FenceBegin])?;
    let mut n = s.clone();
    push(&mut n, RecKind::FenceBegin, 0, UnitKind::Fence, c.id);
    n.open_fence = c.id;
    take(&mut n, t, Status::Taken);
    Some(n)
}

/// `FenceAppend`.
pub fn fence_append(_cfg: &Config, s: &State) -> Option<State> {
    let (t, c) = admitted(s, &[Cmd::FenceAppend])?;
    let mut n = s.clone();
    push(
        &mut n,
        RecKind::Event,
        the_event(&c.evs),
        UnitKind::Fence,
        c.id,
    );
    take(&mut n, t, Status::Taken);
    Some(n)
}

/// `FenceBatch`: a batch inside the open fence, visible only with the fence's commit.
pub fn fence_batch(cfg: &Config, s: &State) -> Option<State> {
    let (t, c) = admitted(s, &[Cmd::FenceBatch])?;
    let mut n = s.clone();
    push_batch(cfg, &mut n, &c.evs, s.batch_no(t), c.id);
    take(&mut n, t, Status::Taken);
    Some(n)
}

/// `FenceCommit`.
pub fn fence_commit(_cfg: &Config, s: &State) -> Option<State> {
    let (t, c) = admitted(s, &[Cmd::FenceCommit])?;
    let mut n = s.clone();
    push(&mut n, RecKind::FenceCommit, 0, UnitKind::Fence, c.id);
    n.open_fence = 0;
    take(&mut n, t, Status::Taken);
    Some(n)
}

/// `FenceCancel` (for `FenceCancel` and `FenceDrop` commands). A latched writer writes no
/// cancel record.
pub fn fence_cancel(cfg: &Config, s: &State) -> Option<State> {
    let (t0, c) = admitted(s, &[Cmd::FenceCancel, Cmd::FenceDrop])?;
    let f = c.id;
    let mut n = s.clone();
    if cfg.mutant == Mutant::DropNeverCancels && c.cmd == Cmd::FenceDrop {
        take(&mut n, t0, Status::Ok);
        return Some(n);
    }
    if !s.latched {
        push(&mut n, RecKind::FenceCancel, 0, UnitKind::Fence, f);
    }
    n.open_fence = 0;
    take(&mut n, t0, Status::Ok);
    for k in &mut n.tickets {
        if k.cmd.is_fenced() && k.id == f && k.st == Status::Taken {
            k.st = Status::VisibilityFenceCancelled;
        }
    }
    Some(n)
}

/// `Sync` (writer side): takes a `Sync` (remembering the written length) or a `Wait`
/// (remembering its point, `WaitMark`).
pub fn sync(cfg: &Config, s: &State) -> Option<State> {
    let (t, c) = admitted(s, &[Cmd::Sync, Cmd::Wait])?;
    let mut n = s.clone();
    let mark = match c.cmd {
        Cmd::Wait if cfg.mutant == Mutant::WaitBeforeDurable => (c.id as usize).saturating_sub(1),
        Cmd::Wait => c.id as usize,
        _ => n.written.len(),
    };
    take(&mut n, t, Status::Taken);
    if let Some(k) = n.ticket_mut(t) {
        k.mark = mark;
    }
    Some(n)
}

/// `Refuse`.
pub fn refuse(cfg: &Config, s: &State) -> Option<State> {
    let (t, c) = s.head().filter(|_| s.up)?;
    let st = refusal(s, c)?;
    let mut n = s.clone();
    if cfg.mutant == Mutant::RefuseAfterWrite && c.cmd == Cmd::Append {
        push(&mut n, RecKind::Event, the_event(&c.evs), UnitKind::None, 0);
    }
    take(&mut n, t, st);
    Some(n)
}

/// `Fsync`: the writer fsyncs what it wrote and reports it durable; pages a failed fsync
/// left clean are not written by it, so the disk's durable prefix stops before them.
pub fn fsync(_cfg: &Config, s: &State) -> Option<State> {
    (s.up && !s.latched && s.frontier < s.written.len()).then(|| {
        let mut n = s.clone();
        if !s.pages_clean {
            n.durable_len = s.written.len();
        }
        n.frontier = s.written.len();
        n
    })
}

/// `FsyncFail`: the unsynced pages are marked clean and the writer latches (every waiting
/// ticket gets `OutcomeUnknown`).
pub fn fsync_fail(cfg: &Config, s: &State) -> Option<State> {
    if !(s.up && !s.latched && s.frontier < s.written.len() && s.fsync_fails < cfg.max_fsync_fails)
    {
        return None;
    }
    let mut n = s.clone();
    n.pages_clean = true;
    n.fsync_fails += 1;
    if cfg.mutant != Mutant::FsyncRetryAcks {
        n.latched = true;
        let st = if cfg.mutant == Mutant::LatchReportsDefinite {
            Status::WriterLatched
        } else {
            Status::OutcomeUnknown
        };
        for k in &mut n.tickets {
            if k.st == Status::Taken {
                k.st = st;
            }
        }
    }
    Some(n)
}

/// `PublishCandidates`.
fn publish_candidates(cfg: &Config, s: &State) -> Vec<usize> {
    let limit = if cfg.mutant == Mutant::PublishBeforeFsync {
        s.written.len()
    } else {
        s.frontier
    };
    (s.pub_len + 1..=limit)
        .filter(|&i| {
            s.written
                .get(i - 1)
                .is_some_and(|r| is_commit_point(r, cfg.mutant))
        })
        .collect()
}

/// `Publish` at 1-based position `i` (only the first candidate unless mutated).
pub fn publish(cfg: &Config, s: &State, i: usize) -> Option<State> {
    let cands = publish_candidates(cfg, s);
    let allowed = cands.contains(&i)
        && (cfg.mutant == Mutant::PublishOutOfOrder || cands.first() == Some(&i));
    if !s.up || !allowed {
        return None;
    }
    let mut n = s.clone();
    n.visible.extend(point_events(&s.written, i));
    n.pub_len = n.pub_len.max(i);
    Some(n)
}

fn published(s: &State, k: RecKind, id: u32) -> bool {
    let p = pos_of(&s.written, k, id);
    p != 0 && p <= s.pub_len
}

/// `ReadyOk(c)`: a taken ticket may be answered `Ok`.
pub fn ready_ok(cfg: &Config, s: &State, c: &Ticket) -> bool {
    let early = (cfg.mutant == Mutant::AckBeforeFsync && c.cmd == Cmd::Append)
        || (cfg.mutant == Mutant::FenceCommitAckBeforeDurable && c.cmd == Cmd::FenceCommit);
    if early {
        return true;
    }
    match c.cmd {
        Cmd::Append => {
            let p = ev_pos(&s.written, the_event(&c.evs));
            p != 0 && p <= s.pub_len
        }
        Cmd::Batch => published(s, RecKind::BatchCommit, c.id),
        Cmd::FenceBegin => {
            let p = pos_of(&s.written, RecKind::FenceBegin, c.id);
            p != 0 && p <= s.frontier
        }
        Cmd::FenceAppend | Cmd::FenceBatch | Cmd::FenceCommit => {
            published(s, RecKind::FenceCommit, c.id)
        }
        Cmd::Sync | Cmd::Wait => c.mark <= s.frontier,
        Cmd::FenceCancel | Cmd::FenceDrop => false,
    }
}

/// `Reply(t)`.
pub fn reply(cfg: &Config, s: &State, t: usize) -> Option<State> {
    let c = s.ticket(t)?;
    if !(s.up && c.st == Status::Taken && ready_ok(cfg, s, c)) {
        return None;
    }
    let mut n = s.clone();
    if c.cmd == Cmd::FenceBegin {
        n.held.insert(c.id);
    }
    if let Some(k) = n.ticket_mut(t) {
        k.st = Status::Ok;
    }
    Some(n)
}

// ------------------------------------------------------------------------------ crash/recover

/// `CrashImages` as `(keep, torn, lost_middle)`; the same for both kinds of crash.
pub fn crash_choices(cfg: &Config, s: &State) -> Vec<CrashChoice> {
    let mut out: Vec<CrashChoice> = crash_images(&s.written, s.durable_len)
        .into_iter()
        .map(|(k, t)| (k, t, false))
        .collect();
    if cfg.mutant == Mutant::CrashImageNotPrefix && s.written.len() > s.durable_len + 1 {
        out.push((s.durable_len, false, true));
    }
    out
}

/// `CrashProcess` with its image: what every crash does to the process (memory lost, waiting
/// tickets `WriterCrashed`, `frontier` kept as a ghost), plus the image as the new log.
fn crash_process(cfg: &Config, s: &State, choice: CrashChoice) -> Option<State> {
    if !(s.up && s.crashes < cfg.max_crashes && crash_choices(cfg, s).contains(&choice)) {
        return None;
    }
    let (keep, torn, lost_middle) = choice;
    let mut img = image(&s.written, keep, torn);
    if lost_middle {
        img.extend(s.written.last().cloned());
    }
    let mut n = s.clone();
    n.written = img;
    n.up = false;
    n.crashes += 1;
    n.queue.clear();
    n.visible.clear();
    n.pub_len = 0;
    n.open_fence = 0;
    n.held.clear();
    n.latched = false;
    if cfg.mutant != Mutant::CrashForgetsTickets {
        for k in &mut n.tickets {
            if !k.st.is_final() {
                k.st = Status::WriterCrashed;
            }
        }
    }
    n.pre_crash = s.written.clone();
    Some(n)
}

/// `ProcessCrash` leaving image `(keep, torn, lost_middle)`: the page cache survives, so
/// the next session reads the image, but nothing in it becomes durable.
pub fn process_crash(
    cfg: &Config,
    s: &State,
    keep: usize,
    torn: bool,
    lost_middle: bool,
) -> Option<State> {
    crash_process(cfg, s, (keep, torn, lost_middle))
}

/// `PowerLoss` leaving image `(keep, torn, lost_middle)`: only what reached the disk
/// survives, and what survived (read back from the disk) is durable.
pub fn power_loss(
    cfg: &Config,
    s: &State,
    keep: usize,
    torn: bool,
    lost_middle: bool,
) -> Option<State> {
    let mut n = crash_process(cfg, s, (keep, torn, lost_middle))?;
    n.durable_len = cut_torn(&n.written).len();
    n.pages_clean = false;
    Some(n)
}

/// The single `Crash` of the earlier spec, whose survivors became durable: a power loss.
pub fn crash(cfg: &Config, s: &State, keep: usize, torn: bool, lost_middle: bool) -> Option<State> {
    power_loss(cfg, s, keep, torn, lost_middle)
}

/// `Recover`: cut the torn tail, make the kept log durable before reporting it (recovery's
/// own fsync, after rewriting pages a failed fsync left clean), rebuild visibility.
pub fn recover_step(cfg: &Config, s: &State) -> Option<State> {
    if s.up {
        return None;
    }
    let log = recover_log(&s.written, cfg.mutant);
    let mut n = s.clone();
    let trusts = matches!(
        cfg.mutant,
        Mutant::RecoveryTrustsPageCache | Mutant::RecoveryFsyncTrustsCleanPages
    );
    let skips_sync = cfg.mutant == Mutant::RecoveryTrustsPageCache
        || (cfg.mutant == Mutant::RecoveryFsyncTrustsCleanPages && s.pages_clean);
    if !skips_sync {
        n.durable_len = log.len();
    }
    if !trusts {
        n.pages_clean = false;
    }
    n.frontier = log.len();
    n.pub_len = log.len();
    n.visible = recover_visible(&log, cfg.mutant);
    n.written = log;
    n.up = true;
    n.pre_crash.clear();
    Some(n)
}

// ------------------------------------------------------------------------------------- Next

/// `Next`: every enabled action with its successor.
pub fn next_states(cfg: &Config, s: &State) -> Vec<(Action, State)> {
    let mut out = Vec::new();
    let mut add = |a: Action, n: Option<State>| {
        if let Some(n) = n {
            out.push((a, n));
        }
    };
    add(Action::SubmitAppend, submit_append(cfg, s));
    add(Action::SubmitBatch, submit_batch(cfg, s));
    add(Action::SubmitFenceBegin, submit_fence_begin(cfg, s));
    add(Action::SubmitSync, submit_sync(cfg, s));
    for seq in 1..=s.written.len() {
        add(Action::SubmitSync, submit_wait(cfg, s, seq));
    }
    for &f in &s.held {
        add(Action::SubmitFenceAppend(f), submit_fence_append(cfg, s, f));
        add(Action::SubmitFenceBatch(f), submit_fence_batch(cfg, s, f));
        add(Action::SubmitFenceCommit(f), submit_fence_commit(cfg, s, f));
        add(Action::SubmitFenceCancel(f), submit_fence_cancel(cfg, s, f));
        add(Action::SubmitFenceDrop(f), submit_fence_drop(cfg, s, f));
    }
    add(Action::Append, append(cfg, s));
    add(Action::AppendBatch, append_batch(cfg, s));
    add(Action::FenceBegin, fence_begin(cfg, s));
    add(Action::FenceAppend, fence_append(cfg, s));
    add(Action::FenceBatch, fence_batch(cfg, s));
    add(Action::FenceCommit, fence_commit(cfg, s));
    add(Action::FenceCancel, fence_cancel(cfg, s));
    add(Action::Sync, sync(cfg, s));
    add(Action::Refuse, refuse(cfg, s));
    add(Action::Fsync, fsync(cfg, s));
    add(Action::FsyncFail, fsync_fail(cfg, s));
    for i in publish_candidates(cfg, s) {
        add(Action::Publish(i), publish(cfg, s, i));
    }
    for t in 1..=s.tickets.len() {
        add(Action::Reply(t), reply(cfg, s, t));
    }
    for (keep, torn, lost_middle) in crash_choices(cfg, s) {
        add(
            Action::ProcessCrash {
                keep,
                torn,
                lost_middle,
            },
            process_crash(cfg, s, keep, torn, lost_middle),
        );
        add(
            Action::PowerLoss {
                keep,
                torn,
                lost_middle,
            },
            power_loss(cfg, s, keep, torn, lost_middle),
        );
    }
    add(Action::Recover, recover_step(cfg, s));
    out
}

/// Breadth-first search of the reachable states (TLC's "distinct states").
pub fn reachable(cfg: &Config) -> HashSet<State> {
    let init = State::init();
    let mut seen: HashSet<State> = HashSet::from([init.clone()]);
    let mut todo: VecDeque<State> = VecDeque::from([init]);
    while let Some(s) = todo.pop_front() {
        for (_, n) in next_states(cfg, &s) {
            if !seen.contains(&n) {
                seen.insert(n.clone());
                todo.push_back(n);
            }
        }
    }
    seen
}
