//! Compaction: [`Store::compact`] merges the sealed segments into one and removes what a
//! [`CompactionStrategy`] drops, online (appends, fences and readers keep going).
//!
//! How it keeps INV-COMPACTION:
//! * **Byte for byte.** A kept record's body (the bincode record with its sequence, ids,
//!   payload) is copied unchanged; only the frame's two checks are recomputed for the new
//!   segment's salt (`codec::reseal`). Nothing is decoded into values and encoded again.
//! * **Sequences.** Every removed run of sequences is replaced by one `Dropped { to }` record
//!   at the run's first sequence, so the log stays dense for recovery and every later record
//!   keeps its sequence (INV-STABLE-SEQ); checkpoints and cursors keep pointing at the same
//!   events. A compacted segment always starts with a `Dropped` record (an empty one when
//!   nothing before its first kept record went): that is how recovery tells it.
//! * **Units.** A batch or fence is kept or dropped whole: dropped only when every event of it
//!   is dropped (or it can never become visible: a cancelled fence, a batch or fence a crash
//!   left unfinished and that other records follow). A unit whose end is not in the sealed
//!   segments (an open fence, a batch that continues in the active segment) is left alone:
//!   compaction stops before the segment where it begins, so its files, positions and fate
//!   stay exactly as they were.
//! * **Crash safety.** The new segment is written to `<last>.seg.compact`, synced, renamed over
//!   the last sealed segment and the directory synced; only then are the other sealed
//!   segments removed. A crash before the rename leaves the old segments (the stray
//!   `.compact` file is ignored and replaced next time); after it, recovery finds the old
//!   segments superseded by the compacted one (it starts at or below their first sequence with
//!   a `Dropped` record) and removes them. Either way the store recovers to the state before
//!   or after the compaction.

use super::{CorruptionDetail, Open, Store, StoreError};
use crate::append::DiskPos;
use crate::codec::{self, Record, RecordBody, Unit};
use crate::env::Disk;
use crate::event::StoredEvent;
use crate::log::segment::{
    decode_header, encode_header, parse_segment_file_name, segment_file_name, SegmentHeader,
};
use crate::log::SEGMENT_HEADER_BYTES;
use crate::mutant::Mutant;
use crate::region::Region;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Decides for one visible event whether it stays (`true`) or goes (`false`). Upstream's
/// type: the event with its payload as JSON.
pub type RetentionPredicate = Box<dyn Fn(&StoredEvent<serde_json::Value>) -> bool + Send>;

/// What [`Store::compact`] removes while it merges the sealed segments.
#[non_exhaustive]
pub enum CompactionStrategy {
    /// Merge only: no event is removed (units that can never become visible and superseded
    /// consumer checkpoints still go).
    Merge,
    /// Merge and drop every event the predicate answers `false` for (a unit only when all of
    /// its events go). Dropped events are gone for good.
    Retention(RetentionPredicate),
    /// Merge and drop whole entities: an event the predicate answers `false` for tombstones
    /// its entity, and every event of that entity in the sealed segments goes (a unit only
    /// when all of its events go). The removed sequences are recorded in the log (`Dropped`
    /// records), so a consumer sees exactly which sequences disappeared
    /// ([`crate::store::Cursor::take_gaps`]).
    Tombstone(RetentionPredicate),
}

impl std::fmt::Debug for CompactionStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Merge => "Merge",
            Self::Retention(_) => "Retention(..)",
            Self::Tombstone(_) => "Tombstone(..)",
        })
    }
}

/// How [`Store::compact`] runs (upstream's shape).
#[derive(Debug)]
pub struct CompactionConfig {
    /// What is removed.
    pub strategy: CompactionStrategy,
    /// Fewest sealed segments for compaction to run; below it `compact` returns
    /// [`CompactionOutcome::Skipped`] (default 2).
    pub min_segments: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            strategy: CompactionStrategy::Merge,
            min_segments: 2,
        }
    }
}

/// Whether a compaction ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionOutcome {
    /// The sealed segments were replaced by the compacted one.
    Performed,
    /// Fewer sealed segments than `min_segments`: nothing was done.
    Skipped,
    /// Upstream's outcome for an abort before the swap. This crate returns an error instead
    /// (the store is then unchanged, or recovers to the state before or after).
    Failed {
        /// What failed.
        reason: String,
    },
}

