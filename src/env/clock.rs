//! Injectable time and id sources.

use crate::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::fmt;

/// Wall-clock time in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Current time in microseconds since the Unix epoch.
    fn now_us(&self) -> i64;

    /// A reading for measuring intervals (the deferred mode's flush bound), in microseconds
    /// from an arbitrary origin, never decreasing; `None` (the default) means real time, read
    /// from the OS's monotonic clock. Wall time is no good for intervals: it can step back.
    /// Test clocks return their own reading, so the flush bound can be driven by hand.
    fn monotonic_us(&self) -> Option<u64> {
        None
    }
}

/// Source of event ids (UUIDv7-shaped `u128`).
pub trait IdSource: Send + Sync + fmt::Debug {
    /// A fresh id; `now_us` is the clock reading to embed in the id's time prefix.
    fn next_id(&self, now_us: i64) -> u128;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock that only moves when told to (deterministic tests and models).
#[derive(Debug, Default)]
pub struct ManualClock {
    now_us: AtomicI64,
    /// The monotonic reading: moves forward with `advance`, never back.
    mono_us: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start_us`.
    pub fn new(start_us: i64) -> Self {
        Self {
            now_us: AtomicI64::new(start_us),
            mono_us: AtomicU64::new(0),
        }
    }
    /// Moves the clock by `delta_us`: wall time by `delta_us` (a negative delta steps it
    /// back, as a system clock can), the monotonic reading forward by `delta_us` if positive.
    pub fn advance(&self, delta_us: i64) {
        self.now_us.fetch_add(delta_us, Ordering::SeqCst);
        if let Ok(forward) = u64::try_from(delta_us) {
            self.mono_us.fetch_add(forward, Ordering::SeqCst);
        }
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        // Every reading advances by one microsecond so timestamps stay strictly increasing.
        self.now_us.fetch_add(1, Ordering::SeqCst)
    }

    fn monotonic_us(&self) -> Option<u64> {
        Some(self.mono_us.load(Ordering::SeqCst))
    }
}

/// A clock backed by a caller-supplied closure (upstream's `with_clock`), in microseconds.
pub struct FnClock(pub crate::sync::StdArc<dyn Fn() -> i64 + Send + Sync>);

impl fmt::Debug for FnClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnClock")
    }
}

impl Clock for FnClock {
    fn now_us(&self) -> i64 {
        (self.0)()
    }
}

/// UUIDv7-style ids: 48 bits of milliseconds, version 7, then random bits mixed with a
/// per-process counter so ids from one source never repeat.
#[derive(Debug)]
pub struct RandomIds {
    state: AtomicU64,
}

impl Default for RandomIds {
    fn default() -> Self {
        // Seed from time and the address of a stack value: no extra dependency needed, and ids
        // only need to be unique, not unpredictable.
        let local = 0u8;
        let addr = &local as *const u8 as u64;
        let t = SystemClock.now_us() as u64;
        Self {
            state: AtomicU64::new(splitmix(t ^ addr.rotate_left(32))),
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn uuid_v7(now_us: i64, rand: u128) -> u128 {
    let ms = (now_us.max(0) as u128 / 1000) & ((1u128 << 48) - 1);
    let version = 0x7u128 << 76;
    let variant = 0b10u128 << 62;
    let rand_a = (rand >> 64) & 0xFFF; // 12 bits
    let rand_b = rand & ((1u128 << 62) - 1);
    (ms << 80) | version | (rand_a << 64) | variant | rand_b
}

impl IdSource for RandomIds {
    fn next_id(&self, now_us: i64) -> u128 {
        let s = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let a = splitmix(s);
        let b = splitmix(s ^ 0xD6E8_FEB8_6659_FD93);
        uuid_v7(now_us, ((a as u128) << 64) | b as u128)
    }
}

/// Deterministic ids: a counter in the random bits (tests and models).
#[derive(Debug, Default)]
pub struct CounterIds {
    next: AtomicU64,
}

impl CounterIds {
    /// Starts counting at `start`.
    pub fn new(start: u64) -> Self {
        Self {
            next: AtomicU64::new(start),
        }
    }
}

impl IdSource for CounterIds {
    fn next_id(&self, now_us: i64) -> u128 {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        uuid_v7(now_us, n as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_ids_are_distinct_and_v7() {
        let ids = CounterIds::new(1);
        let a = ids.next_id(1_000_000);
        let b = ids.next_id(1_000_000);
        assert_ne!(a, b);
        assert_eq!((a >> 76) & 0xF, 7);
    }

    #[test]
    fn random_ids_do_not_repeat() {
        let ids = RandomIds::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(ids.next_id(5)));
        }
    }
}
