//! Crash states of compaction (INV-COMPACTION): every workload of [`crate::workload`] (fences
//! committed, cancelled and left open by a crash, batches, segment rolls) is run, the process
//! crashes, a new session recovers it, and then compacts it with a retention strategy that
//! drops entity `a`. The run without a crash is judged against an oracle of what compaction
//! may do, computed from the log read independently ([`crate::record::scan_log`]):
//!
//! * every event still visible is one that was visible before, with the same sequence and
//!   the same record bytes (nothing re-encoded);
//! * only events of entity `a` went, and every atomic unit (batch, fence) of the events
//!   visible before is kept or dropped whole;
//! * no hidden event became visible (an open or cancelled fence, an unfinished batch);
//! * every consumer's committed checkpoint is the same (the consumer workloads of
//!   [`crate::crash_states::consumer_workloads`] are run too).
//!
//! Then the compaction runs again with the disk failing at each of its disk operations, once
//! as a power cut (every crash image a power loss may then leave) and once as a process crash
//! (the page cache survives): each recovers, twice in a row, to exactly the visible set
//! before or exactly the one after. After a process crash whose recovery removes segments
//! the compacted one superseded, that recovery is also cut by a power loss just before each
//! of its syncs, and every crash image of that (each unsynced directory operation kept or
//! lost on its own) must recover to before or after too (seeded bug
//! `RecoveryUnlinksBeforeDirSync`, spec mutant `recovery_unlinks_before_dir_sync`).

use crate::check::{violation, Check, Violation};
use crate::record::{scan_log, LogBody, LogRecord};
use crate::workload::{config, run_workload, Mode, Op, DIR};
use batpak::__testing::env::{CrashOptions, FaultKind, SimDisk};
use batpak::__testing::log::Unit;
use batpak::coordinate::Region;
use batpak::store::{CompactionConfig, CompactionStrategy, Store};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Counters for the report.
#[derive(Debug, Default)]
pub struct CompactionStats {
    /// Workloads run.
    pub workloads: usize,
    /// Workloads whose compaction dropped something.
    pub compacted: usize,
    /// Disk operations of compactions a crash was placed at.
    pub crash_points: usize,
    /// Recovered states checked (power-loss images and process crashes).
    pub states: usize,
    /// Of them, power-loss images taken while the recovery after a process crash of the
    /// compaction finished it (removing the superseded segments), frozen before each of that
    /// recovery's syncs (`power_loss_during_recovery`).
    pub recovery_states: usize,
}

/// The visible events: sequence -> (entity, event id).
type Visible = BTreeMap<u64, (String, u128)>;

fn visible(store: &Store) -> Visible {
    store
        .query(&Region::all())
        .into_iter()
        .map(|e| (e.global_sequence, (e.coord.entity().to_owned(), e.event_id)))
        .collect()
}

/// The consumers' committed positions: id -> committed sequence.
fn checkpoints(store: &Store) -> BTreeMap<String, Option<u64>> {
    store
        .consumers()
        .into_iter()
        .map(|c| (c.id.as_str().to_owned(), c.committed))
        .collect()
}

fn strategy() -> CompactionConfig {
    CompactionConfig {
        strategy: CompactionStrategy::Retention(Box::new(|e| e.coordinate.entity() != "a")),
        min_segments: 1,
    }
}

/// The unit of every event record: sequence -> unit.
fn units(log: &[LogRecord]) -> BTreeMap<u64, Unit> {
    log.iter()
        .filter_map(|r| match &r.body {
            LogBody::Event(e) => Some((r.seq, e.unit)),
            _ => None,
        })
        .collect()
}

/// The unit key of an event: its own sequence for a single event, else its batch or fence.
fn unit_key(seq: u64, unit: Unit) -> (u8, u64) {
    match unit {
        Unit::None => (0, seq),
        Unit::Batch(b) => (1, b),
        Unit::Fence(f) | Unit::FencedBatch { fence: f, .. } => (2, f),
    }
}

/// The oracle: what a compaction that dropped entity `a` may have left (`after`), given the
/// visible set and the log before it.
fn judge_result(
    before: &Visible,
    after: &Visible,
    log_before: &[LogRecord],
    log_after: &[LogRecord],
) -> Check {
    judge_dropping(before, after, log_before, log_after, &|e| e == "a")
}

