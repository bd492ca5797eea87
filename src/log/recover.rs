//! Recovery: scan every segment in order, hand each valid record to a visitor, and classify
//! damage.
//!
//! * Damage after which no valid record exists anywhere in the log is a **torn tail**: the
//!   bytes from the damage on are cut off on disk (truncate + sync; later, record-less segment
//!   files are removed + directory sync), so no later session sees them
//!   (INV-RECOVERY-IDEMPOTENT).
//! * Damage followed by a valid record (in the same segment or a later one), a valid frame with
//!   the wrong sequence, or a segment header that disagrees with its name or with the sequence
//!   is **corruption**: recovery fails with the file and offset, and nothing is dropped
//!   (INV-CORRUPTION-FAILS-CLOSED).
//! * An intact header this build does not read (another format version, a foreign file
//!   named like a segment) is an error too, never damage: nothing of it is cut or removed.
//!
//! Looking for a valid record after the damage never looks inside the damaged frame itself
//! when its length is known: a frame whose head check (salted, see [`crate::codec`]) holds has
//! a trusted extent, and the search starts after it. A torn last write keeps its frame's
//! header, so bytes of its own payload that happen to form a frame (user data can) never turn
//! a crash into "a valid record follows". Only a frame whose header itself is damaged is
//! searched byte by byte, and there the segment's salt keeps frame-shaped payload bytes from
//! checking out. Each segment is read with its own salt and frame limit from its header, so a
//! store opened with a smaller frame limit than the data was written with still reads it all.
//! A damaged segment header with bytes after it is corruption: the writer appends frames only
//! after the header is durable, so a header torn by a crash has nothing after it.
//!
//! Recovery streams through segments with a bounded buffer (it never holds more than one
//! read window plus one frame of at most the maximum frame size).

use super::segment::{
    decode_header, parse_segment_file_name, segment_file_name, DiskPos, HeaderError,
    SEGMENT_HEADER_BYTES,
};
use crate::codec::Record;
use crate::codec::{self, DecodeError, FRAME_HEADER_BYTES};
use crate::env::{Disk, DiskFile};
use crate::mutant::{Bugs, Mutant};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Read window size.
const WINDOW_BYTES: usize = 1 << 20;

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file that held the damage.
    pub file: PathBuf,
    /// Where the damage started (the file now ends here).
    pub offset: u64,
    /// How many bytes were cut from that file.
    pub cut_bytes: u64,
    /// What the damage was.
    pub reason: String,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files scanned.
    pub segments: usize,
    /// Valid records handed to the visitor.
    pub records: u64,
    /// The sequence the next record must take.
    pub next_seq: u64,
    /// The last segment (id, length in bytes) to continue writing in, if any remains.
    pub active: Option<(u64, u64)>,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTail>,
    /// Segment files removed because they held no record after a torn tail.
    pub removed_segments: Vec<PathBuf>,
}

/// Why recovery failed.
#[derive(Debug)]
pub enum RecoveryError {
    /// An I/O operation failed.
    Io {
        /// File or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// Damage that is not a torn tail (INV-CORRUPTION-FAILS-CLOSED).
    Corruption {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, op, source } => {
                write!(
                    f,
                    "I/O error during recovery: {op} {}: {source}",
                    path.display()
                )
            }
            Self::Corruption {
                file,
                offset,
                detail,
            } => write!(
                f,
                "corruption in {} at offset {offset}: {detail}",
                file.display()
            ),
        }
    }
}

impl std::error::Error for RecoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Corruption { .. } => None,
        }
    }
}

