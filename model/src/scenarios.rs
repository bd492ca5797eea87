//! The concurrency scenarios. Each one runs the real store on a fresh [`SimDisk`] and panics
//! (with the invariant's name) when an interleaving breaks a promise. Sizes are kept tiny:
//! the model checkers explore every (loom) or many (shuttle) interleavings of each run.
//!
//! | scenario | threads besides the writer | invariants |
//! | --- | --- | --- |
//! | [`Scenario::FenceCommitVsReader`] | reader | FENCE-HIDDEN, READ-ISOLATION, MONOTONE-VISIBLE |
//! | [`Scenario::FenceEndVsOutbox`] | outbox flusher | NO-RESURRECT, FENCE-HIDDEN, DEFINITE-ERRORS, NO-HANG |
//! | [`Scenario::FenceDropFullChannel`] | drop-cancel helper | DROP, NO-HANG |
//! | [`Scenario::BatchVsReader`] | reader | BATCH-ATOMIC, READ-ISOLATION, MONOTONE-VISIBLE |
//! | [`Scenario::CrashMidFence`] | plain appender | FENCE-CRASH, DURABLE, NO-HANG |
//! | [`Scenario::ShutdownWithTickets`] | submitter | DROP, DURABLE, NO-HANG, NO-RESURRECT |
//! | [`Scenario::TwoProducersBackpressure`] | producer | DEFINITE-ERRORS, NO-HANG, ordering |
//! | [`Scenario::DeliveryVsPublish`] | cursor + subscription reader | CURSOR-ORDER, READ-ISOLATION, FENCE-HIDDEN |
//! | [`Scenario::LossyLagVsWriter`] | lossy subscriber | LOSSY-NOTICE |
//! | [`Scenario::ConsumerCommitVsCrash`] | appender (not under loom) | EXACTLY-ONCE, CHECKPOINT-DURABLE, DURABLE |
//! | [`Scenario::WaitVsWriter`] | waiter | DURABLE (waits decide by the target sequence) |

use crate::harness::{
    close_shared, config, config_with_clock, coord, count, open, visible_entities, StallClock, DIR,
    KIND,
};
use crate::Mutant;
use batpak::__testing::env::{CrashImage, CrashOptions, Disk, FaultKind, SimDisk};
use batpak::__testing::recover_visible;
use batpak::__testing::sync::atomic::{AtomicBool, Ordering};
use batpak::__testing::sync::{thread, Arc, StdArc};
use batpak::store::{AppendTicket, Store, StoreError};
use std::fmt;
use std::path::Path;

/// Compiled for loom (`--cfg loom`): some scenarios do less there (each one's doc says what),
/// so that exhaustive exploration at preemption bound 3 fits the CI budget; std stress and
/// shuttle always run the full scenarios.
const LOOM: bool = cfg!(loom);

/// How many times a reader polls (each poll is one query under the index read lock).
pub const READS: usize = 2;

/// The last I/O operation index (counted from just after `open`) at which
/// [`Scenario::CrashMidFence`] kills the disk. `crash_mid_fence_uses_at_most_the_crash_points`
/// (a std test) checks that the scenario never issues more operations than this.
pub const CRASH_OPS_MAX: u64 = 14;

/// The last I/O operation index (counted from just after the consumer was handed its events)
/// at which [`Scenario::ConsumerCommitVsCrash`] kills the disk;
/// `consumer_commit_vs_crash_uses_at_most_the_crash_points` (a std test) checks it.
pub const CONSUMER_CRASH_OPS_MAX: u64 = 5;

/// How a fence ends in [`Scenario::FenceEndVsOutbox`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceEnd {
    /// `commit()`.
    Commit,
    /// `cancel()`.
    Cancel,
    /// Dropped unfinished (best-effort cancel).
    Drop,
}

/// One concurrency scenario (issue 5, items a-g).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// (a) A fence commits two events while a reader polls queries.
    FenceCommitVsReader,
    /// (b) A fence with a fenced outbox flush ends (commit / cancel / drop) while another
    /// thread flushes an unfenced outbox.
    FenceEndVsOutbox(FenceEnd),
    /// (c) A fence is dropped while the writer queue (capacity 1) is full.
    FenceDropFullChannel,
    /// (d) An atomic batch and a later append while a reader polls.
    BatchVsReader,
    /// (e) The disk dies at I/O operation `k` (after open) while a fence is open or
    /// committing and another thread appends; then recovery of every crash image.
    CrashMidFence(u64),
    /// (f) The last handles of a store are dropped with tickets outstanding and a forgotten
    /// open fence.
    ShutdownWithTickets,
    /// (g) Two producers, `try_submit` and `submit`, on a capacity-1 queue.
    TwoProducersBackpressure,
    /// (h) A cursor and a gap-free subscription poll while an atomic batch, a fence of two
    /// and an append are published.
    DeliveryVsPublish,
    /// (i) A lossy subscriber with room for one notification polls while the writer
    /// publishes three events.
    LossyLagVsWriter,
    /// (j) The disk dies at I/O operation `k` (after the consumer was handed two events) while
    /// the consumer's `commit_with` writes its outputs and checkpoint and another thread
    /// appends; then recovery of every crash image.
    ConsumerCommitVsCrash(u64),
    /// (k) A thread waits for the second event to be durable (then visible) while the main
    /// thread appends two events.
    WaitVsWriter,
}

