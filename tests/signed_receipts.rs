//! Signed receipts: every receipt a keyed store issues verifies, and changing any signed field,
//! another key, another store, or no key at all makes verification fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use batpak::prelude::*;
use batpak::store::SigningKey;

const SECRET: [u8; 32] = [
    0x5e, 0xc4, 0xe7, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
    0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
];

fn kind() -> EventKind {
    EventKind::custom(6, 1)
}

fn keyed(dir: &std::path::Path, secret: [u8; 32]) -> Store {
    Store::open(StoreConfig::new(dir).with_signing_key(SigningKey::from_bytes(secret))).unwrap()
}

fn coord() -> Coordinate {
    Coordinate::new("settings:primary", "config").unwrap()
}

#[test]
fn every_kind_of_receipt_is_signed_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = keyed(dir.path(), SECRET);
    let key_id = SigningKey::from_bytes(SECRET).key_id();
    let mut receipts = vec![
        store.append(&coord(), kind(), &"a").unwrap(),
        store
            .append_with_options(&coord(), kind(), &"b", AppendOptions::new().with_cas(1))
            .unwrap(),
        store
            .submit(&coord(), kind(), &"c")
            .unwrap()
            .wait()
            .unwrap(),
    ];
    receipts.extend(
        store
            .append_batch(vec![
                BatchAppendItem::new(
                    coord(),
                    kind(),
                    &"d",
                    AppendOptions::new(),
                    CausationRef::None,
                )
                .unwrap(),
                BatchAppendItem::new(
                    coord(),
                    kind(),
                    &"e",
                    AppendOptions::new(),
                    CausationRef::None,
                )
                .unwrap(),
            ])
            .unwrap(),
    );
    let fence = store.begin_visibility_fence().unwrap();
    let fenced = fence.submit(&coord(), kind(), &"f").unwrap();
    fence.commit().unwrap();
    receipts.push(fenced.wait().unwrap());
    for r in &receipts {
        assert_eq!(r.key_id, key_id);
        assert!(r.signature.is_some());
        assert!(store.verify_append_receipt(r), "{r:?}");
    }
    store.close().unwrap();
}

#[test]
fn flipping_any_signed_field_fails_and_unsigned_fields_do_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let store = keyed(dir.path(), SECRET);
    store.append(&coord(), kind(), &"first").unwrap();
    let r = store.append(&coord(), kind(), &"second").unwrap();
    assert!(store.verify_append_receipt(&r));

    let tampered: Vec<(&str, AppendReceipt)> = vec![
        ("event_id", {
            let mut t = r;
            t.event_id ^= 1;
            t
        }),
        ("sequence", {
            let mut t = r;
            t.sequence ^= 1;
            t
        }),
        ("clock", {
            let mut t = r;
            t.clock ^= 1;
            t
        }),
        ("content_hash", {
            let mut t = r;
            t.content_hash[31] ^= 1;
            t
        }),
        ("key_id", {
            let mut t = r;
            t.key_id[0] ^= 1;
            t
        }),
        ("signature", {
            let mut t = r;
            t.signature.as_mut().unwrap()[10] ^= 1;
            t
        }),
        ("signature removed", {
            let mut t = r;
            t.signature = None;
            t
        }),
    ];
    for (what, t) in &tampered {
        assert!(
            !store.verify_append_receipt(t),
            "changed {what} still verifies"
        );
    }
    // Another real event's receipt with this one's signature.
    let other = store.append(&coord(), kind(), &"third").unwrap();
    let mut swapped = other;
    swapped.signature = r.signature;
    assert!(!store.verify_append_receipt(&swapped));

    // Where the frame sits and whether it was durable yet are not what was written.
    let mut moved = r;
    moved.disk_pos.offset += 1;
    moved.durable = !moved.durable;
    assert!(store.verify_append_receipt(&moved));
    store.close().unwrap();
}

#[test]
fn a_receipt_signed_by_another_key_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = keyed(dir.path(), SECRET);
    let r = store.append(&coord(), kind(), &"x").unwrap();
    store.close().unwrap();
    // The same log, reopened under another key: the event is there, the key is not.
    let store = keyed(dir.path(), [9; 32]);
    assert!(store.get_raw(r.event_id).is_ok());
    assert!(!store.verify_append_receipt(&r));
    // A forged receipt: the right fields signed by the other key.
    let forged = store.append(&coord(), kind(), &"y").unwrap();
    store.close().unwrap();
    let store = keyed(dir.path(), SECRET);
    assert!(
        store.verify_append_receipt(&r),
        "the original key verifies again"
    );
    assert!(!store.verify_append_receipt(&forged));
    store.close().unwrap();
}

#[test]
fn a_receipt_for_another_store_fails_even_under_the_same_key() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (sa, sb) = (keyed(a.path(), SECRET), keyed(b.path(), SECRET));
    let ra = sa.append(&coord(), kind(), &"same").unwrap();
    let rb = sb.append(&coord(), kind(), &"same").unwrap();
    assert!(sa.verify_append_receipt(&ra));
    assert!(sb.verify_append_receipt(&rb));
    assert!(!sb.verify_append_receipt(&ra));
    assert!(!sa.verify_append_receipt(&rb));
    sa.close().unwrap();
    sb.close().unwrap();
}

