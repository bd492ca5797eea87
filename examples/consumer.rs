//! A durable consumer that turns orders into invoices exactly once.
//!
//! Run it twice: `cargo run --example consumer -- /tmp/consumer-demo`. Each run appends three
//! orders, then the consumer `billing` resumes after its committed checkpoint and writes one
//! invoice per new order with `commit_with`, which stores the invoices and the checkpoint as
//! one atomic unit: killed at any instant (try `kill -9` while it sleeps between orders), a
//! restart neither skips an order nor writes an invoice twice. A lossy subscription shows
//! the same events live.

use batpak::prelude::*;
use batpak::store::CheckpointId;
use std::time::Duration;

const ORDER: EventKind = EventKind::custom(0xA, 1);
const INVOICE: EventKind = EventKind::custom(0xA, 2);

fn main() -> Result<(), StoreError> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("batpak-consumer-demo"));
    let store = Store::open(StoreConfig::new(&dir))?;
    let live = store.subscribe_lossy(&Region::entity("order"));
    for i in 0..3u32 {
        let n = store.query(&Region::entity("order")).len() as u32 + 1;
        let coord = Coordinate::new(format!("order:{n}"), "shop")?;
        store.append(
            &coord,
            ORDER,
            &serde_json::json!({ "order": n, "amount": 10 * (i + 1) }),
        )?;
    }
    while let Some(n) = live.try_recv() {
        println!("live: {} at sequence {}", n.coord.entity(), n.sequence);
    }

    let billing = CheckpointId::try_new("billing")?;
    let mut consumer = store.consumer(&billing, &Region::entity("order"))?;
    println!("billing resumes after {:?}", consumer.committed());
    loop {
        let batch = consumer.poll(1, Duration::from_millis(10));
        let Some(order) = batch.first() else { break };
        let coord = Coordinate::new(format!("invoice:{}", order.coord.entity()), "billing")?;
        let invoice = BatchAppendItem::new(
            coord,
            INVOICE,
            &serde_json::json!({ "for": order.event_id.to_string() }),
            AppendOptions::default(),
            CausationRef::Absolute(order.event_id),
        )?;
        consumer.commit_with(vec![invoice])?;
        println!(
            "invoiced {} (checkpoint {:?})",
            order.coord.entity(),
            consumer.committed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(consumer);
    let orders = store.query(&Region::entity("order")).len();
    let invoices = store.by_fact(INVOICE).len();
    println!(
        "{orders} orders, {invoices} invoices, lag {:?}",
        store.consumers()
    );
    assert_eq!(orders, invoices, "exactly one invoice per order");
    store.close()?;
    Ok(())
}
