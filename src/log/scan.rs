//! Reading the log back: scan every segment in order, hand each valid record to a visitor,
//! and classify damage.
//!
//! * Damage after which no valid record exists anywhere in the log is a **torn tail**. The
//!   [`CutPolicy`] says what happens to it: [`CutPolicy::OnDisk`] (a writable open) cuts the
//!   bytes from the damage on (truncate + sync; later, record-less segment files are removed +
//!   directory sync), so no later session sees them (INV-RECOVERY-IDEMPOTENT);
//!   [`CutPolicy::InMemory`] (a read-only open) leaves every file as it is and stops there.
//! * Damage followed by a valid record (in the same segment or a later one), a valid frame with
//!   the wrong sequence, or a segment header that disagrees with its name or with the sequence
//!   is **corruption**: the scan fails with the file and offset, and nothing is dropped
//!   (INV-CORRUPTION-FAILS-CLOSED), whatever the cut policy.
//! * An intact header this build does not read (another format version, a foreign file
//!   named like a segment) is an error too, never damage: nothing of it is cut or removed.
//!
//! How "nothing valid follows" is decided is `log::damage`'s. Each segment is read with its
//! own salt and frame limit from its header, so a store opened with a smaller frame limit than
//! the data was written with still reads it all. A damaged segment header with bytes after it
//! is corruption: the writer appends frames only after the header is durable, so a header torn
//! by a crash has nothing after it.
//!
//! The scan streams through segments with a bounded buffer (it never holds more than one read
//! window plus one frame of at most the maximum frame size).

use super::damage::{self, Damage};
use super::report::{io_err, RecoveryError, RecoveryReport, TornTail};
use super::segment::{
    decode_header, parse_segment_file_name, segment_file_name, DiskPos, HeaderError, SegmentHeader,
    SEGMENT_HEADER_BYTES,
};
use crate::codec::{self, DecodeError, EventRecord, Record, RecordBody, FRAME_HEADER_BYTES};
use crate::env::{Disk, DiskFile};
use crate::mutant::{Bugs, Mutant};
use crate::sync::{thread, StdArc};
use std::path::Path;

/// Read window size.
pub(super) const WINDOW_BYTES: usize = 1 << 20;

/// What the scan does with a torn tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPolicy {
    /// Cut it on disk, durably, and remove the record-less segments after it: what a writable
    /// open does before it appends after the tail.
    OnDisk,
    /// Leave every file as it is and stop reading at the tail: what a read-only open does.
    InMemory,
}

/// Where the scan hands each valid record, with its frame's position and, for an event when
/// the scan was given a [`Digest`], the event's digest. It may refuse a record (for example a
/// broken entity chain), which fails the scan as corruption at that record.
pub type Visit<'a> = dyn FnMut(&Record<'_>, DiskPos, Option<&[u8; 32]>) -> Result<(), String> + 'a;

