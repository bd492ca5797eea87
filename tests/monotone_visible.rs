//! INV-MONOTONE-VISIBLE: within a process, once an event is visible it stays visible; the
//! visible set only grows. The hard case is deferred durability, where events are visible
//! before they are durable: a failed fsync latches the writer and cuts the unsynced bytes
//! from the file (a later process will not see them), but what readers of this process saw
//! stays visible to them. With its seeded bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{CounterIds, Fault, FaultKind, ManualClock, SimDisk};
#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

type Seed = fn(StoreConfig) -> StoreConfig;

fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x4, 9);

fn visible(store: &Store) -> BTreeSet<u128> {
    store
        .query(&Region::all())
        .iter()
        .map(|e| e.event_id)
        .collect()
}

/// The witness: in deferred mode, append events (visible, not yet durable), then make the
/// flush's fsync fail (pages kept or dropped); every event a reader saw before is still
/// visible after, and the visible frontier did not move back.
fn check_monotone(seed: Seed) -> Result<(), String> {
    for drop_pages in [false, true] {
        let disk = SimDisk::new();
        let cfg = StoreConfig::new("/db")
            .with_disk(Arc::new(disk.clone()))
            .with_clock_source(Arc::new(ManualClock::new(1_700_000_000_000_000)))
            .with_id_source(Arc::new(CounterIds::new(1)))
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_secs(3600));
        let store = Store::open(seed(cfg)).unwrap();
        let c = Coordinate::new("e", "s").unwrap();
        store
            .append(&c, KIND, &serde_json::json!({"n": 0}))
            .unwrap();
        store.sync().unwrap();
        for n in 1..4 {
            store
                .append(&c, KIND, &serde_json::json!({"n": n}))
                .unwrap();
        }
        let seen = visible(&store);
        let frontier = store.frontier();
        let fault = Fault::new(FaultKind::Transient);
        disk.fail_next(
            "sync_data",
            if drop_pages {
                fault.drop_pages()
            } else {
                fault
            },
        );
        if store.sync().is_ok() {
            return Err("the failed fsync was reported as a success".to_string());
        }
        let after = visible(&store);
        let now = store.frontier();
        if let Some(gone) = seen.difference(&after).next() {
            return Err(format!(
                "INV-MONOTONE-VISIBLE: event {gone:032x} was visible before the failed fsync \
                 and is not after it (drop pages: {drop_pages})"
            ));
        }
        if now.visible < frontier.visible {
            return Err(format!(
                "INV-MONOTONE-VISIBLE: the visible frontier moved back from {} to {} \
                 (drop pages: {drop_pages})",
                frontier.visible, now.visible
            ));
        }
        drop(store);
    }
    Ok(())
}

#[test]
fn a_failed_fsync_in_deferred_mode_hides_nothing_a_reader_saw() {
    check_monotone(real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_latch_hides_unsynced_is_caught_by_the_monotone_witness() {
    let err = check_monotone(|c| c.with_mutant(Mutant::LatchHidesUnsynced))
        .expect_err("the seeded bug LatchHidesUnsynced was not caught");
    assert!(err.starts_with("INV-MONOTONE-VISIBLE"), "reported as {err}");
}
