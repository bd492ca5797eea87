//! The position's wall part is a hybrid logical clock (INV-HLC-MONOTONE): `wall_ms` never
//! decreases along an entity or along the store's sequence order, follows the wall clock
//! whenever the clock is ahead, and is recovered from the log on reopen. Driven by an injected
//! clock stepping back (NTP, VM resume), jumping ten years ahead, falling to 1970, and a reopen
//! with a clock two hours behind. The witness reports the invariant's tag, and the seeded bug
//! `Mutant::RawWallClock` (the writer stamps raw clock readings) is shown to be caught by it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::env::ManualClock;
use batpak::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// How a test configures the store's seeded bug: [`real`] for the real store; the mutant
/// witnesses (mutant build only, `--cfg batpak_mutant`) seed one with `with_mutant`.
type Seed = fn(StoreConfig) -> StoreConfig;

/// The real store: no seeded bug.
fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x4, 2);
const T0: i64 = 1_700_000_000_000_000;
const HOUR_US: i64 = 3_600_000_000;
const TEN_YEARS_US: i64 = 10 * 365 * 24 * HOUR_US;

fn cfg(dir: &Path, clock: &Arc<ManualClock>, seed: Seed) -> StoreConfig {
    seed(StoreConfig::new(dir).with_clock_source(clock.clone()))
}

/// The witness: along the store's sequence order and along every entity, `wall_ms` never
/// decreases, and every read API agrees with the header (`timestamp_us / 1000 == wall_ms`).
fn check_hlc(store: &Store) -> Result<(), String> {
    let mut all = store.query(&Region::all());
    all.sort_by_key(|e| e.global_sequence);
    let mut store_last: Option<&IndexEntry> = None;
    let mut entity_last: BTreeMap<&str, &IndexEntry> = BTreeMap::new();
    for e in &all {
        if let Some(p) = store_last {
            if e.wall_ms < p.wall_ms {
                return Err(format!(
                    "INV-HLC-MONOTONE: store time went backwards: seq {} has wall_ms {} after seq {} with {}",
                    e.global_sequence, e.wall_ms, p.global_sequence, p.wall_ms
                ));
            }
        }
        if let Some(p) = entity_last.get(e.coord.entity()) {
            if (e.wall_ms, e.clock) <= (p.wall_ms, p.clock) {
                return Err(format!(
                    "INV-HLC-MONOTONE: entity {} went backwards: position ({}, {}) after ({}, {})",
                    e.coord.entity(),
                    e.wall_ms,
                    e.clock,
                    p.wall_ms,
                    p.clock
                ));
            }
        }
        let header = store
            .get(e.event_id)
            .map_err(|err| err.to_string())?
            .event
            .header;
        if header.position.wall_ms != e.wall_ms
            || u64::try_from(header.timestamp_us / 1000).ok() != Some(e.wall_ms)
        {
            return Err(format!(
                "INV-HLC-MONOTONE: seq {}: header timestamp {} us / position {} ms disagree with the index's wall_ms {}",
                e.global_sequence, header.timestamp_us, header.position.wall_ms, e.wall_ms
            ));
        }
        store_last = Some(e);
        entity_last.insert(e.coord.entity(), e);
    }
    Ok(())
}

fn append(store: &Store, entity: &str, n: u32) -> AppendReceipt {
    store
        .append(&Coordinate::new(entity, "hlc").unwrap(), KIND, &n)
        .unwrap()
}

fn wall_ms(store: &Store, r: &AppendReceipt) -> u64 {
    store.entry(r.event_id).unwrap().wall_ms
}

/// Steps the clock back two hours, forward past the store's time, closes, and reopens with a
/// clock two hours behind the last event; checks the witness after each phase and returns the
/// first violation.
fn step_back_and_forward_across_a_reopen(dir: &Path, seed: Seed) -> Result<(), String> {
    let clock = Arc::new(ManualClock::new(T0));
    let store = Store::open(cfg(dir, &clock, seed)).unwrap();
    let a1 = append(&store, "a", 1);
    let b1 = append(&store, "b", 1);
    assert_eq!(wall_ms(&store, &a1), u64::try_from(T0 / 1000).unwrap());
    // NTP steps the clock back two hours.
    clock.advance(-2 * HOUR_US);
    let a2 = append(&store, "a", 2);
    append(&store, "b", 2);
    check_hlc(&store)?;
    let held = wall_ms(&store, &b1);
    if wall_ms(&store, &a2) < held {
        return Err("INV-HLC-MONOTONE: wall_ms followed the clock back".into());
    }
    // Real time passes the store's time again: wall_ms follows the clock from then on.
    clock.set(T0 + 60_000_000);
    let a3 = append(&store, "a", 3);
    assert_eq!(
        wall_ms(&store, &a3),
        u64::try_from((T0 + 60_000_000) / 1000).unwrap(),
        "wall_ms does not follow the clock once the clock is ahead again"
    );
    check_hlc(&store)?;
    store.close().unwrap();

    // Reopen on a machine whose clock is two hours behind the log.
    let last_ms = wall_ms_max(dir, &clock, seed);
    clock.set(T0 - 2 * HOUR_US);
    let store = Store::open(cfg(dir, &clock, seed)).unwrap();
    let a4 = append(&store, "a", 4);
    let c1 = append(&store, "c", 1);
    check_hlc(&store)?;
    if wall_ms(&store, &a4) < last_ms || wall_ms(&store, &c1) < last_ms {
        return Err(format!(
            "INV-HLC-MONOTONE: after a reopen with the clock behind, wall_ms {} is before the log's {last_ms}",
            wall_ms(&store, &a4)
        ));
    }
    // And forward again.
    clock.set(T0 + 2 * HOUR_US);
    let a5 = append(&store, "a", 5);
    assert_eq!(
        wall_ms(&store, &a5),
        u64::try_from((T0 + 2 * HOUR_US) / 1000).unwrap()
    );
    check_hlc(&store)?;
    store.close().unwrap();
    let store = Store::open(cfg(dir, &clock, seed)).unwrap();
    let r = check_hlc(&store);
    store.close().unwrap();
    r
}