/// A digest of each event the scan computes ahead of the visitor (recovery's event hash):
/// over a read window of many events, a helper thread computes part of them while the scan
/// computes the rest, so recovery hashes on two cores. The visitor still sees every record
/// in order, one at a time, with its digest.
pub type Digest = fn(&EventRecord<'_>) -> [u8; 32];

/// Fewest events in one read window for which the scan hands part of the digests to a helper
/// thread (below it, starting the thread costs more than it saves).
const PARALLEL_DIGESTS_MIN: usize = 256;

/// Scans the log in `dir`: every valid record is handed to `visit` in sequence order; a torn
/// tail is handled by `cut`.
pub fn scan(
    disk: &dyn Disk,
    dir: &Path,
    cut: CutPolicy,
    visit: &mut Visit<'_>,
) -> Result<RecoveryReport, RecoveryError> {
    scan_seeded(disk, dir, cut, None, visit, Bugs::default())
}

/// [`scan`] with the seeded bug `bugs` (the mutant build's recovery mutants).
pub(crate) fn scan_seeded(
    disk: &dyn Disk,
    dir: &Path,
    cut: CutPolicy,
    digest: Option<Digest>,
    visit: &mut Visit<'_>,
    bugs: Bugs,
) -> Result<RecoveryReport, RecoveryError> {
    let _span = tracing::info_span!("recover", dir = %dir.display()).entered();
    let (ids, superseded) = live_segment_ids(disk, dir)?;
    let mut report = RecoveryReport::default();
    if !superseded.is_empty() {
        remove_superseded(disk, dir, &superseded, cut, &mut report, bugs)?;
    }
    let mut buf: StdArc<Vec<u8>> = StdArc::new(Vec::new());
    for (i, &id) in ids.iter().enumerate() {
        let path = dir.join(segment_file_name(id));
        let file = disk.open(&path, false).map_err(io_err(&path, "open"))?;
        report.segments += 1;
        let scanned = scan_segment(&*file, &path, id, digest, &mut report, &mut buf, visit)?;
        let file_len = file.len().map_err(io_err(&path, "len"))?;
        drop(file);
        let Some(mut found) = scanned else {
            report.active = Some((id, file_len));
            continue;
        };
        let tail = damage::Tail {
            id,
            path: &path,
            file_len,
        };
        if bugs.has(Mutant::RecoveryKeepsTornTail) && found.offset >= SEGMENT_HEADER_BYTES as u64 {
            return Ok(keep_torn_tail(report, &tail, found));
        }
        if bugs.has(Mutant::RecoveryLooksInsideTornFrame) {
            found.resume = found.offset + 1;
        }
        let later: &[u64] = ids.get(i + 1..).unwrap_or(&[]);
        if !bugs.has(Mutant::RecoveryCutsAtHole) {
            damage::nothing_valid_follows(disk, dir, &tail, &found, later, report.next_seq)?;
        }
        return damage::cut(disk, dir, &tail, found, later, report, cut);
    }
    tracing::info!(
        segments = report.segments,
        records = report.records,
        next_seq = report.next_seq,
        "recovery scanned the log"
    );
    Ok(report)
}

/// The segment ids in `dir`, in order.
fn segment_ids(disk: &dyn Disk, dir: &Path) -> Result<Vec<u64>, RecoveryError> {
    let names = disk.list(dir).map_err(io_err(dir, "list"))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The segment ids to scan, in order, and those a compacted segment supersedes.
///
/// Compaction writes the survivors of sealed segments `a..=b` into a new file, makes it
/// durable and renames it over segment `b`, then removes `a..b`. A crash between the rename
/// and the removals leaves segments `a..b` whose records the compacted `b` (which starts with
/// a `Dropped` record, at or below their first sequence) already holds: they are superseded.
/// A segment that starts below an earlier one without being compacted is left for the scan,
/// which reports it as corruption.
fn live_segment_ids(disk: &dyn Disk, dir: &Path) -> Result<(Vec<u64>, Vec<u64>), RecoveryError> {
    let ids = segment_ids(disk, dir)?;
    if ids.len() < 2 {
        return Ok((ids, Vec::new()));
    }
    let mut live: Vec<(u64, Option<u64>)> = Vec::with_capacity(ids.len());
    let mut superseded = Vec::new();
    for &id in &ids {
        let first = compacted_first_seq(disk, &dir.join(segment_file_name(id)))?;
        if let Some((first, true)) = first {
            while let Some(&(prev, Some(prev_first))) = live.last() {
                if prev_first < first {
                    break;
                }
                superseded.push(prev);
                live.pop();
            }
        }
        live.push((id, first.map(|(f, _)| f)));
    }
    superseded.sort_unstable();
    Ok((live.into_iter().map(|(id, _)| id).collect(), superseded))
}

/// A segment's first sequence (from an intact header) and whether it is compacted (its first
/// frame is a valid `Dropped` record); `None` when the header is not intact.
fn compacted_first_seq(disk: &dyn Disk, path: &Path) -> Result<Option<(u64, bool)>, RecoveryError> {
    let file = disk.open(path, false).map_err(io_err(path, "open"))?;
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let got = read_exact_at(&*file, 0, &mut header).map_err(io_err(path, "read header"))?;
    let Ok(h) = decode_header(header.get(..got).unwrap_or(&[])) else {
        return Ok(None);
    };
    // A Dropped record's frame is tiny: 12 header bytes and a body of at most 1 + 10 + 10.
    let mut frame = [0u8; FRAME_HEADER_BYTES + 32];
    let got = read_exact_at(&*file, SEGMENT_HEADER_BYTES as u64, &mut frame)
        .map_err(io_err(path, "read first frame"))?;
    let here = frame.get(..got).unwrap_or(&[]);
    let compacted = match codec::peek_len(here, h.frame_max, h.salt) {
        Ok(len) => here
            .get(..FRAME_HEADER_BYTES + len as usize)
            .and_then(|f| codec::decode(f, h.frame_max, h.salt).ok())
            .is_some_and(|(r, _)| {
                r.seq == h.first_seq && matches!(r.body, codec::RecordBody::Dropped { .. })
            }),
        Err(_) => false,
    };
    Ok(Some((h.first_seq, compacted)))
}

/// Drops the superseded segments of an interrupted compaction: removed (and the directory
/// synced) by a writable open, ignored by a read-only one.
fn remove_superseded(
    disk: &dyn Disk,
    dir: &Path,
    superseded: &[u64],
    cut: CutPolicy,
    report: &mut RecoveryReport,
    bugs: Bugs,
) -> Result<(), RecoveryError> {
    tracing::warn!(
        segments = superseded.len(),
        "recovery found segments an interrupted compaction had already replaced"
    );
    if cut == CutPolicy::InMemory {
        return Ok(());
    }
    // The directory first: the compaction that left these segments may have crashed before
    // its own directory sync, so the rename that put the compacted segment in place may be
    // only in the kernel's copy of the directory. Unsynced directory operations are not
    // ordered on every file system: without this sync a power loss could keep the unlinks
    // below and lose the rename, and with it the records (spec/Compaction.tla, mutant
    // `recovery_unlinks_before_dir_sync`; seeded bug `RecoveryUnlinksBeforeDirSync`).
    if !bugs.has(Mutant::RecoveryUnlinksBeforeDirSync) {
        disk.sync_dir(dir).map_err(io_err(dir, "sync directory"))?;
    }
    for &id in superseded {
        let path = dir.join(segment_file_name(id));
        disk.remove(&path)
            .map_err(io_err(&path, "remove superseded segment"))?;
        report.removed_segments.push(path);
    }
    disk.sync_dir(dir).map_err(io_err(dir, "sync directory"))?;
    Ok(())
}

/// Seeded bug `RecoveryKeepsTornTail`: the torn tail is classified but left on disk, so the
/// next session appends after it. (A torn segment header is still removed: nothing can be
/// appended after a header that does not say the segment's salt.)
fn keep_torn_tail(
    mut report: RecoveryReport,
    tail: &damage::Tail<'_>,
    found: Damage,
) -> RecoveryReport {
    report.active = Some((tail.id, tail.file_len));
    report.torn_tail = Some(TornTail {
        file: tail.path.to_path_buf(),
        offset: found.offset,
        cut_bytes: 0,
        reason: found.reason,
    });
    report
}

/// Reads `len` bytes at `offset` (fewer at EOF).
pub(super) fn read_exact_at(
    file: &dyn DiskFile,
    offset: u64,
    buf: &mut [u8],
) -> std::io::Result<usize> {
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

/// A segment's header as the scan judges it.
enum Head {
    /// Intact and continuing the log.
    Intact(SegmentHeader),
    /// Torn (only part of a header, nothing after it): the damage.
    Torn(Damage),
}

/// Scans one segment, visiting its records. Returns the first damage, if any.
fn scan_segment(
    file: &dyn DiskFile,
    path: &Path,
    id: u64,
    digest: Option<Digest>,
    report: &mut RecoveryReport,
    buf: &mut StdArc<Vec<u8>>,
    visit: &mut Visit<'_>,
) -> Result<Option<Damage>, RecoveryError> {
    let file_len = file.len().map_err(io_err(path, "len"))?;
    let h = match segment_head(file, path, id, file_len, report.next_seq)? {
        Head::Intact(h) => h,
        Head::Torn(damage) => return Ok(Some(damage)),
    };
    let frames = Frames {
        file,
        path,
        id,
        file_len,
        salt: h.salt,
        frame_max: h.frame_max,
        digest,
    };
    frames.scan(report, buf, visit)
}

/// Reads and judges segment `id`'s header: it must be one this build reads, name this
/// segment and start at `next_seq`.
fn segment_head(
    file: &dyn DiskFile,
    path: &Path,
    id: u64,
    file_len: u64,
    next_seq: u64,
) -> Result<Head, RecoveryError> {
    let corrupt = |detail: String| RecoveryError::Corruption {
        file: path.to_path_buf(),
        offset: 0,
        detail,
    };
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let got = read_exact_at(file, 0, &mut header).map_err(io_err(path, "read header"))?;
    let h = match decode_header(header.get(..got).unwrap_or(&[])) {
        Ok(h) => h,
        Err(HeaderError::Foreign(reason)) => return Err(corrupt(reason)),
        Err(HeaderError::Damaged(reason)) if file_len > SEGMENT_HEADER_BYTES as u64 => {
            return Err(corrupt(damage::damaged_header_with_frames(
                &reason, file_len,
            )))
        }
        // A segment whose creation tore: nothing but (part of) its header.
        Err(HeaderError::Damaged(reason)) => {
            return Ok(Head::Torn(Damage {
                offset: 0,
                reason: format!("segment header: {reason}"),
                resume: file_len,
            }))
        }
    };
    if h.segment_id != id {
        return Err(corrupt(format!(
            "header names segment {} but the file is segment {id}",
            h.segment_id
        )));
    }
    if h.first_seq != next_seq {
        return Err(corrupt(format!(
            "segment starts at sequence {} but the log continues at {next_seq}",
            h.first_seq
        )));
    }
    Ok(Head::Intact(h))
}

/// The frames of one segment, read with the segment's own salt and frame limit.
struct Frames<'a> {
    file: &'a dyn DiskFile,
    path: &'a Path,
    id: u64,
    file_len: u64,
    salt: u32,
    frame_max: u32,
    digest: Option<Digest>,
}

impl Frames<'_> {
    /// Visits every frame after the header; returns the first damage, if any. Sequences must
    /// continue the log without a gap (INV-STABLE-SEQ): a valid frame with another sequence is
    /// corruption.
    fn scan(
        &self,
        report: &mut RecoveryReport,
        buf: &mut StdArc<Vec<u8>>,
        visit: &mut Visit<'_>,
    ) -> Result<Option<Damage>, RecoveryError> {
        // Window over the file: buf holds bytes [win_start, win_start + buf.len()).
        let mut win_start = SEGMENT_HEADER_BYTES as u64;
        StdArc::make_mut(buf).clear();
        let mut pos = win_start; // next frame offset
        let mut frames: Vec<(usize, usize)> = Vec::new();
        while pos < self.file_len {
            // Every whole valid frame of the window first, then their digests, then the
            // visits in order; then whatever stopped the run (the window's end or damage).
            let window = StdArc::clone(buf);
            let at = |p: u64| window.get((p - win_start) as usize..).unwrap_or(&[]);
            let mut records: Vec<Record<'_>> = Vec::new();
            frames.clear();
            let stop = loop {
                if pos >= self.file_len {
                    break None;
                }
                match codec::decode(at(pos), self.frame_max, self.salt) {
                    Ok((record, used)) => {
                        frames.push(((pos - win_start) as usize, used));
                        records.push(record);
                        pos += used as u64;
                    }
                    Err(e) => break Some(e),
                }
            };
            let digests = self.digests(&window, &frames, &records);
            for (i, (record, &(off, used))) in records.iter().zip(&frames).enumerate() {
                let digest = digests.get(i).and_then(Option::as_ref);
                self.visit(record, win_start + off as u64, used, digest, report, visit)?;
            }
            drop(records);
            drop(window);
            match stop {
                None => {}
                Some(DecodeError::Incomplete { needed, .. }) if pos + needed <= self.file_len => {
                    if let Some(short) = self.refill(pos, needed, StdArc::make_mut(buf))? {
                        return Ok(Some(short));
                    }
                    win_start = pos;
                }
                Some(e) => {
                    let here = buf.get((pos - win_start) as usize..).unwrap_or(&[]);
                    return Ok(Some(self.damage_at(pos, here, e)));
                }
            }
        }
        Ok(None)
    }

    /// The digests of the events among `records` (the frames at `frames` of `window`), by
    /// record (`None` for other records; empty without a digest function). With many events,
    /// a helper thread computes the later part from the shared window while this thread
    /// computes the earlier part.
    fn digests(
        &self,
        window: &StdArc<Vec<u8>>,
        frames: &[(usize, usize)],
        records: &[Record<'_>],
    ) -> Vec<Option<[u8; 32]>> {
        let Some(digest) = self.digest else {
            return Vec::new();
        };
        let one = |r: &Record<'_>| match &r.body {
            RecordBody::Event(e) => Some(digest(e)),
            _ => None,
        };
        if records.len() < PARALLEL_DIGESTS_MIN {
            return records.iter().map(one).collect();
        }
        // The helper re-reads its frames' bodies (their checks already passed) and digests the
        // later 55%: this thread also visits every record afterwards.
        let split = records.len() * 9 / 20;
        let theirs: Vec<(usize, usize)> = frames.get(split..).unwrap_or(&[]).to_vec();
        let shared = StdArc::clone(window);
        let helper = thread::Builder::new()
            .name("batpak-recovery-digest".into())
            .spawn(move || {
                theirs
                    .iter()
                    .map(|&(off, used)| {
                        let body = shared.get(off + FRAME_HEADER_BYTES..off + used)?;
                        match codec::decode_body(body).ok()?.body {
                            RecordBody::Event(e) => Some(digest(&e)),
                            _ => None,
                        }
                    })
                    .collect::<Vec<_>>()
            });
        let mut out: Vec<Option<[u8; 32]>> = records
            .get(..split)
            .unwrap_or(&[])
            .iter()
            .map(one)
            .collect();
        match helper.map(|h| h.join()) {
            Ok(Ok(rest)) if rest.len() == records.len() - split => out.extend(rest),
            // No thread (resources) or a failed one: compute the rest here.
            _ => out.extend(records.get(split..).unwrap_or(&[]).iter().map(one)),
        }
        out
    }

    /// One valid frame at `pos`: it must carry the next sequence.
    fn visit(
        &self,
        record: &Record<'_>,
        pos: u64,
        used: usize,
        digest: Option<&[u8; 32]>,
        report: &mut RecoveryReport,
        visit: &mut Visit<'_>,
    ) -> Result<(), RecoveryError> {
        let corrupt = |detail: String| RecoveryError::Corruption {
            file: self.path.to_path_buf(),
            offset: pos,
            detail,
        };
        if record.seq != report.next_seq {
            return Err(corrupt(format!(
                "record has sequence {} where {} was expected",
                record.seq, report.next_seq
            )));
        }
        if let codec::RecordBody::Dropped { to } = record.body {
            if to < record.seq {
                return Err(corrupt(format!(
                    "dropped range {}..{to} ends before it starts",
                    record.seq
                )));
            }
        }
        let at = DiskPos {
            segment_id: self.id,
            offset: pos,
            length: used as u32,
        };
        visit(record, at, digest).map_err(corrupt)?;
        report.records += 1;
        report.next_seq = record.body.next_seq(record.seq);
        Ok(())
    }

    /// The window holds too little of the frame at `pos`: slides it there and reads at least
    /// `needed` bytes. A short read is damage.
    fn refill(
        &self,
        pos: u64,
        needed: u64,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Damage>, RecoveryError> {
        let want = (needed as usize)
            .max(WINDOW_BYTES)
            .min((self.file_len - pos) as usize);
        buf.resize(want, 0);
        let got = read_exact_at(self.file, pos, buf).map_err(io_err(self.path, "read"))?;
        buf.truncate(got);
        if got < needed as usize {
            return Ok(Some(Damage {
                offset: pos,
                reason: format!("short read: {got} of {needed} bytes"),
                resume: pos + 1,
            }));
        }
        Ok(None)
    }

    /// The damage of a frame that does not decode: when its head check holds its extent is
    /// trusted, and the search for valid records after it starts past that extent.
    fn damage_at(&self, pos: u64, here: &[u8], e: DecodeError) -> Damage {
        let resume = match codec::peek_len(here, self.frame_max, self.salt) {
            Ok(len) => pos + (FRAME_HEADER_BYTES as u64) + u64::from(len),
            Err(_) => pos + 1,
        };
        Damage {
            offset: pos,
            reason: e.to_string(),
            resume,
        }
    }
}
