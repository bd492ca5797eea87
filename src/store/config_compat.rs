//! Configuration upstream's API has and this crate accepts without a use for it, so programs
//! written for upstream compile unchanged: the index/checkpoint switches and the writer's
//! restart policy and shutdown drain limit.

use super::StoreConfig;

/// Upstream's index switches. This crate's index lives in memory and is rebuilt from the log
/// at every open (one sequential scan), with no checkpoint or memory-mapped index file and one
/// layout, so the switches are accepted and have no effect. (Upstream's `topology` field,
/// its choice of in-memory layouts, is not offered.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConfig {
    /// Upstream: apply projections incrementally from a cached watermark.
    pub incremental_projection: bool,
    /// Upstream: write an index checkpoint on close and load it at open.
    pub enable_checkpoint: bool,
    /// Upstream: prefer a memory-mapped index file at open.
    pub enable_mmap_index: bool,
}

impl Default for IndexConfig {
    /// Upstream's defaults: no incremental projection, checkpoint and mmap index on.
    fn default() -> Self {
        Self {
            incremental_projection: false,
            enable_checkpoint: true,
            enable_mmap_index: true,
        }
    }
}

/// What upstream does when its writer thread panics: restart it once, or up to
/// `max_restarts` times within `within_ms`. This crate's writer does not panic on input
/// (clippy denies it), and if it stops for any reason the store refuses every pending and
/// later call with `WriterCrashed` instead of restarting a writer whose state may be
/// inconsistent; the policy is accepted for upstream's shape and has no effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Upstream: at most one automatic restart (its default).
    #[default]
    Once,
    /// Upstream: up to `max_restarts` restarts within a rolling `within_ms` window.
    Bounded {
        /// Most restarts within the window.
        max_restarts: u32,
        /// The window, in milliseconds.
        within_ms: u64,
    },
}

impl StoreConfig {
    /// Upstream writes an index checkpoint on close and loads it at open. This crate rebuilds
    /// the index from the log at every open (one sequential scan), so the switch is accepted
    /// and has no effect ([`IndexConfig::enable_checkpoint`]).
    pub fn with_enable_checkpoint(mut self, enable_checkpoint: bool) -> Self {
        self.index.enable_checkpoint = enable_checkpoint;
        self
    }

    /// Upstream can keep its index in a memory-mapped file. This crate's index lives in memory
    /// only, so the switch is accepted and has no effect ([`IndexConfig::enable_mmap_index`]).
    pub fn with_enable_mmap_index(mut self, enable_mmap_index: bool) -> Self {
        self.index.enable_mmap_index = enable_mmap_index;
        self
    }

    /// [`IndexConfig::incremental_projection`] (accepted, no effect).
    pub fn with_incremental_projection(mut self, incremental_projection: bool) -> Self {
        self.index.incremental_projection = incremental_projection;
        self
    }

    /// [`WriterConfig::restart_policy`](super::WriterConfig::restart_policy) (accepted, no
    /// effect: see [`RestartPolicy`]).
    pub fn with_restart_policy(mut self, restart_policy: RestartPolicy) -> Self {
        self.writer.restart_policy = restart_policy;
        self
    }

    /// [`WriterConfig::shutdown_drain_limit`](super::WriterConfig::shutdown_drain_limit)
    /// (accepted, no effect: every queued command is answered at shutdown).
    pub fn with_shutdown_drain_limit(mut self, shutdown_drain_limit: usize) -> Self {
        self.writer.shutdown_drain_limit = shutdown_drain_limit;
        self
    }
}
