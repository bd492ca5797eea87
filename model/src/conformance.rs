//! Conformance of the real store's crash images to the oracle ([`crate::oracle`]).
//!
//! The oracle reasons about abstract logs (`Rec(k, e, u, id, seq)`); the store writes frames
//! into segment files. This module maps one to the other:
//!
//! * [`WrittenLog::read`] reads the log the store wrote (every record with its byte range, and
//!   the bytes of every segment file) from a [`SimDisk`] with nothing lost;
//! * [`WrittenLog::abstract_log`] maps it to the oracle's records: events are numbered 1, 2, …
//!   in log order, batch and fence ids are renumbered 1, 2, … in order of first appearance,
//!   `seq` is the stored global sequence plus one (TLA+ positions are 1-based). An event of a
//!   fenced batch (`Unit::FencedBatch`, not modelled by the spec) maps to an event of its
//!   fence; [`WrittenLog::expect`] checks for every image that this is exact (the batch's
//!   commit record precedes the fence's commit record in the log, so any prefix holding the
//!   fence commit holds the batch commit);
//! * a crash image (`CrashImage::disk`) is the page cache a crashed process left: what
//!   survived unsynced is still unsynced there, so a later power loss may lose it again. The
//!   classification below reads its bytes (what recovery reads), whatever of them is durable;
//!   durability after the reopen is checked by the crash-state checker (`tests/common/crash.rs`:
//!   every power loss after the reopen keeps what it reported durable);
//! * [`WrittenLog::classify`] looks at a crash image byte by byte, independently of the
//!   store's decoder: the log's units (segment headers and record frames) in log order, each
//!   *intact* if the image holds exactly the written bytes at its place. The image keeps the
//!   first `intact` records; it has a *torn tail* if any byte or segment file lies beyond them;
//!   it has a *hole* if a record after the first damaged unit is intact (only possible with
//!   `CrashOptions::subsets`: a lost middle write before a kept later one);
//! * [`WrittenLog::expect`] says what recovery must do with an image:
//!   - no hole: recover exactly the oracle's `recover(Image(intact, torn))`: the same number
//!     of records, the oracle's visible set (mapped back to global sequences), a torn tail
//!     reported iff there was one; and the visible set is one of the oracle's
//!     `allowed_after_recovery(written, durable_len)` for the durability the store promised;
//!   - a hole: fail closed (`CorruptSegment`) naming the file and offset of the first damaged
//!     unit, changing nothing. Why this and not a cut: the bytes after the hole hold valid
//!     records, and from the disk alone recovery cannot tell a lost unsynced write from
//!     damage to synced data; cutting there could silently drop acknowledged records, which
//!     INV-CORRUPTION-FAILS-CLOSED forbids ("a bad frame followed by good frames"). Nothing
//!     acknowledged is at risk in the crash case: the file-system model only loses unsynced
//!     writes, so every durable record precedes the hole (checked: `intact >= durable_len`).
//!     Opening and showing the records after the hole would break INV-PREFIX.

use crate::oracle::{self, EventNo, RecKind, Record, UnitKind};
use batpak::__testing::env::{Disk, SimDisk};
use batpak::__testing::log::{self, segment, RecordBody, RecoveryReport, Unit};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What one written record is, for the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An event of this unit.
    Event(Unit),
    /// A batch commit record.
    BatchCommit(u64),
    /// A fence begin record.
    FenceBegin(u64),
    /// A fence commit record.
    FenceCommit(u64),
    /// A fence cancel record.
    FenceCancel(u64),
    /// A consumer checkpoint record (in this unit).
    Checkpoint(Unit),
}

/// One written record and where its frame sits.
#[derive(Debug, Clone)]
pub struct WrittenRec {
    /// Global sequence (0-based, as stored).
    pub seq: u64,
    /// What it is.
    pub shape: Shape,
    /// Its segment file.
    pub file: PathBuf,
    /// Frame offset in the file.
    pub offset: u64,
    /// Frame length.
    pub len: u64,
}

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
#[derive(Debug, Clone)]
pub struct WrittenLog {
    /// The records, by sequence.
    pub recs: Vec<WrittenRec>,
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
#[derive(Debug, Clone)]
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

fn segment_files(disk: &SimDisk, dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = disk
        .files()
        .into_iter()
        .filter(|p| {
            p.parent() == Some(dir)
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(segment::parse_segment_file_name)
                    .is_some()
        })
        .collect();
    v.sort();
    v
}

impl WrittenLog {
    /// Reads the written log of the store in `dir` on `disk` (the state now, nothing lost).
    pub fn read(disk: &SimDisk, dir: &Path) -> Result<WrittenLog, String> {
        let full = disk.crash_with(&mut |n| n - 1).disk();
        let mut files = BTreeMap::new();
        let exists = full
            .exists(dir)
            .map_err(|e| format!("exists {}: {e}", dir.display()))?;
        if !exists {
            return Ok(WrittenLog {
                recs: Vec::new(),
                files,
                units: Vec::new(),
            });
        }
        for p in segment_files(&full, dir) {
            let bytes = full.read_file(&p).unwrap_or_default();
            files.insert(p, bytes);
        }
        let mut recs = Vec::new();
        let mut visit = |r: &log::Record<'_>, pos: log::DiskPos| -> Result<(), String> {
            let shape = match &r.body {
                RecordBody::Event(e) => Shape::Event(e.unit),
                RecordBody::BatchCommit { batch, .. } => Shape::BatchCommit(*batch),
                RecordBody::FenceBegin { fence } => Shape::FenceBegin(*fence),
                RecordBody::FenceCommit { fence } => Shape::FenceCommit(*fence),
                RecordBody::FenceCancel { fence } => Shape::FenceCancel(*fence),
                RecordBody::Checkpoint(c) => Shape::Checkpoint(c.unit),
            };
            recs.push(WrittenRec {
                seq: r.seq,
                shape,
                file: dir.join(segment::segment_file_name(pos.segment_id)),
                offset: pos.offset,
                len: u64::from(pos.length),
            });
            Ok(())
        };
        // Recovery of a copy (it may cut a torn tail of a faulted run on the copy only).
        log::scan(&full, dir, log::CutPolicy::OnDisk, &mut visit)
            .map_err(|e| format!("the written log does not recover: {e}"))?;
        let mut units = Vec::new();
        let mut next = 0usize;
        for f in files.keys() {
            units.push(ByteUnit {
                file: f.clone(),
                offset: 0,
                len: log::SEGMENT_HEADER_BYTES as u64,
                record: None,
            });
            while let Some(r) = recs.get(next).filter(|r| &r.file == f) {
                units.push(ByteUnit {
                    file: f.clone(),
                    offset: r.offset,
                    len: r.len,
                    record: Some(next),
                });
                next += 1;
            }
        }
        if next != recs.len() {
            return Err(format!(
                "records in files not listed: {} of {} placed",
                next,
                recs.len()
            ));
        }
        Ok(WrittenLog { recs, files, units })
    }

