//! Durable consumers: cursors whose position survives crashes as checkpoint records in the
//! log itself.
//!
//! A checkpoint is a record after the events it covers, so if it survives a crash so does
//! everything it names; it is acknowledged only once durable and only names events the
//! consumer was handed, which are durable already (INV-CHECKPOINT-DURABLE). Sequences are
//! never reused, so a resumed consumer neither skips nor repeats (INV-CURSOR-ORDER).
//! [`Consumer::commit_with`] writes the consumer's outputs and its checkpoint as one atomic
//! batch: after any crash the outputs exist if and only if the checkpoint moved
//! (INV-EXACTLY-ONCE).

use super::cursor::Cursor;
use crate::append::AppendReceipt;
use crate::codec::CheckpointPosition;
use crate::error::StoreError;
use crate::index::IndexEntry;
use crate::region::Region;
use crate::store::{BatchAppendItem, Open, Store};
use crate::sync::Mutex;
use crate::writer::state::checkpoints::{CheckpointEntry, CheckpointWrite};
use crate::writer::Command;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// The longest checkpoint id.
const ID_MAX: usize = 128;

/// A durable consumer's name: 1 to 128 characters of `[A-Za-z0-9._-]`. [`CheckpointId::new`]
/// accepts anything (as upstream) and the id is checked where it is used
/// (`InvalidCheckpointId`); [`CheckpointId::try_new`] checks at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckpointId(String);

impl CheckpointId {
    /// An id, checked when used.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A checked id.
    pub fn try_new(value: impl Into<String>) -> Result<Self, StoreError> {
        let id = Self(value.into());
        id.check()?;
        Ok(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let bad = |reason| {
            Err(StoreError::InvalidCheckpointId {
                id: self.0.clone(),
                reason,
            })
        };
        if self.0.is_empty() {
            return bad("empty");
        }
        if self.0.len() > ID_MAX {
            return bad("longer than 128 bytes");
        }
        if !self
            .0
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed");
        }
        Ok(())
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A consumer as [`Store::consumers`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// The checkpoint id.
    pub id: CheckpointId,
    /// The region it follows.
    pub region: Region,
    /// The last committed global sequence (`None`: committed at the start).
    pub committed: Option<u64>,
    /// Events of the region after the committed position.
    pub lag: u64,
}

/// The store's committed checkpoints and live consumers.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    table: Mutex<HashMap<String, CheckpointEntry>>,
    /// Live consumers and the regions they follow.
    live: Mutex<HashMap<String, Region>>,
}

impl Registry {
    /// The checkpoints recovery found.
    pub fn new(table: HashMap<String, CheckpointEntry>) -> Self {
        Self {
            table: Mutex::new(table),
            live: Mutex::new(HashMap::new()),
        }
    }
}

/// A durable consumer of one region: resumes after its committed checkpoint. One live
/// consumer per id; dropping it frees the id (uncommitted progress is delivered again).
#[derive(Debug)]
pub struct Consumer<'a> {
    store: &'a Store<Open>,
    id: CheckpointId,
    cursor: Cursor,
    committed: Option<u64>,
}

impl Consumer<'_> {
    /// Up to `max` next events, waiting at most `timeout` for the first (empty: none came).
    pub fn poll(&mut self, max: usize, timeout: Duration) -> Vec<IndexEntry> {
        self.cursor.poll_wait(max, timeout)
    }

    /// Commits everything delivered so far. Answers once the checkpoint is durable; does
    /// nothing if nothing new was delivered.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        match self.cursor.position() {
            Some(p) if Some(p) != self.committed => self.commit_at(p),
            _ => Ok(()),
        }
    }

    /// Commits up to and including global sequence `seq`, which must not be past what was
    /// delivered (a checkpoint never names an event the consumer has not seen).
    pub fn commit_at(&mut self, seq: u64) -> Result<(), StoreError> {
        if self.cursor.position().is_none_or(|p| seq > p) {
            return Err(StoreError::Configuration(format!(
                "consumer {}: commit_at({seq}) is past the last delivered sequence {:?}",
                self.id,
                self.cursor.position()
            )));
        }
        self.write(Vec::new(), CheckpointPosition::After(seq))?;
        Ok(())
    }

    /// Writes `outputs` and the checkpoint at what was delivered so far as ONE atomic unit:
    /// after any crash the outputs are present if and only if the checkpoint moved
    /// (INV-EXACTLY-ONCE). Answers the outputs' receipts once durable.
    pub fn commit_with(
        &mut self,
        outputs: Vec<BatchAppendItem>,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        let position = match self.cursor.position() {
            Some(p) => CheckpointPosition::After(p),
            None => CheckpointPosition::Start,
        };
        self.write(outputs, position)
    }

    /// [`Consumer::commit_with`] with the checkpoint at `seq` (delivered already) instead of
    /// the last delivered event: a reactor commits each source event's reactions with the
    /// checkpoint right after it, while it may have polled further.
    pub(crate) fn commit_with_through(
        &mut self,
        seq: u64,
        outputs: Vec<BatchAppendItem>,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        if self.cursor.position().is_none_or(|p| seq > p) {
            return Err(StoreError::Configuration(format!(
                "consumer {}: a checkpoint at {seq} is past the last delivered sequence {:?}",
                self.id,
                self.cursor.position()
            )));
        }
        self.write(outputs, CheckpointPosition::After(seq))
    }

    fn write(
        &mut self,
        outputs: Vec<BatchAppendItem>,
        position: CheckpointPosition,
    ) -> Result<Vec<AppendReceipt>, StoreError> {
        let checkpoint = CheckpointWrite {
            id: self.id.0.clone(),
            region: self.cursor.region().clone(),
            position,
        };
        let items = outputs.into_iter().map(|o| o.item).collect();
        let receipts = self.store.request(|reply| Command::Checkpoint {
            items,
            checkpoint,
            reply,
        })?;
        let after = match position {
            CheckpointPosition::After(s) => Some(s),
            _ => None,
        };
        self.committed = after;
        self.store.checkpoints.table.lock().insert(
            self.id.0.clone(),
            CheckpointEntry {
                region: self.cursor.region().clone(),
                after,
            },
        );
        // The applied frontier may have moved: waiters on it re-check.
        self.store.shared.wake_durable_waiters();
        Ok(receipts)
    }

    /// The committed position (`None`: nothing committed yet).
    pub fn committed(&self) -> Option<u64> {
        self.committed
    }

    /// The global sequence of the last event delivered.
    pub fn position(&self) -> Option<u64> {
        self.cursor.position()
    }

    /// Events of the region after the committed position that are ready to deliver.
    pub fn lag(&self) -> u64 {
        self.store.lag_after(self.cursor.region(), self.committed)
    }

    /// Moves the delivery position (not the checkpoint): the next poll returns events after
    /// `after` (`None`: from the start).
    pub fn seek(&mut self, after: Option<u64>) {
        self.cursor.seek(after);
    }

    pub(crate) fn cursor_mut(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    /// The consumer's id.
    pub fn checkpoint_id(&self) -> &CheckpointId {
        &self.id
    }
}

