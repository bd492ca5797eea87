//! Conformance of the real store's logs and crash images to the oracle ([`crate::oracle`]):
//! the one "what is visible after recovery" reference of the model crate.
//!
//! The oracle reasons about abstract logs (`Rec(k, e, u, id, f, seq)`); the store writes frames
//! into segment files. This module maps one to the other:
//!
//! * [`WrittenLog::read`] reads the log the store wrote (every record with its byte range, and
//!   the bytes of every segment file) as a read of the disk sees it now, with the independent
//!   reader [`crate::record::scan_log`];
//! * [`Abstract::of`] maps written records to the oracle's: events are numbered 1, 2, … in log
//!   order, batch and fence ids are renumbered 1, 2, … in order of first appearance, `seq` is
//!   the stored global sequence plus one (TLA+ positions are 1-based); an event of a fenced
//!   batch and that batch's commit record are the spec's `BatchRec(k, e, b, f, s)`;
//! * [`expected_visible`] is what recovery of the first `keep` records (maybe with a torn
//!   record after them) must make visible: the oracle's `recover(Image(keep, torn))`, mapped
//!   back to global sequences. Every checker here (the crash-state enumeration, the simulator,
//!   the fuzz harness) asks this function and nothing else;
//! * a crash image (`CrashImage::disk`) is the page cache a crashed process left: what
//!   survived unsynced is still unsynced there, so a later power loss may lose it again. The
//!   classification below reads its bytes (what recovery reads), whatever of them is durable;
//! * [`WrittenLog::classify`] looks at a crash image byte by byte, independently of the
//!   store's decoder: the log's units (segment headers and record frames) in log order, each
//!   *intact* if the image holds exactly the written bytes at its place. The image keeps the
//!   first `intact` records; it has a *torn tail* if any byte or segment file lies beyond them;
//!   it has a *hole* if a record after the first damaged unit is intact (a lost earlier write
//!   before a kept later one: `CrashOptions::subsets`, or a store that let a later write reach
//!   the disk before an earlier one was synced);
//! * [`WrittenLog::expect`] says what recovery must do with an image:
//!   - no hole: recover exactly the oracle's `recover(Image(intact, torn))`: the same number
//!     of records, the oracle's visible set, a torn tail reported iff there was one;
//!   - a hole: fail closed (`CorruptSegment`) naming the file and offset of the first damaged
//!     unit, changing nothing. Why this and not a cut: the bytes after the hole hold valid
//!     records, and from the disk alone recovery cannot tell a lost unsynced write from
//!     damage to synced data; cutting there could silently drop acknowledged records, which
//!     INV-CORRUPTION-FAILS-CLOSED forbids ("a bad frame followed by good frames"). Nothing
//!     acknowledged is at risk in the crash case: the file-system model only loses unsynced
//!     writes, so every durable record precedes the hole (checked: `intact >= durable_len`).
//!     Opening and showing the records after the hole would break INV-PREFIX.

use crate::oracle::{self, EventNo, RecKind, Record, UnitKind};
use crate::record::{scan_log, segment_files, LogBody, LogRecord};
use batpak::__testing::env::SimDisk;
use batpak::__testing::log::{self, segment, RecoveryReport, Unit};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A unit of the byte-level comparison: a segment header or a record frame.
#[derive(Debug, Clone)]
struct ByteUnit {
    file: PathBuf,
    offset: u64,
    len: u64,
    /// The record's index, `None` for a segment header.
    record: Option<usize>,
}

/// The log as the store wrote it.
#[derive(Debug, Clone, Default)]
pub struct WrittenLog {
    /// The records, by sequence (up to the first damage).
    pub records: Vec<LogRecord>,
    /// The segment file of each record.
    pub files_of: Vec<PathBuf>,
    /// Where the reading stopped, if the log does not read clean to its end (segment id,
    /// offset, reason).
    pub damage: Option<(u64, u64, String)>,
    /// Full content of every segment file.
    files: BTreeMap<PathBuf, Vec<u8>>,
    /// Headers and frames in log order.
    units: Vec<ByteUnit>,
}

/// How a crash image relates to the written log, judged on bytes alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// Records before the first damaged unit.
    pub intact: usize,
    /// Bytes or segment files beyond the intact records.
    pub torn: bool,
    /// The first damaged unit (file, offset) when an intact record follows it.
    pub hole: Option<(PathBuf, u64)>,
}

/// The oracle's view of a written log.
#[derive(Debug, Clone, Default)]
pub struct Abstract {
    /// The abstract records, in log order.
    pub records: Vec<Record>,
    /// Global sequence of each abstract event.
    pub event_seq: BTreeMap<EventNo, u64>,
}

/// What recovery of one image must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Open succeeds with exactly this outcome.
    Recovers {
        /// Records recovery keeps.
        records: u64,
        /// Global sequences of the visible events.
        visible: BTreeSet<u64>,
        /// Whether a torn tail must be reported (and cut).
        torn: bool,
    },
    /// Open fails with `CorruptSegment` at this file and offset.
    FailsClosed {
        /// The damaged file.
        file: PathBuf,
        /// Offset of the first damaged unit.
        offset: u64,
    },
}

