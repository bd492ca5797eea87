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
    /// The fence the record was written under (0: none): a fenced event's own fence, or
    /// the fence of a batch written inside a fence.
    pub f: u32,
    /// The stored global sequence.
    pub seq: u32,
}

impl Record {
    /// `Rec(k, e, u, id, s)`: `f` is the fence for a fence's records, 0 otherwise.
    pub fn new(k: RecKind, e: EventNo, u: UnitKind, id: u32, seq: u32) -> Self {
        let f = if u == UnitKind::Fence { id } else { 0 };
        Record {
            k,
            e,
            u,
            id,
            f,
            seq,
        }
    }

    /// `BatchRec(k, e, b, f, s)`: an event or the `BatchCommit` of batch `b` written inside
    /// fence `f` (0: an unfenced batch, the same as [`Record::new`] with `UnitKind::Batch`).
    pub fn in_batch(k: RecKind, e: EventNo, b: u32, f: u32, seq: u32) -> Self {
        Record {
            k,
            e,
            u: UnitKind::Batch,
            id: b,
            f,
            seq,
        }
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

/// `FenceEventsIn(log, f)`: every event written under fence `f` (single and batched).
pub fn fence_events_in(log: &[Record], f: u32) -> BTreeSet<EventNo> {
    log.iter()
        .filter(|r| r.k == RecKind::Event && r.f == f)
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

/// `IsCommitPoint(r)`: the record whose publication makes its unit visible. A batch inside
/// a fence has none of its own: its fence's commit publishes it.
pub fn is_commit_point(r: &Record, mutant: Mutant) -> bool {
    match r.k {
        RecKind::Event => match r.u {
            UnitKind::None => true,
            UnitKind::Fence => mutant == Mutant::VisibleBeforeCommit,
            UnitKind::Batch => mutant == Mutant::BatchPublishPerEvent,
        },
        RecKind::BatchCommit => r.f == 0 || mutant == Mutant::FencedBatchPublishedAtBatchCommit,
        RecKind::FenceCommit => true,
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
        _ => fence_events_in(log, r.id),
    }
}

/// `CutTorn(log)`: the crash image without its torn last record.
pub fn cut_torn(log: &[Record]) -> Vec<Record> {
    match log.split_last() {
        Some((last, rest)) if last.k == RecKind::Torn => rest.to_vec(),
        _ => log.to_vec(),
    }
}

/// `FenceDone(log, f)`: is fence `f` committed in `log`, as recovery judges it?
pub fn fence_done(log: &[Record], f: u32, mutant: Mutant) -> bool {
    has(log, RecKind::FenceCommit, f)
        || (mutant == Mutant::RecoverOpenFenceVisible && !has(log, RecKind::FenceCancel, f))
        || (mutant == Mutant::RecoverCancelAsCommit && has(log, RecKind::FenceCancel, f))
}

/// `Committed(log, r)`: is the unit of `r` complete in `log` (as recovery judges it)? A
/// fenced batch needs both its `BatchCommit` and its fence's `FenceCommit`.
pub fn committed(log: &[Record], r: &Record, mutant: Mutant) -> bool {
    match r.u {
        UnitKind::None => true,
        UnitKind::Batch => {
            (has(log, RecKind::BatchCommit, r.id) || mutant == Mutant::RecoverPartialBatch)
                && (r.f == 0
                    || fence_done(log, r.f, mutant)
                    || mutant == Mutant::RecoverFencedBatchWithoutFenceCommit)
        }
        UnitKind::Fence => fence_done(log, r.id, mutant),
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

/// The disk side of the spec for one data directory, across any number of sessions: the log
/// as a read sees it (`written`, the page cache), the durable prefix (`durable_len`: disk
/// truth, fsynced) and whether a failed fsync left the unsynced pages clean (`pages_clean`:
/// no later fsync writes them). Its methods are the spec's disk steps (`Fsync`, `FsyncFail`,
/// `ProcessCrash`, `PowerLoss`, `Recover`) on these three variables alone, for checkers that
/// follow the real store's disk rather than the whole spec state: a crash checker takes every
/// image of [`DiskState::crash_images`] through [`DiskState::process_crash`] or
/// [`DiskState::power_loss`], and a multi-session simulator keeps one `DiskState` next to its
/// `SimDisk`, feeds it the records the store wrote ([`DiskState::write`]), the fsyncs that
/// succeeded or failed, and each crash, and after each recovery compares the store with
/// [`DiskState::recover`] and [`DiskState::durable_events`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DiskState {
    /// `written`: what a read of the log returns.
    pub written: Vec<Record>,
    /// `durableLen`: the first `durable_len` records are fsynced.
    pub durable_len: usize,
    /// `pagesClean`: a failed fsync marked the unsynced pages clean.
    pub pages_clean: bool,
}

impl DiskState {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The writer wrote `records` (their `seq` must continue the log): readable, not durable.
    pub fn write(&mut self, records: impl IntoIterator<Item = Record>) {
        self.written.extend(records);
    }

    /// `Fsync` succeeded: the written log is durable, except that pages a failed fsync left
    /// clean are not written by it, so the durable prefix stops before them.
    pub fn fsync(&mut self) {
        if !self.pages_clean {
            self.durable_len = self.written.len();
        }
    }

    /// `FsyncFail`: the unsynced pages are marked clean (kept or dropped alike: a later read
    /// shows them or a prefix of them, which the next crash's images cover).
    pub fn fsync_fail(&mut self) {
        self.pages_clean = true;
    }

    /// `CrashImages` (both kinds of crash): `(keep, torn)` = the first `keep` records,
    /// optionally followed by a torn record; `keep >= durable_len`.
    pub fn crash_images(&self) -> Vec<(usize, bool)> {
        crash_images(&self.written, self.durable_len)
    }

    fn image_of(&self, keep: usize, torn: bool) -> Option<Vec<Record>> {
        self.crash_images()
            .contains(&(keep, torn))
            .then(|| image(&self.written, keep, torn))
    }

    /// `ProcessCrash` leaving image `(keep, torn)`: the page cache survives, so the next
    /// session reads the image, but nothing in it becomes durable. `None` if the image is
    /// not one of [`DiskState::crash_images`].
    pub fn process_crash(&self, keep: usize, torn: bool) -> Option<DiskState> {
        Some(DiskState {
            written: self.image_of(keep, torn)?,
            durable_len: self.durable_len,
            pages_clean: self.pages_clean,
        })
    }

    /// `PowerLoss` leaving image `(keep, torn)`: what survived was read back from the disk
    /// itself, so its complete records are durable; the page cache (and its clean pages) is
    /// gone. `None` if the image is not one of [`DiskState::crash_images`].
    pub fn power_loss(&self, keep: usize, torn: bool) -> Option<DiskState> {
        let written = self.image_of(keep, torn)?;
        Some(DiskState {
            durable_len: cut_torn(&written).len(),
            written,
            pages_clean: false,
        })
    }

    /// `Recover`: the torn tail cut, the kept log made durable before anything is reported
    /// (recovery's own fsync, after rewriting pages a failed fsync left clean), and the
    /// visible set rebuilt from the log alone.
    pub fn recover(&self) -> (DiskState, Recovered) {
        let r = recover(&self.written);
        let disk = DiskState {
            written: r.log.clone(),
            durable_len: r.log.len(),
            pages_clean: false,
        };
        (disk, r)
    }

    /// The events in the durable prefix: what any later crash must keep.
    pub fn durable_events(&self) -> BTreeSet<EventNo> {
        log_events(self.written.get(..self.durable_len).unwrap_or(&[]))
    }

    /// Every visible set a recovery may show after a crash of either kind now.
    pub fn allowed_after_crash(&self) -> BTreeSet<BTreeSet<EventNo>> {
        allowed_after_recovery(&self.written, self.durable_len)
    }
}
