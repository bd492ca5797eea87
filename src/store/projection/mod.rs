//! Projections: state folded from an entity's visible events ([`Store::project`]), as of a
//! sequence ([`Store::project_at`]), over a region ([`Store::project_region`]), only when it
//! changed ([`Store::project_if_changed`]), watched ([`Store::watch_projection`]), and
//! commands decided against it ([`Store::execute`], [`Aggregate`]).
//!
//! INV-PROJECTION: a projection is exactly the fold of the visible events it selects (its
//! relevant kinds, in sequence order, which is entity-clock order for one entity). A snapshot
//! (in memory, [`SnapshotPolicy`]) or a cached row (on disk, [`ProjectionCache`]) is used
//! only for a type whose fold is incremental
//! ([`EventSourced::supports_incremental_apply`]) and only when the events it covers are
//! exactly the first events of today's stream (same count, same last event id and
//! sequence); a payload that does not decode is [`StoreError::ProjectionDecode`].

mod aggregate;
mod cache;
mod snapshots;
mod watch;

pub use aggregate::{Aggregate, ExecuteError, EXECUTE_MAX_ATTEMPTS};
pub use cache::{CacheCapabilities, CacheMeta, NativeCache, NoCache, ProjectionCache};
pub use snapshots::SnapshotPolicy;
pub use watch::{ProjectionWatcher, WatcherError};

use super::{Store, StoreError};
use crate::event::{Event, EventHeader, EventKind, EventPosition};
use crate::index::Slot;
use crate::log::catalog::EventFrameRef;
use crate::mutant::Mutant;
use crate::region::Region;
use crate::sourcing::{EventSourced, ProjectionEvent, ProjectionInput, TypedDecodeError};
use crate::sync::atomic::Ordering;
use serde::de::DeserializeOwned;
use serde::Serialize;
use snapshots::{SnapshotKey, Target};

pub(crate) use snapshots::Projections;

/// Events whose index slots a fold copies at a time.
const REPLAY_CHUNK: usize = 4096;

/// How fresh a projection must be.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Freshness {
    /// The fold of every event visible when the call starts.
    Consistent,
    /// A state at most `max_stale_ms` old would do. This crate always answers with the
    /// [`Consistent`](Freshness::Consistent) state (a snapshot is extended to the head, never
    /// served as it is), which is never older than allowed.
    MaybeStale {
        /// The oldest acceptable state, in milliseconds.
        max_stale_ms: u64,
    },
}

/// One folded event: the store's view of it.
struct Meta {
    seq: u64,
    event_id: u128,
    kind: EventKind,
    coord: u32,
}

/// The result of a fold.
pub(crate) struct Folded<T> {
    pub state: Option<T>,
    /// The entity's generation sampled before the fold (entity projections).
    pub generation: u64,
    /// The entity's last visible clock sampled with the generation.
    pub clock: u32,
}

/// Where a fold may keep or start from a snapshot.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Snapshotting {
    /// Read and write snapshots (a fold to the head).
    ReadWrite,
    /// Read only (a fold to a past sequence).
    ReadOnly,
}

impl<S> Store<S> {
    /// The state folded from `entity`'s visible events of `T`'s relevant kinds, oldest first
    /// (`None` when there is none, or when `T::from_events` says so). Upstream's signature.
    ///
    /// # Errors
    /// [`StoreError::ProjectionDecode`] naming the event whose payload did not decode (never
    /// a panic, never a skipped event); I/O or damage reading the events.
    pub fn project<T>(&self, entity: &str, freshness: &Freshness) -> Result<Option<T>, StoreError>
    where
        T: EventSourced + Serialize + DeserializeOwned + 'static,
    {
        let _ = freshness;
        let result = self
            .fold_entity::<T>(entity, u64::MAX, Snapshotting::ReadWrite)
            .map(|fold| fold.state);
        crate::store::flow::done("project", result)
    }

    /// The entity's generation: how many of its events are visible (`None` if none is). It
    /// only grows, so it tells a caller whether the entity changed since it last looked.
    pub fn entity_generation(&self, entity: &str) -> Option<u64> {
        let n = self.shared.index.read().entity_replay(entity, &[], 0).1;
        (n > 0).then_some(n)
    }