impl Scenario {
    /// Every scenario, with every crash point of (e).
    pub fn all() -> Vec<Scenario> {
        let mut v = vec![
            Scenario::FenceCommitVsReader,
            Scenario::FenceEndVsOutbox(FenceEnd::Commit),
            Scenario::FenceEndVsOutbox(FenceEnd::Cancel),
            Scenario::FenceEndVsOutbox(FenceEnd::Drop),
            Scenario::FenceDropFullChannel,
            Scenario::BatchVsReader,
        ];
        v.extend((0..=CRASH_OPS_MAX).map(Scenario::CrashMidFence));
        v.push(Scenario::ShutdownWithTickets);
        v.push(Scenario::TwoProducersBackpressure);
        v.push(Scenario::DeliveryVsPublish);
        v.push(Scenario::LossyLagVsWriter);
        v.extend((0..=CONSUMER_CRASH_OPS_MAX).map(Scenario::ConsumerCommitVsCrash));
        v.push(Scenario::WaitVsWriter);
        v
    }

    /// A file-name-safe name; [`Scenario::from_name`] reads it back.
    pub fn name(self) -> String {
        match self {
            Scenario::FenceCommitVsReader => "fence_commit_vs_reader".into(),
            Scenario::FenceEndVsOutbox(end) => {
                format!("fence_{}_vs_outbox", format!("{end:?}").to_lowercase())
            }
            Scenario::FenceDropFullChannel => "fence_drop_full_channel".into(),
            Scenario::BatchVsReader => "batch_vs_reader".into(),
            Scenario::CrashMidFence(k) => format!("crash_mid_fence_k{k}"),
            Scenario::ShutdownWithTickets => "shutdown_with_tickets".into(),
            Scenario::TwoProducersBackpressure => "two_producers_backpressure".into(),
            Scenario::DeliveryVsPublish => "delivery_vs_publish".into(),
            Scenario::LossyLagVsWriter => "lossy_lag_vs_writer".into(),
            Scenario::ConsumerCommitVsCrash(k) => format!("consumer_commit_vs_crash_k{k}"),
            Scenario::WaitVsWriter => "wait_vs_writer".into(),
        }
    }

    /// The scenario named `name` (as [`Scenario::name`] writes it).
    pub fn from_name(name: &str) -> Option<Scenario> {
        if let Some(k) = name.strip_prefix("crash_mid_fence_k") {
            return k.parse().ok().map(Scenario::CrashMidFence);
        }
        if let Some(k) = name.strip_prefix("consumer_commit_vs_crash_k") {
            return k.parse().ok().map(Scenario::ConsumerCommitVsCrash);
        }
        Scenario::all().into_iter().find(|s| s.name() == name)
    }

