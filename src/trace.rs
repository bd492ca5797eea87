//! TLA+ trace events (trace conformance).
//!
//! With the cargo feature `tla-trace` and a [`TraceSink`] set on the store
//! (`StoreConfig::with_trace_sink`), the client side, the writer and recovery emit one
//! [`TraceEvent`] per step of `spec/Store.tla`, named exactly like its action, at the step's
//! linearisation point:
//!
//! | action | emitted by | `about` | `args` |
//! |---|---|---|---|
//! | `SubmitAppend`, `SubmitBatch`, `SubmitFenceBegin`, `SubmitSync` | the enqueue (`Store::send`, `try_send`, `send_detached`), atomically with it | | batch: `[items]` |
//! | `SubmitFenceAppend`, `SubmitFenceCommit`, `SubmitFenceCancel`, `SubmitFenceDrop` | the same | | `[fence token]` |
//! | `SubmitFenceBatch` | the same (a batch under a fence, answered at its commit) | | `[fence token, items]` |
//! | `Append` | `WriterState::step` | | `[event id]` |
//! | `AppendBatch` | `WriterState::step` | | the event ids |
//! | `FenceBegin`, `FenceCommit`, `FenceCancel` (cancel and drop) | `WriterState::step` | | `[fence token]` |
//! | `FenceAppend` | `WriterState::step` | | `[fence token, event id]` |
//! | `FenceBatch` | `WriterState::step` | | `[fence token, event ids..]` |
//! | `Sync` | `WriterState::step` | | |
//! | `Refuse` | `WriterState::step` | `VisibilityFenceActive`, `FenceNotOpen` or `WriterLatched` | |
//! | `Fsync` | the writer thread, after the group's fsync | | `[records durable]` |
//! | `FsyncFail` | the writer thread, when the group's write or fsync fails and it latches (only if the group wrote records) | | |
//! | `Publish` | the writer thread, one per unit, at the index publish | | `[commit position, event ids..]` |
//! | `Reply` | the writer thread, before the group's answers are sent | the command | `[event id]` (first of a batch), `[fence token]`, or `[]` (sync) |
//! | `Recover` | `Store::open` after recovery | | `[records kept, torn record cut (0/1), visible event ids..]`; a torn segment header (an interrupted roll) is no record: 0 |
//! | `ProcessCrash`, `PowerLoss` | the test harness, when it kills the process (the page cache survives) or takes a power-loss image | | `[records kept, torn (0/1)]` |
//!
//! Replies with an error, idempotent retries, the outbox's staged fenced batches, shutdown and
//! a latch that no `FsyncFail` announced (a failed segment roll, a failed fsync with nothing
//! new written) are outside the model and emit nothing. A commit position is the 1-based
//! position of the unit's commit record in the log (its sequence + 1), as in the spec.
//!
//! Without the feature the macros expand to nothing: the store has no trace field, no trace
//! branch and no trace call. The types and [`ACTIONS`] exist in every build so that tests can
//! compare the names with the spec.

use crate::sync::Mutex;

/// The actions of `spec/Store.tla`'s `Next`: the only names a [`TraceEvent`] may carry (the
/// emitting macro checks it at compile time).
pub const ACTIONS: &[&str] = &[
    "SubmitAppend",
    "SubmitBatch",
    "SubmitFenceBegin",
    "SubmitFenceAppend",
    "SubmitFenceBatch",
    "SubmitFenceCommit",
    "SubmitFenceCancel",
    "SubmitFenceDrop",
    "SubmitSync",
    "Append",
    "AppendBatch",
    "FenceBegin",
    "FenceAppend",
    "FenceBatch",
    "FenceCommit",
    "FenceCancel",
    "Sync",
    "Refuse",
    "Fsync",
    "FsyncFail",
    "Publish",
    "Reply",
    "ProcessCrash",
    "PowerLoss",
    "Recover",
];

/// Whether `name` is one of [`ACTIONS`] (usable in constants).
pub const fn is_action(name: &str) -> bool {
    let mut i = 0;
    while i < ACTIONS.len() {
        let a = ACTIONS[i].as_bytes();
        let b = name.as_bytes();
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// One step of the spec, as the implementation took it (see the module table for the
/// arguments of each action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// The TLA+ action name (one of [`ACTIONS`]).
    pub action: &'static str,
    /// `Reply`: the command answered; `Refuse`: the status; otherwise empty.
    pub about: &'static str,
    /// Real identifiers and counts (event ids, fence tokens, record counts).
    pub args: Vec<u128>,
}

impl TraceEvent {
    /// An event.
    pub fn new(action: &'static str, about: &'static str, args: Vec<u128>) -> Self {
        Self {
            action,
            about,
            args,
        }
    }
}

/// Where one store's trace events go, in the order of their linearisation points.
#[derive(Debug, Default)]
pub struct TraceSink {
    pub(crate) events: Mutex<Vec<TraceEvent>>,
}

impl TraceSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one event.
    pub fn emit(&self, event: TraceEvent) {
        self.events.lock().push(event);
    }

    /// The events so far.
    pub fn events(&self) -> Vec<TraceEvent> {
        self.events.lock().clone()
    }

    /// Runs `f` while no event can be emitted (e.g. to take a crash image that is consistent
    /// with the trace so far); `f` sees the events so far.
    pub fn while_held<R>(&self, f: impl FnOnce(&[TraceEvent]) -> R) -> R {
        let events = self.events.lock();
        f(&events)
    }
}