/// What [`Store::compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionResult {
    /// Performed or skipped.
    pub outcome: CompactionOutcome,
    /// Sealed segment files removed (all but the one the compacted segment replaced).
    pub segments_removed: usize,
    /// Bytes of segment files freed (old sizes minus the compacted segment's).
    pub bytes_reclaimed: u64,
}

impl CompactionResult {
    fn skipped() -> Self {
        Self {
            outcome: CompactionOutcome::Skipped,
            segments_removed: 0,
            bytes_reclaimed: 0,
        }
    }
}

/// The atomic unit a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// A record that is a unit by itself (its sequence).
    Own(u64),
    Batch(u64),
    Fence(u64),
}

/// How a unit ended within the sealed segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Its end is not in the sealed segments: copied as it is.
    Open,
    Committed,
    /// Never visible: cancelled, or left unfinished by a crash (other records follow it).
    Dead,
}

/// One record of the sealed segments.
#[derive(Debug)]
struct Rec {
    seg: usize,
    offset: usize,
    len: usize,
    seq: u64,
    /// The sequence after it (`to` for a `Dropped` record).
    next: u64,
    key: Key,
    kind: RecKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecKind {
    Event {
        event_id: u128,
    },
    /// A consumer checkpoint (`id`: interned checkpoint id).
    Checkpoint {
        id: usize,
    },
    /// An earlier compaction's dropped range.
    Dropped,
    /// Batch commit, fence begin/commit/cancel: what it does to its unit.
    Marker(Ends),
}

/// What a unit's marker record does to the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    /// Nothing yet (a fence begin, the commit of a batch inside a fence).
    No,
    /// Commits it (batch commit, fence commit).
    Commit,
    /// Cancels it (fence cancel).
    Cancel,
}

/// A sealed segment as read.
struct Sealed {
    id: u64,
    path: PathBuf,
    header: SegmentHeader,
    /// File length in bytes.
    len: u64,
}

impl Sealed {
    /// The whole file (one segment at a time is in memory).
    fn read(&self, disk: &dyn Disk) -> Result<Vec<u8>, StoreError> {
        let file = disk
            .open(&self.path, false)
            .map_err(io_at(&self.path, "compaction: open"))?;
        let mut bytes = vec![0u8; usize::try_from(self.len).unwrap_or(0)];
        let got = read_full(&*file, &self.path, 0, &mut bytes)?;
        bytes.truncate(got);
        Ok(bytes)
    }
}

fn io_at<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::IoAt {
        path: path.to_path_buf(),
        op,
        source,
    }
}

impl Store<Open> {
    /// Compacts the log online: the sealed segments (every one but the active segment) are
    /// merged into one, and what `config.strategy` drops is removed.
    ///
    /// * Kept records are copied byte for byte with their sequences; removed runs of
    ///   sequences are recorded by `Dropped` records, so sequences never move and readers,
    ///   cursors and consumers simply never see the removed ones (INV-COMPACTION,
    ///   INV-STABLE-SEQ).
    /// * Atomic batches and fences are kept or dropped whole; a fence still open (or a unit
    ///   that continues in the active segment) is left untouched, never published: compaction
    ///   stops before the segment where it begins.
    /// * Consumer checkpoints survive (only ones a later checkpoint of the same consumer
    ///   superseded are removed), and so do the idempotency keys of kept events.
    /// * A crash at any point leaves a store that recovers to the state before or after.
    ///
    /// Keys of removed events are forgotten, by the running store as by a reopened one
    /// (INV-IDEMPOTENT): a retry of a removed event appends it anew, and a new event naming
    /// a removed event as its cause is `UnknownCausation` (unless external causes are
    /// allowed). The order is the swap's: the writer decides each group of commands under the
    /// index's read lock and the swap replaces the index under its write lock, so a retry
    /// the writer decides before the swap answers the original receipt (its event was there
    /// when decided; like any receipt's, a compaction may remove it later, even before the
    /// answer arrives), and one decided after it is written anew: never an error, never the
    /// receipt of an event already removed when decided. The same holds for a cause. `compact`
    /// returns once the writer has also dropped the removed keys from its memory. Reads never
    /// fail because of a compaction: a read
    /// that took an event's position before the swap and reads the file after it finds the
    /// event at its new position (a removed event is `NotFound`), and a projection fold holds
    /// the swap off while it reads.
    ///
    /// The swap holds the index's write lock while the index is rebuilt for the survivors, so
    /// appends wait for that (not for the copy before it).
    ///
    /// Errors: I/O (`IoAt`, naming the file and operation) and damage found in a sealed
    /// segment (`CorruptSegment`). Before the rename nothing changed; after it the running
    /// store is compacted (a failure syncing the directory or removing an old segment is
    /// reported; whether the rename survives a crash then decides whether the store reopens
    /// compacted, and the next open removes superseded segments).
    ///
    /// ```
    /// use batpak::prelude::*;
    /// use batpak::store::{CompactionConfig, CompactionOutcome, CompactionStrategy};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(StoreConfig::new(dir.path()).with_segment_max_bytes(4096))?;
    /// let kind = EventKind::custom(1, 1);
    /// for i in 0..200u32 {
    ///     let coord = Coordinate::new(format!("user:{}", i % 4), "app")?;
    ///     store.append(&coord, kind, &i)?;
    /// }
    /// // Forget user:0 entirely (right to erasure).
    /// let result = store.compact(&CompactionConfig {
    ///     strategy: CompactionStrategy::Tombstone(Box::new(|e| e.coordinate.entity() != "user:0")),
    ///     min_segments: 1,
    /// })?;
    /// assert_eq!(result.outcome, CompactionOutcome::Performed);
    /// assert!(result.bytes_reclaimed > 0);
    /// assert!(store.stream("user:1").len() > 0);
    /// # Ok(()) }
    /// ```
    pub fn compact(&self, config: &CompactionConfig) -> Result<CompactionResult, StoreError> {
        super::flow::done("compact", self.compact_sealed(config))
    }

