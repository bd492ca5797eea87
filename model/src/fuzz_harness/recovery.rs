//! The recovery harness: an arbitrary bounded workload on a `SimDisk`, a crash image chosen by
//! the input, maybe one damaged byte, then `Store::open` compared with the reference.
//!
//! Determinism: the clock, the ids and the disk are seams; the writer thread handles one
//! command per group (`group_commit_max_batch = 1`) and the flush timer never fires, so the
//! sequence of disk operations depends on the input alone. Commands whose replies come later
//! (fenced submits, a dropped fence's cancel) are waited for through `frontier().written`.
//!
//! Checks (named after the invariants):
//! * the written log scans clean and every receipt names the record at its sequence
//!   (INV-STABLE-SEQ);
//! * the crash image's valid records are a prefix of the written log (INV-PREFIX);
//! * crash images include every subset of a file's unsynced appends (at most 8 of them), so
//!   an image may keep a later write and lose an earlier one: such a hole before surviving
//!   records must make `open` fail with `CorruptSegment` at the hole and leave the disk
//!   untouched (INV-CORRUPTION-FAILS-CLOSED);
//! * without damage, `open` succeeds and keeps exactly that prefix (a torn last record whose
//!   payload holds frames sealed for its own segment included: big appends embed them,
//!   INV-RECOVERY-IDEMPOTENT); with one damaged byte it either keeps exactly the records
//!   before the damaged frame (a torn tail) or fails with `CorruptSegment` when a valid record
//!   follows the damage, judged on the damaged image by the format's rule (after the damaged
//!   frame if its head check holds, else from the next byte; a damaged segment header in
//!   front of frames is corruption) (INV-CORRUPTION-FAILS-CLOSED);
//! * the visible events equal [`expected_visible`] of the kept log, payloads included;
//! * acknowledged-durable events are visible, with their sequence (INV-DURABLE);
//! * acknowledged batches are all or nothing (INV-BATCH-ATOMIC); cancelled, dropped and open
//!   fences are hidden (INV-FENCE-CRASH, INV-NO-RESURRECT);
//! * the crash image is read as the page cache a crashed process left (what survived unsynced
//!   is still unsynced), so the recovering store must sync what it found before reporting it
//!   durable: after recovery the log on disk scans clean, and a power loss then (any crash
//!   image of the recovered disk, chosen by the input) keeps exactly what the reopened store
//!   showed, all of it reported durable (INV-DURABLE across process crash -> reopen -> power
//!   loss, INV-RECOVERY-IDEMPOTENT); so does a clean reopen.

