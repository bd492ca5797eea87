//! Configuration switches upstream's API has and this crate accepts without a use for them yet,
//! so programs written for upstream compile unchanged.

use super::StoreConfig;

impl StoreConfig {
    /// Upstream writes an index checkpoint on close and loads it at open. This crate rebuilds
    /// the index from the log at every open (one sequential scan), so the switch is accepted
    /// and has no effect.
    pub fn with_enable_checkpoint(self, _enable_checkpoint: bool) -> Self {
        self
    }

    /// Upstream can keep its index in a memory-mapped file. This crate's index lives in memory
    /// only, so the switch is accepted and has no effect.
    pub fn with_enable_mmap_index(self, _enable_mmap_index: bool) -> Self {
        self
    }
}
