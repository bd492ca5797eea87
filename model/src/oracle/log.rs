//! Records, logs and recovery: the spec's log helpers (`PosOf`, `CutTorn`, `Committed`,
//! `RecoverLog`, `RecoverVisible`, ...) transcribed one to one. Positions are 1-based like
//! TLA+ sequence indices; 0 means "absent".

use std::collections::BTreeSet;

use super::Mutant;

/// An event number (the spec's event ids `1..MaxEvents`).
pub type EventNo = u32;

/// `RecKinds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecKind {
    /// An event (`e` names it).
    Event,
    /// Written right after a batch's events, in the same write.
    BatchCommit,
    /// Opens a visibility fence.
    FenceBegin,
    /// Commits a fence: its events become visible once this is durable.
    FenceCommit,
    /// Cancels a fence: its events never become visible.
    FenceCancel,
    /// A damaged (torn) last record of a crash image.
    Torn,
}

/// `Units`: the unit an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitKind {
    /// An unfenced single event (its own unit).
    None,
    /// An atomic batch.
    Batch,
    /// A visibility fence.
    Fence,
}

/// `Rec(k, e, u, id, seq)`: one log record; `seq` is the global sequence stored in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Record {
    /// Record kind.
    pub k: RecKind,
    /// The event (0 for non-event records).
    pub e: EventNo,
    /// The unit kind.
    pub u: UnitKind,
    /// The unit id (batch id or fence id; 0 for `UnitKind::None`).
    pub id: u32,
    /// The stored global sequence.
    pub seq: u32,
}

impl Record {
    /// `Rec(k, e, u, id, s)`.
    pub fn new(k: RecKind, e: EventNo, u: UnitKind, id: u32, seq: u32) -> Self {
        Record { k, e, u, id, seq }
    }
}

/// 1-based sequence number of position `i` (0-based) in a log.
pub(crate) fn seq_at(i: usize) -> u32 {
    u32::try_from(i + 1).unwrap_or(u32::MAX)
}

/// `Has(log, k, id)`.
pub fn has(log: &[Record], k: RecKind, id: u32) -> bool {
    log.iter().any(|r| r.k == k && r.id == id)
}

/// `PosOf(log, k, id)`: 1-based position of the first such record, 0 if absent.
pub fn pos_of(log: &[Record], k: RecKind, id: u32) -> usize {
    log.iter()
        .position(|r| r.k == k && r.id == id)
        .map_or(0, |i| i + 1)
}

/// `EvPos(log, e)`.
pub fn ev_pos(log: &[Record], e: EventNo) -> usize {
    log.iter()
        .position(|r| r.k == RecKind::Event && r.e == e)
        .map_or(0, |i| i + 1)
}

/// `UnitEventsIn(log, u, id)`.
pub fn unit_events_in(log: &[Record], u: UnitKind, id: u32) -> BTreeSet<EventNo> {
    log.iter()
        .filter(|r| r.k == RecKind::Event && r.u == u && r.id == id)
        .map(|r| r.e)
        .collect()
}

/// `LogEvents(log)`.
pub fn log_events(log: &[Record]) -> BTreeSet<EventNo> {
    log.iter()
        .filter(|r| r.k == RecKind::Event)
        .map(|r| r.e)
        .collect()
}

/// `IsCommitPoint(r)`: the record whose publication makes its unit visible.
pub fn is_commit_point(r: &Record, mutant: Mutant) -> bool {
    match r.k {
        RecKind::Event => match r.u {
            UnitKind::None => true,
            UnitKind::Fence => mutant == Mutant::VisibleBeforeCommit,
            UnitKind::Batch => mutant == Mutant::BatchPublishPerEvent,
        },
        RecKind::BatchCommit | RecKind::FenceCommit => true,
        RecKind::FenceBegin | RecKind::FenceCancel | RecKind::Torn => false,
    }
}

/// `TrueCommitPoint(r)`: the commit points of the unmutated protocol.
pub fn true_commit_point(r: &Record) -> bool {
    is_commit_point(r, Mutant::None)
}

/// `PointEvents(log, i)` for a 1-based position `i`.
pub fn point_events(log: &[Record], i: usize) -> BTreeSet<EventNo> {
    let Some(r) = i.checked_sub(1).and_then(|j| log.get(j)) else {
        return BTreeSet::new();
    };
    match r.k {
        RecKind::Event => BTreeSet::from([r.e]),
        RecKind::BatchCommit => unit_events_in(log, UnitKind::Batch, r.id),
        _ => unit_events_in(log, UnitKind::Fence, r.id),
    }
}