use crate::conformance::WrittenLog;
use crate::reference::{
    expected_checkpoints, expected_visible, scan_log, valid_frame_from, LogBody, LogRecord,
    ScannedLog, VisibleEvent,
};
use crate::Mutant;
use arbitrary::Arbitrary;
use batpak::__testing::codec::{self, FRAME_BYTES_MAX_DEFAULT};
use batpak::__testing::env::{
    CounterIds, CrashImage, CrashOptions, Entropy, FaultKind, ManualClock, SimDisk,
};
use batpak::__testing::log::segment::decode_header;
use batpak::__testing::log::SEGMENT_HEADER_BYTES;
use batpak::coordinate::Coordinate;
use batpak::event::EventKind;
use batpak::region::Region;
use batpak::store::{
    AppendOptions, AppendReceipt, AppendTicket, BatchAppendItem, CausationRef, CheckpointId, Store,
    StoreConfig, StoreError, VisibilityFence,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most operations a workload runs.
pub const OPS_MAX: usize = 12;
const DIR: &str = "/db";
const SCOPE: &str = "fz";
const ENTITIES: u8 = 3;

/// One workload operation.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// `append` on entity `entity % 3` with a small payload.
    Append {
        /// Entity selector.
        entity: u8,
        /// Payload byte.
        payload: u8,
    },
    /// `append` of a 200 + 2 * `size` byte payload (forces segment rolls at 512-byte
    /// segments) whose bytes embed frames: valid frames sealed with the salt of the segment
    /// the event lands in (and of the one after, in case the append rolls), and a frame of the
    /// old unsalted format, each carrying a sequence recovery would accept. A crash that tears
    /// this append must still be a torn tail (recovery never looks inside a torn frame).
    BigAppend {
        /// Entity selector.
        entity: u8,
        /// Size selector.
        size: u8,
    },
    /// `append_batch` of `1 + n % 3` events on consecutive entities.
    Batch {
        /// Item count selector.
        n: u8,
        /// First entity.
        entity: u8,
        /// Payload byte.
        payload: u8,
    },
    /// `begin_visibility_fence` (refused while one is open).
    FenceBegin,
    /// `fence.submit` (skipped without an open fence).
    FenceAppend {
        /// Entity selector.
        entity: u8,
        /// Payload byte.
        payload: u8,
    },
    /// `fence.submit_batch` of `1 + n % 3` events.
    FenceBatch {
        /// Item count selector.
        n: u8,
        /// First entity.
        entity: u8,
        /// Payload byte.
        payload: u8,
    },
    /// `fence.commit()`.
    FenceCommit,
    /// `fence.cancel()`.
    FenceCancel,
    /// Drop the fence (drop-cancel).
    FenceDrop,
    /// `sync()`.
    Sync,
    /// A durable consumer of the harness scope polls up to `1 + n % 4` events without waiting
    /// and commits them with `outputs % 3` output events in the same atomic unit (plain
    /// `commit` without outputs).
    Consume {
        /// Poll size selector.
        n: u8,
        /// Output count selector.
        outputs: u8,
    },
}

/// An injected disk fault, `op_after_open` operations after the store opened.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Fault {
    /// Operation index relative to the disk's count after `open`.
    pub op_after_open: u8,
    /// Persistent (the disk dies) or transient (one operation fails).
    pub persistent: bool,
}

/// One byte of the crash image changed (xor with a non-zero mask).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ImageCorruption {
    /// Segment file selector (modulo the number of segment files).
    pub file: u8,
    /// Byte offset selector (modulo the file length).
    pub offset: u16,
    /// Xor mask (0 is taken as 1).
    pub xor: u8,
}

/// Input of [`recovery`].
#[derive(Arbitrary, Debug, Clone)]
pub struct RecoveryInput {
    /// Deferred durability (`sync_every_n_events` = 1000) instead of durable appends.
    pub deferred: bool,
    /// The workload (at most `OPS_MAX` are run).
    pub ops: Vec<Op>,
    /// An optional injected fault.
    pub fault: Option<Fault>,
    /// Chooser bytes for the crash image, subsets included (exhausted: 0, the durable outcome).
    pub crash: Vec<u8>,
    /// Optional damage to the crash image.
    pub corruption: Option<ImageCorruption>,
    /// Chooser bytes for the crash image taken of the recovered disk.
    pub recrash: Vec<u8>,
}

/// The harness's salts: splitmix64 of a counter, so the salt of the next segment is known
/// before the store draws it (a payload can carry a frame forged for the segment it lands in).
#[derive(Debug, Default)]
pub struct HarnessSalts {
    drawn: AtomicU64,
}

impl HarnessSalts {
    /// The `i`-th salt drawn.
    pub fn salt(i: u64) -> u32 {
        let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }

    /// The salt the next segment will get.
    pub fn peek(&self) -> u32 {
        Self::salt(self.drawn.load(Ordering::SeqCst))
    }
}

impl Entropy for HarnessSalts {
    fn next_u32(&self) -> u32 {
        Self::salt(self.drawn.fetch_add(1, Ordering::SeqCst))
    }
}

fn config(disk: &SimDisk, deferred: bool) -> StoreConfig {
    config_with(disk, deferred, &Arc::default())
}

