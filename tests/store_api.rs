//! The public Store API against real files (`FsDisk` in a temporary directory): writes, reads,
//! regions, the entity chain, batches, lifecycle, the directory lock, input validation,
//! configuration, rotation, deferred durability, CAS, idempotency, causality, backpressure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x1, type_id = 1)]
struct Deposited {
    account: String,
    amount: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x1, type_id = 2)]
struct Withdrawn {
    account: String,
    amount: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x2, type_id = 1)]
struct Noted {
    text: String,
}

/// Claims the same kind as `Deposited`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x1, type_id = 1)]
struct Impostor {
    whatever: u8,
}

const DEPOSIT: EventKind = Deposited::KIND;
const NOTE: EventKind = Noted::KIND;

fn coord(entity: &str, scope: &str) -> Coordinate {
    Coordinate::new(entity, scope).unwrap()
}

fn dep(account: &str, amount: u64) -> Deposited {
    Deposited {
        account: account.into(),
        amount,
    }
}

fn open(dir: &Path) -> Store {
    Store::open(StoreConfig::new(dir).with_lifecycle_events(false)).unwrap()
}

fn ids(entries: &[IndexEntry]) -> Vec<u128> {
    entries.iter().map(|e| e.event_id).collect()
}

#[test]
fn typed_appends_read_back_through_every_read_api() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let acct = coord("account:1", "bank");
    let r1 = store.append_typed(&acct, &dep("a1", 10)).unwrap();
    let r2 = store
        .append_typed(
            &acct,
            &Withdrawn {
                account: "a1".into(),
                amount: 3,
            },
        )
        .unwrap();
    let r3 = store
        .append_typed(&coord("account:2", "bank"), &dep("a2", 7))
        .unwrap();

    let got = store.get_typed::<Deposited>(r1.event_id).unwrap();
    assert_eq!(got.event.payload, dep("a1", 10));
    assert_eq!(got.coordinate, acct);
    assert_eq!(got.event.header.event_kind, DEPOSIT);
    assert_eq!(got.event.header.event_id, r1.event_id);
    assert_eq!(got.event.header.content_hash, r1.content_hash);

    let json = store.get(r2.event_id).unwrap();
    assert_eq!(json.event.payload["amount"], serde_json::json!(3));
    assert_eq!(json.event.payload["account"], serde_json::json!("a1"));

    let raw = store.get_raw(r3.event_id).unwrap();
    let decoded: Deposited = rmp_serde::from_slice(&raw.event.payload).unwrap();
    assert_eq!(decoded, dep("a2", 7));
    assert_eq!(
        raw.event.header.payload_size as usize,
        raw.event.payload.len()
    );

    // Asking for the wrong type is refused, not mis-decoded.
    assert!(store.get_typed::<Withdrawn>(r1.event_id).is_err());
    assert!(matches!(
        store.get(0xdead_beef),
        Err(StoreError::NotFound(0xdead_beef))
    ));

    assert_eq!(
        ids(&store.stream("account:1")),
        vec![r1.event_id, r2.event_id]
    );
    assert_eq!(
        ids(&store.by_scope("bank")),
        vec![r1.event_id, r2.event_id, r3.event_id]
    );
    assert_eq!(ids(&store.by_fact(DEPOSIT)), vec![r1.event_id, r3.event_id]);
    assert_eq!(ids(&store.by_fact_typed::<Withdrawn>()), vec![r2.event_id]);
    assert!(store.stream("account:3").is_empty());
    store.close().unwrap();
}

#[test]
fn query_regions_select_by_entity_namespace_scope_kind_and_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let user = store
        .append(&coord("user", "eu"), NOTE, &Noted { text: "u".into() })
        .unwrap();
    let user1a = store
        .append_typed(&coord("user:1", "eu"), &dep("x", 1))
        .unwrap();
    let user1b = store
        .append(&coord("user:1", "eu"), NOTE, &Noted { text: "n".into() })
        .unwrap();
    let user1c = store
        .append_typed(&coord("user:1", "us"), &dep("x", 2))
        .unwrap();
    let user2 = store
        .append_typed(&coord("user:2:sub", "us"), &dep("y", 3))
        .unwrap();
    let users = store
        .append_typed(&coord("users", "eu"), &dep("z", 4))
        .unwrap();

    // Namespace match: "user" selects "user", "user:1", "user:2:sub", never "users".
    assert_eq!(
        ids(&store.query(&Region::entity("user"))),
        vec![
            user.event_id,
            user1a.event_id,
            user1b.event_id,
            user1c.event_id,
            user2.event_id
        ]
    );
    assert_eq!(
        ids(&store.query(&Region::entity("user:1"))),
        vec![user1a.event_id, user1b.event_id, user1c.event_id]
    );
    assert_eq!(
        ids(&store.query(&Region::scope("us"))),
        vec![user1c.event_id, user2.event_id]
    );
    assert_eq!(
        ids(&store.query(&Region::entity("user").with_scope("eu"))),
        vec![user.event_id, user1a.event_id, user1b.event_id]
    );
    assert_eq!(
        ids(&store.query(&Region::all().with_fact(KindFilter::Exact(NOTE)))),
        vec![user.event_id, user1b.event_id]
    );
    assert_eq!(
        ids(&store.query(&Region::all().with_fact(KindFilter::Category(0x1)))),
        vec![
            user1a.event_id,
            user1c.event_id,
            user2.event_id,
            users.event_id
        ]
    );
    assert_eq!(
        ids(&store.query(&Region::entity("user").with_fact_category(0x2))),
        vec![user.event_id, user1b.event_id]
    );
    // user:1 has clocks 1, 2, 3 (the entity chain spans scopes).
    assert_eq!(
        ids(&store.query(&Region::entity("user:1").with_clock_range((2, 3)))),
        vec![user1b.event_id, user1c.event_id]
    );
    assert_eq!(
        ids(&store.query(&Region::entity("user:1").with_clock_range((2, 2)))),
        vec![user1b.event_id]
    );
    assert_eq!(store.query(&Region::all()).len(), 6);
    assert!(store.query(&Region::entity("nobody")).is_empty());
    store.close().unwrap();
}