    /// Runs the scenario once against a store seeded with `mutant`.
    pub fn run(self, mutant: Mutant) {
        match self {
            Scenario::FenceCommitVsReader => fence_commit_vs_reader(mutant),
            Scenario::FenceEndVsOutbox(end) => fence_end_vs_outbox(mutant, end),
            Scenario::FenceDropFullChannel => fence_drop_full_channel(mutant),
            Scenario::BatchVsReader => batch_vs_reader(mutant),
            Scenario::CrashMidFence(k) => {
                crash_mid_fence(mutant, k);
            }
            Scenario::ShutdownWithTickets => shutdown_with_tickets(mutant),
            Scenario::TwoProducersBackpressure => two_producers_backpressure(mutant),
            Scenario::DeliveryVsPublish => delivery_vs_publish(mutant),
            Scenario::LossyLagVsWriter => lossy_lag_vs_writer(mutant),
            Scenario::ConsumerCommitVsCrash(k) => {
                consumer_commit_vs_crash(mutant, k);
            }
            Scenario::WaitVsWriter => wait_vs_writer(mutant),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

fn shared_store(disk: &SimDisk, mutant: Mutant) -> Arc<Store> {
    Arc::new(open(config(disk, mutant)))
}

/// Reader check shared by (a) and (d): every poll sees a prefix of `expected` whose length is
/// one of `allowed` (units are published whole), and never fewer events than before.
fn poll_prefixes(store: &Store, expected: &[&str], allowed: &[usize], gate: Option<&AtomicBool>) {
    let mut last = 0;
    for _ in 0..READS {
        let seen = visible_entities(store);
        let began = gate.is_none_or(|g| g.load(Ordering::SeqCst));
        assert!(
            allowed.contains(&seen.len()),
            "INV-READ-ISOLATION: a reader saw {seen:?}, a cut inside a unit of {expected:?}"
        );
        assert!(
            seen.iter().zip(expected).all(|(a, b)| a == b),
            "INV-READ-ISOLATION: a reader saw {seen:?}, not a prefix of {expected:?}"
        );
        assert!(
            seen.is_empty() || began,
            "INV-FENCE-HIDDEN: a reader saw {seen:?} before the fence's commit began"
        );
        assert!(
            seen.len() >= last,
            "INV-MONOTONE-VISIBLE: a reader saw {} events after {last}",
            seen.len()
        );
        last = seen.len();
    }
}

/// (a) Fence commit vs a reader polling queries: the reader sees none or all of the fence,
/// and nothing before the commit began.
pub fn fence_commit_vs_reader(mutant: Mutant) {
    let disk = SimDisk::new();
    let store = shared_store(&disk, mutant);
    let committing = Arc::new(AtomicBool::new(false));
    let fence = store.begin_visibility_fence().expect("fence begins");
    let t1 = fence
        .submit(&coord("f"), KIND, &1u32)
        .expect("fenced submit");
    let t2 = fence
        .submit(&coord("f"), KIND, &2u32)
        .expect("fenced submit");
    let reader = {
        let store = Arc::clone(&store);
        let committing = Arc::clone(&committing);
        thread::spawn(move || poll_prefixes(&store, &["f", "f"], &[0, 2], Some(&committing)))
    };
    committing.store(true, Ordering::SeqCst);
    fence.commit().expect("INV-FENCE-HIDDEN: commit succeeds");
    assert_eq!(
        visible_entities(&store),
        ["f", "f"],
        "INV-FENCE-HIDDEN: all of the fence is visible once commit returned"
    );
    assert!(
        t1.wait().is_ok() && t2.wait().is_ok(),
        "fenced tickets resolve Ok at commit"
    );
    assert!(reader.join().is_ok(), "reader failed");
    close_shared(store);
}

/// (b) A fence that staged an outbox batch ends (commit / cancel / drop) while another thread
/// flushes an unfenced outbox. The fenced outbox flush returns (no deadlock on the caller's
/// own fence); the fence's events are visible iff it committed; the other outbox is visible
/// iff its flush returned `Ok`, and its error otherwise is definite.
///
/// Under loom the other thread starts its outbox only after the fenced batch is staged, so it
/// races the fence's end (the race this scenario is for) but not its begin and staging, which
/// (a) and (d) cover; at bound 3 that is about 42,000 executions instead of about 2.5 million.
pub fn fence_end_vs_outbox(mutant: Mutant, end: FenceEnd) {
    let disk = SimDisk::new();
    let store = shared_store(&disk, mutant);
    let spawn_other = || {
        let store = Arc::clone(&store);
        thread::spawn(move || {
            let mut ob = store.outbox();
            ob.stage(coord("o"), KIND, &1u32).expect("stage");
            ob.stage(coord("o"), KIND, &2u32).expect("stage");
            ob.flush().map(|r| r.len())
        })
    };
    // Under loom the outbox thread starts only once the fenced batch is staged (see the doc).
    let mut other = (!LOOM).then(spawn_other);
    let fence = store.begin_visibility_fence().expect("fence begins");
    let mut fenced = fence.outbox();
    fenced.stage(coord("f"), KIND, &1u32).expect("stage");
    fenced.stage(coord("f"), KIND, &2u32).expect("stage");
    let staged = fenced
        .flush()
        .expect("INV-NO-HANG: the fenced flush returns once staged");
    assert_eq!(staged.len(), 2);
    drop(fenced);
    assert_eq!(
        count(&visible_entities(&store), "f"),
        0,
        "INV-FENCE-HIDDEN: staged fenced batch visible before commit"
    );
    let other = match other.take() {
        Some(t) => t,
        None => spawn_other(),
    };
    match end {
        FenceEnd::Commit => fence.commit().expect("commit succeeds"),
        FenceEnd::Cancel => fence.cancel().expect("cancel succeeds"),
        FenceEnd::Drop => drop(fence),
    }
    let flushed = other.join().expect("outbox thread");
    // FIFO: the drop-cancel was enqueued before this sync, so it has been processed.
    store.sync().expect("sync");
    let seen = visible_entities(&store);
    let want_f = if end == FenceEnd::Commit { 2 } else { 0 };
    assert_eq!(
        count(&seen, "f"),
        want_f,
        "INV-NO-RESURRECT / INV-FENCE-HIDDEN: fence ended by {end:?}, visible {seen:?}"
    );
    match flushed {
        Ok(n) => assert_eq!(
            (n, count(&seen, "o")),
            (2, 2),
            "acknowledged outbox visible"
        ),
        Err(e) => {
            assert!(e.is_definite(), "INV-DEFINITE-ERRORS: outbox error {e}");
            assert_eq!(
                count(&seen, "o"),
                0,
                "INV-DEFINITE-ERRORS: refused outbox visible"
            );
        }
    }
    close_shared(store);
}

/// (c) Dropping a fence while the writer queue (capacity 1) is full and the writer is held:
/// the drop returns at once (a blocking drop deadlocks here: the writer is only released after
/// the drop returns), the helper thread's send lands, the fence ends cancelled.
pub fn fence_drop_full_channel(mutant: Mutant) {
    let disk = SimDisk::new();
    let clock = StdArc::new(StallClock::new());
    let cfg = config_with_clock(&disk, mutant, clock.clone()).with_writer_channel_capacity(1);
    let store = open(cfg);
    let fence = store.begin_visibility_fence().expect("fence begins");
    clock.arm();
    let t1 = fence
        .submit(&coord("f"), KIND, &1u32)
        .expect("fenced submit");
    // The writer drained its queue and holds in the clock while writing t1's event.
    clock.wait_until_stalled();
    let t2 = fence
        .submit(&coord("f"), KIND, &2u32)
        .expect("fenced submit");
    assert_eq!(store.writer_pressure().queued, 1, "the queue is full");
    drop(fence); // INV-DROP: must not block
    clock.release();
    for t in [t1, t2] {
        assert!(
            matches!(t.wait(), Err(StoreError::VisibilityFenceCancelled)),
            "INV-DROP: the helper's cancel landed and resolved the fenced tickets"
        );
    }
    assert!(visible_entities(&store).is_empty(), "INV-NO-RESURRECT");
    // The old fence is over: a new one can begin (not under loom: see the doc).
    if !LOOM {
        let again = store
            .begin_visibility_fence()
            .expect("INV-DROP: the fence ended");
        again.cancel().expect("cancel");
    }
    if let Err(e) = store.close() {
        panic!("close failed: {e}");
    }
}

/// (d) An atomic batch over two entities, then a plain append, while a reader polls: every
/// poll sees `[]`, `[b1, b2]` or `[b1, b2, p]`.
pub fn batch_vs_reader(mutant: Mutant) {
    let disk = SimDisk::new();
    let store = shared_store(&disk, mutant);
    let reader = {
        let store = Arc::clone(&store);
        thread::spawn(move || poll_prefixes(&store, &["b1", "b2", "p"], &[0, 2, 3], None))
    };
    let items = ["b1", "b2"]
        .iter()
        .map(|e| {
            batpak::store::BatchAppendItem::new(
                coord(e),
                KIND,
                &0u32,
                batpak::store::AppendOptions::default(),
                batpak::store::CausationRef::None,
            )
            .expect("item")
        })
        .collect();
    store.append_batch(items).expect("batch");
    store.append(&coord("p"), KIND, &0u32).expect("append");
    assert!(reader.join().is_ok(), "reader failed");
    assert_eq!(visible_entities(&store), ["b1", "b2", "p"]);
    close_shared(store);
}

/// A batch item of [`KIND`] at `entity`.
fn item(entity: &str) -> batpak::store::BatchAppendItem {
    batpak::store::BatchAppendItem::new(
        coord(entity),
        KIND,
        &0u32,
        batpak::store::AppendOptions::default(),
        batpak::store::CausationRef::None,
    )
    .expect("item")
}

/// (h) A cursor and a gap-free subscription, on another thread, poll while an atomic batch
/// of two, then a fence of two (begin, two fenced submits, commit) and then an append are
/// published: after every poll each has delivered a prefix of the events in sequence order,
/// each once, never half the batch or half the fence (INV-CURSOR-ORDER, INV-READ-ISOLATION,
/// INV-FENCE-HIDDEN), and in the end everything.
///
/// Under loom the fence is left out (the batch and the append only), to hold the CI budget
/// (with it the count at bound 3 was not measured); std stress and shuttle run the fence.
pub fn delivery_vs_publish(mutant: Mutant) {
    let disk = SimDisk::new();
    let store = shared_store(&disk, mutant);
    let region = batpak::region::Region::all();
    let mut cursor = store.cursor_guaranteed(&region);
    let sub = store.subscribe_from(&region, None);
    let (expected, allowed): (&[&str], &[usize]) = if LOOM {
        (&["b1", "b2", "p"], &[0, 2, 3])
    } else {
        (&["b1", "b2", "f1", "f2", "p"], &[0, 2, 4, 5])
    };
    let check = move |what: &str, got: &[String]| {
        assert!(
            allowed.contains(&got.len()) && got.iter().zip(expected).all(|(a, b)| a == b),
            "INV-CURSOR-ORDER / INV-READ-ISOLATION: the {what} delivered {got:?}, not a whole-unit prefix of {expected:?}"
        );
    };
    let reader = thread::spawn(move || {
        let (mut by_cursor, mut by_sub) = (Vec::new(), Vec::new());
        for _ in 0..READS {
            by_cursor.extend(
                cursor
                    .poll_batch(8)
                    .into_iter()
                    .map(|e| e.coord.entity().to_owned()),
            );
            check("cursor", &by_cursor);
            while let Some(n) = sub.try_recv() {
                by_sub.push(n.coord.entity().to_owned());
            }
            check("subscription", &by_sub);
        }
        (cursor, sub, by_cursor, by_sub)
    });
    store
        .append_batch(vec![item("b1"), item("b2")])
        .expect("batch");
    if !LOOM {
        let fence = store.begin_visibility_fence().expect("fence");
        let tickets: Vec<_> = ["f1", "f2"]
            .iter()
            .map(|e| fence.submit(&coord(e), KIND, &0u32).expect("fenced submit"))
            .collect();
        fence.commit().expect("commit");
        for t in tickets {
            t.wait().expect("fenced ticket");
        }
    }
    store.append(&coord("p"), KIND, &0u32).expect("append");
    let Ok((mut cursor, sub, mut by_cursor, mut by_sub)) = reader.join() else {
        panic!("reader failed");
    };
    by_cursor.extend(
        cursor
            .poll_batch(8)
            .into_iter()
            .map(|e| e.coord.entity().to_owned()),
    );
    while let Some(n) = sub.try_recv() {
        by_sub.push(n.coord.entity().to_owned());
    }
    assert_eq!(
        by_cursor, expected,
        "INV-CURSOR-ORDER: the cursor missed events"
    );
    assert_eq!(
        by_sub, expected,
        "INV-CURSOR-ORDER: the subscription missed events"
    );
    drop(sub);
    close_shared(store);
}

/// (i) A lossy subscriber with a broadcast capacity of one polls (`try_recv`) on another
/// thread while the main thread appends three events (two under loom). It must never be disconnected: in the
/// end it holds the last event, what it received is in sequence order, and what it received
/// plus what it reports missed is all three (INV-LOSSY-NOTICE). After close, `recv()` is
/// `None` (the store closed).
///
/// Under loom the writer publishes two events and the reader makes one pass (bound 3 with
/// three events and two passes is 720,239 executions, 7.5 minutes); two events are still one
/// more than the subscriber has room for. Std stress and shuttle run three.
pub fn lossy_lag_vs_writer(mutant: Mutant) {
    let disk = SimDisk::new();
    let store = Arc::new(open(config(&disk, mutant).with_broadcast_capacity(1)));
    let sub = store.subscribe_lossy(&batpak::region::Region::all());
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..if LOOM { 1 } else { READS } {
            while let Some(n) = sub.try_recv() {
                got.push(n.sequence);
            }
        }
        (sub, got)
    });
    let events: &[&str] = if LOOM {
        &["e0", "e1"]
    } else {
        &["e0", "e1", "e2"]
    };
    for e in events {
        store.append(&coord(e), KIND, &0u32).expect("append");
    }
    let total = events.len() as u64;
    let Ok((sub, mut got)) = reader.join() else {
        panic!("reader failed");
    };
    while let Some(n) = sub.try_recv() {
        got.push(n.sequence);
    }
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "INV-LOSSY-NOTICE: received {got:?}, not in sequence order"
    );
    assert_eq!(
        got.last(),
        Some(&(total - 1)),
        "INV-LOSSY-NOTICE: a lagging subscriber ended with {got:?} (missed {}): disconnected?",
        sub.missed()
    );
    assert_eq!(
        got.len() as u64 + sub.missed(),
        total,
        "INV-LOSSY-NOTICE: received {got:?} and reports {} missed, of {total}",
        sub.missed()
    );
    close_shared(store);
    assert!(
        sub.recv().is_none(),
        "INV-LOSSY-NOTICE: a notification after close"
    );
}

