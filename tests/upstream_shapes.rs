//! Small pieces of upstream's surface that its own tests use: header flag names and
//! predicates, index-entry causality predicates, `HashChain::default` and the hash helpers,
//! and the never-returned `StoreError` variants kept so upstream's matches compile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::event::hash::{compute_hash, verify_chain};
use batpak::event::header::{FLAG_REPLAY, FLAG_REQUIRES_ACK, FLAG_TRANSACTIONAL};
use batpak::prelude::*;

#[path = "support/store.rs"]
mod support;

fn open(dir: &std::path::Path) -> Store {
    support::open_with(dir, |c| c.with_lifecycle_events(false))
}

#[test]
fn header_flags_are_stored_as_given_and_read_by_the_predicates() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let coord = Coordinate::new("flags:1", "shape").unwrap();
    let kind = EventKind::custom(0xF, 1);
    let cases = [
        (0, [false, false, false]),
        (FLAG_REQUIRES_ACK, [true, false, false]),
        (FLAG_TRANSACTIONAL, [false, true, false]),
        (FLAG_REPLAY, [false, false, true]),
        (0xFF, [true, true, true]),
    ];
    for (flags, want) in cases {
        let r = store
            .append_with_options(&coord, kind, &1u8, AppendOptions::new().with_flags(flags))
            .unwrap();
        let h = store.get(r.event_id).unwrap().event.header;
        assert_eq!(h.flags, flags);
        assert_eq!(
            [h.requires_ack(), h.is_transactional(), h.is_replay()],
            want,
            "flags {flags:#04x}"
        );
        assert_eq!(h.clone().with_flags(0).flags, 0);
    }
    store.close().unwrap();
}

#[test]
fn index_entries_answer_causality_questions() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let coord = Coordinate::new("cause:1", "shape").unwrap();
    let kind = EventKind::custom(0xF, 1);
    let root = store.append(&coord, kind, &1u8).unwrap();
    let child = store
        .append_with_options(
            &coord,
            kind,
            &2u8,
            AppendOptions::new()
                .with_causation(root.event_id)
                .with_correlation(root.event_id),
        )
        .unwrap();
    let (r, c) = (
        store.entry(root.event_id).unwrap(),
        store.entry(child.event_id).unwrap(),
    );
    assert!(r.is_root_cause() && !r.is_correlated());
    assert!(!c.is_root_cause() && c.is_correlated());
    assert!(c.is_caused_by(root.event_id) && !c.is_caused_by(child.event_id));
    assert!(!r.is_caused_by(root.event_id));
    store.close().unwrap();
}

#[test]
fn hash_helpers_check_links_and_content() {
    let content = b"payload bytes";
    let chain = HashChain {
        prev_hash: [3; 32],
        event_hash: compute_hash(content),
    };
    assert!(verify_chain(content, &chain, &[3; 32]));
    assert!(!verify_chain(b"payload byteS", &chain, &[3; 32]));
    assert!(!verify_chain(content, &chain, &[4; 32]));
    assert_eq!(
        HashChain::default(),
        HashChain {
            prev_hash: [0; 32],
            event_hash: [0; 32]
        }
    );
}

#[test]
fn compute_hash_of_the_payload_bytes_is_the_headers_content_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let coord = Coordinate::new("hash:1", "shape").unwrap();
    let payload = serde_json::json!({"total": 42, "items": ["a", "b"]});
    let r = store
        .append(&coord, EventKind::custom(0xF, 1), &payload)
        .unwrap();
    let header = store.get(r.event_id).unwrap().event.header;
    let encoded = rmp_serde::to_vec_named(&payload).unwrap();
    assert_eq!(header.payload_size as usize, encoded.len());
    assert_eq!(header.content_hash, compute_hash(&encoded));
    // The chain link covers more than the payload (header fields too).
    let link = store.entry(r.event_id).unwrap().hash_chain;
    assert!(!verify_chain(&encoded, &link, &[0; 32]));
    store.close().unwrap();
}

#[test]
fn upstreams_idempotency_variants_exist_for_matching_and_display() {
    let e = StoreError::IdempotencyRequired;
    assert!(e.to_string().contains("idempotency key"));
    let e = StoreError::IdempotencyPartialBatch {
        reason: "item 1 has no key".into(),
    };
    assert!(e.to_string().contains("item 1 has no key"));
}

