//! Commands against a projection ([`Store::execute`], cqrs-es's `execute`): fold the
//! aggregate, let it decide, append its events atomically with a compare-and-swap on the
//! entity's clock, and start over (a bounded number of times) when another writer got there
//! first.

use super::Snapshotting;
use crate::sourcing::EventSourced;
use crate::store::{AppendReceipt, BatchAppendItem};
use crate::store::{Open, Store, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How many times [`Store::execute`] folds and decides before giving up on a busy entity.
pub const EXECUTE_MAX_ATTEMPTS: u32 = 8;

/// A projection that decides commands: `handle` turns a command and the current state into
/// the events to append (or refuses it).
pub trait Aggregate: EventSourced + Serialize + DeserializeOwned + 'static {
    /// What callers ask for.
    type Command: Clone;
    /// Why a command is refused.
    type Error;

    /// The events that carry out `command` given the state (`None`: the entity has no state
    /// yet). Must be a pure decision: [`Store::execute`] may call it again with a newer state
    /// when another writer appended in between.
    ///
    /// # Errors
    /// The aggregate's refusal.
    fn handle(
        state: Option<&Self>,
        command: &Self::Command,
    ) -> Result<Vec<BatchAppendItem>, Self::Error>;
}

/// Why [`Store::execute`] did not append.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExecuteError<E> {
    /// The aggregate refused the command; nothing was appended.
    Rejected(E),
    /// Folding or appending failed (see [`StoreError::is_definite`] for an append whose
    /// outcome is unknown).
    Store(StoreError),
    /// Other writers changed the entity between every fold and append, `attempts` times;
    /// nothing was appended.
    Conflict {
        /// The entity.
        entity: String,
        /// How many times it was tried.
        attempts: u32,
    },
}

impl<E: std::fmt::Display> std::fmt::Display for ExecuteError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected(e) => write!(f, "command rejected: {e}"),
            Self::Store(e) => write!(f, "command failed: {e}"),
            Self::Conflict { entity, attempts } => write!(
                f,
                "entity {entity} changed under every one of {attempts} attempts; nothing appended"
            ),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for ExecuteError<E> {}

impl<E> From<StoreError> for ExecuteError<E> {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn is_conflict(e: &StoreError) -> bool {
    match e {
        StoreError::SequenceMismatch { .. } => true,
        StoreError::BatchFailed { source, .. } => is_conflict(source),
        _ => false,
    }
}

impl Store<Open> {
    /// Executes `command` against aggregate `A` of `entity`: folds the state, calls
    /// [`Aggregate::handle`], and appends its events as one atomic batch whose first event of
    /// `entity` carries a compare-and-swap on the entity clock the fold saw (unless the
    /// handler set one). If another writer appended to the entity in between, the batch is
    /// refused whole and the command is decided again on the new state, at most
    /// [`EXECUTE_MAX_ATTEMPTS`] times. Returns the receipts (empty when the handler returned
    /// no events).
    ///
    /// # Errors
    /// [`ExecuteError::Rejected`] with the handler's error; [`ExecuteError::Conflict`] after
    /// the last attempt; [`ExecuteError::Store`] for anything else.
    pub fn execute<A: Aggregate>(
        &self,
        entity: &str,
        command: A::Command,
    ) -> Result<Vec<AppendReceipt>, ExecuteError<A::Error>> {
        for attempt in 1..=EXECUTE_MAX_ATTEMPTS {
            let folded = self.fold_entity::<A>(entity, u64::MAX, Snapshotting::ReadWrite)?;
            let mut items =
                A::handle(folded.state.as_ref(), &command).map_err(ExecuteError::Rejected)?;
            if items.is_empty() {
                return Ok(Vec::new());
            }
            if let Some(first) = items.iter_mut().find(|i| i.item.coord.entity() == entity) {
                if first.item.options.expected_sequence.is_none() {
                    first.item.options.expected_sequence = Some(folded.clock);
                }
            }
            match self.append_batch(items) {
                Ok(receipts) => return Ok(receipts),
                Err(e) if is_conflict(&e) => {
                    tracing::debug!(entity, attempt, "execute: entity changed; deciding again");
                }
                Err(e) => return Err(ExecuteError::Store(e)),
            }
        }
        Err(ExecuteError::Conflict {
            entity: entity.to_string(),
            attempts: EXECUTE_MAX_ATTEMPTS,
        })
    }
}
