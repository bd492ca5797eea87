//! The crash-state enumeration: runs small workloads ([`crate::workload`]) on a [`SimDisk`]
//! and checks every crash image the disk may leave at every persistence point, and runs them
//! again with an I/O fault at every disk operation. Every image is recovered and judged by
//! [`crate::check::check_recovered`] (the oracle's visible set, the caller's
//! acknowledgements); with [`Stats::byte_oracle`] also by the byte-level classification of
//! [`crate::conformance`] (exact record count and torn tail, fail-closed on a hole).
//!
//! Every image is read as the page cache a crashed process left (what survived unsynced is
//! still unsynced), and after the reopen every power loss the disk may then suffer must keep
//! what the reopened store reports durable and everything acknowledged durable before
//! (process crash -> reopen -> power loss -> reopen).

use crate::check::{
    check_chain, check_recovered, ids, open_violation, unfinished_unit_before, violation, visible,
    Check, Violation,
};
use crate::conformance::{allowed_visible_sets, compare, Abstract, Expected, WrittenLog};
use crate::record::{fingerprint, LogRecord};
use crate::workload::{config, coord, run_workload, workloads, Acks, Mode, Op, DIR, KIND};
use batpak::__testing::env::{CrashImage, CrashOptions, Fault, FaultKind, SimDisk};
use batpak::__testing::recover_visible;
use batpak::store::{AppendOptions, BatchAppendItem, CausationRef, IndexEntry, Store, StoreError};
use serde_json::json;
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

/// Counters for the report, and the enumeration's options.
#[derive(Default)]
pub struct Stats {
    /// Workloads run.
    pub workloads: usize,
    /// Store runs (a workload with a fault or a freeze point is another run).
    pub runs: usize,
    /// Crash images recovered and checked.
    pub crash_states: usize,
    /// Images of crashes during recovery checked.
    pub recovery_crash_states: usize,
    /// Images of a power loss during the recovery of an image's process-crash reading (frozen
    /// just before each of recovery's syncs), checked to keep every event acknowledged durable
    /// (`check_power_loss_during_recovery`).
    pub recovery_power_loss_states: usize,
    /// Power losses checked after a reopen (process crash -> reopen -> power loss -> reopen)
    /// that could lose something (when everything is durable after the reopen there is only
    /// one outcome, the reopened state itself, and it is not counted).
    pub reopen_power_loss_states: usize,
    /// Crash states whose recovery had to fail closed (a hole before surviving records).
    pub fail_closed_states: usize,
    /// Images (by a 128-bit hash of their content) whose recovery-idempotence checks already
    /// ran: those checks depend only on the disk content, not on the acknowledgements.
    pub seen: BTreeSet<(u64, u64)>,
    /// Which crash images to enumerate at every point (default: prefixes, torn, garbage).
    pub crash_opts: CrashOptions,
    /// I/O fault injection tries only an EIO and a dead disk at every operation, not also a
    /// full disk with a short write at appends and a failed fsync that drops its pages at
    /// syncs (see [`faults_for`]).
    pub classic_faults_only: bool,
    /// Also judges every image byte by byte against the written log (exact record count and
    /// torn tail; a hole must fail closed) and checks the visible set is one the oracle allows
    /// for what was promised durable.
    pub byte_oracle: bool,
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} workloads, {} runs, {} crash states ({} fail closed), {} crash-during-recovery states, {} power losses during the recovery of a process crash, {} power losses after a reopen",
            self.workloads,
            self.runs,
            self.crash_states,
            self.fail_closed_states,
            self.recovery_crash_states,
            self.recovery_power_loss_states,
            self.reopen_power_loss_states
        )
    }
}

fn content_hash(bytes: &[u8]) -> (u64, u64) {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut a = DefaultHasher::new();
    bytes.hash(&mut a);
    let mut b = DefaultHasher::new();
    0xB47_u16.hash(&mut b);
    bytes.hash(&mut b);
    (a.finish(), b.finish())
}