#[test]
fn entity_clock_counts_from_one_and_the_hash_chain_links_each_event_to_the_previous() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let e = coord("chain", "s");
    let receipts: Vec<AppendReceipt> = (0..3)
        .map(|i| store.append_typed(&e, &dep("c", i)).unwrap())
        .collect();
    // Another entity interleaved does not disturb the chain.
    store
        .append_typed(&coord("other", "s"), &dep("o", 0))
        .unwrap();
    let r4 = store.append_typed(&e, &dep("c", 3)).unwrap();

    assert_eq!(
        receipts.iter().map(|r| r.clock).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(r4.clock, 4);
    let stream = store.stream("chain");
    assert_eq!(
        stream.iter().map(|x| x.clock).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(stream[0].hash_chain.prev_hash, [0u8; 32]);
    for pair in stream.windows(2) {
        assert_eq!(pair[1].hash_chain.prev_hash, pair[0].hash_chain.event_hash);
        assert_ne!(pair[1].hash_chain.event_hash, pair[0].hash_chain.event_hash);
    }
    // get() reports the same chain as the index.
    let got = store.get(r4.event_id).unwrap();
    assert_eq!(got.event.hash_chain, Some(stream[3].hash_chain));
    assert_eq!(got.event.header.position.clock, 4);
    store.close().unwrap();
}

#[test]
fn identical_payloads_on_one_entity_still_have_distinct_event_hashes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let e = coord("same", "s");
    for _ in 0..3 {
        store.append_typed(&e, &dep("same", 1)).unwrap();
    }
    let stream = store.stream("same");
    assert_ne!(
        stream[0].hash_chain.event_hash,
        stream[1].hash_chain.event_hash
    );
    assert_ne!(
        stream[1].hash_chain.event_hash,
        stream[2].hash_chain.event_hash
    );
    let last = stream[2].event_id;
    assert_eq!(
        ids(&store.walk_ancestor_entries(last, 10)),
        vec![stream[1].event_id, stream[0].event_id]
    );
    // Upstream's shape: the event itself first, then its ancestors, read as JSON.
    let walked: Vec<u128> = store
        .walk_ancestors(last, 10)
        .iter()
        .map(|e| e.event.event_id())
        .collect();
    assert_eq!(
        walked,
        vec![stream[2].event_id, stream[1].event_id, stream[0].event_id]
    );
    assert_eq!(
        store.walk_ancestors(last, 2).len(),
        2,
        "limit counts the event"
    );
    assert!(store.walk_ancestors(last, 0).is_empty());
    assert!(store.walk_ancestors(0xbad, 10).is_empty(), "unknown id");
    let w = store.walk_ancestors(last, 10);
    assert!(w[2].event.is_genesis() && !w[0].event.is_genesis());
    assert_eq!(w[0].coordinate, stream[2].coord);
    store.close().unwrap();
}

#[test]
fn receipts_carry_strictly_increasing_global_sequences() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut last = None;
    for i in 0..50u64 {
        let c = coord(&format!("e{}", i % 7), "s");
        let r = store.append_typed(&c, &dep("s", i)).unwrap();
        assert!(r.durable, "default mode acknowledges only durable appends");
        if let Some(prev) = last {
            assert!(r.sequence > prev, "{} after {}", r.sequence, prev);
        }
        last = Some(r.sequence);
        assert_eq!(store.entry(r.event_id).unwrap().global_sequence, r.sequence);
    }
    store.close().unwrap();
}