    /// [`Store::compact`] without its `flow` event.
    fn compact_sealed(&self, config: &CompactionConfig) -> Result<CompactionResult, StoreError> {
        let _ops = self.ops.lock();
        let disk = &*self.cfg.disk;
        let dir = &self.cfg.dir;
        let span =
            tracing::info_span!("compact", dir = %dir.display(), strategy = ?config.strategy);
        let _span = span.entered();
        let durable = self.frontier().durable;
        let Some((sealed, end)) = sealed_segments(disk, dir, durable)? else {
            return Ok(CompactionResult::skipped());
        };
        if sealed.len() < config.min_segments.max(1) {
            tracing::info!(
                sealed = sealed.len(),
                min = config.min_segments,
                "compaction skipped"
            );
            return Ok(CompactionResult::skipped());
        }
        let mut recs = records(disk, &sealed)?;
        // A unit still open (a fence, a batch continuing in the active segment) keeps its
        // segment and everything after it as it is: the writer holds the positions of its
        // events until it publishes them.
        let (mut sealed, mut end) = (sealed, end);
        let status = unit_status(&recs, self.cfg.bugs);
        if let Some(open) = recs
            .iter()
            .find(|r| status.get(&r.key) == Some(&Status::Open))
        {
            let seg = open.seg;
            end = sealed[seg].header.first_seq;
            sealed.truncate(seg);
            recs.retain(|r| r.seg < seg);
            tracing::info!(
                segment = seg,
                "compaction stops before the segment of a unit still open"
            );
        }
        if sealed.is_empty() {
            return Ok(CompactionResult::skipped());
        }
        let drop = self.decide(&recs, &config.strategy, end)?;
        let last = sealed.len() - 1;
        let out_id = sealed[last].id;
        let header = SegmentHeader {
            segment_id: out_id,
            first_seq: sealed[0].header.first_seq,
            salt: self.cfg.entropy.next_u32(),
            frame_max: sealed.iter().map(|s| s.header.frame_max).max().unwrap_or(0),
        };
        let old_bytes: u64 = sealed.iter().map(|s| s.len).sum();
        let temp = dir.join(format!("{}.compact", segment_file_name(out_id)));
        let target = dir.join(segment_file_name(out_id));
        let bugs = self.cfg.bugs;
        let built = build(disk, &temp, &sealed, &recs, &drop, header, end, bugs)?;
        // The events the swap removes: the writer forgets their idempotency keys afterwards.
        let removed: Vec<u128> = recs
            .iter()
            .zip(&drop)
            .filter_map(|(r, &gone)| match r.kind {
                RecKind::Event { event_id } if gone => Some(event_id),
                _ => None,
            })
            .collect();
        let swapped = {
            // The swap: readers see the old index or the new one, never a mix; no projection
            // is between taking index positions and reading them.
            let _folds = self.projections.positions.write();
            let mut index = self.shared.index.write();
            disk.rename(&temp, &target)
                .map_err(io_at(&target, "compaction: rename compacted segment"))?;
            // From here the file holds the compacted segment: the index follows it whatever
            // happens next.
            self.catalog.release();
            index.compacted(|slot| {
                if slot.seq >= end {
                    return Some(slot.disk_pos);
                }
                let moved = &built.moved;
                moved
                    .binary_search_by_key(&slot.seq, |(s, _)| *s)
                    .ok()
                    .and_then(|i| moved.get(i))
                    .map(|(_, p)| *p)
            });
            disk.sync_dir(dir).map_err(|source| {
                tracing::error!(%source, "compaction: syncing the directory after the rename failed");
                StoreError::IoAt {
                    path: dir.clone(),
                    op: "compaction: sync directory",
                    source,
                }
            })
        };
        // The index follows the compacted segment (whether or not the directory sync worked):
        // so does the writer's memory of keys. Sent without any lock held (the writer decides
        // under the index's read lock); `compact` returns once the writer has forgotten them.
        self.forget_removed(removed);
        swapped?;
        if !bugs.has(Mutant::CompactionDeletesBeforeDurable) {
            remove_old(disk, dir, &sealed[..last])?;
        }
        let result = CompactionResult {
            outcome: CompactionOutcome::Performed,
            segments_removed: last,
            bytes_reclaimed: old_bytes.saturating_sub(built.len),
        };
        tracing::info!(
            segments = sealed.len(),
            dropped_sequences = built.dropped,
            bytes_reclaimed = result.bytes_reclaimed,
            "compaction swapped in"
        );
        Ok(result)
    }

