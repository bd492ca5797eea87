//! The hybrid logical clock (INV-HLC-MONOTONE): event times never decrease, whatever the wall
//! clock does, and across restarts.

use crate::mutant::{Bugs, Mutant};

/// The timestamp of the last event written or recovered, in microseconds, and whether the
/// wall clock was last seen behind it by more than a second (warned once).
#[derive(Debug, Default)]
pub(crate) struct Hlc {
    us: i64,
    clock_behind: bool,
}

impl Hlc {
    /// The clock's next reading: the wall clock when it is ahead of every earlier event, else
    /// the time of the latest one. A clock that jumps ahead is followed (the store has no other
    /// clock to judge it by, and refusing writes would turn a clock fault into an outage); if
    /// it comes back, the store's time holds until the clock catches up, while sequence and
    /// entity clocks keep ordering events.
    pub fn stamp(&mut self, raw_us: i64, bugs: Bugs) -> i64 {
        if bugs.has(Mutant::RawWallClock) {
            return raw_us;
        }
        if raw_us >= self.us {
            if self.clock_behind {
                self.clock_behind = false;
                tracing::info!(
                    now_us = raw_us,
                    "wall clock caught up with the store's time"
                );
            }
            self.us = raw_us;
        } else if !self.clock_behind && self.us - raw_us > 1_000_000 {
            self.clock_behind = true;
            tracing::warn!(
                behind_ms = (self.us - raw_us) / 1000,
                hlc_us = self.us,
                "wall clock is behind the store's time (stepped back, or an earlier reading was ahead); event times hold until it catches up"
            );
        }
        self.us
    }

    /// A recovered event's time: the running maximum of the log's timestamps. The writer
    /// stamps them that way, and a log written before that rule reads as if it had been.
    pub fn recovered(&mut self, timestamp_us: i64) -> i64 {
        self.us = timestamp_us.max(self.us);
        self.us
    }

    /// After recovery of a log with events: the first event after a reopen takes a later
    /// millisecond than every recovered one, so ids, whose prefix is that millisecond, keep
    /// increasing across restarts even with a fresh id source and a clock that is behind.
    pub fn reopened(&mut self) {
        self.us = (self.us / 1000).saturating_add(1).saturating_mul(1000);
    }
}