/// [`judge_result`] for a strategy that may drop the events of the entities `may_go` names
/// (none for a merge).
fn judge_dropping(
    before: &Visible,
    after: &Visible,
    log_before: &[LogRecord],
    log_after: &[LogRecord],
    may_go: &dyn Fn(&str) -> bool,
) -> Check {
    let bytes_before: BTreeMap<u64, &LogRecord> = log_before.iter().map(|r| (r.seq, r)).collect();
    for (seq, ev) in after {
        if before.get(seq) != Some(ev) {
            return Err(violation(
                "INV-COMPACTION",
                format!(
                    "sequence {seq} shows {ev:?} after compaction, {:?} before",
                    before.get(seq)
                ),
            ));
        }
    }
    for r in log_after {
        if matches!(r.body, LogBody::Dropped { .. }) {
            continue;
        }
        if bytes_before.get(&r.seq) != Some(&r) {
            return Err(violation(
                "INV-COMPACTION",
                format!("record {} changed or appeared in compaction", r.seq),
            ));
        }
    }
    let units = units(log_before);
    let mut kept_units: BTreeMap<(u8, u64), (usize, usize)> = BTreeMap::new();
    for (seq, (entity, _)) in before {
        let gone = !after.contains_key(seq);
        if gone && !may_go(entity) {
            return Err(violation(
                "INV-COMPACTION",
                format!("event {seq} of entity {entity} was dropped, which the strategy keeps"),
            ));
        }
        let unit = units.get(seq).copied().unwrap_or(Unit::None);
        let k = kept_units.entry(unit_key(*seq, unit)).or_default();
        if gone {
            k.1 += 1;
        } else {
            k.0 += 1;
        }
    }
    for (unit, (kept, gone)) in kept_units {
        if kept > 0 && gone > 0 {
            return Err(violation(
                "INV-COMPACTION",
                format!("unit {unit:?} split: {kept} event(s) kept, {gone} dropped"),
            ));
        }
    }
    Ok(())
}

/// The disk a workload leaves after a process crash and one recovery (everything durable).
fn base_disk(mode: Mode, ops: &[Op]) -> Result<SimDisk, Violation> {
    let disk = SimDisk::new();
    let mut ops = ops.to_vec();
    // Seal what the workload wrote (refused while a fence is open: then that fence is left
    // open by the crash).
    ops.extend([Op::Roll, Op::Roll]);
    run_workload(
        &disk,
        Mode {
            mutant: crate::Mutant::None,
            ..mode
        },
        &ops,
        false,
        &mut |_| Ok(()),
    )?;
    let disk = disk.process_crash();
    let store = Store::open(config(&disk, Mode::DURABLE, 1))
        .map_err(|e| violation("INV-PREFIX", format!("recovery of the workload: {e}")))?;
    store
        .close()
        .map_err(|e| violation("INV-PREFIX", format!("close: {e}")))?;
    Ok(disk)
}

/// A fresh, independent copy of a disk whose content is all durable.
fn copy(disk: &SimDisk) -> SimDisk {
    disk.crash_images(&CrashOptions::default())
        .first()
        .map(|i| i.disk())
        .unwrap_or_default()
}

/// Opens `disk` twice (a writable open, then another) and checks both see `before` or
/// `after`.
fn judge_recovered(
    disk: &SimDisk,
    before: &Visible,
    after: &Visible,
    committed: &BTreeMap<String, Option<u64>>,
    what: &str,
) -> Result<Visible, Violation> {
    let mut seen = None;
    for session in [3, 4] {
        let store = Store::open(config(disk, Mode::DURABLE, session))
            .map_err(|e| violation("INV-COMPACTION", format!("{what}: open fails: {e}")))?;
        let got = visible(&store);
        let got_committed = checkpoints(&store);
        store
            .close()
            .map_err(|e| violation("INV-COMPACTION", format!("{what}: close: {e}")))?;
        if &got_committed != committed {
            return Err(violation(
                "INV-COMPACTION",
                format!("{what}: consumer checkpoints {got_committed:?}, before {committed:?}"),
            ));
        }
        if &got != before && &got != after {
            return Err(violation(
                "INV-COMPACTION",
                format!(
                    "{what}: {} visible events, neither the {} before nor the {} after",
                    got.len(),
                    before.len(),
                    after.len()
                ),
            ));
        }
        if seen.as_ref().is_some_and(|s| *s != got) {
            return Err(violation(
                "INV-COMPACTION",
                format!("{what}: a second open sees another state"),
            ));
        }
        seen = Some(got);
    }
    Ok(seen.unwrap_or_default())
}