    /// [`Store::project`] only if the entity changed since generation `last_seen_generation`:
    /// `Ok(None)` when it did not, else the generation the state is folded at and the state.
    /// The generation is sampled before the fold, so an append racing with it is seen as a
    /// change by the next call, never lost.
    ///
    /// # Errors
    /// As [`Store::project`].
    pub fn project_if_changed<T>(
        &self,
        entity: &str,
        last_seen_generation: u64,
        freshness: &Freshness,
    ) -> Result<Option<(u64, Option<T>)>, StoreError>
    where
        T: EventSourced + Serialize + DeserializeOwned + 'static,
    {
        let _ = freshness;
        if self.entity_generation(entity).unwrap_or(0) == last_seen_generation {
            return Ok(None);
        }
        let f = self.fold_entity::<T>(entity, u64::MAX, Snapshotting::ReadWrite)?;
        Ok(Some((f.generation, f.state)))
    }

    /// Time travel: the state folded from `entity`'s visible events with a global sequence
    /// at or below `upto_seq` (an [`crate::index::IndexEntry::global_sequence`] or a
    /// receipt's sequence).
    ///
    /// # Errors
    /// As [`Store::project`].
    pub fn project_at<T>(&self, entity: &str, upto_seq: u64) -> Result<Option<T>, StoreError>
    where
        T: EventSourced + Serialize + DeserializeOwned + 'static,
    {
        Ok(self
            .fold_entity::<T>(entity, upto_seq.saturating_add(1), Snapshotting::ReadOnly)?
            .state)
    }

    /// One read model over every visible event `region` selects (of `T`'s relevant kinds),
    /// in global sequence order, across entities.
    ///
    /// # Errors
    /// As [`Store::project`]; a decode error names the failing event's entity.
    pub fn project_region<T>(
        &self,
        region: &Region,
        freshness: &Freshness,
    ) -> Result<Option<T>, StoreError>
    where
        T: EventSourced + Serialize + DeserializeOwned + 'static,
    {
        let _ = freshness;
        let _stable = self.projections.positions.read();
        let positions =
            self.shared
                .index
                .read()
                .region_replay(region, T::relevant_event_kinds(), u64::MAX);
        let target = Target::Region(region_identity(region));
        self.fold::<T>(&positions, &target, "", Snapshotting::ReadWrite)
    }

    pub(crate) fn fold_entity<T>(
        &self,
        entity: &str,
        below: u64,
        mode: Snapshotting,
    ) -> Result<Folded<T>, StoreError>
    where
        T: EventSourced + Serialize + DeserializeOwned + 'static,
    {
        let _stable = self.projections.positions.read();
        let (positions, generation, clock) =
            self.shared
                .index
                .read()
                .entity_replay(entity, T::relevant_event_kinds(), below);
        let target = Target::Entity(entity.to_string());
        let state = self.fold::<T>(&positions, &target, entity, mode)?;
        Ok(Folded {
            state,
            generation,
            clock,
        })
    }

