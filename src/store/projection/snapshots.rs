//! Where folds resume from: the in-memory snapshot table ([`SnapshotPolicy`]) and the
//! optional on-disk [`ProjectionCache`].
//!
//! A snapshot records how many of the target's selected events it folded, the last one's
//! sequence and id, and the state as MessagePack. The fold uses it only if today's stream
//! has the same event at that position, so a snapshot from another store, another history
//! (events lost in a crash and their sequences reused) or another type never leaks in.

use super::cache::{CacheMeta, ProjectionCache};
use crate::sourcing::EventSourced;
use crate::store::config::Settings;
use crate::store::StoreConfig;
use crate::sync::{Mutex, StdArc};
use std::collections::HashMap;

/// When `project` keeps an in-memory snapshot (cqrs-es's `snapshot_size`): after folding at
/// least `every_n_events` events past the last one, at most `max_entries` snapshots (least
/// recently used dropped first). Off unless configured
/// ([`StoreConfig::with_projection_snapshots`]). Only types whose fold is incremental
/// ([`EventSourced::supports_incremental_apply`], which the derive sets) are snapshotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Keep a new snapshot once this many events were folded past the previous one (at
    /// least 1).
    pub every_n_events: u32,
    /// Most snapshots kept (entity x projection type); 0 keeps none.
    pub max_entries: usize,
}

impl SnapshotPolicy {
    /// Whether a fold that resumed at `from` and ends at `to` events should keep a snapshot.
    pub(crate) fn wants(&self, from: usize, to: usize) -> bool {
        self.max_entries > 0 && to.saturating_sub(from) >= self.every_n_events.max(1) as usize
    }

    const OFF: SnapshotPolicy = SnapshotPolicy {
        every_n_events: u32::MAX,
        max_entries: 0,
    };
}

impl StoreConfig {
    /// Keeps in-memory projection snapshots by `policy`, so a repeated `project` folds only
    /// the events appended since (INV-PROJECTION: a snapshot is used only when its events are
    /// exactly the start of today's stream). Default: off.
    pub fn with_projection_snapshots(mut self, policy: SnapshotPolicy) -> Self {
        self.extra.projection_snapshots = Some(policy);
        self
    }
}

/// What a snapshot is of: the projection type and version and what it folds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SnapshotKey {
    type_name: &'static str,
    type_id: std::any::TypeId,
    schema_version: u64,
    kinds: Vec<u16>,
    target: Target,
}

/// What a projection folds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// One entity's events.
    Entity(String),
    /// A region's events (its identity string).
    Region(String),
}

impl SnapshotKey {
    pub(crate) fn of<T: EventSourced + 'static>(target: &Target) -> Self {
        SnapshotKey {
            type_name: std::any::type_name::<T>(),
            type_id: std::any::TypeId::of::<T>(),
            schema_version: T::schema_version(),
            kinds: T::relevant_event_kinds()
                .iter()
                .map(|k| k.as_raw())
                .collect(),
            target: target.clone(),
        }
    }

    /// The key of the on-disk cache row: stable across builds and processes (no `TypeId`),
    /// bound to the store (`identity`, its first event), fixed length.
    pub(crate) fn cache_key(&self, identity: (u64, u128)) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"batpak projection cache v1\0");
        h.update(&identity.0.to_le_bytes());
        h.update(&identity.1.to_le_bytes());
        let (tag, name) = match &self.target {
            Target::Entity(e) => (0u8, e),
            Target::Region(r) => (1u8, r),
        };
        h.update(&[tag]);
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(self.type_name.len() as u64).to_le_bytes());
        h.update(self.type_name.as_bytes());
        h.update(&self.schema_version.to_le_bytes());
        h.update(&(self.kinds.len() as u64).to_le_bytes());
        for k in &self.kinds {
            h.update(&k.to_le_bytes());
        }
        *h.finalize().as_bytes()
    }
}

/// A folded prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// How many selected events it folded.
    pub folded: u64,
    /// The last one's sequence.
    pub watermark: u64,
    /// The last one's id.
    pub last_event_id: u128,
    /// The state, MessagePack.
    pub state: Vec<u8>,
}

const ROW_HEADER: usize = 8 + 16;

impl Snapshot {
    /// A cache row's value: folded count, last event id, then the state.
    fn to_row(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ROW_HEADER + self.state.len());
        v.extend_from_slice(&self.folded.to_le_bytes());
        v.extend_from_slice(&self.last_event_id.to_le_bytes());
        v.extend_from_slice(&self.state);
        v
    }

    fn from_row(value: &[u8], meta: &CacheMeta) -> Option<Snapshot> {
        let folded = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
        let last_event_id = u128::from_le_bytes(value.get(8..ROW_HEADER)?.try_into().ok()?);
        Some(Snapshot {
            folded,
            watermark: meta.watermark,
            last_event_id,
            state: value.get(ROW_HEADER..)?.to_vec(),
        })
    }
}

/// A kept snapshot: the store identity it was taken in, the snapshot, its last use.
type Row = (Option<(u64, u128)>, Snapshot, u64);

#[derive(Default)]
struct Table {
    rows: HashMap<SnapshotKey, Row>,
    tick: u64,
}

