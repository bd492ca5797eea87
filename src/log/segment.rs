//! Segment files: a 40-byte header (with the segment's salt and frame limit), then frames. The
//! writer owns the active segment and rolls to a new one when the next frame would cross
//! `segment_max_bytes` or the segment's frame limit.
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

use crate::codec::{FRAME_BODY_MIN_BYTES, FRAME_BYTES_LIMIT};
use crate::env::{Disk, DiskFile, Entropy};
use crate::mutant::{Bugs, Mutant};
use crate::sync::StdArc;
use std::io;
use std::path::{Path, PathBuf};

/// Segment header size in bytes.
pub const SEGMENT_HEADER_BYTES: usize = 40;
/// Segment magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BATPAKSG";
/// On-disk format version.
pub const FORMAT_VERSION: u32 = 2;

const _: () = assert!(SEGMENT_HEADER_BYTES == 8 + 4 + 8 + 8 + 4 + 4 + 4);

/// Header size of format version 1 (recognised only to refuse it by name).
const V1_HEADER_BYTES: usize = 32;

pub use crate::append::DiskPos;

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
    /// Random salt of every frame check in this segment.
    pub salt: u32,
    /// Largest frame body in this segment: the writer's frame limit when it created the
    /// segment. Recovery and reads use it, whatever the opener's own limit.
    pub frame_max: u32,
}

/// Why bytes are not a usable segment header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Short or failing its CRC: a torn or damaged header (recovery judges it as damage).
    Damaged(String),
    /// An intact header this build must not read or repair: another format version, not a
    /// batpak segment, or limits no writer produces. Never cut, never removed.
    Foreign(String),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Damaged(m) | Self::Foreign(m) => f.write_str(m),
        }
    }
}

/// Encodes a segment header: magic, version, id, first sequence, salt, frame limit, CRC of
/// the 36 bytes before.
pub fn encode_header(h: SegmentHeader) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    out[0..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&h.segment_id.to_le_bytes());
    out[20..28].copy_from_slice(&h.first_seq.to_le_bytes());
    out[28..32].copy_from_slice(&h.salt.to_le_bytes());
    out[32..36].copy_from_slice(&h.frame_max.to_le_bytes());
    let crc = crc32fast::hash(&out[0..36]);
    out[36..40].copy_from_slice(&crc.to_le_bytes());
    out
}