#[test]
fn a_batch_is_atomic_and_resolves_prior_item_and_absolute_causation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let order = coord("order:1", "shop");
    let root = store.append_typed(&order, &dep("root", 0)).unwrap();
    let items = vec![
        BatchAppendItem::typed(
            order.clone(),
            &dep("b0", 1),
            AppendOptions::default(),
            CausationRef::Absolute(root.event_id),
        )
        .unwrap(),
        BatchAppendItem::new(
            coord("order:2", "shop"),
            NOTE,
            &Noted { text: "b1".into() },
            AppendOptions::default(),
            CausationRef::PriorItem(0),
        )
        .unwrap(),
        BatchAppendItem::typed(
            order.clone(),
            &dep("b2", 2),
            AppendOptions::default(),
            CausationRef::PriorItem(1),
        )
        .unwrap(),
    ];
    assert_eq!(items[1].kind(), NOTE);
    assert_eq!(items[1].coordinate().entity(), "order:2");
    let receipts = store.append_batch(items).unwrap();
    assert_eq!(receipts.len(), 3);
    assert!(receipts.windows(2).all(|w| w[1].sequence > w[0].sequence));
    assert_eq!(receipts[0].clock, 2);
    assert_eq!(receipts[1].clock, 1);
    assert_eq!(receipts[2].clock, 3);

    let e0 = store.entry(receipts[0].event_id).unwrap();
    let e1 = store.entry(receipts[1].event_id).unwrap();
    let e2 = store.entry(receipts[2].event_id).unwrap();
    assert_eq!(e0.causation_id, Some(root.event_id));
    assert_eq!(e1.causation_id, Some(receipts[0].event_id));
    assert_eq!(e2.causation_id, Some(receipts[1].event_id));
    assert_eq!(
        ids(&store.causes(receipts[2].event_id, 10)),
        vec![receipts[1].event_id, receipts[0].event_id, root.event_id]
    );

    // A batch whose last item fails CAS writes nothing at all.
    let before = store.stats().event_count;
    let bad = vec![
        BatchAppendItem::typed(
            order.clone(),
            &dep("x", 1),
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap(),
        BatchAppendItem::typed(
            coord("order:3", "shop"),
            &dep("y", 1),
            AppendOptions::default().with_cas(5),
            CausationRef::None,
        )
        .unwrap(),
    ];
    let err = store.append_batch(bad).unwrap_err();
    assert!(matches!(
        err,
        StoreError::BatchFailed {
            item_index: 1,
            stage: BatchStage::Validation,
            ..
        }
    ));
    assert!(err.is_definite());
    assert_eq!(store.stats().event_count, before);
    assert_eq!(store.stream("order:1").len(), 3);
    assert!(store.stream("order:3").is_empty());
    // The failed batch did not consume the entity clock.
    assert_eq!(store.append_typed(&order, &dep("z", 1)).unwrap().clock, 4);
    store.close().unwrap();
}

#[test]
fn a_batch_larger_than_the_limit_fails_validation_and_nothing_becomes_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_batch_max_size(2),
    )
    .unwrap();
    let items: Vec<BatchAppendItem> = (0..3)
        .map(|i| {
            BatchAppendItem::typed(
                coord("big", "s"),
                &dep("b", i),
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect();
    let err = store.append_batch(items).unwrap_err();
    assert!(matches!(
        err,
        StoreError::BatchFailed {
            stage: BatchStage::Validation,
            ..
        }
    ));
    assert!(store.stream("big").is_empty());
    assert_eq!(store.stats().event_count, 0);
    store.close().unwrap();
    let store = open(tmp.path());
    assert!(store.stream("big").is_empty());
    assert_eq!(store.stats().event_count, 0);
    store.close().unwrap();
}

#[test]
fn close_then_reopen_keeps_ids_sequences_coordinates_kinds_and_payloads() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let mut written = Vec::new();
    for i in 0..20u64 {
        let c = coord(
            &format!("acct:{}", i % 3),
            if i % 2 == 0 { "a" } else { "b" },
        );
        let r = if i % 4 == 0 {
            store
                .append(
                    &c,
                    NOTE,
                    &Noted {
                        text: format!("n{i}"),
                    },
                )
                .unwrap()
        } else {
            store.append_typed(&c, &dep("r", i)).unwrap()
        };
        written.push((r, store.get(r.event_id).unwrap()));
    }
    // A batch (whose commit record also takes a sequence) followed by more appends: the
    // events after it keep their sequences across recovery (INV-STABLE-SEQ).
    let batch = (0..2u64)
        .map(|i| {
            BatchAppendItem::typed(
                coord("acct:batch", "a"),
                &dep("batch", i),
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect();
    for r in store.append_batch(batch).unwrap() {
        written.push((r, store.get(r.event_id).unwrap()));
    }
    for i in 0..3u64 {
        let r = store
            .append_typed(&coord("acct:tail", "b"), &dep("tail", i))
            .unwrap();
        written.push((r, store.get(r.event_id).unwrap()));
    }
    let all_before = store.query(&Region::all());
    store.close().unwrap();

    let store = open(tmp.path());
    let all_after = store.query(&Region::all());
    assert_eq!(all_before, all_after);
    for (r, before) in &written {
        let after = store.get(r.event_id).unwrap();
        assert_eq!(after.coordinate, before.coordinate);
        assert_eq!(after.event.header, before.event.header);
        assert_eq!(after.event.payload, before.event.payload);
        assert_eq!(after.event.hash_chain, before.event.hash_chain);
        assert_eq!(store.entry(r.event_id).unwrap().global_sequence, r.sequence);
    }
    // The log continues after the recovered sequences and entity clocks.
    let next = store
        .append_typed(&coord("acct:0", "a"), &dep("n", 0))
        .unwrap();
    assert!(next.sequence > written.last().unwrap().0.sequence);
    assert_eq!(next.clock, 8);
    store.close().unwrap();
}

#[test]
fn dropping_the_store_without_close_persists_everything_and_releases_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, ticket_id) = {
        let store = open(tmp.path());
        let r = store.append_typed(&coord("d", "s"), &dep("d", 1)).unwrap();
        // A submitted but never awaited ticket is drained by drop.
        let t = store.submit_typed(&coord("d", "s"), &dep("d", 2)).unwrap();
        drop(store);
        let id = t.wait().map(|r| r.event_id);
        (r, id)
    };
    let store = open(tmp.path());
    assert_eq!(
        store
            .get_typed::<Deposited>(r.event_id)
            .unwrap()
            .event
            .payload,
        dep("d", 1)
    );
    let stream = store.stream("d");
    assert_eq!(stream.len(), 2);
    if let Ok(id) = ticket_id {
        assert_eq!(stream[1].event_id, id);
    }
    store.close().unwrap();
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_and_the_first_store_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let first = open(tmp.path());
    let r = first.append_typed(&coord("x", "s"), &dep("x", 1)).unwrap();
    let second = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false));
    assert!(matches!(second, Err(StoreError::StoreLocked { .. })));
    // The refused open damaged nothing.
    let r2 = first.append_typed(&coord("x", "s"), &dep("x", 2)).unwrap();
    assert_eq!(r2.clock, 2);
    assert_eq!(first.get(r.event_id).unwrap().event.payload["amount"], 1);
    first.close().unwrap();
    let reopened = open(tmp.path());
    assert_eq!(reopened.stream("x").len(), 2);
    reopened.close().unwrap();
}

