//! A small reference for recovery: what a recovered store must show for a given surviving log.
//!
//! [`expected_visible`] is the whole rule, written from the invariants rather than from
//! `writer/state.rs`: plain events are visible; a batch's events are visible when the batch's
//! commit record (with the right count) follows them; a fence's events are visible when the
//! fence's commit record follows; a fenced batch needs both; everything else (open or cancelled
//! fences, batches without their commit) stays hidden. Visible events keep the sequence stored
//! in their frame and come out in sequence order (INV-PREFIX, INV-BATCH-ATOMIC,
//! INV-FENCE-CRASH, INV-NO-RESURRECT, INV-STABLE-SEQ).
//!
//! The TLA+ transcription (the oracle) can later take its place: the fuzz harness only calls
//! [`expected_visible`].
//!
//! [`scan_log`] reads the segment files of a data directory independently of
//! `batpak::__testing::log::scan` (only the frame codec and the segment header decoder are shared),
//! so the harness can compare what recovery kept with what was written.

use batpak::__testing::codec;
use batpak::__testing::env::SimDisk;
use batpak::__testing::log::segment::{decode_header, parse_segment_file_name, segment_file_name};
use batpak::__testing::log::{CheckpointPosition, Record, RecordBody, Unit, SEGMENT_HEADER_BYTES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// An owned copy of one log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The sequence stored in the frame.
    pub seq: u64,
    /// What the record says.
    pub body: LogBody,
}

/// An owned copy of a record body (only the fields the reference looks at, plus the payload).
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

/// An event as the reference sees it.
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
        };
        LogRecord { seq: r.seq, body }
    }
}

/// A visible event: what a read must return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleEvent {
    /// Global sequence.
    pub seq: u64,
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
    /// Raw payload bytes.
    pub payload: Vec<u8>,
}

/// The events a recovered store must show, in sequence order, for the surviving log `log`
/// (records in log order). This is the function the oracle will replace.
pub fn expected_visible(log: &[LogRecord]) -> Vec<VisibleEvent> {
    // Batch id -> number of events seen; committed batches with a matching count.
    let mut batch_events: BTreeMap<u64, u32> = BTreeMap::new();
    let mut committed_batches: BTreeSet<u64> = BTreeSet::new();
    let mut committed_fences: BTreeSet<u64> = BTreeSet::new();
    for r in log {
        match &r.body {
            LogBody::Event(e) => {
                if let Some(b) = e.unit.batch() {
                    *batch_events.entry(b).or_default() += 1;
                }
            }
            LogBody::BatchCommit { batch, count } => {
                if batch_events.get(batch).copied().unwrap_or(0) == *count {
                    committed_batches.insert(*batch);
                }
            }
            LogBody::FenceCommit { fence } => {
                committed_fences.insert(*fence);
            }
            LogBody::FenceBegin { .. } | LogBody::FenceCancel { .. } | LogBody::Checkpoint(_) => {}
        }
    }
    let mut out: Vec<VisibleEvent> = log
        .iter()
        .filter_map(|r| match &r.body {
            LogBody::Event(e) => Some((r.seq, e)),
            _ => None,
        })
        .filter(|(_, e)| {
            let batch_ok = e
                .unit
                .batch()
                .is_none_or(|b| committed_batches.contains(&b));
            let fence_ok = e.unit.fence().is_none_or(|f| committed_fences.contains(&f));
            batch_ok && fence_ok
        })
        .map(|(seq, e)| VisibleEvent {
            seq,
            event_id: e.event_id,
            entity: e.entity.clone(),
            scope: e.scope.clone(),
            kind: e.kind,
            clock: e.clock,
            payload: e.payload.clone(),
        })
        .collect();
    out.sort_by_key(|v| v.seq);
    out
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
}

/// Reads the log in `dir` as the disk's reads see it now: segments in id order, each a
/// header and frames (under the header's salt and frame limit); stops at the first damage
/// (bad header, bad frame, sequence gap).
pub fn scan_log(disk: &SimDisk, dir: &Path) -> ScannedLog {
    let mut ids: Vec<u64> = disk
        .files()
        .iter()
        .filter(|p| p.parent() == Some(dir))
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
            Ok(h) if h.segment_id == id && h.first_seq == next_seq => (h.salt, h.frame_max),
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
                    next_seq += 1;
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