/// Runs `ops`, then a compaction with `mode`'s seeded bug, judged by the oracle, then a crash
/// at every disk operation of that compaction.
pub fn compaction_crash_states(mode: Mode, ops: &[Op], stats: &mut CompactionStats) -> Check {
    stats.workloads += 1;
    let ctx = |v: Violation| v.context(format!("workload {ops:?}"));
    let base = base_disk(mode, ops).map_err(ctx)?;
    let dir = Path::new(DIR);
    let log_before = scan_log(&base, dir).records;
    // The run without a crash: the state after, and how many disk operations it takes.
    let (before, after, committed, ops_count) = {
        let disk = copy(&base);
        let store = Store::open(config(&disk, mode, 2))
            .map_err(|e| ctx(violation("INV-PREFIX", format!("open: {e}"))))?;
        let before = visible(&store);
        let committed = checkpoints(&store);
        let start = disk.op_count();
        store
            .compact(&strategy())
            .map_err(|e| ctx(violation("INV-COMPACTION", format!("compact: {e}"))))?;
        let n = disk.op_count() - start;
        let after = visible(&store);
        store
            .close()
            .map_err(|e| ctx(violation("INV-COMPACTION", format!("close: {e}"))))?;
        let log_after = scan_log(&disk, dir).records;
        judge_result(&before, &after, &log_before, &log_after).map_err(ctx)?;
        judge_recovered(&disk, &after, &after, &committed, "after the compaction").map_err(ctx)?;
        (before, after, committed, n)
    };
    if after == before {
        return Ok(());
    }
    stats.compacted += 1;
    for k in 0..ops_count {
        stats.crash_points += 1;
        for fault in [FaultKind::Persistent, FaultKind::ProcessCrash] {
            let disk = copy(&base);
            let store = Store::open(config(&disk, mode, 2))
                .map_err(|e| ctx(violation("INV-PREFIX", format!("open: {e}"))))?;
            disk.fail_at(disk.op_count() + k, fault);
            let _ = store.compact(&strategy());
            std::mem::forget(store);
            if fault == FaultKind::ProcessCrash {
                stats.states += 1;
                let crashed = disk.process_crash();
                let what = format!("process crash at compaction op {k}");
                power_loss_during_recovery(
                    &crashed, mode, &before, &after, &committed, &what, stats,
                )
                .map_err(ctx)?;
                judge_recovered(&crashed, &before, &after, &committed, &what).map_err(ctx)?;
            } else {
                for image in disk.crash_images(&CrashOptions::default()) {
                    stats.states += 1;
                    judge_recovered(
                        &image.power_loss_disk(),
                        &before,
                        &after,
                        &committed,
                        &format!("power loss at compaction op {k} ({})", image.describe()),
                    )
                    .map_err(ctx)?;
                }
            }
        }
    }
    Ok(())
}

/// An exact copy of `disk` as the next process finds it: every pending file and directory
/// operation kept, still pending (the crash image that keeps everything).
fn page_cache_copy(disk: &SimDisk) -> SimDisk {
    disk.crash_with(&mut |n| n.saturating_sub(1)).disk()
}

