//! Live subscriptions: notifications of a region's new events.

use super::cursor::Cursor;
use super::Feed;
use crate::coordinate::Coordinate;
use crate::event::{EventKind, EventPosition};
use crate::index::IndexEntry;
use crate::mutant::Mutant;
use crate::region::Region;
use crate::store::Store;
use crate::sync::atomic::Ordering;
use crate::sync::Mutex;
use std::fmt;
use std::time::{Duration, Instant};

/// What a subscriber hears of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Event id.
    pub event_id: u128,
    /// Correlation id.
    pub correlation_id: u128,
    /// The causing event, if any.
    pub causation_id: Option<u128>,
    /// Entity and scope.
    pub coord: Coordinate,
    /// Kind.
    pub kind: EventKind,
    /// Global sequence.
    pub sequence: u64,
    /// Wall-clock milliseconds and entity clock.
    pub position: EventPosition,
}

impl From<IndexEntry> for Notification {
    fn from(e: IndexEntry) -> Self {
        Self {
            event_id: e.event_id,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            coord: e.coord,
            kind: e.kind,
            sequence: e.global_sequence,
            position: EventPosition {
                wall_ms: e.wall_ms,
                clock: e.clock,
            },
        }
    }
}

/// Why [`Subscription::recv_timeout`] returned no notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived in time; the store is still open.
    Timeout,
    /// The store closed and every notification was received.
    Closed,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Timeout => write!(f, "no notification before the timeout"),
            RecvError::Closed => write!(f, "the store closed"),
        }
    }
}

impl std::error::Error for RecvError {}

#[derive(Debug)]
struct State {
    cursor: Cursor,
    missed: u64,
    /// Only the seeded `LossyDisconnect` bug sets it.
    disconnected: bool,
}

/// A subscription to a region's events, in global-sequence order.
///
/// Lossy ([`Store::subscribe_lossy`]): a subscriber more than the broadcast capacity behind
/// skips ahead to the newest `capacity` notifications and [`Subscription::missed`] counts
/// what it skipped; it stays connected (INV-LOSSY-NOTICE). Gap-free
/// ([`Store::subscribe_from`]): never skips. Either way it reads the store's index, so a slow
/// subscriber costs no memory and never slows the writer, and [`Subscription::recv`] returns
/// `None` only once the store closed (after everything published before was received).
#[derive(Debug)]
pub struct Subscription {
    state: Mutex<State>,
    feed: Feed,
    /// `Some(capacity)` for a lossy subscription.
    capacity: Option<u64>,
}

impl Subscription {
    fn new(feed: Feed, after: Option<u64>, capacity: Option<u64>) -> Self {
        Self {
            state: Mutex::new(State {
                cursor: Cursor::new(feed.clone(), after),
                missed: 0,
                disconnected: false,
            }),
            feed,
            capacity,
        }
    }

    /// The next notification if one is ready (never blocks).
    pub fn try_recv(&self) -> Option<Notification> {
        let mut st = self.state.lock();
        if st.disconnected {
            return None;
        }
        if let Some(cap) = self.capacity {
            self.skip_if_behind(&mut st, cap);
            if st.disconnected {
                return None;
            }
        }
        st.cursor.poll().map(Notification::from)
    }

    /// A lossy subscriber more than `cap` notifications behind jumps to the newest `cap`.
    fn skip_if_behind(&self, st: &mut State, cap: u64) {
        let from = st.cursor.position().map_or(0, |a| a.saturating_add(1));
        let index = self.feed.shared.index.read();
        // Under the index lock, as a cursor's poll reads it (a unit below it is whole).
        let below = self.feed.below();
        let region = &self.feed.region;
        if index.region_count(region, from, below, cap.saturating_add(1)) <= cap {
            return;
        }
        if self.feed.bugs.has(Mutant::LossyDisconnect) {
            st.disconnected = true;
            return;
        }
        let Some(new_after) = index.region_nth_from_end(region, below, cap.saturating_add(1))
        else {
            return;
        };
        let skipped = index.region_count(region, from, new_after.saturating_add(1), u64::MAX);
        drop(index);
        st.missed = st.missed.saturating_add(skipped);
        st.cursor.seek(Some(new_after));
        tracing::debug!(skipped, "lossy subscriber fell behind and skipped ahead");
    }

    /// The next notification, blocking until one arrives. `None` only once the store closed.
    pub fn recv(&self) -> Option<Notification> {
        self.recv_until(None).ok()
    }

    /// The next notification, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Notification, RecvError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Notification, RecvError> {
        loop {
            let seen = self.feed.shared.published_gen();
            if let Some(n) = self.try_recv() {
                return Ok(n);
            }
            if self.state.lock().disconnected {
                return Err(RecvError::Closed);
            }
            if self.feed.shared.is_stopped() {
                // The writer's last publish happened before it stopped: one more look.
                return self.try_recv().ok_or(RecvError::Closed);
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.feed.shared.wait_published(seen, left);
        }
    }