#[test]
fn without_a_key_receipts_are_unsigned_and_never_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    let r = store.append(&coord(), kind(), &"x").unwrap();
    assert_eq!(r.key_id, [0; 32]);
    assert_eq!(r.signature, None);
    assert!(!store.verify_append_receipt(&r));
    store.close().unwrap();
    // A keyed store does not vouch for an event it did not sign either.
    let store = keyed(dir.path(), SECRET);
    assert!(!store.verify_append_receipt(&r));
    store.close().unwrap();
}

#[test]
fn an_idempotent_retry_after_reopen_answers_a_signed_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let opts = AppendOptions::new().with_idempotency(77);
    let store = keyed(dir.path(), SECRET);
    let first = store
        .append_with_options(&coord(), kind(), &"once", opts)
        .unwrap();
    let again = store
        .append_with_options(&coord(), kind(), &"once", opts)
        .unwrap();
    assert_eq!(again.signature, first.signature);
    store.close().unwrap();
    let store = keyed(dir.path(), SECRET);
    let retried = store
        .append_with_options(&coord(), kind(), &"once", opts)
        .unwrap();
    assert_eq!(retried.event_id, first.event_id);
    // Ed25519 is deterministic: the same cover gives the same signature.
    assert_eq!(retried.signature, first.signature);
    assert!(store.verify_append_receipt(&retried));
    store.close().unwrap();
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let key = SigningKey::from_bytes(SECRET);
    let cfg = StoreConfig::new("/nonexistent").with_signing_key(key.clone());
    let hex: String = SECRET.iter().map(|b| format!("{b:02x}")).collect();
    for text in [format!("{key:?}"), format!("{key:#?}"), format!("{cfg:?}")] {
        assert!(!text.contains(&hex[..16]), "{text}");
        assert!(!text.contains("94, 196, 231"), "{text}");
        assert!(!text.contains("0x5e"), "{text}");
    }
    let public: String = key.key_id().iter().map(|b| format!("{b:02x}")).collect();
    assert!(format!("{key:?}").contains(&public));
}

#[test]
fn receipts_round_trip_through_serde_with_their_signature() {
    let dir = tempfile::tempdir().unwrap();
    let store = keyed(dir.path(), SECRET);
    let r = store.append(&coord(), kind(), &"x").unwrap();
    let json = serde_json::to_string(&r).unwrap();
    let back: AppendReceipt = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    assert!(store.verify_append_receipt(&back));
    let bytes = rmp_serde::to_vec(&r).unwrap();
    let back: AppendReceipt = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, r);
    store.close().unwrap();
}

struct Closed;

impl Gate<String> for Closed {
    fn name(&self) -> &'static str {
        "write_window"
    }
    fn evaluate(&self, _ctx: &String) -> Result<(), Denial> {
        Err(Denial::new(self.name(), "writes are paused"))
    }
}

fn deny(store: &Store) -> DenialReceipt {
    let mut gates = GateSet::new();
    gates.push(Closed);
    let denial = Denial::new("write_window", "writes are paused");
    store
        .append_denial(
            &coord(),
            kind(),
            &gates,
            &denial,
            Some([5; 32]),
            Some("test".into()),
            AppendOptions::new(),
        )
        .unwrap()
}

#[test]
fn denial_receipts_verify_and_fail_when_changed_or_taken_for_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = keyed(dir.path(), SECRET);
    let a = store.append(&coord(), kind(), &"before").unwrap();
    let d = deny(&store);
    assert_eq!(d.key_id, SigningKey::from_bytes(SECRET).key_id());
    assert!(store.verify_denial_receipt(&d));
    let tampered: Vec<(&str, DenialReceipt)> = vec![
        ("event_id", {
            let mut t = d;
            t.event_id ^= 1;
            t
        }),
        ("sequence", {
            let mut t = d;
            t.sequence ^= 1;
            t
        }),
        ("content_hash", {
            let mut t = d;
            t.content_hash[0] ^= 1;
            t
        }),
        ("key_id", {
            let mut t = d;
            t.key_id[5] ^= 1;
            t
        }),
        ("signature", {
            let mut t = d;
            t.signature.as_mut().unwrap()[63] ^= 1;
            t
        }),
    ];
    for (what, t) in &tampered {
        assert!(
            !store.verify_denial_receipt(t),
            "changed {what} still verifies"
        );
    }
    // An append's receipt dressed as a denial's fails, and the other way round.
    assert!(!store.verify_denial_receipt(&DenialReceipt::from(&a)));
    store.close().unwrap();
    let other = tempfile::tempdir().unwrap();
    let other = keyed(other.path(), SECRET);
    assert!(!other.verify_denial_receipt(&d), "another store");
    other.close().unwrap();
    let store = keyed(dir.path(), [1; 32]);
    assert!(!store.verify_denial_receipt(&d), "another key");
    store.close().unwrap();
}

#[test]
fn a_recorded_denial_is_signed_as_a_denial_and_never_passes_as_an_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = keyed(dir.path(), SECRET);
    let denial = Denial::new("write_window", "writes are paused");
    let r = store
        .append_denial_record(&coord(), &denial, &DecisionTrace::default())
        .unwrap();
    assert_eq!(r.key_id, SigningKey::from_bytes(SECRET).key_id());
    assert!(r.signature.is_some());
    assert!(!store.verify_append_receipt(&r));
    store.close().unwrap();
}
