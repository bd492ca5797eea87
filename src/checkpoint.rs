//! The recovery checkpoint: a cache of the event hashes recovery would otherwise compute.
//!
//! Opening a store replays the whole log; the profile of a 1M-event open shows the entity
//! chains' blake3 hashes as its largest single cost (about a third of the CPU time). The writer
//! saves, at a clean close and every `with_checkpoint_every_n_events` durable records, the hash of
//! every visible event below the durable frontier in one file, [`FILE_NAME`]; the next open
//! uses a saved hash instead of computing it, for a frame that is exactly the one the
//! checkpoint saw. Everything else of recovery is unchanged: every frame is still read,
//! its checks (head, CRC, canonical body) verified, its sequence checked and replayed through
//! the writer's bookkeeping, so a torn tail, a hole or a damaged frame anywhere in the log
//! fails or is cut exactly as without a checkpoint (INV-CORRUPTION-FAILS-CLOSED), and
//! sequences, entity clocks, idempotency keys, fences and consumer checkpoints come from the
//! log itself (INV-STABLE-SEQ).
//!
//! The checkpoint is a cache, never a source of truth, and never fails an open. It is used only
//! when all of this holds, else it is ignored with a `tracing` warning and every hash is
//! computed:
//! * the file is whole: magic, format version, and a blake3 checksum over everything before
//!   it (a torn or damaged file fails it);
//! * every segment it covers is on disk with the same header (id, first sequence, and salt: a
//!   random number drawn when the file was created, so a segment rewritten by a compaction or
//!   one of another store differs), at least as long as the covered part, and with the same
//!   12-byte frame head (length and checks, CRC included) at its last covered frame;
//! * and, per event, the frame the scan reads is the one of its entry (below).
//!
//! Layout (version 2): per covered segment a fingerprint (id, first sequence, salt, covered
//! length, last covered frame's offset and head); one bit per sequence of the covered range
//! `first_seq..first_seq + span`, set for exactly the visible events the writer saved (clear
//! for records that are not events, for hidden events of cancelled fences, for dropped
//! ranges and sequences no longer in the log); and, per set bit in order, an entry of 36
//! bytes: 4 bytes of the event id ([`id_check`], the xor of its four 32-bit words) and the
//! 32-byte hash. An event's sequence is not stored: the scan hands records over in sequence
//! order, and the entry of sequence `s` is the one whose rank is the number of set bits below
//! `s` (a sequence is the record's place in the log, checked dense by the scan; a different
//! record at a covered sequence would be in a rewritten segment, whose salt the fingerprint
//! refuses). The entry is taken only if the frame lies inside a covered segment's covered
//! bytes and the event's id matches the entry's 4 bytes; the first entry that does not (an
//! entry list out of step with the log: a bit set for the wrong sequence, an entry missing
//! or swapped) turns the checkpoint off for the rest of the scan, so one mismatch never
//! shifts later frames onto other events' hashes: everything after it is computed. Version 1
//! (72-byte entries naming sequence, id, segment, offset and length) is refused by its
//! version number, never misread. On a closed store of 1M ~100-byte events in batches of
//! 1,000 the file takes 36.1 bytes per event (36 per entry, 1/8 per sequence of the bitmap),
//! against 72 for version 1.
//!
//! The writer writes only events below the durable frontier (synced), through a temporary
//! file that is synced, renamed over [`FILE_NAME`], and the directory synced: a crash at any
//! point leaves the old checkpoint, the new one, or (before the first rename is durable) none.
//!
//! Fault model (how kernels and disks treat these steps, as `SimDisk` models them):
//! * the temporary file's bytes are in the page cache until its fsync: a power loss before
//!   it may keep none, part, or garbage of them, but only under the temporary name (the
//!   rename comes after the fsync), which the next save removes;
//! * the rename is an entry of the directory, durable only after the directory's fsync: a
//!   power loss before it (even after a process crash, whose page cache kept the rename and
//!   whose next process may already have opened with the new file) leaves the old
//!   checkpoint or none: an older checkpoint covers a prefix of today's log (its segments'
//!   covered bytes are durable and never cut), or segments a compaction has since rewritten,
//!   which its fingerprints refuse;
//! * a checkpoint covers only events below the durable frontier (synced by a successful
//!   fsync), so no crash loses what it covers, and a failed fsync (the writer latches, the
//!   frontier stays) saves none; the last segment that an open after a crash rewrites keeps
//!   its bytes and header, so its fingerprint still holds.
//!
//! What a saved hash does not re-check: that the event's bytes are those the hash was
//! computed from (the frame's CRC is still verified, so damage is found; a frame rewritten
//! with valid checks at the same sequence in a covered segment of the same salt, with an id
//! of the same 4 check bytes, is not a fault this store's disk model makes). The entry keeps
//! id bytes rather than the frame's CRC because the writer saves from its index, which keeps
//! no CRC (it would cost every event 4 bytes of memory, or the close a re-read of the log). `batpak verify` recomputes every hash and entity chain from the bytes.
//!
//! The encode/decode pair ([`encode`], [`decode`]) is the only place that knows the layout.

