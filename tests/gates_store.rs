//! Policy gates meeting the store: a denial persisted with `append_denial` and read back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x2, type_id = 9)]
struct Spend {
    amount: u64,
}

struct Cap(u64);
impl Gate<u64> for Cap {
    fn name(&self) -> &'static str {
        "cap"
    }
    fn evaluate(&self, amount: &u64) -> Result<(), Denial> {
        if *amount <= self.0 {
            Ok(())
        } else {
            Err(Denial::new("cap", "over the cap").with_code("over_cap"))
        }
    }
}

struct Always;
impl Gate<u64> for Always {
    fn name(&self) -> &'static str {
        "always"
    }
    fn evaluate(&self, _: &u64) -> Result<(), Denial> {
        Ok(())
    }
}

#[test]
fn denial_is_persisted_on_the_entity_chain_and_read_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinate::new("wallet:1", "pay").unwrap();
    let denial_id;
    {
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        store.append_typed(&coord, &Spend { amount: 1 }).unwrap();
        let mut gates = GateSet::new();
        gates.push(Cap(10));
        gates.push(Always);
        let (result, trace) = gates.evaluate_traced(&50, Proposal::new(Spend { amount: 50 }));
        let denial = result.expect_err("the cap gate denies 50");
        let r = store.append_denial(&coord, &denial, &trace).unwrap();
        assert_eq!(r.clock, 2, "the denial continues the entity chain");
        denial_id = r.event_id;
        store.close().unwrap();
    }
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let back: StoredEvent<DenialRecord> = store.get_typed(denial_id).unwrap();
    assert_eq!(back.event.header.event_kind, EventKind::SYSTEM_DENIAL);
    assert_eq!(back.event.payload.denial.code, "over_cap");
    let outcomes: Vec<_> = back
        .event
        .payload
        .trace
        .entries
        .iter()
        .map(|d| (d.gate.clone(), d.outcome.clone()))
        .collect();
    assert!(
        matches!(&outcomes[0], (g, GateOutcome::Denied { code, .. }) if g == "cap" && code == "over_cap")
    );
    assert!(matches!(&outcomes[1], (g, GateOutcome::Skipped) if g == "always"));
    let chain = store.stream("wallet:1");
    assert_eq!(chain.len(), 2);
    assert_eq!(
        chain[1].hash_chain.prev_hash,
        chain[0].hash_chain.event_hash
    );
}

#[test]
fn user_appends_cannot_use_the_reserved_system_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let coord = Coordinate::new("wallet:1", "pay").unwrap();
    let err = store
        .append(&coord, EventKind::SYSTEM_DENIAL, &Spend { amount: 1 })
        .unwrap_err();
    assert!(matches!(err, StoreError::Configuration(_)));
    assert!(store.stream("wallet:1").is_empty());
}

#[test]
fn pipeline_commit_through_the_store_yields_metadata_of_the_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let coord = Coordinate::new("wallet:2", "pay").unwrap();
    let mut gates = GateSet::new();
    gates.push(Cap(100));
    let pipeline = Pipeline::new(gates);
    let receipt = pipeline
        .evaluate(&5, Proposal::new(Spend { amount: 5 }))
        .unwrap();
    let mut seen = None;
    let committed = pipeline
        .commit(receipt, |p| {
            let r = store.append_typed(&coord, p)?;
            seen = Some(r);
            CommitMetadata::from_append_receipt(r)
        })
        .unwrap();
    let r = seen.unwrap();
    assert_eq!(committed.event_id(), r.event_id);
    assert_eq!(committed.sequence(), r.sequence);
    assert_eq!(
        store
            .get_typed::<Spend>(r.event_id)
            .unwrap()
            .event
            .payload
            .amount,
        5
    );
}
