//! Lifecycle events: a writable open appends `SYSTEM_OPEN_COMPLETED` and an explicit `close()`
//! appends `SYSTEM_CLOSE_COMPLETED`, both at `batpak:store` / `batpak:lifecycle` (upstream's
//! kinds and coordinate), on by default; they are ordinary events (sequences, counts,
//! `Region::all()`), and `with_lifecycle_events(false)` turns them off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::{CloseCompleted, OpenCompleted, LIFECYCLE_ENTITY, LIFECYCLE_SCOPE};
use std::time::Duration;

const KIND: EventKind = EventKind::custom(0x7, 1);

fn lifecycle_kinds(store: &Store) -> Vec<EventKind> {
    store
        .stream(LIFECYCLE_ENTITY)
        .iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn open_and_close_record_lifecycle_events_at_upstreams_coordinate_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let opened = store.by_fact(EventKind::SYSTEM_OPEN_COMPLETED);
    assert_eq!(opened.len(), 1);
    assert_eq!(
        opened[0].global_sequence, 0,
        "recorded once recovery is done"
    );
    assert_eq!(opened[0].coord.entity(), "batpak:store");
    assert_eq!(opened[0].coord.scope(), "batpak:lifecycle");
    let first: StoredEvent<OpenCompleted> = store.get_typed(opened[0].event_id).unwrap();
    assert_eq!(first.event.payload.recovered_records, 0);
    assert!(!first.event.payload.torn_tail_cut);
    // Durable like any acknowledged event in the default mode.
    assert!(store.frontier().durable > 0);
    let c = Coordinate::new("app:1", "app").unwrap();
    store.append(&c, KIND, &1u8).unwrap();
    store.close().unwrap();

    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    assert_eq!(
        lifecycle_kinds(&store),
        vec![
            EventKind::SYSTEM_OPEN_COMPLETED,
            EventKind::SYSTEM_CLOSE_COMPLETED,
            EventKind::SYSTEM_OPEN_COMPLETED
        ]
    );
    let lc = store.stream(LIFECYCLE_ENTITY);
    let closed: StoredEvent<CloseCompleted> = store.get_typed(lc[1].event_id).unwrap();
    assert_eq!(closed.event.payload.global_sequence, lc[1].global_sequence);
    let app = store.stream("app:1")[0].clone();
    assert_eq!(closed.event.payload.wall_ms, app.wall_ms);
    let reopened: StoredEvent<OpenCompleted> = store.get_typed(lc[2].event_id).unwrap();
    assert_eq!(reopened.event.payload.recovered_records, 3);
    // Ordinary events: counted, in Region::all(), in their scope; the chain continues.
    let stats = store.stats();
    assert_eq!(stats.event_count, 4);
    assert_eq!(store.query(&Region::all()).len(), 4);
    assert_eq!(store.by_scope(LIFECYCLE_SCOPE).len(), 3);
    assert_eq!(lc[2].hash_chain.prev_hash, lc[1].hash_chain.event_hash);
    assert_eq!(lc[2].clock, 3);
    store.close().unwrap();
}

#[test]
fn with_lifecycle_events_false_writes_none() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = || StoreConfig::new(tmp.path()).with_lifecycle_events(false);
    let store = Store::open(cfg()).unwrap();
    assert_eq!(store.stats().event_count, 0);
    assert_eq!(store.frontier().written, 0);
    store.close().unwrap();
    let store = Store::open(cfg()).unwrap();
    assert!(store.query(&Region::all()).is_empty());
    store.close().unwrap();
    // Turned on later: the events start then.
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    assert_eq!(
        lifecycle_kinds(&store),
        vec![EventKind::SYSTEM_OPEN_COMPLETED]
    );
    store.close().unwrap();
}

#[test]
fn dropping_without_close_records_no_close_event() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Store::open(StoreConfig::new(tmp.path())).unwrap());
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    assert_eq!(
        lifecycle_kinds(&store),
        vec![
            EventKind::SYSTEM_OPEN_COMPLETED,
            EventKind::SYSTEM_OPEN_COMPLETED
        ]
    );
    store.close().unwrap();
}

#[test]
fn a_close_with_an_abandoned_fence_still_closes_and_hides_the_fence() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let c = Coordinate::new("app:2", "app").unwrap();
    let fence = store.begin_visibility_fence().unwrap();
    let _ticket = fence.submit(&c, KIND, &1u8).unwrap();
    fence.abandon();
    // The close event is refused by the open fence; the close happens anyway.
    store.close().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    assert!(store.stream("app:2").is_empty());
    assert_eq!(
        lifecycle_kinds(&store),
        vec![
            EventKind::SYSTEM_OPEN_COMPLETED,
            EventKind::SYSTEM_OPEN_COMPLETED
        ]
    );
    store.close().unwrap();
}

#[test]
fn in_the_deferred_mode_the_open_event_is_made_durable_by_a_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_secs(600)),
    )
    .unwrap();
    let open = store.by_fact(EventKind::SYSTEM_OPEN_COMPLETED)[0].clone();
    store
        .wait_for_durable(open.point(), Duration::from_secs(5))
        .unwrap();
    assert!(store.frontier().durable > open.global_sequence);
    store.close().unwrap();
}