use crate::append::DiskPos;
use crate::codec::{EventRecord, FRAME_HEADER_BYTES};
use crate::env::Disk;
use crate::index::Index;
use crate::log::segment::{
    decode_header, segment_file_name, SegmentHeader, SyncMode, SEGMENT_HEADER_BYTES,
};
use crate::mutant::{Bugs, Mutant};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// The checkpoint's file name in the store's directory.
pub const FILE_NAME: &str = "recovery.ckpt";
/// The temporary file a checkpoint is written to before it is renamed over [`FILE_NAME`].
pub const TEMP_FILE_NAME: &str = "recovery.ckpt.tmp";

const MAGIC: [u8; 8] = *b"BPKRCKP1";
/// Version 1 saved 72 bytes per event (sequence, id, segment, offset, length, hash); a file of
/// it is refused by the version check, never misread.
const VERSION: u32 = 2;
/// Magic, version, segment count, entry count, first covered sequence, covered sequences.
const HEAD_BYTES: usize = 8 + 4 + 4 + 8 + 8 + 8;
/// Id, first sequence, salt, covered length, last covered frame's offset and head.
const SEGMENT_BYTES: usize = 8 + 8 + 4 + 8 + 8 + FRAME_HEADER_BYTES;
/// The event id's fold ([`id_check`]) and the event hash.
const ENTRY_BYTES: usize = 4 + 32;
const SUM_BYTES: usize = 32;

/// A covered segment as the checkpoint saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub segment_id: u64,
    pub first_seq: u64,
    pub salt: u32,
    /// Bytes of the segment the checkpoint covers (up to the end of its last covered frame).
    pub covered_len: u64,
    /// Offset of the last covered frame.
    pub last_offset: u64,
    /// That frame's 12-byte head (length, head check, CRC).
    pub last_head: [u8; FRAME_HEADER_BYTES],
}

/// One covered event; its sequence is implied by its rank among the set bits of
/// [`Checkpoint::covered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// [`id_check`] of the event's id.
    pub id_check: u32,
    pub hash: [u8; 32],
}

/// A checkpoint's content.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Checkpoint {
    pub segments: Vec<Fingerprint>,
    /// Sequence of bit 0 of `covered`.
    pub first_seq: u64,
    /// How many sequences `covered` spans (from `first_seq`).
    pub span: u64,
    /// One bit per sequence of `first_seq..first_seq + span` (least significant bit first):
    /// set for the sequences that have an entry (visible events), clear for the others
    /// (records that are not events, hidden events, dropped ranges).
    pub covered: Vec<u8>,
    /// One per set bit of `covered`, in sequence order.
    pub entries: Vec<Entry>,
}

/// The 4 bytes an entry keeps of its event's id: the xor of the id's four 32-bit words.
pub(crate) fn id_check(event_id: u128) -> u32 {
    (event_id ^ (event_id >> 32) ^ (event_id >> 64) ^ (event_id >> 96)) as u32
}

/// Whether bit `i` of `bits` is set.
fn bit(bits: &[u8], i: u64) -> bool {
    usize::try_from(i / 8)
        .ok()
        .and_then(|b| bits.get(b))
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// The checkpoint file's bytes.
pub(crate) fn encode(c: &Checkpoint) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        HEAD_BYTES
            + c.segments.len() * SEGMENT_BYTES
            + c.covered.len()
            + c.entries.len() * ENTRY_BYTES
            + SUM_BYTES,
    );
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(c.segments.len() as u32).to_le_bytes());
    out.extend_from_slice(&(c.entries.len() as u64).to_le_bytes());
    out.extend_from_slice(&c.first_seq.to_le_bytes());
    out.extend_from_slice(&c.span.to_le_bytes());
    for s in &c.segments {
        out.extend_from_slice(&s.segment_id.to_le_bytes());
        out.extend_from_slice(&s.first_seq.to_le_bytes());
        out.extend_from_slice(&s.salt.to_le_bytes());
        out.extend_from_slice(&s.covered_len.to_le_bytes());
        out.extend_from_slice(&s.last_offset.to_le_bytes());
        out.extend_from_slice(&s.last_head);
    }
    out.extend_from_slice(&c.covered);
    for e in &c.entries {
        out.extend_from_slice(&e.id_check.to_le_bytes());
        out.extend_from_slice(&e.hash);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Reads fixed-width fields off the front of a byte slice.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| "ends early".to_string())?;
        self.0 = rest;
        Ok(*head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.take().map(u64::from_le_bytes)
    }
}

