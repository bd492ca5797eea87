//! INV-FLUSH-BOUND (README: "Durable means durable"): in the deferred mode a written record is
//! synced within `flush_interval` of being written, whatever traffic follows it. Checked with a
//! logical clock: a `ManualClock` drives the flush bound, the store runs on `SimDisk`, and a
//! steady trickle of appends (one every tenth of the interval, the wall clock stepping back
//! once in the middle) must never leave a record unsynced past its deadline at the next
//! group. The seeded bug `FlushTimerRestarts` (the timer restarts with every command, as a
//! receive timeout does) is caught.
#![cfg(not(any(loom, shuttle)))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{CounterIds, ManualClock, SimDisk};
use batpak::prelude::*;
use batpak_model::Mutant;
use std::sync::Arc;
use std::time::Duration;

/// One hour: real waits never reach it, so only the logical clock decides.
const INTERVAL: Duration = Duration::from_secs(3600);
const STEP_US: i64 = 360_000_000; // a tenth of the interval

/// The trickle; `Err` names the invariant when a record outlives its deadline unsynced.
fn trickle(mutant: Mutant) -> Result<u64, String> {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
    let cfg = StoreConfig::new("/db")
        .with_lifecycle_events(false)
        .with_disk(Arc::new(SimDisk::new()))
        .with_clock_source(clock.clone())
        .with_id_source(Arc::new(CounterIds::new(1)))
        .with_sync_every_n_events(1000)
        .with_flush_interval(INTERVAL);
    let store = Store::open(batpak_model::seed(cfg, mutant)).unwrap();
    let coord = Coordinate::new("tick:1", "flush").unwrap();
    let kind = EventKind::custom(0x2, 2);
    let interval_us = INTERVAL.as_micros() as i64;
    // (sequence, logical time written)
    let mut written: Vec<(u64, i64)> = Vec::new();
    let mut now = 0i64;
    for i in 0..60u32 {
        let r = store.append(&coord, kind, &i).unwrap();
        written.push((r.sequence, now));
        let durable = store.frontier().durable;
        // Every record whose deadline had passed when this append's group ran is durable.
        if let Some(&(seq, at)) = written
            .iter()
            .find(|&&(seq, at)| now - at >= interval_us && seq >= durable)
        {
            return Err(format!(
                "INV-FLUSH-BOUND: record {seq} written at {at} µs is unsynced at {now} µs (flush interval {interval_us} µs), durable frontier {durable}"
            ));
        }
        clock.advance(STEP_US);
        now += STEP_US;
        if i == 30 {
            // The wall clock steps back two hours; the flush bound does not care.
            clock.advance(-2 * interval_us);
        }
    }
    let durable = store.frontier().durable;
    store.close().unwrap();
    Ok(durable)
}

#[test]
fn a_steady_trickle_is_flushed_within_the_interval_of_its_oldest_write() {
    let durable = trickle(Mutant::None).unwrap();
    assert!(durable >= 50, "durable frontier {durable} after 60 appends");
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_flush_timer_restarts_is_caught() {
    let err = trickle(Mutant::FlushTimerRestarts).unwrap_err();
    assert!(err.starts_with("INV-FLUSH-BOUND"), "{err}");
}