/// The written log at one persistence point, as the checks of its images need it.
pub struct Point<'a> {
    /// What the caller was told.
    pub acks: &'a Acks,
    /// The written log.
    pub written: &'a WrittenLog,
    /// The oracle's view of it.
    pub abs: &'a Abstract,
    /// Records promised durable.
    pub durable_len: usize,
    /// Visible sets the oracle allows after a crash now (with [`Stats::byte_oracle`]).
    pub allowed: &'a BTreeSet<BTreeSet<u64>>,
}

impl Point<'_> {
    fn hist(&self) -> &[LogRecord] {
        &self.written.records
    }
}

/// What recovery of an image must do.
enum Expect {
    Recovers(Option<Expected>),
    FailsClosed {
        file: std::path::PathBuf,
        offset: u64,
    },
}

/// Checks one crash image: recovery, idempotent reopen, append after recovery, and crashes
/// during recovery.
pub fn check_image(image: &CrashImage, mode: Mode, pt: &Point<'_>, stats: &mut Stats) -> Check {
    stats.crash_states += 1;
    let disk = image.disk();
    let ctx = || image.describe();
    let with_ctx = |v: Violation| Violation {
        inv: v.inv,
        detail: format!("{} [image: {}]", v.detail, ctx()),
    };
    let expect = if stats.byte_oracle {
        let e = pt
            .written
            .expect(pt.abs, &disk, Path::new(DIR), pt.durable_len)
            .map_err(|e| with_ctx(violation("INV-DURABLE", format!("oracle: {e}"))))?;
        match e {
            Expected::FailsClosed { file, offset } => Expect::FailsClosed { file, offset },
            e => Expect::Recovers(Some(e)),
        }
    } else {
        Expect::Recovers(None)
    };
    let before = fingerprint(&disk);
    let expected = match expect {
        Expect::FailsClosed { file, offset } => {
            stats.fail_closed_states += 1;
            return check_fails_closed(&disk, mode, &file, offset, &before).map_err(with_ctx);
        }
        Expect::Recovers(e) => e,
    };
    let fresh = stats.seen.insert(content_hash(&before));
    drop(before);
    let store = Store::open(config(&disk, mode, 1))
        .map_err(|e| open_violation(&e, "INV-PREFIX", &format!("image [{}]", ctx())))?;
    let p = store.recovery_report().records;
    let recovery_wrote = store.recovery_report().torn_tail.is_some()
        || !store.recovery_report().removed_segments.is_empty();
    let vis1 = visible(&store);
    check_recovered(&store, &vis1, p, pt.acks, pt.hist(), pt.abs, true).map_err(with_ctx)?;
    let kept = &pt.hist()[..usize::try_from(p)
        .unwrap_or(usize::MAX)
        .min(pt.hist().len())];
    let mut ghosts = pt.acks.consumers.clone();
    crate::consumers::check_recovered(&store, &mut ghosts, kept).map_err(with_ctx)?;
    if let Some(e) = &expected {
        let got: BTreeSet<u64> = vis1.iter().map(|e| e.global_sequence).collect();
        compare(e, store.recovery_report(), &got)
            .map_err(|d| with_ctx(violation("INV-PREFIX", format!("oracle: {d}"))))?;
        if !pt.allowed.contains(&got) {
            return Err(with_ctx(violation(
                "INV-DURABLE",
                format!(
                    "oracle: visible {got:?} is not in allowed_after_recovery (durable_len {})",
                    pt.durable_len
                ),
            )));
        }
    }
    check_power_loss_after_reopen(&disk, mode, &store, &vis1, pt.acks, stats).map_err(with_ctx)?;
    store
        .close()
        .map_err(|e| violation("INV-RECOVERY-IDEMPOTENT", format!("close: {e}")))?;
    if !fresh {
        return Ok(());
    }
    check_reopens(&disk, mode, &vis1, p, pt.hist(), &ctx())?;
    if recovery_wrote {
        check_crash_during_recovery(image, mode, &vis1, stats)?;
        check_power_loss_during_recovery(image, mode, pt.acks, stats)?;
    }
    Ok(())
}