/// The largest wall_ms in the store (opened and closed again).
fn wall_ms_max(dir: &Path, clock: &Arc<ManualClock>, seed: Seed) -> u64 {
    let store = Store::open(cfg(dir, clock, seed)).unwrap();
    let m = store
        .query(&Region::all())
        .iter()
        .map(|e| e.wall_ms)
        .max()
        .unwrap();
    store.close().unwrap();
    m
}

#[test]
fn wall_ms_never_goes_backwards_when_the_clock_steps_back_and_forward_across_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    step_back_and_forward_across_a_reopen(tmp.path(), real).unwrap();
}

#[test]
fn a_clock_jumping_ten_years_ahead_then_to_1970_keeps_wall_ms_monotone_and_holds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let store = Store::open(cfg(tmp.path(), &clock, real)).unwrap();
    append(&store, "a", 1);
    // A wrong clock reading ten years ahead is accepted (the store has no other clock to
    // judge it by): the store's time moves there ...
    clock.set(T0 + TEN_YEARS_US);
    let jumped = append(&store, "a", 2);
    let future_ms = u64::try_from((T0 + TEN_YEARS_US) / 1000).unwrap();
    assert_eq!(wall_ms(&store, &jumped), future_ms);
    // ... and holds there when the clock comes back, or falls to 1970, or before it.
    for t in [T0, 0, -1_000_000] {
        clock.set(t);
        let r = append(&store, "a", 3);
        append(&store, "b", 3);
        assert_eq!(wall_ms(&store, &r), future_ms, "clock at {t}");
    }
    check_hlc(&store).unwrap();
    store.close().unwrap();
    // Across a reopen at the right time, still held (recovered from the log).
    clock.set(T0 + 1_000_000);
    let store = Store::open(cfg(tmp.path(), &clock, real)).unwrap();
    let r = append(&store, "a", 4);
    assert!(wall_ms(&store, &r) >= future_ms);
    check_hlc(&store).unwrap();
    let entries = store.stream("a");
    assert_eq!(
        entries.iter().map(|e| e.clock).collect::<Vec<_>>(),
        (1..=entries.len() as u32).collect::<Vec<_>>()
    );
    store.close().unwrap();
}

#[test]
fn a_store_created_with_the_clock_at_1970_or_before_stamps_zero_and_then_follows_the_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(-5_000_000));
    let store = Store::open(cfg(tmp.path(), &clock, real)).unwrap();
    let r = append(&store, "a", 1);
    assert_eq!(wall_ms(&store, &r), 0);
    clock.set(T0);
    let r = append(&store, "a", 2);
    assert_eq!(wall_ms(&store, &r), u64::try_from(T0 / 1000).unwrap());
    check_hlc(&store).unwrap();
    store.close().unwrap();
}

#[test]
fn a_batch_and_a_fence_written_while_the_clock_steps_back_stay_monotone() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let store = Store::open(cfg(tmp.path(), &clock, real)).unwrap();
    append(&store, "a", 1);
    clock.advance(-HOUR_US);
    let items = (0..5)
        .map(|i| {
            BatchAppendItem::new(
                Coordinate::new(if i % 2 == 0 { "a" } else { "b" }, "hlc").unwrap(),
                KIND,
                &i,
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect();
    store.append_batch(items).unwrap();
    clock.advance(-HOUR_US);
    let fence = store.begin_visibility_fence().unwrap();
    let t = fence
        .submit(&Coordinate::new("a", "hlc").unwrap(), KIND, &9)
        .unwrap();
    fence.commit().unwrap();
    t.wait().unwrap();
    check_hlc(&store).unwrap();
    store.close().unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_raw_wall_clock_is_caught_by_the_hlc_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let err =
        step_back_and_forward_across_a_reopen(tmp.path(), |c| c.with_mutant(Mutant::RawWallClock))
            .expect_err("the seeded bug RawWallClock was not caught");
    assert!(err.starts_with("INV-HLC-MONOTONE"), "reported as {err}");
}
