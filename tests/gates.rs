//! Policy gates and the pipeline: order, fail-fast, containment, traces, receipts, bypass.
use batpak::prelude::*;
use std::sync::{Arc, Mutex};

/// The context the test gates look at; every gate writes its name into `log` when it runs.
struct Ctx {
    amount: u64,
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Ctx {
    fn new(amount: u64) -> Self {
        Self {
            amount,
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn ran(&self) -> Vec<&'static str> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn record(&self, name: &'static str) {
        if let Ok(mut l) = self.log.lock() {
            l.push(name);
        }
    }
}

/// Permits when `amount <= max`.
struct AtMost {
    name: &'static str,
    max: u64,
}

impl Gate<Ctx> for AtMost {
    fn name(&self) -> &'static str {
        self.name
    }
    fn evaluate(&self, ctx: &Ctx) -> Result<(), Denial> {
        ctx.record(self.name);
        if ctx.amount <= self.max {
            Ok(())
        } else {
            Err(
                Denial::new(self.name, format!("{} > {}", ctx.amount, self.max))
                    .with_code("too_large")
                    .with_context("max", self.max.to_string()),
            )
        }
    }
}

/// Panics with a `&str` or a `String` payload.
struct Panics {
    name: &'static str,
    formatted: bool,
}

impl Gate<Ctx> for Panics {
    fn name(&self) -> &'static str {
        self.name
    }
    #[allow(clippy::panic)]
    fn evaluate(&self, ctx: &Ctx) -> Result<(), Denial> {
        ctx.record(self.name);
        if self.formatted {
            panic!("boom {}", ctx.amount);
        }
        panic!("static boom");
    }
}

fn gate(name: &'static str, max: u64) -> AtMost {
    AtMost { name, max }
}

fn three_gates() -> GateSet<Ctx> {
    let mut set = GateSet::new();
    set.push(gate("a", 100));
    set.push(gate("b", 50));
    set.push(gate("c", 10));
    set
}

#[test]
fn gates_run_in_push_order_and_receipt_lists_them() {
    let set = three_gates();
    assert_eq!(set.names(), vec!["a", "b", "c"]);
    assert_eq!(set.len(), 3);
    assert!(!set.is_empty());
    let ctx = Ctx::new(5);
    let receipt = set
        .evaluate(&ctx, Proposal::new("p"))
        .map_err(|d| d.to_string());
    assert_eq!(ctx.ran(), vec!["a", "b", "c"]);
    let receipt = receipt.unwrap_or_else(|e| unreachable!("all gates permit 5: {e}"));
    assert_eq!(receipt.gates_passed(), &["a", "b", "c"]);
    assert_eq!(*receipt.payload(), "p");
}

#[test]
fn fail_fast_stops_at_first_denial() {
    let set = three_gates();
    let ctx = Ctx::new(60);
    let denial = set.evaluate(&ctx, Proposal::new(())).err();
    assert_eq!(
        ctx.ran(),
        vec!["a", "b"],
        "gate c must not run after b denied"
    );
    let denial = denial.unwrap_or_else(|| unreachable!("b denies 60"));
    assert_eq!(denial.gate, "b");
    assert_eq!(denial.code, "too_large");
    assert_eq!(denial.message, "60 > 50");
    assert_eq!(denial.context.get("max").map(String::as_str), Some("50"));
}

#[test]
fn evaluate_all_runs_every_gate_and_returns_every_denial() {
    let set = three_gates();
    let ctx = Ctx::new(60);
    let denials = set.evaluate_all(&ctx);
    assert_eq!(ctx.ran(), vec!["a", "b", "c"]);
    let gates: Vec<&str> = denials.iter().map(|d| d.gate.as_str()).collect();
    assert_eq!(gates, vec!["b", "c"]);
    assert!(set.evaluate_all(&Ctx::new(1)).is_empty());
}

#[test]
fn empty_gate_set_permits_with_empty_receipt() {
    let set: GateSet<Ctx> = GateSet::default();
    assert!(set.is_empty());
    let (result, trace) = set.evaluate_traced(&Ctx::new(1_000), Proposal::new(9));
    let receipt = result.unwrap_or_else(|d| unreachable!("no gate, no denial: {d}"));
    assert!(receipt.gates_passed().is_empty());
    assert!(trace.entries.is_empty());
    assert!(trace.is_permitted());
}

