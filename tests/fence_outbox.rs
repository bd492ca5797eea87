//! Visibility fences and the outbox against real files: hidden until commit, cancel and drop
//! never publish (INV-FENCE-HIDDEN, INV-NO-RESURRECT), one fence at a time, unfenced writes
//! refused while a fence is open, a fenced outbox flush that does not deadlock, the entity
//! chain across fences (INV-CHAIN), shutdown auto-cancel, and a non-blocking fence drop under
//! a full writer queue (INV-DROP).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How a test configures the store's seeded bug: [`real`] for the real store; the mutant
/// witnesses (mutant build only, `--cfg batpak_mutant`) seed one with `with_mutant`.
type Seed = fn(StoreConfig) -> StoreConfig;

/// The real store: no seeded bug.
fn real(c: StoreConfig) -> StoreConfig {
    c
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x1, type_id = 1)]
struct Step {
    label: String,
}

const STEP: EventKind = Step::KIND;

fn step(label: &str) -> Step {
    Step {
        label: label.into(),
    }
}

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "fence").unwrap()
}

fn open(dir: &Path) -> Store {
    Store::open(StoreConfig::new(dir).with_lifecycle_events(false)).unwrap()
}

fn labels(store: &Store, entries: &[IndexEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            store
                .get_typed::<Step>(e.event_id)
                .unwrap()
                .event
                .payload
                .label
        })
        .collect()
}

fn all_labels(store: &Store) -> Vec<String> {
    labels(store, &store.query(&Region::all()))
}

/// Aborts the whole test process if `f` does not finish in time (a deadlock would otherwise
/// hang the test run forever).
fn within<T>(limit: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let what = what.to_string();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
            eprintln!("DEADLOCK: {what} did not finish within {limit:?}");
            std::process::exit(101);
        }
    });
    let out = f();
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    out
}

#[test]
fn fenced_submits_stay_hidden_until_commit_and_then_appear_all_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let before = store.append_typed(&coord("e"), &step("before")).unwrap();
    let fence = store.begin_visibility_fence().unwrap();
    let t1 = fence.submit_typed(&coord("e"), &step("f1")).unwrap();
    let t2 = fence.submit(&coord("g"), STEP, &step("f2")).unwrap();
    let t3 = fence
        .submit_reaction_typed(&coord("g"), &step("f3"), before.event_id, before.event_id)
        .unwrap();
    // The fenced writes are written and durable, but hidden and unresolved.
    store.sync().unwrap();
    assert!(t1.try_check().is_none());
    assert!(t3.try_check().is_none());
    assert_eq!(all_labels(&store), vec!["before"]);
    assert_eq!(store.stream("e").len(), 1);
    assert!(store.stream("g").is_empty());
    assert!(store.by_fact(STEP).len() == 1);
    assert!(store.effects(before.event_id).is_empty());
    assert_eq!(store.stats().event_count, 1);

    fence.commit().unwrap();
    let r1 = t1.wait().unwrap();
    let r2 = t2.wait().unwrap();
    let r3 = t3.wait().unwrap();
    assert_eq!(all_labels(&store), vec!["before", "f1", "f2", "f3"]);
    assert_eq!(r1.clock, 2);
    assert_eq!(r2.clock, 1);
    assert_eq!(r3.clock, 2);
    assert!(r1.sequence > before.sequence && r2.sequence > r1.sequence);
    assert_eq!(
        store.get_typed::<Step>(r2.event_id).unwrap().event.payload,
        step("f2")
    );
    assert_eq!(
        store
            .effects(before.event_id)
            .iter()
            .map(|e| e.event_id)
            .collect::<Vec<_>>(),
        vec![r3.event_id]
    );
    store.close().unwrap();

    // Reopen after commit shows the fence's events with the same sequences.
    let store = open(tmp.path());
    assert_eq!(all_labels(&store), vec!["before", "f1", "f2", "f3"]);
    for r in [r1, r2, r3] {
        assert_eq!(store.entry(r.event_id).unwrap().global_sequence, r.sequence);
    }
    store.close().unwrap();
}

