//! Writes an example store for the `batpak` tool: orders, their payments (caused by the order)
//! and shipments (caused by the payment), in batches.
//!
//! Run: `cargo run -p batpak-cli --example example_store -- DIR [ORDERS]`, then
//! `cargo run -p batpak-cli -- graph DIR --out graph.dot` or `-- verify DIR`.

use batpak::prelude::*;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: example_store DIR [ORDERS]")?);
    let orders: u64 = match args.next() {
        Some(n) => n.parse()?,
        None => 4,
    };
    // Deferred durability: a bulk load syncs every 10,000 events instead of every append.
    let store = Store::open(StoreConfig::new(&dir).with_sync_every_n_events(10_000))?;
    let started = std::time::Instant::now();
    for i in 0..orders {
        let order = Coordinate::new(format!("order:{i}"), "shop")?;
        let placed = store.append(
            &order,
            EventKind::custom(1, 1),
            &serde_json::json!({ "items": i % 5 + 1 }),
        )?;
        let paid = store.append_reaction(
            &Coordinate::new(format!("payment:{i}"), "billing")?,
            EventKind::custom(1, 2),
            &serde_json::json!({ "cents": 1000 + i }),
            placed.event_id,
            placed.event_id,
        )?;
        store.append_reaction(
            &order,
            EventKind::custom(1, 3),
            &"shipped",
            placed.event_id,
            paid.event_id,
        )?;
    }
    store.sync()?;
    let events = store.stats().event_count;
    store.close()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{events} events in {} in {secs:.2} s ({:.0} events/s)",
        dir.display(),
        events as f64 / secs.max(1e-9)
    );
    Ok(())
}
