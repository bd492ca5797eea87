//! Quickstart: open a store in a temporary directory, append typed events and a batch, read
//! them back, reopen and show they survived.
//!
//! Run with `cargo run --example quickstart`.

use batpak::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x1, type_id = 1)]
struct OrderPlaced {
    order_id: u32,
    total_cents: u64,
}

#[derive(Debug, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x1, type_id = 2)]
struct ItemShipped {
    order_id: u32,
    sku: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    println!("data directory: {}", dir.path().display());

    let store = Store::open(StoreConfig::new(dir.path()))?;
    let order = Coordinate::new("order:42", "shop")?;

    // A typed append: acknowledged only once durable (group commit).
    let placed = store.append_typed(
        &order,
        &OrderPlaced {
            order_id: 42,
            total_cents: 1999,
        },
    )?;
    println!(
        "appended OrderPlaced: sequence {}, clock {}",
        placed.sequence, placed.clock
    );

    // An atomic batch: both events become visible together, or neither does.
    let batch = vec![
        BatchAppendItem::typed(
            order.clone(),
            &ItemShipped {
                order_id: 42,
                sku: "A-1".into(),
            },
            AppendOptions::default(),
            CausationRef::Absolute(placed.event_id),
        )?,
        BatchAppendItem::typed(
            order.clone(),
            &ItemShipped {
                order_id: 42,
                sku: "B-2".into(),
            },
            AppendOptions::default(),
            CausationRef::PriorItem(0),
        )?,
    ];
    let receipts = store.append_batch(batch)?;
    println!("appended a batch of {} events", receipts.len());

    // Read back: the entity's stream, then one event decoded as its type.
    for entry in store.stream("order:42") {
        println!(
            "  {} clock {} kind {}",
            entry.coord, entry.clock, entry.kind
        );
    }
    let shipped: StoredEvent<ItemShipped> = store.get_typed(receipts[1].event_id)?;
    println!("second shipment: {:?}", shipped.event.payload);
    store.close()?;

    // Reopen: recovery rebuilds the index from the log.
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let events = store.stream("order:42");
    println!("after reopen: {} events for order:42", events.len());
    assert_eq!(events.len(), 3);
    let first: StoredEvent<OrderPlaced> = store.get_typed(placed.event_id)?;
    println!("first event survived: {:?}", first.event.payload);
    store.close()?;
    Ok(())
}