impl From<RecoveryError> for crate::error::StoreError {
    /// An I/O error keeps its path and operation; corruption names its segment (parsed from
    /// the file name, `u64::MAX` for a file that is not a segment).
    fn from(e: RecoveryError) -> Self {
        match e {
            RecoveryError::Io { path, op, source } => Self::IoAt { path, op, source },
            RecoveryError::Corruption {
                file,
                offset,
                detail,
            } => {
                let segment_id = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(parse_segment_file_name)
                    .unwrap_or(u64::MAX);
                Self::CorruptSegment {
                    segment_id,
                    file,
                    offset,
                    detail,
                }
            }
        }
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> RecoveryError + 'a {
    move |source| RecoveryError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// One damage point found while scanning.
struct Damage {
    offset: u64,
    reason: String,
    /// Where the search for valid records after it starts: after the damaged frame's extent
    /// when its head check holds (its length is trusted), else the next byte.
    resume: u64,
}

/// A segment's frame parameters: (salt, frame limit).
type FrameParams = (u32, u32);

/// Reads `len` bytes at `offset` (fewer at EOF).
fn read_exact_at(file: &dyn DiskFile, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let Some(rest) = buf.get_mut(done..) else {
            break;
        };
        let n = file.read_at(offset + done as u64, rest)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Recovers the log in `dir`: every valid record is handed to `visit` in sequence order; a
/// torn tail is cut on disk. `visit` may refuse a record (for example a broken entity chain),
/// which fails recovery as corruption at that record's position.
pub fn recover(
    disk: &dyn Disk,
    dir: &Path,
    visit: &mut dyn FnMut(&Record<'_>, DiskPos) -> Result<(), String>,
) -> Result<RecoveryReport, RecoveryError> {
    recover_impl(disk, dir, visit, Bugs::default())
}

/// [`recover`] with the seeded bug `bugs` (the mutant build's recovery mutants).
pub(crate) fn recover_seeded(
    disk: &dyn Disk,
    dir: &Path,
    visit: &mut dyn FnMut(&Record<'_>, DiskPos) -> Result<(), String>,
    bugs: Bugs,
) -> Result<RecoveryReport, RecoveryError> {
    recover_impl(disk, dir, visit, bugs)
}

fn recover_impl(
    disk: &dyn Disk,
    dir: &Path,
    visit: &mut dyn FnMut(&Record<'_>, DiskPos) -> Result<(), String>,
    bugs: Bugs,
) -> Result<RecoveryReport, RecoveryError> {
    let _span = tracing::info_span!("recover", dir = %dir.display()).entered();
    let names = disk.list(dir).map_err(io_err(dir, "list"))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    let mut report = RecoveryReport::default();
    let mut buf: Vec<u8> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let path = dir.join(segment_file_name(id));
        let file = disk.open(&path, false).map_err(io_err(&path, "open"))?;
        report.segments += 1;
        let scanned = scan_segment(&*file, &path, id, &mut report, &mut buf, visit)?;
        let file_len = file.len().map_err(io_err(&path, "len"))?;
        drop(file);
        match scanned {
            None => report.active = Some((id, file_len)),
            // (A torn segment header is still removed: nothing can be appended after a
            // header that does not say the segment's salt.)
            Some(damage)
                if bugs.has(Mutant::RecoveryKeepsTornTail)
                    && damage.offset >= SEGMENT_HEADER_BYTES as u64 =>
            {
                report.active = Some((id, file_len));
                report.torn_tail = Some(TornTail {
                    file: path,
                    offset: damage.offset,
                    cut_bytes: 0,
                    reason: damage.reason,
                });
                return Ok(report);
            }
            Some(mut damage) => {
                if bugs.has(Mutant::RecoveryLooksInsideTornFrame) {
                    damage.resume = damage.offset + 1;
                }
                let later: &[u64] = ids.get(i + 1..).unwrap_or(&[]);
                return cut_torn_tail(
                    disk,
                    dir,
                    id,
                    &path,
                    file_len,
                    damage,
                    later,
                    report,
                    bugs.has(Mutant::RecoveryCutsAtHole),
                );
            }
        }
    }
    tracing::info!(
        segments = report.segments,
        records = report.records,
        next_seq = report.next_seq,
        "recovery scanned the log"
    );
    Ok(report)
}

/// Scans one segment, visiting its records. Returns the first damage, if any.
#[allow(clippy::too_many_arguments)]
fn scan_segment(
    file: &dyn DiskFile,
    path: &Path,
    id: u64,
    report: &mut RecoveryReport,
    buf: &mut Vec<u8>,
    visit: &mut dyn FnMut(&Record<'_>, DiskPos) -> Result<(), String>,
) -> Result<Option<Damage>, RecoveryError> {
    let corrupt = |offset: u64, detail: String| RecoveryError::Corruption {
        file: path.to_path_buf(),
        offset,
        detail,
    };
    let file_len = file.len().map_err(io_err(path, "len"))?;
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let got = read_exact_at(file, 0, &mut header).map_err(io_err(path, "read header"))?;
    let h = match decode_header(header.get(..got).unwrap_or(&[])) {
        Ok(h) => h,
        Err(HeaderError::Foreign(reason)) => return Err(corrupt(0, reason)),
        Err(HeaderError::Damaged(reason)) if file_len > SEGMENT_HEADER_BYTES as u64 => {
            return Err(corrupt(0, damaged_header_with_frames(&reason, file_len)))
        }
        Err(HeaderError::Damaged(reason)) => {
            // A segment whose creation tore: nothing but (part of) its header.
            return Ok(Some(Damage {
                offset: 0,
                reason: format!("segment header: {reason}"),
                resume: file_len,
            }));
        }
    };
    let (salt, frame_max) = (h.salt, h.frame_max);
    if h.segment_id != id {
        return Err(corrupt(
            0,
            format!(
                "header names segment {} but the file is segment {id}",
                h.segment_id
            ),
        ));
    }
    if h.first_seq != report.next_seq {
        return Err(corrupt(
            0,
            format!(
                "segment starts at sequence {} but the log continues at {}",
                h.first_seq, report.next_seq
            ),
        ));
    }
    // Window over the file: buf holds bytes [win_start, win_start + buf.len()).
    let mut win_start = SEGMENT_HEADER_BYTES as u64;
    buf.clear();
    let mut pos = win_start; // next frame offset
    loop {
        if pos >= file_len {
            return Ok(None);
        }
        let rel = (pos - win_start) as usize;
        let here = buf.get(rel..).unwrap_or(&[]);
        let decoded = codec::decode(here, frame_max, salt);
        match decoded {
            Ok((record, used)) => {
                if record.seq != report.next_seq {
                    return Err(corrupt(
                        pos,
                        format!(
                            "record has sequence {} where {} was expected",
                            record.seq, report.next_seq
                        ),
                    ));
                }
                let dp = DiskPos {
                    segment_id: id,
                    offset: pos,
                    length: used as u32,
                };
                visit(&record, dp).map_err(|detail| corrupt(pos, detail))?;
                report.records += 1;
                report.next_seq += 1;
                pos += used as u64;
            }
            Err(DecodeError::Incomplete { needed, .. }) if pos + needed <= file_len => {
                // Refill: the window holds too little; slide it to `pos`.
                let want = (needed as usize)
                    .max(WINDOW_BYTES)
                    .min((file_len - pos) as usize);
                buf.resize(want, 0);
                let got = read_exact_at(file, pos, buf).map_err(io_err(path, "read"))?;
                buf.truncate(got);
                win_start = pos;
                if got < needed as usize {
                    return Ok(Some(Damage {
                        offset: pos,
                        reason: format!("short read: {got} of {needed} bytes"),
                        resume: pos + 1,
                    }));
                }
            }
            Err(e) => {
                let resume = match codec::peek_len(here, frame_max, salt) {
                    Ok(len) => pos + (FRAME_HEADER_BYTES as u64) + u64::from(len),
                    Err(_) => pos + 1,
                };
                return Ok(Some(Damage {
                    offset: pos,
                    reason: e.to_string(),
                    resume,
                }));
            }
        }
    }
}

/// Why a damaged segment header followed by more bytes is corruption: the writer appends
/// frames only after the header is durable, so a header torn by a crash (during the roll that
/// created it) never has bytes after it. The frames' salt is in the lost header, so they
/// cannot be checked either; failing closed keeps them.
fn damaged_header_with_frames(reason: &str, file_len: u64) -> String {
    format!(
        "segment header: {reason}, yet the file holds {} bytes after it (a header torn by a crash has nothing after it)",
        file_len.saturating_sub(SEGMENT_HEADER_BYTES as u64)
    )
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
    (salt, frame_max): FrameParams,
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
        if let Ok(flen) = codec::peek_len(here, frame_max, salt) {
            let total = FRAME_HEADER_BYTES + flen as usize;
            if off + total as u64 <= len {
                let candidate: &[u8] = if here.len() >= total {
                    here
                } else {
                    frame_buf.resize(total, 0);
                    let got =
                        read_exact_at(file, off, &mut frame_buf).map_err(io_err(path, "read"))?;
                    frame_buf.get(..got).unwrap_or(&[])
                };
                if let Ok((r, _)) = codec::decode(candidate, frame_max, salt) {
                    if r.seq >= min_seq {
                        return Ok(Some(off));
                    }
                }
            }
        }
        off += 1;
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn cut_torn_tail(
    disk: &dyn Disk,
    dir: &Path,
    id: u64,
    path: &Path,
    file_len: u64,
    damage: Damage,
    later: &[u64],
    mut report: RecoveryReport,
    blindly: bool,
) -> Result<RecoveryReport, RecoveryError> {
    let min_seq = report.next_seq;
    // Is anything valid after the damage? Then it is corruption, not a torn tail.
    // (Seeded bug `blindly`: skip both checks.)
    if !blindly {
        {
            let file = disk.open(path, false).map_err(io_err(path, "open"))?;
            let found = match frame_params(&*file, path)? {
                Some(params) => valid_frame_after(&*file, path, damage.resume, min_seq, params)?,
                None => None,
            };
            if let Some(at) = found {
                return Err(RecoveryError::Corruption {
                    file: path.to_path_buf(),
                    offset: damage.offset,
                    detail: format!("{}; a valid record follows at offset {at}", damage.reason),
                });
            }
        }
        for &lid in later {
            let lpath = dir.join(segment_file_name(lid));
            let file = disk.open(&lpath, false).map_err(io_err(&lpath, "open"))?;
            let found = match frame_params(&*file, &lpath)? {
                Some(params) => valid_frame_after(&*file, &lpath, 0, min_seq, params)?,
                None => None,
            };
            if let Some(at) = found {
                return Err(RecoveryError::Corruption {
                    file: path.to_path_buf(),
                    offset: damage.offset,
                    detail: format!(
                        "{}; valid records follow in {} at offset {at}",
                        damage.reason,
                        lpath.display()
                    ),
                });
            }
        }
    }
    tracing::warn!(
        file = %path.display(),
        offset = damage.offset,
        cut_bytes = file_len - damage.offset,
        reason = %damage.reason,
        "cutting torn tail"
    );
    // Cut: later segments first (they hold nothing), then the damaged one.
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
        report.active = Some((id, damage.offset));
    }
    if !report.removed_segments.is_empty() {
        disk.sync_dir(dir).map_err(io_err(dir, "sync dir"))?;
    }
    report.torn_tail = Some(TornTail {
        file: path.to_path_buf(),
        offset: damage.offset,
        cut_bytes: file_len - damage.offset,
        reason: damage.reason,
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_errors_name_the_file_the_offset_and_the_operation() {
        let c = RecoveryError::Corruption {
            file: PathBuf::from("/db/00000000000000000000.seg"),
            offset: 77,
            detail: "frame CRC mismatch".into(),
        };
        assert_eq!(
            c.to_string(),
            "corruption in /db/00000000000000000000.seg at offset 77: frame CRC mismatch"
        );
        assert!(std::error::Error::source(&c).is_none());
        let io = RecoveryError::Io {
            path: PathBuf::from("/db"),
            op: "list",
            source: io::Error::other("boom"),
        };
        assert_eq!(io.to_string(), "I/O error during recovery: list /db: boom");
        assert!(std::error::Error::source(&io).is_some());
    }
}