/// A power loss while recovery finishes a compaction a process crash cut: `crashed` is the
/// disk the crashed process left (the compacted segment's rename may still be only in the
/// kernel's copy of the directory). Recovery (with `mode`'s seeded bug) runs on a copy to
/// find its syncs; if it removes superseded segments, it runs again frozen just before each
/// of its syncs (a power cut there), and every crash image of that - each unsynced directory
/// operation kept or lost on its own - must recover to exactly the state before or after the
/// compaction. Catches `RecoveryUnlinksBeforeDirSync` (spec mutant
/// `recovery_unlinks_before_dir_sync`): the unlinks kept, the rename lost.
fn power_loss_during_recovery(
    crashed: &SimDisk,
    mode: Mode,
    before: &Visible,
    after: &Visible,
    committed: &BTreeMap<String, Option<u64>>,
    what: &str,
    stats: &mut CompactionStats,
) -> Check {
    if crashed.is_all_durable() {
        return Ok(());
    }
    let probe = page_cache_copy(crashed);
    let start = probe.op_count();
    let store = Store::open(config(&probe, mode, 3))
        .map_err(|e| violation("INV-COMPACTION", format!("{what}: recovery fails: {e}")))?;
    let removed = !store.recovery_report().removed_segments.is_empty();
    let end = probe.op_count();
    drop(store);
    if !removed {
        return Ok(());
    }
    let names = probe.op_names();
    let syncs = (start..end).filter(|&i| {
        names
            .get(usize::try_from(i).unwrap_or(usize::MAX))
            .is_some_and(|n| n.starts_with("sync"))
    });
    for s in syncs {
        let d = page_cache_copy(crashed);
        d.fail_at(s, FaultKind::Persistent);
        if let Ok(store) = Store::open(config(&d, mode, 3)) {
            std::mem::forget(store);
        }
        for image in d.crash_images(&CrashOptions::default()) {
            stats.states += 1;
            stats.recovery_states += 1;
            judge_recovered(
                &image.power_loss_disk(),
                before,
                after,
                committed,
                &format!(
                    "{what}, then a power loss at op {s} of the recovery ({})",
                    image.describe()
                ),
            )?;
        }
    }
    Ok(())
}

/// [`compaction_crash_states`] over every workload in `list`.
pub fn enumerate(mode: Mode, list: &[Vec<Op>], stats: &mut CompactionStats) -> Check {
    for ops in list {
        compaction_crash_states(mode, ops, stats)?;
    }
    Ok(())
}

/// What the simulator's compaction step ([`sim_compaction`]) exercised.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimCompactionStats {
    /// Compactions run to the end (each judged by the oracle, then recovered twice).
    pub runs: u64,
    /// Of them, compactions that removed something visible.
    pub dropped: u64,
    /// Compactions run while a fence was open (and a consumer committed inside it).
    pub open_fence: u64,
    /// Compactions cut by a process crash at one of their disk operations.
    pub process_crashes: u64,
    /// Compactions cut by a power loss at one of their disk operations.
    pub power_losses: u64,
    /// Compactions that met a failed fsync (then a power loss).
    pub failed_fsyncs: u64,
    /// Compactions that returned a definite error without a fault (a retention predicate
    /// over a payload that is not JSON): checked to have changed nothing.
    pub refused: u64,
    /// Steps run on the disk a seed's sessions left after a session in the middle of the
    /// seed (not yet recovered: a crash image), rather than after the last session.
    pub mid_run: u64,
    /// Cut compactions whose recovered disk then took more writes and another crash
    /// (`writes_after`).
    pub writes_after: u64,
}

impl SimCompactionStats {
    /// Adds `o`'s counts.
    pub fn add(&mut self, o: &SimCompactionStats) {
        self.runs += o.runs;
        self.dropped += o.dropped;
        self.open_fence += o.open_fence;
        self.process_crashes += o.process_crashes;
        self.power_losses += o.power_losses;
        self.failed_fsyncs += o.failed_fsyncs;
        self.refused += o.refused;
        self.mid_run += o.mid_run;
        self.writes_after += o.writes_after;
    }
}

fn sim_strategy(kind: u64, entity: &'static str) -> CompactionConfig {
    let keep =
        move |e: &batpak::event::StoredEvent<serde_json::Value>| e.coordinate.entity() != entity;
    CompactionConfig {
        strategy: match kind {
            0 => CompactionStrategy::Merge,
            1 => CompactionStrategy::Retention(Box::new(keep)),
            _ => CompactionStrategy::Tombstone(Box::new(keep)),
        },
        min_segments: 1,
    }
}