/// `CutTorn(log)`: the crash image without its torn last record.
pub fn cut_torn(log: &[Record]) -> Vec<Record> {
    match log.split_last() {
        Some((last, rest)) if last.k == RecKind::Torn => rest.to_vec(),
        _ => log.to_vec(),
    }
}

/// `Committed(log, r)`: is the unit of `r` complete in `log` (as recovery judges it)?
pub fn committed(log: &[Record], r: &Record, mutant: Mutant) -> bool {
    match r.u {
        UnitKind::None => true,
        UnitKind::Batch => {
            has(log, RecKind::BatchCommit, r.id) || mutant == Mutant::RecoverPartialBatch
        }
        UnitKind::Fence => {
            has(log, RecKind::FenceCommit, r.id)
                || (mutant == Mutant::RecoverOpenFenceVisible
                    && !has(log, RecKind::FenceCancel, r.id))
                || (mutant == Mutant::RecoverCancelAsCommit && has(log, RecKind::FenceCancel, r.id))
        }
    }
}

/// `TrulyCommitted(log, r)`: `committed` for the unmutated protocol.
pub fn truly_committed(log: &[Record], r: &Record) -> bool {
    committed(log, r, Mutant::None)
}

/// `Hidden(log, r)`: `r` is an event of a unit recovery keeps hidden.
pub fn hidden(log: &[Record], r: &Record, mutant: Mutant) -> bool {
    r.k == RecKind::Event && !committed(log, r, mutant)
}

/// `Visibles(s, ref, 1)`: the records of `s` not hidden according to `reference`.
pub fn visibles(s: &[Record], reference: &[Record], mutant: Mutant) -> Vec<Record> {
    s.iter()
        .filter(|r| !hidden(reference, r, mutant))
        .cloned()
        .collect()
}

/// `RecoverLog(image)`: the log recovery leaves on disk.
pub fn recover_log(image: &[Record], mutant: Mutant) -> Vec<Record> {
    let log = if mutant == Mutant::RecoveryKeepsTornTail {
        image.to_vec()
    } else {
        cut_torn(image)
    };
    if mutant == Mutant::RecoveryRenumbers {
        let mut kept = visibles(&log, &log, mutant);
        for (i, r) in kept.iter_mut().enumerate() {
            r.seq = seq_at(i);
        }
        return kept;
    }
    log
}

/// `RecoverVisible(log)`: the visible set recovery rebuilds from a recovered log.
pub fn recover_visible(log: &[Record], mutant: Mutant) -> BTreeSet<EventNo> {
    let stop = if mutant == Mutant::RecoveryStopsAtHiddenUnit {
        log.iter()
            .position(|r| hidden(log, r, mutant))
            .unwrap_or(log.len())
    } else {
        log.len()
    };
    log.iter()
        .take(stop)
        .filter(|r| r.k == RecKind::Event && !hidden(log, r, mutant))
        .map(|r| r.e)
        .collect()
}

/// What a recovery of `image` must produce: the repaired log and its visible set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The log after recovery (torn tail cut; sequences unchanged).
    pub log: Vec<Record>,
    /// The events recovery makes visible.
    pub visible: BTreeSet<EventNo>,
}

/// The expected-behaviour model of recovery: recover a crash image (the surviving records).
pub fn recover(image: &[Record]) -> Recovered {
    let log = recover_log(image, Mutant::None);
    let visible = recover_visible(&log, Mutant::None);
    Recovered { log, visible }
}

/// `Image(k, torn)`: the first `keep` records of `written`, optionally followed by a torn one.
pub fn image(written: &[Record], keep: usize, torn: bool) -> Vec<Record> {
    let mut img: Vec<Record> = written.iter().take(keep).cloned().collect();
    if torn {
        img.push(Record::new(
            RecKind::Torn,
            0,
            UnitKind::None,
            0,
            seq_at(keep),
        ));
    }
    img
}

/// Every crash image the file-system model allows for a log of which the first
/// `durable_len` records are durable: `(keep, torn)` pairs of `CrashImages`.
pub fn crash_images(written: &[Record], durable_len: usize) -> Vec<(usize, bool)> {
    let mut out = Vec::new();
    for keep in durable_len..=written.len() {
        out.push((keep, false));
        if keep < written.len() {
            out.push((keep, true));
        }
    }
    out
}

/// Every visible set recovery may produce after a crash of a store that wrote `written`
/// of which `durable_len` records were durable (one per distinct crash outcome).
pub fn allowed_after_recovery(
    written: &[Record],
    durable_len: usize,
) -> BTreeSet<BTreeSet<EventNo>> {
    crash_images(written, durable_len)
        .into_iter()
        .map(|(keep, torn)| recover(&image(written, keep, torn)).visible)
        .collect()
}
