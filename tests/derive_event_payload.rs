//! `#[derive(EventPayload)]`: the generated kind for every accepted shape (named, tuple and
//! unit structs, enums), and use through the trait. Generic types are refused at compile time
//! (the `compile_fail` doctests in the crate docs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use batpak::event::EventKind;
use batpak::EventPayload;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, EventPayload)]
#[batpak(category = 0xF, type_id = 1)]
struct OrderPlaced {
    total: u64,
}

#[derive(Serialize, Deserialize, EventPayload)]
#[batpak(category = 1, type_id = 0xFFF)]
struct Extremes;

#[derive(Serialize, Deserialize, EventPayload)]
#[batpak(type_id = 0, category = 0xC)]
enum Reordered {
    A,
}

#[derive(Serialize, Deserialize, EventPayload, Debug, PartialEq)]
#[batpak(category = 0x2, type_id = 0x42)]
struct Celsius(i32);

#[derive(Serialize, Deserialize, EventPayload, Debug, PartialEq)]
#[batpak(category = 0x3, type_id = 7)]
enum Shipment {
    Packed { parcels: u32 },
    Sent(String),
    Lost,
}

fn kind_of<P: EventPayload>() -> EventKind {
    P::KIND
}

#[test]
fn derived_kind_packs_category_and_type_id() {
    assert_eq!(OrderPlaced::KIND, EventKind::custom(0xF, 1));
    assert_eq!(OrderPlaced::KIND.as_raw(), 0xF001);
    assert_eq!(OrderPlaced::KIND.category(), 0xF);
    assert_eq!(OrderPlaced::KIND.type_id(), 1);
    let _ = OrderPlaced { total: 1 }.total;
}

#[test]
fn boundary_values_are_accepted() {
    assert_eq!(Extremes::KIND.as_raw(), 0x1FFF);
    assert_eq!(Extremes::KIND.category(), 1);
    assert_eq!(Extremes::KIND.type_id(), 0xFFF);
}

#[test]
fn keys_may_come_in_any_order() {
    assert_eq!(Reordered::KIND.as_raw(), 0xC000);
    assert!(matches!(Reordered::A, Reordered::A));
}

#[test]
fn tuple_structs_and_data_enums_derive_and_round_trip() {
    assert_eq!(kind_of::<Celsius>().as_raw(), 0x2042);
    assert_eq!(kind_of::<Shipment>().as_raw(), 0x3007);
    let dir = tempfile::tempdir().unwrap();
    let store =
        batpak::prelude::Store::open(batpak::prelude::StoreConfig::new(dir.path())).unwrap();
    let coord = batpak::prelude::Coordinate::new("parcel:1", "post").unwrap();
    let t = store.append_typed(&coord, &Celsius(-4)).unwrap();
    let shipments = [
        Shipment::Packed { parcels: 2 },
        Shipment::Sent("DHL".into()),
        Shipment::Lost,
    ];
    let ids: Vec<u128> = shipments
        .iter()
        .map(|s| store.append_typed(&coord, s).unwrap().event_id)
        .collect();
    assert_eq!(
        store
            .get_typed::<Celsius>(t.event_id)
            .unwrap()
            .event
            .payload,
        Celsius(-4)
    );
    for (id, want) in ids.iter().zip(&shipments) {
        assert_eq!(
            &store.get_typed::<Shipment>(*id).unwrap().event.payload,
            want
        );
    }
    store.close().unwrap();
}

#[test]
fn every_derived_type_is_in_the_link_time_registry() {
    // This binary derives distinct kinds only, so the registry holds no clash.
    batpak::event::validate_event_payload_registry().unwrap();
}

#[test]
fn derived_kinds_are_not_reserved() {
    for kind in [
        OrderPlaced::KIND,
        Extremes::KIND,
        Reordered::KIND,
        Celsius::KIND,
        Shipment::KIND,
    ] {
        assert!(
            !kind.is_reserved(),
            "{kind:?} must not be in a reserved category"
        );
    }
}

#[test]
fn a_payload_declared_inside_a_function_derives_and_registers() {
    #[derive(Serialize, Deserialize, EventPayload)]
    #[batpak(category = 0x9, type_id = 0x9)]
    struct Local {
        n: u8,
    }
    assert_eq!(Local::KIND.as_raw(), 0x9009);
    let _ = Local { n: 1 }.n;
    batpak::event::validate_event_payload_registry().unwrap();
}
