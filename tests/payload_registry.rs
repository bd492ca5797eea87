//! The link-time payload registry: two `#[derive(EventPayload)]` types in different modules of
//! this test binary claim one kind on purpose, and the check at startup and at `Store::open`
//! finds them by name (the same works across crates: registration happens at link time).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use batpak::event::{
    revalidate_event_payload_registry, validate_event_payload_registry, EventPayloadValidation,
};
use batpak::prelude::*;
use serde::{Deserialize, Serialize};

mod billing {
    #[derive(serde::Serialize, serde::Deserialize, batpak::EventPayload)]
    #[batpak(category = 0xA, type_id = 0x77)]
    pub struct InvoicePaid {
        pub cents: u64,
    }
}

mod shipping {
    #[derive(serde::Serialize, serde::Deserialize, batpak::EventPayload)]
    #[batpak(category = 0xA, type_id = 0x77)]
    pub struct ParcelShipped {
        pub parcels: u32,
    }
}

#[derive(Serialize, Deserialize, EventPayload)]
#[batpak(category = 0xA, type_id = 0x78)]
struct Unrelated {
    n: u8,
}

#[test]
fn the_clash_names_both_types_with_their_modules_and_crate() {
    let err = validate_event_payload_registry().unwrap_err();
    assert_eq!(err.collisions().len(), 1, "{err}");
    let c = &err.collisions()[0];
    assert_eq!((c.category, c.type_id), (0xA, 0x77));
    assert_eq!(c.kind(), billing::InvoicePaid::KIND);
    assert_eq!(
        c.first_type_name,
        format!(
            "payload_registry::billing::InvoicePaid (payload_registry v{})",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(
        c.second_type_name
            .starts_with("payload_registry::shipping::ParcelShipped"),
        "{c}"
    );
    let text = err.to_string();
    for needle in ["billing::InvoicePaid", "shipping::ParcelShipped", "0xA077"] {
        assert!(text.contains(needle), "{needle} missing from: {text}");
    }
    assert!(!text.contains("Unrelated"), "{text}");
    let _ = (
        billing::InvoicePaid { cents: 1 }.cents,
        shipping::ParcelShipped { parcels: 1 }.parcels,
        Unrelated { n: 1 }.n,
    );
}

#[test]
fn fail_fast_refuses_to_open_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let err = Store::open(
        StoreConfig::new(&data).with_event_payload_validation(EventPayloadValidation::FailFast),
    )
    .unwrap_err();
    match &err {
        StoreError::EventPayloadRegistry(e) => assert_eq!(e.collisions().len(), 1),
        other => panic!("expected EventPayloadRegistry, got {other:?}"),
    }
    assert!(err.to_string().contains("shipping::ParcelShipped"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    assert!(
        !data.exists(),
        "a refused open must not create the directory"
    );
}

#[test]
fn warn_and_silent_open_anyway() {
    for mode in [EventPayloadValidation::Warn, EventPayloadValidation::Silent] {
        let _ = revalidate_event_payload_registry();
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(StoreConfig::new(dir.path()).with_event_payload_validation(mode)).unwrap();
        let coord = Coordinate::new("u:1", "s").unwrap();
        store.append_typed(&coord, &Unrelated { n: 3 }).unwrap();
        store.close().unwrap();
    }
    // The default is Warn.
    let dir = tempfile::tempdir().unwrap();
    Store::open(StoreConfig::new(dir.path()))
        .unwrap()
        .close()
        .unwrap();
}
