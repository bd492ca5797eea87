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

/// What the index keeps per visible event: a fixed-width record of 80 bytes, no heap
/// allocation. The rest of a [`Slot`] is rebuilt on demand: the previous hash of the entity
/// chain is the event hash of the entity's previous visible event (`prev`) in the common
/// case; the sequence, timestamp and segment id are offsets from the first record of the
/// record's block of [`BLOCK`] ([`Base`]); correlation and causation ids, a chain that skips
/// a hidden event, offsets that do not fit and disk positions beyond 32 bits live in side
/// tables that only events which need them use (flags).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Rec {
    event_id: u128,
    event_hash: [u8; 32],
    /// Sequence minus the block's first (with [`Rec::FAR`]: in `Index::far`).
    seq_off: u32,
    /// Timestamp (µs) minus the block's first (with [`Rec::FAR`]: in `Index::far`).
    ts_off: u32,
    offset: u32,
    length: u32,
    clock: u32,
    coord: u32,
    /// Position of the entity's previous visible event (with [`Rec::PREV_AT`]).
    prev: u32,
    kind: u16,
    flags: u8,
    /// Segment id minus the block's first (with [`Rec::WIDE`]: the position is in
    /// `Index::wide`).
    seg_off: u8,
}

/// Records per [`Base`].
const BLOCK: usize = 128;

/// What the records of one block of [`BLOCK`] positions are offsets from: the first
/// record's sequence, timestamp and segment id. Sequences and timestamps grow along the
/// publish order and a block of events seldom spans more than a few segments, so the
/// offsets nearly always fit (a block written over more than 71 minutes is the exception).
#[derive(Debug, Clone, Copy)]
struct Base {
    seq: u64,
    timestamp_us: i64,
    segment_id: u64,
}

impl Rec {
    /// `prev_hash` is the event hash of the record at `prev`.
    const PREV_AT: u8 = 1;
    /// `prev_hash` is in `Index::odd_prev` (neither zeros nor the previous visible event's).
    const PREV_ODD: u8 = 2;
    /// The correlation id is in `Index::correlations` (else it is the event id).
    const CORRELATED: u8 = 4;
    /// The causation id is in `Index::causes` (else there is none).
    const CAUSED: u8 = 8;
    /// The disk position is in `Index::wide` (a segment id or offset above 32 bits, or a
    /// segment id 256 or more above the block's first).
    const WIDE: u8 = 16;
    /// The sequence and timestamp are in `Index::far` (an offset from the block's base
    /// does not fit 32 bits).
    const FAR: u8 = 32;

    fn event_id(&self) -> u128 {
        self.event_id
    }

    fn coord(&self) -> u32 {
        self.coord
    }

    fn kind(&self) -> EventKind {
        EventKind::from_raw(self.kind)
    }