#[test]
fn a_cancelled_fence_resolves_its_tickets_as_cancelled_and_never_publishes_even_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.append_typed(&coord("e"), &step("before")).unwrap();
    let fence = store.begin_visibility_fence().unwrap();
    let t1 = fence
        .submit_typed(&coord("e"), &step("cancelled1"))
        .unwrap();
    let t2 = fence
        .submit_typed(&coord("h"), &step("cancelled2"))
        .unwrap();
    let mut ob = fence.outbox();
    ob.stage_typed(coord("h"), &step("cancelled3")).unwrap();
    let staged = ob.flush().unwrap();
    fence.cancel().unwrap();
    assert!(matches!(
        t1.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    assert!(matches!(
        t2.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    assert!(matches!(
        store.get(staged[0].event_id),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(all_labels(&store), vec!["before"]);
    // The store accepts unfenced writes again.
    store.append_typed(&coord("e"), &step("after")).unwrap();
    assert_eq!(all_labels(&store), vec!["before", "after"]);
    store.close().unwrap();

    for _ in 0..2 {
        let store = open(tmp.path());
        assert_eq!(all_labels(&store), vec!["before", "after"]);
        assert!(store.stream("h").is_empty());
        assert!(matches!(
            store.get(staged[0].event_id),
            Err(StoreError::NotFound(_))
        ));
        store.close().unwrap();
    }
}

#[test]
fn dropping_an_unfinished_fence_cancels_it_and_a_new_fence_can_begin() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let t = {
        let fence = store.begin_visibility_fence().unwrap();
        fence.submit_typed(&coord("d"), &step("dropped")).unwrap()
        // fence dropped here without commit or cancel
    };
    assert!(matches!(
        t.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    let fence = store.begin_visibility_fence().unwrap();
    let t2 = fence.submit_typed(&coord("d"), &step("kept")).unwrap();
    fence.commit().unwrap();
    assert_eq!(t2.wait().unwrap().clock, 2);
    assert_eq!(all_labels(&store), vec!["kept"]);
    store.close().unwrap();
    let store = open(tmp.path());
    assert_eq!(all_labels(&store), vec!["kept"]);
    store.close().unwrap();
}

#[test]
fn a_second_fence_while_one_is_open_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let fence = store.begin_visibility_fence().unwrap();
    assert!(matches!(
        store.begin_visibility_fence(),
        Err(StoreError::VisibilityFenceActive)
    ));
    // The refusal left the first fence intact.
    let t = fence.submit_typed(&coord("a"), &step("one")).unwrap();
    fence.commit().unwrap();
    t.wait().unwrap();
    let again = store.begin_visibility_fence().unwrap();
    again.cancel().unwrap();
    assert_eq!(all_labels(&store), vec!["one"]);
    store.close().unwrap();
}

#[test]
fn unfenced_writes_are_refused_while_a_fence_is_open_and_allowed_again_after_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let c = coord("u");
    let fence = store.begin_visibility_fence().unwrap();
    assert!(matches!(
        store.append_typed(&c, &step("a")),
        Err(StoreError::VisibilityFenceActive)
    ));
    assert!(matches!(
        store.submit_typed(&c, &step("s")).unwrap().wait(),
        Err(StoreError::VisibilityFenceActive)
    ));
    let batch = vec![BatchAppendItem::typed(
        c.clone(),
        &step("b"),
        AppendOptions::default(),
        CausationRef::None,
    )
    .unwrap()];
    let err = store.append_batch(batch).unwrap_err();
    assert!(
        matches!(err, StoreError::VisibilityFenceActive)
            || matches!(
                &err,
                StoreError::BatchFailed { source, .. }
                    if matches!(**source, StoreError::VisibilityFenceActive)
            ),
        "unexpected {err:?}"
    );
    assert!(err.is_definite());
    let mut ob = store.outbox();
    ob.stage_typed(&c, &step("o")).unwrap();
    assert!(ob.flush().is_err());
    assert!(store.stream("u").is_empty());

    let t = fence.submit_typed(&c, &step("fenced")).unwrap();
    fence.commit().unwrap();
    // The refused writes consumed nothing: the fenced event is the entity's first.
    assert_eq!(t.wait().unwrap().clock, 1);
    store.append_typed(&c, &step("a")).unwrap();
    store.submit_typed(&c, &step("s")).unwrap().wait().unwrap();
    store
        .append_batch(vec![BatchAppendItem::typed(
            c.clone(),
            &step("b"),
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap()])
        .unwrap();
    assert_eq!(
        labels(&store, &store.stream("u")),
        vec!["fenced", "a", "s", "b"]
    );
    store.close().unwrap();
    let store = open(tmp.path());
    assert_eq!(
        labels(&store, &store.stream("u")),
        vec!["fenced", "a", "s", "b"]
    );
    store.close().unwrap();
}

#[test]
fn a_fenced_batch_is_hidden_until_commit_and_keeps_its_causation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let fence = store.begin_visibility_fence().unwrap();
    let items = vec![
        BatchAppendItem::typed(
            coord("b1"),
            &step("x"),
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap(),
        BatchAppendItem::new(
            coord("b2"),
            STEP,
            &step("y"),
            AppendOptions::default(),
            CausationRef::PriorItem(0),
        )
        .unwrap(),
    ];
    let ticket = fence.submit_batch(items).unwrap();
    store.sync().unwrap();
    assert!(ticket.try_check().is_none());
    assert!(store.query(&Region::all()).is_empty());
    fence.commit().unwrap();
    let receipts = ticket.wait().unwrap();
    assert_eq!(receipts.len(), 2);
    assert_eq!(all_labels(&store), vec!["x", "y"]);
    assert_eq!(
        store.entry(receipts[1].event_id).unwrap().causation_id,
        Some(receipts[0].event_id)
    );
    store.close().unwrap();
}

#[test]
fn a_fenced_outbox_flush_returns_receipts_without_deadlock_and_publishes_at_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let fence = store.begin_visibility_fence().unwrap();
    let mut ob = fence.outbox();
    ob.stage_typed(coord("o"), &step("o1")).unwrap();
    ob.stage_with_causation(coord("o"), STEP, &step("o2"), CausationRef::PriorItem(0))
        .unwrap();
    assert_eq!(ob.len(), 2);
    let receipts = within(Duration::from_secs(20), "fenced outbox flush", || {
        ob.flush().unwrap()
    });
    assert!(ob.is_empty());
    assert_eq!(receipts.len(), 2);
    assert_eq!(receipts[0].clock, 1);
    assert_eq!(receipts[1].clock, 2);
    for r in &receipts {
        assert!(matches!(
            store.get(r.event_id),
            Err(StoreError::NotFound(_))
        ));
        assert!(store.entry(r.event_id).is_none());
    }
    assert!(store.stream("o").is_empty());
    // A second fenced flush in the same fence also returns.
    let mut ob2 = fence.outbox();
    ob2.stage_typed(coord("o"), &step("o3")).unwrap();
    let more = within(Duration::from_secs(20), "second fenced flush", || {
        ob2.flush().unwrap()
    });
    assert_eq!(more[0].clock, 3);
    within(Duration::from_secs(20), "fence commit", || {
        fence.commit().unwrap()
    });
    assert_eq!(labels(&store, &store.stream("o")), vec!["o1", "o2", "o3"]);
    for r in receipts.iter().chain(more.iter()) {
        assert_eq!(store.entry(r.event_id).unwrap().global_sequence, r.sequence);
    }
    assert_eq!(
        store.entry(receipts[1].event_id).unwrap().causation_id,
        Some(receipts[0].event_id)
    );
    store.close().unwrap();
    let store = open(tmp.path());
    assert_eq!(labels(&store, &store.stream("o")), vec!["o1", "o2", "o3"]);
    store.close().unwrap();
}

#[test]
fn a_store_outbox_flush_is_one_atomic_batch_and_empties_the_outbox() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let root = store.append_typed(&coord("root"), &step("root")).unwrap();
    let mut ob = store.outbox();
    assert!(ob.is_empty());
    ob.stage_typed(coord("p"), &step("p1")).unwrap();
    ob.stage_with_causation(
        coord("q"),
        STEP,
        &step("q1"),
        CausationRef::Absolute(root.event_id),
    )
    .unwrap();
    ob.stage_typed_with_causation(coord("p"), &step("p2"), CausationRef::PriorItem(1))
        .unwrap();
    ob.push_item(
        BatchAppendItem::typed(
            coord("q"),
            &step("q2"),
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap(),
    );
    assert_eq!(ob.len(), 4);
    let receipts = ob.flush().unwrap();
    assert_eq!(receipts.len(), 4);
    assert!(ob.is_empty());
    assert!(receipts
        .windows(2)
        .all(|w| w[1].sequence == w[0].sequence + 1));
    assert_eq!(all_labels(&store), vec!["root", "p1", "q1", "p2", "q2"]);
    assert_eq!(
        store.entry(receipts[2].event_id).unwrap().causation_id,
        Some(receipts[1].event_id)
    );
    // Flushing an emptied outbox writes nothing more.
    let _ = ob.flush();
    assert_eq!(store.stats().event_count, 5);

    // A flush with one bad item (CAS) writes none of the items, and still empties the outbox.
    let mut bad = store.outbox();
    bad.stage_typed(coord("p"), &step("never1")).unwrap();
    bad.stage_typed_with_options(
        coord("q"),
        &step("never2"),
        AppendOptions::default().with_cas(0),
    )
    .unwrap();
    assert!(matches!(
        bad.flush(),
        Err(StoreError::BatchFailed {
            item_index: 1,
            stage: BatchStage::Validation,
            ..
        })
    ));
    assert!(bad.is_empty());
    assert_eq!(store.stats().event_count, 5);

    // submit_flush answers through a ticket.
    let mut ob3 = store.outbox();
    ob3.stage_typed(coord("p"), &step("p3")).unwrap();
    let t = ob3.submit_flush().unwrap();
    assert!(ob3.is_empty());
    assert_eq!(t.wait().unwrap()[0].clock, 3);
    store.close().unwrap();
    let store = open(tmp.path());
    assert_eq!(
        all_labels(&store),
        vec!["root", "p1", "q1", "p2", "q2", "p3"]
    );
    store.close().unwrap();
}

#[test]
fn an_outbox_dropped_with_staged_items_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let written_before = store.frontier().written;
    {
        let mut ob = store.outbox();
        ob.stage_typed(coord("gone"), &step("g1")).unwrap();
        ob.stage_typed(coord("gone"), &step("g2")).unwrap();
        assert_eq!(ob.len(), 2);
    }
    store.sync().unwrap();
    assert!(store.query(&Region::all()).is_empty());
    assert_eq!(store.frontier().written, written_before);
    // The entity is still empty: its first event gets clock 1.
    assert_eq!(
        store
            .append_typed(&coord("gone"), &step("real"))
            .unwrap()
            .clock,
        1
    );
    store.close().unwrap();
    let store = open(tmp.path());
    assert_eq!(all_labels(&store), vec!["real"]);
    store.close().unwrap();
}

#[test]
fn the_entity_clock_and_hash_chain_continue_across_cancelled_and_committed_fences() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let e = coord("chain");
    let first = store.append_typed(&e, &step("c1")).unwrap();
    assert_eq!(first.clock, 1);

    let fence = store.begin_visibility_fence().unwrap();
    let ta = fence.submit_typed(&e, &step("x2")).unwrap();
    let tb = fence.submit_typed(&e, &step("x3")).unwrap();
    fence.cancel().unwrap();
    assert!(ta.wait().is_err() && tb.wait().is_err());

    let fourth = store.append_typed(&e, &step("c4")).unwrap();
    assert_eq!(
        fourth.clock, 4,
        "the clock restarted or reused cancelled clocks"
    );
    let s = store.stream("chain");
    // The chain links to the hidden (cancelled) event, not to the last visible one.
    assert_eq!(s.len(), 2);
    assert_ne!(s[1].hash_chain.prev_hash, s[0].hash_chain.event_hash);
    assert_ne!(s[1].hash_chain.prev_hash, [0u8; 32]);

    let fence = store.begin_visibility_fence().unwrap();
    let t5 = fence.submit_typed(&e, &step("c5")).unwrap();
    let t6 = fence.submit_typed(&e, &step("c6")).unwrap();
    fence.commit().unwrap();
    assert_eq!(t5.wait().unwrap().clock, 5);
    assert_eq!(t6.wait().unwrap().clock, 6);
    let seventh = store.append_typed(&e, &step("c7")).unwrap();
    assert_eq!(seventh.clock, 7);

    let check = |store: &Store| {
        let s = store.stream("chain");
        assert_eq!(
            s.iter().map(|x| x.clock).collect::<Vec<_>>(),
            vec![1, 4, 5, 6, 7]
        );
        assert_eq!(labels(store, &s), vec!["c1", "c4", "c5", "c6", "c7"]);
        assert_eq!(s[0].hash_chain.prev_hash, [0u8; 32]);
        for w in s.windows(2).skip(1) {
            assert_eq!(w[1].hash_chain.prev_hash, w[0].hash_chain.event_hash);
        }
    };
    check(&store);
    store.close().unwrap();
    let store = open(tmp.path());
    check(&store);
    assert_eq!(store.append_typed(&e, &step("c8")).unwrap().clock, 8);
    store.close().unwrap();
}

#[test]
fn a_fence_left_open_at_close_is_cancelled_and_stays_hidden_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    store.append_typed(&coord("k"), &step("visible")).unwrap();
    let fence = store.begin_visibility_fence().unwrap();
    let t = fence
        .submit_typed(&coord("k"), &step("open-at-close"))
        .unwrap();
    let mut ob = fence.outbox();
    ob.stage_typed(coord("k"), &step("open-at-close-2"))
        .unwrap();
    ob.flush().unwrap();
    // Leak the fence handle so that neither commit, cancel nor drop-cancel runs: only the
    // shutdown cancels it.
    std::mem::forget(fence);
    store.close().unwrap();
    assert!(matches!(
        t.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    let store = open(tmp.path());
    assert_eq!(all_labels(&store), vec!["visible"]);
    // The entity chain still counts the hidden events.
    assert_eq!(
        store
            .append_typed(&coord("k"), &step("next"))
            .unwrap()
            .clock,
        4
    );
    store.close().unwrap();

    // Same through Drop instead of close.
    let store = open(tmp.path());
    let fence = store.begin_visibility_fence().unwrap();
    let pending = fence
        .submit_typed(&coord("k"), &step("open-at-drop"))
        .unwrap()
        .try_check();
    assert!(!matches!(pending, Some(Err(_))));
    std::mem::forget(fence);
    drop(store);
    let store = open(tmp.path());
    assert_eq!(all_labels(&store), vec!["visible", "next"]);
    store.begin_visibility_fence().unwrap().cancel().unwrap();
    store.close().unwrap();
}

#[test]
fn dropping_a_fence_while_the_writer_queue_is_full_returns_quickly_and_still_cancels() {
    let tmp = tempfile::tempdir().unwrap();
    // A clock that the test can stall: the writer reads it for every event it writes, so a
    // closed gate holds the writer in the middle of a command while the queue fills up.
    let gate_closed = Arc::new(AtomicBool::new(false));
    let in_clock = Arc::new(AtomicBool::new(false));
    let clock = {
        let gate_closed = Arc::clone(&gate_closed);
        let in_clock = Arc::clone(&in_clock);
        Arc::new(move || {
            while gate_closed.load(Ordering::SeqCst) {
                in_clock.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
            in_clock.store(false, Ordering::SeqCst);
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0)
        }) as Arc<dyn Fn() -> i64 + Send + Sync>
    };
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_writer_channel_capacity(1)
            .with_clock(Some(clock)),
    )
    .unwrap();
    store.append_typed(&coord("q"), &step("before")).unwrap();

    std::thread::scope(|scope| {
        let fence = store.begin_visibility_fence().unwrap();
        let fenced = fence.submit_typed(&coord("q"), &step("hidden1")).unwrap();
        // Stall the writer on the next fenced event.
        gate_closed.store(true, Ordering::SeqCst);
        let stalled = fence.submit_typed(&coord("q"), &step("hidden2")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !in_clock.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "writer never reached the clock");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Fill the queue from another thread (these sends block once the queue is full).
        let filler = scope.spawn(|| {
            let mut outcomes = Vec::new();
            for i in 0..4 {
                let t = store
                    .submit_typed(&coord("filler"), &step(&format!("f{i}")))
                    .unwrap();
                outcomes.push(t);
            }
            outcomes
        });
        while store.writer_pressure().queued < 1 {
            assert!(Instant::now() < deadline, "queue never filled");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(store.writer_pressure().queued, 1);

        // If the drop blocked on the full queue it would wait for the writer forever; this
        // timer reopens the gate after 3 s so such a bug shows up as a slow drop, not a hang.
        let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
        let rescue = {
            let gate_closed = Arc::clone(&gate_closed);
            scope.spawn(move || {
                let _ = dropped_rx.recv_timeout(Duration::from_secs(3));
                gate_closed.store(false, Ordering::SeqCst);
            })
        };
        let started = Instant::now();
        drop(fence);
        let took = started.elapsed();
        let _ = dropped_tx.send(());
        rescue.join().unwrap();
        assert!(
            took < Duration::from_secs(1),
            "fence drop blocked for {took:?}"
        );

        // The writer is released (by the rescue thread above); let it drain everything.
        let tickets = filler.join().unwrap();
        assert!(matches!(
            fenced.wait(),
            Err(StoreError::VisibilityFenceCancelled)
        ));
        assert!(matches!(
            stalled.wait(),
            Err(StoreError::VisibilityFenceCancelled)
        ));
        // Filler submits were refused while the fence was open or accepted after the
        // cancel landed; either way each one resolves.
        for t in tickets {
            let r = t.wait();
            assert!(
                matches!(r, Ok(_) | Err(StoreError::VisibilityFenceActive)),
                "{r:?}"
            );
        }
    });

    // Once the cancel has landed, a new fence can begin.
    let deadline = Instant::now() + Duration::from_secs(10);
    let fence = loop {
        match store.begin_visibility_fence() {
            Ok(f) => break f,
            Err(StoreError::VisibilityFenceActive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("new fence refused: {e}"),
        }
    };
    fence.commit().unwrap();
    let visible = all_labels(&store);
    assert!(visible.contains(&"before".to_string()));
    assert!(
        !visible.iter().any(|l| l.starts_with("hidden")),
        "{visible:?}"
    );
    store.close().unwrap();
    let store = open(tmp.path());
    let visible = all_labels(&store);
    assert!(
        !visible.iter().any(|l| l.starts_with("hidden")),
        "{visible:?}"
    );
    store.close().unwrap();
}

/// INV-IDEMPOTENT inside a fence: a retry (same key, same event) of an append whose original
/// is still pending in the open fence shares the original's fate. `commit` decides whether
/// the fence commits or is cancelled. Both tickets are waited for after the fence ended.
fn retry_inside_a_fence(seed: Seed, commit: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let key = 0xFEED_u128;
    let opts = AppendOptions::default().with_idempotency(key);
    let (original, retry, after) = {
        let store = Store::open(seed(
            StoreConfig::new(dir.path()).with_lifecycle_events(false),
        ))
        .unwrap();
        let fence = store.begin_visibility_fence().unwrap();
        let t1 = fence
            .submit_with_options(&coord("idem:1"), STEP, &step("once"), opts)
            .unwrap();
        let t2 = fence
            .submit_with_options(&coord("idem:1"), STEP, &step("once"), opts)
            .unwrap();
        // Let the writer decide both before the fence ends.
        store.sync().unwrap();
        if commit {
            fence.commit().unwrap();
        } else {
            fence.cancel().unwrap();
        }
        let (original, retry) = (t1.wait(), t2.wait());
        if let Ok(r) = &retry {
            if commit != store.entry(r.event_id).is_some() {
                return Err(format!(
                    "INV-IDEMPOTENT: the retry answered receipt {:032x} but the event is {} after {}",
                    r.event_id,
                    if commit { "missing" } else { "visible" },
                    if commit { "commit" } else { "cancel" }
                ));
            }
        }
        (original, retry, store.query(&Region::all()).len())
    };
    match (commit, &original, &retry) {
        (true, Ok(a), Ok(b)) if a == b => {}
        (
            false,
            Err(StoreError::VisibilityFenceCancelled),
            Err(StoreError::VisibilityFenceCancelled),
        ) => {}
        _ => {
            return Err(format!(
                "INV-IDEMPOTENT: original answered {original:?}, its retry {retry:?} (fence {})",
                if commit { "committed" } else { "cancelled" }
            ))
        }
    }
    if after != usize::from(commit) {
        return Err(format!("{after} events visible after the fence ended"));
    }
    Ok(())
}

#[test]
fn an_idempotent_retry_inside_a_fence_shares_its_originals_fate() {
    retry_inside_a_fence(real, false).unwrap();
    retry_inside_a_fence(real, true).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_idempotent_retry_answers_early_is_caught() {
    let err = retry_inside_a_fence(
        |c| c.with_mutant(Mutant::IdempotentRetryAnswersEarly),
        false,
    )
    .unwrap_err();
    assert!(err.starts_with("INV-IDEMPOTENT"), "{err}");
}

#[test]
fn a_retry_of_a_key_pending_in_a_fenced_batch_waits_for_the_fence() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = 0xB47C_u128;
    let opts = AppendOptions::default().with_idempotency(key);
    let fence = store.begin_visibility_fence().unwrap();
    let item =
        BatchAppendItem::new(coord("idem:2"), STEP, &step("b"), opts, CausationRef::None).unwrap();
    let batch = fence.submit_batch(vec![item]).unwrap();
    let retry = fence
        .submit_with_options(&coord("idem:2"), STEP, &step("b"), opts)
        .unwrap();
    store.sync().unwrap();
    // Neither has answered: both wait for the fence.
    assert!(batch.try_check().is_none());
    assert!(
        retry.try_check().is_none(),
        "the retry answered before the fence decided"
    );
    fence.cancel().unwrap();
    assert!(matches!(
        batch.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    assert!(matches!(
        retry.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    assert!(store.stream("idem:2").is_empty());
}

#[test]
fn after_a_cancel_the_same_key_writes_afresh_outside_the_fence_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = 0xCA7_u128;
    let opts = AppendOptions::default().with_idempotency(key);
    let fresh = {
        let store = open(dir.path());
        let fence = store.begin_visibility_fence().unwrap();
        let t1 = fence
            .submit_with_options(&coord("idem:3"), STEP, &step("x"), opts)
            .unwrap();
        let t2 = fence
            .submit_with_options(&coord("idem:3"), STEP, &step("x"), opts)
            .unwrap();
        fence.cancel().unwrap();
        assert!(matches!(
            t1.wait(),
            Err(StoreError::VisibilityFenceCancelled)
        ));
        assert!(matches!(
            t2.wait(),
            Err(StoreError::VisibilityFenceCancelled)
        ));
        // The cancelled write never happened: the key is free, the retry writes a new event.
        let fresh = store
            .append_with_options(&coord("idem:3"), STEP, &step("x"), opts)
            .unwrap();
        let again = store
            .append_with_options(&coord("idem:3"), STEP, &step("x"), opts)
            .unwrap();
        assert_eq!(
            again, fresh,
            "a retry of the fresh write returns its receipt"
        );
        assert_eq!(labels(&store, &store.stream("idem:3")), vec!["x"]);
        store.close().unwrap();
        fresh
    };
    let store = open(dir.path());
    let again = store
        .append_with_options(&coord("idem:3"), STEP, &step("x"), opts)
        .unwrap();
    assert_eq!(again.event_id, fresh.event_id);
    assert_eq!(again.sequence, fresh.sequence);
    assert_eq!(store.stream("idem:3").len(), 1);
}
