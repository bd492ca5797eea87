//! Cursor gap observation (`with_gap_config`, `take_gaps`): a cursor never skips a visible
//! event, so an observation only names sequence numbers no visible event holds (a cancelled
//! fence, the log's own records) between two deliveries; events of other regions are not
//! holes. Off by default, bounded by `buffer_capacity`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::delivery::cursor::{CursorGapConfig, GapObservation};
use batpak::store::CheckpointId;
use std::time::Duration;

const KIND: EventKind = EventKind::custom(0x6, 11);

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "gaps").unwrap()
}

fn on(capacity: usize) -> CursorGapConfig {
    CursorGapConfig {
        enabled: true,
        buffer_capacity: capacity,
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(StoreConfig::new(dir).with_lifecycle_events(false)).unwrap()
}

/// A fence of `n` events to `a`, cancelled.
fn cancelled_fence(store: &Store, n: u32) {
    let fence = store.begin_visibility_fence().unwrap();
    for i in 0..n {
        let _ticket = fence.submit(&coord("a"), KIND, &i).unwrap();
    }
    fence.cancel().unwrap();
}

#[test]
fn a_cancelled_fence_between_two_deliveries_is_one_observed_hole() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let r1 = store.append(&coord("a"), KIND, &1u32).unwrap();
    cancelled_fence(&store, 3);
    let r2 = store.append(&coord("a"), KIND, &2u32).unwrap();
    assert!(r2.sequence > r1.sequence + 3, "the fence took sequences");

    // Off by default.
    let mut plain = store.cursor_guaranteed(&Region::all());
    assert_eq!(plain.poll_batch(10).len(), 2);
    assert!(plain.take_gaps().is_empty());

    let mut cursor = store
        .cursor_guaranteed(&Region::all())
        .with_gap_config(on(8));
    let got: Vec<u64> = cursor
        .poll_batch(10)
        .iter()
        .map(|e| e.global_sequence)
        .collect();
    assert_eq!(
        got,
        vec![r1.sequence, r2.sequence],
        "nothing visible skipped"
    );
    assert_eq!(
        cursor.take_gaps(),
        vec![GapObservation {
            expected_sequence: r1.sequence + 1,
            delivered_sequence: r2.sequence,
            cancelled_ranges: vec![(r1.sequence + 1, r2.sequence)],
        }]
    );
    assert!(cursor.take_gaps().is_empty(), "take_gaps drains");
}

#[test]
fn events_of_other_regions_are_not_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    for e in ["a", "b", "b", "a", "c", "a"] {
        store.append(&coord(e), KIND, &0u32).unwrap();
    }
    let mut cursor = store
        .cursor_guaranteed(&Region::entity("a"))
        .with_gap_config(on(8));
    assert_eq!(cursor.poll_batch(10).len(), 3);
    assert!(cursor.take_gaps().is_empty());
}

#[test]
fn a_hole_before_the_first_delivery_and_one_per_poll_are_observed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    cancelled_fence(&store, 2);
    let r1 = store.append(&coord("a"), KIND, &1u32).unwrap();
    let mut cursor = store
        .cursor_guaranteed(&Region::entity("a"))
        .with_gap_config(on(8));
    assert_eq!(cursor.poll().unwrap().global_sequence, r1.sequence);
    let g = cursor.take_gaps();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].expected_sequence, 0);
    assert_eq!(g[0].cancelled_ranges, vec![(0, r1.sequence)]);

    // A consumer checkpoint is a log record: a hole too, though nothing was cancelled.
    let mut c = store
        .consumer(&CheckpointId::new("k"), &Region::entity("a"))
        .unwrap();
    assert_eq!(c.poll(10, Duration::from_secs(1)).len(), 1);
    c.commit().unwrap();
    drop(c);
    let r2 = store.append(&coord("a"), KIND, &2u32).unwrap();
    assert_eq!(cursor.poll().unwrap().global_sequence, r2.sequence);
    let g = cursor.take_gaps();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].cancelled_ranges, vec![(r1.sequence + 1, r2.sequence)]);
}

#[test]
fn several_holes_between_two_deliveries_are_listed_apart_and_the_buffer_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let first = store.append(&coord("a"), KIND, &0u32).unwrap();
    // Between two deliveries of `a`: hole, b, hole, b, hole.
    let mut bs = Vec::new();
    cancelled_fence(&store, 1);
    bs.push(store.append(&coord("b"), KIND, &0u32).unwrap().sequence);
    cancelled_fence(&store, 2);
    bs.push(store.append(&coord("b"), KIND, &0u32).unwrap().sequence);
    cancelled_fence(&store, 1);
    let last = store.append(&coord("a"), KIND, &1u32).unwrap();
    let mut cursor = store
        .cursor_guaranteed(&Region::entity("a"))
        .with_gap_config(on(8));
    assert_eq!(cursor.poll_batch(10).len(), 2);
    let g = cursor.take_gaps();
    assert_eq!(g.len(), 1);
    assert_eq!(
        g[0].cancelled_ranges,
        vec![
            (first.sequence + 1, bs[0]),
            (bs[0] + 1, bs[1]),
            (bs[1] + 1, last.sequence)
        ]
    );

    // Capacity 2: of three observations the two newest are kept.
    for i in 0..3u32 {
        cancelled_fence(&store, 1);
        store.append(&coord("a"), KIND, &i).unwrap();
    }
    let mut small = store
        .cursor_guaranteed(&Region::entity("a"))
        .with_gap_config(on(2));
    small.seek(Some(last.sequence));
    assert_eq!(small.poll_batch(10).len(), 3);
    let kept = small.take_gaps();
    assert_eq!(kept.len(), 2);
    assert!(kept[0].delivered_sequence < kept[1].delivered_sequence);
    // Capacity 0 or disabled records nothing.
    let mut none = store
        .cursor_guaranteed(&Region::entity("a"))
        .with_gap_config(on(0));
    none.poll_batch(100);
    assert!(none.take_gaps().is_empty());
}

#[test]
fn a_dense_log_has_no_holes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let items = (0..50u32)
        .map(|i| {
            BatchAppendItem::new(
                coord("a"),
                KIND,
                &i,
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect();
    let batch = store.append_batch(items).unwrap();
    let mut plain = Vec::new();
    for i in 0..50u32 {
        plain.push(store.append(&coord("a"), KIND, &i).unwrap().sequence);
    }
    // Plain appends take consecutive sequences: no hole at all.
    let mut after_batch = store
        .cursor_guaranteed(&Region::all())
        .with_gap_config(on(64));
    after_batch.seek(Some(plain[0]));
    assert_eq!(after_batch.poll_batch(100).len(), 49);
    assert!(after_batch.take_gaps().is_empty());
    let _ = batch;
    let mut cursor = store
        .cursor_guaranteed(&Region::all())
        .with_gap_config(on(64));
    let mut n = 0;
    loop {
        let got = cursor.poll_batch(7);
        if got.is_empty() {
            break;
        }
        n += got.len();
    }
    assert_eq!(n, 100);
    let gaps = cursor.take_gaps();
    // A batch may take a sequence for its commit record; whatever holes there are lie
    // between visible events and hold none.
    for g in &gaps {
        for (s, e) in &g.cancelled_ranges {
            assert!(s < e && *e <= g.delivered_sequence && *s >= g.expected_sequence);
        }
    }
}
