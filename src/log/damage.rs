//! Damage found by the scan: a torn tail, or corruption?
//!
//! Damage is a torn tail only when no valid record follows it anywhere in the log
//! ([`nothing_valid_follows`]); otherwise it is corruption and the scan fails closed. Looking
//! for a valid record after the damage never looks inside the damaged frame itself when its
//! length is known: a frame whose head check (salted, see [`crate::codec`]) holds has a trusted
//! extent, and the search starts after it. A torn last write keeps its frame's header, so bytes
//! of its own payload that happen to form a frame (user data can) never turn a crash into "a
//! valid record follows". Only a frame whose header itself is damaged is searched byte by
//! byte, and there the segment's salt keeps frame-shaped payload bytes from checking out.
//!
//! A torn tail is then cut ([`cut`]) as the [`CutPolicy`] says.

use super::report::{io_err, RecoveryError, RecoveryReport, TornTail};
use super::scan::{read_exact_at, CutPolicy, WINDOW_BYTES};
use super::segment::{decode_header, segment_file_name, HeaderError, SEGMENT_HEADER_BYTES};
use crate::codec::{self, FRAME_HEADER_BYTES};
use crate::env::{Disk, DiskFile};
use std::path::Path;

/// One damage point found while scanning.
#[derive(Debug)]
pub(super) struct Damage {
    /// Where it starts.
    pub offset: u64,
    /// What is wrong there.
    pub reason: String,
    /// Where the search for valid records after it starts: after the damaged frame's extent
    /// when its head check holds (its length is trusted), else the next byte.
    pub resume: u64,
}

/// The segment holding the damage.
pub(super) struct Tail<'a> {
    /// Its id.
    pub id: u64,
    /// Its file.
    pub path: &'a Path,
    /// Its length when scanned.
    pub file_len: u64,
}

/// A segment's frame parameters: (salt, frame limit).
type FrameParams = (u32, u32);

/// Why a damaged segment header followed by more bytes is corruption: the writer appends
/// frames only after the header is durable, so a header torn by a crash (during the roll that
/// created it) never has bytes after it. The frames' salt is in the lost header, so they
/// cannot be checked either; failing closed keeps them.
pub(super) fn damaged_header_with_frames(reason: &str, file_len: u64) -> String {
    format!(
        "segment header: {reason}, yet the file holds {} bytes after it (a header torn by a crash has nothing after it)",
        file_len.saturating_sub(SEGMENT_HEADER_BYTES as u64)
    )
}

/// Fails with corruption if a valid record (sequence >= `min_seq`) follows the damage: after
/// it in its own segment, or anywhere in the `later` segments.
pub(super) fn nothing_valid_follows(
    disk: &dyn Disk,
    dir: &Path,
    tail: &Tail<'_>,
    damage: &Damage,
    later: &[u64],
    min_seq: u64,
) -> Result<(), RecoveryError> {
    let corrupt = |detail: String| RecoveryError::Corruption {
        file: tail.path.to_path_buf(),
        offset: damage.offset,
        detail,
    };
    if let Some(at) = valid_frame_in(disk, tail.path, damage.resume, min_seq)? {
        return Err(corrupt(format!(
            "{}; a valid record follows at offset {at}",
            damage.reason
        )));
    }
    for &lid in later {
        let lpath = dir.join(segment_file_name(lid));
        if let Some(at) = valid_frame_in(disk, &lpath, 0, min_seq)? {
            return Err(corrupt(format!(
                "{}; valid records follow in {} at offset {at}",
                damage.reason,
                lpath.display()
            )));
        }
    }
    Ok(())
}

/// Where a valid frame with sequence >= `min_seq` starts in the file at `path`, from `from`
/// on (`None`: nowhere, or the file is only a torn header).
fn valid_frame_in(
    disk: &dyn Disk,
    path: &Path,
    from: u64,
    min_seq: u64,
) -> Result<Option<u64>, RecoveryError> {
    let file = disk.open(path, false).map_err(io_err(path, "open"))?;
    match frame_params(&*file, path)? {
        Some(params) => valid_frame_after(&*file, path, from, min_seq, params),
        None => Ok(None),
    }
}

/// The salt and frame limit to look for frames of the segment in `file` with (its header's),
/// or `None` for a segment that is only a torn header (no frames). A damaged header in front
/// of more bytes, or an intact header this build does not read, is an error.
fn frame_params(file: &dyn DiskFile, path: &Path) -> Result<Option<FrameParams>, RecoveryError> {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let got = read_exact_at(file, 0, &mut header).map_err(io_err(path, "read header"))?;
    let file_len = file.len().map_err(io_err(path, "len"))?;
    let corrupt = |detail| RecoveryError::Corruption {
        file: path.to_path_buf(),
        offset: 0,
        detail,
    };
    match decode_header(header.get(..got).unwrap_or(&[])) {
        Ok(h) => Ok(Some((h.salt, h.frame_max))),
        Err(HeaderError::Damaged(reason)) if file_len > SEGMENT_HEADER_BYTES as u64 => {
            Err(corrupt(damaged_header_with_frames(&reason, file_len)))
        }
        Err(HeaderError::Damaged(_)) => Ok(None),
        Err(HeaderError::Foreign(detail)) => Err(corrupt(detail)),
    }
}

