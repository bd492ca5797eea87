//! Configuration upstream's API has and this crate accepts without a use for it, so programs
//! written for upstream compile unchanged: the index/checkpoint switches and the writer's
//! restart policy and shutdown drain limit.

use super::StoreConfig;

/// Upstream's policy for restarting a panicked writer (and, in both crates, a cursor worker
/// whose handler panicked): one type, so a policy written for either fits both.
pub use super::delivery::RestartPolicy;

/// Upstream's index switches. This crate's index lives in memory and is rebuilt from the log
/// at every open (one sequential scan), with no memory-mapped index file and one layout, so
/// `incremental_projection` and `enable_mmap_index` are accepted and have no effect;
/// `enable_checkpoint` switches the recovery checkpoint (a cache of the events' chain hashes
/// that the open validates, see [`StoreConfig::with_checkpoint_every_n_events`]). (Upstream's
/// `topology` field, its choice of in-memory layouts, is not offered.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexConfig {
    /// Upstream: apply projections incrementally from a cached watermark.
    pub incremental_projection: bool,
    /// Upstream: write an index checkpoint on close and load it at open. Here: save the
    /// recovery checkpoint at a clean close (and every
    /// [`with_checkpoint_every_n_events`](StoreConfig::with_checkpoint_every_n_events)) and
    /// take its validated hashes at open; `false` neither saves nor reads one.
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

impl StoreConfig {
    /// Upstream writes an index checkpoint on close and loads it at open. This crate rebuilds
    /// the index from the log at every open (one sequential scan) and with the switch on (the
    /// default) saves a recovery checkpoint of the events' chain hashes at close, which the
    /// next open validates and uses instead of computing them ([`IndexConfig::enable_checkpoint`],
    /// [`StoreConfig::with_checkpoint_every_n_events`]).
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
    /// effect: this writer is not restarted).
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