/// (j) A durable consumer was handed two events; the disk dies (persistent fault) at I/O
/// operation `k` from there while the consumer's `commit_with` writes one output per event
/// with its checkpoint and another thread appends. Every call returns. Then every crash
/// image: the outputs are visible in none or both (a batch), and exactly when the log's
/// checkpoint records (`record::expected_checkpoints` of what recovery keeps) say the
/// consumer moved; both if `commit_with` returned `Ok`; the append if it was acknowledged
/// (INV-EXACTLY-ONCE, INV-CHECKPOINT-DURABLE, INV-DURABLE). Images are recovered without a
/// writer thread ([`recover_visible`]). Returns the I/O operations issued after the
/// consumer's poll (for the std test of [`CONSUMER_CRASH_OPS_MAX`]).
pub fn consumer_commit_vs_crash(mutant: Mutant, k: u64) -> u64 {
    use crate::record::{expected_checkpoints, scan_log};
    let disk = SimDisk::new();
    let store = shared_store(&disk, mutant);
    for e in ["s1", "s2"] {
        store.append(&coord(e), KIND, &0u32).expect("source");
    }
    let id = batpak::store::CheckpointId::new("c");
    let region = batpak::region::Region::scope(crate::harness::SCOPE);
    let mut consumer = store.consumer(&id, &region).expect("consumer");
    let handed = consumer.poll(4, std::time::Duration::ZERO);
    assert_eq!(handed.len(), 2, "the consumer was handed {handed:?}");
    let base = disk.op_count();
    disk.fail_at(base.saturating_add(k), FaultKind::Persistent);
    // Under loom the commit races the writer thread and the fault only (with the appending
    // thread too, bound 3 is 75,000 executions and 70 s per crash point).
    let appender = (!LOOM).then(|| {
        let store = Arc::clone(&store);
        thread::spawn(move || store.append(&coord("p"), KIND, &0u32).map(|_| ()))
    });
    let outputs = handed
        .iter()
        .map(|e| {
            batpak::store::BatchAppendItem::new(
                batpak::coordinate::Coordinate::new(format!("r{}", e.global_sequence), "out")
                    .expect("output coordinate"),
                KIND,
                &0u32,
                batpak::store::AppendOptions::default(),
                batpak::store::CausationRef::None,
            )
            .expect("output")
        })
        .collect();
    let committed = consumer.commit_with(outputs).map(|_| ());
    let plain = appender.map(|a| a.join().expect("appender"));
    drop(consumer);
    let _ = Arc::try_unwrap(store).map(Store::close);
    let ops = disk
        .op_count()
        .saturating_sub(base)
        .min(k.saturating_add(1));
    for image in disk.crash_images(&CrashOptions::default()) {
        let d = image.disk();
        let entries = match recover_visible(&config(&d, Mutant::None)) {
            Ok(v) => v,
            Err(e) => panic!("crash point {k}: recovery of {image:?} failed: {e}"),
        };
        let outs = entries.iter().filter(|e| e.coord.scope() == "out").count();
        let log = scan_log(&d, Path::new(DIR));
        let moved = expected_checkpoints(&log.records).get("c") == Some(&Some(1));
        assert!(
            (outs == 2 && moved) || (outs == 0 && !moved),
            "INV-EXACTLY-ONCE: crash point {k}, {image:?}: {outs} of 2 outputs visible, \
             checkpoint moved: {moved} (commit_with answered {committed:?})"
        );
        if committed.is_ok() {
            assert!(
                moved,
                "INV-CHECKPOINT-DURABLE: crash point {k}, {image:?}: commit_with returned Ok, \
                 the checkpoint did not survive"
            );
        }
        if plain.as_ref().is_some_and(|p| p.is_ok()) {
            assert!(
                entries.iter().any(|e| e.coord.entity() == "p"),
                "INV-DURABLE: crash point {k}, {image:?}: an acknowledged append is lost"
            );
        }
    }
    ops
}

