//! Injectable time and id sources.

use crate::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use crate::sync::Mutex;
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
///
/// Ids must be unique; the store's own sources also make them strictly increasing per source
/// ([`RandomIds`] even when `now_us` steps back).
pub trait IdSource: Send + Sync + fmt::Debug {
    /// A fresh id; `now_us` is the time to embed in the id's prefix (the store passes the
    /// event's hybrid logical clock, which never decreases).
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
    /// back, as NTP might), the monotonic reading forward by `delta_us` if positive.
    pub fn advance(&self, delta_us: i64) {
        self.now_us.fetch_add(delta_us, Ordering::SeqCst);
        if let Ok(forward) = u64::try_from(delta_us) {
            self.mono_us.fetch_add(forward, Ordering::SeqCst);
        }
    }
    /// Sets the clock: its next reading is `now_us` (forward, back, 1970 or before). The
    /// monotonic reading does not move.
    pub fn set(&self, now_us: i64) {
        self.now_us.store(now_us, Ordering::SeqCst);
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

/// The largest millisecond a UUIDv7 can hold (48 bits; the year 10889).
const MS_MAX: u64 = (1 << 48) - 1;
/// Bits after the version and variant: 12 (`rand_a`) + 62 (`rand_b`).
const TAIL_MAX: u128 = (1 << 74) - 1;

/// The UUIDv7 millisecond of a clock reading: clamped to `0..=MS_MAX` (a clock before 1970
/// reads as 0; one past the year 10889 as the last millisecond), never wrapped.
fn v7_ms(now_us: i64) -> u64 {
    (now_us.max(0) as u64 / 1000).min(MS_MAX)
}

/// A UUIDv7 (RFC 9562): `ms` in the top 48 bits, version 7, the variant, and the 74-bit `tail`
/// split around them.
fn v7(ms: u64, tail: u128) -> u128 {
    let version = 0x7u128 << 76;
    let variant = 0b10u128 << 62;
    let rand_a = (tail >> 62) & 0xFFF;
    let rand_b = tail & ((1u128 << 62) - 1);
    (u128::from(ms) << 80) | version | (rand_a << 64) | variant | rand_b
}

fn v7_parts(id: u128) -> (u64, u128) {
    let ms = (id >> 80) as u64;
    let tail = (((id >> 64) & 0xFFF) << 62) | (id & ((1u128 << 62) - 1));
    (ms, tail)
}

/// UUIDv7 ids from the OS's entropy, strictly increasing per source (RFC 9562 section 6.2,
/// method 2, "monotonic random"): in every new millisecond the 74 bits after the time prefix
/// start at a value drawn from the operating system's random source (`getrandom`), with the
/// top bit clear so that counting up cannot run out; within a millisecond each id adds one.
/// A clock reading at or before the last id's millisecond (the clock stepped back) keeps that
/// millisecond and keeps counting, so ids never decrease.
///
/// Unique across sources, processes and machines: two sources collide only if they draw
/// overlapping ranges in the same millisecond, about `n / 2^73` for `n` ids per millisecond.
/// If the OS refuses entropy (a sandbox without `getrandom`), std's randomly seeded hasher keys
/// are used instead, with a warning.
#[derive(Debug, Default)]
pub struct RandomIds {
    state: Mutex<RandomIdsState>,
}

#[derive(Debug, Default)]
struct RandomIdsState {
    /// The last id handed out (0 before the first).
    last: u128,
    /// Whether the OS refused entropy once (warned about once).
    entropy_failed: bool,
}

impl RandomIds {
    /// A source whose first id draws fresh entropy.
    pub fn new() -> Self {
        Self::default()
    }
}

/// 73 random bits for the start of a millisecond.
fn fresh_tail(state: &mut RandomIdsState) -> u128 {
    let mut bytes = [0u8; 16];
    let r = match getrandom::fill(&mut bytes) {
        Ok(()) => u128::from_le_bytes(bytes),
        Err(e) => {
            if !state.entropy_failed {
                state.entropy_failed = true;
                tracing::warn!(error = %e, "the OS refused entropy for event ids; using std's randomly seeded hasher keys");
            }
            use std::hash::BuildHasher;
            let rs = std::hash::RandomState::new();
            (u128::from(rs.hash_one((state.last, 0u8))) << 64)
                | u128::from(rs.hash_one((state.last, 1u8)))
        }
    };
    r & (TAIL_MAX >> 1)
}

impl IdSource for RandomIds {
    fn next_id(&self, now_us: i64) -> u128 {
        let ms = v7_ms(now_us);
        let mut st = self.state.lock();
        let (last_ms, last_tail) = v7_parts(st.last);
        let id = if st.last == 0 || ms > last_ms {
            v7(ms, fresh_tail(&mut st))
        } else if last_tail < TAIL_MAX {
            v7(last_ms, last_tail + 1)
        } else {
            // 2^73 ids in one millisecond: borrow the next one (RFC 9562 allows it). At the
            // last representable millisecond this repeats; that is the year 10889.
            v7((last_ms + 1).min(MS_MAX), fresh_tail(&mut st))
        };
        st.last = id;
        id
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
        v7(v7_ms(now_us), u128::from(n))
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
    fn random_ids_are_v7_and_strictly_increasing_when_the_clock_steps_back() {
        let ids = RandomIds::new();
        let t = 1_700_000_000_000_000;
        let mut last = 0;
        for now in [
            t,
            t,
            t + 1_000,
            t - 7_200_000_000,
            0,
            -1,
            t + 2_000,
            i64::MAX,
        ] {
            for _ in 0..100 {
                let id = ids.next_id(now);
                assert!(id > last, "{id:032x} after {last:032x}");
                assert_eq!((id >> 76) & 0xF, 7);
                assert_eq!((id >> 62) & 0b11, 0b10);
                last = id;
            }
        }
        // The prefix follows the clock when it moves forward, and saturates at the top.
        assert_eq!(ids.next_id(i64::MAX) >> 80, u128::from(MS_MAX));
        let fresh = RandomIds::new();
        assert_eq!(fresh.next_id(t) >> 80, (t / 1000) as u128);
    }

    #[test]
    fn random_ids_borrow_the_next_millisecond_when_a_millisecond_runs_out() {
        let ids = RandomIds::new();
        ids.state.lock().last = v7(5, TAIL_MAX);
        let id = ids.next_id(5_000);
        assert_eq!(v7_parts(id).0, 6);
        assert!(id > v7(5, TAIL_MAX));
    }

    #[test]
    fn v7_parts_inverts_v7() {
        for tail in [0, 1, TAIL_MAX, TAIL_MAX >> 1, 0x3_5678_9abc_def0_1234] {
            assert_eq!(v7_parts(v7(42, tail)), (42, tail));
        }
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
