//! Policy gates meeting the store: a denial persisted with `append_denial_record` (the trace
//! the caller has) or upstream's `append_denial` (the trace built from the gate set) and read
//! back.
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
        let r = store.append_denial_record(&coord, &denial, &trace).unwrap();
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

#[test]
fn upstream_append_denial_builds_the_trace_from_the_gate_set_and_returns_a_denial_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let coord = Coordinate::new("wallet:3", "pay").unwrap();
    let mut gates = GateSet::new();
    gates.push(Always);
    gates.push(Cap(10));
    gates.push(Always);
    let denial = gates
        .evaluate(&50, Proposal::new(Spend { amount: 50 }))
        .expect_err("the cap gate denies 50");
    let hash = [7u8; 32];
    let receipt: DenialReceipt;
    {
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        receipt = store
            .append_denial(
                &coord,
                <Spend as EventPayload>::KIND,
                &gates,
                &denial,
                Some(hash),
                Some("payments".to_string()),
                AppendOptions::new().with_correlation(42),
            )
            .unwrap();
        let e = store.entry(receipt.event_id).unwrap();
        assert_eq!(e.global_sequence, receipt.sequence);
        assert_eq!(e.kind, EventKind::SYSTEM_DENIAL);
        assert_eq!(
            e.correlation_id, 42,
            "the options apply to the denial event"
        );
        assert_eq!(e.disk_pos, receipt.disk_pos);
        store.close().unwrap();
    }
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let back: StoredEvent<DenialRecord> = store.get_typed(receipt.event_id).unwrap();
    let rec = back.event.payload;
    assert_eq!(rec.denial, denial);
    assert_eq!(rec.proposed_kind, Some(<Spend as EventPayload>::KIND));
    assert_eq!(rec.proposed_content_hash, Some(hash));
    assert_eq!(rec.pipeline_id.as_deref(), Some("payments"));
    let outcomes: Vec<_> = rec.trace.entries.iter().map(|d| &d.outcome).collect();
    assert!(matches!(outcomes[0], GateOutcome::Permitted));
    assert!(matches!(outcomes[1], GateOutcome::Denied { code, .. } if code == "over_cap"));
    assert!(matches!(outcomes[2], GateOutcome::Skipped));
    assert_eq!(rec.trace.denied_by().unwrap().gate, "cap");
    assert_eq!(back.event.header.content_hash, receipt.content_hash);
}

#[test]
fn append_denial_by_a_gate_outside_the_set_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let coord = Coordinate::new("wallet:4", "pay").unwrap();
    let mut gates: GateSet<u64> = GateSet::new();
    gates.push(Always);
    let stranger = Denial::new("somewhere_else", "no");
    let err = store
        .append_denial(
            &coord,
            EventKind::DATA,
            &gates,
            &stranger,
            None,
            None,
            AppendOptions::new(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Configuration(m) if m.contains("somewhere_else")),
        "{err}"
    );
    assert!(store.stream("wallet:4").is_empty());
    store.close().unwrap();
}

#[test]
fn denial_records_written_before_the_upstream_fields_still_decode() {
    // A record of the old shape (denial + trace only) reads back with the new fields None.
    #[derive(Serialize)]
    struct Old {
        denial: Denial,
        trace: DecisionTrace,
    }
    let old = Old {
        denial: Denial::new("cap", "over"),
        trace: DecisionTrace::default(),
    };
    let bytes = rmp_serde::to_vec_named(&old).unwrap();
    let rec: DenialRecord = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(rec.proposed_kind, None);
    assert_eq!(rec.pipeline_id, None);
}