/// (k) A waiter thread calls `wait_for_durable` and then `wait_for_visible` on the second
/// event's point (sequence 1) while the main thread appends two events with `submit`
/// (answered later). Whenever a wait returns `Ok`, the event is on the platter (read from
/// the disk, not from the store: the crash image that loses everything pending) and, for the
/// visible wait, readable; neither wait returns before (INV-DURABLE: waits decide by the
/// target's sequence, inclusive).
pub fn wait_vs_writer(mutant: Mutant) {
    use crate::conformance::WrittenLog;
    let disk = SimDisk::new();
    let store = shared_store(&disk, mutant);
    let waiter = {
        let store = Arc::clone(&store);
        let disk = disk.clone();
        thread::spawn(move || {
            let point = batpak::store::HlcPoint {
                wall_ms: 0,
                global_sequence: 1,
            };
            let timeout = std::time::Duration::from_secs(30);
            store
                .wait_for_durable(point, timeout)
                .expect("wait_for_durable");
            let written = WrittenLog::read(&disk, Path::new(DIR));
            let on_platter = written.durable_len(&disk, Path::new(DIR));
            assert!(
                on_platter >= 2,
                "INV-DURABLE: wait_for_durable(sequence 1) returned with {on_platter} records \
                 on the platter"
            );
            store
                .wait_for_visible(point, timeout)
                .expect("wait_for_visible");
            let seen = visible_entities(&store);
            assert!(
                seen.len() >= 2,
                "INV-DURABLE: wait_for_visible(sequence 1) returned, visible {seen:?}"
            );
        })
    };
    let tickets: Vec<_> = ["w0", "w1"]
        .iter()
        .map(|e| store.submit(&coord(e), KIND, &0u32).expect("submit"))
        .collect();
    for t in tickets {
        t.wait().expect("append");
    }
    assert!(waiter.join().is_ok(), "waiter failed");
    close_shared(store);
}

