//! The in-memory index readers query. Only visible events are in it, in publish order (which
//! is sequence order: units are contiguous in the log, and a fence refuses unfenced writes).
//!
//! The writer publishes a whole group under one write lock, so a reader holding the read lock
//! sees a prefix of the publish order, never half a batch or fence (INV-READ-ISOLATION); the
//! index only ever grows (INV-MONOTONE-VISIBLE).

use crate::append::DiskPos;
use crate::coordinate::Coordinate;
use crate::event::{EventKind, HashChain};
use crate::region::{KindFilter, Region};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A cheap hasher for keys that are already well mixed (UUIDv7 ids, small integers).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // splitmix finaliser: good avalanche for sequential or timestamp-prefixed keys.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut a = [0u8; 8];
            a[..chunk.len()].copy_from_slice(chunk);
            self.0 =
                self.0.rotate_left(29) ^ u64::from_le_bytes(a).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = self.0.rotate_left(29)
            ^ (i as u64)
            ^ ((i >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = self.0.rotate_left(29) ^ i;
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
}

/// HashMap keyed by well-mixed integers.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// What a query returns for each event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Event id.
    pub event_id: u128,
    /// Correlation id.
    pub correlation_id: u128,
    /// Causation id.
    pub causation_id: Option<u128>,
    /// Coordinate.
    pub coord: Coordinate,
    /// Kind.
    pub kind: EventKind,
    /// Hybrid logical clock, milliseconds ([`crate::event::EventPosition::wall_ms`]).
    pub wall_ms: u64,
    /// Entity clock.
    pub clock: u32,
    /// Hash chain link.
    pub hash_chain: HashChain,
    /// Where the frame is.
    pub disk_pos: DiskPos,
    /// Global sequence.
    pub global_sequence: u64,
}

impl IndexEntry {
    /// Whether the event belongs to another event's correlation (its correlation id is not
    /// its own id).
    pub fn is_correlated(&self) -> bool {
        self.correlation_id != self.event_id
    }

    /// Whether `event_id` is the event's direct cause.
    pub fn is_caused_by(&self, event_id: u128) -> bool {
        self.causation_id == Some(event_id)
    }

    /// Whether the event has no cause.
    pub fn is_root_cause(&self) -> bool {
        self.causation_id.is_none()
    }

    /// The event's point of the log, for the waits (`Store::wait_for_durable` and friends).
    pub fn point(&self) -> crate::append::HlcPoint {
        crate::append::HlcPoint {
            wall_ms: self.wall_ms,
            global_sequence: self.global_sequence,
        }
    }
}

/// Compact internal form of an index entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub event_id: u128,
    pub correlation_id: u128,
    pub causation_id: Option<u128>,
    pub hash_chain: HashChain,
    pub seq: u64,
    pub timestamp_us: i64,
    pub disk_pos: DiskPos,
    pub clock: u32,
    pub kind: EventKind,
    pub coord: u32,
}

