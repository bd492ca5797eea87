//! The readers' segment files: at most `fd_budget` open at once, least recently used closed
//! first, so the number of file descriptors does not grow with the number of segments.
//!
//! A handle handed out stays usable after it is evicted (the descriptor closes when the last
//! reader drops it), so a read in flight never fails because of an eviction; the cache may
//! then briefly hold `fd_budget` descriptors plus one per read in flight. [`Readers::release`]
//! closes everything the cache holds: the writer calls it when a segment roll could not create
//! the next file, before trying again, so descriptors held for reading never make a roll fail.

use crate::env::{Disk, DiskFile};
use crate::error::StoreError;
use crate::log::segment::{decode_header, segment_file_name, SEGMENT_HEADER_BYTES};
use crate::sync::{Mutex, StdArc};
use std::collections::HashMap;
use std::path::PathBuf;

/// The cache of open segment files for reading.
#[derive(Debug)]
pub(crate) struct Readers {
    disk: StdArc<dyn Disk>,
    dir: PathBuf,
    budget: usize,
    lru: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    /// Segment id -> (handle, the segment's salt, last use).
    open: HashMap<u64, (StdArc<dyn DiskFile>, u32, u64)>,
    tick: u64,
}

impl Readers {
    pub(crate) fn new(disk: StdArc<dyn Disk>, dir: PathBuf, budget: usize) -> Self {
        Self {
            disk,
            dir,
            budget: budget.max(1),
            lru: Mutex::new(Lru::default()),
        }
    }

    /// The open handle of segment `id` and its salt, opening it (and closing the least
    /// recently used one if the budget is full) when needed. A failed open is this read's
    /// error only.
    pub(crate) fn get(&self, id: u64) -> Result<(StdArc<dyn DiskFile>, u32), StoreError> {
        let mut lru = self.lru.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((f, salt, used)) = lru.open.get_mut(&id) {
            *used = tick;
            return Ok((StdArc::clone(f), *salt));
        }
        if lru.open.len() >= self.budget {
            // Close first, so the open below never needs one descriptor above the budget.
            let oldest = lru
                .open
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                lru.open.remove(&oldest);
            }
        }
        let path = self.dir.join(segment_file_name(id));
        let io = |op: &'static str| {
            let path = path.clone();
            move |source| StoreError::IoAt { path, op, source }
        };
        let f: StdArc<dyn DiskFile> = StdArc::from(
            self.disk
                .open(&path, false)
                .map_err(io("open segment for reading"))?,
        );
        let mut head = [0u8; SEGMENT_HEADER_BYTES];
        let got = f.read_at(0, &mut head).map_err(io("read segment header"))?;
        let salt = decode_header(head.get(..got).unwrap_or(&[]))
            .map_err(|e| StoreError::CorruptSegment {
                segment_id: id,
                file: path.clone(),
                offset: 0,
                detail: format!("segment header: {e}"),
            })?
            .salt;
        lru.open.insert(id, (StdArc::clone(&f), salt, tick));
        Ok((f, salt))
    }

    /// Closes every cached handle; returns how many were open.
    pub(crate) fn release(&self) -> usize {
        let mut lru = self.lru.lock();
        let n = lru.open.len();
        lru.open.clear();
        n
    }

    /// How many handles the cache holds.
    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.lru.lock().open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SimDisk;
    use std::path::Path;

    #[test]
    fn the_cache_never_holds_more_than_its_budget_and_evicts_the_least_recently_used() {
        let disk = SimDisk::new();
        let dir = Path::new("/r");
        disk.create_dir_all(dir).unwrap();
        for id in 0..10 {
            let mut f = disk.create_new(&dir.join(segment_file_name(id))).unwrap();
            f.append(&crate::log::segment::encode_header(
                crate::log::segment::SegmentHeader {
                    segment_id: id,
                    first_seq: 0,
                    salt: id as u32,
                    frame_max: 4096,
                },
            ))
            .unwrap();
        }
        let readers = Readers::new(StdArc::new(disk.clone()), dir.to_path_buf(), 3);
        for id in [0, 1, 2] {
            assert_eq!(readers.get(id).unwrap().1, id as u32, "the segment's salt");
        }
        readers.get(0).unwrap(); // 0 is now the most recent; 1 the least
        readers.get(3).unwrap();
        assert_eq!(readers.open_count(), 3);
        let lru = readers.lru.lock();
        let mut ids: Vec<u64> = lru.open.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![0, 2, 3]);
        drop(lru);
        for id in 0..10 {
            readers.get(id).unwrap();
            assert!(readers.open_count() <= 3);
        }
        assert_eq!(readers.release(), 3);
        assert_eq!(readers.open_count(), 0);
        assert!(matches!(readers.get(42), Err(StoreError::IoAt { .. })));
    }
}
