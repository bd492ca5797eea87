//! The segment catalog: how readers find and read a record's frame ([`Catalog::read_event`])
//! without knowing file names or the codec. It keeps the segment files open for reading, at
//! most `fd_budget` at once, least recently used closed first, so the number of file
//! descriptors does not grow with the number of segments.
//!
//! A handle handed out stays usable after it is evicted (the descriptor closes when the last
//! reader drops it), so a read in flight never fails because of an eviction; the cache may
//! then briefly hold `fd_budget` descriptors plus one per read in flight. [`Catalog::release`]
//! closes everything the cache holds: the writer calls it when a segment roll could not create
//! the next file, before trying again, so descriptors held for reading never make a roll fail.

use super::segment::{decode_header, segment_file_name, SEGMENT_HEADER_BYTES};
use crate::append::DiskPos;
use crate::codec::{self, RecordBody, Unit, FRAME_HEADER_BYTES};
use crate::env::{Disk, DiskFile};
use crate::error::{CorruptionDetail, StoreError};
use crate::sync::{Mutex, StdArc};
use std::collections::HashMap;
use std::path::PathBuf;

/// The fields of a stored event that the index does not hold, read back from its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventFrame {
    /// The atomic unit the event was written in (its batch, its fence).
    pub unit: Unit,
    /// The writer's hybrid logical clock when it wrote the event (µs).
    pub timestamp_us: i64,
    /// Caller flags.
    pub flags: u8,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// [`EventFrame`] borrowing its payload from the read buffer ([`Catalog::read_events_bulk`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventFrameRef<'a> {
    /// The atomic unit the event was written in (its batch, its fence).
    pub unit: Unit,
    /// The writer's hybrid logical clock when it wrote the event (µs).
    pub timestamp_us: i64,
    /// Caller flags.
    pub flags: u8,
    /// The payload bytes.
    pub payload: &'a [u8],
}

/// Most bytes one read of [`Catalog::read_events_bulk`] covers.
const BULK_READ_BYTES: u64 = 1 << 20;
/// Largest hole between two wanted frames that one read still spans (other entities'
/// frames in between are read and skipped: cheaper than another system call).
const BULK_GAP_BYTES: u64 = 16 << 10;

/// The segment files open for reading.
#[derive(Debug)]
pub(crate) struct Catalog {
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

impl Catalog {
    pub(crate) fn new(disk: StdArc<dyn Disk>, dir: PathBuf, budget: usize) -> Self {
        Self {
            disk,
            dir,
            budget: budget.max(1),
            lru: Mutex::new(Lru::default()),
        }
    }

    /// Reads the frame of event `event_id` at `pos` and checks it (CRC, record kind, event
    /// id): the fields the index does not hold. An error names the segment file and offset.
    pub(crate) fn read_event(
        &self,
        pos: DiskPos,
        event_id: u128,
    ) -> Result<EventFrame, StoreError> {
        let (mut buf, salt) = self.read_frame(pos, event_id)?;
        let e = self.check_event(&buf, salt, pos, event_id)?;
        let (unit, timestamp_us, flags) = (e.unit, e.timestamp_us, e.flags);
        // The payload is a slice of the frame buffer: keep that buffer as the payload (moving
        // the bytes to its front) instead of allocating a copy, one allocation per read saved.
        let start = (e.payload.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        let end = start.wrapping_add(e.payload.len());
        let payload = if start <= end && end <= buf.len() {
            buf.truncate(end);
            buf.drain(..start);
            buf
        } else {
            // Not inside the buffer (an empty payload may be a dangling empty slice).
            e.payload.to_vec()
        };
        Ok(EventFrame {
            unit,
            timestamp_us,
            flags,
            payload,
        })
    }

    /// Decodes `frame`, the bytes at `pos` of a segment salted with `salt`, and checks that it
    /// holds event `event_id`; an error is `CorruptSegment` naming the file and offset.
    fn check_event<'b>(
        &self,
        frame: &'b [u8],
        salt: u32,
        pos: DiskPos,
        event_id: u128,
    ) -> Result<EventFrameRef<'b>, StoreError> {
        let corrupt = |detail: String| StoreError::CorruptSegment {
            segment_id: pos.segment_id,
            detail: CorruptionDetail::at(self.path(pos.segment_id), pos.offset, detail),
        };
        // The index knows the frame's length (recovery or the writer checked it against the
        // segment's own limit), so that is the limit to decode this frame with.
        let body_max = pos.length.saturating_sub(FRAME_HEADER_BYTES as u32);
        let (record, _) =
            codec::decode(frame, body_max, salt).map_err(|e| corrupt(e.to_string()))?;
        let RecordBody::Event(e) = record.body else {
            return Err(corrupt(
                "index points at a record that is not an event".into(),
            ));
        };
        if e.event_id != event_id {
            return Err(corrupt(format!("frame holds event {:032x}", e.event_id)));
        }
        Ok(EventFrameRef {
            unit: e.unit,
            timestamp_us: e.timestamp_us,
            flags: e.flags,
            payload: e.payload,
        })
    }

