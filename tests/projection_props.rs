//! INV-PROJECTION as a property over real stores: for random histories of appends, atomic
//! batches, committed and cancelled fences, reopens (closed or dropped) and projections, with
//! in-memory snapshots and a `NativeCache` that outlives the store handles and deferred
//! durability (so the durable frontier trails the visible one), `project`, `project_at` and
//! `project_region` equal a plain fold of what a reference model says is visible.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x3, type_id = 1)]
struct Credit {
    amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x3, type_id = 2)]
struct Debit {
    amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x3, type_id = 3)]
struct Memo {
    n: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, EventSourced)]
#[batpak(input = JsonValueInput)]
#[batpak(event = Credit, handler = on_credit)]
#[batpak(event = Debit, handler = on_debit)]
struct Ledger {
    sum: i64,
    /// Order-sensitive digest: a skipped, repeated or reordered event changes it.
    digest: u64,
}

impl Ledger {
    fn on_credit(&mut self, c: &Credit) {
        self.step(c.amount);
    }
    fn on_debit(&mut self, d: &Debit) {
        self.step(-d.amount);
    }
    fn step(&mut self, delta: i64) {
        self.sum += delta;
        self.digest = self.digest.wrapping_mul(31).wrapping_add(delta as u64);
    }
}

/// The same fold on the raw lane, with another schema version (its own cache rows).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, EventSourced)]
#[batpak(input = RawMsgpackInput, cache_version = 7)]
#[batpak(event = Credit, handler = on_credit)]
#[batpak(event = Debit, handler = on_debit)]
struct RawLedger {
    inner: Ledger,
}

impl RawLedger {
    fn on_credit(&mut self, c: &Credit) {
        self.inner.on_credit(c);
    }
    fn on_debit(&mut self, d: &Debit) {
        self.inner.on_debit(d);
    }
}

/// One event: entity index, kind (0 credit, 1 debit, 2 memo), amount.
type Ev = (usize, u8, i64);

#[derive(Debug, Clone)]
enum Op {
    Append(Ev),
    Batch(Vec<Ev>),
    Fence(Vec<Ev>, bool),
    Reopen { close: bool },
    Project(usize),
    ProjectAt(usize, usize),
}

fn ev() -> impl Strategy<Value = Ev> {
    (0usize..3, 0u8..3, -50i64..50)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => ev().prop_map(Op::Append),
        2 => prop::collection::vec(ev(), 1..5).prop_map(Op::Batch),
        2 => (prop::collection::vec(ev(), 1..4), any::<bool>()).prop_map(|(v, c)| Op::Fence(v, c)),
        1 => any::<bool>().prop_map(|close| Op::Reopen { close }),
        4 => (0usize..3).prop_map(Op::Project),
        2 => (0usize..3, 0usize..20).prop_map(|(e, k)| Op::ProjectAt(e, k)),
    ]
}

const ENTITIES: [&str; 3] = ["led:a", "led:b", "led:a:sub"];

fn coord(e: usize) -> Coordinate {
    Coordinate::new(ENTITIES[e], "props").unwrap()
}

fn item((e, kind, amount): Ev) -> BatchAppendItem {
    let o = AppendOptions::default();
    let c = coord(e);
    match kind {
        0 => BatchAppendItem::typed(c, &Credit { amount }, o, CausationRef::None),
        1 => BatchAppendItem::typed(c, &Debit { amount }, o, CausationRef::None),
        _ => BatchAppendItem::typed(c, &Memo { n: amount }, o, CausationRef::None),
    }
    .unwrap()
}

fn open(dir: &Path) -> Store {
    let cfg = StoreConfig::new(dir.join("store"))
        .with_sync_every_n_events(3)
        .with_projection_snapshots(SnapshotPolicy {
            every_n_events: 2,
            max_entries: 4,
        });
    Store::open_with_native_cache(cfg, dir.join("cache")).unwrap()
}

/// The model's fold: the visible events of `entity`, in order, up to the `upto`-th one.
fn fold(model: &[Ev], entity: usize, upto: Option<usize>) -> Option<Ledger> {
    let mut state: Option<Ledger> = None;
    let mine = model.iter().filter(|e| e.0 == entity);
    for (i, &(_, kind, amount)) in mine.enumerate() {
        if upto.is_some_and(|u| i >= u) {
            break;
        }
        match kind {
            0 => state.get_or_insert_with(Ledger::default).step(amount),
            1 => state.get_or_insert_with(Ledger::default).step(-amount),
            _ => {}
        }
    }
    state
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Some(open(dir.path()));
    // Every event the model says is visible, in commit order.
    let mut model: Vec<Ev> = Vec::new();
    for op in ops {
        let s = store.as_ref().unwrap();
        match op {
            Op::Append(e) => {
                s.append_batch(vec![item(*e)]).unwrap();
                model.push(*e);
            }
            Op::Batch(v) => {
                s.append_batch(v.iter().copied().map(item).collect())
                    .unwrap();
                model.extend(v);
            }
            Op::Fence(v, commit) => {
                let f = s.begin_visibility_fence().unwrap();
                let t = f
                    .submit_batch(v.iter().copied().map(item).collect())
                    .unwrap();
                // Hidden until it commits: a projection now must not see it.
                for (e, name) in ENTITIES.iter().enumerate() {
                    let got = s.project::<Ledger>(name, &Freshness::Consistent).unwrap();
                    prop_assert_eq!(got, fold(&model, e, None), "inside an open fence");
                }
                if *commit {
                    f.commit().unwrap();
                    t.wait().unwrap();
                    model.extend(v);
                } else {
                    f.cancel().unwrap();
                    prop_assert!(t.wait().is_err());
                }
            }
            Op::Reopen { close } => {
                let s = store.take().unwrap();
                if *close {
                    s.close().unwrap();
                } else {
                    drop(s);
                }
                store = Some(open(dir.path()));
            }
            Op::Project(e) => {
                let want = fold(&model, *e, None);
                let got = s
                    .project::<Ledger>(ENTITIES[*e], &Freshness::Consistent)
                    .unwrap();
                prop_assert_eq!(&got, &want, "project {}", ENTITIES[*e]);
                let raw = s
                    .project::<RawLedger>(ENTITIES[*e], &Freshness::Consistent)
                    .unwrap()
                    .map(|r| r.inner);
                prop_assert_eq!(&raw, &want, "raw lane {}", ENTITIES[*e]);
            }
            Op::ProjectAt(e, k) => {
                let stream = s.stream(ENTITIES[*e]);
                if let Some(entry) = stream.get(*k) {
                    let got = s
                        .project_at::<Ledger>(ENTITIES[*e], entry.global_sequence)
                        .unwrap();
                    prop_assert_eq!(got, fold(&model, *e, Some(k + 1)), "project_at");
                }
            }
        }
    }
    // The region read model over every entity, in commit order.
    let s = store.as_ref().unwrap();
    let mut want: Option<Ledger> = None;
    for &(_, kind, amount) in &model {
        match kind {
            0 => want.get_or_insert_with(Ledger::default).step(amount),
            1 => want.get_or_insert_with(Ledger::default).step(-amount),
            _ => {}
        }
    }
    let got = s
        .project_region::<Ledger>(&Region::scope("props"), &Freshness::Consistent)
        .unwrap();
    prop_assert_eq!(got, want, "project_region");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn project_equals_the_fold_of_the_visible_events(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}