    /// Folds the events at index `positions` into `T`, starting from the newest usable
    /// snapshot.
    fn fold<T>(
        &self,
        positions: &[u32],
        target: &Target,
        entity: &str,
        mode: Snapshotting,
    ) -> Result<Option<T>, StoreError>
    where
        T: EventSourced + Serialize + DeserializeOwned + 'static,
    {
        if positions.is_empty() {
            // No relevant event: no state (upstream's answer; `from_events` is not asked).
            return Ok(None);
        }
        if !T::supports_incremental_apply() {
            return self.fold_whole::<T>(positions, entity);
        }
        let key = SnapshotKey::of::<T>(target);
        let bugs = self.cfg.bugs;
        // Where to keep snapshots: at the end (memory) and at the last durable event (the
        // cache persists nothing a crash could take back).
        let durable = if self.cfg.bugs.has(Mutant::ProjectionCacheAboveDurable) {
            u64::MAX
        } else {
            self.shared.frontier.durable.load(Ordering::SeqCst)
        };
        // A read-only store syncs nothing: only events of sealed segments are known durable.
        let sealed_below = if bugs.has(Mutant::ReadOnlyCacheAboveSealed) {
            None
        } else {
            self.projections.rows_below_segment()
        };
        let (identity, durable_end, last) = {
            let index = self.shared.index.read();
            let persistable = |p: u32| {
                index.slot_at(p).is_some_and(|s| {
                    s.seq < durable && sealed_below.is_none_or(|b| s.disk_pos.segment_id < b)
                })
            };
            (
                index.first_event(),
                positions.partition_point(|&p| persistable(p)),
                positions.last().and_then(|&p| index.slot_at(p)),
            )
        };
        // The newest snapshot (memory, then the cache) whose events are exactly a prefix.
        let mut start: Option<(usize, T)> = None;
        let predicted = last.map_or(0, |s| s.seq);
        for found in self.projections.lookup(&key, identity, predicted) {
            if bugs.has(Mutant::ProjectionStaleSnapshot) {
                // The seeded bug: the snapshot is served as it is, however old.
                if let Ok(state) = rmp_serde::from_slice::<T>(&found.state) {
                    return Ok(Some(state));
                }
            }
            let n = found.folded as usize;
            let matches = n > 0
                && n.checked_sub(1)
                    .and_then(|i| positions.get(i))
                    .and_then(|&p| self.shared.index.read().slot_at(p))
                    .is_some_and(|s| s.seq == found.watermark && s.event_id == found.last_event_id);
            if matches && start.as_ref().is_none_or(|(m, _)| n > *m) {
                match rmp_serde::from_slice::<T>(&found.state) {
                    Ok(state) => start = Some((n, state)),
                    Err(error) => tracing::warn!(
                        projection = std::any::type_name::<T>(),
                        %error,
                        "projection snapshot does not decode; folding from the start"
                    ),
                }
            }
        }
        let (from, mut state) = match start {
            Some((n, s)) => (n, Some(s)),
            None => (0, None),
        };
        let policy = self.projections.policy(&self.cfg);
        let want_memory = mode == Snapshotting::ReadWrite && policy.wants(from, positions.len());
        let want_cache = mode == Snapshotting::ReadWrite
            && self.projections.has_cache()
            && durable_end > from
            && self
                .projections
                .cache_wants(&key, identity, durable_end as u64);
        let mut durable_snapshot: Option<(Vec<u8>, Slot)> = None;
        let rest = positions.get(from..).unwrap_or(&[]);
        self.replay::<T>(rest, entity, |i, slot, event| {
            let at = from + i;
            match state.as_mut() {
                Some(s) => s.try_apply_event(event)?,
                None => state = T::try_from_events(std::slice::from_ref(event))?,
            }
            if want_cache && at + 1 == durable_end {
                durable_snapshot = state
                    .as_ref()
                    .and_then(|s| encode_state(s))
                    .map(|b| (b, *slot));
            }
            Ok(())
        })?;
        if want_memory {
            if let (Some(s), Some(last)) = (state.as_ref(), last) {
                if let Some(bytes) = encode_state(s) {
                    self.projections.keep(
                        key.clone(),
                        identity,
                        snapshots::Snapshot {
                            folded: positions.len() as u64,
                            watermark: last.seq,
                            last_event_id: last.event_id,
                            state: bytes,
                        },
                        &policy,
                    );
                }
            }
        }
        if let Some((bytes, slot)) = durable_snapshot {
            self.projections.persist(
                &key,
                identity,
                snapshots::Snapshot {
                    folded: durable_end as u64,
                    watermark: slot.seq,
                    last_event_id: slot.event_id,
                    state: bytes,
                },
                self.cfg.clock.now_us(),
            );
        }
        Ok(state)
    }