/// The simulator's compaction step ([`crate::sim`]), on the disk a seed's sessions left
/// (after the final recovery, or after a session in the middle of the seed: then as the next
/// process finds it, not yet recovered, so the step's open recovers it first): a compaction
/// with a random strategy (merge, retention or tombstone of one entity), judged by the oracle
/// (kept records byte-identical with their sequences, units whole, only the strategy's
/// entities gone, checkpoints unchanged), then the same compaction again with a process
/// crash, a power loss (a random crash image) or a failed fsync (then a power loss) at a
/// random one of its disk operations; every cut compaction recovers, twice, to exactly the
/// state before or after it, then takes more writes and another crash (`writes_after`).
/// One in four steps instead merges while a fence is open, a consumer having committed
/// inside it: the fence must stay hidden and show all its events once committed, also after
/// a reopen. Works on copies, except that the open-fence step runs on `disk` itself.
pub fn sim_compaction(
    disk: &SimDisk,
    rng: &mut crate::workload::SplitMix,
    mutant: crate::Mutant,
    segment_max_bytes: u64,
    stats: &mut SimCompactionStats,
) -> Check {
    let dir = Path::new(DIR);
    let mode = Mode {
        deferred: false,
        mutant,
    };
    let open = |d: &SimDisk, session: u64| {
        Store::open(config(d, mode, session).with_segment_max_bytes(segment_max_bytes))
            .map_err(|e| violation("INV-COMPACTION", format!("open before compaction: {e}")))
    };
    let entity = crate::workload::ENTITIES[rng.below(3) as usize];
    let kind = rng.below(3);
    let may_go = move |e: &str| kind != 0 && e == entity;
    let what = format!(
        "{} of entity {entity}",
        ["merge", "retention", "tombstone"][kind as usize]
    );
    let ctx = |v: Violation| v.context(format!("compaction ({what})"));
    if rng.chance(25) {
        // A merge (the retention predicates see payloads as JSON, which the simulator's raw
        // byte payloads are not): the open fence must not be taken for one a crash left.
        return open_fence_step(disk, &open, &sim_strategy(0, entity), &|_| false, stats)
            .map_err(|v| v.context("compaction (merge across an open fence)"));
    }
    // Copies as the next process finds the disk (a disk the sessions left after a crash,
    // in the middle of a seed, still holds what never became durable).
    let base = page_cache_copy(disk);
    let log_before = scan_log(&base, dir).records;
    // The run without a fault, on a copy: the state after, and its disk operations.
    let (before, after, committed, first, n, syncs) = {
        let d = page_cache_copy(&base);
        let store = open(&d, 1_000).map_err(ctx)?;
        let before = visible(&store);
        let committed = checkpoints(&store);
        let first = d.op_count();
        if let Err(e) = store.compact(&sim_strategy(kind, entity)) {
            // A definite error (today: a payload the retention predicate cannot see as JSON,
            // such as the simulator's raw byte payloads): nothing may have changed.
            stats.refused += 1;
            return refused(store, &d, &before, &committed, &e).map_err(ctx);
        }
        let n = d.op_count() - first;
        let syncs: Vec<u64> = d
            .op_names()
            .iter()
            .enumerate()
            .skip(usize::try_from(first).unwrap_or(usize::MAX))
            .filter(|(_, name)| name.starts_with("sync"))
            .map(|(i, _)| i as u64 - first)
            .collect();
        let after = visible(&store);
        store
            .close()
            .map_err(|e| ctx(violation("INV-COMPACTION", format!("close: {e}"))))?;
        let log_after = scan_log(&d, dir).records;
        judge_dropping(&before, &after, &log_before, &log_after, &may_go).map_err(ctx)?;
        judge_recovered(&d, &after, &after, &committed, "after the compaction").map_err(ctx)?;
        (before, after, committed, first, n, syncs)
    };
    stats.runs += 1;
    if after != before {
        stats.dropped += 1;
    }
    if n == 0 {
        return Ok(());
    }
    // The same compaction (the same open, so the same disk operation indices) cut at one of
    // its disk operations.
    let k = rng.below(n);
    let d = page_cache_copy(&base);
    let store = open(&d, 1_000).map_err(ctx)?;
    let at = d.op_count() + k;
    let fault = if syncs.is_empty() {
        rng.below(2)
    } else {
        rng.below(3)
    };
    let (recovered, how) = match fault {
        0 => {
            d.fail_at(at, FaultKind::ProcessCrash);
            let _ = store.compact(&sim_strategy(kind, entity));
            std::mem::forget(store);
            stats.process_crashes += 1;
            (
                d.process_crash(),
                format!("process crash at compaction op {k}"),
            )
        }
        1 => {
            d.fail_at(at, FaultKind::Persistent);
            let _ = store.compact(&sim_strategy(kind, entity));
            std::mem::forget(store);
            stats.power_losses += 1;
            // One crash image, every file's and directory's outcome drawn from the stream.
            let image = d.crash_with(&mut |n| rng.below(n.max(1) as u64) as usize);
            (
                image.power_loss_disk(),
                format!("power loss at compaction op {k} ({})", image.describe()),
            )
        }
        _ => {
            // A failed fsync at one of the compaction's syncs (pages kept or dropped), then a
            // power loss that keeps only durable bytes.
            let s = syncs[rng.below(syncs.len() as u64) as usize];
            let mut f = batpak::__testing::env::Fault::new(FaultKind::Transient);
            if rng.chance(50) {
                f = f.drop_pages();
            }
            d.fail_with(first + s, f);
            let r = store.compact(&sim_strategy(kind, entity));
            let ok = r.is_ok();
            std::mem::forget(store);
            stats.failed_fsyncs += 1;
            let image = d.crash_with(&mut |_| 0).power_loss_disk();
            if ok {
                // `compact` returned Ok: what it reported done is durable.
                judge_recovered(
                    &image,
                    &after,
                    &after,
                    &committed,
                    "power loss after a compaction that met a failed fsync returned Ok",
                )
                .map_err(ctx)?;
            }
            (
                image,
                format!("failed fsync at compaction op {s}, then a power loss"),
            )
        }
    };
    let seen = judge_recovered(&recovered, &before, &after, &committed, &how).map_err(ctx)?;
    writes_after(&recovered, rng, &open, &seen, stats)
        .map_err(|v| ctx(v.context(format!("writes after the recovery of a {how}"))))
}