/// Whether a valid frame with sequence >= `min_seq` starts anywhere in `[from, len)`.
fn valid_frame_after(
    file: &dyn DiskFile,
    path: &Path,
    from: u64,
    min_seq: u64,
    params: FrameParams,
) -> Result<Option<u64>, RecoveryError> {
    let len = file.len().map_err(io_err(path, "len"))?;
    let mut window: Vec<u8> = Vec::new();
    let mut win_start = from;
    let mut frame_buf: Vec<u8> = Vec::new();
    let mut off = from;
    while off + (FRAME_HEADER_BYTES as u64) < len {
        let rel = off.saturating_sub(win_start) as usize;
        if off < win_start || rel + FRAME_HEADER_BYTES > window.len() {
            let want = WINDOW_BYTES.min((len - off) as usize);
            window.resize(want, 0);
            let got = read_exact_at(file, off, &mut window).map_err(io_err(path, "read"))?;
            window.truncate(got);
            win_start = off;
            continue;
        }
        let here = window.get(rel..).unwrap_or(&[]);
        let candidate = Candidate {
            file,
            path,
            off,
            len,
            params,
        };
        if candidate.is_valid_frame(here, min_seq, &mut frame_buf)? {
            return Ok(Some(off));
        }
        off += 1;
    }
    Ok(None)
}

/// A position where a frame might start.
struct Candidate<'a> {
    file: &'a dyn DiskFile,
    path: &'a Path,
    off: u64,
    len: u64,
    params: FrameParams,
}

impl Candidate<'_> {
    /// Whether a valid frame with sequence >= `min_seq` starts here (`here`: the window from
    /// this position on; a frame longer than it is read into `frame_buf`).
    fn is_valid_frame(
        &self,
        here: &[u8],
        min_seq: u64,
        frame_buf: &mut Vec<u8>,
    ) -> Result<bool, RecoveryError> {
        let (salt, frame_max) = self.params;
        let Ok(flen) = codec::peek_len(here, frame_max, salt) else {
            return Ok(false);
        };
        let total = FRAME_HEADER_BYTES + flen as usize;
        if self.off + total as u64 > self.len {
            return Ok(false);
        }
        let candidate: &[u8] = if here.len() >= total {
            here
        } else {
            frame_buf.resize(total, 0);
            let got =
                read_exact_at(self.file, self.off, frame_buf).map_err(io_err(self.path, "read"))?;
            frame_buf.get(..got).unwrap_or(&[])
        };
        Ok(matches!(codec::decode(candidate, frame_max, salt), Ok((r, _)) if r.seq >= min_seq))
    }
}

/// Cuts the torn tail at `damage` in `tail`'s segment, with the record-less `later` segments,
/// as `policy` says, and reports it.
pub(super) fn cut(
    disk: &dyn Disk,
    dir: &Path,
    tail: &Tail<'_>,
    damage: Damage,
    later: &[u64],
    mut report: RecoveryReport,
    policy: CutPolicy,
) -> Result<RecoveryReport, RecoveryError> {
    let cut_bytes = tail.file_len - damage.offset;
    match policy {
        CutPolicy::OnDisk => {
            tracing::warn!(
                file = %tail.path.display(),
                offset = damage.offset,
                cut_bytes,
                reason = %damage.reason,
                "cutting torn tail"
            );
            cut_on_disk(disk, dir, tail, &damage, later, &mut report)?;
        }
        CutPolicy::InMemory => {
            tracing::warn!(
                file = %tail.path.display(),
                offset = damage.offset,
                ignored_bytes = cut_bytes,
                later_segments = later.len(),
                reason = %damage.reason,
                "torn tail left on disk and ignored (read-only recovery)"
            );
            if damage.offset >= SEGMENT_HEADER_BYTES as u64 {
                report.active = Some((tail.id, damage.offset));
            }
        }
    }
    report.torn_tail = Some(TornTail {
        file: tail.path.to_path_buf(),
        offset: damage.offset,
        cut_bytes,
        reason: damage.reason,
    });
    Ok(report)
}

/// The cut on disk: later segments first (they hold nothing), then the damaged one; durable
/// before the store goes on.
fn cut_on_disk(
    disk: &dyn Disk,
    dir: &Path,
    tail: &Tail<'_>,
    damage: &Damage,
    later: &[u64],
    report: &mut RecoveryReport,
) -> Result<(), RecoveryError> {
    let path = tail.path;
    for &lid in later.iter().rev() {
        let lpath = dir.join(segment_file_name(lid));
        disk.remove(&lpath).map_err(io_err(&lpath, "remove"))?;
        report.removed_segments.push(lpath);
    }
    if damage.offset < SEGMENT_HEADER_BYTES as u64 {
        // The header itself is torn: the segment never held a record.
        // `report.active` keeps the previous segment (or none), which stays the active one.
        disk.remove(path).map_err(io_err(path, "remove"))?;
        report.removed_segments.push(path.to_path_buf());
    } else {
        let mut file = disk.open(path, true).map_err(io_err(path, "open"))?;
        file.truncate(damage.offset)
            .map_err(io_err(path, "truncate"))?;
        file.sync_data().map_err(io_err(path, "sync"))?;
        report.active = Some((tail.id, damage.offset));
    }
    if !report.removed_segments.is_empty() {
        disk.sync_dir(dir).map_err(io_err(dir, "sync dir"))?;
    }
    Ok(())
}
