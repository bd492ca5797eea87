//! The writer's side of trace conformance (feature `tla-trace`): the client-side enqueue
//! traced atomically with its `Submit*` event, the spec's status of a refusal, and the
//! `Publish` events of a group. See [`crate::trace`] for the table of events.

use crate::error::StoreError;
use crate::sync::channel::{Sender, TrySendError};
use crate::trace::{TraceEvent, TraceSink};
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
    }
}

/// `try_send` and the command's `Submit*` event, as one step of the trace. Returns what
/// `Sender::try_send` returns (a full queue hands the command back).
#[allow(clippy::result_large_err)]
pub(crate) fn try_send_traced(
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
pub(crate) fn send_traced(
    sink: &TraceSink,
    tx: &Sender<Command>,
    mut cmd: Command,
) -> Result<(), StoreError> {
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

/// The status a refusal has in the spec (`None`: not a refusal the spec models).
pub(crate) fn refusal(e: &StoreError) -> Option<&'static str> {
    match e {
        StoreError::VisibilityFenceActive => Some("VisibilityFenceActive"),
        StoreError::VisibilityFenceNotActive => Some("FenceNotOpen"),
        StoreError::WriterLatched { .. } => Some("WriterLatched"),
        _ => None,
    }
}

/// The `Publish` events of a group: `units` are (commit position, number of slots) in
/// the order `ready` holds the slots.
pub(crate) fn publish_events(
    units: &[(u64, usize)],
    ready: &[crate::index::Slot],
) -> Vec<TraceEvent> {
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
