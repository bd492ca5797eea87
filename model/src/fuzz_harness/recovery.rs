//! The recovery harness: fuzz-chosen sessions run by the simulator ([`crate::sim`]), then one
//! last workload whose crash image the input picks (every subset of a file's unsynced appends
//! included), maybe one damaged byte, and recovery judged by the oracle.
//!
//! Every session before the last is a [`crate::sim::Sim`] session: its workload ([`Op`], the
//! runner of [`crate::workload`]), its fault (an I/O error, a failed fsync that keeps or drops
//! its pages, a full disk with a short write, a dead disk or a process crash, at a chosen disk
//! operation) and its end (a clean close, a process crash, a power loss whose image the input
//! picks), and the next session's recovery, checked exactly as the simulator checks them. The
//! last session then runs its workload and, with the store still open, takes its crash image:
//! * the image's valid records are a prefix of the written log (INV-PREFIX);
//! * an image that keeps a later write and loses an earlier one (only subsets make these) must
//!   make `open` fail with `CorruptSegment` at the hole and leave the disk untouched
//!   (INV-CORRUPTION-FAILS-CLOSED);
//! * without damage, `open` keeps exactly the image's intact records (a torn last record
//!   whose payload holds frames sealed for its own segment included: big appends embed them,
//!   INV-RECOVERY-IDEMPOTENT); with one damaged byte it either keeps exactly the records
//!   before the damaged frame (a torn tail) or fails with `CorruptSegment` when a valid record
//!   follows the damage, judged on the damaged image by the format's rule (after the damaged
//!   frame if its head check holds, else from the next byte; a damaged segment header in
//!   front of frames is corruption) (INV-CORRUPTION-FAILS-CLOSED);
//! * the recovered store shows exactly the oracle's visible set for the kept records
//!   ([`crate::conformance::expected_visible`]), with every acknowledgement of every session
//!   kept ([`crate::check::check_recovered`]: INV-DURABLE, INV-BATCH-ATOMIC, INV-FENCE-CRASH,
//!   INV-NO-RESURRECT, INV-STABLE-SEQ, INV-CHAIN, INV-HLC-MONOTONE), payloads included;
//! * the durable consumers (`c0` commits with `commit_with`, `c1` with `commit`; the
//!   workload's consumer operations poll, commit and resume them, in any session): every poll
//!   hands out exactly the next visible, durable events of the region in order (checked as
//!   it returns); after every recovery the checkpoints are the kept log's checkpoint records,
//!   none is behind one acknowledged (a committed checkpoint is synced: no crash, process or
//!   power, takes it back), every event handed out is still there with its id, and `c0`'s
//!   outputs are exactly one per source at or before its checkpoint
//!   ([`crate::consumers::check_recovered`]; on a damaged image only the first part);
//! * in about half the runs ([`lifecycle_events`]) the last crash's reopens record lifecycle
//!   events: each appends exactly one `SYSTEM_OPEN_COMPLETED` after the kept records (durable
//!   at once in durable mode, so a power loss keeps it), judged apart from the oracle's log;
//! * the image is read as the page cache a crashed process left, so what the reopened store
//!   reports durable must be on the platter, and a power loss then (an image of the recovered
//!   disk the input picks) keeps exactly what the reopened store showed (INV-DURABLE across
//!   process crash -> reopen -> power loss); so does a clean reopen (INV-RECOVERY-IDEMPOTENT).
//!
//! * when the input brings a recovery checkpoint ([`CheckpointInput`]: raw bytes, a forged
//!   one, the image's real one intact, flipped or cut, a stale one, another store's), copies
//!   of the crash image (damaged as above) open with it exactly as without one: the same
//!   events, sequences, positions and hashes, or the same error ([`super::checkpoint`];
//!   INV-STABLE-SEQ, INV-CORRUPTION-FAILS-CLOSED).
//!
//! Determinism: the simulator's (a sequential client, a manual clock, counter ids, salts
//! known in advance), so the disk operations depend on the input alone.

