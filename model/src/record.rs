//! The one owned record type of the model crate, and a reader of the log that does not use the
//! store's recovery.
//!
//! [`LogRecord`] is what every checker here (the crash-state enumeration, the simulator, the
//! fuzz harness) keeps of a written record. [`scan_log`] reads the segment files of a data
//! directory as a read sees them now, independently of `batpak::__testing::log::recover` (only the frame
//! codec and the segment header decoder are shared), so a checker can compare what recovery
//! kept with what was written without trusting recovery's own reading of the log.

use batpak::__testing::codec;
use batpak::__testing::env::SimDisk;
use batpak::__testing::log::segment::{decode_header, parse_segment_file_name, segment_file_name};
use batpak::__testing::log::{CheckpointPosition, Record, RecordBody, Unit, SEGMENT_HEADER_BYTES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// An owned copy of one log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The sequence stored in the frame.
    pub seq: u64,
    /// What the record says.
    pub body: LogBody,
}

/// An owned copy of a record body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogBody {
    /// An event.
    Event(LogEvent),
    /// `BatchCommit`.
    BatchCommit {
        /// Batch id.
        batch: u64,
        /// Events in the batch.
        count: u32,
    },
    /// `FenceBegin`.
    FenceBegin {
        /// Fence token.
        fence: u64,
    },
    /// `FenceCommit`.
    FenceCommit {
        /// Fence token.
        fence: u64,
    },
    /// `FenceCancel`.
    FenceCancel {
        /// Fence token.
        fence: u64,
    },
    /// A consumer checkpoint.
    Checkpoint(LogCheckpoint),
    /// A range compaction removed: sequences from the record's own up to `to`.
    Dropped {
        /// The first sequence after the range.
        to: u64,
    },
}

/// A consumer checkpoint as the reference sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheckpoint {
    /// Unit (`None`, or the batch of the consumer's outputs).
    pub unit: Unit,
    /// Checkpoint id.
    pub id: String,
    /// `None`: deleted; `Some(None)`: at the start; `Some(Some(s))`: after sequence `s`.
    pub position: Option<Option<u64>>,
}

/// An event as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Unit.
    pub unit: Unit,
    /// Event id.
    pub event_id: u128,
    /// Entity.
    pub entity: String,
    /// Scope.
    pub scope: String,
    /// Raw kind.
    pub kind: u16,
    /// Entity clock.
    pub clock: u32,
    /// Hash of the entity's previous written event.
    pub prev_hash: [u8; 32],
    /// Raw payload bytes.
    pub payload: Vec<u8>,
}

impl LogRecord {
    /// Copies a decoded record.
    pub fn from_record(r: &Record<'_>) -> Self {
        let body = match &r.body {
            RecordBody::Event(e) => LogBody::Event(LogEvent {
                unit: e.unit,
                event_id: e.event_id,
                entity: e.entity.to_owned(),
                scope: e.scope.to_owned(),
                kind: e.kind,
                clock: e.clock,
                prev_hash: e.prev_hash,
                payload: e.payload.to_vec(),
            }),
            RecordBody::BatchCommit { batch, count } => LogBody::BatchCommit {
                batch: *batch,
                count: *count,
            },
            RecordBody::FenceBegin { fence } => LogBody::FenceBegin { fence: *fence },
            RecordBody::FenceCommit { fence } => LogBody::FenceCommit { fence: *fence },
            RecordBody::FenceCancel { fence } => LogBody::FenceCancel { fence: *fence },
            RecordBody::Checkpoint(c) => LogBody::Checkpoint(LogCheckpoint {
                unit: c.unit,
                id: c.id.to_owned(),
                position: match c.position {
                    CheckpointPosition::Start => Some(None),
                    CheckpointPosition::After(s) => Some(Some(s)),
                    CheckpointPosition::Deleted => None,
                },
            }),
            RecordBody::Dropped { to } => LogBody::Dropped { to: *to },
        };
        LogRecord { seq: r.seq, body }
    }