#[test]
fn store_locked_names_the_directory_and_the_mode_asked_for() {
    use batpak::store::StoreLockMode;
    let tmp = tempfile::tempdir().unwrap();
    let writer = open(tmp.path());
    match Store::open(StoreConfig::new(tmp.path())) {
        Err(StoreError::StoreLocked { path, mode }) => {
            assert_eq!((path.as_path(), mode), (tmp.path(), StoreLockMode::Mutable))
        }
        other => panic!("expected StoreLocked, got {other:?}"),
    }
    let err = Store::open_read_only(StoreConfig::new(tmp.path())).unwrap_err();
    assert!(
        matches!(&err, StoreError::StoreLocked { path, mode: StoreLockMode::ReadOnly } if path == tmp.path()),
        "{err:?}"
    );
    assert!(err.to_string().contains("read-only"), "{err}");
    writer.close().unwrap();
}

#[test]
fn an_events_position_as_upstreams_dag_position() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let coord = Coordinate::new("pos:1", "shape").unwrap();
    let kind = EventKind::custom(0xF, 1);
    let a = store.append(&coord, kind, &1u8).unwrap();
    let b = store.append(&coord, kind, &2u8).unwrap();
    let pos = |id| DagPosition::from(store.get(id).unwrap().event.header.position);
    let (pa, pb) = (pos(a.event_id), pos(b.event_id));
    assert_eq!((pa.sequence(), pb.sequence()), (1, 2));
    assert!(pa.is_ancestor_of(&pb) && !pb.is_ancestor_of(&pa));
    assert_eq!((pa.depth(), pa.lane()), (0, 0));
    store.close().unwrap();
}

// --- Shapes added for upstream's test files (issue 22) ---

#[test]
fn event_header_new_takes_upstreams_arguments_and_either_position() {
    let dag = DagPosition::child_at(7, 1_234, 0);
    let h = EventHeader::new(1, 2, Some(3), 4_000, dag, 9, EventKind::DATA);
    assert_eq!(
        (h.event_id, h.correlation_id, h.causation_id),
        (1, 2, Some(3))
    );
    assert_eq!(
        (h.timestamp_us, h.payload_size, h.event_kind),
        (4_000, 9, EventKind::DATA)
    );
    assert_eq!((h.flags, h.content_hash), (0, [0u8; 32]));
    assert_eq!(h.position.wall_ms(), 1_234);
    assert_eq!(h.position.sequence(), 7);
    assert_eq!(
        h.position, dag,
        "EventPosition == the DagPosition it came from"
    );
    assert_ne!(h.position, DagPosition::child_at(7, 1_235, 0));
    let own = EventPosition {
        wall_ms: 5,
        clock: 2,
    };
    assert_eq!(
        EventHeader::new(1, 1, None, 0, own, 0, EventKind::DATA).position,
        own
    );
    assert_eq!(h.age_us(10_000), 6_000);
    assert_eq!(
        h.age_us(1_000),
        0,
        "a clock before the event is age 0, not a wrap"
    );

    use batpak::id::{CausationId, CorrelationId, EntityIdType, EventId};
    let typed = EventHeader::new_typed(
        EventId::new(0x11),
        CorrelationId::new(0x22),
        Some(CausationId::new(0x33)),
        0,
        DagPosition::root(),
        0,
        EventKind::DATA,
    );
    assert_eq!(
        (typed.event_id, typed.correlation_id, typed.causation_id),
        (0x11, 0x22, Some(0x33))
    );
}

#[test]
fn dag_positions_of_one_sequence_with_different_stamps_are_incomparable() {
    use std::cmp::Ordering;
    let a = DagPosition::with_hlc(1_000, 0, 0, 0, 2);
    assert_eq!(
        a.partial_cmp(&DagPosition::with_hlc(2_000, 0, 0, 0, 2)),
        None
    );
    assert_eq!(
        a.partial_cmp(&DagPosition::with_hlc(1_000, 1, 0, 0, 2)),
        None
    );
    assert_eq!(a.partial_cmp(&a), Some(Ordering::Equal));
    assert_eq!(
        a.partial_cmp(&DagPosition::with_hlc(0, 0, 0, 0, 3)),
        Some(Ordering::Less)
    );
    assert_eq!(a.partial_cmp(&DagPosition::new(0, 1, 2)), None);
}

