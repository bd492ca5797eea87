//! Injectable randomness: the per-segment salt of the frame checksums (`spec/FORMAT.md`).
//!
//! Production draws from the operating system ([`OsEntropy`]); tests, the fuzzer and the
//! models use [`SeededEntropy`], so the bytes a run writes depend on its input alone.

use crate::sync::atomic::{AtomicU64, Ordering};
use std::fmt;

/// A source of unpredictable 32-bit values.
pub trait Entropy: Send + Sync + fmt::Debug {
    /// A fresh value.
    fn next_u32(&self) -> u32;
}

/// The operating system's random source (`getrandom`). If that fails (no entropy device), it
/// falls back to std's hash keys, which std seeds from the same source; it never panics.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn next_u32(&self) -> u32 {
        let mut b = [0u8; 4];
        if getrandom::fill(&mut b).is_ok() {
            return u32::from_le_bytes(b);
        }
        use std::hash::BuildHasher;
        let now = crate::env::Clock::now_us(&crate::env::SystemClock);
        std::hash::RandomState::new().hash_one(now) as u32
    }
}

/// Deterministic values from a seed (tests and models): a splitmix64 sequence.
#[derive(Debug)]
pub struct SeededEntropy {
    state: AtomicU64,
}

impl SeededEntropy {
    /// A sequence starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }
}

impl Entropy for SeededEntropy {
    fn next_u32(&self) -> u32 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_entropy_repeats_per_seed_and_os_entropy_varies() {
        let (a, b) = (SeededEntropy::new(7), SeededEntropy::new(7));
        let xs: Vec<u32> = (0..4).map(|_| a.next_u32()).collect();
        let ys: Vec<u32> = (0..4).map(|_| b.next_u32()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        let os: std::collections::HashSet<u32> = (0..16).map(|_| OsEntropy.next_u32()).collect();
        assert!(os.len() > 1);
    }
}
