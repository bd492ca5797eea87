//! The writer's state and decision logic. Every step is named after its TLA+ action in
//! `spec/Store.tla` ([`steps`]); it decides and encodes its records but does no I/O, and its
//! effects on the state that need the records' positions apply once the thread has placed
//! them ([`WriterState::apply`]). The state is also what recovery rebuilds ([`replay`]),
//! through the same unit bookkeeping ([`units`]), so recovery and the live writer cannot
//! disagree about what is visible.
//!
//! Each part owns its state: [`chains`] (entity clocks and hashes, interned coordinates),
//! [`hlc`] (the hybrid logical clock), [`idem`] (idempotency keys, pending ids), [`units`]
//! (batches and fences waiting for their commit, events ready to publish).

pub(crate) mod chains;
pub(crate) mod checkpoints;
pub(crate) mod hlc;
pub(crate) mod idem;
mod replay;
pub(crate) mod steps;
pub(crate) mod units;

#[cfg(feature = "tla-trace")]
pub(crate) use steps::{Fact, StepAnswer};
pub(crate) use steps::{Step, StepEnv};

use super::Reply;
use crate::append::AppendReceipt;
use crate::codec::Unit;
use crate::error::StoreError;
use crate::index::{Index, Slot};
use crate::mutant::Bugs;
use chains::Chains;
use hlc::Hlc;
use idem::{IdemInfo, Idempotency};
use units::Units;

/// Limits the writer enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub batch_max_size: usize,
    pub batch_max_bytes: u64,
    pub single_append_max_bytes: u64,
}

/// What the trace's `Reply` step says of an answer (nothing for answers the spec does not
/// model: refusals, idempotent retries, the outbox's staged fenced batches, cancels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    None,
    Append,
    Batch,
    FenceBegin,
    FenceCommit(u64),
    FenceAppend,
    FenceBatch,
    Sync,
}

/// A reply channel and its answer.
#[derive(Debug)]
pub(crate) enum Answer {
    Receipt(Reply<AppendReceipt>, Result<AppendReceipt, StoreError>),
    Receipts(
        Reply<Vec<AppendReceipt>>,
        Result<Vec<AppendReceipt>, StoreError>,
    ),
    Unit(Reply<()>, Result<(), StoreError>),
    Token(Reply<u64>, Result<u64, StoreError>),
}

/// A reply the thread sends once the group is durable (or failed).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub answer: Answer,
    /// Read by an observer only.
    #[cfg_attr(not(feature = "tla-trace"), allow(dead_code))]
    pub ack: Ack,
}

impl Outgoing {
    /// An answer the spec's `Reply` step does not model.
    pub fn plain(answer: Answer) -> Self {
        Self {
            answer,
            ack: Ack::None,
        }
    }

    /// Turns an `Ok` answer into `error()` (the group failed); errors stay as they are.
    pub fn fail(&mut self, error: &impl Fn() -> StoreError) {
        match &mut self.answer {
            Answer::Receipt(_, r @ Ok(_)) => *r = Err(error()),
            Answer::Receipts(_, r @ Ok(_)) => *r = Err(error()),
            Answer::Unit(_, r @ Ok(_)) => *r = Err(error()),
            Answer::Token(_, r @ Ok(_)) => *r = Err(error()),
            _ => {}
        }
    }
}

/// A fenced ticket waiting for its fence to end.
#[derive(Debug)]
pub(crate) enum FenceWaiter {
    Append(Reply<AppendReceipt>, AppendReceipt),
    /// An idempotent retry of a fenced append: answered with the original's fate.
    Duplicate(Reply<AppendReceipt>, AppendReceipt),
    Batch(Reply<Vec<AppendReceipt>>, Vec<AppendReceipt>),
}

impl FenceWaiter {
    /// The answer at the fence's commit.
    fn committed(self) -> Outgoing {
        match self {
            FenceWaiter::Append(r, receipt) => Outgoing {
                answer: Answer::Receipt(r, Ok(receipt)),
                ack: Ack::FenceAppend,
            },
            FenceWaiter::Batch(r, receipts) => Outgoing {
                answer: Answer::Receipts(r, Ok(receipts)),
                ack: Ack::FenceBatch,
            },
            FenceWaiter::Duplicate(r, receipt) => Outgoing::plain(Answer::Receipt(r, Ok(receipt))),
        }
    }

    /// The answer when the fence ends without a commit.
    fn failed(self, error: StoreError) -> Outgoing {
        Outgoing::plain(match self {
            FenceWaiter::Append(r, _) | FenceWaiter::Duplicate(r, _) => {
                Answer::Receipt(r, Err(error))
            }
            FenceWaiter::Batch(r, _) => Answer::Receipts(r, Err(error)),
        })
    }
}

/// What a placed record changes in the state, once its position is known.
#[expect(
    clippy::large_enum_variant,
    reason = "effects live in the writer's reused frame list; boxing events would allocate per event"
)]
#[derive(Debug)]
pub(crate) enum Effect {
    /// Nothing (fence begin and cancel records act when decided).
    None,
    /// An event: its index slot joins its unit; its key and id become pending.
    Event {
        slot: Slot,
        unit: Unit,
        key: Option<(u128, IdemInfo)>,
    },
    /// A batch's commit record.
    BatchCommit {
        batch: u64,
        count: u32,
        fence: Option<u64>,
    },
    /// A fence's commit record: its events become ready, its tickets are answered.
    FenceCommit { fence: u64 },
}

/// Writer (and recovery) state.
#[derive(Debug, Default)]
pub(crate) struct WriterState {
    /// The sequence the next record takes.
    pub next_seq: u64,
    chains: Chains,
    hlc: Hlc,
    idem: Idempotency,
    /// Units waiting for their commit, and events ready to publish.
    pub units: Units,
    /// The open fence (live writer only; recovery never leaves one open).
    pub open_fence: Option<u64>,
    /// Fenced tickets waiting for the open fence to end.
    fence_waiters: Vec<FenceWaiter>,
    /// The I/O failure that latched the writer.
    pub latched: Option<String>,
    /// Consumer checkpoints (rebuilt by recovery; the live store keeps its own table).
    pub checkpoints: checkpoints::Checkpoints,
    /// The seeded bug (mutant build only, see [`crate::mutant`]).
    pub bugs: Bugs,
}

impl WriterState {
    /// The state of an empty log, for recovery to replay into, with the seeded bug `bugs`.
    pub fn new(bugs: Bugs) -> Self {
        let mut state = Self {
            bugs,
            ..Self::default()
        };
        state.units.bugs = bugs;
        state.units.recovering = true;
        state
    }

    /// Publish, for the writer and for recovery alike: makes `slots` visible in `index`, in
    /// order, after the coordinates interned since the last publish. Settling their
    /// idempotency keys ([`WriterState::settle_published`]) follows once the index lock is
    /// released.
    pub fn publish_into(&self, index: &mut Index, slots: &[Slot]) {
        index.sync_coords(&self.chains.coords);
        for s in slots {
            index.publish(*s);
        }
    }

    /// Records the published slots' idempotency keys as settled.
    pub fn settle_published(&mut self, published: &[Slot]) {
        self.idem.settle_published(published);
    }

    /// Fails every fenced ticket (the writer latched or stops).
    pub fn fail_fence_waiters(&mut self, out: &mut Vec<Outgoing>, detail: &str) {
        for w in self.fence_waiters.drain(..) {
            out.push(w.failed(StoreError::OutcomeUnknown {
                detail: detail.to_string(),
            }));
        }
    }
}