/// The index.
#[derive(Debug, Default)]
pub struct Index {
    slots: Vec<Slot>,
    by_id: IdMap<u128, u32>,
    coords: Vec<Coordinate>,
    /// Per coordinate id: (entity list, scope list) indexes, so publishing hashes no string.
    coord_lists: Vec<(u32, u32)>,
    /// Entity name -> index into `entity_lists`.
    by_entity: HashMap<Box<str>, u32>,
    entity_lists: Vec<Vec<u32>>,
    /// Scope name -> index into `scope_lists`.
    by_scope: HashMap<Box<str>, u32>,
    scope_lists: Vec<Vec<u32>>,
    by_kind: IdMap<u16, Vec<u32>>,
    by_correlation: IdMap<u128, Vec<u32>>,
    effects: IdMap<u128, Vec<u32>>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves room for `additional` more events and `ids_additional` more id entries (recovery
    /// sizes the index from the log: generously for the slot vector, whose untouched tail is
    /// not resident, tightly for the id map, whose whole table is touched).
    pub fn reserve(&mut self, additional: usize, ids_additional: usize) {
        self.slots.reserve(additional);
        self.by_id.reserve(ids_additional);
    }

    /// Number of visible events.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The hybrid logical clock of the last visible event, milliseconds.
    pub(crate) fn last_wall_ms(&self) -> Option<u64> {
        self.slots
            .last()
            .map(|s| (s.timestamp_us.max(0) / 1000) as u64)
    }

    /// Whether no event is visible.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Copies coordinates the writer interned since the last call (ids are shared).
    pub(crate) fn sync_coords(&mut self, coords: &[Coordinate]) {
        let Some(new) = coords.get(self.coords.len()..) else {
            return;
        };
        for c in new {
            let e = match self.by_entity.get(c.entity()) {
                Some(&i) => i,
                None => {
                    let i = self.entity_lists.len() as u32;
                    self.entity_lists.push(Vec::new());
                    self.by_entity.insert(c.entity().into(), i);
                    i
                }
            };
            let s = match self.by_scope.get(c.scope()) {
                Some(&i) => i,
                None => {
                    let i = self.scope_lists.len() as u32;
                    self.scope_lists.push(Vec::new());
                    self.by_scope.insert(c.scope().into(), i);
                    i
                }
            };
            self.coords.push(c.clone());
            self.coord_lists.push((e, s));
        }
    }

    fn entity_list(&self, entity: &str) -> Option<&Vec<u32>> {
        self.by_entity
            .get(entity)
            .and_then(|&i| self.entity_lists.get(i as usize))
    }

    fn scope_list(&self, scope: &str) -> Option<&Vec<u32>> {
        self.by_scope
            .get(scope)
            .and_then(|&i| self.scope_lists.get(i as usize))
    }

    /// Makes `slot` visible. Slots must come in increasing sequence order, with their
    /// coordinates copied in first ([`Index::sync_coords`]): the writer and recovery publish
    /// that way, and anything else is a bug, so it stops the publishing thread.
    pub(crate) fn publish(&mut self, slot: Slot) {
        assert!(
            self.slots.last().is_none_or(|l| l.seq < slot.seq),
            "INV-READ-ISOLATION: publish order must be sequence order"
        );
        let pos = self.slots.len() as u32;
        let lists = self.coord_lists.get(slot.coord as usize).copied();
        assert!(
            lists.is_some(),
            "event {:032x} is published with coordinate {}, which the index does not know",
            slot.event_id,
            slot.coord
        );
        let Some((e, s)) = lists else {
            return;
        };
        if let Some(v) = self.entity_lists.get_mut(e as usize) {
            v.push(pos);
        }
        if let Some(v) = self.scope_lists.get_mut(s as usize) {
            v.push(pos);
        }
        self.by_kind
            .entry(slot.kind.as_raw())
            .or_default()
            .push(pos);
        self.by_id.insert(slot.event_id, pos);
        if slot.correlation_id != slot.event_id {
            self.by_correlation
                .entry(slot.correlation_id)
                .or_default()
                .push(pos);
        }
        if let Some(c) = slot.causation_id {
            self.effects.entry(c).or_default().push(pos);
        }
        self.slots.push(slot);
    }

    /// After a compaction: every event for which `relocate` answers a position keeps its
    /// place in the order at that position, the others leave the index (removed from the log).
    /// Sequences are unchanged (INV-STABLE-SEQ); the only way the index ever shrinks outside
    /// seeded bugs.
    pub(crate) fn compacted(&mut self, mut relocate: impl FnMut(&Slot) -> Option<DiskPos>) {
        let mut kept = Index::new();
        kept.sync_coords(&self.coords);
        kept.reserve(self.slots.len(), self.by_id.len());
        for s in &self.slots {
            if let Some(pos) = relocate(s) {
                let mut s = *s;
                s.disk_pos = pos;
                kept.publish(s);
            }
        }
        *self = kept;
    }

    /// Drops every event at or after `seq` (the seeded bug `LatchHidesUnsynced` only: the
    /// index never shrinks otherwise, INV-MONOTONE-VISIBLE).
    #[cfg(batpak_mutant)]
    pub(crate) fn retain_below(&mut self, seq: u64) {
        let mut kept = Index::new();
        kept.sync_coords(&self.coords);
        for s in self.slots.iter().filter(|s| s.seq < seq) {
            kept.publish(*s);
        }
        *self = kept;
    }

    fn entry(&self, pos: u32) -> Option<IndexEntry> {
        let s = self.slots.get(pos as usize)?;
        Some(IndexEntry {
            event_id: s.event_id,
            correlation_id: s.correlation_id,
            causation_id: s.causation_id,
            coord: self.coords.get(s.coord as usize)?.clone(),
            kind: s.kind,
            wall_ms: (s.timestamp_us.max(0) / 1000) as u64,
            clock: s.clock,
            hash_chain: s.hash_chain,
            disk_pos: s.disk_pos,
            global_sequence: s.seq,
        })
    }

    fn entries(&self, positions: &[u32]) -> Vec<IndexEntry> {
        positions.iter().filter_map(|&p| self.entry(p)).collect()
    }

    /// The visible event with this id.
    pub fn get(&self, event_id: u128) -> Option<IndexEntry> {
        self.by_id.get(&event_id).and_then(|&p| self.entry(p))
    }

    /// Whether an event with this id is visible.
    pub fn contains(&self, event_id: u128) -> bool {
        self.by_id.contains_key(&event_id)
    }

    /// The entity's visible events, oldest first.
    pub fn stream(&self, entity: &str) -> Vec<IndexEntry> {
        self.entity_list(entity)
            .map(|v| self.entries(v))
            .unwrap_or_default()
    }

    /// The scope's visible events, in order.
    pub fn by_scope(&self, scope: &str) -> Vec<IndexEntry> {
        self.scope_list(scope)
            .map(|v| self.entries(v))
            .unwrap_or_default()
    }

    /// Visible events of one kind, in order.
    pub fn by_fact(&self, kind: EventKind) -> Vec<IndexEntry> {
        self.by_kind
            .get(&kind.as_raw())
            .map(|v| self.entries(v))
            .unwrap_or_default()
    }

    /// Visible events selected by `region`, in order. Uses the narrowest list available.
    pub fn query(&self, region: &Region) -> Vec<IndexEntry> {
        let keep = |p: &&u32| {
            self.slots.get(**p as usize).is_some_and(|s| {
                self.coords
                    .get(s.coord as usize)
                    .is_some_and(|c| region.matches(c, s.kind, s.clock))
            })
        };
        let from_list = |v: &Vec<u32>| -> Vec<IndexEntry> {
            v.iter()
                .filter(keep)
                .filter_map(|&p| self.entry(p))
                .collect()
        };
        if let Some(scope) = &region.scope {
            return self.scope_list(scope).map(from_list).unwrap_or_default();
        }
        if let KindFilter::Exact(k) = region.fact {
            return self
                .by_kind
                .get(&k.as_raw())
                .map(from_list)
                .unwrap_or_default();
        }
        if let Some(prefix) = &region.entity_prefix {
            if let Some(v) = self.entity_list(prefix) {
                // Exact entity; children (prefix:...) need the full scan below.
                let has_children = self
                    .by_entity
                    .keys()
                    .any(|e| e.len() > prefix.len() && region.matches_entity(e));
                if !has_children {
                    return from_list(v);
                }
            }
        }
        (0..self.slots.len() as u32)
            .filter(|p| keep(&p))
            .filter_map(|p| self.entry(p))
            .collect()
    }

    /// The narrowest position list holding every event `region` can select (`None`: all).
    fn candidates(&self, region: &Region) -> Option<&[u32]> {
        const NONE: &[u32] = &[];
        if let Some(scope) = &region.scope {
            return Some(self.scope_list(scope).map_or(NONE, Vec::as_slice));
        }
        if let KindFilter::Exact(k) = region.fact {
            return Some(self.by_kind.get(&k.as_raw()).map_or(NONE, Vec::as_slice));
        }
        if let Some(prefix) = &region.entity_prefix {
            let v = self.entity_list(prefix);
            let has_children = self
                .by_entity
                .keys()
                .any(|e| e.len() > prefix.len() && region.matches_entity(e));
            if !has_children {
                return Some(v.map_or(NONE, Vec::as_slice));
            }
        }
        None
    }

    fn selects(&self, region: &Region, pos: u32) -> bool {
        self.slots.get(pos as usize).is_some_and(|s| {
            self.coords
                .get(s.coord as usize)
                .is_some_and(|c| region.matches(c, s.kind, s.clock))
        })
    }

    fn seq_at(&self, pos: u32) -> u64 {
        self.slots.get(pos as usize).map_or(u64::MAX, |s| s.seq)
    }

    /// Calls `f` with the positions of the events `region` may select with a sequence in
    /// `from..below`, in order, until it returns `false`. Finds the start by binary search
    /// in the narrowest list, so a walk costs O(log n) plus the positions it visits.
    fn walk(&self, region: &Region, from: u64, below: u64, mut f: impl FnMut(u32) -> bool) {
        match self.candidates(region) {
            Some(list) => {
                let start = list.partition_point(|&p| self.seq_at(p) < from);
                for &p in list.get(start..).unwrap_or(&[]) {
                    if self.seq_at(p) >= below || !f(p) {
                        return;
                    }
                }
            }
            None => {
                let start = self.slots.partition_point(|s| s.seq < from);
                for p in start..self.slots.len() {
                    if self.seq_at(p as u32) >= below || !f(p as u32) {
                        return;
                    }
                }
            }
        }
    }

    /// At most `max` events selected by `region` with a sequence in `from..below`, in
    /// sequence order.
    pub(crate) fn region_range(
        &self,
        region: &Region,
        from: u64,
        below: u64,
        max: usize,
    ) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        if max == 0 {
            return out;
        }
        self.walk(region, from, below, |p| {
            if self.selects(region, p) {
                if let Some(e) = self.entry(p) {
                    out.push(e);
                }
            }
            out.len() < max
        });
        out
    }