#[test]
fn panicking_gate_becomes_gate_panicked_denial_and_later_gates_are_skipped() {
    let mut set = GateSet::new();
    set.push(gate("a", 100));
    set.push(Panics {
        name: "bad",
        formatted: false,
    });
    set.push(gate("c", 100));
    let ctx = Ctx::new(1);
    let (result, trace) = set.evaluate_traced(&ctx, Proposal::new(()));
    assert_eq!(ctx.ran(), vec!["a", "bad"]);
    let denial = result
        .err()
        .unwrap_or_else(|| unreachable!("the panic denies"));
    assert_eq!(denial.gate, "bad");
    assert_eq!(denial.code, Denial::CODE_GATE_PANICKED);
    assert_eq!(denial.code, "gate_panicked");
    assert!(denial.message.contains("static boom"), "{}", denial.message);
    let outcomes: Vec<(&str, &GateOutcome)> = trace
        .entries
        .iter()
        .map(|e| (e.gate.as_str(), &e.outcome))
        .collect();
    assert_eq!(outcomes[0], ("a", &GateOutcome::Permitted));
    assert!(matches!(
        outcomes[1],
        ("bad", GateOutcome::Denied { code, .. }) if code == "gate_panicked"
    ));
    assert_eq!(outcomes[2], ("c", &GateOutcome::Skipped));
}

#[test]
fn panic_with_formatted_message_is_reported_in_fail_fast_and_evaluate_all() {
    let mut set = GateSet::new();
    set.push(Panics {
        name: "bad",
        formatted: true,
    });
    set.push(gate("small", 1));
    let ctx = Ctx::new(7);
    let denial = set.evaluate(&ctx, Proposal::new(())).err();
    let denial = denial.unwrap_or_else(|| unreachable!("the panic denies"));
    assert_eq!(denial.code, "gate_panicked");
    assert!(denial.message.contains("boom 7"), "{}", denial.message);

    let all = set.evaluate_all(&Ctx::new(7));
    let codes: Vec<&str> = all.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, vec!["gate_panicked", "too_large"]);
}

#[test]
fn trace_records_permitted_denied_and_skipped() {
    let set = three_gates();
    let (result, trace) = set.evaluate_traced(&Ctx::new(60), Proposal::new(()));
    assert!(result.is_err());
    assert_eq!(
        trace.entries,
        vec![
            GateDecision {
                gate: "a".into(),
                outcome: GateOutcome::Permitted
            },
            GateDecision {
                gate: "b".into(),
                outcome: GateOutcome::Denied {
                    code: "too_large".into(),
                    message: "60 > 50".into()
                }
            },
            GateDecision {
                gate: "c".into(),
                outcome: GateOutcome::Skipped
            },
        ]
    );
    assert!(!trace.is_permitted());
    assert_eq!(trace.denied_by().map(|e| e.gate.as_str()), Some("b"));

    let (ok, trace) = set.evaluate_traced(&Ctx::new(1), Proposal::new(()));
    assert!(ok.is_ok());
    assert!(trace
        .entries
        .iter()
        .all(|e| e.outcome == GateOutcome::Permitted));
    assert_eq!(trace.entries.len(), 3);
    assert!(trace.denied_by().is_none());
}

#[test]
fn receipt_into_parts_returns_payload_and_gate_names() {
    let set = three_gates();
    let receipt = set.evaluate(&Ctx::new(1), Proposal::new(vec![1, 2, 3]));
    let (payload, gates) = receipt
        .map(Receipt::into_parts)
        .unwrap_or_else(|d| unreachable!("permits: {d}"));
    assert_eq!(payload, vec![1, 2, 3]);
    assert_eq!(gates, vec!["a", "b", "c"]);
}

#[test]
fn proposal_accessors_and_map() {
    let p = Proposal::new(21u32);
    assert_eq!(*p.payload(), 21);
    let doubled = p.map(|x| u64::from(x) * 2);
    assert_eq!(doubled.into_payload(), 42u64);
}