    /// Tells the writer that the swap removed the events `removed`, and waits until it has
    /// forgotten their idempotency keys (INV-IDEMPOTENT: the running store then answers a
    /// retry as a reopened one does). Until then the writer already treats a key whose event
    /// the index no longer holds as unknown; this clears its memory. A writer that has stopped
    /// answers no retry any more: that is logged, not an error of the compaction.
    fn forget_removed(&self, removed: Vec<u128>) {
        if removed.is_empty() {
            return;
        }
        let count = removed.len();
        if let Err(e) =
            self.request(|reply| crate::writer::Command::ForgetRemoved { removed, reply })
        {
            tracing::warn!(error = %e, removed = count, "compaction: the writer could not be told to forget the removed events' keys");
        }
    }

    /// Which records go: `true` at a record's place in `recs`.
    fn decide(
        &self,
        recs: &[Rec],
        strategy: &CompactionStrategy,
        end: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let status = unit_status(recs, self.cfg.bugs);
        // Events the strategy drops (visible ones; a hidden event goes with its unit).
        let droppable: HashSet<u128> = match strategy {
            CompactionStrategy::Merge => HashSet::new(),
            CompactionStrategy::Retention(keep) => {
                let mut out = HashSet::new();
                for e in self.visible_below(end) {
                    if !keep(&self.get(e.event_id)?) {
                        out.insert(e.event_id);
                    }
                }
                out
            }
            CompactionStrategy::Tombstone(keep) => {
                let visible = self.visible_below(end);
                let mut gone: HashSet<String> = HashSet::new();
                for e in &visible {
                    if !gone.contains(e.coord.entity()) && !keep(&self.get(e.event_id)?) {
                        gone.insert(e.coord.entity().to_owned());
                    }
                }
                visible
                    .iter()
                    .filter(|e| gone.contains(e.coord.entity()))
                    .map(|e| e.event_id)
                    .collect()
            }
        };
        // The last checkpoint of each consumer that takes effect: the one that must stay.
        let mut live_checkpoint: HashMap<usize, u64> = HashMap::new();
        for r in recs {
            if let RecKind::Checkpoint { id } = r.kind {
                let effective = match r.key {
                    Key::Own(_) => true,
                    k => status.get(&k) == Some(&Status::Committed),
                };
                if effective {
                    live_checkpoint.insert(id, r.seq);
                }
            }
        }
        let splits = self.cfg.bugs.has(Mutant::CompactionSplitsUnit);
        // A unit goes when it is dead, or committed and nothing of it must stay.
        let mut stays: HashMap<Key, bool> = HashMap::new();
        let mut per_record = Vec::with_capacity(recs.len());
        for r in recs {
            let must_stay = match r.kind {
                RecKind::Event { event_id } => !droppable.contains(&event_id),
                RecKind::Checkpoint { id } => live_checkpoint.get(&id) == Some(&r.seq),
                RecKind::Dropped | RecKind::Marker(_) => false,
            };
            per_record.push(must_stay);
            let s = stays.entry(r.key).or_insert(false);
            *s |= must_stay;
        }
        Ok(recs
            .iter()
            .zip(per_record)
            .map(|(r, must_stay)| {
                if r.kind == RecKind::Dropped {
                    return true;
                }
                match status.get(&r.key).copied().unwrap_or(Status::Committed) {
                    Status::Open => false,
                    Status::Dead => true,
                    Status::Committed if splits && matches!(r.kind, RecKind::Event { .. }) => {
                        !must_stay
                    }
                    Status::Committed => !stays.get(&r.key).copied().unwrap_or(true),
                }
            })
            .collect())
    }

