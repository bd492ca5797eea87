//! `wait_for_applied` and the `Applied` gate against live durable consumers, on real files:
//! a waiter sleeps until every live consumer whose region holds an event up to the point has
//! committed past it, wakes on the commit (or the consumer's drop) without polling, and with
//! no live consumer the applied frontier is the visible one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::CheckpointId;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KIND: EventKind = EventKind::custom(0x6, 7);

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "applied").unwrap()
}

fn open(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(Store::open(StoreConfig::new(dir)).unwrap())
}

/// Starts `wait_for_applied(point)` on a thread; its answer and how long it took arrive on
/// the returned channel.
fn waiter(
    store: &Arc<Store>,
    point: HlcPoint,
) -> mpsc::Receiver<(Result<(), StoreError>, Duration)> {
    let (tx, rx) = mpsc::channel();
    let store = Arc::clone(store);
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = store.wait_for_applied(point, Duration::from_secs(20));
        tx.send((r, t.elapsed())).unwrap();
    });
    rx
}

#[test]
fn a_waiter_on_applied_blocks_until_the_live_consumer_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let id = CheckpointId::new("proj");
    let mut consumer = store.consumer(&id, &Region::entity("a")).unwrap();
    let r1 = store.append(&coord("a"), KIND, &1u32).unwrap();
    let r2 = store.append(&coord("a"), KIND, &2u32).unwrap();

    let rx = waiter(&store, HlcPoint::from(&r2));
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the waiter returned while the consumer had committed nothing"
    );
    // Committing the first event only is not enough.
    let got = consumer.poll(1, Duration::from_secs(5));
    assert_eq!(got[0].event_id, r1.event_id);
    consumer.commit().unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the waiter returned before the consumer committed the event it waits for"
    );
    let got = consumer.poll(1, Duration::from_secs(5));
    assert_eq!(got[0].event_id, r2.event_id);
    let committed_at = Instant::now();
    consumer.commit().unwrap();
    let (r, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    r.unwrap();
    // Woken by the commit, not by its timeout.
    assert!(committed_at.elapsed() < Duration::from_secs(5));
    drop(consumer);
    drop(store);
}

#[test]
fn dropping_the_live_consumer_releases_a_waiter() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let consumer = store
        .consumer(&CheckpointId::new("c"), &Region::all())
        .unwrap();
    let r = store.append(&coord("a"), KIND, &1u32).unwrap();
    let rx = waiter(&store, HlcPoint::from(&r));
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    drop(consumer);
    let (res, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    res.unwrap();
}

#[test]
fn with_no_live_consumer_applied_is_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let r = store.append(&coord("a"), KIND, &1u32).unwrap();
    store.wait_for_applied(&r, Duration::ZERO).unwrap();
    // A consumer that committed nothing and is gone holds nothing back.
    drop(
        store
            .consumer(&CheckpointId::new("gone"), &Region::all())
            .unwrap(),
    );
    let r = store.append(&coord("a"), KIND, &2u32).unwrap();
    store.wait_for_applied(&r, Duration::ZERO).unwrap();
    // Nor does a live consumer of another region.
    let _other = store
        .consumer(&CheckpointId::new("other"), &Region::entity("b"))
        .unwrap();
    let r = store.append(&coord("a"), KIND, &3u32).unwrap();
    store.wait_for_applied(&r, Duration::ZERO).unwrap();
    // An Applied gate on an append answers at once too.
    let gate = DurabilityGate {
        kind: WatermarkKind::Applied,
        timeout: Duration::ZERO,
    };
    store
        .append_with_options(
            &coord("a"),
            KIND,
            &4u32,
            AppendOptions::new().with_gate(gate),
        )
        .unwrap();
}

#[test]
fn an_applied_gate_behind_a_consumer_times_out_carrying_the_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let _c = store
        .consumer(&CheckpointId::new("slow"), &Region::entity("a"))
        .unwrap();
    let gate = DurabilityGate {
        kind: WatermarkKind::Applied,
        timeout: Duration::from_millis(50),
    };
    let err = store
        .append_with_options(
            &coord("a"),
            KIND,
            &1u32,
            AppendOptions::new().with_gate(gate),
        )
        .unwrap_err();
    match err {
        StoreError::WaitTimeout {
            watermark: WatermarkKind::Applied,
            committed: Some(receipt),
            ..
        } => {
            assert!(store.entry(receipt.event_id).is_some());
            // Visible all along: only the consumer holds it back.
            store.wait_for_visible(&*receipt, Duration::ZERO).unwrap();
        }
        other => panic!("expected an Applied WaitTimeout with the receipt, got {other:?}"),
    }
}

#[test]
fn a_checkpointed_reactor_moves_the_applied_frontier() {
    #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
    #[batpak(category = 0x6, type_id = 8)]
    struct Ping {
        n: u32,
    }
    struct Sink;
    impl TypedReactive<Ping> for Sink {
        type Error = StoreError;
        fn react(
            &mut self,
            _e: &batpak::event::StoredEvent<Ping>,
            _out: &mut ReactionBatch,
            _w: Option<&batpak::store::AtLeastOnce>,
        ) -> Result<(), StoreError> {
            Ok(())
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let h = store
        .react_loop_typed::<Ping, _>(
            &Region::all(),
            ReactorConfig {
                checkpoint_id: Some(CheckpointId::new("sink")),
                ..ReactorConfig::default()
            },
            Sink,
        )
        .unwrap();
    let r = store.append_typed(&coord("a"), &Ping { n: 1 }).unwrap();
    store.wait_for_applied(&r, Duration::from_secs(10)).unwrap();
    let info = store.consumers();
    assert!(info[0].committed >= Some(r.sequence));
    h.stop_and_join().unwrap();
}