#[test]
fn pipeline_commit_passes_payload_to_closure_and_keeps_metadata() {
    let pipeline = Pipeline::new(three_gates());
    let ctx = Ctx::new(3);
    let receipt = pipeline
        .evaluate(&ctx, Proposal::new("order".to_string()))
        .unwrap_or_else(|d| unreachable!("permits: {d}"));
    let mut seen = None;
    let committed = pipeline.commit(receipt, |payload: &String| {
        seen = Some(payload.clone());
        CommitMetadata::new(11, 22, [7; 32])
    });
    assert_eq!(seen.as_deref(), Some("order"));
    let committed = committed.unwrap_or_else(|e| unreachable!("closure succeeded: {e}"));
    assert_eq!(committed.payload(), "order");
    assert_eq!(committed.event_id(), 11);
    assert_eq!(committed.sequence(), 22);
    assert_eq!(committed.hash(), &[7; 32]);
    assert_eq!(committed.metadata().content_hash(), [7; 32]);
    assert_eq!(committed.gates_passed(), &["a", "b", "c"]);
    assert!(committed.bypass_audit().is_none());
    let (payload, metadata) = committed.into_parts();
    assert_eq!(payload, "order");
    assert!(matches!(CommitMetadata::new(11, 22, [7; 32]), Ok(m) if m == metadata));
}

#[test]
fn pipeline_commit_propagates_closure_error() {
    #[derive(Debug, PartialEq)]
    struct DiskFull;
    let pipeline = Pipeline::new(three_gates());
    let receipt = pipeline
        .evaluate(&Ctx::new(3), Proposal::new(5u8))
        .unwrap_or_else(|d| unreachable!("permits: {d}"));
    let result = pipeline.commit(receipt, |_: &u8| Err::<CommitMetadata, _>(DiskFull));
    assert_eq!(result.err(), Some(DiskFull));
}

#[test]
fn pipeline_evaluate_denies_like_its_gate_set() {
    let pipeline = Pipeline::new(three_gates());
    assert_eq!(pipeline.gates().names(), vec!["a", "b", "c"]);
    let denial = pipeline.evaluate(&Ctx::new(20), Proposal::new(())).err();
    assert_eq!(denial.map(|d| d.gate), Some("c".to_string()));
    let (result, trace) = pipeline.evaluate_traced(&Ctx::new(20), Proposal::new(()));
    assert!(result.is_err());
    assert_eq!(trace.denied_by().map(|e| e.gate.as_str()), Some("c"));
}

struct Migration;
impl BypassReason for Migration {
    fn name(&self) -> &'static str {
        "migration"
    }
    fn justification(&self) -> &'static str {
        "replaying events imported from the legacy system"
    }
    fn approved_by(&self) -> Option<&'static str> {
        Some("ops-lead")
    }
}

struct Unapproved;
impl BypassReason for Unapproved {
    fn name(&self) -> &'static str {
        "hotfix"
    }
    fn justification(&self) -> &'static str {
        "incident 42"
    }
}

#[test]
fn bypass_skips_gates_and_records_audit() {
    static REASON: Migration = Migration;
    let pipeline = Pipeline::new(three_gates());
    let bypass = pipeline.skip_gates(Proposal::new(1_000_000u64), &REASON);
    assert_eq!(*bypass.payload(), 1_000_000);
    assert_eq!(bypass.reason(), "migration");
    assert_eq!(
        bypass.justification(),
        "replaying events imported from the legacy system"
    );
    assert_eq!(bypass.approved_by(), Some("ops-lead"));
    assert_eq!(bypass.gates_skipped(), Some(&["a", "b", "c"][..]));
    assert_eq!(
        bypass.audit(),
        BypassAudit {
            reason: "migration".into(),
            justification: "replaying events imported from the legacy system".into(),
            approved_by: Some("ops-lead".into()),
            gates_skipped: Some(vec!["a".into(), "b".into(), "c".into()]),
        }
    );
    let committed =
        Pipeline::<Ctx>::commit_bypass(bypass, |p: &u64| CommitMetadata::new(1, *p, [0; 32]))
            .unwrap_or_else(|e| unreachable!("closure succeeded: {e}"));
    assert_eq!(committed.sequence(), 1_000_000);
    assert!(committed.gates_passed().is_empty());
    let audit = committed.bypass_audit().map(|a| a.reason.as_str());
    assert_eq!(audit, Some("migration"));
}