    /// Reads many events' frames, in the order given, calling `f(i, frame)` for each with
    /// the fields [`Catalog::read_event`] returns (checked the same way). Frames that lie
    /// close together in one segment are read with one `read_at` of up to
    /// [`BULK_READ_BYTES`], so replaying a long stream costs a few large reads instead of
    /// one per event. The first error (I/O, damage, or `f`'s) ends the walk.
    pub(crate) fn read_events_bulk<T>(
        &self,
        items: &[T],
        at: impl Fn(&T) -> (DiskPos, u128),
        mut f: impl FnMut(usize, EventFrameRef<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut i = 0;
        while let Some((first, _)) = items.get(i).map(&at) {
            // Extend the run while the next frame is in the same segment, after this one,
            // close behind it, and the run stays within the read size.
            let start = first.offset;
            let mut end = first.offset + u64::from(first.length);
            let mut j = i + 1;
            while let Some((p, _)) = items.get(j).map(&at) {
                let p_end = p.offset + u64::from(p.length);
                if p.segment_id != first.segment_id
                    || p.offset < end
                    || p.offset - end > BULK_GAP_BYTES
                    || p_end - start > BULK_READ_BYTES
                {
                    break;
                }
                end = p_end;
                j += 1;
            }
            let (file, salt) = self.get(first.segment_id)?;
            let io = |source| StoreError::IoAt {
                path: self.path(first.segment_id),
                op: "read events",
                source,
            };
            buf.clear();
            buf.resize((end - start) as usize, 0);
            let mut done = 0;
            while done < buf.len() {
                let rest = buf.get_mut(done..).unwrap_or(&mut []);
                let n = file.read_at(start + done as u64, rest).map_err(io)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            buf.truncate(done);
            for (k, (pos, event_id)) in items.get(i..j).unwrap_or(&[]).iter().map(&at).enumerate() {
                let at = (pos.offset - start) as usize;
                let Some(frame) = buf.get(at..at + pos.length as usize) else {
                    // Cut from under the index (only after a failed fsync): the single read
                    // reports it with its full explanation.
                    let owned = self.read_event(pos, event_id)?;
                    f(
                        i + k,
                        EventFrameRef {
                            unit: owned.unit,
                            timestamp_us: owned.timestamp_us,
                            flags: owned.flags,
                            payload: &owned.payload,
                        },
                    )?;
                    continue;
                };
                f(i + k, self.check_event(frame, salt, pos, event_id)?)?;
            }
            i = j;
        }
        Ok(())
    }

    /// The bytes of the frame at `pos` (of event `event_id`, for the error) and its segment's
    /// salt.
    fn read_frame(&self, pos: DiskPos, event_id: u128) -> Result<(Vec<u8>, u32), StoreError> {
        let (file, salt) = self.get(pos.segment_id)?;
        let io = |source| StoreError::IoAt {
            path: self.path(pos.segment_id),
            op: "read event",
            source,
        };
        let mut buf = vec![0u8; pos.length as usize];
        let mut done = 0;
        while done < buf.len() {
            let rest = buf.get_mut(done..).unwrap_or(&mut []);
            let n = file.read_at(pos.offset + done as u64, rest).map_err(io)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        if done < buf.len() {
            // Only unsynced bytes are ever cut from under the index: after a failed fsync.
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "event {event_id:032x}: its frame ({} bytes at offset {}) is gone from \
                     the file; it was never synced, and the writer cut it off after a \
                     failed fsync",
                    pos.length, pos.offset
                ),
            )));
        }
        Ok((buf, salt))
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(segment_file_name(id))
    }

    /// The open handle of segment `id` and its salt, opening it (and closing the least
    /// recently used one if the budget is full) when needed. A failed open is this read's
    /// error only.
    fn get(&self, id: u64) -> Result<(StdArc<dyn DiskFile>, u32), StoreError> {
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
        let path = self.path(id);
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
                detail: CorruptionDetail::at(path.clone(), 0, format!("segment header: {e}")),
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
    use crate::env::sim::SimDisk;
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
        let readers = Catalog::new(StdArc::new(disk.clone()), dir.to_path_buf(), 3);
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
