//! Segment files: a 32-byte header, then frames. The writer owns the active segment and rolls
//! to a new one when the next frame would cross `segment_max_bytes`.
//!
//! Roll order (so a surviving newer segment always implies a durable older one, INV-PREFIX):
//! write the pending bytes of the old segment, sync it - always, whoever wrote it: bytes another
//! process left in the page cache are not durable until someone syncs them - create the new
//! file, write and sync its header, then sync the directory so the new entry is durable. So a
//! sealed segment (one with a later segment after it) is durable, and only the last segment
//! can hold unsynced bytes: that is the one `Store::open` syncs before reporting anything
//! durable.
//!
//! After a failed sync the unsynced bytes may never reach the platter although the page cache
//! still shows them, and a later successful sync proves nothing about them; a later process
//! would read them and could not tell. So the writer cuts them back off
//! ([`SegmentWriter::discard_unsynced`]) before it latches.

use crate::env::{Disk, DiskFile};
use crate::sync::StdArc;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Segment header size in bytes.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Segment magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BATPAKSG";
/// On-disk format version.
pub const FORMAT_VERSION: u32 = 1;

const _: () = assert!(SEGMENT_HEADER_BYTES == 8 + 4 + 8 + 8 + 4);

/// Where a record's frame sits on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiskPos {
    /// Segment id.
    pub segment_id: u64,
    /// Byte offset of the frame in the segment.
    pub offset: u64,
    /// Frame length in bytes (header + body).
    pub length: u32,
}

/// The file name of segment `id`.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// The segment id of a file name, if it names a segment.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment id (equals the number in the file name).
    pub segment_id: u64,
    /// Sequence of the first record this segment holds (or will hold).
    pub first_seq: u64,
}

/// Encodes a segment header: magic, version, id, first sequence, CRC of the 28 bytes before.
pub fn encode_header(h: SegmentHeader) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    out[0..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&h.segment_id.to_le_bytes());
    out[20..28].copy_from_slice(&h.first_seq.to_le_bytes());
    let crc = crc32fast::hash(&out[0..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a segment header, saying what is wrong if it is not one.
pub fn decode_header(b: &[u8]) -> Result<SegmentHeader, String> {
    let Some(b) = b.get(..SEGMENT_HEADER_BYTES) else {
        return Err(format!(
            "header has {} of {SEGMENT_HEADER_BYTES} bytes",
            b.len()
        ));
    };
    let mut w = [0u8; SEGMENT_HEADER_BYTES];
    w.copy_from_slice(b);
    let stored = u32::from_le_bytes([w[28], w[29], w[30], w[31]]);
    if crc32fast::hash(&w[0..28]) != stored {
        return Err("header CRC mismatch".into());
    }
    if w[0..8] != SEGMENT_MAGIC {
        return Err("bad magic".into());
    }
    let version = u32::from_le_bytes([w[8], w[9], w[10], w[11]]);
    if version != FORMAT_VERSION {
        return Err(format!("unsupported format version {version}"));
    }
    let le8 = |s: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    };
    Ok(SegmentHeader {
        segment_id: le8(&w[12..20]),
        first_seq: le8(&w[20..28]),
    })
}

/// Whether syncs use `fdatasync` or `fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `fsync`: data and metadata.
    SyncAll,
    /// `fdatasync`: data (and the metadata needed to read it back).
    #[default]
    SyncData,
}

/// Seeded bugs of the segment writer, for the witnesses' mutant tests (never set in real use).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentBugs {
    /// A roll does not sync the segment it seals.
    pub roll_skips_seal_sync: bool,
    /// A write that fails with `StorageFull` is taken as done.
    pub swallow_no_space: bool,
}