use super::checkpoint::{self, CheckpointInput};
use crate::check::{check_recovered, visible};
use crate::conformance::WrittenLog;
use crate::consumers::ConsumerGhost;
use crate::record::{
    expected_checkpoints, fingerprint, scan_log, valid_frame_from, LogRecord, ScannedLog,
};
use crate::sim::{End, PlannedFault, SessionPlan, Sim};
use crate::workload::{barrier, config, Acks, Mode, Mutant, Op, DIR};
use arbitrary::Arbitrary;
use batpak::__testing::codec;
use batpak::__testing::env::{CrashImage, CrashOptions, Fault, FaultKind, SimDisk};
use batpak::__testing::log::segment::decode_header;
use batpak::__testing::log::SEGMENT_HEADER_BYTES;
use batpak::event::EventKind;
use batpak::store::{IndexEntry, Store, StoreError, LIFECYCLE_ENTITY, LIFECYCLE_SCOPE};
use std::collections::BTreeMap;
use std::path::Path;

/// Most operations a session runs.
pub const OPS_MAX: usize = 12;
/// Most sessions before the last one.
pub const HISTORY_MAX: usize = 4;
/// Segment size of the harness's stores (small: rolls happen).
const SEGMENT_BYTES: u64 = 512;

/// A fault in a session.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultInput {
    /// EIO at the `op`-th disk operation after the open (or of the open itself, if
    /// `during_open`: recovery's operations); at an fsync the pages it covered are kept,
    /// marked clean.
    Eio {
        /// Disk operation.
        op: u8,
        /// Counted from the open's first operation instead of from after it.
        during_open: bool,
    },
    /// The first fsync from client operation `before_op` on fails (EIO), dropping the pages
    /// it covered or keeping them clean.
    FailedFsync {
        /// Client operation.
        before_op: u8,
        /// The pages are dropped (reads show the platter) instead of kept.
        drop_pages: bool,
    },
    /// The first write from client operation `before_op` on finds the disk full (ENOSPC),
    /// after writing `short` of its bytes (0: none).
    DiskFull {
        /// Client operation.
        before_op: u8,
        /// Bytes written before the failure.
        short: u8,
    },
    /// The disk dies at that disk operation (the session then ends with a power loss).
    DiskDies {
        /// Disk operation.
        op: u8,
        /// Counted from the open's first operation.
        during_open: bool,
    },
    /// The process dies at that disk operation.
    ProcessCrash {
        /// Disk operation.
        op: u8,
        /// Counted from the open's first operation.
        during_open: bool,
    },
}

fn at(op: u8, during_open: bool, fault: Fault) -> PlannedFault {
    let offset = u64::from(op);
    if during_open {
        PlannedFault::AtOp { offset, fault }
    } else {
        PlannedFault::AfterOpen { offset, fault }
    }
}

impl FaultInput {
    fn planned(self) -> PlannedFault {
        let transient = Fault::new(FaultKind::Transient);
        match self {
            FaultInput::Eio { op, during_open } => at(op, during_open, transient),
            FaultInput::FailedFsync {
                before_op,
                drop_pages,
            } => PlannedFault::Next {
                before_op: usize::from(before_op) % OPS_MAX,
                name: "sync_data",
                fault: if drop_pages {
                    transient.drop_pages()
                } else {
                    transient
                },
            },
            FaultInput::DiskFull { before_op, short } => PlannedFault::Next {
                before_op: usize::from(before_op) % OPS_MAX,
                name: "append",
                fault: if short == 0 {
                    transient.no_space()
                } else {
                    transient.no_space().short_write(usize::from(short))
                },
            },
            FaultInput::DiskDies { op, during_open } => {
                at(op, during_open, Fault::new(FaultKind::Persistent))
            }
            FaultInput::ProcessCrash { op, during_open } => {
                at(op, during_open, Fault::new(FaultKind::ProcessCrash))
            }
        }
    }
}

/// How an earlier session ends.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum EndInput {
    /// `close()`.
    Close,
    /// The process dies; the page cache survives.
    ProcessCrash,
    /// The power is lost; chooser bytes for the image.
    PowerLoss(Vec<u8>),
}