    /// How many events `region` selects with a sequence in `from..below`, counting at most
    /// `limit` (so a caller asking "more than n?" stops early).
    pub(crate) fn region_count(&self, region: &Region, from: u64, below: u64, limit: u64) -> u64 {
        let mut n = 0u64;
        self.walk(region, from, below, |p| {
            if self.selects(region, p) {
                n += 1;
            }
            n < limit
        });
        n
    }

    /// The ranges `[start, end)` of sequences in `from..below` that no visible event holds,
    /// oldest first, at most `max` of them. O(log n) when there is none, O((h + 1) log n)
    /// for h holes: a slot range whose count equals its sequence span has no hole.
    pub(crate) fn sequence_holes(&self, from: u64, below: u64, max: usize) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        if from >= below || max == 0 {
            return out;
        }
        let lo = self.slots.partition_point(|s| s.seq < from);
        let hi = self.slots.partition_point(|s| s.seq < below);
        // (from, below, lo, hi), explored low half first so the output stays ordered.
        let mut stack = vec![(from, below, lo, hi)];
        while let Some((f, b, l, h)) = stack.pop() {
            if f >= b || (h - l) as u64 == b - f {
                continue;
            }
            if l == h {
                match out.last_mut() {
                    Some((_, end)) if *end == f => *end = b,
                    _ => out.push((f, b)),
                }
                if out.len() >= max {
                    break;
                }
                continue;
            }
            let m = l + (h - l) / 2;
            let s = self.seq_at(m as u32);
            stack.push((s.saturating_add(1), b, m + 1, h));
            stack.push((f, s, l, m));
        }
        out.truncate(max);
        out
    }

    /// The sequence of the `back`-th last event `region` selects below `below` (1 = the
    /// last), if there are that many.
    pub(crate) fn region_nth_from_end(
        &self,
        region: &Region,
        below: u64,
        back: u64,
    ) -> Option<u64> {
        let mut seen = 0u64;
        let mut check = |p: u32| -> Option<u64> {
            if self.seq_at(p) < below && self.selects(region, p) {
                seen += 1;
                if seen == back {
                    return Some(self.seq_at(p));
                }
            }
            None
        };
        match self.candidates(region) {
            Some(list) => list.iter().rev().find_map(|&p| check(p)),
            None => (0..self.slots.len() as u32).rev().find_map(check),
        }
    }

    /// Visible events naming `event_id` as their cause, in order.
    pub fn effects(&self, event_id: u128) -> Vec<IndexEntry> {
        self.effects
            .get(&event_id)
            .map(|v| self.entries(v))
            .unwrap_or_default()
    }

    /// Visible events of one correlation, in order (the root included).
    pub fn correlated(&self, correlation_id: u128) -> Vec<IndexEntry> {
        let mut out: Vec<u32> = Vec::new();
        if let Some(&p) = self.by_id.get(&correlation_id) {
            if self
                .slots
                .get(p as usize)
                .is_some_and(|s| s.correlation_id == correlation_id)
            {
                out.push(p);
            }
        }
        if let Some(v) = self.by_correlation.get(&correlation_id) {
            out.extend_from_slice(v);
        }
        out.sort_unstable();
        self.entries(&out)
    }

    /// The entity's visible events before `event_id`, newest first, at most `limit`.
    pub fn walk_ancestors(&self, event_id: u128, limit: usize) -> Vec<IndexEntry> {
        let Some(&pos) = self.by_id.get(&event_id) else {
            return Vec::new();
        };
        let Some(slot) = self.slots.get(pos as usize) else {
            return Vec::new();
        };
        let Some(coord) = self.coords.get(slot.coord as usize) else {
            return Vec::new();
        };
        let Some(list) = self.entity_list(coord.entity()) else {
            return Vec::new();
        };
        let Ok(at) = list.binary_search(&pos) else {
            return Vec::new();
        };
        list.get(..at)
            .unwrap_or(&[])
            .iter()
            .rev()
            .take(limit)
            .filter_map(|&p| self.entry(p))
            .collect()
    }

    /// Causes of `event_id`, nearest first, following causation links (at most `limit`).
    /// Stops at a root, at a cause outside the store (an external root) or at `limit`.
    pub fn causes(&self, event_id: u128, limit: usize) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        let mut cur = self.get(event_id).and_then(|e| e.causation_id);
        while let Some(c) = cur {
            if out.len() >= limit {
                break;
            }
            let Some(e) = self.get(c) else { break };
            cur = e.causation_id;
            out.push(e);
        }
        out
    }

    /// Number of distinct entities with visible events.
    pub fn entity_count(&self) -> usize {
        self.entity_lists.iter().filter(|v| !v.is_empty()).count()
    }

    /// Number of distinct scopes with visible events.
    pub fn scope_count(&self) -> usize {
        self.scope_lists.iter().filter(|v| !v.is_empty()).count()
    }

    /// What a projection replays of `entity`: the positions of its visible events of `kinds`
    /// (every kind when empty) with a sequence below `below`, in order (read them with
    /// [`Index::slots_at`]; positions never move), plus the entity's generation (how many
    /// events of it are visible) and its last visible entity clock.
    pub(crate) fn entity_replay(
        &self,
        entity: &str,
        kinds: &[EventKind],
        below: u64,
    ) -> (Vec<u32>, u64, u32) {
        let Some(list) = self.entity_list(entity) else {
            return (Vec::new(), 0, 0);
        };
        let end = list.partition_point(|&p| self.seq_at(p) < below);
        let upto = list.get(..end).unwrap_or(&[]);
        let positions = if kinds.is_empty() {
            upto.to_vec()
        } else {
            upto.iter()
                .copied()
                .filter(|&p| {
                    self.slots
                        .get(p as usize)
                        .is_some_and(|s| kinds.contains(&s.kind))
                })
                .collect()
        };
        let clock = list
            .last()
            .and_then(|&p| self.slots.get(p as usize))
            .map_or(0, |s| s.clock);
        (positions, list.len() as u64, clock)
    }

    /// What a region projection replays: the positions of the visible events `region`
    /// selects, of `kinds` (every kind when empty), with a sequence below `below`, in order.
    pub(crate) fn region_replay(
        &self,
        region: &Region,
        kinds: &[EventKind],
        below: u64,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        self.walk(region, 0, below, |p| {
            if self.selects(region, p)
                && self
                    .slots
                    .get(p as usize)
                    .is_some_and(|s| kinds.is_empty() || kinds.contains(&s.kind))
            {
                out.push(p);
            }
            true
        });
        out
    }

    /// The slots at `positions` (from [`Index::entity_replay`] / [`Index::region_replay`]).
    pub(crate) fn slots_at(&self, positions: &[u32]) -> Vec<Slot> {
        positions
            .iter()
            .filter_map(|&p| self.slots.get(p as usize))
            .copied()
            .collect()
    }

    /// The slot at `position`.
    pub(crate) fn slot_at(&self, position: u32) -> Option<Slot> {
        self.slots.get(position as usize).copied()
    }

    /// The coordinate of interned id `id`.
    pub(crate) fn coordinate(&self, id: u32) -> Option<&Coordinate> {
        self.coords.get(id as usize)
    }

    /// The first visible event's sequence and id: it stays the first for the life of the
    /// store's files, so it names the store (projection cache keys).
    pub(crate) fn first_event(&self) -> Option<(u64, u128)> {
        self.slots.first().map(|s| (s.seq, s.event_id))
    }
}