    fn clock(&self) -> u32 {
        self.clock
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// One [`IdTable`] entry: a position and 8 bits of its id's hash (5 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed)]
struct IdEntry {
    pos: u32,
    tag: u8,
}

/// Event ids by position, as [`IdTable`] reads them to tell apart ids with the same hash bits:
/// the index's records, or (an id table built apart, [`IdTableBuilder`]) a list of ids.
trait IdAt {
    fn id_at(&self, pos: u32) -> Option<u128>;
}

impl IdAt for [Rec] {
    fn id_at(&self, pos: u32) -> Option<u128> {
        self.get(pos as usize).map(Rec::event_id)
    }
}

impl IdAt for [u128] {
    fn id_at(&self, pos: u32) -> Option<u128> {
        self.get(pos as usize).copied()
    }
}

/// Event id -> position: an open-addressing table of 5-byte entries (8 bits of the id's hash
/// beside the position), linear probing, at most 4/5 full. About 6.3 to 9.4 bytes per event,
/// against 40 to 70 for a `HashMap<u128, u32>`, and a probe reads a record only when the
/// hash bits match (one probe in 256 that does not hold the id).
#[derive(Debug, Default)]
struct IdTable {
    entries: Vec<IdEntry>,
    len: usize,
}

impl IdTable {
    /// No position is `u32::MAX` (publish refuses that many events).
    const EMPTY: IdEntry = IdEntry {
        pos: u32::MAX,
        tag: 0,
    };

    fn tag(h: u64) -> u8 {
        // Bits the home (the hash's top bits, multiply-shift) hardly depends on.
        (h >> 24) as u8
    }

    fn entry(h: u64, pos: u32) -> IdEntry {
        IdEntry {
            pos,
            tag: Self::tag(h),
        }
    }

    fn hash(id: u128) -> u64 {
        let mut h = IdHasher::default();
        h.write_u128(id);
        h.finish()
    }

    fn home(&self, h: u64) -> usize {
        // Multiply-shift range reduction: any table size, not just powers of two.
        ((u128::from(h) * self.entries.len() as u128) >> 64) as usize
    }

    /// Makes room for `n` ids in all without growing again.
    fn reserve(&mut self, n: usize, recs: &(impl IdAt + ?Sized)) {
        let want = n.saturating_add(n / 4).saturating_add(16);
        if want > self.entries.len() {
            self.rebuild(want, recs);
        }
    }

    fn rebuild(&mut self, size: usize, recs: &(impl IdAt + ?Sized)) {
        let old = std::mem::replace(&mut self.entries, vec![Self::EMPTY; size]);
        self.len = 0;
        for e in old.into_iter().filter(|&e| e != Self::EMPTY) {
            let pos = e.pos;
            if let Some(id) = recs.id_at(pos) {
                self.place(Self::hash(id), pos);
            }
        }
    }

    /// Puts `pos` in the first free entry from `h`'s home (no duplicate check).
    fn place(&mut self, h: u64, pos: u32) {
        let n = self.entries.len();
        let mut i = self.home(h);
        let entry = Self::entry(h, pos);
        for _ in 0..n {
            match self.entries.get_mut(i) {
                Some(e) if *e == Self::EMPTY => {
                    *e = entry;
                    self.len += 1;
                    return;
                }
                _ => i = if i + 1 == n { 0 } else { i + 1 },
            }
        }
    }

    /// The entry index holding `id`, if any.
    fn find(&self, id: u128, recs: &(impl IdAt + ?Sized)) -> Option<usize> {
        let n = self.entries.len();
        if n == 0 {
            return None;
        }
        let h = Self::hash(id);
        let tag = Self::tag(h);
        let mut i = self.home(h);
        for _ in 0..n {
            let e = *self.entries.get(i)?;
            if e == Self::EMPTY {
                return None;
            }
            if e.tag == tag && recs.id_at(e.pos) == Some(id) {
                return Some(i);
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        None
    }

    fn get(&self, id: u128, recs: &(impl IdAt + ?Sized)) -> Option<u32> {
        self.find(id, recs)
            .and_then(|i| self.entries.get(i))
            .map(|&e| e.pos)
    }

    /// Maps `id` (the id of `recs[pos]`) to `pos`, replacing an earlier position of the same
    /// id (the newest wins, as with a map).
    fn insert(&mut self, id: u128, pos: u32, recs: &(impl IdAt + ?Sized)) {
        if let Some(i) = self.find(id, recs) {
            let h = Self::hash(id);
            if let Some(e) = self.entries.get_mut(i) {
                *e = Self::entry(h, pos);
            }
            return;
        }
        if (self.len + 1) * 5 > self.entries.len() * 4 {
            let size = (self.entries.len() + self.entries.len() / 2).max(64);
            self.rebuild(size, recs);
        }
        self.place(Self::hash(id), pos);
    }

    fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<IdEntry>()
    }
}

/// An id table built apart from its index, from the published events' ids in position order
/// (recovery's helper thread builds it while the opening thread replays the log; see
/// [`Index::defer_ids`]), then installed with [`Index::install_ids`].
#[derive(Debug, Default)]
pub(crate) struct IdTableBuilder {
    table: IdTable,
    ids: Vec<u128>,
}

impl IdTableBuilder {
    /// A builder with room for `n` ids.
    pub(crate) fn with_room(n: usize) -> Self {
        let mut b = IdTableBuilder::default();
        b.ids.reserve(n);
        b.table.reserve(n, &b.ids[..]);
        b
    }

    /// Maps each of `ids` to the next position (the newest of equal ids wins, as in the index).
    pub(crate) fn extend(&mut self, ids: &[u128]) {
        for &id in ids {
            let Ok(pos) = u32::try_from(self.ids.len()) else {
                return;
            };
            self.ids.push(id);
            self.table.insert(id, pos, &self.ids[..]);
        }
    }
}

/// The index.
#[derive(Debug, Default)]
pub struct Index {
    slots: Vec<Rec>,
    /// One per [`BLOCK`] records.
    bases: Vec<Base>,
    by_id: IdTable,
    /// While set, published ids go here (in position order) instead of into `by_id`, for an
    /// id table built on another thread ([`Index::defer_ids`]).
    deferred_ids: Option<Vec<u128>>,
    /// Sequences and timestamps whose offsets from their block's base do not fit, by
    /// position.
    far: IdMap<u32, (u64, i64)>,
    /// Correlation ids of the events that have one other than their own id, by position.
    correlations: IdMap<u32, u128>,
    /// Causation ids, by position.
    causes: IdMap<u32, u128>,
    /// Previous hashes that are neither zeros nor the entity's previous visible event's hash
    /// (an entity whose last written event was hidden: a cancelled fence), by position.
    odd_prev: IdMap<u32, [u8; 32]>,
    /// Disk positions that do not fit 32-bit fields, by position.
    wide: IdMap<u32, DiskPos>,
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
        self.bases.reserve(additional / BLOCK + 1);
        self.by_id.reserve(
            self.slots.len().saturating_add(ids_additional),
            &self.slots[..],
        );
    }

    /// From now on, until [`Index::install_ids`], publishing keeps the events' ids in a list
    /// ([`Index::take_deferred_ids`]) for an [`IdTableBuilder`] instead of the id table, and
    /// lookups by id find nothing: recovery's opening thread replays the log while a helper
    /// thread builds the table. Only on an empty index (else nothing changes).
    pub(crate) fn defer_ids(&mut self) {
        if self.slots.is_empty() {
            self.deferred_ids = Some(Vec::new());
        }
    }

    /// The ids published since the last call, in position order, once there are at least
    /// `at_least` of them (`None` before, and when not deferring).
    pub(crate) fn take_deferred_ids(&mut self, at_least: usize) -> Option<Vec<u128>> {
        self.deferred_ids
            .as_mut()
            .filter(|ids| !ids.is_empty() && ids.len() >= at_least)
            .map(std::mem::take)
    }

    /// Ends [`Index::defer_ids`]: installs `built` if it holds the id of every published
    /// event, else (no table: its thread failed; or one of another length) builds the table
    /// here from the records. `checked: false` is the seeded bug `RecoveryIndexLosesLastIds`:
    /// any table is installed.
    pub(crate) fn install_ids(&mut self, built: Option<IdTableBuilder>, checked: bool) {
        let Some(rest) = self.deferred_ids.take() else {
            return;
        };
        match built {
            Some(b) if !checked || (rest.is_empty() && b.ids.len() == self.slots.len()) => {
                self.by_id = b.table
            }
            _ => {
                self.by_id = IdTable::default();
                self.by_id.reserve(self.slots.len(), &self.slots[..]);
                for (pos, r) in (0u32..).zip(&self.slots) {
                    self.by_id.insert(r.event_id(), pos, &self.slots[..]);
                }
            }
        }
    }

    /// Writes the room of the next `n` records (at most the reserved room) once and forgets
    /// it, so its memory is mapped now, on the calling thread, instead of a page at a time as
    /// records are published (recovery maps it on a helper thread while it loads the
    /// checkpoint).
    pub(crate) fn map_room(&mut self, n: usize) {
        let len = self.slots.len();
        let n = n.min(self.slots.capacity() - len);
        let zero = Rec {
            event_id: 0,
            event_hash: [0; 32],
            seq_off: 0,
            ts_off: 0,
            offset: 0,
            length: 0,
            clock: 0,
            coord: 0,
            prev: 0,
            kind: 0,
            flags: 0,
            seg_off: 0,
        };
        self.slots.resize(len + n, zero);
        self.slots.truncate(len);
    }

    /// Bytes the index holds for its events (records, id table, position lists and side
    /// tables; the coordinates' strings aside).
    pub fn heap_bytes(&self) -> usize {
        fn lists<'a>(v: impl Iterator<Item = &'a Vec<u32>>) -> usize {
            v.map(|l| l.capacity() * 4 + 24).sum()
        }
        fn map<K, V>(m: &IdMap<K, V>) -> usize {
            m.capacity() * (std::mem::size_of::<(K, V)>() + 1)
        }
        self.slots.len() * std::mem::size_of::<Rec>()
            + self.bases.capacity() * std::mem::size_of::<Base>()
            + self.by_id.bytes()
            + map(&self.far)
            + lists(self.entity_lists.iter())
            + lists(self.scope_lists.iter())
            + lists(self.by_kind.values())
            + lists(self.by_correlation.values())
            + lists(self.effects.values())
            + map(&self.correlations)
            + map(&self.causes)
            + map(&self.odd_prev)
            + map(&self.wide)
            + map(&self.by_correlation)
            + map(&self.effects)
    }

    /// Gives back the position lists' growth slack (recovery calls it
    /// once the log is replayed: lists grown by doubling hold up to twice what they need).
    pub(crate) fn shrink(&mut self) {
        self.entity_lists.iter_mut().for_each(Vec::shrink_to_fit);
        self.scope_lists.iter_mut().for_each(Vec::shrink_to_fit);
        self.by_kind.values_mut().for_each(Vec::shrink_to_fit);
    }

    /// Number of visible events.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The hybrid logical clock of the last visible event, milliseconds.
    pub(crate) fn last_wall_ms(&self) -> Option<u64> {
        let last = self.slots.len().checked_sub(1)? as u32;
        self.seq_ts(last).map(|(_, t)| (t.max(0) / 1000) as u64)
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
            self.slots
                .len()
                .checked_sub(1)
                .is_none_or(|l| self.seq_at(l as u32) < slot.seq),
            "INV-READ-ISOLATION: publish order must be sequence order"
        );
        let pos = u32::try_from(self.slots.len())
            .ok()
            .filter(|&p| p != u32::MAX);
        assert!(
            pos.is_some(),
            "the index holds u32::MAX - 1 events, its most"
        );
        let Some(pos) = pos else {
            return;
        };
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
        let mut flags = 0u8;
        let mut prev = u32::MAX;
        let before = self
            .entity_lists
            .get(e as usize)
            .and_then(|v| v.last().copied());
        match before.and_then(|p| self.slots.get(p as usize).map(|r| (p, r.event_hash))) {
            Some((p, h)) if h == slot.hash_chain.prev_hash => {
                flags |= Rec::PREV_AT;
                prev = p;
            }
            None if slot.hash_chain.prev_hash == [0; 32] => {}
            _ => {
                flags |= Rec::PREV_ODD;
                self.odd_prev.insert(pos, slot.hash_chain.prev_hash);
            }
        }
        if slot.correlation_id != slot.event_id {
            flags |= Rec::CORRELATED;
            self.correlations.insert(pos, slot.correlation_id);
        }
        if let Some(c) = slot.causation_id {
            flags |= Rec::CAUSED;
            self.causes.insert(pos, c);
        }
        if (pos as usize).is_multiple_of(BLOCK) {
            self.bases.push(Base {
                seq: slot.seq,
                timestamp_us: slot.timestamp_us,
                segment_id: slot.disk_pos.segment_id,
            });
        }
        let base = self.bases.last().copied().unwrap_or(Base {
            seq: slot.seq,
            timestamp_us: slot.timestamp_us,
            segment_id: slot.disk_pos.segment_id,
        });
        let d = slot.disk_pos;
        let seg_off = d
            .segment_id
            .checked_sub(base.segment_id)
            .and_then(|o| u8::try_from(o).ok());
        let (seg_off, offset) = match (seg_off, u32::try_from(d.offset)) {
            (Some(sg), Ok(o)) => (sg, o),
            _ => {
                flags |= Rec::WIDE;
                self.wide.insert(pos, d);
                (0, 0)
            }
        };
        let seq_off = slot
            .seq
            .checked_sub(base.seq)
            .and_then(|o| u32::try_from(o).ok());
        let ts_off = slot
            .timestamp_us
            .checked_sub(base.timestamp_us)
            .and_then(|o| u32::try_from(o).ok());
        let (seq_off, ts_off) = match (seq_off, ts_off) {
            (Some(s), Some(t)) => (s, t),
            _ => {
                flags |= Rec::FAR;
                self.far.insert(pos, (slot.seq, slot.timestamp_us));
                (0, 0)
            }
        };
        self.slots.push(Rec {
            event_id: slot.event_id,
            event_hash: slot.hash_chain.event_hash,
            seq_off,
            ts_off,
            offset,
            length: d.length,
            clock: slot.clock,
            coord: slot.coord,
            prev,
            kind: slot.kind.as_raw(),
            flags,
            seg_off,
        });
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
        match &mut self.deferred_ids {
            Some(ids) => ids.push(slot.event_id),
            None => self.by_id.insert(slot.event_id, pos, &self.slots[..]),
        }
        if slot.correlation_id != slot.event_id {
            self.by_correlation
                .entry(slot.correlation_id)
                .or_default()
                .push(pos);
        }
        if let Some(c) = slot.causation_id {
            self.effects.entry(c).or_default().push(pos);
        }
    }