/// A session before the last one.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct SessionInput {
    /// Deferred durability (`sync_every_n_events` = 1000) instead of durable appends.
    pub deferred: bool,
    /// The workload (at most [`OPS_MAX`] are run).
    pub ops: Vec<Op>,
    /// A fault.
    pub fault: Option<FaultInput>,
    /// How it ends.
    pub end: EndInput,
}

/// One byte of the crash image changed (xor with a non-zero mask).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageCorruption {
    /// Segment file selector (modulo the number of segment files).
    pub file: u8,
    /// Byte offset selector (modulo the file length).
    pub offset: u16,
    /// Xor mask (0 is taken as 1).
    pub xor: u8,
}

/// Input of [`recovery`].
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct RecoveryInput {
    /// Earlier sessions (at most [`HISTORY_MAX`] are run), each ended and recovered.
    pub history: Vec<SessionInput>,
    /// The last session: deferred durability instead of durable appends.
    pub deferred: bool,
    /// The last session's workload (at most [`OPS_MAX`] are run).
    pub ops: Vec<Op>,
    /// The last session's fault.
    pub fault: Option<FaultInput>,
    /// Chooser bytes for the crash image, subsets included (exhausted: 0, the durable outcome).
    pub crash: Vec<u8>,
    /// Optional damage to the crash image.
    pub corruption: Option<ImageCorruption>,
    /// Chooser bytes for the crash image taken of the recovered disk.
    pub recrash: Vec<u8>,
    /// A recovery checkpoint to open the last crash image with, next to the open without one
    /// (see [`CheckpointInput`]). The last field, decoded from what follows `recrash`: inputs of
    /// the format before it (which end there) decode as before, with `None`.
    pub checkpoint: Option<CheckpointInput>,
}

fn plan(deferred: bool, ops: &[Op], fault: Option<FaultInput>, end: End) -> SessionPlan {
    SessionPlan {
        deferred,
        sync_every: 1000,
        ops: ops.iter().take(OPS_MAX).copied().collect(),
        clock_steps: Vec::new(),
        faults: fault.map(FaultInput::planned).into_iter().collect(),
        end,
        clock_start_us: 1_000,
    }
}

fn chooser(bytes: &[u8]) -> impl FnMut(usize) -> usize + '_ {
    let mut it = bytes.iter();
    move |_n| it.next().map_or(0, |&b| usize::from(b))
}

/// `BATPAK_FUZZ_TRACE=1` prints the journal of every run (for looking at what a corpus
/// exercises).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("BATPAK_FUZZ_TRACE").is_some())
}

/// How a [`recovery`] run ended (all of them passed every check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The crash image (maybe damaged) recovered; reopens were idempotent.
    Recovered,
    /// The crash image lost a write before a kept one; `open` failed closed at the hole.
    HoleFailedClosed,
    /// The injected damage had valid records after it; `open` failed closed.
    DamageFailedClosed,
}

/// The recovery harness (see the module docs).
pub fn recovery(input: RecoveryInput) {
    recovery_with(input, Mutant::None);
}

/// Crash images with every subset of a file's unsynced appends (at most 8 of them).
const CRASH_OPTIONS: CrashOptions = CrashOptions {
    subsets: true,
    max_subset_ops: 8,
};