    /// Upstream's fold for a type that is not incremental: every event in one slice, one
    /// `try_from_events`.
    fn fold_whole<T>(&self, positions: &[u32], entity: &str) -> Result<Option<T>, StoreError>
    where
        T: EventSourced,
    {
        let mut events: Vec<ProjectionEvent<T>> = Vec::with_capacity(positions.len());
        let mut slots: Vec<Slot> = Vec::with_capacity(positions.len());
        self.replay::<T>(positions, entity, |_, slot, e| {
            events.push(e.clone());
            slots.push(*slot);
            Ok(())
        })?;
        match T::try_from_events(&events) {
            Ok(state) => Ok(state),
            Err(source) => {
                // Name the event: the shortest failing prefix ends with it.
                let (mut lo, mut hi) = (0usize, events.len().saturating_sub(1));
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if T::try_from_events(events.get(..=mid).unwrap_or(&[])).is_err() {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                let slot = slots.get(lo).or(slots.last());
                Err(self.decode_error::<T>(slot, entity, source))
            }
        }
    }

    /// Reads the events at index `positions` in order, a bounded chunk at a time (so memory
    /// does not grow with the stream), decodes each into `T`'s lane and hands it to `f`; a
    /// payload the lane cannot decode, or an error of `f`, becomes
    /// [`StoreError::ProjectionDecode`] naming the event.
    fn replay<T>(
        &self,
        positions: &[u32],
        entity: &str,
        mut f: impl FnMut(usize, &Slot, &ProjectionEvent<T>) -> Result<(), TypedDecodeError>,
    ) -> Result<(), StoreError>
    where
        T: EventSourced,
    {
        let at = |s: &Slot| (s.disk_pos, s.event_id);
        for (c, chunk) in positions.chunks(REPLAY_CHUNK).enumerate() {
            let base = c * REPLAY_CHUNK;
            // A short read lock per chunk: the writer is never held up by a long fold.
            let slots = self.shared.index.read().slots_at(chunk);
            self.catalog.read_events_bulk(&slots, at, |i, frame| {
                let Some(slot) = slots.get(i) else {
                    return Ok(());
                };
                let payload = <T::Input as ProjectionInput>::from_msgpack(frame.payload)
                    .map_err(|source| TypedDecodeError::DecodeFailure {
                        kind: slot.kind,
                        source,
                    })
                    .map_err(|e| self.decode_error::<T>(Some(slot), entity, e))?;
                let event = build_event(slot, &frame, payload);
                f(base + i, slot, &event).map_err(|e| self.decode_error::<T>(Some(slot), entity, e))
            })?;
        }
        Ok(())
    }

    fn decode_error<T>(
        &self,
        slot: Option<&Slot>,
        entity: &str,
        source: TypedDecodeError,
    ) -> StoreError {
        let meta = slot.map(|s| Meta {
            seq: s.seq,
            event_id: s.event_id,
            kind: s.kind,
            coord: s.coord,
        });
        let entity = match (entity, &meta) {
            ("", Some(m)) => self
                .shared
                .index
                .read()
                .coordinate(m.coord)
                .map(|c| c.entity().to_string())
                .unwrap_or_default(),
            (e, _) => e.to_string(),
        };
        let (event_id, kind) = meta
            .as_ref()
            .map_or((0, EventKind::DATA), |m| (m.event_id, m.kind));
        tracing::warn!(
            projection = std::any::type_name::<T>(),
            entity = %entity,
            event_id = %format_args!("{event_id:032x}"),
            seq = meta.as_ref().map_or(0, |m| m.seq),
            error = %source,
            "projection replay stopped at an event that does not decode"
        );
        StoreError::ProjectionDecode {
            entity,
            event_id,
            kind,
            projection: std::any::type_name::<T>(),
            source: Box::new(source),
        }
    }
}

/// A region's identity for snapshot keys: every field, escaped, so two different regions
/// never share one.
fn region_identity(region: &Region) -> String {
    format!("{region:?}")
}

fn encode_state<T: Serialize>(state: &T) -> Option<Vec<u8>> {
    match rmp_serde::to_vec_named(state) {
        Ok(b) => Some(b),
        Err(error) => {
            tracing::warn!(
                projection = std::any::type_name::<T>(),
                %error,
                "projection state does not serialize; no snapshot kept"
            );
            None
        }
    }
}

fn build_event<P>(slot: &Slot, frame: &EventFrameRef<'_>, payload: P) -> Event<P> {
    Event {
        header: EventHeader {
            event_id: slot.event_id,
            correlation_id: slot.correlation_id,
            causation_id: slot.causation_id,
            timestamp_us: frame.timestamp_us,
            position: EventPosition {
                wall_ms: (slot.timestamp_us.max(0) / 1000) as u64,
                clock: slot.clock,
            },
            payload_size: frame.payload.len() as u32,
            event_kind: slot.kind,
            flags: frame.flags,
            content_hash: *blake3::hash(frame.payload).as_bytes(),
        },
        payload,
        hash_chain: Some(slot.hash_chain),
    }
}
