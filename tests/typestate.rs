//! Typestate transitions: legal moves are one event each, under the payload's kind, and a CAS
//! transition decided on a stale view of the entity is refused without writing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use batpak::prelude::*;
use batpak::typestate::Transition;
use serde::{Deserialize, Serialize};

batpak::define_state_machine!(
    order_seal,
    OrderState {
        Draft,
        Placed,
        Cancelled
    }
);
batpak::define_typestate!(Order<S: OrderState> { id: u32, lines: Vec<String> });

#[derive(Serialize, Deserialize, EventPayload, Debug, PartialEq)]
#[batpak(category = 7, type_id = 1)]
struct OrderPlaced {
    id: u32,
    lines: Vec<String>,
}

#[derive(Serialize, Deserialize, EventPayload, Debug, PartialEq)]
#[batpak(category = 7, type_id = 2)]
struct OrderCancelled {
    id: u32,
}

impl Order<Draft> {
    fn place(self) -> (Order<Placed>, Transition<Draft, Placed, OrderPlaced>) {
        let (id, lines) = self.into_data();
        let t = Transition::from_payload(OrderPlaced {
            id,
            lines: lines.clone(),
        });
        (Order::new(id, lines), t)
    }
}

impl Order<Placed> {
    fn cancel(
        self,
    ) -> (
        Order<Cancelled>,
        Transition<Placed, Cancelled, OrderCancelled>,
    ) {
        let (id, lines) = self.into_data();
        (
            Order::new(id, lines),
            Transition::from_payload(OrderCancelled { id }),
        )
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(StoreConfig::new(dir)).unwrap()
}

#[test]
fn legal_transitions_are_one_event_each_under_their_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let coord = Coordinate::new("order:1", "shop").unwrap();
    let draft = Order::<Draft>::new(1, vec!["tea".into()]);
    let (placed, t) = draft.place();
    assert_eq!(t.kind(), OrderPlaced::KIND);
    assert_eq!(t.payload().id, 1);
    let r1 = store.apply_transition(&coord, t.with_cas(0)).unwrap();
    let (cancelled, t) = placed.cancel();
    let r2 = store
        .apply_transition(&coord, t.with_cas(r1.clock))
        .unwrap();
    assert_eq!(cancelled.data(), (&1, &vec!["tea".to_string()]));
    let kinds: Vec<EventKind> = store.stream("order:1").iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![OrderPlaced::KIND, OrderCancelled::KIND]);
    assert_eq!(
        store
            .get_typed::<OrderPlaced>(r1.event_id)
            .unwrap()
            .event
            .payload,
        OrderPlaced {
            id: 1,
            lines: vec!["tea".into()]
        }
    );
    assert_eq!(r2.clock, 2);
    store.close().unwrap();
}

#[test]
fn a_transition_from_a_stale_state_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let coord = Coordinate::new("order:2", "shop").unwrap();
    // Two callers both hold the order as Draft (clock 0); only the first may place it.
    let (_, first) = Order::<Draft>::new(2, vec![]).place();
    let (_, second) = Order::<Draft>::new(2, vec![]).place();
    store.apply_transition(&coord, first.with_cas(0)).unwrap();
    let err = store
        .apply_transition(&coord, second.with_cas(0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SequenceMismatch {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_definite());
    assert_eq!(store.stream("order:2").len(), 1);
    // Without a CAS clock the append is unconditional.
    let (_, third) = Order::<Draft>::new(2, vec![]).place();
    assert_eq!(third.expected_clock(), None);
    store.apply_transition(&coord, third).unwrap();
    assert_eq!(store.stream("order:2").len(), 2);
    store.close().unwrap();
}

#[test]
fn options_travel_with_the_transition() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let coord = Coordinate::new("order:3", "shop").unwrap();
    let (_, t) = Order::<Draft>::new(3, vec![]).place();
    let opts = AppendOptions::new().with_idempotency(5).with_flags(3);
    let r = store
        .apply_transition_with_options(&coord, t, opts)
        .unwrap();
    let (_, again) = Order::<Draft>::new(3, vec![]).place();
    let retry = store
        .apply_transition_with_options(&coord, again, opts)
        .unwrap();
    assert_eq!(retry.event_id, r.event_id);
    assert_eq!(store.get_raw(r.event_id).unwrap().event.header.flags, 3);
    store.close().unwrap();
}