/// What [`crash_mid_fence`] observed (for the std test that checks [`CRASH_OPS_MAX`]).
#[derive(Debug, Clone, Copy)]
pub struct CrashRun {
    /// I/O operations issued after `open`, up to and including the one that met the fault
    /// (the failing cleanup the writer attempts after it does not count: every crash point it
    /// could reach is after the fault).
    pub ops_after_open: u64,
    /// Crash images recovered.
    pub images: usize,
}

/// (e) The disk dies (persistent fault) at operation `k` after open while one thread runs a
/// fence (begin, two fenced submits, commit) and another appends. Every call returns (no
/// hang). Then every crash image of the disk (default [`CrashOptions`]: each file's unsynced
/// operations kept as a prefix, torn or replaced by garbage; each directory's unsynced entry
/// operations as any subset) is recovered: the fence is visible in none or both of its events,
/// in both if `commit()` returned `Ok`, in neither if `commit()` was never reached or refused
/// definitely; an acknowledged append is visible, a definitely refused one is not. The
/// process-crash image (every write kept in the page cache, unsynced ones still unsynced) is
/// recovered by a full [`Store::open`] (a second store on the crashed disk must open and shut
/// down without hanging), and every power loss after that reopen must keep what it reports
/// durable; every image is recovered by [`recover_visible`], which runs the same recovery
/// without a writer thread (under loom a writer thread per image would multiply the
/// interleavings).
///
/// Under loom the scenario is smaller, so that every crash point fits in the CI budget at
/// preemption bound 3 (about 224,000 executions per crash point with only the first change
/// below, about 100,000 with all three; the full scenario is about 1.5 million per point):
/// - the appending thread starts after the two fenced submits, just before `commit()`: its
///   event still races the commit and the crash and can land between the fenced events and
///   the commit record, but not before the fence began;
/// - that thread only submits, and the main thread waits for its ticket after the join;
/// - the process-crash image is not opened as a full store (a second writer thread); it is
///   checked by [`recover_visible`] like every other image. Shutdown of a store that met a disk fault
///   is still explored (the crashed store's close), and std stress and shuttle keep the open.
pub fn crash_mid_fence(mutant: Mutant, k: u64) -> CrashRun {
    let disk = SimDisk::new();
    let store = shared_store(&disk, mutant);
    let base = disk.op_count();
    disk.fail_at(base.saturating_add(k), FaultKind::Persistent);
    // The plain append: under loom the thread only submits (main waits for the ticket after
    // the join), and starts just before the commit (see the doc).
    let spawn_appender = || {
        let store = Arc::clone(&store);
        thread::spawn(move || {
            if LOOM {
                PlainAppend::Submitted(store.submit(&coord("p"), KIND, &0u32))
            } else {
                PlainAppend::Answered(store.append(&coord("p"), KIND, &0u32).map(|_| ()))
            }
        })
    };
    let mut appender = (!LOOM).then(spawn_appender);
    let mut commit: Option<Result<(), StoreError>> = None;
    let mut tickets = Vec::new();
    if let Ok(fence) = store.begin_visibility_fence() {
        for i in 0..2u32 {
            if let Ok(t) = fence.submit(&coord("f"), KIND, &i) {
                tickets.push(t);
            }
        }
        if appender.is_none() {
            appender = Some(spawn_appender());
        }
        commit = Some(fence.commit());
    }
    let fenced: Vec<_> = tickets.into_iter().map(|t| t.wait()).collect();
    let appender = match appender {
        Some(t) => t,
        None => spawn_appender(),
    };
    let plain = match appender.join().expect("appender") {
        PlainAppend::Answered(r) => r,
        PlainAppend::Submitted(t) => t.and_then(|t| t.wait()).map(|_| ()),
    };
    let _ = Arc::try_unwrap(store).map(Store::close);
    let ops_after_open = disk
        .op_count()
        .saturating_sub(base)
        .min(k.saturating_add(1));
    let outcome = CrashOutcome { k, commit, plain };
    for r in &fenced {
        assert!(
            r.is_ok() == outcome.committed(),
            "a fenced ticket answered {r:?} but commit answered {:?}",
            outcome.commit
        );
    }
    // The process crash (the page cache as it is: every write kept, the unsynced ones still
    // unsynced), opened as a store (not under loom: see the doc); then a power loss: it must
    // keep everything the reopened store reports durable.
    if !LOOM {
        let image = disk.crash_with(&mut |n| n.saturating_sub(1));
        let reopened = image.disk();
        let recovered = open(config(&reopened, Mutant::None));
        let seen = visible_entities(&recovered);
        outcome.check(&seen, &image);
        let f = recovered.frontier();
        assert_eq!(
            f.durable, f.written,
            "the reopened store reports what it recovered durable"
        );
        for lost in reopened.crash_images(&CrashOptions::default()) {
            match recover_visible(&config(&lost.power_loss_disk(), Mutant::None)) {
                Ok(entries) => {
                    let after: Vec<String> = entries
                        .iter()
                        .map(|e| e.coord.entity().to_owned())
                        .collect();
                    assert_eq!(
                        after, seen,
                        "INV-DURABLE: a power loss after the reopen lost what it reported \
                         durable (crash point {k}, {image:?}, then {lost:?})"
                    );
                }
                Err(e) => panic!(
                    "INV-DURABLE: crash point {k}: after the reopen of {image:?} a power loss \
                     {lost:?} leaves a log that does not recover: {e}"
                ),
            }
        }
        if let Err(e) = recovered.close() {
            panic!("close after recovery failed: {e}");
        }
    }
    // Every image a crash may leave, recovered without a writer thread.
    let images = disk.crash_images(&CrashOptions::default());
    for image in &images {
        let cfg = config(&image.disk(), Mutant::None);
        match recover_visible(&cfg) {
            Ok(entries) => {
                let seen: Vec<String> = entries
                    .iter()
                    .map(|e| e.coord.entity().to_owned())
                    .collect();
                outcome.check(&seen, image);
            }
            Err(e) => panic!("crash point {k}: recovery of {image:?} failed: {e}"),
        }
    }
    CrashRun {
        ops_after_open,
        images: images.len(),
    }
}

