//! INV-NO-HANG for fenced tickets: a fenced ticket resolves at commit or cancel, so waiting for
//! it on the thread that holds the open fence answers `FenceTicketPending` at once instead of
//! blocking forever; another thread's wait blocks until the fence ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use std::time::{Duration, Instant};

fn setup() -> (tempfile::TempDir, Store, Coordinate, EventKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    (
        dir,
        store,
        Coordinate::new("cart:1", "shop").unwrap(),
        EventKind::custom(0x3, 1),
    )
}

#[test]
fn waiting_on_a_fenced_ticket_before_commit_on_the_fence_thread_returns_at_once() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let ticket = fence.submit(&coord, kind, &1u32).unwrap();
    let started = Instant::now();
    let err = ticket.wait().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, StoreError::FenceTicketPending { fence: f } if f == fence.token()));
    assert!(
        !err.is_definite(),
        "the write is still pending, not refused"
    );
    // The write itself goes on: commit publishes it.
    fence.commit().unwrap();
    assert_eq!(store.stream("cart:1").len(), 1);
}

#[test]
fn a_fenced_batch_ticket_follows_the_same_rule() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let item = BatchAppendItem::new(
        coord,
        kind,
        &1u32,
        AppendOptions::default(),
        CausationRef::None,
    )
    .unwrap();
    let ticket = fence.submit_batch(vec![item]).unwrap();
    assert!(matches!(
        ticket.wait(),
        Err(StoreError::FenceTicketPending { .. })
    ));
    fence.cancel().unwrap();
    assert!(store.stream("cart:1").is_empty());
}

#[test]
fn another_thread_waits_until_the_fence_commits() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let ticket = fence.submit(&coord, kind, &7u32).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(move || ticket.wait());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "the ticket must not resolve before commit"
        );
        fence.commit().unwrap();
        let receipt = waiter.join().unwrap().unwrap();
        assert_eq!(
            store.entry(receipt.event_id).unwrap().event_id,
            receipt.event_id
        );
    });
}

#[test]
fn after_commit_the_fence_thread_gets_the_receipt() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let t1 = fence.submit(&coord, kind, &1u32).unwrap();
    let t2 = fence.submit(&coord, kind, &2u32).unwrap();
    fence.commit().unwrap();
    let (r1, r2) = (t1.wait().unwrap(), t2.wait().unwrap());
    assert_eq!((r1.clock, r2.clock), (1, 2));
}

#[test]
fn after_cancel_the_fence_thread_gets_cancelled() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let t = fence.submit(&coord, kind, &1u32).unwrap();
    fence.cancel().unwrap();
    assert!(matches!(
        t.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    drop(store);
}