fn le4(s: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = s.get(..4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le8(s: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = s.get(..8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Decodes a segment header, saying what is wrong if it is not one. An intact header of
/// format version 1 (no salt, no frame limit) is [`HeaderError::Foreign`]: this build does not
/// read version-1 segments (spec/FORMAT.md).
pub fn decode_header(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if let Some(v1) = b.get(..V1_HEADER_BYTES) {
        if v1[0..8] == SEGMENT_MAGIC
            && le4(&v1[8..12]) == 1
            && crc32fast::hash(&v1[0..28]) == le4(&v1[28..32])
        {
            return Err(HeaderError::Foreign(
                "segment of format version 1, which this build does not read (it reads and writes version 2, see spec/FORMAT.md)".into(),
            ));
        }
    }
    let Some(w) = b.get(..SEGMENT_HEADER_BYTES) else {
        return Err(HeaderError::Damaged(format!(
            "header has {} of {SEGMENT_HEADER_BYTES} bytes",
            b.len()
        )));
    };
    if crc32fast::hash(&w[0..36]) != le4(&w[36..40]) {
        return Err(HeaderError::Damaged("header CRC mismatch".into()));
    }
    if w[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Foreign(
            "not a batpak segment (bad magic under a valid header CRC)".into(),
        ));
    }
    let version = le4(&w[8..12]);
    if version != FORMAT_VERSION {
        return Err(HeaderError::Foreign(format!(
            "segment of format version {version}, which this build does not read (it reads version {FORMAT_VERSION})"
        )));
    }
    let frame_max = le4(&w[32..36]);
    if frame_max > FRAME_BYTES_LIMIT || (frame_max as usize) < FRAME_BODY_MIN_BYTES {
        return Err(HeaderError::Foreign(format!(
            "segment frame limit {frame_max} outside {FRAME_BODY_MIN_BYTES}..={FRAME_BYTES_LIMIT}"
        )));
    }
    Ok(SegmentHeader {
        segment_id: le8(&w[12..20]),
        first_seq: le8(&w[20..28]),
        salt: le4(&w[28..32]),
        frame_max,
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

/// Called when creating a segment failed, to free file descriptors held elsewhere (the
/// readers' cache) before one more try; returns how many it closed.
pub type FdRelief = StdArc<dyn Fn() -> usize + Send + Sync>;

/// How the writer makes segments.
#[derive(Clone)]
pub struct SegmentOptions {
    /// Roll before a frame that would take the segment past this many bytes.
    pub segment_max_bytes: u64,
    /// `fsync` or `fdatasync`.
    pub sync_mode: SyncMode,
    /// The writer's frame limit, recorded in every segment it creates.
    pub frame_max: u32,
    /// Where each new segment's salt comes from.
    pub entropy: StdArc<dyn Entropy>,
    /// Frees descriptors when creating a segment failed (see [`FdRelief`]).
    pub fd_relief: Option<FdRelief>,
}

impl std::fmt::Debug for SegmentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentOptions")
            .field("segment_max_bytes", &self.segment_max_bytes)
            .field("sync_mode", &self.sync_mode)
            .field("frame_max", &self.frame_max)
            .finish()
    }
}

/// How many entries that are not regular files (a directory named like a segment) a new
/// segment skips before giving up.
const SKIP_MAX: u64 = 64;

/// The writer's handle on the active segment.
#[derive(Debug)]
pub struct SegmentWriter {
    disk: StdArc<dyn Disk>,
    dir: PathBuf,
    file: Box<dyn DiskFile>,
    segment_id: u64,
    /// This segment's header fields the frames depend on.
    salt: u32,
    frame_max: u32,
    /// Bytes in the file (header + frames written so far).
    len: u64,
    /// Bytes of the file known durable (synced by this process).
    synced_len: u64,
    /// Bytes written since the last sync.
    dirty: bool,
    opts: SegmentOptions,
    bugs: Bugs,
}

impl SegmentWriter {
    /// Creates the first free segment from id `segment_id` on, whose first record will be
    /// `first_seq`, durably (file header synced, directory synced). An entry with a segment's
    /// name that is not a regular file (a directory someone made) is skipped with a warning:
    /// recovery only reads regular files, and segment ids need not be contiguous. A regular
    /// file in the way is an error (`AlreadyExists`, naming it): it is not ours to overwrite.
    /// When creating fails for any other reason, descriptors held for reading are released
    /// ([`SegmentOptions::fd_relief`]) and it is tried once more, so the readers can never
    /// make the writer fail for lack of descriptors.
    pub fn create(
        disk: StdArc<dyn Disk>,
        dir: &Path,
        segment_id: u64,
        first_seq: u64,
        opts: SegmentOptions,
    ) -> io::Result<Self> {
        let mut id = segment_id;
        let mut failed: Option<(u64, io::Error)> = None;
        loop {
            match Self::create_at(&disk, dir, id, first_seq, &opts) {
                Ok((file, h)) => {
                    tracing::debug!(segment_id = id, first_seq, "segment created");
                    return Ok(Self {
                        disk,
                        dir: dir.to_path_buf(),
                        file,
                        segment_id: id,
                        salt: h.salt,
                        frame_max: h.frame_max,
                        len: SEGMENT_HEADER_BYTES as u64,
                        synced_len: SEGMENT_HEADER_BYTES as u64,
                        dirty: false,
                        opts,
                        bugs: Bugs::default(),
                    });
                }
                // Our own failed attempt left its file behind: report that attempt's error.
                Err(e)
                    if e.kind() == io::ErrorKind::AlreadyExists
                        && failed.as_ref().is_some_and(|(at, _)| *at == id) =>
                {
                    return Err(failed.map_or(e, |(_, first)| first));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let name = segment_file_name(id);
                    let regular = disk.list(dir)?.contains(&name);
                    if regular || id - segment_id >= SKIP_MAX {
                        return Err(io::Error::new(
                            e.kind(),
                            format!(
                                "cannot create segment {}: {e}{}",
                                dir.join(&name).display(),
                                if regular {
                                    " (a file this store did not write is in the way; move it out of the data directory)"
                                } else {
                                    " (too many entries named like segments that are not files)"
                                }
                            ),
                        ));
                    }
                    tracing::warn!(
                        path = %dir.join(&name).display(),
                        "an entry named like the next segment is not a regular file; skipping to the next id"
                    );
                    id += 1;
                }
                Err(e) => match opts.fd_relief.as_ref().filter(|_| failed.is_none()) {
                    Some(relief) => {
                        let closed = relief();
                        tracing::warn!(
                            segment_id = id,
                            error = %e,
                            closed,
                            "creating a segment failed; released reader descriptors, trying once more"
                        );
                        failed = Some((id, e));
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// One attempt at creating segment `id`. If writing or syncing the header fails, the file
    /// goes again (or, failing that, its bytes: an empty segment file is a torn header, which
    /// recovery removes): no header the page cache shows but the platter may lack may be left
    /// for a later process to take as the log's continuation.
    fn create_at(
        disk: &StdArc<dyn Disk>,
        dir: &Path,
        id: u64,
        first_seq: u64,
        opts: &SegmentOptions,
    ) -> io::Result<(Box<dyn DiskFile>, SegmentHeader)> {
        let path = dir.join(segment_file_name(id));
        let mut file = disk.create_new(&path)?;
        let h = SegmentHeader {
            segment_id: id,
            first_seq,
            salt: opts.entropy.next_u32(),
            frame_max: opts.frame_max,
        };
        let header = file
            .append(&encode_header(h))
            .and_then(|()| sync(&mut *file, opts.sync_mode));
        if let Err(e) = header {
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
        Ok((file, h))
    }

    /// Continues writing at the end of an existing, recovered segment of `len` bytes (its
    /// header gives the salt and frame limit). Nothing of it counts as durable until
    /// [`SegmentWriter::sync_recovered`].
    pub fn reopen(
        disk: StdArc<dyn Disk>,
        dir: &Path,
        segment_id: u64,
        len: u64,
        opts: SegmentOptions,
    ) -> io::Result<Self> {
        let file = disk.open(&dir.join(segment_file_name(segment_id)), true)?;
        let mut head = [0u8; SEGMENT_HEADER_BYTES];
        let mut got = 0;
        while got < head.len() {
            let n = file.read_at(got as u64, head.get_mut(got..).unwrap_or(&mut []))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let h = decode_header(head.get(..got).unwrap_or(&[])).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment {segment_id} header: {e}"),
            )
        })?;
        Ok(Self {
            disk,
            dir: dir.to_path_buf(),
            file,
            segment_id,
            salt: h.salt,
            frame_max: h.frame_max,
            len,
            synced_len: 0,
            dirty: true,
            opts,
            bugs: Bugs::default(),
        })
    }

    /// Makes the recovered segment durable: bytes a crashed process left in the page cache are
    /// not durable until synced, whoever wrote them.
    pub fn sync_recovered(&mut self) -> io::Result<()> {
        self.force_sync()
    }

    /// Seeded bug `RecoveryTrustsPageCache`: counts the recovered segment as durable without
    /// syncing it.
    pub(crate) fn trust_recovered(&mut self) {
        self.synced_len = self.len;
        self.dirty = false;
    }

    /// Runs with the seeded bug `bugs` (the mutant build's witnesses; see [`crate::mutant`]).
    pub(crate) fn seed_bugs(&mut self, bugs: Bugs) {
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

    /// The active segment's salt (frames written into it must be sealed with it).
    pub fn salt(&self) -> u32 {
        self.salt
    }

    /// Bytes in the active segment.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the active segment holds no frame yet.
    pub fn is_empty(&self) -> bool {
        self.len <= SEGMENT_HEADER_BYTES as u64
    }

    /// Whether a frame of `frame_len` bytes fits after `pending` buffered bytes: without
    /// crossing `segment_max_bytes` (a frame always fits into an empty segment, whatever its
    /// size) and within the frame limit recorded in this segment's header (a segment made
    /// under a smaller limit never holds a larger frame, so every reader can hold it).
    pub fn fits(&self, pending: u64, frame_len: u64) -> bool {
        let body = frame_len.saturating_sub(crate::codec::FRAME_HEADER_BYTES as u64);
        body <= u64::from(self.frame_max)
            && (self.len + pending == SEGMENT_HEADER_BYTES as u64
                || self.len + pending + frame_len <= self.opts.segment_max_bytes)
    }

    /// Appends bytes (whole frames) to the active segment. One write per call.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match self.file.append(bytes) {
            Ok(()) => {}
            Err(e)
                if self.bugs.has(Mutant::NoSpaceSwallowed)
                    && e.kind() == io::ErrorKind::StorageFull =>
            {
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
        sync(&mut *self.file, self.opts.sync_mode)?;
        self.dirty = false;
        self.synced_len = self.len;
        Ok(())
    }

    /// Seals the active segment (sync, whoever wrote it) and starts the next one at
    /// `first_seq` (the next free id, see [`SegmentWriter::create`]).
    pub fn roll(&mut self, first_seq: u64) -> Result<(), RollError> {
        if !self.bugs.has(Mutant::RollSkipsSealSync) {
            self.force_sync().map_err(RollError::Seal)?;
        }
        let mut next = Self::create(
            StdArc::clone(&self.disk),
            &self.dir,
            self.segment_id + 1,
            first_seq,
            self.opts.clone(),
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
        sync(&mut *self.file, self.opts.sync_mode)?;
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
            salt: 0xDEAD_BEEF,
            frame_max: 1 << 20,
        };
        let b = encode_header(h);
        assert_eq!(decode_header(&b), Ok(h));
        let mut bad = b;
        bad[0] ^= 1;
        assert_eq!(
            decode_header(&bad),
            Err(HeaderError::Damaged("header CRC mismatch".to_string()))
        );
        assert!(matches!(
            decode_header(&b[..10]),
            Err(HeaderError::Damaged(_))
        ));
    }

    #[test]
    fn intact_headers_of_other_versions_or_limits_are_foreign_never_damage() {
        // A version-1 header: magic, version 1, id, first sequence, CRC of the 28 bytes.
        let mut v1 = [0u8; 32];
        v1[0..8].copy_from_slice(&SEGMENT_MAGIC);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        v1[12..20].copy_from_slice(&3u64.to_le_bytes());
        let crc = crc32fast::hash(&v1[0..28]);
        v1[28..32].copy_from_slice(&crc.to_le_bytes());
        let mut file = v1.to_vec();
        file.extend_from_slice(&[0xAB; 64]); // its frames
        assert!(matches!(
            decode_header(&file),
            Err(HeaderError::Foreign(m)) if m.contains("version 1")
        ));
        let reseal = |mut b: [u8; SEGMENT_HEADER_BYTES]| {
            let crc = crc32fast::hash(&b[0..36]);
            b[36..40].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let good = encode_header(SegmentHeader {
            segment_id: 1,
            first_seq: 0,
            salt: 1,
            frame_max: 4096,
        });
        let mut v3 = good;
        v3[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            decode_header(&reseal(v3)),
            Err(HeaderError::Foreign(_))
        ));
        let mut magic = good;
        magic[0] = b'X';
        assert!(matches!(
            decode_header(&reseal(magic)),
            Err(HeaderError::Foreign(_))
        ));
        let mut huge = good;
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_header(&reseal(huge)),
            Err(HeaderError::Foreign(_))
        ));
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_file_name("LOCK"), None);
        assert_eq!(parse_segment_file_name("42.seg"), None);
    }
}