/// Crash after compaction, reopen, more writes, crash again: `disk` holds a cut compaction
/// that recovered to `seen` (the state before or after it). A new session appends one to four
/// events (durable receipts), then the process crashes or the power is lost (a random crash
/// image); the next open must show exactly `seen` plus every appended event at its receipt's
/// sequence (INV-COMPACTION for what the compaction left, INV-DURABLE for the receipts).
fn writes_after(
    disk: &SimDisk,
    rng: &mut crate::workload::SplitMix,
    open: &dyn Fn(&SimDisk, u64) -> Result<Store, Violation>,
    seen: &Visible,
    stats: &mut SimCompactionStats,
) -> Check {
    let store = open(disk, 1_003)?;
    let base = visible(&store);
    if &base != seen {
        return Err(violation(
            "INV-COMPACTION",
            format!(
                "a third open shows {} visible events, the two before {}",
                base.len(),
                seen.len()
            ),
        ));
    }
    let mut want = base;
    for i in 0..1 + rng.below(4) {
        let entity = crate::workload::ENTITIES[rng.below(3) as usize];
        let payload = serde_json::json!({ "after_compaction": i });
        let r = store
            .append(
                &crate::workload::coord(entity),
                crate::workload::KIND,
                &payload,
            )
            .map_err(|e| violation("INV-DURABLE", format!("append after the recovery: {e}")))?;
        want.insert(r.sequence, (entity.to_owned(), r.event_id));
    }
    std::mem::forget(store);
    let (crashed, how) = if rng.chance(50) {
        (disk.process_crash(), "a process crash".to_owned())
    } else {
        let image = disk.crash_with(&mut |n| rng.below(n.max(1) as u64) as usize);
        (
            image.power_loss_disk(),
            format!("a power loss ({})", image.describe()),
        )
    };
    stats.writes_after += 1;
    let store = open(&crashed, 1_004)?;
    let got = visible(&store);
    store
        .close()
        .map_err(|e| violation("INV-COMPACTION", format!("close: {e}")))?;
    if got == want {
        return Ok(());
    }
    let lost_old = seen.iter().find(|(s, e)| got.get(s) != Some(e));
    let (inv, what) = match lost_old {
        Some((s, e)) => (
            "INV-COMPACTION",
            format!("{e:?} (seq {s}), visible after the compaction's recovery, is not"),
        ),
        None => (
            "INV-DURABLE",
            format!(
                "{} visible events, {} expected (the recovered state plus the appended \
                 events acknowledged durable)",
                got.len(),
                want.len()
            ),
        ),
    };
    Err(violation(inv, format!("after appends and {how}: {what}")))
}

