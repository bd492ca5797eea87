//! The trace conformance observer (feature `tla-trace`): turns what the writer, recovery and
//! the client-side enqueue report ([`super::observe::Observe`]) into the TLA+-named events of
//! [`crate::trace`] (the table there says which event comes from where), in the order of
//! their linearisation points. A client-side enqueue and its `Submit*` event are one step.

use super::observe::Observe;
use super::shared::FrontierCells;
use super::state::{Ack, Answer, Fact, Outgoing, Step, StepAnswer};
use crate::error::StoreError;
use crate::index::{Index, Slot};
use crate::log::{RecoveryReport, SEGMENT_HEADER_BYTES};
use crate::region::Region;
use crate::sync::atomic::Ordering;
use crate::sync::channel::{Sender, TrySendError};
use crate::sync::StdArc;
use crate::trace::{TraceEvent, TraceSink};
use crate::writer::state::FenceWaiter;
use crate::writer::Command;

/// An action name, checked against [`crate::trace::ACTIONS`] at compile time.
macro_rules! trace_action {
    ($a:literal) => {{
        const _: () = assert!(crate::trace::is_action($a), "not a TLA+ action");
        $a
    }};
}

/// The `Submit*` event of a command (`None` for what the spec does not model).
fn submit_event(cmd: &Command) -> Option<TraceEvent> {
    let ev = |a: &'static str, args: Vec<u128>| Some(TraceEvent::new(a, "", args));
    match cmd {
        Command::Append { fence: None, .. } => ev(trace_action!("SubmitAppend"), vec![]),
        Command::Append { fence: Some(f), .. } => {
            ev(trace_action!("SubmitFenceAppend"), vec![u128::from(*f)])
        }
        Command::Batch {
            fence: None, items, ..
        } => ev(trace_action!("SubmitBatch"), vec![items.len() as u128]),
        Command::Batch {
            fence: Some(f),
            items,
            reply_when_staged: false,
            ..
        } => ev(
            trace_action!("SubmitFenceBatch"),
            vec![u128::from(*f), items.len() as u128],
        ),
        Command::Batch { fence: Some(_), .. } => None,
        Command::FenceBegin { .. } => ev(trace_action!("SubmitFenceBegin"), vec![]),
        Command::FenceCommit { fence, .. } => {
            ev(trace_action!("SubmitFenceCommit"), vec![u128::from(*fence)])
        }
        Command::FenceCancel {
            fence,
            reply: Some(_),
        } => ev(trace_action!("SubmitFenceCancel"), vec![u128::from(*fence)]),
        Command::FenceCancel { fence, reply: None } => {
            ev(trace_action!("SubmitFenceDrop"), vec![u128::from(*fence)])
        }
        Command::Sync { .. } => ev(trace_action!("SubmitSync"), vec![]),
        Command::Shutdown { .. } => None,
        // Consumer checkpoints are modelled in spec/Delivery.tla, not in the store's spec.
        Command::Checkpoint { .. } => None,
        Command::ForgetRemoved { .. } => None,
    }
}

/// `try_send` and the command's `Submit*` event, as one step of the trace. Returns what
/// `Sender::try_send` returns (a full queue hands the command back).
#[allow(clippy::result_large_err)]
fn try_send_traced(
    sink: &TraceSink,
    tx: &Sender<Command>,
    cmd: Command,
) -> Result<(), TrySendError<Command>> {
    let ev = submit_event(&cmd);
    let mut events = sink.events.lock();
    tx.try_send(cmd)?;
    events.extend(ev);
    Ok(())
}

/// A blocking send whose enqueue and `Submit*` event are one step of the trace: retries
/// `try_send` (the sink is not held while the queue is full, so the writer can drain it).
fn send_traced(sink: &TraceSink, tx: &Sender<Command>, mut cmd: Command) -> Result<(), StoreError> {
    loop {
        match try_send_traced(sink, tx, cmd) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(c)) => {
                cmd = c;
                crate::sync::thread::yield_now();
            }
            Err(TrySendError::Disconnected(_)) => return Err(StoreError::WriterCrashed),
        }
    }
}

/// The `Publish` events of a group: `units` are (commit position, number of slots) in
/// the order `ready` holds the slots.
fn publish_events(units: &[(u64, usize)], ready: &[Slot]) -> Vec<TraceEvent> {
    let mut out = Vec::with_capacity(units.len());
    let mut rest = ready;
    for &(pos, n) in units {
        let (unit, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        let mut args = vec![u128::from(pos)];
        args.extend(unit.iter().map(|s| s.event_id));
        out.push(TraceEvent::new(trace_action!("Publish"), "", args));
    }
    out
}

/// Emits the trace events of one store into its sink (none without a sink).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tla {
    sink: Option<StdArc<TraceSink>>,
}

impl Tla {
    fn emit(&self, action: &'static str, about: &'static str, args: Vec<u128>) {
        if let Some(sink) = &self.sink {
            sink.emit(TraceEvent::new(action, about, args));
        }
    }
}

/// The event ids of `receipts`, after `first`.
fn ids(first: Vec<u128>, receipts: &[crate::append::AppendReceipt]) -> Vec<u128> {
    let mut args = first;
    args.extend(receipts.iter().map(|r| r.event_id));
    args
}