/// The writer's handle on the active segment.
#[derive(Debug)]
pub struct SegmentWriter {
    disk: StdArc<dyn Disk>,
    dir: PathBuf,
    file: Box<dyn DiskFile>,
    segment_id: u64,
    /// Bytes in the file (header + frames written so far).
    len: u64,
    /// Bytes of the file known durable (synced by this process).
    synced_len: u64,
    /// Bytes written since the last sync.
    dirty: bool,
    segment_max_bytes: u64,
    sync_mode: SyncMode,
    bugs: SegmentBugs,
}

impl SegmentWriter {
    /// Creates segment `segment_id` whose first record will be `first_seq`, durably (file
    /// header synced, directory synced).
    pub fn create(
        disk: StdArc<dyn Disk>,
        dir: &Path,
        segment_id: u64,
        first_seq: u64,
        segment_max_bytes: u64,
        sync_mode: SyncMode,
    ) -> io::Result<Self> {
        let path = dir.join(segment_file_name(segment_id));
        let mut file = disk.create_new(&path)?;
        let header = file
            .append(&encode_header(SegmentHeader {
                segment_id,
                first_seq,
            }))
            .and_then(|()| sync(&mut *file, sync_mode));
        if let Err(e) = header {
            // Leave no header the page cache shows but the platter may lack: a later process
            // would take the segment as the log's continuation. So the file goes (or, failing
            // that, its bytes: an empty segment file is a torn header, which recovery removes).
            drop(file);
            if let Err(gone) = disk.remove(&path) {
                tracing::error!(file = %path.display(), error = %gone, "could not remove a segment whose header failed");
                if let Err(cut) = disk.open(&path, true).and_then(|mut f| f.truncate(0)) {
                    tracing::error!(file = %path.display(), error = %cut, "could not cut an unsynced segment header");
                }
            }
            return Err(e);
        }
        disk.sync_dir(dir)?;
        tracing::debug!(segment_id, first_seq, "segment created");
        Ok(Self {
            disk,
            dir: dir.to_path_buf(),
            file,
            segment_id,
            len: SEGMENT_HEADER_BYTES as u64,
            synced_len: SEGMENT_HEADER_BYTES as u64,
            dirty: false,
            segment_max_bytes,
            sync_mode,
            bugs: SegmentBugs::default(),
        })
    }

    /// Continues writing at the end of an existing, recovered segment of `len` bytes. Nothing
    /// of it counts as durable until [`SegmentWriter::sync_recovered`].
    pub fn reopen(
        disk: StdArc<dyn Disk>,
        dir: &Path,
        segment_id: u64,
        len: u64,
        segment_max_bytes: u64,
        sync_mode: SyncMode,
    ) -> io::Result<Self> {
        let file = disk.open(&dir.join(segment_file_name(segment_id)), true)?;
        Ok(Self {
            disk,
            dir: dir.to_path_buf(),
            file,
            segment_id,
            len,
            synced_len: 0,
            dirty: true,
            segment_max_bytes,
            sync_mode,
            bugs: SegmentBugs::default(),
        })
    }

    /// Makes the recovered segment durable: bytes a crashed process left in the page cache are
    /// not durable until synced, whoever wrote them.
    pub fn sync_recovered(&mut self) -> io::Result<()> {
        self.force_sync()
    }

    /// Seeded bug for the INV-DURABLE witnesses: counts the recovered segment as durable
    /// without syncing it (recovery trusts the page cache).
    #[doc(hidden)]
    pub fn trust_recovered(&mut self) {
        self.synced_len = self.len;
        self.dirty = false;
    }

    /// Seeds bugs (for the mutant witnesses).
    #[doc(hidden)]
    pub fn seed_bugs(&mut self, bugs: SegmentBugs) {
        self.bugs = bugs;
    }

