//! The model-checkable channel: a `VecDeque` behind the shim's [`Mutex`], two [`Condvar`]s
//! (`not_empty` for receivers, `not_full` for senders) and live sender / receiver counts.
//!
//! It is [`crate::sync::channel`] under loom and shuttle, so the checkers see every lock and
//! wake-up. It is also compiled in the production arm (over std primitives) so that
//! `tests/sync_channel_parity.rs` can run one behavioural suite against both it and the flume
//! channel. Not part of the public API.
//!
//! Wake-up discipline: each push wakes one receiver, each pop wakes one sender, and the last
//! sender (receiver) to go wakes *all* receivers (senders) so they observe the disconnect.
//! Every waiter re-checks the state after waking, and a timed-out receiver still takes a
//! message that is present, so a wake-up consumed by a timing-out waiter is never lost.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::{Arc, Condvar, Mutex, MutexGuard, UNDER_MODEL};

pub use super::channel_error::{
    RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError,
};

struct State<T> {
    queue: VecDeque<T>,
    /// `None` for unbounded channels; otherwise at least 1.
    cap: Option<usize>,
    senders: usize,
    receivers: usize,
}

impl<T> State<T> {
    fn is_full(&self) -> bool {
        self.cap.is_some_and(|cap| self.queue.len() >= cap)
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock()
    }

    /// Pops the front message and wakes one blocked sender (a slot is free now).
    fn pop(&self, state: &mut State<T>) -> Option<T> {
        let value = state.queue.pop_front()?;
        if state.cap.is_some() {
            self.not_full.notify_one();
        }
        Some(value)
    }
}

fn new_channel<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            cap,
            senders: 1,
            receivers: 1,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    let receiver = Receiver {
        shared: Arc::clone(&shared),
    };
    (Sender { shared }, receiver)
}

/// Creates a channel holding at most `cap` queued messages (`0` is treated as `1`, like the
/// production arm).
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new_channel(Some(cap.max(1)))
}

/// A one-answer channel: `bounded(1)` (the production arm also allocates its queue up front by
/// queueing and taking back `filler`; the models need not, and skipping it keeps the explored
/// state space as it was).
pub fn reply<T>(filler: T) -> (Sender<T>, Receiver<T>) {
    drop(filler);
    bounded(1)
}

/// Creates a channel with no capacity limit: `send` never blocks.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new_channel(None)
}

/// The sending half; clone it for more producers.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `value`, blocking while a bounded channel is full; fails (handing the value
    /// back) once every receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.shared.lock();
        loop {
            if state.receivers == 0 {
                return Err(SendError(value));
            }
            if !state.is_full() {
                state.queue.push_back(value);
                self.shared.not_empty.notify_one();
                return Ok(());
            }
            state = self.shared.not_full.wait(state);
        }
    }

    /// Queues `value` without blocking.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.shared.lock();
        if state.receivers == 0 {
            return Err(TrySendError::Disconnected(value));
        }
        if state.is_full() {
            return Err(TrySendError::Full(value));
        }
        state.queue.push_back(value);
        self.shared.not_empty.notify_one();
        Ok(())
    }

    /// Number of messages queued right now.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// `true` when no message is queued right now.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().queue.is_empty()
    }

    /// The bound given to [`bounded`] (at least 1), or `None` for [`unbounded`].
    pub fn capacity(&self) -> Option<usize> {
        self.shared.lock().cap
    }

    /// `true` once every receiver is gone.
    pub fn is_disconnected(&self) -> bool {
        self.shared.lock().receivers == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        if state.senders == 0 {
            self.shared.not_empty.notify_all();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// The receiving half; clones share the queue (each message goes to exactly one receiver).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// Blocks until a message arrives; once every sender is gone, drains the queue and then
    /// fails with [`RecvError`].
    pub fn recv(&self) -> Result<T, RecvError> {
        let mut state = self.shared.lock();
        loop {
            if let Some(value) = self.shared.pop(&mut state) {
                return Ok(value);
            }
            if state.senders == 0 {
                return Err(RecvError);
            }
            state = self.shared.not_empty.wait(state);
        }
    }

    /// Takes a queued message without blocking.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut state = self.shared.lock();
        match self.shared.pop(&mut state) {
            Some(value) => Ok(value),
            None if state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Like [`Receiver::recv`] but gives up after `dur`.
    ///
    /// Under loom and shuttle time is not modelled: this waits like `recv` and never returns
    /// [`RecvTimeoutError::Timeout`] (reading the wall clock would make runs non-replayable).
    pub fn recv_timeout(&self, dur: Duration) -> Result<T, RecvTimeoutError> {
        // `None`: wait without a deadline (under a model, or if `now + dur` overflows).
        let deadline = if UNDER_MODEL {
            None
        } else {
            Instant::now().checked_add(dur)
        };
        let mut state = self.shared.lock();
        loop {
            if let Some(value) = self.shared.pop(&mut state) {
                return Ok(value);
            }
            if state.senders == 0 {
                return Err(RecvTimeoutError::Disconnected);
            }
            state = match deadline {
                None => self.shared.not_empty.wait(state),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    self.shared.not_empty.wait_timeout(state, left).0
                }
            };
        }
    }

    /// Number of messages queued right now.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// `true` when no message is queued right now.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().queue.is_empty()
    }

    /// `true` once every sender is gone (queued messages may still be received).
    pub fn is_disconnected(&self) -> bool {
        self.shared.lock().senders == 0
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.lock().receivers += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receivers -= 1;
        if state.receivers == 0 {
            self.shared.not_full.notify_all();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