#[test]
fn invalid_coordinates_are_refused_with_a_coordinate_error() {
    let long = "x".repeat(1025);
    let bad: Vec<(&str, &str)> = vec![
        ("", "s"),
        ("e", ""),
        ("a/b", "s"),
        ("e", "s/t"),
        ("a..b", "s"),
        ("..", "s"),
        ("a\0b", "s"),
        ("e", "s\0"),
        ("a\nb", "s"),
        (&long, "s"),
        ("e", &long),
    ];
    for (e, s) in bad {
        let r = Coordinate::new(e, s);
        assert!(r.is_err(), "{e:?}@{s:?} was accepted");
        let as_store: StoreError = r.unwrap_err().into();
        assert!(matches!(as_store, StoreError::Coordinate(_)));
    }
    assert!(matches!(
        Coordinate::new("", "s"),
        Err(CoordinateError::EmptyEntity)
    ));
    assert!(matches!(
        Coordinate::new("e", ""),
        Err(CoordinateError::EmptyScope)
    ));
    assert!(matches!(
        Coordinate::new(&long, "s"),
        Err(CoordinateError::EntityTooLong {
            len: 1025,
            max: 1024
        })
    ));
    assert!(matches!(
        Coordinate::new("e", &long),
        Err(CoordinateError::ScopeTooLong { len: 1025, .. })
    ));
    assert!(matches!(
        Coordinate::new("a/b", "s"),
        Err(CoordinateError::PathTraversal)
    ));
    assert!(matches!(
        Coordinate::new("a", "x..y"),
        Err(CoordinateError::PathTraversal)
    ));
    assert!(matches!(
        Coordinate::new("a\x7f", "s"),
        Err(CoordinateError::ControlChar)
    ));
    assert!(matches!(
        Coordinate::new("a\0", "s"),
        Err(CoordinateError::NulByte)
    ));
    // Exactly 1024 bytes and namespaced names are fine.
    let max = "y".repeat(1024);
    assert!(Coordinate::new(&max, &max).is_ok());
    let ok = Coordinate::new("user:1.2", "eu-west").unwrap();
    assert_eq!(ok.to_string(), "user:1.2@eu-west");
    // Deserialising re-validates.
    let json = serde_json::json!({"entity": "a/b", "scope": "s"});
    assert!(serde_json::from_value::<Coordinate>(json).is_err());
}

#[test]
fn an_oversized_payload_is_refused_as_too_large_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_single_append_max_bytes(64),
    )
    .unwrap();
    let big = Noted {
        text: "z".repeat(200),
    };
    let c = coord("big", "s");
    assert!(matches!(
        store.append(&c, NOTE, &big),
        Err(StoreError::TooLarge {
            what: "payload",
            ..
        })
    ));
    assert!(matches!(
        store.submit(&c, NOTE, &big),
        Err(StoreError::TooLarge { .. })
    ));
    let item = BatchAppendItem::new(
        c.clone(),
        NOTE,
        &big,
        AppendOptions::default(),
        CausationRef::None,
    )
    .unwrap();
    assert!(matches!(
        store.append_batch(vec![item]),
        Err(StoreError::BatchFailed { .. }) | Err(StoreError::TooLarge { .. })
    ));
    assert!(store.stream("big").is_empty());
    // A small one still works.
    store
        .append(&c, NOTE, &Noted { text: "ok".into() })
        .unwrap();
    assert_eq!(store.stream("big").len(), 1);
    store.close().unwrap();
}

#[test]
fn invalid_configuration_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let cfgs = vec![
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_sync_every_n_events(0),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_writer_channel_capacity(0),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_segment_max_bytes(16),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_frame_max_bytes(1024),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_single_append_max_bytes(1 << 20)
            .with_frame_max_bytes(1 << 20),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_batch_max_size(0),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_single_append_max_bytes(0),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_single_append_max_bytes((64 << 20) + 1),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_frame_max_bytes(u32::MAX),
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_fd_budget(0),
        StoreConfig::new("").with_lifecycle_events(false),
    ];
    for cfg in cfgs {
        let shown = format!("{cfg:?}");
        let r = Store::open(cfg);
        assert!(
            matches!(r, Err(StoreError::Configuration(_))),
            "accepted {shown}"
        );
    }
    // A refused configuration took no lock: a valid open works.
    let store = open(tmp.path());
    store.close().unwrap();
}

