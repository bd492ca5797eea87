//! The writer's handle on the active segment: appends, syncs, and rolls to a new segment when
//! the next frame would cross `segment_max_bytes` or the segment's frame limit.
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

use super::segment::{
    decode_header, encode_header, segment_file_name, SegmentHeader, SyncMode, SEGMENT_HEADER_BYTES,
};
use crate::env::{Disk, DiskFile, Entropy};
use crate::error::StoreError;
use crate::mutant::{Bugs, Mutant};
use crate::sync::StdArc;
use std::io;
use std::path::{Path, PathBuf};

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

    /// Makes what recovery found durable before anything reports it durable: bytes a crashed
    /// process left in the page cache are not on the platter until someone syncs them. Only the
    /// last segment can hold such bytes (every roll syncs the segment it seals before the next one
    /// exists); its directory entry may be unsynced too.
    ///
    /// If the sync fails, the kernel may have marked those pages clean without writing them, and a
    /// retry - by this open or the next - would succeed and prove nothing. So before failing, the
    /// segment is rewritten (copied to a new file, synced, renamed over the old one, directory
    /// synced): the next open then reads only bytes that are on the platter.
    pub(crate) fn make_recovered_durable(&mut self) -> Result<(), StoreError> {
        let _span = tracing::info_span!("sync_recovered", segment = self.segment_id).entered();
        if self.bugs.has(Mutant::RecoveryTrustsPageCache) {
            // Seeded bug: counts the recovered segment as durable without syncing it.
            self.synced_len = self.len;
            self.dirty = false;
            return Ok(());
        }
        if let Err(source) = self.force_sync() {
            let path = self.path();
            tracing::error!(file = %path.display(), error = %source, "sync of the recovered segment failed");
            match rewrite_file(&*self.disk, &self.dir, &path, self.opts.sync_mode) {
                Ok(()) => tracing::warn!(
                    file = %path.display(),
                    "rewrote the segment durably; the next open reads only synced bytes"
                ),
                Err(e) => tracing::error!(
                    file = %path.display(),
                    error = %e,
                    "could not rewrite the segment after its sync failed"
                ),
            }
            return Err(StoreError::IoAt {
                path,
                op: "sync recovered segment",
                source,
            });
        }
        self.disk
            .sync_dir(&self.dir)
            .map_err(|source| StoreError::IoAt {
                path: self.dir.clone(),
                op: "sync data directory",
                source,
            })
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

/// Replaces `path` by a durable copy of what reads of it return now: copy to a temporary file
/// in `dir`, sync it, rename it over `path`, sync `dir`. A crash at any point leaves either the
/// old file or the complete copy under `path` (and maybe a stale temporary file, which the next
/// rewrite replaces and recovery ignores).
fn rewrite_file(
    disk: &dyn Disk,
    dir: &std::path::Path,
    path: &std::path::Path,
    mode: SyncMode,
) -> std::io::Result<()> {
    const WINDOW: usize = 1 << 20;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".rewrite");
    let tmp = std::path::PathBuf::from(tmp);
    if disk.exists(&tmp)? {
        disk.remove(&tmp)?;
    }
    let copied = (|| {
        let src = disk.open(path, false)?;
        let len = src.len()?;
        let mut dst = disk.create_new(&tmp)?;
        let mut buf = vec![0u8; WINDOW];
        let mut at = 0u64;
        while at < len {
            let want = usize::try_from(len - at).unwrap_or(WINDOW).min(WINDOW);
            let chunk = buf.get_mut(..want).unwrap_or(&mut []);
            let n = src.read_at(at, chunk)?;
            if n == 0 {
                break;
            }
            dst.append(chunk.get(..n).unwrap_or(&[]))?;
            at += n as u64;
        }
        match mode {
            SyncMode::SyncAll => dst.sync_all()?,
            SyncMode::SyncData => dst.sync_data()?,
        }
        disk.rename(&tmp, path)?;
        disk.sync_dir(dir)
    })();
    if copied.is_err() && disk.exists(&tmp).unwrap_or(false) {
        let _ = disk.remove(&tmp);
    }
    copied
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
