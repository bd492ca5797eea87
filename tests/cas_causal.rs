//! INV-CAS and INV-CAUSAL, with their seeded bugs.
//!
//! INV-CAS: an expected-sequence append succeeds only if the entity's state is exactly the
//! expected one; "no events yet" (`with_cas(0)`) is a state like any other, not "no check".
//! INV-CAUSAL: by default a causation id must name an existing event that precedes the
//! effect, or the append is refused with a definite error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use std::path::Path;

/// How a test configures the store's seeded bug: [`real`] for the real store; the mutant
/// witnesses (mutant build only) seed one.
type Seed = fn(StoreConfig) -> StoreConfig;

fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x4, 7);

fn open(dir: &Path, seed: Seed) -> Store {
    Store::open(seed(StoreConfig::new(dir))).unwrap()
}

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "s").unwrap()
}

fn cas(store: &Store, entity: &str, expected: u32) -> Result<AppendReceipt, StoreError> {
    store.append_with_options(
        &coord(entity),
        KIND,
        &serde_json::json!({ "expected": expected }),
        AppendOptions::new().with_cas(expected),
    )
}

/// The witness for INV-CAS: for an entity with 0, 1 and 2 events, every expectation but the
/// exact count is refused with `SequenceMismatch` and writes nothing; the exact one succeeds.
/// Across a reopen too.
fn check_cas(dir: &Path, seed: Seed) -> Result<(), String> {
    for session in 0..2 {
        let store = open(dir, seed);
        let entity = format!("e{session}");
        for have in 0u32..3 {
            for expected in 0u32..4 {
                if expected == have {
                    continue;
                }
                let before = store.stream(&entity).len();
                match cas(&store, &entity, expected) {
                    Err(StoreError::SequenceMismatch {
                        expected: e,
                        actual,
                        ..
                    }) if e == expected && actual == have => {}
                    other => {
                        return Err(format!(
                            "INV-CAS: entity {entity} has {have} events; an append expecting \
                             {expected} answered {other:?}"
                        ))
                    }
                }
                if store.stream(&entity).len() != before {
                    return Err(format!(
                        "INV-CAS: a refused append expecting {expected} wrote an event"
                    ));
                }
            }
            cas(&store, &entity, have).map_err(|e| {
                format!("INV-CAS: entity {entity} has {have} events; expecting {have} failed: {e}")
            })?;
        }
        store.close().unwrap();
    }
    Ok(())
}

#[test]
fn cas_tells_no_events_from_exactly_n_events() {
    let tmp = tempfile::tempdir().unwrap();
    check_cas(tmp.path(), real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_cas_zero_means_any_is_caught_by_the_cas_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let err = check_cas(tmp.path(), |c| c.with_mutant(Mutant::CasZeroMeansAny))
        .expect_err("the seeded bug CasZeroMeansAny was not caught");
    assert!(err.starts_with("INV-CAS"), "reported as {err}");
}

/// The witness for INV-CAUSAL: a causation id that names no event (never written, or written
/// in another store) is refused with a definite `UnknownCausation` and writes nothing; a
/// cause that exists is accepted and recorded, also after a reopen.
fn check_causal(dir: &Path, seed: Seed) -> Result<(), String> {
    let store = open(dir, seed);
    let cause = store
        .append(&coord("c"), KIND, &serde_json::json!({"cause": true}))
        .unwrap();
    let before = store.query(&Region::all()).len();
    for missing in [cause.event_id ^ (1 << 100), 0, u128::MAX] {
        let got = store.append_with_options(
            &coord("c"),
            KIND,
            &serde_json::json!({"effect": true}),
            AppendOptions::new().with_causation(missing),
        );
        match got {
            Err(e @ StoreError::UnknownCausation { .. }) if e.is_definite() => {}
            other => {
                return Err(format!(
                    "INV-CAUSAL: an effect of the unknown event {missing:032x} answered {other:?}"
                ))
            }
        }
    }
    if store.query(&Region::all()).len() != before {
        return Err("INV-CAUSAL: a refused effect was written".to_string());
    }
    store.close().unwrap();
    let store = open(dir, seed);
    let effect = store
        .append_with_options(
            &coord("c"),
            KIND,
            &serde_json::json!({"effect": true}),
            AppendOptions::new().with_causation(cause.event_id),
        )
        .map_err(|e| format!("INV-CAUSAL: an effect of an existing event was refused: {e}"))?;
    let got = store.get(effect.event_id).unwrap();
    if got.event.header.causation_id != Some(cause.event_id) {
        return Err("INV-CAUSAL: the effect does not record its cause".to_string());
    }
    store.close().unwrap();
    Ok(())
}

#[test]
fn a_causation_id_must_name_an_existing_event() {
    let tmp = tempfile::tempdir().unwrap();
    check_causal(tmp.path(), real).unwrap();
}

#[test]
fn external_causes_are_admitted_only_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path()).with_external_causes(true)).unwrap();
    store
        .append_with_options(
            &coord("x"),
            KIND,
            &serde_json::json!({}),
            AppendOptions::new().with_causation(42),
        )
        .unwrap();
    store.close().unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_causation_unchecked_is_caught_by_the_causal_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let err = check_causal(tmp.path(), |c| c.with_mutant(Mutant::CausationUnchecked))
        .expect_err("the seeded bug CausationUnchecked was not caught");
    assert!(err.starts_with("INV-CAUSAL"), "reported as {err}");
}
