//! Production channel: thin `#[inline]` wrappers over `flume`, mapping its errors to the shim's
//! own types so the API is identical to [`super::mc_channel`].

use std::fmt;
use std::time::Duration;

use super::channel_error::{RecvError, RecvTimeoutError, SendError, TryRecvError, TrySendError};

/// Creates a channel holding at most `cap` queued messages (`0` is treated as `1`).
#[inline]
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = flume::bounded(cap.max(1));
    (Sender(tx), Receiver(rx))
}

/// A one-answer channel (`bounded(1)`) whose queue storage is allocated now, on the calling
/// thread, by queueing `filler` and taking it back. `flume` allocates a channel's queue at its
/// first send; for a reply channel that send is the writer thread's, once per command, and the
/// caller frees the buffer (a cross-thread free). Made here, the allocation and the free are
/// the caller's, and the writer's send only moves the answer in.
#[inline]
pub fn reply<T>(filler: T) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = flume::bounded(1);
    if tx.try_send(filler).is_ok() {
        let _ = rx.try_recv();
    }
    (Sender(tx), Receiver(rx))
}

/// Creates a channel with no capacity limit: `send` never blocks.
#[inline]
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = flume::unbounded();
    (Sender(tx), Receiver(rx))
}

/// The sending half; clone it for more producers.
pub struct Sender<T>(flume::Sender<T>);

impl<T> Sender<T> {
    /// Queues `value`, blocking while a bounded channel is full; fails (handing the value
    /// back) once every receiver is gone.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.0
            .send(value)
            .map_err(|flume::SendError(v)| SendError(v))
    }

    /// Queues `value` without blocking.
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.0.try_send(value).map_err(|e| match e {
            flume::TrySendError::Full(v) => TrySendError::Full(v),
            flume::TrySendError::Disconnected(v) => TrySendError::Disconnected(v),
        })
    }

    /// Number of messages queued right now.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when no message is queued right now.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bound given to [`bounded`] (at least 1), or `None` for [`unbounded`].
    #[inline]
    pub fn capacity(&self) -> Option<usize> {
        self.0.capacity()
    }

    /// `true` once every receiver is gone.
    #[inline]
    pub fn is_disconnected(&self) -> bool {
        self.0.is_disconnected()
    }
}

impl<T> Clone for Sender<T> {
    #[inline]
    fn clone(&self) -> Self {
        Self(self.0.clone())
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
pub struct Receiver<T>(flume::Receiver<T>);

impl<T> Receiver<T> {
    /// Blocks until a message arrives; once every sender is gone, drains the queue and then
    /// fails with [`RecvError`].
    #[inline]
    pub fn recv(&self) -> Result<T, RecvError> {
        self.0
            .recv()
            .map_err(|flume::RecvError::Disconnected| RecvError)
    }

    /// Takes a queued message without blocking.
    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.0.try_recv().map_err(|e| match e {
            flume::TryRecvError::Empty => TryRecvError::Empty,
            flume::TryRecvError::Disconnected => TryRecvError::Disconnected,
        })
    }

    /// Like [`Receiver::recv`] but gives up after `dur`.
    #[inline]
    pub fn recv_timeout(&self, dur: Duration) -> Result<T, RecvTimeoutError> {
        self.0.recv_timeout(dur).map_err(|e| match e {
            flume::RecvTimeoutError::Timeout => RecvTimeoutError::Timeout,
            flume::RecvTimeoutError::Disconnected => RecvTimeoutError::Disconnected,
        })
    }

    /// Number of messages queued right now.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when no message is queued right now.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `true` once every sender is gone (queued messages may still be received).
    #[inline]
    pub fn is_disconnected(&self) -> bool {
        self.0.is_disconnected()
    }

    /// The wrapped `flume` receiver, for the production-only raw accessors upstream offers
    /// (`AppendTicket::receiver`); the model arms have no such method, so callers are
    /// `#[cfg(not(any(loom, shuttle)))]` themselves.
    #[inline]
    pub fn as_flume(&self) -> &flume::Receiver<T> {
        &self.0
    }
}

impl<T> Clone for Receiver<T> {
    #[inline]
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