#[test]
fn event_kind_displays_upper_case_hex() {
    assert_eq!(EventKind::custom(0xA, 0xBC).to_string(), "0xA0BC");
    assert_eq!(
        EventKind::DATA.to_string(),
        format!("0x{:04X}", EventKind::DATA.as_raw())
    );
}

#[test]
fn typed_ids_display_parse_and_refuse_other_prefixes() {
    use batpak::id::{generate_v7_id, CausationId, CorrelationId, EntityIdType, EventId};
    batpak::define_entity_id!(OrderId, "order");
    let id = OrderId::new(0x42);
    assert_eq!(<OrderId as EntityIdType>::ENTITY_NAME, "order");
    assert_eq!(id.to_string(), "order:00000000000000000000000000000042");
    assert_eq!(
        "order:00000000000000000000000000000042".parse::<OrderId>(),
        Ok(id)
    );
    assert!("00000000000000000000000000000042"
        .parse::<OrderId>()
        .is_err());
    assert!("event:00000000000000000000000000000042"
        .parse::<OrderId>()
        .is_err());
    assert!("order:xyz".parse::<OrderId>().is_err());
    assert_eq!(OrderId::nil().as_u128(), 0);
    let (a, b) = (OrderId::now_v7(), OrderId::now_v7());
    assert_ne!(a, b);
    assert_eq!(a.as_u128() >> 76 & 0xF, 7, "UUID version 7");
    assert_ne!(generate_v7_id(), 0);
    assert_eq!(u128::from(EventId::from(5u128)), 5);
    let opts = AppendOptions::new()
        .with_correlation_typed(CorrelationId::new(0xAA))
        .with_causation_typed(CausationId::new(0xBB));
    assert_eq!(
        (opts.correlation_id, opts.causation_id),
        (Some(0xAA), Some(0xBB))
    );
    assert_eq!(
        CausationRef::absolute_typed(CausationId::new(9)),
        CausationRef::Absolute(9)
    );
}

#[test]
fn close_returns_the_closed_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let closed: Closed = open(tmp.path()).close().unwrap();
    assert_eq!(closed, Closed);
    // The directory lock is released: the store opens again.
    open(tmp.path()).close().unwrap();
}

#[test]
fn cache_failed_displays_its_source() {
    use std::error::Error;
    let e = StoreError::CacheFailed("redis timeout".into());
    assert_eq!(e.to_string(), "cache error: redis timeout");
    assert_eq!(e.source().unwrap().to_string(), "redis timeout");
    assert!(e.is_definite());
}

#[test]
fn append_reaction_batch_stamps_correlation_and_default_causation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let coord = Coordinate::new("rb:1", "shape").unwrap();
    let trigger = store.append(&coord, EventKind::DATA, &0u8).unwrap();
    let other = store.append(&coord, EventKind::DATA, &1u8).unwrap();
    let item = |causation: CausationRef, options: AppendOptions| {
        BatchAppendItem::new(coord.clone(), EventKind::DATA, &2u8, options, causation).unwrap()
    };
    let receipts = store
        .append_reaction_batch(
            trigger.event_id,
            trigger.event_id,
            vec![
                item(CausationRef::None, AppendOptions::new()),
                item(CausationRef::PriorItem(0), AppendOptions::new()),
                item(
                    CausationRef::None,
                    AppendOptions::new().with_causation(other.event_id),
                ),
            ],
        )
        .unwrap();
    let headers: Vec<_> = receipts
        .iter()
        .map(|r| store.get(r.event_id).unwrap().event.header)
        .collect();
    assert!(headers.iter().all(|h| h.correlation_id == trigger.event_id));
    assert_eq!(headers[0].causation_id, Some(trigger.event_id));
    assert_eq!(headers[1].causation_id, Some(receipts[0].event_id));
    assert_eq!(headers[2].causation_id, Some(other.event_id));
    store.close().unwrap();
}