/// A checkpoint from its file's bytes, or why they are not a whole one of this version.
pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    let Some(body_len) = bytes.len().checked_sub(SUM_BYTES) else {
        return Err(format!("{} bytes: shorter than a checksum", bytes.len()));
    };
    let (body, sum) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != sum {
        return Err("checksum mismatch (torn or damaged)".into());
    }
    let mut c = Cursor(body);
    if c.take::<8>()? != MAGIC {
        return Err("not a batpak recovery checkpoint (bad magic)".into());
    }
    let version = c.u32()?;
    if version != VERSION {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    let segments = c.u32()? as usize;
    let entries = c.u64()?;
    let first_seq = c.u64()?;
    let span = c.u64()?;
    let bitmap = span.div_ceil(8);
    let expect = (segments as u64)
        .checked_mul(SEGMENT_BYTES as u64)
        .zip(entries.checked_mul(ENTRY_BYTES as u64))
        .and_then(|(a, b)| a.checked_add(b))
        .and_then(|n| n.checked_add(bitmap))
        .and_then(|n| n.checked_add(HEAD_BYTES as u64));
    if expect != Some(body.len() as u64) || first_seq.checked_add(span).is_none() {
        return Err(format!(
            "{segments} segments, {span} sequences and {entries} entries do not fill {} bytes",
            body.len()
        ));
    }
    let mut out = Checkpoint {
        segments: Vec::with_capacity(segments),
        first_seq,
        span,
        covered: Vec::new(),
        entries: Vec::with_capacity(usize::try_from(entries).unwrap_or(0)),
    };
    for _ in 0..segments {
        out.segments.push(Fingerprint {
            segment_id: c.u64()?,
            first_seq: c.u64()?,
            salt: c.u32()?,
            covered_len: c.u64()?,
            last_offset: c.u64()?,
            last_head: c.take()?,
        });
    }
    let (covered, rest) =
        c.0.split_at_checked(usize::try_from(bitmap).map_err(|_| "bitmap too large".to_string())?)
            .ok_or_else(|| "ends early".to_string())?;
    c.0 = rest;
    let set: u64 = covered.iter().map(|b| u64::from(b.count_ones())).sum();
    if set != entries {
        return Err(format!("{set} covered sequences for {entries} entries"));
    }
    if (span..bitmap * 8).any(|i| bit(covered, i)) {
        return Err("bits set past the covered sequences".into());
    }
    out.covered = covered.to_vec();
    for _ in 0..entries {
        out.entries.push(Entry {
            id_check: c.u32()?,
            hash: c.take()?,
        });
    }
    Ok(out)
}

/// What the writer saves: every visible event of `index` below `durable` (the durable
/// frontier), with the fingerprints of their segments read from `dir`. `None` when there is
/// nothing to save.
pub(crate) fn collect(
    disk: &dyn Disk,
    dir: &Path,
    index: &Index,
    durable: u64,
) -> io::Result<Option<Checkpoint>> {
    let mut c = Checkpoint::default();
    // Segment id -> (index into c.segments, last covered frame).
    let mut seen: BTreeMap<u64, (u32, DiskPos)> = BTreeMap::new();
    let mut seqs: Vec<u64> = Vec::new();
    for pos in 0..index.len() {
        let Some(s) = index.slot_at(pos as u32) else {
            break;
        };
        if s.seq >= durable {
            break;
        }
        let d = s.disk_pos;
        let next = seen.len() as u32;
        let at = seen.entry(d.segment_id).or_insert((next, d));
        if d.offset >= at.1.offset {
            at.1 = d;
        }
        if seqs.last().is_some_and(|&p| p >= s.seq) {
            // The index is in sequence order; anything else saves nothing rather than a
            // list out of step.
            return Ok(None);
        }
        seqs.push(s.seq);
        c.entries.push(Entry {
            id_check: id_check(s.event_id),
            hash: s.hash_chain.event_hash,
        });
    }
    let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
        return Ok(None);
    };
    c.first_seq = first;
    c.span = last - first + 1;
    c.covered = vec![0u8; usize::try_from(c.span.div_ceil(8)).unwrap_or(0)];
    for s in seqs {
        let i = s - first;
        if let Some(b) = usize::try_from(i / 8)
            .ok()
            .and_then(|b| c.covered.get_mut(b))
        {
            *b |= 1 << (i % 8);
        }
    }
    let mut segments: Vec<(u32, Fingerprint)> = Vec::with_capacity(seen.len());
    for (&id, &(i, last)) in &seen {
        let path = dir.join(segment_file_name(id));
        let file = disk.open(&path, false)?;
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        read_exact(&*file, 0, &mut header)?;
        let h = decode_header(&header)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?;
        let mut last_head = [0u8; FRAME_HEADER_BYTES];
        read_exact(&*file, last.offset, &mut last_head)?;
        segments.push((
            i,
            Fingerprint {
                segment_id: id,
                first_seq: h.first_seq,
                salt: h.salt,
                covered_len: last.offset + u64::from(last.length),
                last_offset: last.offset,
                last_head,
            },
        ));
    }
    segments.sort_by_key(|(i, _)| *i);
    c.segments = segments.into_iter().map(|(_, f)| f).collect();
    Ok(Some(c))
}

/// Writes `c` durably as the store's checkpoint: temporary file, sync, rename, directory sync.
pub(crate) fn write(disk: &dyn Disk, dir: &Path, c: &Checkpoint, mode: SyncMode) -> io::Result<()> {
    let bytes = encode(c);
    let tmp = dir.join(TEMP_FILE_NAME);
    if disk.exists(&tmp)? {
        disk.remove(&tmp)?;
    }
    let written = (|| {
        let mut f = disk.create_new(&tmp)?;
        f.append(&bytes)?;
        match mode {
            SyncMode::SyncAll => f.sync_all()?,
            SyncMode::SyncData => f.sync_data()?,
        }
        drop(f);
        disk.rename(&tmp, &dir.join(FILE_NAME))?;
        disk.sync_dir(dir)
    })();
    if written.is_err() && disk.exists(&tmp).unwrap_or(false) {
        let _ = disk.remove(&tmp);
    }
    written
}

