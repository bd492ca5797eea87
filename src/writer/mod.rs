//! The single writer thread: the only place that decides admission and order.
//!
//! [`state`] is the decision logic, a state machine whose steps carry the names of the TLA+
//! actions in `spec/Store.tla` (`Append`, `AppendBatch`, `FenceBegin`, `FenceAppend`,
//! `FenceCommit`, `FenceCancel`, `Refuse`, `Sync`); each step encodes its records into the
//! group's [`frames`] and returns what it decided, without I/O. [`thread`] is the loop that
//! receives commands, calls the state machine, places each step's frames ([`place`]: the only
//! I/O there is a segment roll), then writes the group, fsyncs once when [`durability`] says
//! so, publishes into the index ([`shared`]) and replies (group commit). What happens is
//! reported to an [`observe`] observer (nothing in production; the TLA+ trace with the
//! feature `tla-trace`).

pub(crate) mod durability;
pub(crate) mod frames;
pub(crate) mod observe;
pub(crate) mod place;
pub(crate) mod shared;
pub mod state;
pub(crate) mod thread;
#[cfg(feature = "tla-trace")]
pub(crate) mod trace;

pub use crate::append::{AppendOptions, AppendReceipt, CausationRef};
use crate::coordinate::Coordinate;
use crate::error::StoreError;
use crate::event::EventKind;
use crate::sync::channel::Sender;

/// One event to write, prepared on the caller's thread (payload already serialised, its
/// content hash computed there, so the writer thread does not hash each payload twice).
#[derive(Debug, Clone)]
pub(crate) struct AppendItem {
    pub coord: Coordinate,
    pub kind: EventKind,
    pub payload: Vec<u8>,
    /// BLAKE3 of `payload` (the receipt's `content_hash`; idempotent retries compare it).
    pub content_hash: [u8; 32],
    pub options: AppendOptions,
    pub causation_ref: CausationRef,
}

impl AppendItem {
    /// An item for `payload` (serialised), hashing it on the calling thread.
    pub(crate) fn new(
        coord: Coordinate,
        kind: EventKind,
        payload: Vec<u8>,
        options: AppendOptions,
        causation_ref: CausationRef,
    ) -> Self {
        let content_hash = *blake3::hash(&payload).as_bytes();
        Self {
            coord,
            kind,
            payload,
            content_hash,
            options,
            causation_ref,
        }
    }
}

/// A one-shot reply channel.
pub(crate) type Reply<T> = Sender<Result<T, StoreError>>;

/// What callers ask of the writer.
// An append is the common command and moves through the queue once; boxing it to shrink the
// rare ones would cost an allocation per append.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Command {
    /// One event (under `fence` if set).
    Append {
        item: AppendItem,
        fence: Option<u64>,
        reply: Reply<AppendReceipt>,
    },
    /// An atomic batch (under `fence` if set). A fenced batch with `reply_when_staged`
    /// answers once durably written instead of at commit (the fenced outbox flush).
    Batch {
        items: Vec<AppendItem>,
        fence: Option<u64>,
        reply_when_staged: bool,
        reply: Reply<Vec<AppendReceipt>>,
    },
    /// Open a fence; answers its token.
    FenceBegin { reply: Reply<u64> },
    /// Commit the fence: durable commit record, then publish, then answer.
    FenceCommit { fence: u64, reply: Reply<()> },
    /// Cancel the fence (`reply` is `None` for a drop-cancel nobody waits for).
    FenceCancel {
        fence: u64,
        reply: Option<Reply<()>>,
    },
    /// A consumer checkpoint, with `items` (the consumer's outputs) in one atomic unit;
    /// answered once durable.
    Checkpoint {
        items: Vec<AppendItem>,
        checkpoint: state::checkpoints::CheckpointWrite,
        reply: Reply<Vec<AppendReceipt>>,
    },
    /// Make everything written so far durable.
    Sync { reply: Reply<()> },
    /// A compaction swapped in and removed these events (ids): forget their idempotency keys
    /// (and any pending id), so that the running store answers like a reopened one
    /// (INV-IDEMPOTENT). Writes nothing; answered once decided.
    ForgetRemoved {
        removed: Vec<u128>,
        reply: Reply<()>,
    },
    /// Finish the queue, cancel an open fence, sync, and stop.
    Shutdown { reply: Reply<()> },
}
