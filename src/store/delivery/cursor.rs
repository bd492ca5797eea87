//! Cursors: pull reads of a region in global-sequence order.

pub use super::worker::{
    AtLeastOnce, CursorWorkerAction, CursorWorkerConfig, CursorWorkerHandle, RestartPolicy,
};
use super::Feed;
use crate::index::IndexEntry;
use crate::mutant::Mutant;
use crate::region::Region;
use crate::store::Store;
use std::time::{Duration, Instant};

/// A pull reader of one region: every visible, durable event of it in global-sequence
/// order, each once per pass (INV-CURSOR-ORDER). Events of a fence show up only once it
/// committed, a batch only whole, a cancelled fence never.
///
/// A poll finds its start by binary search in the sequence-ordered index and then reads only
/// what it returns, so draining n events costs O(n log n) at worst, not O(n²). Nothing is
/// buffered per cursor.
#[derive(Debug, Clone)]
pub struct Cursor {
    feed: Feed,
    after: Option<u64>,
}

impl Cursor {
    pub(crate) fn new(feed: Feed, after: Option<u64>) -> Self {
        Self { feed, after }
    }

    /// The next event, if one is ready.
    pub fn poll(&mut self) -> Option<IndexEntry> {
        self.poll_batch(1).pop()
    }

    /// Up to `max` events that are ready, oldest first (empty: nothing ready).
    pub fn poll_batch(&mut self, max: usize) -> Vec<IndexEntry> {
        let from = match self.after {
            Some(a) if self.feed.bugs.has(Mutant::CursorRedelivers) => a,
            Some(a) => a.saturating_add(1),
            None => 0,
        };
        let stale = self
            .feed
            .bugs
            .has(Mutant::FrontierReadBeforeIndex)
            .then(|| self.feed.below());
        let index = self.feed.shared.index.read();
        // The frontier is read under the index lock: the writer moves it before it publishes
        // a group under the write lock, so every unit this index holds is below it whole. Read
        // before the lock, a fence commit published in between would show only its events
        // below the stale frontier (half a unit).
        let below = stale.unwrap_or_else(|| self.feed.below());
        let v = index.region_range(&self.feed.region, from, below, max);
        drop(index);
        if let Some(last) = v.last() {
            self.after = Some(last.global_sequence);
        }
        v
    }

    /// Like [`Cursor::poll_batch`], but when nothing is ready sleeps until the writer
    /// publishes (no polling loop) or `timeout` passes. Returns early, possibly empty, once
    /// the store closed.
    pub fn poll_wait(&mut self, max: usize, timeout: Duration) -> Vec<IndexEntry> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let seen = self.feed.shared.published_gen();
            let v = self.poll_batch(max);
            if !v.is_empty() || max == 0 || self.feed.shared.is_stopped() {
                return v;
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return v;
            }
            self.feed.shared.wait_published(seen, left);
        }
    }

    /// The global sequence of the last event delivered (`None`: none yet, or sought to the
    /// start).
    pub fn position(&self) -> Option<u64> {
        self.after
    }

    /// Moves the cursor: the next poll returns the events after `after` (`None`: from the
    /// start).
    pub fn seek(&mut self, after: Option<u64>) {
        self.after = after;
    }

    /// The region this cursor reads.
    pub fn region(&self) -> &Region {
        &self.feed.region
    }
}

impl<S> Store<S> {
    /// A cursor over `region` from the start of the log.
    pub fn cursor_guaranteed(&self, region: &Region) -> Cursor {
        Cursor::new(self.feed(region), None)
    }
}