#[test]
fn small_segments_rotate_into_several_files_and_everything_reads_back_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = || {
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_segment_max_bytes(4096)
    };
    let store = Store::open(cfg()).unwrap();
    let mut receipts = Vec::new();
    // Batches of 10 keep the test fast (one fsync per batch) and still rotate many times.
    for b in 0..50u64 {
        let items = (0..10u64)
            .map(|i| {
                BatchAppendItem::typed(
                    coord(&format!("rot:{}", (b * 10 + i) % 5), "s"),
                    &dep("rotation", b * 10 + i),
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .unwrap()
            })
            .collect();
        receipts.extend(store.append_batch(items).unwrap());
    }
    assert_eq!(receipts.len(), 500);
    store.close().unwrap();

    let segs = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .count();
    assert!(segs >= 3, "only {segs} segment files");
    assert!(
        receipts
            .iter()
            .map(|r| r.disk_pos.segment_id)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 3
    );

    let store = Store::open(cfg()).unwrap();
    assert_eq!(store.stats().event_count, 500);
    for (i, r) in receipts.iter().enumerate() {
        let e = store.get_typed::<Deposited>(r.event_id).unwrap();
        assert_eq!(e.event.payload.amount, i as u64);
        assert_eq!(store.entry(r.event_id).unwrap().global_sequence, r.sequence);
    }
    for k in 0..5 {
        let s = store.stream(&format!("rot:{k}"));
        assert_eq!(s.len(), 100);
        assert!(s.iter().enumerate().all(|(i, e)| e.clock == i as u32 + 1));
        assert!(s
            .windows(2)
            .all(|w| w[1].hash_chain.prev_hash == w[0].hash_chain.event_hash));
    }
    // Writing continues across the reopened rotation.
    let r = store
        .append_typed(&coord("rot:0", "s"), &dep("after", 1))
        .unwrap();
    assert_eq!(r.clock, 101);
    store.close().unwrap();
}

#[test]
fn deferred_mode_acknowledges_before_fsync_and_sync_makes_the_frontier_cover_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_sync_every_n_events(100)
            .with_flush_interval(Duration::from_secs(60)),
    )
    .unwrap();
    let r = store
        .append_typed(&coord("lazy", "s"), &dep("l", 1))
        .unwrap();
    assert!(!r.durable, "deferred mode acknowledged an event as durable");
    // Acknowledged and visible, but not yet covered by the durable frontier.
    assert!(store.entry(r.event_id).is_some());
    let f = store.frontier();
    assert!(f.written > r.sequence);
    assert!(f.durable <= r.sequence);
    store.sync().unwrap();
    assert!(store.frontier().durable > r.sequence);

    let r2 = store
        .append_typed(&coord("lazy", "s"), &dep("l", 2))
        .unwrap();
    assert!(!r2.durable);
    store
        .wait_for_durable(&r2, Duration::from_secs(10))
        .unwrap();
    assert!(store.frontier().durable > r2.sequence);
    // Already durable: returns at once.
    store
        .wait_for_durable(&r, Duration::from_millis(1))
        .unwrap();
    store.close().unwrap();
    let store = open(tmp.path());
    assert_eq!(store.stream("lazy").len(), 2);
    store.close().unwrap();
}

#[test]
fn deferred_mode_flushes_on_its_own_within_the_flush_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_millis(20)),
    )
    .unwrap();
    let r = store
        .append_typed(&coord("lazy", "s"), &dep("l", 1))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.frontier().durable <= r.sequence {
        assert!(std::time::Instant::now() < deadline, "never flushed");
        std::thread::sleep(Duration::from_millis(5));
    }
    store.close().unwrap();
}

#[test]
fn wait_for_durable_returns_ok_in_the_default_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let r = store.append_typed(&coord("w", "s"), &dep("w", 1)).unwrap();
    store.wait_for_durable(&r, Duration::from_secs(5)).unwrap();
    store.sync().unwrap();
    store.close().unwrap();
}

#[test]
fn two_payload_types_claiming_the_same_kind_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let c = coord("k", "s");
    store.append_typed(&c, &dep("k", 1)).unwrap();
    let err = store
        .append_typed(&c, &Impostor { whatever: 1 })
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateEventKind { kind, .. } if kind == DEPOSIT));
    assert!(matches!(
        store.register_payload::<Impostor>(),
        Err(StoreError::DuplicateEventKind { .. })
    ));
    assert!(matches!(
        store.submit_typed(&c, &Impostor { whatever: 2 }),
        Err(StoreError::DuplicateEventKind { .. })
    ));
    // The impostor wrote nothing; the original type keeps working.
    assert_eq!(store.stream("k").len(), 1);
    store.register_payload::<Deposited>().unwrap();
    store.append_typed(&c, &dep("k", 2)).unwrap();
    store.close().unwrap();

    // Registering up front refuses the second type before anything is written.
    let tmp2 = tempfile::tempdir().unwrap();
    let store = open(tmp2.path());
    store.register_payload::<Impostor>().unwrap();
    assert!(matches!(
        store.append_typed(&c, &dep("k", 1)),
        Err(StoreError::DuplicateEventKind { .. })
    ));
    assert!(store.stream("k").is_empty());
    store.close().unwrap();
}