impl WrittenLog {
    /// Reads the written log of the store in `dir` on `disk`: what a read sees now.
    pub fn read(disk: &SimDisk, dir: &Path) -> WrittenLog {
        let scanned = scan_log(disk, dir);
        let mut files = BTreeMap::new();
        for p in segment_files(disk, dir) {
            let bytes = disk.read_file(&p).unwrap_or_default();
            files.insert(p, bytes);
        }
        let files_of: Vec<PathBuf> = scanned
            .positions
            .iter()
            .map(|p| dir.join(segment::segment_file_name(p.segment_id)))
            .collect();
        // Only headers that read as this log's: bytes in any other segment file (a header
        // that failed, a file after the first damage) lie beyond the written log.
        let headers: Vec<PathBuf> = scanned
            .segments
            .iter()
            .map(|id| dir.join(segment::segment_file_name(*id)))
            .collect();
        let mut units = Vec::new();
        let mut next = 0usize;
        for f in &headers {
            units.push(ByteUnit {
                file: f.clone(),
                offset: 0,
                len: log::SEGMENT_HEADER_BYTES as u64,
                record: None,
            });
            while let Some(pos) = scanned.positions.get(next).filter(|_| &files_of[next] == f) {
                units.push(ByteUnit {
                    file: f.clone(),
                    offset: pos.offset,
                    len: pos.len,
                    record: Some(next),
                });
                next += 1;
            }
        }
        WrittenLog {
            records: scanned.records,
            files_of,
            damage: scanned.damage,
            files,
            units,
        }
    }

    /// The oracle's records for this log.
    pub fn abstract_log(&self) -> Abstract {
        Abstract::of(&self.records)
    }

    /// Compares `image` (a crash image of this log) with the written bytes.
    pub fn classify(&self, image: &SimDisk, dir: &Path) -> Classified {
        let mut contents: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
        for p in segment_files(image, dir) {
            let c = image.read_file(&p).unwrap_or_default();
            contents.insert(p, c);
        }
        let intact_unit = |u: &ByteUnit| -> bool {
            let (Some(img), Some(orig)) = (contents.get(&u.file), self.files.get(&u.file)) else {
                return false;
            };
            let (Ok(a), Ok(b)) = (usize::try_from(u.offset), usize::try_from(u.offset + u.len))
            else {
                return false;
            };
            match (img.get(a..b), orig.get(a..b)) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
        };
        let first_bad = self.units.iter().position(|u| !intact_unit(u));
        let prefix_units = first_bad.unwrap_or(self.units.len());
        let intact = self.units[..prefix_units]
            .iter()
            .filter(|u| u.record.is_some())
            .count();
        let hole = first_bad.and_then(|i| {
            let later_record = self.units[i + 1..]
                .iter()
                .any(|u| u.record.is_some() && intact_unit(u));
            later_record.then(|| (self.units[i].file.clone(), self.units[i].offset))
        });
        // Torn: any segment file whose length differs from what the intact units account for.
        let mut ends: BTreeMap<&PathBuf, u64> = BTreeMap::new();
        for u in &self.units[..prefix_units] {
            let e = ends.entry(&u.file).or_insert(0);
            *e = (*e).max(u.offset + u.len);
        }
        let torn = contents
            .iter()
            .any(|(p, c)| ends.get(p).copied() != Some(c.len() as u64));
        Classified { intact, torn, hole }
    }

    /// The records of this log that are durable on `disk` now (the crash image that loses
    /// everything pending: the platter alone), counted as a prefix.
    pub fn durable_len(&self, disk: &SimDisk, dir: &Path) -> usize {
        let platter = disk.crash_with(&mut |_| 0).power_loss_disk();
        self.classify(&platter, dir).intact
    }

    /// What recovery of `image` must do, by the oracle (see the module docs).
    /// `durable_len`: records the store promised durable.
    pub fn expect(
        &self,
        abs: &Abstract,
        image: &SimDisk,
        dir: &Path,
        durable_len: usize,
    ) -> Result<Expected, String> {
        let c = self.classify(image, dir);
        if c.intact < durable_len {
            return Err(format!(
                "the crash image keeps {} records, {durable_len} were durable \
                 (the file-system model lost synced data)",
                c.intact
            ));
        }
        if let Some((file, offset)) = c.hole {
            return Ok(Expected::FailsClosed { file, offset });
        }
        let visible = expected_visible(abs, c.intact, c.torn);
        Ok(Expected::Recovers {
            records: c.intact as u64,
            visible,
            torn: c.torn,
        })
    }
}

