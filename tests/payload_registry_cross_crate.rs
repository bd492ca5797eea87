//! The payload registry across crates: `batpak-payload-fixture` (a separate crate under
//! `tests/fixtures/payload-dep`) declares `shipping::ParcelShipped` with kind 0xB:0x042, and
//! this test crate declares `Courier` with the same kind. Registration happens at link time, so
//! the check finds the clash although neither crate knows the other, and names both types
//! with their crates and versions; `Store::open` with `FailFast` refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::event::{validate_event_payload_registry, EventPayloadValidation};
use batpak::prelude::*;
use batpak_payload_fixture::shipping::{ParcelLost, ParcelShipped};

/// Claims the fixture crate's kind.
#[derive(Debug, serde::Serialize, serde::Deserialize, EventPayload)]
#[batpak(category = 0xB, type_id = 0x042)]
struct Courier {
    name: String,
}

#[test]
fn a_clash_between_two_crates_names_both_types_and_crates() {
    // Naming the fixture's types links the crate into this binary.
    assert_eq!(ParcelShipped::KIND, Courier::KIND);
    assert_ne!(ParcelLost::KIND, Courier::KIND);

    let err = validate_event_payload_registry().unwrap_err();
    assert_eq!(err.collisions().len(), 1, "{err}");
    let c = &err.collisions()[0];
    assert_eq!((c.category, c.type_id), (0xB, 0x042));
    let mut names = [c.first_type_name, c.second_type_name];
    names.sort();
    assert_eq!(
        names,
        [
            "batpak_payload_fixture::shipping::ParcelShipped (batpak_payload_fixture v0.1.0)",
            &*format!(
                "payload_registry_cross_crate::Courier (payload_registry_cross_crate v{})",
                env!("CARGO_PKG_VERSION")
            ),
        ],
        "{err}"
    );
    let text = err.to_string();
    for needle in ["ParcelShipped", "Courier", "batpak_payload_fixture", "0xB"] {
        assert!(text.contains(needle), "{needle} missing from: {text}");
    }
    assert!(!text.contains("ParcelLost"), "{text}");
    let _ = Courier { name: "x".into() }.name;
}

#[test]
fn fail_fast_refuses_to_open_over_a_cross_crate_clash() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Store::open(
        StoreConfig::new(tmp.path())
            .with_event_payload_validation(EventPayloadValidation::FailFast),
    )
    .unwrap_err();
    match err {
        StoreError::EventPayloadRegistry(e) => {
            let text = e.to_string();
            assert!(
                text.contains("ParcelShipped") && text.contains("Courier"),
                "{text}"
            );
        }
        other => panic!("expected EventPayloadRegistry, got {other:?}"),
    }
    // Warn (the default) opens anyway.
    Store::open(StoreConfig::new(tmp.path()))
        .unwrap()
        .close()
        .unwrap();
}