/// [`recovery`] with a seeded bug in every session's store: shows which mutants the harness
/// catches. Returns how the run ended; panics, naming the invariant, on a violation.
pub fn recovery_with(input: RecoveryInput, mutant: Mutant) -> Outcome {
    let mut sim = Sim::new(mutant, SEGMENT_BYTES);
    let fail =
        |sim: &Sim, v: crate::check::Violation| -> ! { panic!("{v}\n{}", sim.journal.join("\n")) };
    for s in input.history.iter().take(HISTORY_MAX) {
        let end = match &s.end {
            EndInput::Close => End::Close,
            EndInput::ProcessCrash => End::ProcessCrash,
            EndInput::PowerLoss(b) => End::PowerLoss(b.clone()),
        };
        if let Err(v) = sim.run_session(&plan(s.deferred, &s.ops, s.fault, end)) {
            fail(&sim, v);
        }
    }
    let last = plan(input.deferred, &input.ops, input.fault, End::ProcessCrash);
    let session = sim.begin_session(&last);
    let opened = match sim.open_and_run(&last) {
        Ok(o) => o,
        Err(v) => fail(&sim, v.context(format!("session {session}"))),
    };
    let Some(store) = opened.store.as_ref() else {
        // The last open failed (an injected fault): nothing to crash.
        return Outcome::Recovered;
    };
    // The written log and the crash image are two snapshots of the disk: the writer must be
    // quiet between them.
    barrier(store);
    let dir = Path::new(DIR);
    let disk = sim.disk().clone();
    let written = WrittenLog::read(&disk, dir);
    if let Err(v) = sim
        .check_platter("before the last crash", sim.acks(), &written)
        .and_then(|()| sim.check_written(&written))
    {
        fail(&sim, v);
    }
    // Subset images need the byte-level view to tell a hole from a torn tail; a log that
    // does not read clean (a fault cut a write) gets prefix images only.
    let opts = if written.damage.is_none() {
        CRASH_OPTIONS
    } else {
        CrashOptions::default()
    };
    let image = disk.crash_with_options(&opts, &mut chooser(&input.crash));
    drop(opened);
    if trace() {
        eprintln!("{}", sim.journal.join("\n"));
    }
    let acks = sim.acks().clone();
    if let Some(ck) = &input.checkpoint {
        let mode = Mode {
            deferred: input.deferred,
            mutant,
        };
        let damage = |d: &SimDisk| {
            if let Some(c) = input.corruption {
                let _ = apply_corruption(d, c);
            }
        };
        checkpoint::check(ck, &image, mode, lifecycle_events(&input), damage);
    }
    last_crash(&input, mutant, &written, &acks, &image)
}