    /// The sequence and timestamp (µs) of the record at `pos`.
    fn seq_ts(&self, pos: u32) -> Option<(u64, i64)> {
        let r = self.slots.get(pos as usize)?;
        if r.has(Rec::FAR) {
            return self.far.get(&pos).copied();
        }
        let b = self.bases.get(pos as usize / BLOCK)?;
        Some((
            b.seq.wrapping_add(u64::from(r.seq_off)),
            b.timestamp_us.wrapping_add(i64::from(r.ts_off)),
        ))
    }

    /// The first position whose sequence is `seq` or above (positions are in sequence order).
    fn position_of_seq(&self, seq: u64) -> usize {
        let (mut lo, mut hi) = (0usize, self.slots.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.seq_at(mid as u32) < seq {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The full slot at `pos`, rebuilt from its record and the side tables.
    fn slot(&self, pos: u32) -> Option<Slot> {
        let r = self.slots.get(pos as usize)?;
        let prev_hash = if r.has(Rec::PREV_AT) {
            self.slots.get(r.prev as usize)?.event_hash
        } else if r.has(Rec::PREV_ODD) {
            *self.odd_prev.get(&pos)?
        } else {
            [0; 32]
        };
        let event_id = r.event_id();
        let correlation_id = if r.has(Rec::CORRELATED) {
            *self.correlations.get(&pos)?
        } else {
            event_id
        };
        let causation_id = if r.has(Rec::CAUSED) {
            Some(*self.causes.get(&pos)?)
        } else {
            None
        };
        let base = self.bases.get(pos as usize / BLOCK)?;
        let disk_pos = if r.has(Rec::WIDE) {
            *self.wide.get(&pos)?
        } else {
            DiskPos {
                segment_id: base.segment_id.wrapping_add(u64::from(r.seg_off)),
                offset: u64::from(r.offset),
                length: r.length,
            }
        };
        let (seq, timestamp_us) = if r.has(Rec::FAR) {
            *self.far.get(&pos)?
        } else {
            (
                base.seq.wrapping_add(u64::from(r.seq_off)),
                base.timestamp_us.wrapping_add(i64::from(r.ts_off)),
            )
        };
        Some(Slot {
            event_id,
            correlation_id,
            causation_id,
            hash_chain: HashChain {
                prev_hash,
                event_hash: r.event_hash,
            },
            seq,
            timestamp_us,
            disk_pos,
            clock: r.clock(),
            kind: r.kind(),
            coord: r.coord(),
        })
    }

    /// After a compaction: every event for which `relocate` answers a position keeps its
    /// place in the order at that position, the others leave the index (removed from the log).
    /// Sequences are unchanged (INV-STABLE-SEQ); the only way the index ever shrinks outside
    /// seeded bugs.
    pub(crate) fn compacted(&mut self, mut relocate: impl FnMut(&Slot) -> Option<DiskPos>) {
        let mut kept = Index::new();
        kept.sync_coords(&self.coords);
        kept.reserve(self.slots.len(), self.slots.len());
        for p in 0..self.slots.len() as u32 {
            if let Some(mut s) = self.slot(p) {
                if let Some(pos) = relocate(&s) {
                    s.disk_pos = pos;
                    kept.publish(s);
                }
            }
        }
        kept.shrink();
        *self = kept;
    }

    /// Drops every event at or after `seq` (the seeded bug `LatchHidesUnsynced` only: the
    /// index never shrinks otherwise, INV-MONOTONE-VISIBLE).
    #[cfg(batpak_mutant)]
    pub(crate) fn retain_below(&mut self, seq: u64) {
        let mut kept = Index::new();
        kept.sync_coords(&self.coords);
        for p in 0..self.slots.len() as u32 {
            match self.slot(p) {
                Some(s) if s.seq < seq => kept.publish(s),
                _ => {}
            }
        }
        *self = kept;
    }

    fn entry(&self, pos: u32) -> Option<IndexEntry> {
        let s = self.slot(pos)?;
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
        // Sized up front: every listed position is visible (`filter_map` only guards the
        // lookups), and the collect alone would grow the vector by doubling and copying.
        let mut out = Vec::with_capacity(positions.len());
        out.extend(positions.iter().filter_map(|&p| self.entry(p)));
        out
    }

    /// The visible event with this id.
    pub fn get(&self, event_id: u128) -> Option<IndexEntry> {
        self.by_id
            .get(event_id, &self.slots[..])
            .and_then(|p| self.entry(p))
    }

    /// Whether an event with this id is visible.
    pub fn contains(&self, event_id: u128) -> bool {
        self.by_id.get(event_id, &self.slots[..]).is_some()
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
                    .get(s.coord() as usize)
                    .is_some_and(|c| region.matches(c, s.kind(), s.clock()))
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
                .get(s.coord() as usize)
                .is_some_and(|c| region.matches(c, s.kind(), s.clock()))
        })
    }

    fn seq_at(&self, pos: u32) -> u64 {
        self.seq_ts(pos).map_or(u64::MAX, |(s, _)| s)
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
                let start = self.position_of_seq(from);
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
        let lo = self.position_of_seq(from);
        let hi = self.position_of_seq(below);
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
        if let Some(p) = self.by_id.get(correlation_id, &self.slots[..]) {
            if self
                .slot(p)
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
        let Some(pos) = self.by_id.get(event_id, &self.slots[..]) else {
            return Vec::new();
        };
        let Some(slot) = self.slots.get(pos as usize) else {
            return Vec::new();
        };
        let Some(coord) = self.coords.get(slot.coord() as usize) else {
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
                        .is_some_and(|s| kinds.contains(&s.kind()))
                })
                .collect()
        };
        let clock = list
            .last()
            .and_then(|&p| self.slots.get(p as usize))
            .map_or(0, Rec::clock);
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
                    .is_some_and(|s| kinds.is_empty() || kinds.contains(&s.kind()))
            {
                out.push(p);
            }
            true
        });
        out
    }

    /// The slots at `positions` (from [`Index::entity_replay`] / [`Index::region_replay`]).
    pub(crate) fn slots_at(&self, positions: &[u32]) -> Vec<Slot> {
        positions.iter().filter_map(|&p| self.slot(p)).collect()
    }

    /// The slot at `position`.
    pub(crate) fn slot_at(&self, position: u32) -> Option<Slot> {
        self.slot(position)
    }

    /// The coordinate of interned id `id`.
    pub(crate) fn coordinate(&self, id: u32) -> Option<&Coordinate> {
        self.coords.get(id as usize)
    }

    /// The first visible event's sequence and id: it stays the first for the life of the
    /// store's files, so it names the store (projection cache keys).
    pub(crate) fn first_event(&self) -> Option<(u64, u128)> {
        let first = self.slots.first()?;
        Some((self.seq_at(0), first.event_id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coords() -> Vec<Coordinate> {
        vec![
            Coordinate::new("a:1", "s").unwrap(),
            Coordinate::new("a:2", "s").unwrap(),
            Coordinate::new("a:1", "t").unwrap(),
        ]
    }

    /// Slot `seq` of coordinate `coord`, with hashes derived from `seq`.
    fn slot(seq: u64, coord: u32, prev_hash: [u8; 32]) -> Slot {
        Slot {
            event_id: 0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(seq),
            correlation_id: 0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(seq),
            causation_id: None,
            hash_chain: HashChain {
                prev_hash,
                event_hash: [(seq as u8).wrapping_add(1); 32],
            },
            seq,
            timestamp_us: 1_000 * seq as i64,
            disk_pos: DiskPos {
                segment_id: seq / 4,
                offset: 100 * seq,
                length: 90,
            },
            clock: seq as u32,
            kind: EventKind::custom(1, (seq % 3) as u16),
            coord,
        }
    }

    fn same(a: &Slot, b: &Slot) {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn an_index_of_plain_events_holds_under_100_bytes_per_event() {
        // 100 entities in one scope, one kind, no correlation or causation ids: what the peer
        // harness writes. After recovery's shrink the index holds records, the id table and
        // three position lists.
        let coords: Vec<Coordinate> = (0..100)
            .map(|i| Coordinate::new(format!("e:{i}"), "s").unwrap())
            .collect();
        let mut index = Index::new();
        let n = 200_000u64;
        index.reserve(n as usize, n as usize);
        index.sync_coords(&coords);
        let mut heads = vec![[0u8; 32]; coords.len()];
        for seq in 0..n {
            let c = (seq % 100) as usize;
            let mut s = slot(seq, c as u32, heads[c]);
            s.hash_chain.event_hash = blake3::hash(&seq.to_le_bytes()).into();
            heads[c] = s.hash_chain.event_hash;
            index.publish(s);
        }
        index.shrink();
        assert!(index.odd_prev.is_empty() && index.correlations.is_empty());
        let per_event = index.heap_bytes() as f64 / n as f64;
        println!("index bytes per event: {per_event:.1}");
        assert!(per_event < 100.0, "{per_event} bytes per event");
        assert!(index.far.is_empty() && index.wide.is_empty());
    }

    #[test]
    fn a_record_is_80_bytes_and_an_id_entry_5() {
        assert_eq!(std::mem::size_of::<Rec>(), 80);
        assert_eq!(std::mem::size_of::<IdEntry>(), 5);
    }

    #[test]
    fn offsets_that_do_not_fit_their_block_base_come_back_whole_from_the_side_tables() {
        // Three blocks and a bit: sequence gaps and timestamp jumps past 32 bits, a timestamp
        // that goes back, segment ids 255 and 256 past the block's first, a segment below it.
        let mut index = Index::new();
        index.sync_coords(&coords());
        let mut published = Vec::new();
        let mut seq = 10u64;
        for i in 0..(3 * BLOCK as u64 + 7) {
            seq += match i % 50 {
                7 => 1 << 33,
                8 => 3,
                _ => 1,
            };
            let mut s = slot(seq, (i % 3) as u32, [0; 32]);
            s.timestamp_us = match i % 40 {
                5 => 1 << 40,
                6 => -17,
                _ => 1_000 * i as i64,
            };
            s.disk_pos.segment_id = match i % 30 {
                3 => 255 + (i / BLOCK as u64) * 1000,
                4 => 256 + (i / BLOCK as u64) * 1000,
                _ => (i / BLOCK as u64) * 1000 + (i % 2),
            };
            if i % BLOCK as u64 == 1 {
                s.disk_pos.segment_id = 0;
            }
            index.publish(s);
            published.push(s);
        }
        assert!(!index.far.is_empty() && !index.wide.is_empty());
        for (p, s) in published.iter().enumerate() {
            let got = index.slot_at(p as u32).unwrap();
            assert_eq!(got.seq, s.seq, "seq at {p}");
            assert_eq!(got.timestamp_us, s.timestamp_us, "timestamp at {p}");
            assert_eq!(got.disk_pos, s.disk_pos, "disk position at {p}");
            assert_eq!(index.get(s.event_id).unwrap().global_sequence, s.seq);
        }
        // Sequence searches see the real sequences.
        let all = Region::all();
        for s in published.iter().step_by(13) {
            let got = index.region_range(&all, s.seq, u64::MAX, 1);
            assert_eq!(got.first().map(|e| e.global_sequence), Some(s.seq));
        }
        let last = published.last().unwrap();
        assert_eq!(
            index.last_wall_ms(),
            Some((last.timestamp_us.max(0) / 1000) as u64)
        );
        assert_eq!(index.first_event().map(|f| f.0), Some(published[0].seq));
    }

    #[test]
    fn every_slot_comes_back_whole_from_its_record_and_the_side_tables() {
        let mut index = Index::new();
        index.sync_coords(&coords());
        let mut published = Vec::new();
        // a:1 in s: chain from zeros; a:2 continues from a:1's hash (not its own previous
        // event: the side table); a:1 in t continues a:1's chain across scopes; a skipped
        // (hidden) event leaves an odd previous hash; ids, causes and wide positions.
        let mut s0 = slot(0, 0, [0; 32]);
        s0.causation_id = Some(77);
        let mut s1 = slot(1, 1, [9; 32]);
        s1.correlation_id = 5;
        let s2 = slot(2, 2, [1; 32]);
        let mut s4 = slot(4, 0, [4; 32]);
        s4.disk_pos = DiskPos {
            segment_id: 1 << 33,
            offset: 3,
            length: 7,
        };
        let mut s5 = slot(5, 1, [2; 32]);
        s5.disk_pos.offset = 1 << 40;
        let s6 = slot(6, 0, [5; 32]);
        for s in [s0, s1, s2, s4, s5, s6] {
            index.publish(s);
            published.push(s);
        }
        for (p, s) in published.iter().enumerate() {
            same(&index.slot_at(p as u32).unwrap(), s);
            let e = index.get(s.event_id).unwrap();
            assert_eq!(e.hash_chain, s.hash_chain);
            assert_eq!(e.correlation_id, s.correlation_id);
            assert_eq!(e.causation_id, s.causation_id);
            assert_eq!(e.disk_pos, s.disk_pos);
        }
        assert_eq!(
            index.odd_prev.len(),
            2,
            "a:2's first and the chain over seq 3"
        );
        assert_eq!(index.wide.len(), 2);
        assert_eq!(index.effects(77).len(), 1);
        assert_eq!(index.correlated(5).len(), 1);
    }

    #[test]
    fn an_id_table_built_apart_or_rebuilt_after_deferred_ids_finds_what_the_index_would() {
        // Ids repeat (every 7th is an earlier one's): the newest position wins in every way.
        let id = |seq: u64| u128::from(if seq % 7 == 6 { seq / 2 } else { seq }) << 70 | 3;
        let n = 3_000u64;
        let mut direct = Index::new();
        direct.sync_coords(&coords());
        // 0: built by a builder from chunks; 1: no table (its thread failed); 2: a short one.
        for way in 0..3 {
            let mut index = Index::new();
            index.sync_coords(&coords());
            index.defer_ids();
            let mut built = IdTableBuilder::with_room(16);
            for seq in 0..n {
                let mut s = slot(seq, (seq % 2) as u32, [0; 32]);
                s.event_id = id(seq);
                index.publish(s);
                if way == 0 {
                    direct.publish(s);
                }
                if let Some(chunk) = index.take_deferred_ids(100) {
                    built.extend(&chunk);
                }
                // Deferred: nothing is found by id until the table is installed.
                assert!(!index.contains(id(0)));
            }
            if way != 2 {
                built.extend(&index.take_deferred_ids(0).unwrap_or_default());
            }
            index.install_ids((way != 1).then_some(built), true);
            for seq in 0..n {
                let want = direct.get(id(seq)).map(|e| e.global_sequence);
                assert!(want.is_some());
                assert_eq!(
                    index.get(id(seq)).map(|e| e.global_sequence),
                    want,
                    "way {way}"
                );
            }
            assert!(!index.contains(1));
            assert_eq!(index.by_id.len, direct.by_id.len);
        }
    }

    #[test]
    fn the_id_table_grows_finds_every_id_and_the_newest_position_of_a_repeated_id_wins() {
        let mut index = Index::new();
        index.sync_coords(&coords());
        let n = 5_000u64;
        for seq in 0..n {
            let mut s = slot(seq, (seq % 2) as u32, [0; 32]);
            // Small, sequential and timestamp-shaped ids alike.
            s.event_id = if seq % 2 == 0 {
                u128::from(seq)
            } else {
                (u128::from(seq) << 80) | 1
            };
            index.publish(s);
        }
        for seq in 0..n {
            let id = if seq % 2 == 0 {
                u128::from(seq)
            } else {
                (u128::from(seq) << 80) | 1
            };
            assert_eq!(index.get(id).map(|e| e.global_sequence), Some(seq));
        }
        assert!(!index.contains(u128::from(n)));
        assert!(index.by_id.len <= index.by_id.entries.len() * 4 / 5);
        let mut again = slot(n, 0, [0; 32]);
        again.event_id = 2;
        index.publish(again);
        assert_eq!(index.get(2).map(|e| e.global_sequence), Some(n));
        assert_eq!(index.by_id.len, n as usize);
        assert!(index.heap_bytes() >= index.len() * 80);
    }
}
