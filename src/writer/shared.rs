//! What the writer thread shares with the store handle and readers: the index, the frontier,
//! whether it stopped, and the signal that wakes `wait_for_durable`.

use crate::index::Index;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::{Condvar, Mutex, RwLock};

/// Sequence numbers that tell what the writer has done (each is "the next sequence not yet
/// covered", so 0 means nothing). Always `written >= durable` and `written >= visible`; in
/// immediate durability also `durable >= visible` (nothing is published before its fsync).
#[derive(Debug, Default)]
pub(crate) struct FrontierCells {
    /// Records written (possibly unsynced).
    pub written: AtomicU64,
    /// Records durable.
    pub durable: AtomicU64,
    /// Records visible (published), counting hidden records below the last visible one.
    pub visible: AtomicU64,
}

/// What the writer shares with the store handle and readers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub index: RwLock<Index>,
    pub frontier: FrontierCells,
    /// `true` once the writer stopped; taken for writing by the writer's exit so that no
    /// command can be enqueued after the final drain (INV-NO-HANG).
    pub stopped: RwLock<bool>,
    /// Signalled whenever `frontier.durable` moves or the writer stops, and when
    /// `frontier.written` moves while `durable_waiters` is not zero (a deferred-mode waiter
    /// asks for a flush once its point is written).
    pub durable_lock: Mutex<()>,
    pub durable_cv: Condvar,
    /// Threads in `wait_for_durable`; registered before they read the frontier, so a writer
    /// that reads zero here after moving the frontier cannot leave one asleep.
    pub durable_waiters: AtomicUsize,
    /// Counts the groups that moved the visible or durable frontier (and the writer's exit);
    /// subscriptions, cursors and consumers sleep on `publish_cv` until it changes, so they
    /// wake on a publish instead of polling. The writer holds the lock only to bump it.
    pub publish_gen: Mutex<u64>,
    pub publish_cv: Condvar,
}

impl Shared {
    pub fn new(index: Index) -> Self {
        Self {
            index: RwLock::new(index),
            frontier: FrontierCells::default(),
            stopped: RwLock::new(false),
            durable_lock: Mutex::new(()),
            durable_cv: Condvar::new(),
            durable_waiters: AtomicUsize::new(0),
            publish_gen: Mutex::new(0),
            publish_cv: Condvar::new(),
        }
    }

    /// Wakes every thread in `wait_for_durable`.
    pub fn wake_durable_waiters(&self) {
        let _g = self.durable_lock.lock();
        self.durable_cv.notify_all();
    }
}

impl Shared {
    /// Wakes every subscription, cursor and consumer waiting for a publish.
    pub fn notify_published(&self) {
        let mut g = self.publish_gen.lock();
        *g = g.wrapping_add(1);
        self.publish_cv.notify_all();
    }

    /// The publish generation now (read before looking at the index, then passed to
    /// [`Shared::wait_published`], so a publish in between is never slept through).
    pub fn published_gen(&self) -> u64 {
        *self.publish_gen.lock()
    }

    /// Sleeps until the generation moves past `seen` or `timeout` passes.
    pub fn wait_published(&self, seen: u64, timeout: std::time::Duration) {
        let mut g = self.publish_gen.lock();
        if *g != seen {
            return;
        }
        let (g2, _) = self.publish_cv.wait_timeout(g, timeout);
        g = g2;
        drop(g);
    }

    /// Whether the writer has stopped (the store closed).
    pub fn is_stopped(&self) -> bool {
        *self.stopped.read()
    }
}

impl FrontierCells {
    /// (written, durable, visible) now.
    pub fn load(&self) -> (u64, u64, u64) {
        (
            self.written.load(Ordering::SeqCst),
            self.durable.load(Ordering::SeqCst),
            self.visible.load(Ordering::SeqCst),
        )
    }
}