/// The last crash: the image, maybe damaged, recovered and judged (see the module docs).
fn last_crash(
    input: &RecoveryInput,
    mutant: Mutant,
    written: &WrittenLog,
    acks: &Acks,
    image: &CrashImage,
) -> Outcome {
    let dir = Path::new(DIR);
    let mode = Mode {
        deferred: input.deferred,
        mutant,
    };
    let img = image.disk();
    let pre = scan_log(&img, dir);
    assert!(
        written.records.get(..pre.records.len()) == Some(&pre.records[..]),
        "INV-PREFIX: the crash image's {} valid records are not a prefix of the {} written",
        pre.records.len(),
        written.records.len()
    );
    let classified = written.classify(&img, dir);
    if let Some((file, offset)) = &classified.hole {
        check_hole_fails_closed(&img, mode, file, *offset, image);
        return Outcome::HoleFailedClosed;
    }
    let damage = input.corruption.and_then(|c| corrupt(&img, &pre, c));
    let lc = lifecycle_events(input);
    let open = |disk: &SimDisk, session| {
        Store::open(config(disk, mode, session).with_lifecycle_events(lc))
    };
    let store = match (open(&img, 100), damage) {
        (Ok(s), _) => s,
        (Err(StoreError::CorruptSegment { .. }), Some((_, true))) => {
            return Outcome::DamageFailedClosed
        }
        (Err(e), damage) => panic!(
            "INV-RECOVERY-IDEMPOTENT: recovery failed: {e}\nimage: {}\ndamage (first damaged record, records follow): {damage:?} of {} records",
            image.describe(),
            pre.records.len()
        ),
    };
    let mut post = scan_log(&img, dir);
    assert!(
        post.damage.is_none(),
        "INV-RECOVERY-IDEMPOTENT: the log does not scan clean after recovery: {:?}",
        post.damage
    );
    let kept = match damage {
        None => pre.records.len(),
        Some((k, follows)) => {
            assert!(
                !follows,
                "INV-CORRUPTION-FAILS-CLOSED: damage in record {k} with valid records after it, yet open succeeded"
            );
            k
        }
    };
    // With lifecycle events the open appended its `SYSTEM_OPEN_COMPLETED` after the kept
    // records; the checks below judge the kept records, and the lifecycle events apart.
    let opened_at = post.records.get(kept..).unwrap_or(&[]);
    assert!(
        opened_at.len() == usize::from(lc) && opened_at.iter().all(is_open_event),
        "lifecycle events {}: the reopen appended {opened_at:?} after the {kept} kept records",
        if lc { "on" } else { "off" }
    );
    post.records.truncate(kept);
    assert_eq!(
        post.records.as_slice(),
        pre.records.get(..kept).unwrap_or(&[]),
        "INV-PREFIX: recovery kept other records than the image's valid prefix (image: {})",
        image.describe()
    );
    // Damage is not a crash: what it destroys may have been durable, so the promises are
    // checked only on undamaged images.
    let promises = if damage.is_none() {
        acks.clone()
    } else {
        Acks::default()
    };
    let (v1, lifecycle) = split_lifecycle(visible(&store));
    assert!(
        lifecycle.len() == usize::from(lc)
            && lifecycle.iter().all(|e| e.global_sequence == kept as u64
                && e.kind == EventKind::SYSTEM_OPEN_COMPLETED),
        "the reopen shows lifecycle events {lifecycle:?} (lifecycle events on: {lc}, {kept} records kept)"
    );
    let abs = written.abstract_log();
    let report = store.recovery_report();
    if let Err(v) = check_recovered(
        &store,
        &v1,
        report.records,
        &promises,
        &written.records,
        &abs,
        true,
    ) {
        panic!("{v} (image: {})", image.describe());
    }
    // The durable consumers: the recovered checkpoints are the kept log's checkpoint records;
    // on an undamaged image none is behind one acknowledged (or one never committed), every
    // event handed out is still there with its id, and `c0`'s outputs match its checkpoint.
    let mut ghosts = acks.consumers.clone();
    check_consumers(&store, &mut ghosts, &post.records, damage.is_none(), image);
    for e in &v1 {
        let raw = store.get_raw(e.event_id).unwrap_or_else(|err| {
            panic!("visible event {:032x} cannot be read: {err}", e.event_id)
        });
        let at = usize::try_from(e.global_sequence).ok();
        let w = at
            .and_then(|s| written.records.get(s))
            .and_then(|r| r.event());
        assert!(
            w.is_some_and(|w| w.payload == raw.event.payload),
            "INV-DURABLE: event {:032x} at seq {} reads another payload than was written",
            e.event_id,
            e.global_sequence
        );
    }
    // The reopened store reports everything it recovered durable: it must be on the
    // platter, and a power loss now (while it is open) must keep all of it. Then recover
    // again, and reopen cleanly (INV-RECOVERY-IDEMPOTENT).
    // (In deferred mode its own `SYSTEM_OPEN_COMPLETED` need not be durable yet.)
    let f = store.frontier();
    assert!(
        f.durable == f.written || (lc && input.deferred && f.durable == kept as u64),
        "the reopened store reports what it recovered durable: {f:?}, {kept} records kept"
    );
    let platter = img.crash_with(&mut |_| 0).power_loss_disk();
    let on_platter = written.classify(&platter, dir).intact as u64;
    assert!(
        on_platter >= f.durable.min(kept as u64),
        "INV-DURABLE: the reopened store reports {} records durable, {on_platter} are on the platter",
        f.durable
    );
    let image2 = img.crash_with(&mut chooser(&input.recrash));
    drop(store);
    let img2 = image2.power_loss_disk();
    let store2 = open(&img2, 101).unwrap_or_else(|e| {
        panic!(
            "INV-DURABLE: after a power loss following the reopen, the store does not open: {e} \
             (power loss: {})",
            image2.describe()
        )
    });
    let mut after = scan_log(&img2, dir).records;
    // Lifecycle events after the kept records: the first reopen's (lost to the power loss
    // only if it was not durable: deferred mode), then the second's.
    let opened = after.get(kept..).unwrap_or(&[]);
    let want = if !lc {
        0..=0
    } else if input.deferred {
        1..=2
    } else {
        2..=2
    };
    assert!(
        want.contains(&opened.len()) && opened.iter().all(is_open_event),
        "INV-DURABLE: after a power loss following the reopen, the log ends {opened:?} after \
         the {kept} records kept (lifecycle events on: {lc}; power loss: {})",
        image2.describe()
    );
    after.truncate(kept);
    assert_eq!(
        after,
        post.records,
        "INV-DURABLE: a power loss after the reopen changed the log the reopened store reported \
         durable (power loss: {})",
        image2.describe()
    );
    assert_eq!(
        split_lifecycle(visible(&store2)).0,
        v1,
        "INV-RECOVERY-IDEMPOTENT: second recovery"
    );
    check_consumers(
        &store2,
        &mut ghosts,
        &post.records,
        damage.is_none(),
        &image2,
    );
    drop(store2);
    let store3 =
        open(&img2, 102).unwrap_or_else(|e| panic!("INV-RECOVERY-IDEMPOTENT: reopen failed: {e}"));
    assert_eq!(
        split_lifecycle(visible(&store3)).0,
        v1,
        "INV-RECOVERY-IDEMPOTENT: clean reopen"
    );
    Outcome::Recovered
}