#[test]
fn bypass_without_approver_can_name_one_later() {
    static REASON: Unapproved = Unapproved;
    let pipeline: Pipeline<Ctx> = Pipeline::new(GateSet::new());
    let bypass = pipeline.skip_gates(Proposal::new("x"), &REASON);
    assert_eq!(bypass.approved_by(), None);
    assert_eq!(bypass.gates_skipped(), Some(&[][..]));
    let (payload, audit) = bypass.with_approved_by("alice").into_parts();
    assert_eq!(payload, "x");
    assert_eq!(audit.reason, "hotfix");
    assert_eq!(audit.justification, "incident 42");
    assert_eq!(audit.approved_by.as_deref(), Some("alice"));
}

#[test]
fn denial_builders_and_display() {
    let plain = Denial::new("quota", "over quota");
    assert_eq!(plain.gate, "quota");
    assert_eq!(plain.code, "");
    assert!(plain.context.is_empty());
    assert_eq!(plain.to_string(), "[quota] over quota");

    let full = Denial::new("quota", "over quota")
        .with_code("quota_exceeded")
        .with_context("used", "11")
        .with_context("limit", "10")
        .with_context("used", "12");
    assert_eq!(full.code, "quota_exceeded");
    assert_eq!(full.context.len(), 2, "a repeated key replaces its value");
    assert_eq!(full.context.get("used").map(String::as_str), Some("12"));
    // Upstream's Display: `[gate] message`; the code is read from the field.
    assert_eq!(full.to_string(), "[quota] over quota");
    let as_error: &dyn std::error::Error = &full;
    assert_eq!(as_error.to_string(), full.to_string());
    assert_ne!(full.clone(), plain);
}

#[test]
fn denial_and_trace_roundtrip_through_serde() {
    let denial = Denial::new("g", "m").with_code("c").with_context("k", "v");
    let json = serde_json::to_string(&denial).unwrap_or_default();
    let back: Option<Denial> = serde_json::from_str(&json).ok();
    assert_eq!(back, Some(denial.clone()));

    let bytes = rmp_serde::to_vec_named(&denial).unwrap_or_default();
    let back: Option<Denial> = rmp_serde::from_slice(&bytes).ok();
    assert_eq!(back, Some(denial));

    let (_, trace) = three_gates().evaluate_traced(&Ctx::new(60), Proposal::new(()));
    assert_eq!(trace.entries.len(), 3);
    let json = serde_json::to_string(&trace).unwrap_or_default();
    let back: Option<DecisionTrace> = serde_json::from_str(&json).ok();
    assert_eq!(back, Some(trace.clone()));
    let bytes = rmp_serde::to_vec_named(&trace).unwrap_or_default();
    let back: Option<DecisionTrace> = rmp_serde::from_slice(&bytes).ok();
    assert_eq!(back, Some(trace));
}

#[test]
fn gate_sets_and_pipelines_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<GateSet<Ctx>>();
    assert_send_sync::<Pipeline<Ctx>>();
    let set = Arc::new(three_gates());
    let handles: Vec<_> = (0..4u64)
        .map(|i| {
            let set = Arc::clone(&set);
            std::thread::spawn(move || set.evaluate(&Ctx::new(i * 20), Proposal::new(i)).is_ok())
        })
        .collect();
    let results: Vec<bool> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or(false))
        .collect();
    assert_eq!(results, vec![true, false, false, false]);
}

#[test]
fn upstreams_associated_bypass_names_no_gates_and_commits_without_a_pipeline() {
    static REASON: Migration = Migration;
    // Upstream's shape: associated functions, no pipeline value needed.
    let bypass = Pipeline::<Ctx>::bypass(Proposal::new(7u64), &REASON);
    assert_eq!(bypass.gates_skipped(), None);
    assert_eq!(bypass.approved_by(), Some("ops-lead"));
    assert_eq!(bypass.audit().gates_skipped, None);
    let committed =
        Pipeline::<Ctx>::commit_bypass(bypass, |p: &u64| CommitMetadata::new(2, *p, [0; 32]))
            .unwrap_or_else(|e| unreachable!("closure succeeded: {e}"));
    assert_eq!(committed.sequence(), 7);
    let audit = committed.bypass_audit().cloned();
    assert_eq!(
        audit,
        Some(BypassAudit {
            reason: "migration".into(),
            justification: "replaying events imported from the legacy system".into(),
            approved_by: Some("ops-lead".into()),
            gates_skipped: None,
        })
    );
}