/// A compaction that returned an error: the store shows what it showed before, and so does
/// every later recovery.
fn refused(
    store: Store,
    disk: &SimDisk,
    before: &Visible,
    committed: &BTreeMap<String, Option<u64>>,
    e: &dyn fmt::Display,
) -> Check {
    if &visible(&store) != before {
        return Err(violation(
            "INV-COMPACTION",
            format!("a compaction that failed ({e}) changed what is visible"),
        ));
    }
    store
        .close()
        .map_err(|e| violation("INV-COMPACTION", format!("close: {e}")))?;
    judge_recovered(disk, before, before, committed, "after a failed compaction").map(|_| ())
}

/// The compaction step with a fence open across it: events in sealed segments before it, a
/// fence whose events roll segments, a consumer committing inside the fence, the compaction,
/// then the commit.
fn open_fence_step(
    disk: &SimDisk,
    open: &dyn Fn(&SimDisk, u64) -> Result<Store, Violation>,
    strategy: &CompactionConfig,
    may_go: &dyn Fn(&str) -> bool,
    stats: &mut SimCompactionStats,
) -> Check {
    use batpak::store::CheckpointId;
    let inv =
        |what: &str, e: &dyn fmt::Display| violation("INV-COMPACTION", format!("{what}: {e}"));
    let store = open(disk, 1_001)?;
    let kind = crate::workload::KIND;
    for i in 0..4 {
        store
            .append(&crate::workload::coord("b"), kind, &"y".repeat(200 + i))
            .map_err(|e| inv("append", &e))?;
    }
    let mut consumer = store
        .consumer(&CheckpointId::new("compaction"), &Region::all())
        .map_err(|e| inv("consumer", &e))?;
    let fence = store
        .begin_visibility_fence()
        .map_err(|e| inv("fence", &e))?;
    let big = "x".repeat(300);
    for i in 0..6 {
        let _ticket = fence
            .submit(&crate::workload::coord("fenced"), kind, &big)
            .map_err(|e| inv("fence submit", &e))?;
        if i == 2 {
            let _ = consumer.poll(3, std::time::Duration::ZERO);
            consumer.commit().map_err(|e| inv("consumer commit", &e))?;
        }
    }
    drop(consumer);
    store.sync().map_err(|e| inv("sync", &e))?;
    let before = visible(&store);
    let log_before = scan_log(disk, Path::new(DIR)).records;
    if let Err(e) = store.compact(strategy) {
        stats.refused += 1;
        fence
            .commit()
            .map_err(|e| inv("commit after a refused compaction", &e))?;
        let mut with_fence = visible(&store);
        with_fence.retain(|_, (e, _)| e != "fenced");
        if with_fence != before {
            return Err(violation(
                "INV-COMPACTION",
                format!("a compaction that failed ({e}) changed what is visible"),
            ));
        }
        return store.close().map(|_| ()).map_err(|e| inv("close", &e));
    }
    stats.runs += 1;
    stats.open_fence += 1;
    let after = visible(&store);
    if after.values().any(|(e, _)| e == "fenced") {
        return Err(violation(
            "INV-FENCE-HIDDEN",
            "an open fence's events are visible after compaction",
        ));
    }
    if after != before {
        stats.dropped += 1;
    }
    let log_after = scan_log(disk, Path::new(DIR)).records;
    judge_dropping(&before, &after, &log_before, &log_after, may_go)?;
    fence
        .commit()
        .map_err(|e| inv("commit after compaction", &e))?;
    let fenced = |s: &Store| {
        s.query(&Region::all())
            .iter()
            .filter(|e| e.coord.entity() == "fenced")
            .count()
    };
    let n = fenced(&store);
    store.close().map_err(|e| inv("close", &e))?;
    let reopened = open(disk, 1_002)?;
    let m = fenced(&reopened);
    reopened.close().map_err(|e| inv("close", &e))?;
    if n != 6 || m != 6 {
        return Err(violation(
            "INV-COMPACTION",
            format!("a fence open across compaction shows {n} of its 6 events once committed, {m} after a reopen"),
        ));
    }
    Ok(())
}