/// The consumers' checks of a recovered store whose log is `kept`: with `promises`, all of
/// [`crate::consumers::check_recovered`] (the ghosts then follow the recovery); without (a
/// damaged image, whose lost records may have been durable), only that the checkpoints are
/// what the kept log's checkpoint records say.
fn check_consumers(
    store: &Store,
    ghosts: &mut [ConsumerGhost; 2],
    kept: &[LogRecord],
    promises: bool,
    image: &CrashImage,
) {
    if promises {
        if let Err(v) = crate::consumers::check_recovered(store, ghosts, kept) {
            panic!("{v} (image: {})", image.describe());
        }
        return;
    }
    let want = expected_checkpoints(kept);
    let got: BTreeMap<String, Option<u64>> = store
        .consumers()
        .into_iter()
        .map(|c| (c.id.as_str().to_owned(), c.committed))
        .collect();
    assert_eq!(
        got,
        want,
        "INV-CHECKPOINT-DURABLE: recovered checkpoints differ from the kept log's checkpoint \
         records (image: {})",
        image.describe()
    );
}

/// INV-CORRUPTION-FAILS-CLOSED for an image that lost a write before a kept one: `open`
/// fails with `CorruptSegment` at the hole, twice, and changes nothing on disk.
fn check_hole_fails_closed(
    img: &SimDisk,
    mode: Mode,
    file: &Path,
    offset: u64,
    image: &CrashImage,
) {
    let before = fingerprint(img);
    for attempt in 1..=2 {
        match Store::open(config(img, mode, 100 + attempt)) {
            Err(StoreError::CorruptSegment { detail, .. })
                if detail.file() == Some(file) && detail.offset() == Some(offset) => {}
            Err(e) => panic!(
                "INV-CORRUPTION-FAILS-CLOSED: a hole at {}:{offset} before surviving records; \
                 open {attempt} failed with {e} (image: {})",
                file.display(),
                image.describe()
            ),
            Ok(s) => panic!(
                "INV-CORRUPTION-FAILS-CLOSED: a hole at {}:{offset} before surviving records, \
                 yet open {attempt} succeeded with {} records (image: {})",
                file.display(),
                s.recovery_report().records,
                image.describe()
            ),
        }
    }
    assert!(
        fingerprint(img) == before,
        "INV-CORRUPTION-FAILS-CLOSED: a failed open changed the disk (image: {})",
        image.describe()
    );
}

/// Applies the corruption to `disk`; returns the file and the offset it changed, and the
/// file's length.
pub(super) fn apply_corruption(
    disk: &SimDisk,
    c: ImageCorruption,
) -> Option<(std::path::PathBuf, usize, usize)> {
    let segs: Vec<_> = disk
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    let path = segs.get(usize::from(c.file) % segs.len().max(1))?;
    let bytes = disk.read_file(path)?;
    if bytes.is_empty() {
        return None;
    }
    let offset = usize::from(c.offset) % bytes.len();
    let old = *bytes.get(offset)?;
    disk.corrupt(path, offset as u64, old ^ c.xor.max(1)).ok()?;
    Some((path.clone(), offset, bytes.len()))
}