    /// Visible events below sequence `end`, in order.
    fn visible_below(&self, end: u64) -> Vec<crate::index::IndexEntry> {
        let mut all = self.shared.index.read().query(&Region::all());
        all.retain(|e| e.global_sequence < end);
        all
    }
}

/// The sealed segments (every segment but the last, as far as they hold only records below
/// the durable frontier) and the sequence after them; `None` if there is
/// none.
fn sealed_segments(
    disk: &dyn Disk,
    dir: &Path,
    durable: u64,
) -> Result<Option<(Vec<Sealed>, u64)>, StoreError> {
    let names = disk.list(dir).map_err(io_at(dir, "compaction: list"))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n))
        .collect();
    ids.sort_unstable();
    let mut firsts = Vec::with_capacity(ids.len());
    for &id in &ids {
        let path = dir.join(segment_file_name(id));
        let file = disk
            .open(&path, false)
            .map_err(io_at(&path, "compaction: open"))?;
        let mut head = [0u8; SEGMENT_HEADER_BYTES];
        let got = read_full(&*file, &path, 0, &mut head)?;
        match decode_header(head.get(..got).unwrap_or(&[])) {
            Ok(h) => firsts.push((id, path, h)),
            // A segment being created: it and everything after it is not sealed.
            Err(_) => break,
        }
    }
    // Sealed: a later segment exists, and the next one starts at or below the frontier.
    let mut sealed = Vec::new();
    let mut end = None;
    for i in 0..firsts.len().saturating_sub(1) {
        let next_first = firsts[i + 1].2.first_seq;
        if next_first > durable {
            break;
        }
        let (id, path, header) = firsts[i].clone();
        let file = disk
            .open(&path, false)
            .map_err(io_at(&path, "compaction: open"))?;
        let len = file.len().map_err(io_at(&path, "compaction: length"))?;
        sealed.push(Sealed {
            id,
            path,
            header,
            len,
        });
        end = Some(next_first);
    }
    Ok(end.map(|e| (sealed, e)))
}

