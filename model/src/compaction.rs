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
//! before or exactly the one after.

use crate::check::{violation, Check, Violation};
use crate::record::{scan_log, LogBody, LogRecord};
use crate::workload::{config, run_workload, Mode, Op, DIR};
use batpak::__testing::env::{CrashOptions, FaultKind, SimDisk};
use batpak::__testing::log::Unit;
use batpak::coordinate::Region;
use batpak::store::{CompactionConfig, CompactionStrategy, Store};
use std::collections::BTreeMap;
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
        if gone && entity != "a" {
            return Err(violation(
                "INV-COMPACTION",
                format!("event {seq} of entity {entity} was dropped; only entity a may go"),
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
) -> Check {
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
    Ok(())
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
                judge_recovered(
                    &disk.process_crash(),
                    &before,
                    &after,
                    &committed,
                    &format!("process crash at compaction op {k}"),
                )
                .map_err(ctx)?;
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

/// [`compaction_crash_states`] over every workload in `list`.
pub fn enumerate(mode: Mode, list: &[Vec<Op>], stats: &mut CompactionStats) -> Check {
    for ops in list {
        compaction_crash_states(mode, ops, stats)?;
    }
    Ok(())
}