/// Applies the corruption to the image; returns the index of the first record it damages
/// (`records.len()` if none) and whether valid records must follow the damage.
fn corrupt(disk: &SimDisk, pre: &ScannedLog, c: ImageCorruption) -> Option<(usize, bool)> {
    let (path, offset, file_len) = apply_corruption(disk, c)?;
    let seg_id =
        batpak::__testing::log::segment::parse_segment_file_name(path.file_name()?.to_str()?)?;
    let off = offset as u64;
    let n = pre.records.len();
    if off < SEGMENT_HEADER_BYTES as u64 {
        // A damaged header: every record of this segment is lost. Frames are written only
        // after a header is durable, so a damaged header with any bytes after it is
        // corruption (spec/FORMAT.md).
        let k = pre
            .positions
            .iter()
            .position(|p| p.segment_id >= seg_id)
            .unwrap_or(n);
        return Some((k, file_len > SEGMENT_HEADER_BYTES));
    }
    let k = pre
        .positions
        .iter()
        .position(|p| p.segment_id == seg_id && off < p.offset + p.len)
        .filter(|&i| pre.positions.get(i).is_some_and(|p| off >= p.offset))
        .unwrap_or(n);
    Some((k, k + 1 < n || valid_record_after_damage(disk)))
}

/// The recovery rule on a damaged image, from the format alone: after the first damage, is
/// there a frame (checking out under its segment's salt, with a sequence recovery could still
/// accept) where recovery looks? It looks after the damaged frame when that frame's length
/// passes its head check, else from the next byte, then in every later segment.
fn valid_record_after_damage(disk: &SimDisk) -> bool {
    let dir = Path::new(DIR);
    let scanned = scan_log(disk, dir);
    let Some((seg, off, _)) = scanned.damage else {
        return false;
    };
    let min_seq = scanned.records.len() as u64;
    let name = |id| dir.join(batpak::__testing::log::segment::segment_file_name(id));
    let bytes = disk.read_file(&name(seg)).unwrap_or_default();
    let Ok(h) = decode_header(&bytes) else {
        return bytes.len() > SEGMENT_HEADER_BYTES;
    };
    let at = usize::try_from(off).unwrap_or(usize::MAX);
    let resume = match codec::peek_len(bytes.get(at..).unwrap_or(&[]), h.frame_max, h.salt) {
        Ok(len) => at + codec::FRAME_HEADER_BYTES + len as usize,
        Err(_) => at + 1,
    };
    if valid_frame_from(&bytes, resume, min_seq).is_some() {
        return true;
    }
    disk.files()
        .into_iter()
        .filter(|p| p.parent() == Some(dir))
        .filter_map(|p| {
            let id =
                batpak::__testing::log::segment::parse_segment_file_name(p.file_name()?.to_str()?)?;
            (id > seg).then_some(p)
        })
        .any(|p| {
            let b = disk.read_file(&p).unwrap_or_default();
            valid_frame_from(&b, 0, min_seq).is_some()
                || (decode_header(&b).is_err() && b.len() > SEGMENT_HEADER_BYTES)
        })
}

/// Whether the last crash's reopens record lifecycle events (`SYSTEM_OPEN_COMPLETED` at each
/// open): in every run whose `recrash` chooser has an odd length (about half of them, seeds
/// included). The simulator's earlier sessions run without them.
pub fn lifecycle_events(input: &RecoveryInput) -> bool {
    input.recrash.len() % 2 == 1
}

/// Whether `r` is a `SYSTEM_OPEN_COMPLETED` event at the lifecycle coordinate.
fn is_open_event(r: &LogRecord) -> bool {
    r.event().is_some_and(|e| {
        e.kind == EventKind::SYSTEM_OPEN_COMPLETED.as_raw()
            && e.entity == LIFECYCLE_ENTITY
            && e.scope == LIFECYCLE_SCOPE
    })
}

/// Visible events apart from the lifecycle events (scope `batpak:lifecycle`), and those.
fn split_lifecycle(vis: Vec<IndexEntry>) -> (Vec<IndexEntry>, Vec<IndexEntry>) {
    vis.into_iter()
        .partition(|e| e.coord.scope() != LIFECYCLE_SCOPE)
}
