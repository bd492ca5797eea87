//! proptest: any sequence of appends, batches and CAS appends on a few entities gives the same
//! outcomes and the same final state as a reference model (INV-CAS, INV-BATCH-ATOMIC,
//! INV-CHAIN), before and after a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::env::{CounterIds, ManualClock, SeededEntropy, SimDisk};
use batpak::prelude::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Append {
        entity: u8,
        cas: Option<u32>,
        value: u32,
    },
    Batch {
        items: Vec<(u8, Option<u32>, u32)>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let item = (0u8..3, proptest::option::of(0u32..4), any::<u32>());
    prop_oneof![
        3 => item.clone().prop_map(|(entity, cas, value)| Op::Append { entity, cas, value }),
        1 => proptest::collection::vec(item, 1..4).prop_map(|items| Op::Batch { items }),
    ]
}

/// The reference: per-entity list of values; a CAS names the entity's event count.
#[derive(Default, Debug, PartialEq, Eq)]
struct Model {
    entities: HashMap<u8, Vec<u32>>,
}

impl Model {
    fn clock(&self, e: u8) -> u32 {
        self.entities.get(&e).map_or(0, |v| v.len() as u32)
    }
    /// Returns whether the op is accepted.
    fn apply(&mut self, op: &Op) -> bool {
        match op {
            Op::Append { entity, cas, value } => {
                if cas.is_some_and(|c| c != self.clock(*entity)) {
                    return false;
                }
                self.entities.entry(*entity).or_default().push(*value);
                true
            }
            Op::Batch { items } => {
                let mut clocks: HashMap<u8, u32> = HashMap::new();
                for (e, cas, _) in items {
                    let c = *clocks.get(e).unwrap_or(&self.clock(*e));
                    if cas.is_some_and(|x| x != c) {
                        return false;
                    }
                    clocks.insert(*e, c + 1);
                }
                for (e, _, v) in items {
                    self.entities.entry(*e).or_default().push(*v);
                }
                true
            }
        }
    }
}

fn coord(e: u8) -> Coordinate {
    Coordinate::new(format!("acct:{e}"), "bank").unwrap()
}

fn kind() -> EventKind {
    EventKind::custom(0x7, 1)
}

fn options(cas: Option<u32>) -> AppendOptions {
    match cas {
        Some(c) => AppendOptions::default().with_cas(c),
        None => AppendOptions::default(),
    }
}

fn config(disk: &SimDisk) -> StoreConfig {
    StoreConfig::new("/db")
        .with_disk(Arc::new(disk.clone()))
        .with_clock_source(Arc::new(ManualClock::new(1_700_000_000_000_000)))
        .with_id_source(Arc::new(CounterIds::new(1)))
        .with_entropy_source(Arc::new(SeededEntropy::new(1)))
        .with_segment_max_bytes(1024)
}

fn state_of(store: &Store) -> Model {
    let mut m = Model::default();
    for e in 0u8..3 {
        let stream = store.stream(&format!("acct:{e}"));
        let mut prev = [0u8; 32];
        for (i, entry) in stream.iter().enumerate() {
            assert_eq!(entry.clock, i as u32 + 1, "INV-CHAIN: clocks 1, 2, 3, ...");
            assert_eq!(
                entry.hash_chain.prev_hash, prev,
                "INV-CHAIN: prev_hash links"
            );
            prev = entry.hash_chain.event_hash;
            let v: u32 = store.get_typed_raw_value(entry.event_id);
            m.entities.entry(e).or_default().push(v);
        }
    }
    m
}

trait ReadValue {
    fn get_typed_raw_value(&self, id: u128) -> u32;
}

impl ReadValue for Store {
    fn get_typed_raw_value(&self, id: u128) -> u32 {
        let raw = self.get_raw(id).unwrap();
        rmp_serde::from_slice(&raw.event.payload).unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn any_interleaving_of_appends_batches_and_cas_matches_the_model(ops in proptest::collection::vec(op(), 1..25)) {
        let disk = SimDisk::new();
        let store = Store::open(config(&disk)).unwrap();
        let mut model = Model::default();
        for op in &ops {
            let expected = model.apply(op);
            let got = match op {
                Op::Append { entity, cas, value } => store
                    .append_with_options(&coord(*entity), kind(), value, options(*cas))
                    .map(|_| ()),
                Op::Batch { items } => {
                    let items = items
                        .iter()
                        .map(|(e, cas, v)| {
                            BatchAppendItem::new(coord(*e), kind(), v, options(*cas), CausationRef::None).unwrap()
                        })
                        .collect();
                    store.append_batch(items).map(|_| ())
                }
            };
            prop_assert_eq!(got.is_ok(), expected, "op {:?} gave {:?}", op, got);
            if let Err(e) = got {
                prop_assert!(e.is_definite(), "a refused CAS is a definite error: {}", e);
            }
        }
        prop_assert_eq!(&state_of(&store), &model);
        store.close().unwrap();
        let store = Store::open(config(&disk)).unwrap();
        prop_assert_eq!(&state_of(&store), &model);
    }
}