    /// How many notifications were skipped since the last call (lossy only; resets to 0).
    pub fn missed(&self) -> u64 {
        std::mem::take(&mut self.state.lock().missed)
    }

    /// The global sequence of the last notification received (or skipped past).
    pub fn position(&self) -> Option<u64> {
        self.state.lock().cursor.position()
    }

    /// The region this subscription follows.
    pub fn region(&self) -> &Region {
        &self.feed.region
    }

    /// Chainable filter / map / take / scan over this subscription.
    pub fn ops(self) -> SubscriptionOps {
        SubscriptionOps {
            sub: self,
            filters: Vec::new(),
            map_fn: None,
            limit: None,
            count: 0,
        }
    }
}

type Filter = Box<dyn Fn(&Notification) -> bool + Send>;
type Mapper = Box<dyn Fn(&Notification) -> Option<Notification> + Send>;

/// A [`Subscription`] with filters, a mapper and a limit applied on receive.
pub struct SubscriptionOps {
    sub: Subscription,
    filters: Vec<Filter>,
    map_fn: Option<Mapper>,
    limit: Option<usize>,
    count: usize,
}

impl fmt::Debug for SubscriptionOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionOps")
            .field("sub", &self.sub)
            .field("filters", &self.filters.len())
            .field("limit", &self.limit)
            .field("count", &self.count)
            .finish()
    }
}

impl SubscriptionOps {
    /// Keeps only notifications for which every filter returns `true`.
    pub fn filter<F: Fn(&Notification) -> bool + Send + 'static>(mut self, f: F) -> Self {
        self.filters.push(Box::new(f));
        self
    }

    /// Transforms notifications that passed the filters; `None` drops one.
    pub fn map<F: Fn(&Notification) -> Option<Notification> + Send + 'static>(
        mut self,
        f: F,
    ) -> Self {
        self.map_fn = Some(Box::new(f));
        self
    }

    /// Ends after `n` notifications (`recv` then returns `None`).
    pub fn take(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Folds the notifications into a state; `recv` returns each new state.
    pub fn scan<S, F>(self, initial: S, f: F) -> ScanSubscriptionOps<S, F>
    where
        S: Clone + Send + 'static,
        F: FnMut(&mut S, &Notification) -> Option<S> + Send + 'static,
    {
        ScanSubscriptionOps {
            ops: self,
            state: initial,
            fold: f,
        }
    }

    /// How many notifications the underlying subscription skipped since the last call.
    pub fn missed(&self) -> u64 {
        self.sub.missed()
    }

    /// The next notification that passes, blocking. `None` once the limit is reached or the
    /// store closed.
    pub fn recv(&mut self) -> Option<Notification> {
        if self.limit.is_some_and(|l| self.count >= l) {
            return None;
        }
        loop {
            let n = self.sub.recv()?;
            if !self.filters.iter().all(|f| f(&n)) {
                continue;
            }
            let n = match &self.map_fn {
                Some(m) => m(&n),
                None => Some(n),
            };
            if let Some(n) = n {
                self.count += 1;
                return Some(n);
            }
        }
    }
}

/// A folded [`SubscriptionOps`].
pub struct ScanSubscriptionOps<S, F> {
    ops: SubscriptionOps,
    state: S,
    fold: F,
}

impl<S: fmt::Debug, F> fmt::Debug for ScanSubscriptionOps<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanSubscriptionOps")
            .field("ops", &self.ops)
            .field("state", &self.state)
            .finish()
    }
}

impl<S, F> ScanSubscriptionOps<S, F>
where
    S: Clone + Send + 'static,
    F: FnMut(&mut S, &Notification) -> Option<S> + Send + 'static,
{
    /// The next state the fold produced. `None` once the notifications end.
    pub fn recv(&mut self) -> Option<S> {
        loop {
            let n = self.ops.recv()?;
            if let Some(next) = (self.fold)(&mut self.state, &n) {
                self.state = next.clone();
                return Some(next);
            }
        }
    }
}

impl<S> Store<S> {
    /// A lossy subscription to `region`'s new events, from now on. It never disconnects: if
    /// it falls more than the broadcast capacity behind
    /// ([`crate::store::StoreConfig::with_broadcast_capacity`]) it skips ahead and
    /// [`Subscription::missed`] tells how many it skipped. `recv() == None` means the store
    /// closed.
    pub fn subscribe_lossy(&self, region: &Region) -> Subscription {
        let visible = self.shared.frontier.visible.load(Ordering::SeqCst);
        let cap = self.cfg.broadcast_capacity.max(1) as u64;
        Subscription::new(self.feed(region), visible.checked_sub(1), Some(cap))
    }

    /// A gap-free subscription to `region`: the events after global sequence `after` (`None`:
    /// from the start of the log) and then live ones, each once, in order, never skipping.
    pub fn subscribe_from(&self, region: &Region, after: Option<u64>) -> Subscription {
        Subscription::new(self.feed(region), after, None)
    }
}