impl Abstract {
    /// The oracle's records for written records `recs` (in log order, sequences dense from 0).
    pub fn of(recs: &[LogRecord]) -> Abstract {
        let mut batch_ids: BTreeMap<u64, u32> = BTreeMap::new();
        let mut fence_ids: BTreeMap<u64, u32> = BTreeMap::new();
        // The fence of each fenced batch (its events precede its commit record).
        let mut batch_fence: BTreeMap<u64, u64> = BTreeMap::new();
        fn id_of(map: &mut BTreeMap<u64, u32>, key: u64) -> u32 {
            let n = u32::try_from(map.len() + 1).unwrap_or(u32::MAX);
            *map.entry(key).or_insert(n)
        }
        let mut records = Vec::with_capacity(recs.len());
        let mut event_seq = BTreeMap::new();
        let mut events: EventNo = 0;
        for r in recs {
            let seq = u32::try_from(r.seq + 1).unwrap_or(u32::MAX);
            let fence_rec = |k, f, ids: &mut BTreeMap<u64, u32>| {
                Record::new(k, 0, UnitKind::Fence, id_of(ids, f), seq)
            };
            let rec = match &r.body {
                LogBody::Event(e) => {
                    events += 1;
                    event_seq.insert(events, r.seq);
                    match e.unit {
                        Unit::None => Record::new(RecKind::Event, events, UnitKind::None, 0, seq),
                        Unit::Batch(b) => Record::new(
                            RecKind::Event,
                            events,
                            UnitKind::Batch,
                            id_of(&mut batch_ids, b),
                            seq,
                        ),
                        Unit::Fence(f) => Record::new(
                            RecKind::Event,
                            events,
                            UnitKind::Fence,
                            id_of(&mut fence_ids, f),
                            seq,
                        ),
                        Unit::FencedBatch { fence, batch } => {
                            batch_fence.insert(batch, fence);
                            Record::in_batch(
                                RecKind::Event,
                                events,
                                id_of(&mut batch_ids, batch),
                                id_of(&mut fence_ids, fence),
                                seq,
                            )
                        }
                    }
                }
                LogBody::BatchCommit { batch, .. } => {
                    let b = id_of(&mut batch_ids, *batch);
                    let f = batch_fence
                        .get(batch)
                        .map_or(0, |f| id_of(&mut fence_ids, *f));
                    Record::in_batch(RecKind::BatchCommit, 0, b, f, seq)
                }
                LogBody::FenceBegin { fence } => {
                    fence_rec(RecKind::FenceBegin, *fence, &mut fence_ids)
                }
                LogBody::FenceCommit { fence } => {
                    fence_rec(RecKind::FenceCommit, *fence, &mut fence_ids)
                }
                LogBody::FenceCancel { fence } => {
                    fence_rec(RecKind::FenceCancel, *fence, &mut fence_ids)
                }
                // Store.tla has no consumers (spec/Delivery.tla models them). A checkpoint is
                // no event and hides nothing, so it keeps its sequence here as the cancel of a
                // fence that never began (its own token, which no event can carry).
                // A compaction's dropped range is no event either (Store.tla has no
                // compaction; its logs never reach this mapping).
                LogBody::Checkpoint(_) | LogBody::Dropped { .. } => {
                    fence_rec(RecKind::FenceCancel, u64::MAX - r.seq, &mut fence_ids)
                }
            };
            records.push(rec);
        }
        Abstract { records, event_seq }
    }

    /// Global sequences of the abstract events `events`.
    pub fn seqs(&self, events: &BTreeSet<EventNo>) -> BTreeSet<u64> {
        events
            .iter()
            .filter_map(|e| self.event_seq.get(e).copied())
            .collect()
    }
}

/// What recovery of the first `keep` records of a written log (followed by a torn record if
/// `torn`) must make visible, as global sequences: the oracle's `recover(Image(keep, torn))`.
/// The only such reference of the model crate.
pub fn expected_visible(abs: &Abstract, keep: usize, torn: bool) -> BTreeSet<u64> {
    let keep = keep.min(abs.records.len());
    let img = oracle::image(&abs.records, keep, torn);
    abs.seqs(&oracle::recover(&img).visible)
}

/// Every visible set (as global sequences) the oracle allows after a crash of a store that
/// wrote `abs` with `durable_len` records durable (`allowed_after_recovery`).
pub fn allowed_visible_sets(abs: &Abstract, durable_len: usize) -> BTreeSet<BTreeSet<u64>> {
    oracle::allowed_after_recovery(&abs.records, durable_len.min(abs.records.len()))
        .iter()
        .map(|set| abs.seqs(set))
        .collect()
}

/// Compares a recovery outcome with [`Expected::Recovers`]; `Err` says what differs.
pub fn compare(
    expected: &Expected,
    report: &RecoveryReport,
    visible: &BTreeSet<u64>,
) -> Result<(), String> {
    match expected {
        Expected::FailsClosed { file, offset } => Err(format!(
            "recovery succeeded ({} records) but the oracle requires fail-closed at {}:{offset}",
            report.records,
            file.display()
        )),
        Expected::Recovers {
            records,
            visible: want,
            torn,
        } => {
            if report.records != *records {
                return Err(format!(
                    "recovery kept {} records, the oracle {records}",
                    report.records
                ));
            }
            if visible != want {
                return Err(format!(
                    "recovery shows {visible:?}, the oracle {want:?} ({records} records)"
                ));
            }
            if report.torn_tail.is_some() != *torn {
                return Err(format!(
                    "torn tail reported: {:?}, the oracle expected one: {torn}",
                    report.torn_tail
                ));
            }
            Ok(())
        }
    }
}