/// [`write`] of what [`collect`] gathered: what the writer does at a clean close and every
/// `with_checkpoint_every_n_events` durable records. A failure is only logged: the next open
/// computes what the checkpoint would have saved.
pub(crate) fn save(
    disk: &dyn Disk,
    dir: &Path,
    collected: io::Result<Option<Checkpoint>>,
    durable: u64,
    mode: SyncMode,
) {
    let saved = collected.and_then(|c| match c {
        Some(c) => write(disk, dir, &c, mode).map(|()| c.entries.len()),
        None => Ok(0),
    });
    match saved {
        Ok(events) => tracing::debug!(events, durable, "recovery checkpoint saved"),
        Err(e) => {
            tracing::warn!(error = %e, "could not save the recovery checkpoint; the next open computes every hash")
        }
    }
}

fn read_exact(file: &dyn crate::env::DiskFile, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let Some(rest) = buf.get_mut(done..) else {
            break;
        };
        let n = file.read_at(offset + done as u64, rest)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
        }
        done += n;
    }
    Ok(())
}

/// The saved hashes recovery looks up, in sequence order.
#[derive(Debug)]
pub(crate) struct Hashes {
    c: Checkpoint,
    /// Covered segments: id -> covered length.
    covered_len: BTreeMap<u64, u64>,
    /// The scan has handed over every sequence below `cursor_seq`; `cursor_rank` entries
    /// belong to them (the set bits below it).
    cursor_seq: u64,
    cursor_rank: usize,
    /// Set at the first entry that does not match its frame: every later hash is computed.
    off: bool,
    /// Hashes taken from the checkpoint so far.
    pub hits: u64,
    bugs: Bugs,
}

impl Hashes {
    fn new(c: Checkpoint, bugs: Bugs) -> Self {
        Hashes {
            covered_len: c
                .segments
                .iter()
                .map(|s| (s.segment_id, s.covered_len))
                .collect(),
            cursor_seq: c.first_seq,
            cursor_rank: 0,
            off: false,
            hits: 0,
            bugs,
            c,
        }
    }

    /// The saved hash of the event `e` at `pos` (sequence `seq`), if the checkpoint saved one
    /// for exactly this frame. The entry of `seq` is the one whose rank among the entries is
    /// the number of covered sequences below `seq`; it is taken only if the frame lies in a
    /// covered segment's covered bytes and the entry's [`id_check`] is the event's. The first
    /// entry that fails this (an entry list out of step with the log) turns the checkpoint off
    /// for the rest of the scan, so a shifted list never pairs a frame with another's hash.
    pub fn lookup(&mut self, seq: u64, e: &EventRecord<'_>, pos: DiskPos) -> Option<[u8; 32]> {
        if self.off || seq < self.cursor_seq || seq - self.c.first_seq >= self.c.span {
            return None;
        }
        // Count the covered sequences the scan passed since the last lookup (records that are
        // not events, hidden events, dropped ranges): a byte at a time where aligned.
        let (first, bits) = (self.c.first_seq, &self.c.covered);
        let mut i = self.cursor_seq - first;
        let to = seq - first;
        while i < to {
            if i.is_multiple_of(8) && to - i >= 8 {
                let byte = usize::try_from(i / 8).ok().and_then(|b| bits.get(b));
                self.cursor_rank += byte.map_or(0, |b| b.count_ones() as usize);
                i += 8;
            } else {
                self.cursor_rank += usize::from(bit(bits, i));
                i += 1;
            }
        }
        self.cursor_seq = seq + 1;
        if !bit(bits, to) {
            return None;
        }
        let rank = self.cursor_rank;
        self.cursor_rank += 1;
        let x = *self.c.entries.get(rank)?;
        if !self.bugs.has(Mutant::TrustStaleCheckpoint) {
            let inside = self
                .covered_len
                .get(&pos.segment_id)
                .is_some_and(|&len| pos.offset.saturating_add(u64::from(pos.length)) <= len);
            if !inside || x.id_check != id_check(e.event_id) {
                self.off = true;
                tracing::warn!(
                    seq,
                    segment = pos.segment_id,
                    offset = pos.offset,
                    "recovery checkpoint entry does not match its frame; the rest of the log's hashes are computed"
                );
                return None;
            }
        }
        self.hits += 1;
        Some(x.hash)
    }

    /// How many events the checkpoint covers.
    pub fn covered(&self) -> usize {
        self.c.entries.len()
    }
}

/// The checkpoint in `dir`, if there is one and it holds for the segments there (see the
/// module's documentation); anything else is logged and ignored.
pub(crate) fn load(disk: &dyn Disk, dir: &Path, bugs: Bugs) -> Option<Hashes> {
    let path = dir.join(FILE_NAME);
    let bytes = match read_file(disk, &path) {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "recovery checkpoint unreadable; ignored, every hash is computed");
            return None;
        }
    };
    let checked = decode(&bytes).and_then(|c| {
        if !bugs.has(Mutant::TrustStaleCheckpoint) {
            for s in &c.segments {
                check_segment(disk, dir, s)?;
            }
        }
        Ok(c)
    });
    match checked {
        Ok(c) => Some(Hashes::new(c, bugs)),
        Err(reason) => {
            tracing::warn!(file = %path.display(), %reason, "recovery checkpoint does not hold for this log; ignored, every hash is computed");
            None
        }
    }
}