/// The store's projection state: in-memory snapshots and the optional cache.
#[derive(Default)]
pub(crate) struct Projections {
    table: Mutex<Table>,
    cache: Mutex<Option<StdArc<dyn ProjectionCache>>>,
    /// A read-only store: cache rows only at events in segments below this one (sealed, so
    /// synced when the writer rolled past them); the last segment's bytes may be only in the
    /// page cache of a writer that crashed, and this handle syncs nothing.
    rows_below_segment: Option<u64>,
    /// Held (shared) by a fold from the moment it takes index positions until it has read
    /// them, and (exclusive) by compaction while it swaps the index: compaction moves index
    /// positions, so a fold never reads positions of another index than the one it took them
    /// from.
    pub(crate) positions: crate::sync::RwLock<()>,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections").finish_non_exhaustive()
    }
}

impl Projections {
    /// A read-only store's projection state: cache rows only below segment `last` (the
    /// recovered last segment; `None`: no segment, so no event).
    pub(crate) fn read_only(last: Option<u64>) -> Self {
        Projections {
            rows_below_segment: Some(last.unwrap_or(0)),
            ..Projections::default()
        }
    }

    /// Cache rows only at events in segments below this id (read-only stores).
    pub(crate) fn rows_below_segment(&self) -> Option<u64> {
        self.rows_below_segment
    }

    pub(crate) fn set_cache(&self, cache: StdArc<dyn ProjectionCache>) {
        *self.cache.lock() = Some(cache);
    }

    pub(crate) fn has_cache(&self) -> bool {
        self.cache.lock().is_some()
    }

    fn cache(&self) -> Option<StdArc<dyn ProjectionCache>> {
        self.cache.lock().clone()
    }

    pub(crate) fn policy(&self, cfg: &Settings) -> SnapshotPolicy {
        cfg.projection_snapshots.unwrap_or(SnapshotPolicy::OFF)
    }

    /// Candidate snapshots for `key`: the in-memory one, then the cache's row. A cache that
    /// advertises `supports_prefetch` is first told which row is coming and the watermark
    /// the fold hopes for (`predicted`, the last relevant event's sequence).
    pub(crate) fn lookup(
        &self,
        key: &SnapshotKey,
        identity: Option<(u64, u128)>,
        predicted: u64,
    ) -> Vec<Snapshot> {
        let mut out = Vec::new();
        {
            let mut t = self.table.lock();
            t.tick += 1;
            let tick = t.tick;
            if let Some((id, snap, used)) = t.rows.get_mut(key) {
                if *id == identity {
                    *used = tick;
                    out.push(snap.clone());
                }
            }
        }
        if let (Some(cache), Some(identity)) = (self.cache(), identity) {
            let row_key = key.cache_key(identity);
            if cache.capabilities().supports_prefetch {
                let hint = CacheMeta {
                    watermark: predicted,
                    cached_at_us: 0,
                    cached_at_mono_ns: None,
                    process_boot_ns: None,
                };
                if let Err(error) = cache.prefetch(&row_key, hint) {
                    tracing::warn!(%error, "projection cache prefetch failed (non-fatal), ignored");
                }
            }
            match cache.get(&row_key) {
                Ok(Some((value, meta))) => match Snapshot::from_row(&value, &meta) {
                    Some(s) => out.push(s),
                    None => tracing::warn!("projection cache row is too short; ignored"),
                },
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "projection cache read failed; folding without it")
                }
            }
        }
        out
    }

    /// Keeps `snap` in memory, dropping the least recently used row beyond the bound.
    pub(crate) fn keep(
        &self,
        key: SnapshotKey,
        identity: Option<(u64, u128)>,
        snap: Snapshot,
        policy: &SnapshotPolicy,
    ) {
        let mut t = self.table.lock();
        t.tick += 1;
        let tick = t.tick;
        t.rows.insert(key, (identity, snap, tick));
        while t.rows.len() > policy.max_entries {
            let oldest = t
                .rows
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    t.rows.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Whether the cache's row for `key` is behind `folded` events (so a new row is worth
    /// writing).
    pub(crate) fn cache_wants(
        &self,
        key: &SnapshotKey,
        identity: Option<(u64, u128)>,
        folded: u64,
    ) -> bool {
        let (Some(cache), Some(identity)) = (self.cache(), identity) else {
            return false;
        };
        match cache.get(&key.cache_key(identity)) {
            Ok(Some((value, meta))) => {
                Snapshot::from_row(&value, &meta).is_none_or(|s| s.folded < folded)
            }
            _ => true,
        }
    }

    /// Writes `snap` (whose events are all durable) to the cache; a failure is logged only:
    /// the cache is an accelerator.
    pub(crate) fn persist(
        &self,
        key: &SnapshotKey,
        identity: Option<(u64, u128)>,
        snap: Snapshot,
        now_us: i64,
    ) {
        let (Some(cache), Some(identity)) = (self.cache(), identity) else {
            return;
        };
        let meta = CacheMeta {
            watermark: snap.watermark,
            cached_at_us: now_us,
            cached_at_mono_ns: None,
            process_boot_ns: None,
        };
        if let Err(error) = cache.put(&key.cache_key(identity), &snap.to_row(), meta) {
            tracing::warn!(%error, "projection cache put failed (non-fatal)");
        }
    }
}
