//! Typestate transitions: an order moves Draft -> Placed -> Shipped. Each move is a method on
//! the state it leaves (so `ship` on a draft does not compile) and is recorded as one event,
//! compare-and-swap on the order's clock so two callers cannot both move on from one state.
//!
//! Run with `cargo run --example typestate_order`.

use batpak::prelude::*;
use batpak::typestate::Transition;
use serde::{Deserialize, Serialize};

batpak::define_state_machine!(
    order_seal,
    OrderState {
        Draft,
        Placed,
        Shipped
    }
);
batpak::define_typestate!(Order<S: OrderState> { id: u32 });

#[derive(Serialize, Deserialize, EventPayload)]
#[batpak(category = 7, type_id = 1)]
struct OrderPlaced {
    id: u32,
}

#[derive(Serialize, Deserialize, EventPayload)]
#[batpak(category = 7, type_id = 2)]
struct OrderShipped {
    id: u32,
    carrier: String,
}

impl Order<Draft> {
    fn place(self) -> (Order<Placed>, Transition<Draft, Placed, OrderPlaced>) {
        let (id,) = self.into_data();
        (Order::new(id), Transition::from_payload(OrderPlaced { id }))
    }
}

impl Order<Placed> {
    fn ship(self, carrier: &str) -> (Order<Shipped>, Transition<Placed, Shipped, OrderShipped>) {
        let (id,) = self.into_data();
        let t = Transition::from_payload(OrderShipped {
            id,
            carrier: carrier.into(),
        });
        (Order::new(id), t)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let coord = Coordinate::new("order:17", "shop")?;

    let (order, placed) = Order::<Draft>::new(17).place();
    let r = store.apply_transition(&coord, placed.with_cas(0))?;
    println!("placed order {} (clock {})", order.id(), r.clock);

    // A second caller that still believes the order is a draft is refused.
    let (_, stale) = Order::<Draft>::new(17).place();
    match store.apply_transition(&coord, stale.with_cas(0)) {
        Err(e) => println!("stale transition refused: {e}"),
        Ok(_) => return Err("a stale transition must be refused".into()),
    }

    let (_order, shipped) = order.ship("post");
    let r = store.apply_transition(&coord, shipped.with_cas(r.clock))?;
    println!("shipped (clock {})", r.clock);
    // Order::<Draft>::new(18).ship("post"); // does not compile: a draft cannot ship

    for entry in store.stream("order:17") {
        println!(
            "  {} {}",
            entry.kind,
            store.get(entry.event_id)?.event.payload
        );
    }
    store.close()?;
    Ok(())
}