/// How the plain append of [`crash_mid_fence`] went, from its thread.
enum PlainAppend {
    /// `append` returned.
    Answered(Result<(), StoreError>),
    /// `submit` returned (loom): the ticket is waited for after the join.
    Submitted(Result<AppendTicket, StoreError>),
}

/// What the concurrent part of [`crash_mid_fence`] answered, checked against each recovered
/// crash image.
struct CrashOutcome {
    k: u64,
    /// `None`: the fence never began (so `commit()` was never called).
    commit: Option<Result<(), StoreError>>,
    plain: Result<(), StoreError>,
}

impl CrashOutcome {
    fn committed(&self) -> bool {
        matches!(self.commit, Some(Ok(())))
    }

    /// The promises for one recovered image (`seen`: visible entities in sequence order).
    fn check(&self, seen: &[String], image: &CrashImage) {
        let (k, commit) = (self.k, &self.commit);
        let f = count(seen, "f");
        assert!(
            f == 0 || f == 2,
            "INV-FENCE-CRASH: {f} of 2 fenced events visible (crash point {k}, {image:?})"
        );
        if self.committed() {
            assert_eq!(
                f, 2,
                "INV-FENCE-CRASH: commit returned Ok, fence hidden after crash (crash point \
                 {k}, {image:?})"
            );
        }
        let definitely_not = match commit {
            None => true,
            Some(Err(e)) => e.is_definite(),
            Some(Ok(())) => false,
        };
        if definitely_not {
            assert_eq!(
                f, 0,
                "INV-FENCE-CRASH: commit answered {commit:?}, fence visible after recovery \
                 (crash point {k}, {image:?})"
            );
        }
        match &self.plain {
            Ok(()) => assert_eq!(
                count(seen, "p"),
                1,
                "INV-DURABLE: acknowledged append lost (crash point {k}, {image:?})"
            ),
            Err(e) if e.is_definite() => assert_eq!(
                count(seen, "p"),
                0,
                "INV-DEFINITE-ERRORS: refused append ({e}) visible (crash point {k}, {image:?})"
            ),
            Err(_) => {}
        }
    }
}