    /// The event, if this record is one.
    pub fn event(&self) -> Option<&LogEvent> {
        match &self.body {
            LogBody::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The event's unit, if this record is an event.
    pub fn unit(&self) -> Option<Unit> {
        self.event().map(|e| e.unit)
    }
}

/// The consumer checkpoints a recovered store must report for the surviving log `log`: id ->
/// committed position (`None`: at the start). A checkpoint outside a unit counts where it
/// stands; one inside a batch counts only if that batch committed (its commit record is in
/// the log with the right event count), so outputs and checkpoint stand or fall together
/// (INV-EXACTLY-ONCE). In log order, the last one that counts wins; a deletion removes.
pub fn expected_checkpoints(log: &[LogRecord]) -> BTreeMap<String, Option<u64>> {
    let mut batch_events: BTreeMap<u64, u32> = BTreeMap::new();
    let mut committed: BTreeSet<u64> = BTreeSet::new();
    for r in log {
        match &r.body {
            LogBody::Event(e) => {
                if let Some(b) = e.unit.batch() {
                    *batch_events.entry(b).or_default() += 1;
                }
            }
            LogBody::BatchCommit { batch, count }
                if batch_events.get(batch).copied().unwrap_or(0) == *count =>
            {
                committed.insert(*batch);
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for r in log {
        let LogBody::Checkpoint(c) = &r.body else {
            continue;
        };
        if c.unit.batch().is_some_and(|b| !committed.contains(&b)) {
            continue;
        }
        match c.position {
            Some(p) => {
                out.insert(c.id.clone(), p);
            }
            None => {
                out.remove(&c.id);
            }
        }
    }
    out
}

/// Where a scanned record's frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePos {
    /// Segment id.
    pub segment_id: u64,
    /// Offset of the frame in the segment file.
    pub offset: u64,
    /// Frame length.
    pub len: u64,
}

/// What [`scan_log`] found.
#[derive(Debug, Clone, Default)]
pub struct ScannedLog {
    /// Valid records in order, up to the first damage.
    pub records: Vec<LogRecord>,
    /// Their frame positions.
    pub positions: Vec<FramePos>,
    /// The first damage: (segment id, offset, reason). `None` if the whole log is clean.
    pub damage: Option<(u64, u64, String)>,
    /// The segments whose header was read (in order; the damaged one is not among them if
    /// its header is the damage).
    pub segments: Vec<u64>,
}

/// The segment files in `dir` on `disk`, sorted (by id: the names are zero-padded).
pub fn segment_files(disk: &SimDisk, dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = disk
        .files()
        .into_iter()
        .filter(|p| {
            p.parent() == Some(dir)
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(parse_segment_file_name)
                    .is_some()
        })
        .collect();
    v.sort();
    v
}

/// Reads the log in `dir` as the disk's reads see it now: segments in id order, each a
/// header and frames (under the header's salt and frame limit); stops at the first damage
/// (bad header, bad frame, sequence gap).
pub fn scan_log(disk: &SimDisk, dir: &Path) -> ScannedLog {
    let mut ids: Vec<u64> = segment_files(disk, dir)
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
        .filter_map(parse_segment_file_name)
        .collect();
    ids.sort_unstable();
    let mut out = ScannedLog::default();
    let mut next_seq = 0u64;
    for id in ids {
        let bytes = disk
            .read_file(&dir.join(segment_file_name(id)))
            .unwrap_or_default();
        let damage = |offset: u64, why: String| Some((id, offset, why));
        let (salt, frame_max) = match decode_header(&bytes) {
            Ok(h) if h.segment_id == id && h.first_seq == next_seq => {
                out.segments.push(id);
                (h.salt, h.frame_max)
            }
            Ok(h) => {
                out.damage = damage(0, format!("header {h:?} where sequence {next_seq} is next"));
                return out;
            }
            Err(e) => {
                out.damage = damage(0, e.to_string());
                return out;
            }
        };
        let mut pos = SEGMENT_HEADER_BYTES;
        while pos < bytes.len() {
            let rest = bytes.get(pos..).unwrap_or(&[]);
            match codec::decode(rest, frame_max, salt) {
                Ok((r, used)) if r.seq == next_seq => {
                    out.records.push(LogRecord::from_record(&r));
                    out.positions.push(FramePos {
                        segment_id: id,
                        offset: pos as u64,
                        len: used as u64,
                    });
                    next_seq = r.body.next_seq(r.seq);
                    pos += used;
                }
                Ok((r, _)) => {
                    out.damage = damage(
                        pos as u64,
                        format!("sequence {} where {next_seq} is next", r.seq),
                    );
                    return out;
                }
                Err(e) => {
                    out.damage = damage(pos as u64, e.to_string());
                    return out;
                }
            }
        }
    }
    out
}

/// Where, from byte `from` on, the segment file `bytes` holds a frame that checks out under its
/// own header's salt and frame limit and carries a sequence of at least `min_seq`, looking at
/// every byte offset. `None` when there is none, or the header does not give a salt. The
/// recovery rule (spec/FORMAT.md): damage is a torn tail only if no such frame follows it,
/// where the search starts after the damaged frame when its length passes its head check.
pub fn valid_frame_from(bytes: &[u8], from: usize, min_seq: u64) -> Option<usize> {
    let h = decode_header(bytes).ok()?;
    (from.max(SEGMENT_HEADER_BYTES)..bytes.len()).find(|&at| {
        bytes
            .get(at..)
            .and_then(|rest| codec::decode(rest, h.frame_max, h.salt).ok())
            .is_some_and(|(r, _)| r.seq >= min_seq)
    })
}

/// Every file of the disk with its content, as one byte string (to see that an operation
/// changed nothing).
pub fn fingerprint(disk: &SimDisk) -> Vec<u8> {
    let mut out = Vec::new();
    for f in disk.files() {
        out.extend_from_slice(f.to_string_lossy().as_bytes());
        let c = disk.read_file(&f).unwrap_or_default();
        out.extend_from_slice(&(c.len() as u64).to_le_bytes());
        out.extend_from_slice(&c);
    }
    out
}