fn config_with(disk: &SimDisk, deferred: bool, salts: &Arc<HarnessSalts>) -> StoreConfig {
    StoreConfig::new(DIR)
        .with_disk(Arc::new(disk.clone()))
        .with_entropy_source(Arc::clone(salts) as Arc<dyn Entropy>)
        .with_clock_source(Arc::new(ManualClock::new(1_700_000_000_000_000)))
        .with_id_source(Arc::new(CounterIds::new(1)))
        .with_segment_max_bytes(512)
        .with_group_commit_max_batch(1)
        .with_flush_interval(Duration::from_secs(3600))
        .with_sync_every_n_events(if deferred { 1000 } else { 1 })
}

fn coord(entity: u8) -> Coordinate {
    Coordinate::new(format!("fz:{}", entity % ENTITIES), SCOPE)
        .unwrap_or_else(|e| panic!("harness coordinate: {e}"))
}

fn kind() -> EventKind {
    EventKind::custom(0xF, 1)
}

fn chooser(bytes: &[u8]) -> impl FnMut(usize) -> usize + '_ {
    let mut it = bytes.iter();
    move |_n| it.next().map_or(0, |&b| usize::from(b))
}

/// Outputs of a consumer commit at `at`, on an entity that names the position, so a check
/// after recovery can pair outputs with the checkpoint they were committed with.
fn output_items(k: u8, at: Option<u64>, payload: u8) -> Vec<BatchAppendItem> {
    let entity = match at {
        Some(p) => format!("out-{p}"),
        None => "out-start".to_owned(),
    };
    (0..k)
        .filter_map(|i| {
            BatchAppendItem::new(
                Coordinate::new(&entity, SCOPE).ok()?,
                kind(),
                &vec![payload, i],
                AppendOptions::default(),
                CausationRef::None,
            )
            .ok()
        })
        .collect()
}

/// INV-EXACTLY-ONCE over the recovered store: outputs are visible only if the consumer's
/// checkpoint covers the position they were committed at, and a checkpoint that only
/// `commit_with` calls (with outputs) can have set comes with their outputs.
fn check_exactly_once(h: &History, visible: &[VisibleEvent], committed: Option<Option<u64>>) {
    let parse = |e: &str| -> Option<Option<u64>> {
        let rest = e.strip_prefix("out-")?;
        if rest == "start" {
            return Some(None);
        }
        rest.parse().ok().map(Some)
    };
    let outputs: BTreeSet<Option<u64>> = visible.iter().filter_map(|v| parse(&v.entity)).collect();
    for at in &outputs {
        assert!(
            committed.is_some_and(|c| *at <= c),
            "INV-EXACTLY-ONCE: outputs committed at {at:?} are visible but the checkpoint is {committed:?}"
        );
    }
    if let Some(c) = committed {
        let calls: Vec<bool> = h
            .consumes
            .iter()
            .filter(|(at, _)| *at == c)
            .map(|(_, with)| *with)
            .collect();
        if !calls.is_empty() && calls.iter().all(|w| *w) {
            assert!(
                outputs.contains(&c),
                "INV-EXACTLY-ONCE: the checkpoint moved to {c:?} but the outputs committed with it are missing"
            );
        }
    }
}

fn batch_items(n: u8, entity: u8, payload: u8) -> Vec<BatchAppendItem> {
    (0..1 + n % 3)
        .filter_map(|i| {
            BatchAppendItem::new(
                coord(entity.wrapping_add(i)),
                kind(),
                &vec![payload, i],
                AppendOptions::default(),
                CausationRef::None,
            )
            .ok()
        })
        .collect()
}

/// What the workload was told.
#[derive(Debug, Default)]
struct History {
    /// Every acknowledged event (sequence, id).
    acked: Vec<(u64, u128)>,
    /// Acknowledged events that are durable by the API's promise.
    durable: BTreeSet<(u64, u128)>,
    /// Acknowledged batches.
    batches: Vec<Vec<(u64, u128)>>,
    /// Fences cancelled, dropped or open at the crash: never visible.
    hidden_fences: BTreeSet<u64>,
    /// A write failed: the writer may have latched, so waits are skipped.
    failed: bool,
    /// Every consumer commit attempted: the position it checkpoints (`None`: the start) and
    /// whether it carried outputs (written on entity `out-<position>`).
    consumes: Vec<(Option<u64>, bool)>,
}

