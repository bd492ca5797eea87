//! When the writer fsyncs: one decision, [`Flush::must_sync`], over the store's
//! [`Durability`].

use crate::mutant::{Bugs, Mutant};
use std::time::Duration;

/// What an acknowledgement promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// An append is acknowledged only once durable: every group is fsynced before its
    /// replies (group commit). A crash loses nothing acknowledged.
    Immediate,
    /// Appends are acknowledged (and visible) once written, and fsynced every `every` events
    /// or once the oldest unsynced one is `interval` old, whichever comes first
    /// (INV-FLUSH-BOUND). A crash may lose acknowledged events not yet synced; the frontier
    /// and `wait_for_durable` tell what is durable.
    Deferred {
        /// Events written between two fsyncs at most.
        every: u32,
        /// The longest an event stays unsynced.
        interval: Duration,
    },
}

impl Durability {
    /// The durability `StoreConfig::with_sync_every_n_events(n)` and `with_flush_interval`
    /// ask for: `n <= 1` is immediate.
    pub fn from_sync_every(n: u32, interval: Duration) -> Self {
        if n <= 1 {
            Durability::Immediate
        } else {
            Durability::Deferred { every: n, interval }
        }
    }

    /// Whether acknowledgements may come before durability.
    pub fn is_deferred(self) -> bool {
        matches!(self, Durability::Deferred { .. })
    }
}

/// The writer's record of what is written but not yet synced.
#[derive(Debug)]
pub(crate) struct Flush {
    durability: Durability,
    /// Records written since the last fsync.
    unsynced: u64,
    /// Deferred mode: when (monotonic µs) the oldest record not yet synced was written. The
    /// flush bound runs from it, whatever commands come after (INV-FLUSH-BOUND).
    oldest_unsynced_us: Option<u64>,
}

impl Flush {
    /// Nothing unsynced.
    pub fn new(durability: Durability) -> Self {
        Self {
            durability,
            unsynced: 0,
            oldest_unsynced_us: None,
        }
    }

    /// The group wrote `records` more, at monotonic time `now_us`. Whether it must be fsynced
    /// before it is answered: always in immediate mode and when a command asks (`forced`: a
    /// sync, a fence commit, a shutdown); in deferred mode once `every` records are unsynced
    /// or the oldest of them is `interval` old.
    pub fn must_sync(
        &mut self,
        records: u64,
        forced: bool,
        now_us: impl Fn() -> u64,
        bugs: Bugs,
    ) -> bool {
        self.unsynced += records;
        let Durability::Deferred { every, interval } = self.durability else {
            return true;
        };
        if forced || self.unsynced >= u64::from(every) {
            return true;
        }
        if self.unsynced == 0 {
            return false;
        }
        // The bound runs from the oldest unsynced write: a steady trickle of commands must
        // not keep pushing the flush out.
        let now = now_us();
        let oldest = match self.oldest_unsynced_us {
            Some(t) if !bugs.has(Mutant::FlushTimerRestarts) => t,
            _ => now,
        };
        self.oldest_unsynced_us = Some(oldest);
        now.saturating_sub(oldest) >= interval_us(interval)
    }

    /// Deferred mode with unsynced records: how long (from `now_us`) until the oldest of them
    /// is due.
    pub fn due_in(&self, now_us: impl Fn() -> u64) -> Option<Duration> {
        let Durability::Deferred { interval, .. } = self.durability else {
            return None;
        };
        let oldest = self.oldest_unsynced_us.filter(|_| self.unsynced > 0)?;
        let age = now_us().saturating_sub(oldest);
        Some(Duration::from_micros(
            interval_us(interval).saturating_sub(age),
        ))
    }

    /// Everything written is durable now (or will never be: the writer latched).
    pub fn synced(&mut self) {
        self.unsynced = 0;
        self.oldest_unsynced_us = None;
    }
}

fn interval_us(interval: Duration) -> u64 {
    u64::try_from(interval.as_micros()).unwrap_or(u64::MAX)
}