/// How many events the checkpoint in `dir` says it covers, read from its head alone (magic,
/// version, count; nothing else checked): a hint to size the index by before [`load`] has
/// checked the file. `None` when there is no such head.
pub(crate) fn entries_hint(disk: &dyn Disk, dir: &Path) -> Option<u64> {
    let file = disk.open(&dir.join(FILE_NAME), false).ok()?;
    let mut head = [0u8; HEAD_BYTES];
    read_exact(&*file, 0, &mut head).ok()?;
    let mut c = Cursor(&head);
    if c.take::<8>().ok()? != MAGIC || c.u32().ok()? != VERSION {
        return None;
    }
    c.u32().ok()?;
    c.u64().ok()
}

/// Whether covered segment `s` is on disk as the checkpoint saw it.
fn check_segment(disk: &dyn Disk, dir: &Path, s: &Fingerprint) -> Result<(), String> {
    let path = dir.join(segment_file_name(s.segment_id));
    let gone = |e: io::Error| format!("segment {}: {e}", s.segment_id);
    let file = disk.open(&path, false).map_err(gone)?;
    let len = file.len().map_err(gone)?;
    if len < s.covered_len {
        return Err(format!(
            "segment {} has {len} bytes, the checkpoint covers {}",
            s.segment_id, s.covered_len
        ));
    }
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    read_exact(&*file, 0, &mut header).map_err(gone)?;
    let h: SegmentHeader =
        decode_header(&header).map_err(|e| format!("segment {}: header {e:?}", s.segment_id))?;
    if (h.segment_id, h.first_seq, h.salt) != (s.segment_id, s.first_seq, s.salt) {
        return Err(format!(
            "segment {} is not the file the checkpoint saw (rewritten, or of another store)",
            s.segment_id
        ));
    }
    let mut head = [0u8; FRAME_HEADER_BYTES];
    read_exact(&*file, s.last_offset, &mut head).map_err(gone)?;
    if head != s.last_head || s.last_offset + FRAME_HEADER_BYTES as u64 > s.covered_len {
        return Err(format!(
            "segment {}: the last covered frame (offset {}) differs",
            s.segment_id, s.last_offset
        ));
    }
    Ok(())
}

