//! Entity chains (INV-CHAIN): each entity's clock and the hash of its last written event, and
//! the interned coordinates (the index copies new ones at publish; ids are shared).

use crate::codec::EventRecord;
use crate::coordinate::Coordinate;
use std::collections::HashMap;

/// The entity chain head: clock and hash of the entity's last *written* event (INV-CHAIN).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Head {
    pub clock: u32,
    pub hash: [u8; 32],
    /// Interned coordinate of the entity's last event (a cheap intern cache for recovery).
    pub coord: u32,
}

/// Chain heads and interned coordinates.
#[derive(Debug, Default)]
pub(crate) struct Chains {
    heads: HashMap<Box<str>, Head>,
    coord_ids: HashMap<Coordinate, u32>,
    /// Interned coordinates, by id.
    pub coords: Vec<Coordinate>,
    /// Recovery only: how many non-empty dropped ranges (compaction) were replayed so far.
    gaps: u32,
    /// Recovery only: entity -> the gap count when its last event was replayed (only after
    /// the first gap).
    seen_after_gap: HashMap<Box<str>, u32>,
}

impl Chains {
    /// Whether any entity has an event.
    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// The entity's chain head (clock 0 and zero hash if it has no events).
    pub fn head(&self, entity: &str) -> Head {
        self.heads.get(entity).copied().unwrap_or_default()
    }

    /// Moves the entity's head to its newest event.
    pub fn set_head(&mut self, entity: &str, head: Head) {
        if let Some(h) = self.heads.get_mut(entity) {
            *h = head;
        } else {
            self.heads.insert(entity.into(), head);
        }
    }

    /// Recovery: a range removed by compaction was replayed; every entity's next event may
    /// resume its chain after events that are gone.
    pub fn gap(&mut self) {
        self.gaps = self.gaps.saturating_add(1);
    }

    /// Recovery: whether `entity`'s next event may resume its chain after a removed range (no
    /// event of it was replayed since the last one), and notes that one now is.
    pub fn resumes_after_gap(&mut self, entity: &str) -> bool {
        if self.gaps == 0 {
            return false;
        }
        let last = self.seen_after_gap.insert(entity.into(), self.gaps);
        last != Some(self.gaps)
    }

    /// The id of `coord`, interning it if new.
    pub fn intern(&mut self, coord: &Coordinate) -> u32 {
        if let Some(&id) = self.coord_ids.get(coord) {
            return id;
        }
        let id = self.coords.len() as u32;
        self.coords.push(coord.clone());
        self.coord_ids.insert(coord.clone(), id);
        id
    }

    /// The id of the coordinate (`entity`, `scope`) of a recovered record; an invalid one is
    /// refused (corruption).
    pub fn intern_parts(&mut self, entity: &str, scope: &str) -> Result<u32, String> {
        let coord = Coordinate::new(entity, scope).map_err(|e| e.to_string())?;
        Ok(self.intern(&coord))
    }

    /// The coordinate with id `id`.
    pub fn coord(&self, id: u32) -> Option<&Coordinate> {
        self.coords.get(id as usize)
    }
}

/// The hash of an event over its header fields and payload (INV-CHAIN).
pub fn event_hash(r: &EventRecord<'_>) -> [u8; 32] {
    // The fixed-size fields go through one stack buffer, so the hasher sees four updates
    // instead of fifteen (the byte stream, and so the hash, is the same as field by field).
    const TAG: &[u8] = b"batpak/event/v1";
    let mut fixed = [0u8; TAG.len() + 16 + 16 + 17 + 8 + 4 + 2 + 1 + 32 + 8];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(dst) = fixed.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    put(TAG);
    put(&r.event_id.to_le_bytes());
    put(&r.correlation_id.unwrap_or(r.event_id).to_le_bytes());
    match r.causation_id {
        Some(c) => {
            put(&[1]);
            put(&c.to_le_bytes());
        }
        None => put(&[0]),
    }
    put(&r.timestamp_us.to_le_bytes());
    put(&r.clock.to_le_bytes());
    put(&r.kind.to_le_bytes());
    put(&[r.flags]);
    put(&r.prev_hash);
    put(&(r.entity.len() as u64).to_le_bytes());
    let mut h = blake3::Hasher::new();
    h.update(fixed.get(..at).unwrap_or(&[]));
    h.update(r.entity.as_bytes());
    h.update(&(r.scope.len() as u64).to_le_bytes());
    h.update(r.scope.as_bytes());
    h.update(&(r.payload.len() as u64).to_le_bytes());
    h.update(r.payload);
    *h.finalize().as_bytes()
}