/// A power loss during the recovery of an image's process-crash reading, where what survived
/// unsynced is still unsynced, so recovery's own truncations, creations, renames and unlinks
/// race it (each unsynced directory operation kept or lost on its own): the disk frozen just
/// before each of recovery's syncs, every crash image of that recovered; every event
/// acknowledged durable before the crash must be visible (INV-DURABLE). Only when the
/// reading holds unsynced directory operations, which nothing orders with recovery's own (a
/// reading with only unsynced file data is covered by [`check_crash_during_recovery`] and
/// [`check_power_loss_after_reopen`] at a fraction of the cost).
fn check_power_loss_during_recovery(
    image: &CrashImage,
    mode: Mode,
    acks: &Acks,
    stats: &mut Stats,
) -> Check {
    let probe = image.disk();
    if probe.pending_dir_ops() == 0 {
        return Ok(());
    }
    let ctx = image.describe();
    let start = probe.op_count();
    match Store::open(config(&probe, mode, 1)) {
        Ok(s) => drop(s),
        Err(e) => return Err(open_violation(&e, "INV-PREFIX", &format!("image [{ctx}]"))),
    }
    let names = probe.op_names();
    let syncs: Vec<u64> = (start..probe.op_count())
        .filter(|&i| {
            names
                .get(usize::try_from(i).unwrap_or(usize::MAX))
                .is_some_and(|n| n.starts_with("sync"))
        })
        .collect();
    for s in syncs {
        let d = image.disk();
        d.fail_at(s, FaultKind::Persistent);
        if let Ok(store) = Store::open(config(&d, mode, 1)) {
            drop(store);
        }
        for img2 in d.crash_images(&CrashOptions::default()) {
            stats.recovery_power_loss_states += 1;
            let what = || {
                format!(
                    "power loss at op {s} of the recovery of [{ctx}]: [{}]",
                    img2.describe()
                )
            };
            let after = recover_visible(&config(&img2.power_loss_disk(), mode, 4))
                .map_err(|e| open_violation(&e, "INV-DURABLE", &what()))?;
            for a in acks.events.iter().filter(|a| a.durable) {
                if !after
                    .iter()
                    .any(|e| e.event_id == a.id && e.global_sequence == a.seq)
                {
                    return Err(violation(
                        "INV-DURABLE",
                        format!(
                            "acknowledged durable event {:x} (seq {}) lost by a {}",
                            a.id,
                            a.seq,
                            what()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// INV-CORRUPTION-FAILS-CLOSED: open fails with `CorruptSegment` at the hole, twice, and
/// leaves the disk as it was.
fn check_fails_closed(
    disk: &SimDisk,
    mode: Mode,
    file: &Path,
    offset: u64,
    before: &[u8],
) -> Check {
    for session in [1, 2] {
        match Store::open(config(disk, mode, session)) {
            Err(StoreError::CorruptSegment { detail, .. })
                if detail.file() == Some(file) && detail.offset() == Some(offset) => {}
            Err(e) => {
                return Err(violation(
                    "INV-CORRUPTION-FAILS-CLOSED",
                    format!(
                        "a hole at {}:{offset} before surviving records: expected \
                         CorruptSegment there, got {e}",
                        file.display()
                    ),
                ))
            }
            Ok(s) => {
                let v = ids(&visible(&s));
                return Err(violation(
                    "INV-CORRUPTION-FAILS-CLOSED",
                    format!(
                        "a hole at {}:{offset} before surviving records, yet open \
                         succeeded (records {}, visible {v:?})",
                        file.display(),
                        s.recovery_report().records
                    ),
                ));
            }
        }
    }
    if fingerprint(disk) != before {
        return Err(violation(
            "INV-CORRUPTION-FAILS-CLOSED",
            "a failed (fail-closed) open changed the disk",
        ));
    }
    Ok(())
}

/// INV-RECOVERY-IDEMPOTENT: a reopen sees the same state and no torn tail; events appended
/// after recovery (one and a batch) are all visible and nothing earlier changes.
fn check_reopens(
    disk: &SimDisk,
    mode: Mode,
    vis1: &[IndexEntry],
    p: u64,
    hist: &[LogRecord],
    ctx: &str,
) -> Check {
    let store = Store::open(config(disk, mode, 2))
        .map_err(|e| open_violation(&e, "INV-RECOVERY-IDEMPOTENT", &format!("reopen [{ctx}]")))?;
    if let Some(t) = &store.recovery_report().torn_tail {
        return Err(violation(
            "INV-RECOVERY-IDEMPOTENT",
            format!("second recovery still finds a torn tail {t:?} [image: {ctx}]"),
        ));
    }
    let vis2 = visible(&store);
    if vis2 != vis1 {
        return Err(violation(
            "INV-RECOVERY-IDEMPOTENT",
            format!(
                "reopen changed the visible state {:?} -> {:?}",
                ids(vis1),
                ids(&vis2)
            ),
        ));
    }
    let mut new_seqs = Vec::new();
    let r = store
        .append(&coord("a"), KIND, &json!({"after": 1}))
        .map_err(|e| violation("INV-PREFIX", format!("append after recovery: {e}")))?;
    new_seqs.push((r.event_id, r.sequence));
    let item = |e: &str, n: u32| {
        BatchAppendItem::new(
            coord(e),
            KIND,
            &json!({ "after": n }),
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap_or_else(|err| panic!("batch item: {err}"))
    };
    let rs = store
        .append_batch(vec![item("a", 2), item("b", 3)])
        .map_err(|e| violation("INV-PREFIX", format!("batch after recovery: {e}")))?;
    new_seqs.extend(rs.iter().map(|r| (r.event_id, r.sequence)));
    let live = visible(&store);
    check_chain(&live)?;
    store
        .close()
        .map_err(|e| violation("INV-RECOVERY-IDEMPOTENT", format!("close: {e}")))?;
    let store = Store::open(config(disk, mode, 3)).map_err(|e| {
        open_violation(
            &e,
            "INV-RECOVERY-IDEMPOTENT",
            &format!("reopen after appending post-recovery [{ctx}]"),
        )
    })?;
    let vis3 = visible(&store);
    drop(store);
    for (id, seq) in &new_seqs {
        let Some(e) = vis3.iter().find(|e| e.event_id == *id) else {
            let pu = usize::try_from(p).unwrap_or(usize::MAX);
            let inv = if unfinished_unit_before(hist, pu, p) {
                "INV-NO-COLLATERAL"
            } else {
                "INV-DURABLE"
            };
            return Err(violation(
                inv,
                format!("event {id:x} appended after recovery is hidden on reopen [image: {ctx}]"),
            ));
        };
        if e.global_sequence != *seq {
            return Err(violation(
                "INV-STABLE-SEQ",
                format!(
                    "event {id:x} appended at seq {seq} after recovery is at seq {} on reopen",
                    e.global_sequence
                ),
            ));
        }
    }
    if vis3 != live || vis3.get(..vis1.len()) != Some(vis1) {
        return Err(violation(
            "INV-RECOVERY-IDEMPOTENT",
            format!(
                "after appending post-recovery: {:?} then reopen {:?}",
                ids(&live),
                ids(&vis3)
            ),
        ));
    }
    Ok(())
}

/// Crash during recovery (only when recovery wrote something): freeze the disk just before
/// and just after each of recovery's own syncs, take every image, recover again. On the
/// power-loss reading of the image (everything in it durable): there an interrupted recovery
/// must end exactly where an uninterrupted one does (in the process-crash reading a power loss
/// during recovery may also lose what was never synced, which the other checks cover).
fn check_crash_during_recovery(
    image: &CrashImage,
    mode: Mode,
    vis1: &[IndexEntry],
    stats: &mut Stats,
) -> Check {
    let ctx = image.describe();
    let d = image.power_loss_disk();
    recover_visible(&config(&d, mode, 1)).map_err(|e| {
        open_violation(
            &e,
            "INV-RECOVERY-IDEMPOTENT",
            &format!("recovery of the power-loss reading [{ctx}]"),
        )
    })?;
    let freeze: BTreeSet<u64> = d
        .persisting_sync_indices()
        .iter()
        .flat_map(|&s| [s, s + 1])
        .collect();
    for k in freeze {
        let d = image.power_loss_disk();
        d.fail_at(k, FaultKind::Persistent);
        if let Ok(s) = Store::open(config(&d, mode, 1)) {
            drop(s);
        }
        for img2 in d.crash_images(&CrashOptions::default()) {
            stats.recovery_crash_states += 1;
            let d2 = img2.disk();
            let store = Store::open(config(&d2, mode, 4)).map_err(|e| {
                open_violation(
                    &e,
                    "INV-RECOVERY-IDEMPOTENT",
                    &format!("recovery crashed at op {k} [{ctx}] then"),
                )
            })?;
            let v = visible(&store);
            drop(store);
            if v != vis1 {
                return Err(violation(
                    "INV-RECOVERY-IDEMPOTENT",
                    format!(
                        "crash at op {k} of recovery: {:?}, uninterrupted recovery: {:?}",
                        ids(&v),
                        ids(vis1)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Process crash -> reopen -> power loss -> reopen: `store` was just opened on `disk` (a crash
/// image read as the page cache a crashed process left). Whatever it reports durable - its
/// `frontier().durable` - and every event acknowledged durable before the crash must survive
/// any power loss now. (If everything on the disk is durable, a power loss changes nothing.)
fn check_power_loss_after_reopen(
    disk: &SimDisk,
    mode: Mode,
    store: &Store,
    vis: &[IndexEntry],
    acks: &Acks,
    stats: &mut Stats,
) -> Check {
    if disk.is_all_durable() {
        return Ok(());
    }
    let durable = store.frontier().durable;
    for img in disk.crash_images(&CrashOptions::default()) {
        stats.reopen_power_loss_states += 1;
        let after = recover_visible(&config(&img.power_loss_disk(), mode, 5)).map_err(|e| {
            open_violation(
                &e,
                "INV-DURABLE",
                &format!(
                    "power loss after a reopen that reported {durable} records durable [{}]",
                    img.describe()
                ),
            )
        })?;
        let has = |id: u128, seq: u64| {
            after
                .iter()
                .any(|e| e.event_id == id && e.global_sequence == seq)
        };
        for e in vis.iter().filter(|e| e.global_sequence < durable) {
            if !has(e.event_id, e.global_sequence) {
                return Err(violation(
                    "INV-DURABLE",
                    format!(
                        "event {:x} (seq {}) was recovered and reported durable (frontier().durable \
                         = {durable}) by the reopened store, then lost by a power loss [{}]",
                        e.event_id,
                        e.global_sequence,
                        img.describe()
                    ),
                ));
            }
        }
        for a in acks.events.iter().filter(|a| a.durable) {
            if !has(a.id, a.seq) {
                return Err(violation(
                    "INV-DURABLE",
                    format!(
                        "acknowledged durable event {:x} (seq {}) lost by a power loss after a reopen [{}]",
                        a.id,
                        a.seq,
                        img.describe()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The receipts name the records at their sequences (after a failed write or fsync the
/// writer cuts off what it had not synced: events acknowledged as not durable may be gone
/// then, as in a crash, so `strict` is off in faulted runs).
fn check_receipts(acks: &Acks, hist: &[LogRecord], strict: bool) -> Check {
    for a in &acks.events {
        match usize::try_from(a.seq).ok().and_then(|s| hist.get(s)) {
            Some(r) if r.event().is_some_and(|e| e.event_id == a.id) => {}
            None if !a.durable && !strict => {}
            None => {
                return Err(violation(
                    "INV-DURABLE",
                    format!(
                        "receipt says {:x} at seq {}, the log ends at {} records",
                        a.id,
                        a.seq,
                        hist.len()
                    ),
                ))
            }
            Some(other) => {
                return Err(violation(
                    "INV-STABLE-SEQ",
                    format!(
                        "receipt says {:x} at seq {}, the log holds {other:?}",
                        a.id, a.seq
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Checks every crash image the disk may leave now. `strict`: the run had no injected fault,
/// so the log must read clean to its end.
pub fn check_all_images(
    disk: &SimDisk,
    mode: Mode,
    acks: &Acks,
    strict: bool,
    stats: &mut Stats,
) -> Check {
    let written = WrittenLog::read(disk, Path::new(DIR));
    if let Some(d) = written.damage.as_ref().filter(|_| strict) {
        return Err(violation(
            "INV-PREFIX",
            format!("the written log (no crash) does not read clean: {d:?}"),
        ));
    }
    check_receipts(acks, &written.records, strict)?;
    let abs = written.abstract_log();
    let durable_len = usize::try_from(acks.durable_len()).unwrap_or(usize::MAX);
    if stats.byte_oracle && durable_len > abs.records.len() {
        return Err(violation(
            "INV-DURABLE",
            format!(
                "oracle: {durable_len} records promised durable, {} written",
                abs.records.len()
            ),
        ));
    }
    let allowed = if stats.byte_oracle {
        allowed_visible_sets(&abs, durable_len)
    } else {
        BTreeSet::new()
    };
    let pt = Point {
        acks,
        written: &written,
        abs: &abs,
        durable_len,
        allowed: &allowed,
    };
    let opts = stats.crash_opts;
    for image in disk.crash_images(&opts) {
        check_image(&image, mode, &pt, stats)?;
    }
    Ok(())
}

/// Part 1: every workload, crash images after every operation and around every sync.
pub fn enumerate_crash_states(mode: Mode, max_len: usize, stats: &mut Stats) -> Check {
    enumerate_crash_states_of(mode, &workloads(max_len), stats)
}

/// [`enumerate_crash_states`] over the given workloads.
pub fn enumerate_crash_states_of(mode: Mode, list: &[Vec<Op>], stats: &mut Stats) -> Check {
    for ops in list {
        stats.workloads += 1;
        let disk = SimDisk::new();
        stats.runs += 1;
        let ctx = |v: Violation| v.context(format!("workload {ops:?}"));
        run_workload(&disk, mode, ops, false, &mut |acks| {
            check_all_images(&disk, mode, acks, true, stats)
        })
        .map_err(ctx)?;
        // Freeze the disk just before and just after every sync and take images there.
        for s in disk.sync_op_indices() {
            for k in [s, s + 1] {
                let d = SimDisk::new();
                d.fail_at(k, FaultKind::Persistent);
                stats.runs += 1;
                run_faulted(&d, mode, ops, stats)
                    .map_err(|v| v.context(format!("workload {ops:?} frozen at op {k}")))?;
            }
        }
    }
    Ok(())
}

/// The durable consumers' workloads ([`crate::consumers`]): `c0` reacting with
/// `commit_with`, `c1` committing plainly and resuming, a commit refused while a fence is
/// open and the fence's events handed out after it commits. Run through
/// [`enumerate_crash_states_of`] (every image at every point) and [`inject_io_errors_of`]
/// (a fault, a dead disk = a crash, at every I/O operation, commit_with's included).
pub fn consumer_workloads() -> Vec<Vec<Op>> {
    let poll = |c, max| Op::ConsumerPoll { c, max };
    let commit = |c| Op::ConsumerCommit { c };
    vec![
        vec![
            Op::APPEND_A,
            Op::BATCH,
            poll(0, 3),
            commit(0),
            Op::APPEND_B,
            poll(0, 0),
            commit(0),
        ],
        vec![
            Op::APPEND_A,
            poll(1, 0),
            commit(1),
            Op::APPEND_B,
            poll(1, 1),
            Op::ConsumerResume { c: 1 },
            poll(1, 3),
            commit(1),
        ],
        vec![
            Op::APPEND_A,
            poll(0, 3),
            Op::FenceBegin,
            commit(0),
            Op::FENCED_APPEND,
            Op::FenceCommit,
            poll(0, 3),
            commit(0),
        ],
    ]
}

/// `count` random consumer workloads of `min_len..=max_len` operations (seeded): plain writes,
/// syncs and fences mixed with both consumers' polls, commits and resumes (half the
/// operations), fence operations in a valid order.
pub fn random_consumer_workloads(
    count: usize,
    min_len: usize,
    max_len: usize,
    seed: u64,
) -> Vec<Vec<Op>> {
    const WRITES: [Op; 8] = [
        Op::APPEND_A,
        Op::APPEND_B,
        Op::BATCH,
        Op::Sync,
        Op::FenceBegin,
        Op::FENCED_APPEND,
        Op::FenceCommit,
        Op::FenceCancel,
    ];
    let mut rng = crate::workload::SplitMix(seed);
    let span = (max_len - min_len + 1) as u64;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let len = min_len + rng.below(span) as usize;
        let mut w = Vec::with_capacity(len);
        let mut open = false;
        while w.len() < len {
            let c = rng.below(2) as u8;
            let op = if rng.chance(50) {
                match rng.below(10) {
                    0..=4 => Op::ConsumerPoll {
                        c,
                        max: rng.below(4) as u8,
                    },
                    5..=8 => Op::ConsumerCommit { c },
                    _ => Op::ConsumerResume { c },
                }
            } else {
                WRITES[rng.below(WRITES.len() as u64) as usize]
            };
            let valid = match op {
                Op::FenceBegin => !open,
                o if o.needs_open_fence() => open,
                _ => true,
            };
            if !valid {
                continue;
            }
            open = match op {
                Op::FenceBegin => true,
                o if o.ends_fence() => false,
                _ => open,
            };
            w.push(op);
        }
        out.push(w);
    }
    out
}

/// Part 2: every workload, a fault at every operation index, transient and persistent.
pub fn inject_io_errors(mode: Mode, max_len: usize, stats: &mut Stats) -> Check {
    inject_io_errors_of(mode, &workloads(max_len), stats)
}

/// [`inject_io_errors`] over the given workloads.
pub fn inject_io_errors_of(mode: Mode, list: &[Vec<Op>], stats: &mut Stats) -> Check {
    for ops in list {
        stats.workloads += 1;
        let clean = SimDisk::new();
        run_workload(&clean, mode, ops, false, &mut |_| Ok(()))?;
        let names = clean.op_names();
        let classic = stats.classic_faults_only;
        for (k, name) in (0u64..).zip(names) {
            let faults = if classic {
                faults_for("")
            } else {
                faults_for(name)
            };
            for fault in faults {
                let d = SimDisk::new();
                d.fail_with(k, fault);
                stats.runs += 1;
                run_faulted(&d, mode, ops, stats).map_err(|v| {
                    v.context(format!(
                        "workload {ops:?}, fault {fault:?} at op {k} ({name})"
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// The faults tried at an operation named `name`: an I/O error (EIO) there only, and a dead
/// disk from there on; for an append also a full disk after a short write (part of the bytes
/// written); for a data sync also a failed fsync that drops its pages (the EIO one keeps them
/// cached but clean).
pub fn faults_for(name: &str) -> Vec<Fault> {
    let transient = Fault::new(FaultKind::Transient);
    let persistent = Fault::new(FaultKind::Persistent);
    match name {
        "append" => vec![
            transient,
            transient.no_space().short_write(SHORT_WRITE),
            persistent,
        ],
        "sync_data" | "sync_all" => vec![transient, transient.drop_pages(), persistent],
        _ => vec![transient, persistent],
    }
}

/// Bytes a short write writes before failing: part of a frame header and body.
pub const SHORT_WRITE: usize = 13;

/// Runs `ops` on a disk with a scheduled fault and checks every crash image of the state at
/// the end of the workload (taken before the store is dropped), or of the state after a
/// failed open.
fn run_faulted(d: &SimDisk, mode: Mode, ops: &[Op], stats: &mut Stats) -> Check {
    let mut checked = false;
    let mut done = 0;
    let acks = run_workload(d, mode, ops, true, &mut |acks| {
        done += 1;
        if done == ops.len() {
            checked = true;
            check_all_images(d, mode, acks, false, stats)?;
        }
        Ok(())
    })?;
    if !checked {
        check_all_images(d, mode, &acks, false, stats)?;
    }
    Ok(())
}