impl Observe for Tla {
    fn new(sink: Option<StdArc<TraceSink>>) -> Self {
        Self { sink }
    }

    fn wants_units(&self) -> bool {
        true
    }

    fn try_send(&self, tx: &Sender<Command>, cmd: Command) -> Result<(), TrySendError<Command>> {
        match &self.sink {
            Some(sink) => try_send_traced(sink, tx, cmd),
            None => tx.try_send(cmd),
        }
    }

    fn send(&self, tx: &Sender<Command>, cmd: Command) -> Result<(), StoreError> {
        match &self.sink {
            Some(sink) => send_traced(sink, tx, cmd),
            None => tx.send(cmd).map_err(|_| StoreError::WriterCrashed),
        }
    }

    fn step(&self, step: &Step) {
        let (fact, answer) = (step.fact, &step.answer);
        let now = |o: &Outgoing| match &o.answer {
            Answer::Receipt(_, Ok(r)) => vec![r.event_id],
            Answer::Receipts(_, Ok(v)) => ids(Vec::new(), v),
            Answer::Token(_, Ok(t)) => vec![u128::from(*t)],
            _ => Vec::new(),
        };
        let (action, about, args): (&'static str, &'static str, Vec<u128>) = match (fact, answer) {
            (Fact::Append, StepAnswer::Now(o)) => (trace_action!("Append"), "", now(o)),
            (Fact::AppendBatch, StepAnswer::Now(o)) => (trace_action!("AppendBatch"), "", now(o)),
            (Fact::FenceBegin, StepAnswer::Now(o)) => (trace_action!("FenceBegin"), "", now(o)),
            (Fact::FenceAppend(f), StepAnswer::AtFenceEnd(FenceWaiter::Append(_, r))) => (
                trace_action!("FenceAppend"),
                "",
                vec![u128::from(f), r.event_id],
            ),
            (Fact::FenceBatch(f), StepAnswer::AtFenceEnd(FenceWaiter::Batch(_, v))) => {
                (trace_action!("FenceBatch"), "", ids(vec![u128::from(f)], v))
            }
            (Fact::FenceCommit(f), _) => (trace_action!("FenceCommit"), "", vec![u128::from(f)]),
            (Fact::FenceCancel(f), _) => (trace_action!("FenceCancel"), "", vec![u128::from(f)]),
            (Fact::Sync, _) => (trace_action!("Sync"), "", Vec::new()),
            (Fact::Refuse(status), _) => (trace_action!("Refuse"), status, Vec::new()),
            _ => return,
        };
        self.emit(action, about, args);
    }

    fn fsync(&self, written: u64, frontier: &FrontierCells) {
        if written > frontier.durable.load(Ordering::SeqCst) {
            self.emit(trace_action!("Fsync"), "", vec![u128::from(written)]);
        }
    }

    fn fsync_failed(&self, written: u64, frontier: &FrontierCells) {
        if written > frontier.durable.load(Ordering::SeqCst) {
            self.emit(trace_action!("FsyncFail"), "", Vec::new());
        }
    }

    fn publish(&self, units: &[(u64, usize)], ready: &[Slot]) {
        if let Some(sink) = &self.sink {
            for ev in publish_events(units, ready) {
                sink.emit(ev);
            }
        }
    }

    fn replies(&self, out: &[Outgoing]) {
        for o in out {
            let first =
                |v: &[crate::append::AppendReceipt]| v.iter().map(|r| r.event_id).take(1).collect();
            let (about, args): (&'static str, Vec<u128>) = match (o.ack, &o.answer) {
                (Ack::Append, Answer::Receipt(_, Ok(r))) => ("Append", vec![r.event_id]),
                (Ack::FenceAppend, Answer::Receipt(_, Ok(r))) => ("FenceAppend", vec![r.event_id]),
                (Ack::Batch, Answer::Receipts(_, Ok(v))) => ("Batch", first(v)),
                (Ack::FenceBatch, Answer::Receipts(_, Ok(v))) => ("FenceBatch", first(v)),
                (Ack::FenceBegin, Answer::Token(_, Ok(t))) => ("FenceBegin", vec![u128::from(*t)]),
                (Ack::FenceCommit(f), Answer::Unit(_, Ok(()))) => {
                    ("FenceCommit", vec![u128::from(f)])
                }
                (Ack::Sync, Answer::Unit(_, Ok(()))) => ("Sync", Vec::new()),
                _ => continue,
            };
            self.emit(trace_action!("Reply"), about, args);
        }
    }

    fn recover(&self, report: &RecoveryReport, index: &Index) {
        if self.sink.is_none() {
            return;
        }
        // A torn record; a torn segment header (an interrupted roll) holds no record.
        let torn = report
            .torn_tail
            .as_ref()
            .is_some_and(|t| t.offset >= SEGMENT_HEADER_BYTES as u64);
        let mut args = vec![u128::from(report.next_seq), u128::from(torn)];
        args.extend(index.query(&Region::all()).iter().map(|e| e.event_id));
        self.emit(trace_action!("Recover"), "", args);
    }
}