#[test]
fn cas_tells_an_empty_entity_from_a_one_event_entity() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let c = coord("cas", "s");
    let r = store
        .append_typed_with_options(&c, &dep("c", 1), AppendOptions::default().with_cas(0))
        .unwrap();
    assert_eq!(r.clock, 1);
    let err = store
        .append_typed_with_options(&c, &dep("c", 2), AppendOptions::default().with_cas(0))
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::SequenceMismatch {
            expected: 0,
            actual: 1,
            ..
        }
    ));
    assert!(err.is_definite());
    assert_eq!(store.stream("cas").len(), 1);
    let r2 = store
        .append_typed_with_options(&c, &dep("c", 3), AppendOptions::default().with_cas(1))
        .unwrap();
    assert_eq!(r2.clock, 2);
    assert!(matches!(
        store.append_typed_with_options(&c, &dep("c", 4), AppendOptions::default().with_cas(5)),
        Err(StoreError::SequenceMismatch {
            expected: 5,
            actual: 2,
            ..
        })
    ));
    store.close().unwrap();
    // CAS state survives a reopen.
    let store = open(tmp.path());
    assert!(matches!(
        store.append_typed_with_options(&c, &dep("c", 5), AppendOptions::default().with_cas(1)),
        Err(StoreError::SequenceMismatch { actual: 2, .. })
    ));
    store
        .append_typed_with_options(&c, &dep("c", 5), AppendOptions::default().with_cas(2))
        .unwrap();
    store.close().unwrap();
}

#[test]
fn an_idempotent_retry_returns_the_original_receipt_and_writes_nothing_even_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let key = 0x1234_5678_9abc_def0_u128;
    let c = coord("idem", "s");
    let opts = AppendOptions::default().with_idempotency(key);
    let store = open(tmp.path());
    let first = store
        .append_typed_with_options(&c, &dep("i", 1), opts)
        .unwrap();
    let again = store
        .append_typed_with_options(&c, &dep("i", 1), opts)
        .unwrap();
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(again.sequence, first.sequence);
    assert_eq!(again.clock, first.clock);
    assert_eq!(again.content_hash, first.content_hash);
    assert_eq!(store.stream("idem").len(), 1);
    let stats_before = store.stats();
    store.close().unwrap();

    let store = open(tmp.path());
    let after = store
        .append_typed_with_options(&c, &dep("i", 1), opts)
        .unwrap();
    assert_eq!(after.event_id, first.event_id);
    assert_eq!(after.sequence, first.sequence);
    assert_eq!(store.stream("idem").len(), 1);
    assert_eq!(store.stats().event_count, stats_before.event_count);
    // A submit with the key is deduplicated too.
    let t = store
        .submit_with_options(&c, DEPOSIT, &dep("i", 1), opts)
        .unwrap();
    assert_eq!(t.wait().unwrap().event_id, first.event_id);
    assert_eq!(store.stream("idem").len(), 1);
    store.close().unwrap();
}

#[test]
fn an_idempotency_key_reused_with_a_different_payload_or_entity_is_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let key = 77u128;
    let opts = AppendOptions::default().with_idempotency(key);
    let c = coord("idem", "s");
    let first = store
        .append_typed_with_options(&c, &dep("i", 1), opts)
        .unwrap();
    let err = store
        .append_typed_with_options(&c, &dep("i", 2), opts)
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::IdempotencyConflict { key: 77, original_event_id, .. } if original_event_id == first.event_id
    ));
    assert!(matches!(
        store.append_typed_with_options(&coord("other", "s"), &dep("i", 1), opts),
        Err(StoreError::IdempotencyConflict { .. })
    ));
    assert!(matches!(
        store.append_with_options(&c, NOTE, &Noted { text: "x".into() }, opts),
        Err(StoreError::IdempotencyConflict { .. })
    ));
    // A key equal to an existing event id is just a new key, never a foreign receipt.
    let foreign = store
        .append_typed_with_options(
            &coord("third", "s"),
            &dep("t", 1),
            AppendOptions::default().with_idempotency(first.event_id),
        )
        .unwrap();
    assert_ne!(foreign.event_id, first.event_id);
    assert_eq!(store.stream("idem").len(), 1);
    assert!(store.stream("other").is_empty());
    store.close().unwrap();
}

#[test]
fn a_causation_id_naming_no_event_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let c = coord("cause", "s");
    let unknown = 0xfeed_u128;
    assert!(matches!(
        store.append_reaction(&c, NOTE, &Noted { text: "r".into() }, 1, unknown),
        Err(StoreError::UnknownCausation { causation_id }) if causation_id == unknown
    ));
    let item = BatchAppendItem::new(
        c.clone(),
        NOTE,
        &Noted { text: "b".into() },
        AppendOptions::default(),
        CausationRef::Absolute(unknown),
    )
    .unwrap();
    assert!(matches!(
        store.append_batch(vec![item]),
        Err(StoreError::BatchFailed {
            stage: BatchStage::Validation,
            ..
        })
    ));
    assert!(store.stream("cause").is_empty());
    store.close().unwrap();
}

