//! Small pieces of upstream's surface that its own tests use: header flag names and
//! predicates, index-entry causality predicates, `HashChain::default` and the hash helpers,
//! and the never-returned `StoreError` variants kept so upstream's matches compile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::event::hash::{compute_hash, verify_chain};
use batpak::event::header::{FLAG_REPLAY, FLAG_REQUIRES_ACK, FLAG_TRANSACTIONAL};
use batpak::prelude::*;

fn open(dir: &std::path::Path) -> Store {
    Store::open(StoreConfig::new(dir).with_lifecycle_events(false)).unwrap()
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