/// (f) Dropping the last store handles with tickets outstanding: a submitter thread drops its
/// handle right after submitting, the main thread forgets an open fence with a fenced ticket
/// and drops its handle; whichever drop is last shuts the writer down. Every ticket answers;
/// acknowledged appends are durable (the durable crash image has them); the fence is
/// auto-cancelled and never visible; the directory lock is released.
///
/// Under loom the submitter submits one event instead of two and the durable image is checked
/// by [`recover_visible`] instead of a full store (whose writer thread only added
/// interleavings after the race): about 272,000 executions at bound 3 instead of 965,000.
pub fn shutdown_with_tickets(mutant: Mutant) {
    let disk = SimDisk::new();
    let store = shared_store(&disk, mutant);
    let submitter = {
        let store = Arc::clone(&store);
        thread::spawn(move || {
            let n = if LOOM { 1 } else { 2 };
            let tickets: Vec<_> = (0..n)
                .map(|i| store.submit(&coord("a"), KIND, &i).expect("submit"))
                .collect();
            drop(store);
            tickets.into_iter().map(|t| t.wait()).collect::<Vec<_>>()
        })
    };
    let fence = store.begin_visibility_fence().expect("fence begins");
    let fenced = fence
        .submit(&coord("f"), KIND, &0u32)
        .expect("fenced submit");
    fence.abandon(); // left open: shutdown must cancel it
    drop(store);
    let plain = submitter.join().expect("submitter");
    assert!(
        matches!(fenced.wait(), Err(StoreError::VisibilityFenceCancelled)),
        "INV-DROP: shutdown auto-cancels the open fence"
    );
    let lock = disk.lock(Path::new(DIR));
    assert!(lock.is_ok(), "INV-DROP: the directory lock was released");
    drop(lock);
    let image = disk.crash_with(&mut |_| 0).disk();
    // Under loom the durable image is recovered without a writer thread (see the doc).
    let recovered = (!LOOM).then(|| open(config(&image, Mutant::None)));
    let seen = match &recovered {
        Some(store) => visible_entities(store),
        None => match recover_visible(&config(&image, Mutant::None)) {
            Ok(entries) => entries
                .iter()
                .map(|e| e.coord.entity().to_owned())
                .collect(),
            Err(e) => panic!("recovery of the durable image failed: {e}"),
        },
    };
    let acked = plain.iter().filter(|r| r.is_ok()).count();
    for r in &plain {
        if let Err(e) = r {
            assert!(e.is_definite(), "INV-DEFINITE-ERRORS: {e}");
        }
    }
    assert_eq!(
        count(&seen, "a"),
        acked,
        "INV-DROP / INV-DURABLE: acknowledged {acked} appends, durable image has {seen:?}"
    );
    assert_eq!(
        count(&seen, "f"),
        0,
        "INV-NO-RESURRECT: auto-cancelled fence visible"
    );
    if let Some(recovered) = recovered {
        if let Err(e) = recovered.close() {
            panic!("close after recovery failed: {e}");
        }
    }
}

/// (g) Two producers on a capacity-1 queue (backpressure threshold 1): one uses `try_submit`
/// (refusals are definite `Backpressure`), the other blocking `submit`. Every accepted write
/// is acknowledged and visible exactly once, in each producer's order; refused ones never.
pub fn two_producers_backpressure(mutant: Mutant) {
    let disk = SimDisk::new();
    let store = Arc::new(open(config(&disk, mutant).with_writer_channel_capacity(1)));
    let trier = {
        let store = Arc::clone(&store);
        thread::spawn(move || {
            let mut accepted = Vec::new();
            for i in 0..2u32 {
                match store.try_submit(&coord("a"), KIND, &i) {
                    Ok(t) => accepted.push(t),
                    Err(e) => assert!(
                        e.is_retryable() && e.is_definite(),
                        "try_submit refused with {e}"
                    ),
                }
            }
            accepted
                .into_iter()
                .map(|t| t.wait().expect("accepted try_submit acknowledged").sequence)
                .collect::<Vec<_>>()
        })
    };
    let mine: Vec<u64> = (0..2u32)
        .map(|i| store.submit(&coord("b"), KIND, &i).expect("submit"))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.wait().expect("submit acknowledged").sequence)
        .collect();
    let theirs = trier.join().expect("trier");
    assert!(mine.windows(2).all(|w| w[0] < w[1]), "producer order kept");
    assert!(
        theirs.windows(2).all(|w| w[0] < w[1]),
        "producer order kept"
    );
    let seen = visible_entities(&store);
    assert_eq!(count(&seen, "b"), 2);
    assert_eq!(
        count(&seen, "a"),
        theirs.len(),
        "INV-DEFINITE-ERRORS: {} try_submits accepted, {seen:?} visible",
        theirs.len()
    );
    close_shared(store);
}