fn read_full(
    file: &dyn crate::env::DiskFile,
    path: &Path,
    offset: u64,
    buf: &mut [u8],
) -> Result<usize, StoreError> {
    let mut done = 0;
    while done < buf.len() {
        let n = file
            .read_at(offset + done as u64, &mut buf[done..])
            .map_err(io_at(path, "compaction: read"))?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Every record of the sealed segments, checked (CRC, sequences without a gap).
fn records(disk: &dyn Disk, sealed: &[Sealed]) -> Result<Vec<Rec>, StoreError> {
    let mut out = Vec::new();
    let mut fenced_batches: HashMap<u64, u64> = HashMap::new();
    let mut checkpoint_ids: HashMap<String, usize> = HashMap::new();
    let mut expect = sealed.first().map(|s| s.header.first_seq).unwrap_or(0);
    for (seg, s) in sealed.iter().enumerate() {
        let bytes = s.read(disk)?;
        let mut at = SEGMENT_HEADER_BYTES;
        while at < bytes.len() {
            let corrupt = |detail: String| StoreError::CorruptSegment {
                segment_id: s.id,
                detail: CorruptionDetail::at(
                    s.path.clone(),
                    at as u64,
                    format!("compaction: {detail}"),
                ),
            };
            let here = bytes.get(at..).unwrap_or(&[]);
            let (record, used) = codec::decode(here, s.header.frame_max, s.header.salt)
                .map_err(|e| corrupt(e.to_string()))?;
            if record.seq != expect {
                return Err(corrupt(format!(
                    "record has sequence {} where {expect} was expected",
                    record.seq
                )));
            }
            let next = record.body.next_seq(record.seq);
            let (key, kind) = classify(&record, &mut fenced_batches, &mut checkpoint_ids);
            out.push(Rec {
                seg,
                offset: at,
                len: used,
                seq: record.seq,
                next,
                key,
                kind,
            });
            expect = next;
            at += used;
        }
    }
    Ok(out)
}

fn classify(
    record: &Record<'_>,
    fenced_batches: &mut HashMap<u64, u64>,
    checkpoint_ids: &mut HashMap<String, usize>,
) -> (Key, RecKind) {
    let of_unit = |unit: Unit, seq: u64| match unit {
        Unit::None => Key::Own(seq),
        Unit::Batch(b) => Key::Batch(b),
        Unit::Fence(f) | Unit::FencedBatch { fence: f, .. } => Key::Fence(f),
    };
    match &record.body {
        RecordBody::Event(e) => {
            if let Unit::FencedBatch { fence, batch } = e.unit {
                fenced_batches.insert(batch, fence);
            }
            (
                of_unit(e.unit, record.seq),
                RecKind::Event {
                    event_id: e.event_id,
                },
            )
        }
        RecordBody::BatchCommit { batch, .. } => match fenced_batches.get(batch) {
            Some(&f) => (Key::Fence(f), RecKind::Marker(Ends::No)),
            None => (Key::Batch(*batch), RecKind::Marker(Ends::Commit)),
        },
        RecordBody::FenceBegin { fence } => (Key::Fence(*fence), RecKind::Marker(Ends::No)),
        RecordBody::FenceCommit { fence } => (Key::Fence(*fence), RecKind::Marker(Ends::Commit)),
        RecordBody::FenceCancel { fence } => (Key::Fence(*fence), RecKind::Marker(Ends::Cancel)),
        RecordBody::Checkpoint(c) => {
            let n = checkpoint_ids.len();
            let id = *checkpoint_ids.entry(c.id.to_owned()).or_insert(n);
            (of_unit(c.unit, record.seq), RecKind::Checkpoint { id })
        }
        RecordBody::Dropped { .. } => (Key::Own(record.seq), RecKind::Dropped),
    }
}

/// How each batch and fence of the sealed segments ended. A batch is written contiguously
/// and a fence admits nothing else while open (but a consumer's plain checkpoint), so a unit
/// that another record follows before its end never ends: a crash left it (recovery hides it
/// forever).
fn unit_status(recs: &[Rec], bugs: crate::mutant::Bugs) -> HashMap<Key, Status> {
    let checkpoints_end_units = bugs.has(Mutant::CompactionTakesOpenFence);
    let mut status: HashMap<Key, Status> = HashMap::new();
    let mut current: Option<Key> = None;
    for r in recs {
        // A consumer's plain checkpoint may be written while a fence is open (it is no
        // write the fence admits or refuses): it says nothing about the open unit.
        if r.kind == RecKind::Dropped
            || (!checkpoints_end_units
                && matches!(r.kind, RecKind::Checkpoint { .. })
                && matches!(r.key, Key::Own(_)))
        {
            continue;
        }
        if let Some(open) = current {
            if open != r.key && status.get(&open) == Some(&Status::Open) {
                status.insert(open, Status::Dead);
            }
        }
        match r.key {
            Key::Own(_) => {
                current = None;
                continue;
            }
            k => {
                status.entry(k).or_insert(Status::Open);
                current = Some(k);
            }
        }
        match r.kind {
            RecKind::Marker(Ends::Commit) => {
                status.insert(r.key, Status::Committed);
            }
            RecKind::Marker(Ends::Cancel) => {
                status.insert(r.key, Status::Dead);
            }
            _ => {}
        }
    }
    status
}

/// What [`build`] wrote.
struct Built {
    /// The new position of every kept event, by sequence.
    moved: Vec<(u64, DiskPos)>,
    /// Sequences removed.
    dropped: u64,
    /// The compacted segment's length.
    len: u64,
}

/// Output buffer size: written to the file whenever it holds this much.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Writes the compacted segment to the new file `path` (a stale one of an interrupted
/// compaction is replaced) and syncs it. One sealed segment at a time is in memory.
#[allow(clippy::too_many_arguments)]
fn build(
    disk: &dyn Disk,
    path: &Path,
    sealed: &[Sealed],
    recs: &[Rec],
    removed: &[bool],
    header: SegmentHeader,
    end: u64,
    bugs: crate::mutant::Bugs,
) -> Result<Built, StoreError> {
    if disk
        .exists(path)
        .map_err(io_at(path, "compaction: look for a stale file"))?
    {
        disk.remove(path)
            .map_err(io_at(path, "compaction: remove stale file"))?;
    }
    let mut file = disk
        .create_new(path)
        .map_err(io_at(path, "compaction: create compacted segment"))?;
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_CHUNK_BYTES + 4096);
    out.extend_from_slice(&encode_header(header));
    let mut written = 0u64;
    let mut flush = |out: &mut Vec<u8>, written: &mut u64, all: bool| -> Result<(), StoreError> {
        if out.len() >= WRITE_CHUNK_BYTES || (all && !out.is_empty()) {
            file.append(out)
                .map_err(io_at(path, "compaction: write compacted segment"))?;
            *written += out.len() as u64;
            out.clear();
        }
        Ok(())
    };
    let mut built = Built {
        moved: Vec::new(),
        dropped: 0,
        len: 0,
    };
    let mut run: Option<u64> = Some(header.first_seq);
    let dropped_frame = |out: &mut Vec<u8>, from: u64, to: u64| {
        let record = Record {
            seq: from,
            body: RecordBody::Dropped { to },
        };
        codec::encode_into(&record, header.frame_max, header.salt, out).map_err(|e| {
            StoreError::Configuration(format!("compaction: encoding a dropped range: {e}"))
        })
    };
    let mut loaded: Option<(usize, Vec<u8>)> = None;
    for (r, &gone) in recs.iter().zip(removed) {
        if gone {
            built.dropped += r.next - r.seq;
            if run.is_none() {
                run = Some(r.seq);
            }
            continue;
        }
        if let Some(from) = run.take() {
            dropped_frame(&mut out, from, r.seq)?;
        }
        if loaded.as_ref().is_none_or(|(seg, _)| *seg != r.seg) {
            let bytes = match sealed.get(r.seg) {
                Some(s) => s.read(disk)?,
                None => Vec::new(),
            };
            loaded = Some((r.seg, bytes));
        }
        let src = loaded
            .as_ref()
            .and_then(|(_, b)| b.get(r.offset..r.offset + r.len))
            .unwrap_or(&[]);
        let at = written + out.len() as u64;
        let start = out.len();
        out.extend_from_slice(src);
        if let Some(frame) = out.get_mut(start..) {
            codec::reseal(frame, header.salt);
        }
        if matches!(r.kind, RecKind::Event { .. }) {
            built.moved.push((
                r.seq,
                DiskPos {
                    segment_id: header.segment_id,
                    offset: at,
                    length: r.len as u32,
                },
            ));
        }
        flush(&mut out, &mut written, false)?;
    }
    if let Some(from) = run {
        dropped_frame(&mut out, from, end)?;
    }
    flush(&mut out, &mut written, true)?;
    if bugs.has(Mutant::CompactionDeletesBeforeDurable) {
        // The seeded bug: the merged segments go before the compacted one is synced.
        let merged = sealed.get(..sealed.len().saturating_sub(1)).unwrap_or(&[]);
        remove_old(disk, path.parent().unwrap_or(Path::new(".")), merged)?;
    } else {
        file.sync_all()
            .map_err(io_at(path, "compaction: sync compacted segment"))?;
    }
    built.len = written;
    Ok(built)
}

/// Removes the merged segments (their records are in the compacted one, durably), then syncs
/// the directory.
fn remove_old(disk: &dyn Disk, dir: &Path, old: &[Sealed]) -> Result<(), StoreError> {
    for s in old {
        disk.remove(&s.path)
            .map_err(io_at(&s.path, "compaction: remove merged segment"))?;
    }
    disk.sync_dir(dir)
        .map_err(io_at(dir, "compaction: sync directory"))
}