impl History {
    fn ack(&mut self, r: &AppendReceipt) {
        self.acked.push((r.sequence, r.event_id));
        if r.durable {
            self.durable.insert((r.sequence, r.event_id));
        }
    }

    fn sync_ok(&mut self) {
        self.durable.extend(self.acked.iter().copied());
    }
}

/// An open fence and the tickets of its submits.
struct OpenFence<'a> {
    fence: VisibilityFence<'a>,
    tickets: Vec<AppendTicket>,
    batch_tickets: Vec<batpak::store::BatchAppendTicket>,
}

fn note(r: Result<(), StoreError>, h: &mut History) {
    if r.is_err() {
        h.failed = true;
    }
}

/// Waits until the writer has written past `before` (a command whose reply comes later), or
/// `answered()` says the command already failed.
fn wait_written(store: &Store, before: u64, h: &History, answered: impl Fn() -> bool) {
    if h.failed {
        return;
    }
    let start = Instant::now();
    while store.frontier().written <= before
        && !answered()
        && start.elapsed() < Duration::from_secs(1)
    {
        std::thread::yield_now();
    }
}

/// A payload serialised as one MessagePack byte string: its bytes land in the frame as they
/// are.
struct RawBytes(Vec<u8>);

impl serde::Serialize for RawBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// The salt in the header of the last segment file of the store's directory.
fn active_salt(disk: &SimDisk) -> Option<u32> {
    let last = disk
        .files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()?;
    decode_header(&disk.read_file(&last)?).ok().map(|h| h.salt)
}

