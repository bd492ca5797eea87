//! Cursors: pull reads of a region in global-sequence order.

pub use super::worker::{
    AtLeastOnce, CursorWorkerAction, CursorWorkerConfig, CursorWorkerHandle, RestartPolicy,
};
use super::Feed;
use crate::index::IndexEntry;
use crate::mutant::Mutant;
use crate::region::Region;
use crate::store::Store;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most hole ranges one [`GapObservation`] lists.
const RANGES_PER_GAP: usize = 256;

/// Whether a cursor records [`GapObservation`]s (off by default, as upstream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CursorGapConfig {
    /// Record observations.
    pub enabled: bool,
    /// Most observations kept until [`Cursor::take_gaps`]; the oldest is dropped first. 0
    /// records nothing.
    pub buffer_capacity: usize,
}

/// Sequence numbers between two deliveries of a cursor that no visible event holds.
///
/// A cursor here never skips an event it could deliver: it hands out every visible, durable
/// event of its region in sequence order, and sequences are never reused, so an observation
/// is never a loss. Sequences are shared by every record of the log, though, so there are
/// numbers no reader will ever see: events of a cancelled visibility fence, events of a
/// batch or fence a crash left unfinished (never made visible, INV-NO-RESURRECT), and the
/// log's own records (fence markers, consumer checkpoints). An observation names those
/// numbers between `expected_sequence` and `delivered_sequence`, so a caller reconciling
/// sequences against another system can tell them from events of other regions (which are
/// not holes and are not reported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GapObservation {
    /// The first sequence after the previous delivery (0 for the first).
    pub expected_sequence: u64,
    /// The sequence delivered next.
    pub delivered_sequence: u64,
    /// The holes `[start, end)` within `expected_sequence..delivered_sequence`, oldest first
    /// (at most 256). Upstream lists cancelled fence ranges here; this crate lists every
    /// number no visible event holds, cancelled fences included.
    pub cancelled_ranges: Vec<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct GapBuffer {
    capacity: usize,
    kept: VecDeque<GapObservation>,
}

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
    gaps: Option<GapBuffer>,
}

impl Cursor {
    pub(crate) fn new(feed: Feed, after: Option<u64>) -> Self {
        Self {
            feed,
            after,
            gaps: None,
        }
    }

    /// Turns [`GapObservation`] recording on or off (off by default). When on, each poll
    /// also looks for holes between the events it returns: O(log n) per returned event when
    /// there is none.
    #[must_use]
    pub fn with_gap_config(mut self, config: CursorGapConfig) -> Self {
        self.set_gap_config(config);
        self
    }

    pub(crate) fn set_gap_config(&mut self, config: CursorGapConfig) {
        self.gaps = (config.enabled && config.buffer_capacity > 0).then(|| GapBuffer {
            capacity: config.buffer_capacity,
            kept: VecDeque::new(),
        });
    }

    /// The observations recorded since the last call, oldest first.
    pub fn take_gaps(&mut self) -> Vec<GapObservation> {
        self.gaps
            .as_mut()
            .map(|g| g.kept.drain(..).collect())
            .unwrap_or_default()
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
        if let Some(buf) = self.gaps.as_mut() {
            let mut expected = from;
            for e in &v {
                let holes = index.sequence_holes(expected, e.global_sequence, RANGES_PER_GAP);
                if !holes.is_empty() {
                    if buf.kept.len() >= buf.capacity {
                        buf.kept.pop_front();
                    }
                    buf.kept.push_back(GapObservation {
                        expected_sequence: expected,
                        delivered_sequence: e.global_sequence,
                        cancelled_ranges: holes,
                    });
                }
                expected = e.global_sequence.saturating_add(1);
            }
        }
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
