//! `#[derive(EventPayload)]`: the generated kind, generics, and use through the trait.
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

#[derive(Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x2, type_id = 0x42)]
struct Wrapped<T: Clone>
where
    T: Serialize,
{
    inner: T,
}

#[derive(Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x3, type_id = 7)]
struct Borrowing<'a> {
    #[serde(skip)]
    marker: std::marker::PhantomData<&'a ()>,
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
fn generic_payloads_keep_one_kind_for_every_instantiation() {
    assert_eq!(kind_of::<Wrapped<u32>>(), EventKind::custom(0x2, 0x42));
    assert_eq!(kind_of::<Wrapped<String>>(), kind_of::<Wrapped<u32>>());
    let w = Wrapped { inner: 5u8 };
    assert_eq!(w.inner, 5);
}

#[test]
fn lifetime_generic_payloads_derive() {
    assert_eq!(kind_of::<Borrowing<'static>>().as_raw(), 0x3007);
    let b = Borrowing {
        marker: std::marker::PhantomData,
    };
    assert_eq!(std::mem::size_of_val(&b), 0);
}

#[test]
fn derived_kinds_are_not_reserved() {
    for kind in [
        OrderPlaced::KIND,
        Extremes::KIND,
        Reordered::KIND,
        Wrapped::<u8>::KIND,
    ] {
        assert!(
            !kind.is_reserved(),
            "{kind:?} must not be in a reserved category"
        );
    }
}