/// Frames a payload can carry: `FenceBegin { fence: seq }` at sequence `seq`, sealed with
/// each of `salts`, then the same record in the old unsalted format (length, CRC32 of length
/// and body, body), back to back.
pub fn embeddable_frames(seq: u64, salts: &[u32]) -> Vec<u8> {
    let record = batpak::__testing::log::Record {
        seq,
        body: batpak::__testing::log::RecordBody::FenceBegin { fence: seq },
    };
    let mut out = Vec::new();
    for &salt in salts {
        let _ = codec::encode_into(&record, FRAME_BYTES_MAX_DEFAULT, salt, &mut out);
    }
    if let Ok(f) = codec::encode(&record, FRAME_BYTES_MAX_DEFAULT, 0) {
        let body = f.get(codec::FRAME_HEADER_BYTES..).unwrap_or(&[]);
        let len = (body.len() as u32).to_le_bytes();
        let mut h = crc32fast::Hasher::new();
        h.update(&len);
        h.update(body);
        out.extend_from_slice(&len);
        out.extend_from_slice(&h.finalize().to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// [`Op::BigAppend`]'s payload: `200 + 2 * size` bytes of `size`, with [`embeddable_frames`]
/// (for the active segment's salt and the next one's) near the start and near the end, so a
/// write torn anywhere keeps some of them.
fn big_payload(size: u8, next_seq: u64, salts: &[u32]) -> Vec<u8> {
    let n = 200 + 2 * usize::from(size);
    let mut p = vec![size; n];
    let frames = embeddable_frames(next_seq + u64::from(size % 3), salts);
    for at in [usize::from(size % 16), n.saturating_sub(frames.len() + 1)] {
        if let Some(dst) = p.get_mut(at..at + frames.len()) {
            dst.copy_from_slice(&frames);
        }
    }
    p
}

/// What `run_op` needs besides the store.
struct Ctx<'d> {
    disk: &'d SimDisk,
    salts: Arc<HarnessSalts>,
}

fn run_op<'a>(
    store: &'a Store,
    ctx: &Ctx<'_>,
    op: &Op,
    fence: &mut Option<OpenFence<'a>>,
    h: &mut History,
) {
    match op {
        Op::Append { entity, payload } => {
            match store.append(&coord(*entity), kind(), &vec![*payload]) {
                Ok(r) => h.ack(&r),
                Err(e) => note(Err(e), h),
            }
        }
        Op::BigAppend { entity, size } => {
            let salts: Vec<u32> = active_salt(ctx.disk)
                .into_iter()
                .chain([ctx.salts.peek()])
                .collect();
            let payload = RawBytes(big_payload(*size, store.frontier().written, &salts));
            match store.append(&coord(*entity), kind(), &payload) {
                Ok(r) => h.ack(&r),
                Err(e) => note(Err(e), h),
            }
        }
        Op::Batch { n, entity, payload } => {
            match store.append_batch(batch_items(*n, *entity, *payload)) {
                Ok(rs) => {
                    rs.iter().for_each(|r| h.ack(r));
                    h.batches
                        .push(rs.iter().map(|r| (r.sequence, r.event_id)).collect());
                }
                Err(e) => note(Err(e), h),
            }
        }
        Op::FenceBegin => {
            if fence.is_none() {
                match store.begin_visibility_fence() {
                    Ok(f) => {
                        *fence = Some(OpenFence {
                            fence: f,
                            tickets: Vec::new(),
                            batch_tickets: Vec::new(),
                        })
                    }
                    Err(e) => note(Err(e), h),
                }
            }
        }
        Op::FenceAppend { entity, payload } => {
            if let Some(f) = fence.as_mut() {
                let before = store.frontier().written;
                match f.fence.submit(&coord(*entity), kind(), &vec![*payload]) {
                    Ok(t) => {
                        // A fenced ticket answers before the commit only with an error.
                        wait_written(store, before, h, || t.try_check().is_some());
                        f.tickets.push(t);
                    }
                    Err(e) => note(Err(e), h),
                }
            }
        }
        Op::FenceBatch { n, entity, payload } => {
            if let Some(f) = fence.as_mut() {
                let before = store.frontier().written;
                match f.fence.submit_batch(batch_items(*n, *entity, *payload)) {
                    Ok(t) => {
                        wait_written(store, before, h, || t.try_check().is_some());
                        f.batch_tickets.push(t);
                    }
                    Err(e) => note(Err(e), h),
                }
            }
        }
        Op::FenceCommit => {
            if let Some(f) = fence.take() {
                match f.fence.commit() {
                    Ok(()) => {
                        // commit() returned Ok: the fence's events are durable and visible.
                        for t in f.tickets {
                            if let Ok(r) = t.wait() {
                                h.ack(&r);
                                h.durable.insert((r.sequence, r.event_id));
                            }
                        }
                        for t in f.batch_tickets {
                            if let Ok(rs) = t.wait() {
                                for r in &rs {
                                    h.ack(r);
                                    h.durable.insert((r.sequence, r.event_id));
                                }
                                h.batches
                                    .push(rs.iter().map(|r| (r.sequence, r.event_id)).collect());
                            }
                        }
                    }
                    Err(e) => note(Err(e), h),
                }
            }
        }
        Op::FenceCancel => {
            if let Some(f) = fence.take() {
                h.hidden_fences.insert(f.fence.token());
                let r = f.fence.cancel();
                note(r, h);
            }
        }
        Op::FenceDrop => {
            if let Some(f) = fence.take() {
                h.hidden_fences.insert(f.fence.token());
                let before = store.frontier().written;
                drop(f);
                wait_written(store, before, h, || false);
            }
        }
        Op::Consume { n, outputs } => {
            let Ok(mut c) =
                store.consumer(&CheckpointId::new("fz-consumer"), &Region::scope(SCOPE))
            else {
                return;
            };
            let _ = c.poll(1 + usize::from(n % 4), std::time::Duration::ZERO);
            let at = c.position();
            match outputs % 3 {
                0 => {
                    if at.is_some() && at != c.committed() {
                        h.consumes.push((at, false));
                    }
                    note(c.commit(), h)
                }
                k => {
                    h.consumes.push((at, true));
                    match c.commit_with(output_items(k, at, *outputs)) {
                        Ok(rs) => {
                            rs.iter().for_each(|r| h.ack(r));
                            h.batches
                                .push(rs.iter().map(|r| (r.sequence, r.event_id)).collect());
                        }
                        Err(e) => note(Err(e), h),
                    }
                }
            }
        }
        Op::Sync => match store.sync() {
            Ok(()) => h.sync_ok(),
            Err(e) => note(Err(e), h),
        },
    }
}

/// Waits until the writer queue is empty and the written frontier has stopped moving.
fn quiesce(store: &Store) {
    let mut last = store.frontier().written;
    let mut still = 0;
    for _ in 0..2_000 {
        std::thread::sleep(std::time::Duration::from_micros(200));
        let now = store.frontier().written;
        if now == last && store.writer_pressure().queued == 0 {
            still += 1;
            if still >= 5 {
                return;
            }
        } else {
            still = 0;
            last = now;
        }
    }
}

/// What the workload left: its history, the written log (scanned, and as the oracle's
/// byte-level view when it reads clean), the durable frontier and the chosen crash image.
struct Workload {
    history: History,
    written: ScannedLog,
    written_units: Option<WrittenLog>,
    durable_frontier: u64,
    image: CrashImage,
}

/// Crash images with every subset of a file's unsynced appends (at most 8 of them).
const CRASH_OPTIONS: CrashOptions = CrashOptions {
    subsets: true,
    max_subset_ops: 8,
};

/// Runs the workload and takes the crash image (with the fence, if any, still open).
fn run_workload(disk: &SimDisk, input: &RecoveryInput) -> Workload {
    let ctx = Ctx {
        disk,
        salts: Arc::default(),
    };
    let store = Store::open(config_with(disk, input.deferred, &ctx.salts))
        .unwrap_or_else(|e| panic!("open on an empty disk failed: {e}"));
    if let Some(f) = input.fault {
        let kind = if f.persistent {
            FaultKind::Persistent
        } else {
            FaultKind::Transient
        };
        disk.fail_at(disk.op_count() + u64::from(f.op_after_open), kind);
    }
    let mut h = History::default();
    let mut fence: Option<OpenFence<'_>> = None;
    for op in input.ops.iter().take(OPS_MAX) {
        run_op(&store, &ctx, op, &mut fence, &mut h);
    }
    if let Some(f) = &fence {
        h.hidden_fences.insert(f.fence.token());
    }
    // The written log and the crash image are two snapshots of the disk: let the writer go
    // quiet first (an asynchronous command, such as a dropped fence's cancel, may still be in
    // flight), so no record lands between them.
    quiesce(&store);
    let written = scan_log(disk, Path::new(DIR));
    let written_units = WrittenLog::read(disk, Path::new(DIR)).ok();
    let durable_frontier = store.frontier().durable;
    // Subset images need the oracle's byte-level view to tell a hole from a torn tail; a log
    // that does not read clean (an injected fault cut a write) gets prefix images only.
    let opts = if written_units.is_some() {
        CRASH_OPTIONS
    } else {
        CrashOptions::default()
    };
    let image = disk.crash_with_options(&opts, &mut chooser(&input.crash));
    drop(fence);
    drop(store);
    Workload {
        history: h,
        written,
        written_units,
        durable_frontier,
        image,
    }
}

/// Every file of `disk` with its bytes (to see that a failed open changed nothing).
fn fingerprint(disk: &SimDisk) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    disk.files()
        .into_iter()
        .map(|f| {
            let c = disk.read_file(&f).unwrap_or_default();
            (f, c)
        })
        .collect()
}