#[test]
fn reactions_are_linked_in_causes_effects_correlated_and_ancestors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let order = coord("order:9", "shop");
    let pay = coord("payment:9", "shop");
    let root = store.append_typed(&order, &dep("placed", 1)).unwrap();
    let corr = store.entry(root.event_id).unwrap().correlation_id;
    assert_eq!(
        corr, root.event_id,
        "the correlation defaults to the event id"
    );
    let charged = store
        .append_reaction_typed(&pay, &dep("charged", 1), corr, root.event_id)
        .unwrap();
    let confirmed = store
        .append_reaction(
            &order,
            NOTE,
            &Noted {
                text: "confirmed".into(),
            },
            corr,
            charged.event_id,
        )
        .unwrap();
    let also = store
        .append_reaction_typed(&pay, &dep("receipt", 1), corr, root.event_id)
        .unwrap();
    // Unrelated conversation.
    store.append_typed(&order, &dep("unrelated", 0)).unwrap();

    assert_eq!(
        ids(&store.causes(confirmed.event_id, 10)),
        vec![charged.event_id, root.event_id]
    );
    assert_eq!(
        ids(&store.causes(confirmed.event_id, 1)),
        vec![charged.event_id]
    );
    assert!(store.causes(root.event_id, 10).is_empty());
    assert_eq!(
        ids(&store.effects(root.event_id)),
        vec![charged.event_id, also.event_id]
    );
    assert_eq!(
        ids(&store.effects(charged.event_id)),
        vec![confirmed.event_id]
    );
    assert_eq!(
        ids(&store.correlated(corr)),
        vec![
            root.event_id,
            charged.event_id,
            confirmed.event_id,
            also.event_id
        ]
    );
    // walk_ancestors: the entity's earlier events, newest first.
    assert_eq!(
        ids(&store.walk_ancestor_entries(confirmed.event_id, 10)),
        vec![root.event_id]
    );
    assert_eq!(
        ids(&store.walk_ancestor_entries(also.event_id, 10)),
        vec![charged.event_id]
    );
    let got = store.get(confirmed.event_id).unwrap();
    assert_eq!(got.event.header.causation_id, Some(charged.event_id));
    assert_eq!(got.event.header.correlation_id, corr);
    store.close().unwrap();

    // Links survive a reopen.
    let store = open(tmp.path());
    assert_eq!(
        ids(&store.causes(confirmed.event_id, 10)),
        vec![charged.event_id, root.event_id]
    );
    assert_eq!(store.correlated(corr).len(), 4);
    store.close().unwrap();
}

#[test]
fn try_submit_on_a_tiny_queue_eventually_reports_retryable_backpressure() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_writer_channel_capacity(1)
            .with_writer_pressure_threshold(1),
    )
    .unwrap();
    let c = coord("bp", "s");
    let mut tickets = Vec::new();
    let mut refused = None;
    for i in 0..100_000u64 {
        match store.try_submit_typed(&c, &dep("bp", i)) {
            Ok(t) => tickets.push(t),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("never saw backpressure");
    assert!(matches!(err, StoreError::Backpressure { threshold: 1, .. }));
    assert!(err.is_retryable());
    assert!(err.is_definite());
    let accepted = tickets.len();
    for t in tickets {
        t.wait().unwrap();
    }
    // Refused submits wrote nothing.
    assert_eq!(store.stream("bp").len(), accepted);
    store.close().unwrap();
}

#[test]
fn a_thousand_pipelined_tickets_all_resolve_in_submission_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let c = coord("pipe", "s");
    let tickets: Vec<AppendTicket> = (0..1000u64)
        .map(|i| store.submit_typed(&c, &dep("p", i)).unwrap())
        .collect();
    let receipts: Vec<AppendReceipt> = tickets.into_iter().map(|t| t.wait().unwrap()).collect();
    assert!(receipts.windows(2).all(|w| w[1].sequence > w[0].sequence));
    assert!(receipts
        .iter()
        .enumerate()
        .all(|(i, r)| r.clock == i as u32 + 1));
    assert!(receipts.iter().all(|r| r.durable));
    let stream = store.stream("pipe");
    assert_eq!(stream.len(), 1000);
    assert_eq!(
        ids(&stream),
        receipts.iter().map(|r| r.event_id).collect::<Vec<_>>()
    );
    // A ticket can be polled without blocking.
    let t = store.submit_typed(&c, &dep("p", 1000)).unwrap();
    let mut polled = None;
    for _ in 0..10_000 {
        if let Some(r) = t.try_check() {
            let r = r.unwrap();
            polled = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(polled.unwrap().clock, 1001);
    store.close().unwrap();
}

#[test]
fn stats_count_events_entities_and_scopes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_writer_channel_capacity(16),
    )
    .unwrap();
    let s0 = store.stats();
    assert_eq!(s0.event_count, 0);
    assert_eq!(s0.entity_count, 0);
    assert_eq!(s0.scope_count, 0);
    assert_eq!(s0.writer_queue_capacity, 16);
    assert_eq!(s0.dir, tmp.path());
    store.append_typed(&coord("a", "x"), &dep("a", 1)).unwrap();
    store.append_typed(&coord("a", "y"), &dep("a", 2)).unwrap();
    store.append_typed(&coord("b", "x"), &dep("b", 1)).unwrap();
    let last = store.append_typed(&coord("c", "z"), &dep("c", 1)).unwrap();
    let s = store.stats();
    assert_eq!(s.event_count, 4);
    assert_eq!(s.entity_count, 3);
    assert_eq!(s.scope_count, 3);
    assert!(s.frontier.visible > last.sequence);
    assert!(s.frontier.durable > last.sequence);
    assert!(s.frontier.written > last.sequence);
    store.close().unwrap();
    let store = open(tmp.path());
    let s = store.stats();
    assert_eq!((s.event_count, s.entity_count, s.scope_count), (4, 3, 3));
    store.close().unwrap();
}

