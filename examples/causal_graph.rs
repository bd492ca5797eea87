//! Reactions and the causal graph: `append_reaction` records correlation and causation;
//! `causes`, `effects` and `correlated` walk the recorded links; `walk_ancestors` walks an
//! entity's own chain back in time.
//!
//! Run with `cargo run --example causal_graph`.

use batpak::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let kind = EventKind::custom(0x5, 1);
    let order = Coordinate::new("order:9", "shop")?;
    let payment = Coordinate::new("payment:9", "shop")?;
    let shipping = Coordinate::new("shipment:9", "shop")?;

    // The root cause: its correlation id is its own id.
    let placed = store.append(&order, kind, &json!({"event": "placed"}))?;
    let corr = placed.event_id;
    let paid = store.append_reaction(
        &payment,
        kind,
        &json!({"event": "paid"}),
        corr,
        placed.event_id,
    )?;
    let shipped = store.append_reaction(
        &shipping,
        kind,
        &json!({"event": "shipped"}),
        corr,
        paid.event_id,
    )?;
    let _closed = store.append_reaction(
        &order,
        kind,
        &json!({"event": "closed"}),
        corr,
        shipped.event_id,
    )?;

    println!("causes of the shipment (nearest first):");
    for e in store.causes(shipped.event_id, 10) {
        println!("  {} clock {}", e.coord, e.clock);
    }
    println!("effects of the order being placed:");
    for e in store.effects(placed.event_id) {
        println!("  {}", e.coord);
    }
    println!("the whole conversation, in order:");
    for e in store.correlated(corr) {
        println!("  seq {} {}", e.global_sequence, e.coord);
    }
    let last = store
        .stream("order:9")
        .last()
        .map(|e| e.event_id)
        .unwrap_or(corr);
    println!("the order's last event and its ancestors along its chain:");
    for e in store.walk_ancestors(last, 10) {
        println!(
            "  clock {} genesis {} payload {}",
            e.event.position().clock,
            e.event.is_genesis(),
            e.event.payload
        );
    }
    // The same walk as index entries (no disk reads, the event itself excluded).
    for e in store.walk_ancestor_entries(last, 10) {
        println!(
            "  entry clock {} hash {:02x?}..",
            e.clock,
            &e.hash_chain.event_hash[..4]
        );
    }

    // Causation must name an existing earlier event (INV-CAUSAL).
    match store.append_reaction(&order, kind, &json!({}), corr, 0xdead_beef) {
        Err(e) => println!("unknown cause refused: {e}"),
        Ok(_) => println!("unexpectedly accepted"),
    }
    store.close()?;
    Ok(())
}