impl Drop for Consumer<'_> {
    fn drop(&mut self) {
        self.store.checkpoints.live.lock().remove(&self.id.0);
        // A consumer that is gone no longer holds the applied frontier back.
        self.store.shared.wake_durable_waiters();
    }
}

impl Store<Open> {
    /// The durable consumer `id` of `region`: resumes after its committed checkpoint (from
    /// the start if it has none). Refuses an invalid id (`InvalidCheckpointId`), an id
    /// committed for another region (`CursorCheckpointRegionMismatch`) and an id whose
    /// consumer is live (`ConsumerBusy`).
    pub fn consumer(&self, id: &CheckpointId, region: &Region) -> Result<Consumer<'_>, StoreError> {
        id.check()?;
        let committed = match self.checkpoints.table.lock().get(id.as_str()) {
            Some(e) if e.region != *region => {
                return Err(StoreError::CursorCheckpointRegionMismatch {
                    id: id.0.clone(),
                    stored: format!("{:?}", e.region),
                    expected: format!("{region:?}"),
                })
            }
            Some(e) => e.after,
            None => None,
        };
        {
            let mut live = self.checkpoints.live.lock();
            if live.contains_key(id.as_str()) {
                return Err(StoreError::ConsumerBusy { id: id.0.clone() });
            }
            live.insert(id.0.clone(), region.clone());
        }
        Ok(Consumer {
            store: self,
            id: id.clone(),
            cursor: Cursor::new(self.feed(region), committed),
            committed,
        })
    }

    /// Every consumer with a committed checkpoint, by id.
    pub fn consumers(&self) -> Vec<ConsumerInfo> {
        let table: Vec<(String, CheckpointEntry)> = self
            .checkpoints
            .table
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out: Vec<ConsumerInfo> = table
            .into_iter()
            .map(|(id, e)| ConsumerInfo {
                lag: self.lag_after(&e.region, e.after),
                id: CheckpointId(id),
                region: e.region,
                committed: e.after,
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Deletes consumer `id`'s checkpoint (a durable record). Refuses while it is live.
    pub fn delete_consumer(&self, id: &CheckpointId) -> Result<(), StoreError> {
        id.check()?;
        if self.checkpoints.live.lock().contains_key(id.as_str()) {
            return Err(StoreError::ConsumerBusy { id: id.0.clone() });
        }
        let Some(entry) = self.checkpoints.table.lock().get(id.as_str()).cloned() else {
            return Ok(());
        };
        let checkpoint = CheckpointWrite {
            id: id.0.clone(),
            region: entry.region,
            position: CheckpointPosition::Deleted,
        };
        self.request(|reply| Command::Checkpoint {
            items: Vec::new(),
            checkpoint,
            reply,
        })?;
        self.checkpoints.table.lock().remove(id.as_str());
        Ok(())
    }

    /// Whether every live consumer has committed past each event of its region below `point`
    /// (an exclusive sequence bound); `true` with no live consumer.
    pub(crate) fn live_consumers_through(&self, point: u64) -> bool {
        let live: Vec<(String, Region)> = self
            .checkpoints
            .live
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        live.into_iter().all(|(id, region)| {
            let after = self.checkpoints.table.lock().get(&id).and_then(|e| e.after);
            let from = after.map_or(0, |a| a.saturating_add(1));
            from >= point
                || self
                    .shared
                    .index
                    .read()
                    .region_count(&region, from, point, 1)
                    == 0
        })
    }

    fn lag_after(&self, region: &Region, after: Option<u64>) -> u64 {
        let feed = self.feed(region);
        let from = after.map_or(0, |a| a.saturating_add(1));
        let below = feed.below();
        let n = feed
            .shared
            .index
            .read()
            .region_count(region, from, below, u64::MAX);
        n
    }
}