/// The whole file at `path`, `None` if there is none.
fn read_file(disk: &dyn Disk, path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match disk.open(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = usize::try_from(file.len()?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "checkpoint too large"))?;
    let mut buf = vec![0u8; len];
    read_exact(&*file, 0, &mut buf)?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::AppendOptions;
    use crate::coordinate::Coordinate;
    use crate::env::sim::SimDisk;
    use crate::error::StoreError;
    use crate::event::EventKind;
    use crate::log::CutPolicy;
    use crate::recovery::recover_with;
    use crate::region::Region;
    use crate::store::{
        BatchAppendItem, CausationRef, CompactionConfig, CompactionStrategy, Store, StoreConfig,
    };
    use crate::sync::StdArc;
    use std::path::PathBuf;

    const DIR: &str = "/ck";

    fn dir() -> PathBuf {
        PathBuf::from(DIR)
    }

    fn config(disk: &SimDisk, seed: u64) -> StoreConfig {
        StoreConfig::new(DIR)
            .with_lifecycle_events(false)
            .with_disk(StdArc::new(disk.clone()))
            .with_entropy_source(StdArc::new(crate::env::SeededEntropy::new(seed)))
            .with_segment_max_bytes(2048)
    }

    /// A small deterministic generator.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// `steps` random writes to `store`: plain appends (some with idempotency keys), batches,
    /// committed and cancelled fences (a cancelled fence's events hide and its entity's chain
    /// goes on through them).
    fn history(store: &Store, rng: &mut Rng, steps: u32) {
        try_history(store, rng, steps).unwrap();
    }

    /// [`history`], stopping at the first error (a disk that failed).
    fn try_history(store: &Store, rng: &mut Rng, steps: u32) -> Result<(), StoreError> {
        let kind = EventKind::custom(1, 1);
        let coord = |i: u64| Coordinate::new(format!("e:{i}"), "s").unwrap();
        for _ in 0..steps {
            let entity = rng.next(5);
            let c = coord(entity);
            match rng.next(6) {
                0 => {
                    let mut items = Vec::new();
                    for i in 0..1 + rng.next(3) {
                        items.push(BatchAppendItem::new(
                            coord(rng.next(5)),
                            kind,
                            &i,
                            AppendOptions::default(),
                            CausationRef::None,
                        )?);
                    }
                    store.append_batch(items)?;
                }
                1 | 2 => {
                    let fence = store.begin_visibility_fence()?;
                    let _ = fence.submit(&c, kind, &"fenced")?;
                    let _ = fence.submit(&coord(rng.next(5)), kind, &"fenced")?;
                    if rng.next(2) == 0 {
                        fence.commit()?;
                    } else {
                        fence.cancel()?;
                    }
                }
                3 => {
                    // A retry of a key is the same append (same entity, kind, payload).
                    let key = u128::from(entity * 10 + rng.next(3)) + 1;
                    let opts = AppendOptions::default().with_idempotency(key);
                    store.append_with_options(&c, kind, &"keyed", opts)?;
                }
                _ => {
                    store.append(&c, kind, &rng.next(1000))?;
                }
            }
        }
        Ok(())
    }

    /// Recovery of `disk` with the checkpoint and with a full scan give the same answer
    /// (visible events with their hashes, the report, the next sequence; or the same error).
    /// Returns whether the checkpoint was valid and used.
    fn same_as_full_scan(disk: &SimDisk) -> bool {
        let with = recover_with(disk, &dir(), CutPolicy::InMemory, Bugs::default(), true);
        let full = recover_with(disk, &dir(), CutPolicy::InMemory, Bugs::default(), false);
        match (with, full) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.index.query(&Region::all()), b.index.query(&Region::all()));
                assert_eq!(a.report, b.report);
                assert_eq!(a.state.next_seq, b.state.next_seq);
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!(
                "with the checkpoint: {:?}; full scan: {:?}",
                a.map(|r| r.report),
                b.map(|r| r.report)
            ),
        }
        load(disk, &dir(), Bugs::default()).is_some_and(|h| h.covered() > 0)
    }

    fn closed_store(seed: u64, steps: u32) -> SimDisk {
        let disk = SimDisk::new();
        let store = Store::open(config(&disk, seed)).unwrap();
        history(&store, &mut Rng(seed), steps);
        store.close().unwrap();
        disk
    }

    fn ckpt_bytes(disk: &SimDisk) -> Vec<u8> {
        disk.read_file(&dir().join(FILE_NAME))
            .expect("a checkpoint")
    }

    #[test]
    fn encode_and_decode_round_trip_and_refuse_every_truncation_and_flipped_byte() {
        let disk = closed_store(1, 40);
        let bytes = ckpt_bytes(&disk);
        let c = decode(&bytes).unwrap();
        assert!(!c.entries.is_empty() && c.segments.len() >= 2);
        assert_eq!(encode(&c), bytes);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "torn at {len}");
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x01;
            assert!(decode(&b).is_err(), "flipped byte {at}");
        }
    }

    #[test]
    fn a_clean_close_saves_a_checkpoint_the_next_open_uses_with_the_full_scans_result() {
        for seed in 0..6 {
            let disk = closed_store(seed, 60);
            assert!(same_as_full_scan(&disk), "seed {seed}: checkpoint not used");
            let hashes = load(&disk, &dir(), Bugs::default()).unwrap();
            let r =
                recover_with(&disk, &dir(), CutPolicy::InMemory, Bugs::default(), true).unwrap();
            assert_eq!(
                hashes.covered(),
                r.index.len(),
                "every visible event is covered"
            );
            // The chain heads rebuilt with saved hashes continue: appends after the open
            // chain on, and a full scan of the result accepts every chain.
            let store = Store::open(config(&disk, seed)).unwrap();
            history(&store, &mut Rng(seed + 100), 20);
            store.close().unwrap();
            assert!(same_as_full_scan(&disk));
        }
    }

    #[test]
    fn a_torn_or_damaged_checkpoint_is_ignored_and_changes_nothing() {
        let disk = closed_store(7, 50);
        let path = dir().join(FILE_NAME);
        let bytes = ckpt_bytes(&disk);
        let entries_at = HEAD_BYTES + decode(&bytes).unwrap().segments.len() * SEGMENT_BYTES;
        // Every length class: empty, inside the head, inside the segments, inside an entry,
        // one entry short, the checksum cut.
        for len in [
            0,
            1,
            HEAD_BYTES - 1,
            HEAD_BYTES + 3,
            entries_at + 5,
            bytes.len() - SUM_BYTES - ENTRY_BYTES,
            bytes.len() - 1,
        ] {
            disk.write_file_durably(&path, &bytes[..len]).unwrap();
            assert!(!same_as_full_scan(&disk), "torn at {len} was used");
        }
        for at in [0, 9, HEAD_BYTES + 2, entries_at + 30, bytes.len() - 3] {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            disk.write_file_durably(&path, &b).unwrap();
            assert!(!same_as_full_scan(&disk), "damaged at {at} was used");
        }
        disk.write_file_durably(&path, &bytes).unwrap();
        assert!(same_as_full_scan(&disk));
    }

    #[test]
    fn a_checkpoint_of_another_store_is_ignored() {
        // Same seed for the salts and the same shape of history, other payloads.
        let a = closed_store(3, 50);
        let b = closed_store(4, 50);
        a.write_file_durably(&dir().join(FILE_NAME), &ckpt_bytes(&b))
            .unwrap();
        assert!(!same_as_full_scan(&a));
        // Same entropy seed, so the same salts: the segments' frames still differ.
        let c = SimDisk::new();
        let store = Store::open(config(&c, 3)).unwrap();
        history(&store, &mut Rng(99), 50);
        store.close().unwrap();
        c.write_file_durably(&dir().join(FILE_NAME), &ckpt_bytes(&a))
            .unwrap();
        same_as_full_scan(&c);
    }

    #[test]
    fn a_stale_checkpoint_covers_its_prefix_and_the_log_after_it_is_scanned() {
        let disk = closed_store(5, 40);
        let old = ckpt_bytes(&disk);
        // More writes, then a crash (no close, no new checkpoint).
        let store = Store::open(config(&disk, 5).with_enable_checkpoint(false)).unwrap();
        history(&store, &mut Rng(55), 40);
        let crashed = disk.process_crash();
        drop(store);
        assert_eq!(ckpt_bytes(&crashed), old);
        assert!(
            same_as_full_scan(&crashed),
            "the stale checkpoint's prefix is used"
        );
        // And after a compaction rewrote segments it covers.
        let store = Store::open(config(&crashed, 5).with_enable_checkpoint(false)).unwrap();
        let keep_odd = |e: &crate::prelude::StoredEvent<serde_json::Value>| {
            e.event.payload.as_u64().is_none_or(|n| n % 2 == 1)
        };
        store
            .compact(&CompactionConfig {
                strategy: CompactionStrategy::Retention(Box::new(keep_odd)),
                min_segments: 1,
            })
            .unwrap();
        store.close().unwrap();
        assert_eq!(ckpt_bytes(&crashed), old);
        assert!(
            !same_as_full_scan(&crashed),
            "a checkpoint of segments a compaction rewrote is used"
        );
    }

    #[test]
    fn a_checkpoint_saved_after_a_compaction_is_used() {
        let disk = closed_store(8, 60);
        let store = Store::open(config(&disk, 8)).unwrap();
        let keep_odd = |e: &crate::prelude::StoredEvent<serde_json::Value>| {
            e.event.payload.as_u64().is_none_or(|n| n % 2 == 1)
        };
        store
            .compact(&CompactionConfig {
                strategy: CompactionStrategy::Retention(Box::new(keep_odd)),
                min_segments: 1,
            })
            .unwrap();
        history(&store, &mut Rng(80), 10);
        store.close().unwrap();
        assert!(same_as_full_scan(&disk));
    }

    /// Checkpoint bytes as fuzz input: random damage (flips, cuts, garbage) never panics and
    /// never changes what recovery returns; neither do changes of the fields that say which
    /// frames the hashes belong to (segment fingerprints, sequences, ids, positions) with the
    /// checksum recomputed, which make entries miss or the file be refused.
    #[test]
    fn fuzzed_checkpoint_bytes_never_panic_and_never_change_what_recovery_returns() {
        let disk = closed_store(21, 50);
        let path = dir().join(FILE_NAME);
        let bytes = ckpt_bytes(&disk);
        let c = decode(&bytes).unwrap();
        let mut rng = Rng(21);
        for round in 0..300u64 {
            let fuzzed = match round % 3 {
                0 => {
                    let mut b = bytes.clone();
                    for _ in 0..1 + rng.next(4) {
                        let at = rng.next(b.len() as u64) as usize;
                        b[at] = rng.next(256) as u8;
                    }
                    b.truncate(b.len() - rng.next(3) as usize);
                    b
                }
                1 => (0..rng.next(400)).map(|_| rng.next(256) as u8).collect(),
                _ => {
                    let mut m = c.clone();
                    let s = rng.next(m.segments.len() as u64) as usize;
                    let e = rng.next(m.entries.len() as u64) as usize;
                    match rng.next(8) {
                        0 => m.segments[s].salt ^= 1,
                        1 => m.segments[s].segment_id += 1,
                        2 => m.segments[s].first_seq += 1,
                        3 => m.segments[s].last_head[8] ^= 1,
                        4 => m.segments[s].covered_len += 1 << 20,
                        5 => m.entries[e].id_check ^= 1,
                        6 => m.first_seq += 1,
                        _ => {
                            // One covered sequence moved to one that is not (same count):
                            // the entries between them are out of step with the log.
                            let set = set_bits(&m);
                            let from = set[rng.next(set.len() as u64) as usize];
                            let clear: Vec<u64> =
                                (0..m.span).filter(|&i| !bit(&m.covered, i)).collect();
                            if let Some(&to) =
                                clear.get(rng.next(clear.len().max(1) as u64) as usize)
                            {
                                flip(&mut m, from);
                                flip(&mut m, to);
                            }
                        }
                    }
                    encode(&m)
                }
            };
            disk.write_file_durably(&path, &fuzzed).unwrap();
            same_as_full_scan(&disk);
        }
    }

    /// The covered sequences (offsets from `first_seq`) of `c`, in order.
    fn set_bits(c: &Checkpoint) -> Vec<u64> {
        (0..c.span).filter(|&i| bit(&c.covered, i)).collect()
    }

    fn flip(c: &mut Checkpoint, i: u64) {
        c.covered[(i / 8) as usize] ^= 1 << (i % 8);
    }

    /// Scans `disk`'s log handing every event to the checkpoint's lookup; every hash it
    /// returns must be the one a full scan computes. Returns how many it returned.
    fn hits_all_right(disk: &SimDisk) -> u64 {
        let mut hashes = load(disk, &dir(), Bugs::default()).expect("a valid checkpoint");
        crate::log::scan(disk, &dir(), CutPolicy::InMemory, &mut |r, pos, _| {
            if let crate::log::RecordBody::Event(e) = &r.body {
                if let Some(h) = hashes.lookup(r.seq, e, pos) {
                    assert_eq!(
                        h,
                        crate::writer::state::chains::event_hash(e),
                        "sequence {}: a saved hash that is not the event's",
                        r.seq
                    );
                }
            }
            Ok(())
        })
        .unwrap();
        hashes.hits
    }

    /// Entries are paired with frames by rank among the covered sequences, not by fields of
    /// their own: one event missing from the list in the middle (its sequence still marked
    /// covered, the count kept by unmarking the last) puts every later entry out of step; the
    /// first mismatch turns the checkpoint off, so no frame takes another's hash. Missing
    /// consistently (entry and mark both gone), the rest is used.
    #[test]
    fn an_entry_list_out_of_step_with_the_log_never_yields_a_wrong_hash() {
        for seed in [2, 12, 30] {
            let disk = closed_store(seed, 60);
            let path = dir().join(FILE_NAME);
            let c = decode(&ckpt_bytes(&disk)).unwrap();
            let n = c.entries.len();
            assert!(n > 20, "{n} entries");
            assert_eq!(hits_all_right(&disk), n as u64);
            let set = set_bits(&c);
            assert!(
                set.len() == n && c.span > n as u64,
                "some records (commits, fences, hidden events) have no entry"
            );
            let k = n / 2;

            // Out of step: entry k gone, the last covered sequence unmarked.
            let mut m = c.clone();
            m.entries.remove(k);
            flip(&mut m, set[n - 1]);
            disk.write_file_durably(&path, &encode(&m)).unwrap();
            assert_eq!(hits_all_right(&disk), k as u64, "seed {seed}");
            assert!(same_as_full_scan(&disk));

            // Consistently missing: entry k and its mark gone.
            let mut m = c.clone();
            m.entries.remove(k);
            flip(&mut m, set[k]);
            disk.write_file_durably(&path, &encode(&m)).unwrap();
            assert_eq!(hits_all_right(&disk), n as u64 - 1, "seed {seed}");
            assert!(same_as_full_scan(&disk));

            // Two entries swapped: neither is taken, nor anything after them.
            let mut m = c.clone();
            m.entries.swap(k, k + 1);
            disk.write_file_durably(&path, &encode(&m)).unwrap();
            assert_eq!(hits_all_right(&disk), k as u64, "seed {seed}");
            assert!(same_as_full_scan(&disk));
        }
    }

    #[test]
    fn a_version_1_checkpoint_is_refused() {
        let disk = closed_store(9, 30);
        let mut bytes = ckpt_bytes(&disk);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let body = bytes.len() - SUM_BYTES;
        let sum = *blake3::hash(&bytes[..body]).as_bytes();
        bytes[body..].copy_from_slice(&sum);
        let err = decode(&bytes).unwrap_err();
        assert!(err.contains("format version 1"), "{err}");
        disk.write_file_durably(&dir().join(FILE_NAME), &bytes)
            .unwrap();
        assert!(!same_as_full_scan(&disk));
    }

    /// The crash-state enumeration of a run with periodic checkpoints: at every operation of
    /// the run (checkpoint writes included: temporary file, sync, rename, directory sync) a
    /// process crash, and from each crash point every power-loss image; recovery with the
    /// checkpoint always equals the full scan, and a checkpoint only ever covers durable
    /// events (it is never invalidated by a power loss: every image whose checkpoint file is
    /// whole is used).
    #[test]
    fn every_crash_image_of_a_run_with_periodic_checkpoints_recovers_as_a_full_scan() {
        let disk = SimDisk::new();
        let store = Store::open(
            config(&disk, 11)
                .with_checkpoint_every_n_events(7)
                .with_sync_every_n_events(3),
        )
        .unwrap();
        history(&store, &mut Rng(11), 30);
        store.close().unwrap();
        let ops = disk.op_count();
        let mut images = 0;
        let mut used = 0;
        for at in (0..ops).step_by(3) {
            let d = SimDisk::new();
            d.fail_at(at, crate::env::sim::FaultKind::ProcessCrash);
            if let Ok(store) = Store::open(
                config(&d, 11)
                    .with_checkpoint_every_n_events(7)
                    .with_sync_every_n_events(3),
            ) {
                let _ = try_history(&store, &mut Rng(11), 30);
                let _ = store.close();
            }
            // A fault the run did not reach must not fire in the recoveries below.
            d.clear_faults();
            images += 1;
            if same_as_full_scan(&d.process_crash()) {
                used += 1;
            }
            for image in d.crash_images(&Default::default()).into_iter().take(64) {
                images += 1;
                if same_as_full_scan(&image.disk()) {
                    used += 1;
                }
            }
        }
        assert!(images > 100, "{images} images");
        assert!(used > 0, "no image used a checkpoint");
    }
}
