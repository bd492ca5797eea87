//! Policy gates: a gate set with two gates, a permitted write, a denied one recorded with
//! `append_denial_record`, and a bypass with an audit record.
//!
//! Run with `cargo run --example policy_gates`.

use batpak::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x2, type_id = 1)]
struct Withdrawal {
    account: String,
    amount: u64,
}

/// What the gates look at.
struct Ctx {
    balance: u64,
    frozen: bool,
    amount: u64,
}

struct NotFrozen;
impl Gate<Ctx> for NotFrozen {
    fn name(&self) -> &'static str {
        "not_frozen"
    }
    fn evaluate(&self, ctx: &Ctx) -> Result<(), Denial> {
        if ctx.frozen {
            Err(Denial::new("not_frozen", "account is frozen").with_code("frozen"))
        } else {
            Ok(())
        }
    }
}

struct SufficientFunds;
impl Gate<Ctx> for SufficientFunds {
    fn name(&self) -> &'static str {
        "sufficient_funds"
    }
    fn evaluate(&self, ctx: &Ctx) -> Result<(), Denial> {
        if ctx.amount <= ctx.balance {
            Ok(())
        } else {
            Err(Denial::new("sufficient_funds", "balance too low")
                .with_code("insufficient_funds")
                .with_context("balance", ctx.balance.to_string())
                .with_context("amount", ctx.amount.to_string()))
        }
    }
}

struct Incident;
impl BypassReason for Incident {
    fn name(&self) -> &'static str {
        "incident-4711"
    }
    fn justification(&self) -> &'static str {
        "refund ordered by support during an outage"
    }
    fn approved_by(&self) -> Option<&'static str> {
        Some("on-call lead")
    }
}
static INCIDENT: Incident = Incident;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let account = Coordinate::new("account:7", "bank")?;

    let mut gates = GateSet::new();
    gates.push(NotFrozen);
    gates.push(SufficientFunds);
    let pipeline = Pipeline::new(gates);

    // 1. Permitted: every gate passes, the receipt lets us commit through the store.
    let ctx = Ctx {
        balance: 100,
        frozen: false,
        amount: 30,
    };
    let w = Withdrawal {
        account: "7".into(),
        amount: 30,
    };
    let receipt = pipeline
        .evaluate(&ctx, Proposal::new(w))
        .map_err(|d| d.to_string())?;
    let committed = pipeline.commit(receipt, |p| {
        CommitMetadata::from_append_receipt(store.append_typed(&account, p)?)
    })?;
    println!(
        "permitted: withdrawal of {} committed at sequence {} (gates {:?})",
        committed.payload().amount,
        committed.sequence(),
        committed.gates_passed()
    );

    // 2. Denied: the trace says which gates permitted, denied or were skipped; it is recorded
    //    on the entity's chain as a system event.
    let ctx = Ctx {
        balance: 100,
        frozen: false,
        amount: 500,
    };
    let w = Withdrawal {
        account: "7".into(),
        amount: 500,
    };
    let (result, trace) = pipeline.evaluate_traced(&ctx, Proposal::new(w));
    if let Err(denial) = result {
        println!("denied: {denial}");
        let r = store.append_denial_record(&account, &denial, &trace)?;
        let back: StoredEvent<DenialRecord> = store.get_typed(r.event_id)?;
        for d in &back.event.payload.trace.entries {
            println!("  recorded decision: {} -> {:?}", d.gate, d.outcome);
        }
    }

    // 3. Bypass: skips the gates but leaves an audit record.
    let w = Withdrawal {
        account: "7".into(),
        amount: 1000,
    };
    // `skip_gates` records which of the pipeline's gates were skipped (upstream's associated
    // `Pipeline::bypass(proposal, reason)` is offered too; its audit names no gates).
    let bypass = pipeline.skip_gates(Proposal::new(w), &INCIDENT);
    let audit = bypass.audit();
    let committed = Pipeline::<Ctx>::commit_bypass(bypass, |p| {
        CommitMetadata::from_append_receipt(store.append_typed(&account, p)?)
    })?;
    println!(
        "bypassed: {} committed at sequence {}; audit: reason {}, justification {:?}, approved by {:?}, skipped {:?}",
        committed.payload().amount,
        committed.sequence(),
        audit.reason,
        audit.justification,
        audit.approved_by,
        audit.gates_skipped
    );
    println!(
        "account:7 now has {} events on its chain",
        store.stream("account:7").len()
    );
    store.close()?;
    Ok(())
}