    /// The oracle's records for this log (see the module docs for the mapping).
    pub fn abstract_log(&self) -> Result<Abstract, String> {
        let mut batch_ids: BTreeMap<u64, u32> = BTreeMap::new();
        let mut fence_ids: BTreeMap<u64, u32> = BTreeMap::new();
        fn id_of(map: &mut BTreeMap<u64, u32>, key: u64) -> u32 {
            let n = u32::try_from(map.len() + 1).unwrap_or(u32::MAX);
            *map.entry(key).or_insert(n)
        }
        let mut records = Vec::with_capacity(self.recs.len());
        let mut event_seq = BTreeMap::new();
        let mut events: EventNo = 0;
        for (i, r) in self.recs.iter().enumerate() {
            if r.seq != i as u64 {
                return Err(format!("record {i} has sequence {}", r.seq));
            }
            let seq = u32::try_from(r.seq + 1).map_err(|_| "sequence too large".to_string())?;
            let rec = match r.shape {
                Shape::Event(unit) => {
                    events += 1;
                    event_seq.insert(events, r.seq);
                    let (u, id) = match unit {
                        Unit::None => (UnitKind::None, 0),
                        Unit::Batch(b) => (UnitKind::Batch, id_of(&mut batch_ids, b)),
                        Unit::Fence(f) | Unit::FencedBatch { fence: f, .. } => {
                            (UnitKind::Fence, id_of(&mut fence_ids, f))
                        }
                    };
                    Record::new(RecKind::Event, events, u, id, seq)
                }
                Shape::BatchCommit(b) => Record::new(
                    RecKind::BatchCommit,
                    0,
                    UnitKind::Batch,
                    id_of(&mut batch_ids, b),
                    seq,
                ),
                Shape::FenceBegin(f) => Record::new(
                    RecKind::FenceBegin,
                    0,
                    UnitKind::Fence,
                    id_of(&mut fence_ids, f),
                    seq,
                ),
                Shape::FenceCommit(f) => Record::new(
                    RecKind::FenceCommit,
                    0,
                    UnitKind::Fence,
                    id_of(&mut fence_ids, f),
                    seq,
                ),
                Shape::FenceCancel(f) => Record::new(
                    RecKind::FenceCancel,
                    0,
                    UnitKind::Fence,
                    id_of(&mut fence_ids, f),
                    seq,
                ),
                // The oracle follows spec/Store.tla, which has no consumers: a log with
                // checkpoints is checked against the reference (expected_checkpoints) instead.
                Shape::Checkpoint(_) => {
                    return Err(format!(
                        "record {i} is a consumer checkpoint, which the oracle's log does not model"
                    ))
                }
            };
            records.push(rec);
        }
        Ok(Abstract { records, event_seq })
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
        self.fenced_batches_exact(c.intact)?;
        let img = oracle::image(&abs.records, c.intact, c.torn);
        let rec = oracle::recover(&img);
        let visible = rec
            .visible
            .iter()
            .filter_map(|e| abs.event_seq.get(e).copied())
            .collect();
        Ok(Expected::Recovers {
            records: rec.log.len() as u64,
            visible,
            torn: c.torn,
        })
    }

    /// The fenced-batch abstraction is exact for the prefix of `k` records: a fenced batch
    /// whose fence commit is in the prefix has its batch commit there too.
    fn fenced_batches_exact(&self, k: usize) -> Result<(), String> {
        let prefix = &self.recs[..k.min(self.recs.len())];
        let has = |s: Shape| prefix.iter().any(|r| r.shape == s);
        for r in prefix {
            if let Shape::Event(Unit::FencedBatch { fence, batch }) = r.shape {
                if has(Shape::FenceCommit(fence)) && !has(Shape::BatchCommit(batch)) {
                    return Err(format!(
                        "fence {fence} committed in a prefix of {k} records without the commit \
                         of its batch {batch}: the oracle mapping is not exact"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Every visible set (as global sequences) the oracle allows after a crash of a store that
/// wrote `abs` with `durable_len` records durable (`allowed_after_recovery`).
pub fn allowed_visible_sets(abs: &Abstract, durable_len: usize) -> BTreeSet<BTreeSet<u64>> {
    oracle::allowed_after_recovery(&abs.records, durable_len.min(abs.records.len()))
        .into_iter()
        .map(|set| {
            set.iter()
                .filter_map(|e| abs.event_seq.get(e).copied())
                .collect()
        })
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