    /// The active segment's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(segment_file_name(self.segment_id))
    }

    /// The active segment's id.
    pub fn segment_id(&self) -> u64 {
        self.segment_id
    }

    /// Bytes in the active segment.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the active segment holds no frame yet.
    pub fn is_empty(&self) -> bool {
        self.len <= SEGMENT_HEADER_BYTES as u64
    }

    /// Whether `frame_len` more bytes fit without crossing `segment_max_bytes` (a frame
    /// always fits into an empty segment, whatever its size).
    pub fn fits(&self, pending: u64, frame_len: u64) -> bool {
        self.len + pending == SEGMENT_HEADER_BYTES as u64
            || self.len + pending + frame_len <= self.segment_max_bytes
    }

    /// Appends bytes (whole frames) to the active segment. One write per call.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match self.file.append(bytes) {
            Ok(()) => {}
            Err(e) if self.bugs.swallow_no_space && e.kind() == io::ErrorKind::StorageFull => {
                tracing::warn!(error = %e, "seeded bug: a failed write is taken as done");
            }
            Err(e) => return Err(e),
        }
        self.len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Makes everything written durable (no-op if nothing was written since the last sync).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.force_sync()?;
        }
        Ok(())
    }

    /// Syncs the file whatever this process wrote to it.
    fn force_sync(&mut self) -> io::Result<()> {
        sync(&mut *self.file, self.sync_mode)?;
        self.dirty = false;
        self.synced_len = self.len;
        Ok(())
    }

    /// Seals the active segment (sync, whoever wrote it) and starts segment `id + 1` at
    /// `first_seq`.
    pub fn roll(&mut self, first_seq: u64) -> Result<(), RollError> {
        if !self.bugs.roll_skips_seal_sync {
            self.force_sync().map_err(RollError::Seal)?;
        }
        let mut next = Self::create(
            StdArc::clone(&self.disk),
            &self.dir,
            self.segment_id + 1,
            first_seq,
            self.segment_max_bytes,
            self.sync_mode,
        )
        .map_err(RollError::Create)?;
        next.bugs = self.bugs;
        tracing::debug!(sealed = self.segment_id, "segment sealed");
        *self = next;
        Ok(())
    }

    /// After a failed write: cuts the file back to the end of the last successful write (the
    /// failed one may have left part of its bytes) and syncs, so the failed bytes can never
    /// reappear. `Ok` means nothing of the failed write is or will be in the log.
    pub fn cut_back(&mut self) -> io::Result<()> {
        self.file.truncate(self.len)?;
        self.force_sync()
    }

    /// After a failed sync: the bytes written since the last successful sync may never reach
    /// the platter although the page cache shows them, so they are cut off, and the cut is
    /// synced (that sync proves nothing about the lost pages; it only makes the cut stick).
    /// Returns the length cut to.
    pub fn discard_unsynced(&mut self) -> io::Result<u64> {
        self.file.truncate(self.synced_len)?;
        self.len = self.synced_len;
        self.dirty = false;
        sync(&mut *self.file, self.sync_mode)?;
        Ok(self.synced_len)
    }
}

/// Which step of [`SegmentWriter::roll`] failed.
#[derive(Debug)]
pub enum RollError {
    /// The sync sealing the old segment: its unsynced bytes may never reach the platter.
    Seal(io::Error),
    /// Creating the new segment (the old one is sealed durably).
    Create(io::Error),
}

impl std::fmt::Display for RollError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollError::Seal(e) => write!(f, "sealing the segment failed: {e}"),
            RollError::Create(e) => write!(f, "creating the next segment failed: {e}"),
        }
    }
}

fn sync(file: &mut dyn DiskFile, mode: SyncMode) -> io::Result<()> {
    match mode {
        SyncMode::SyncAll => file.sync_all(),
        SyncMode::SyncData => file.sync_data(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_damage_is_named() {
        let h = SegmentHeader {
            segment_id: 7,
            first_seq: 99,
        };
        let b = encode_header(h);
        assert_eq!(decode_header(&b), Ok(h));
        let mut bad = b;
        bad[0] ^= 1;
        assert_eq!(decode_header(&bad), Err("header CRC mismatch".to_string()));
        assert!(decode_header(&b[..10]).is_err());
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("LOCK"), None);
        assert_eq!(parse_segment_file_name("42.seg"), None);
    }
}