/// The visible events of an open store, with payloads, in sequence order.
fn visible(store: &Store) -> Vec<VisibleEvent> {
    let mut entries = store.by_scope(SCOPE);
    entries.sort_by_key(|e| e.global_sequence);
    assert_eq!(
        store.stats().event_count,
        entries.len(),
        "visible events outside the harness scope"
    );
    entries
        .into_iter()
        .map(|e| {
            let stored = store.get_raw(e.event_id).unwrap_or_else(|err| {
                panic!("visible event {:032x} cannot be read: {err}", e.event_id)
            });
            VisibleEvent {
                seq: e.global_sequence,
                event_id: e.event_id,
                entity: e.coord.entity().to_owned(),
                scope: e.coord.scope().to_owned(),
                kind: e.kind.as_raw(),
                clock: e.clock,
                payload: stored.event.payload,
            }
        })
        .collect()
}

fn assert_prefix(short: &[LogRecord], long: &[LogRecord], what: &str) {
    assert!(
        short.len() <= long.len() && long.get(..short.len()) == Some(short),
        "INV-PREFIX: {what}: {} records are not a prefix of {}",
        short.len(),
        long.len()
    );
}

/// Applies the corruption to the image; returns the index of the first record it damages
/// (`records.len()` if none) and whether valid records must follow the damage.
fn corrupt(disk: &SimDisk, pre: &ScannedLog, c: ImageCorruption) -> Option<(usize, bool)> {
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
        return Some((k, bytes.len() > SEGMENT_HEADER_BYTES));
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

/// `BATPAK_FUZZ_TRACE=1` prints one line per run (for looking at what a corpus exercises).
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

/// [`recovery`] with a seeded bug in the recovering stores (the workload itself runs on the
/// real store): shows which mutants the harness catches. Returns how the run ended.
pub fn recovery_with(input: RecoveryInput, mutant: Mutant) -> Outcome {
    let disk = SimDisk::new();
    let Workload {
        history: h,
        written,
        written_units,
        durable_frontier,
        image,
    } = run_workload(&disk, &input);
    let dir = Path::new(DIR);
    if input.fault.is_none() {
        assert!(
            written.damage.is_none(),
            "the written log does not scan clean: {:?}",
            written.damage
        );
    }
    for &(seq, id) in &h.acked {
        let rec = written.records.get(seq as usize);
        // After a failed fsync the writer cuts off what it had not synced: an event
        // acknowledged as not durable (deferred mode) may be gone then, as in a crash.
        if rec.is_none() && h.failed && !h.durable.contains(&(seq, id)) {
            continue;
        }
        assert!(
            matches!(rec, Some(LogRecord { body: LogBody::Event(e), .. }) if e.event_id == id),
            "INV-STABLE-SEQ: receipt ({seq}, {id:032x}) does not name the record at its sequence: {rec:?}"
        );
    }

    let img = image.disk();
    let pre = scan_log(&img, dir);
    if trace() {
        eprintln!("history: {h:?}");
        for (r, p) in written.records.iter().zip(&written.positions) {
            eprintln!("  written {} {p:?} {:?}", r.seq, r.body);
        }
        eprintln!("  written damage {:?}", written.damage);
    }
    assert_prefix(&pre.records, &written.records, "crash image vs written log");
    let hole = written_units
        .as_ref()
        .and_then(|w| w.classify(&img, dir).hole);
    if let Some((file, offset)) = hole {
        check_hole_fails_closed(&img, input.deferred, mutant, &file, offset, &image);
        return Outcome::HoleFailedClosed;
    }
    let damage = input.corruption.and_then(|c| corrupt(&img, &pre, c));

    let store = match (Store::open(crate::seed(config(&img, input.deferred), mutant)), damage) {
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
    let post = scan_log(&img, dir);
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
    assert_eq!(
        post.records.as_slice(),
        pre.records.get(..kept).unwrap_or(&[]),
        "recovery kept other records than the image's valid prefix (image: {})",
        image.describe()
    );

    let v1 = visible(&store);
    if trace() {
        eprintln!(
            "recovery: {} ops, {} written, image kept {} ({}), damage {damage:?}, recovered {} records, {} visible, {} durable promised",
            input.ops.len().min(OPS_MAX),
            written.records.len(),
            pre.records.len(),
            image.describe(),
            post.records.len(),
            v1.len(),
            h.durable.len()
        );
    }
    let expected = expected_visible(&post.records);
    assert_eq!(v1, expected, "visible events differ from the reference");
    let checkpoints: BTreeMap<String, Option<u64>> = store
        .consumers()
        .into_iter()
        .map(|c| (c.id.to_string(), c.committed))
        .collect();
    check_exactly_once(&h, &v1, checkpoints.get("fz-consumer").copied());
    assert_eq!(
        checkpoints,
        expected_checkpoints(&post.records),
        "INV-EXACTLY-ONCE / INV-CHECKPOINT-DURABLE: recovered checkpoints differ from the reference (image: {})",
        image.describe()
    );
    check_history(&h, &v1, &post.records, damage.is_none(), durable_frontier);

    // The reopened store reports everything it recovered durable; a power loss now (while it
    // is open) must keep all of it. Then recover again, and reopen cleanly
    // (INV-RECOVERY-IDEMPOTENT).
    let f = store.frontier();
    assert_eq!(
        f.durable, f.written,
        "the reopened store reports what it recovered durable"
    );
    let image2 = img.crash_with(&mut chooser(&input.recrash));
    drop(store);
    let img2 = image2.power_loss_disk();
    let store2 = Store::open(crate::seed(config(&img2, input.deferred), mutant)).unwrap_or_else(
        |e| {
            panic!(
                "INV-DURABLE: after a power loss following the reopen, the store does not open: {e} \
                 (power loss: {})",
                image2.describe()
            )
        },
    );
    assert_eq!(
        scan_log(&img2, dir).records,
        post.records,
        "INV-DURABLE: a power loss after the reopen changed the log the reopened store reported \
         durable (power loss: {})",
        image2.describe()
    );
    assert_eq!(
        visible(&store2),
        v1,
        "INV-RECOVERY-IDEMPOTENT: second recovery"
    );
    drop(store2);
    let store3 = Store::open(crate::seed(config(&img2, input.deferred), mutant))
        .unwrap_or_else(|e| panic!("reopen failed: {e}"));
    assert_eq!(
        visible(&store3),
        v1,
        "INV-RECOVERY-IDEMPOTENT: clean reopen"
    );
    Outcome::Recovered
}

/// INV-CORRUPTION-FAILS-CLOSED for an image that lost a write before a kept one: `open`
/// fails with `CorruptSegment` at the hole, twice, and changes nothing on disk.
fn check_hole_fails_closed(
    img: &SimDisk,
    deferred: bool,
    mutant: Mutant,
    file: &Path,
    offset: u64,
    image: &CrashImage,
) {
    let before = fingerprint(img);
    for attempt in 1..=2 {
        match Store::open(crate::seed(config(img, deferred), mutant)) {
            Err(StoreError::CorruptSegment {
                file: f, offset: o, ..
            }) if f == file && o == offset => {}
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

/// Checks what the API promised against what recovery shows.
fn check_history(
    h: &History,
    visible: &[VisibleEvent],
    log: &[LogRecord],
    undamaged: bool,
    durable_frontier: u64,
) {
    let seen: BTreeSet<(u64, u128)> = visible.iter().map(|v| (v.seq, v.event_id)).collect();
    if undamaged {
        for d in &h.durable {
            assert!(
                seen.contains(d),
                "INV-DURABLE: acknowledged durable event {d:?} is not visible"
            );
        }
        for &(seq, id) in &h.acked {
            if seq < durable_frontier {
                assert!(
                    seen.contains(&(seq, id)),
                    "frontier().durable was {durable_frontier} but acknowledged event {seq} is lost"
                );
            }
        }
    }
    for b in &h.batches {
        let n = b.iter().filter(|e| seen.contains(e)).count();
        assert!(
            n == 0 || n == b.len(),
            "INV-BATCH-ATOMIC: {n} of {} events of batch {b:?} visible",
            b.len()
        );
    }
    for v in visible {
        let fence = log.get(v.seq as usize).and_then(|r| match &r.body {
            LogBody::Event(e) => e.unit.fence(),
            _ => None,
        });
        if let Some(f) = fence {
            assert!(
                !h.hidden_fences.contains(&f),
                "INV-NO-RESURRECT / INV-FENCE-CRASH: event {} of cancelled, dropped or open fence {f} is visible",
                v.seq
            );
        }
    }
}