#[test]
fn a_directory_named_like_the_next_segment_is_skipped_and_every_roll_works() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = || {
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_segment_max_bytes(1024)
    };
    let in_the_way = [1u64, 2, 5].map(|id| tmp.path().join(format!("{id:020}.seg")));
    for d in &in_the_way {
        std::fs::create_dir_all(d.join("inside")).unwrap();
    }
    let store = Store::open(cfg()).unwrap();
    let mut receipts = Vec::new();
    for i in 0..60u64 {
        receipts.push(
            store
                .append_typed(&coord(&format!("skip:{}", i % 3), "s"), &dep("skip", i))
                .unwrap_or_else(|e| panic!("append {i}: {e}")),
        );
    }
    let used: std::collections::BTreeSet<u64> =
        receipts.iter().map(|r| r.disk_pos.segment_id).collect();
    assert!(used.len() >= 5, "segments used: {used:?}");
    for id in [1, 2, 5] {
        assert!(!used.contains(&id), "segment {id} is a directory: {used:?}");
    }
    store.close().unwrap();
    for d in &in_the_way {
        assert!(d.join("inside").is_dir(), "the directory was left alone");
    }
    let store = Store::open(cfg()).unwrap();
    assert_eq!(store.stats().event_count, 60);
    for (i, r) in receipts.iter().enumerate() {
        assert_eq!(
            store
                .get_typed::<Deposited>(r.event_id)
                .unwrap()
                .event
                .payload
                .amount,
            i as u64
        );
    }
}

#[test]
fn a_regular_file_named_like_the_next_segment_is_a_clear_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = || {
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_segment_max_bytes(1024)
    };
    let store = Store::open(cfg()).unwrap();
    store
        .append_typed(&coord("f:1", "s"), &dep("f", 0))
        .unwrap();
    // Someone drops a file into the locked directory where the next segment goes.
    let foreign = tmp.path().join(format!("{:020}.seg", 1));
    std::fs::write(&foreign, b"not ours").unwrap();
    let err = (1..100u64)
        .find_map(|i| store.append_typed(&coord("f:1", "s"), &dep("f", i)).err())
        .expect("a roll had to create segment 1");
    let text = err.to_string();
    assert!(text.contains(&foreign.display().to_string()), "{text}");
    assert!(text.contains("did not write"), "{text}");
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        b"not ours",
        "never overwritten"
    );
}

/// `get_raw_with_batch`: the event as `get_raw` reads it, and the atomic batch it was written
/// in, named by its first event's global sequence: `None` for an event written alone (plain
/// or fenced), the same id for every event of a batch (`append_batch`, an outbox flush, a
/// batch under a fence), and the same answers after a reopen (read from the frames).
#[test]
fn get_raw_with_batch_names_the_atomic_batch_an_event_was_written_in() {
    let dir = tempfile::tempdir().unwrap();
    let c = coord("acct-1", "bank");
    let (alone, batch, outbox, fenced_alone, fenced_batch) = {
        let store = open(dir.path());
        let alone = store.append_typed(&c, &dep("a", 1)).unwrap();
        let items = (0..3)
            .map(|i| {
                BatchAppendItem::typed(
                    c.clone(),
                    &dep("b", i),
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .unwrap()
            })
            .collect();
        let batch = store.append_batch(items).unwrap();
        let mut ob = store.outbox();
        ob.stage(&c, NOTE, &Noted { text: "x".into() }).unwrap();
        ob.stage(&c, NOTE, &Noted { text: "y".into() }).unwrap();
        let outbox = ob.flush().unwrap();
        let fence = store.begin_visibility_fence().unwrap();
        let fenced_alone = fence.submit(&c, NOTE, &Noted { text: "f".into() }).unwrap();
        let mut fob = fence.outbox();
        fob.stage(&c, NOTE, &Noted { text: "g".into() }).unwrap();
        fob.stage(&c, NOTE, &Noted { text: "h".into() }).unwrap();
        let fenced_batch = fob.flush().unwrap();
        drop(fob);
        fence.commit().unwrap();
        let fenced_alone = fenced_alone.wait().unwrap();
        store.close().unwrap();
        (alone, batch, outbox, fenced_alone, fenced_batch)
    };
    let store = open(dir.path());
    let batch_of = |r: &AppendReceipt| {
        let (raw, b) = store.get_raw_with_batch(r.event_id).unwrap();
        assert_eq!(
            raw.event.payload,
            store.get_raw(r.event_id).unwrap().event.payload
        );
        b
    };
    assert_eq!(batch_of(&alone), None);
    assert_eq!(batch_of(&fenced_alone), None);
    for group in [&batch, &outbox, &fenced_batch] {
        let first = group[0].sequence;
        for r in group.iter() {
            assert_eq!(batch_of(r), Some(first), "{r:?}");
        }
    }
    assert_ne!(batch[0].sequence, outbox[0].sequence);
    assert!(matches!(
        store.get_raw_with_batch(7),
        Err(StoreError::NotFound(7))
    ));
}