#[test]
fn a_batch_over_the_event_limit_fails_at_item_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(
        StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_batch_max_size(2),
    )
    .unwrap();
    let coord = Coordinate::new("limit:1", "shape").unwrap();
    let items = (0..3u8)
        .map(|i| {
            BatchAppendItem::new(
                coord.clone(),
                EventKind::DATA,
                &i,
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect();
    let err = store.append_batch(items).unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::BatchFailed { item_index: 0, source, .. }
                if matches!(**source, StoreError::TooLarge { size: 3, max: 2, .. })
        ),
        "{err:?}"
    );
    store.close().unwrap();
}

#[test]
fn react_loop_runs_upstreams_plain_reactor_exactly_once() {
    use batpak::event::sourcing::Reactive;
    use std::sync::Arc;
    struct Echo;
    impl Reactive<serde_json::Value> for Echo {
        fn react(
            &self,
            e: &Event<serde_json::Value>,
        ) -> Vec<(Coordinate, EventKind, serde_json::Value)> {
            if e.event_kind() != EventKind::custom(0xA, 1) {
                return vec![];
            }
            vec![(
                Coordinate::new("echo", "shape").unwrap(),
                EventKind::custom(0xA, 2),
                serde_json::json!({ "n": e.payload["n"] }),
            )]
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(open(tmp.path()));
    let coord = Coordinate::new("trigger", "shape").unwrap();
    let t1 = store
        .append(
            &coord,
            EventKind::custom(0xA, 1),
            &serde_json::json!({ "n": 1 }),
        )
        .unwrap();
    let wait_for = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let got = store.query(&Region::entity("echo"));
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let handle = store.react_loop(&Region::entity("trigger"), Echo).unwrap();
    let got = wait_for(1);
    assert_eq!(got.len(), 1);
    let reaction = store.get(got[0].event_id).unwrap();
    assert_eq!(reaction.event.header.causation_id, Some(t1.event_id));
    let t1_correlation = store.get(t1.event_id).unwrap().event.header.correlation_id;
    assert_eq!(reaction.event.header.correlation_id, t1_correlation);
    assert_eq!(reaction.event.payload, serde_json::json!({ "n": 1 }));
    handle.stop_and_join().unwrap();
    // A second reactor of the same type replays from the start: the keys dedupe.
    let handle = store.react_loop(&Region::entity("trigger"), Echo).unwrap();
    store
        .append(
            &coord,
            EventKind::custom(0xA, 1),
            &serde_json::json!({ "n": 2 }),
        )
        .unwrap();
    assert_eq!(wait_for(2).len(), 2);
    handle.stop_and_join().unwrap();
    assert_eq!(
        store.query(&Region::entity("echo")).len(),
        2,
        "no duplicate reactions"
    );
    Arc::try_unwrap(store).ok().unwrap().close().unwrap();
}

#[test]
fn observed_once_pairs_a_delivery_proof_with_a_key() {
    use batpak::store::{
        CheckpointId, CursorWorkerAction, CursorWorkerConfig, IdempotencyKey, ObservedOnce,
    };
    let key = IdempotencyKey::from_bytes([7; 32]);
    assert_eq!(key.as_bytes(), &[7; 32]);
    let tmp = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(tmp.path()));
    let coord = Coordinate::new("w:1", "shape").unwrap();
    store.append(&coord, EventKind::DATA, &1u8).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut config = CursorWorkerConfig::default();
    config.checkpoint_id = Some(CheckpointId::new("observed-once"));
    let handle = store
        .cursor_worker(&Region::entity("w:1"), config, move |_, _, w| {
            if let Some(w) = w {
                let _ = tx.send(ObservedOnce::new(w.clone(), key));
            }
            CursorWorkerAction::Stop
        })
        .unwrap();
    let seen = rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap();
    handle.join().unwrap();
    assert_eq!(seen.idempotency_key(), &key);
    assert_eq!(
        seen.at_least_once().checkpoint_id().as_str(),
        "observed-once"
    );
    let (proof, k) = seen.into_parts();
    assert_eq!((proof.checkpoint_id().as_str(), k), ("observed-once", key));
    std::sync::Arc::try_unwrap(store)
        .ok()
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn outcome_is_upstreams_algebraic_type() {
    use batpak::outcome::{join_all, zip, WaitCondition};
    let ok: Outcome<i32> = Outcome::ok(2);
    assert_eq!(ok.clone().map(|x| x * 2), Outcome::Ok(4));
    assert_eq!(ok.clone().and_then(|x| Outcome::ok(x + 1)), Outcome::Ok(3));
    let err: Outcome<i32> = Outcome::err(OutcomeError::new(ErrorKind::NotFound, "gone"));
    assert!(err.is_err() && err.clone().map(|x| x + 1).is_err());
    assert_eq!(err.clone().unwrap_or(9), 9);
    assert!(err.into_result().is_err());
    assert_eq!(zip(Outcome::ok(1), Outcome::ok("a")), Outcome::Ok((1, "a")));
    assert_eq!(
        join_all(vec![Outcome::ok(1), Outcome::ok(2)]),
        Outcome::Ok(vec![1, 2])
    );
    let pending: Outcome<i32> =
        Outcome::pending(WaitCondition::Timeout { resume_at_ms: 5 }, u128::MAX);
    assert!(pending.is_pending());
    let bytes = rmp_serde::to_vec_named(&pending).unwrap();
    assert_eq!(
        rmp_serde::from_slice::<Outcome<i32>>(&bytes).unwrap(),
        pending
    );
    assert!(ErrorKind::Timeout.is_retryable() && !ErrorKind::NotFound.is_retryable());
}

#[test]
fn projecting_an_entity_without_relevant_events_is_none() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct AlwaysSome {
        count: usize,
    }
    impl EventSourced for AlwaysSome {
        type Input = JsonValueInput;
        fn from_events(events: &[Event<serde_json::Value>]) -> Option<Self> {
            Some(Self {
                count: events.len(),
            })
        }
        fn apply_event(&mut self, _: &Event<serde_json::Value>) {
            self.count += 1;
        }
        fn relevant_event_kinds() -> &'static [EventKind] {
            const K: [EventKind; 1] = [EventKind::custom(0xB, 1)];
            &K
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let none: Option<AlwaysSome> = store.project("nobody", &Freshness::Consistent).unwrap();
    assert_eq!(none, None, "from_events(&[]) is not asked");
    let coord = Coordinate::new("somebody", "shape").unwrap();
    store
        .append(&coord, EventKind::custom(0xB, 2), &1u8)
        .unwrap();
    let none: Option<AlwaysSome> = store.project("somebody", &Freshness::Consistent).unwrap();
    assert_eq!(none, None, "only irrelevant kinds");
    store
        .append(&coord, EventKind::custom(0xB, 1), &1u8)
        .unwrap();
    let one: Option<AlwaysSome> = store.project("somebody", &Freshness::Consistent).unwrap();
    assert_eq!(one, Some(AlwaysSome { count: 1 }));
    store.close().unwrap();
}

#[test]
fn a_cache_that_supports_prefetch_is_told_which_row_comes_next() {
    use batpak::store::projection::{CacheCapabilities, CacheMeta, ProjectionCache};
    use std::sync::{Arc, Mutex};
    type Hints = Arc<Mutex<Vec<(Vec<u8>, u64)>>>;
    struct Hinted(Hints, bool);
    impl ProjectionCache for Hinted {
        fn capabilities(&self) -> CacheCapabilities {
            if self.1 {
                CacheCapabilities::prefetch_hints()
            } else {
                CacheCapabilities::none()
            }
        }
        fn get(&self, _: &[u8]) -> Result<Option<(Vec<u8>, CacheMeta)>, StoreError> {
            Ok(None)
        }
        fn put(&self, _: &[u8], _: &[u8], _: CacheMeta) -> Result<(), StoreError> {
            Ok(())
        }
        fn delete_prefix(&self, _: &[u8]) -> Result<u64, StoreError> {
            Ok(0)
        }
        fn sync(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn prefetch(&self, key: &[u8], meta: CacheMeta) -> Result<(), StoreError> {
            self.0.lock().unwrap().push((key.to_vec(), meta.watermark));
            Ok(())
        }
    }
    // Folded incrementally from a cache row, and whole from the log.
    type Count = support::EventCount<true>;
    type Whole = support::EventCount<false>;
    for supports in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let hints = Hints::default();
        let store = Store::open_with_cache(
            StoreConfig::new(tmp.path()).with_lifecycle_events(false),
            Box::new(Hinted(Arc::clone(&hints), supports)),
        )
        .unwrap();
        let coord = Coordinate::new("pf", "shape").unwrap();
        store.append(&coord, EventKind::DATA, &1u8).unwrap();
        let last = store.append(&coord, EventKind::DATA, &2u8).unwrap();
        let got: Option<Count> = store.project("pf", &Freshness::Consistent).unwrap();
        assert_eq!(got, Some(support::EventCount(2)));
        // A projection that is not incremental is folded whole from the log: the cache is
        // not asked, so it gets no hint either (DIFFERENCES row 45).
        let whole: Option<Whole> = store.project("pf", &Freshness::Consistent).unwrap();
        assert_eq!(whole, Some(support::EventCount(2)));
        let hints = hints.lock().unwrap().clone();
        if supports {
            assert_eq!(hints.len(), 1, "{hints:?}");
            assert_eq!(hints[0].1, last.sequence);
            assert!(!hints[0].0.is_empty());
        } else {
            assert!(hints.is_empty(), "no hints without the capability");
        }
        store.close().unwrap();
    }
}

/// DIFFERENCES.md row 46: every log record takes a global sequence, so a batch's commit
/// record leaves a gap between its last event and the next event.
#[test]
fn a_batch_commit_record_takes_a_global_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let coord = Coordinate::new("seq:1", "shape").unwrap();
    let kind = EventKind::custom(0xF, 9);
    store.append(&coord, kind, &1u8).unwrap();
    let item = |n: u8| {
        BatchAppendItem::new(
            coord.clone(),
            kind,
            &n,
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap()
    };
    store.append_batch(vec![item(2), item(3)]).unwrap();
    store.append(&coord, kind, &4u8).unwrap();
    let seqs: Vec<u64> = store
        .stream("seq:1")
        .iter()
        .map(|e| e.global_sequence)
        .collect();
    let s = seqs[0];
    assert_eq!(
        seqs,
        vec![s, s + 1, s + 2, s + 4],
        "the commit record is s + 3"
    );
    store.close().unwrap();
}

#[test]
fn corrupt_segment_has_upstreams_two_fields_and_found_damage_keeps_file_and_offset() {
    // Upstream's shape: built and matched with exactly `segment_id` and `detail`.
    let built = StoreError::CorruptSegment {
        segment_id: 3,
        detail: "bad magic".into(),
    };
    let StoreError::CorruptSegment { segment_id, detail } = &built else {
        panic!("{built:?}")
    };
    assert_eq!(*segment_id, 3);
    assert!(detail.contains("bad magic"));
    assert_eq!((detail.file(), detail.offset()), (None, None));
    assert_eq!(built.to_string(), "corrupt segment 3: bad magic");

    // Damage this store finds names the file and the offset through `detail`.
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let coord = Coordinate::new("corrupt:1", "shape").unwrap();
    for i in 0..20u32 {
        store.append(&coord, EventKind::DATA, &i).unwrap();
    }
    store.close().unwrap();
    let seg = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 4;
    bytes[at] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();
    let Err(err) = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)) else {
        panic!("damage before valid records must fail the open")
    };
    let StoreError::CorruptSegment { segment_id, detail } = &err else {
        panic!("expected CorruptSegment, got {err:?}")
    };
    assert_eq!(*segment_id, 0, "{err}");
    assert_eq!(detail.file(), Some(seg.as_path()), "{err}");
    let offset = detail.offset().expect("an offset");
    assert!(offset > 0 && offset <= at as u64, "{offset} vs {at}: {err}");
    let text = err.to_string();
    assert!(text.contains(&seg.display().to_string()) && text.contains(detail.message()));
}

#[test]
fn event_kind_custom_names_the_refusal_in_its_panic() {
    let message = |category: u8, type_id: u16| {
        std::panic::catch_unwind(|| EventKind::custom(category, type_id))
            .err()
            .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    };
    assert!(message(0x0, 1).contains("category 0x0 is reserved"));
    assert!(message(0xD, 1).contains("category 0xD is reserved"));
    assert!(message(0x10, 1).contains("0-15"));
    assert!(message(0x1, 0x1000).contains("12 bits"));
    assert_eq!(EventKind::custom(0xE, 0xFFF).category(), 0xE);
}

#[test]
fn a_denial_displays_as_gate_and_message_like_upstreams() {
    let denial = Denial::new("test_gate", "access denied").with_code("403");
    assert_eq!(denial.to_string(), "[test_gate] access denied");
    assert_eq!(denial.code, "403");
}
