//! Replicate a store into JetStream and import the stream into a read replica.
//!
//! Start a JetStream server on loopback first, then run this:
//!
//! ```text
//! nats-server -a 127.0.0.1 -js
//! cargo run -p batpak-jetstream --example replicate -- nats://127.0.0.1:4222
//! ```
//!
//! Each run appends a few orders (one inside a committed fence, one inside a cancelled
//! fence, two in an atomic batch, one with a binary payload), replicates what is committed
//! (exactly once: run it again and only the new events go out), and brings the stream into a
//! replica store: the batch as one atomic batch, every payload byte for byte.
use batpak::prelude::*;
use batpak_jetstream::{read_replicated, Importer, ImporterConfig, Replicator, ReplicatorConfig};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let dir = std::env::temp_dir().join("batpak-replicate-example");
    let store = Store::open(StoreConfig::new(dir.join("source")))?;
    let placed = EventKind::custom(0x1, 1);
    let run = store.stats().event_count;
    for i in 0..3 {
        let order = Coordinate::new(format!("order-{run}-{i}"), "shop")?;
        store.append(&order, placed, &serde_json::json!({"run": run, "item": i}))?;
    }
    let fence = store.begin_visibility_fence()?;
    let _committed = fence.submit(
        &Coordinate::new(format!("order-{run}-fenced"), "shop")?,
        placed,
        &"committed with its fence",
    )?;
    fence.commit()?;
    let fence = store.begin_visibility_fence()?;
    let _cancelled = fence.submit(
        &Coordinate::new(format!("order-{run}-cancelled"), "shop")?,
        placed,
        &"never replicated",
    )?;
    fence.cancel()?;
    // An atomic batch: the replica shows both events or neither, never one.
    let shipped = Coordinate::new(format!("order-{run}-0"), "shop")?;
    let label: &[u8] = b"\x00\x01 a binary label \xff";
    let batch = store.append_batch(vec![
        BatchAppendItem::new(
            shipped.clone(),
            placed,
            &serde_json::json!({"shipped": true}),
            AppendOptions::new(),
            CausationRef::None,
        )?,
        // A binary payload (MessagePack `bin`, which JSON has no form for).
        BatchAppendItem::new(
            shipped,
            placed,
            &Label(label),
            AppendOptions::new(),
            CausationRef::PriorItem(0),
        )?,
    ])?;

    let cfg = ReplicatorConfig::new([url.clone()], "SHOP", "shop");
    let mut replicator = Replicator::start(&store, cfg)?;
    let step = replicator.catch_up(Duration::from_secs(30))?;
    println!(
        "replicated {} new events (checkpoint at sequence {:?})",
        step.published,
        replicator.committed()
    );
    drop(replicator);

    let stream = read_replicated(std::slice::from_ref(&url), "SHOP", Duration::from_secs(30))?;
    for m in stream.iter().rev().take(4).rev() {
        println!(
            "  stream #{:<4} {:<28} seq {:<4} id {:032x}",
            m.stream_sequence, m.subject, m.sequence, m.event_id
        );
    }

    let mut importer = Importer::open(
        StoreConfig::new(dir.join("replica")),
        ImporterConfig::new([url], "SHOP"),
    )?;
    let imported = importer.catch_up(Duration::from_secs(30))?;
    println!(
        "replica: imported {} new events ({} already there, {} system events skipped); it holds {} events",
        imported.imported,
        imported.skipped,
        imported.reserved,
        importer.store().stats().event_count
    );
    let (source, replica) = (
        store.get_raw(batch[1].event_id)?,
        importer.store().get_raw(batch[1].event_id)?,
    );
    assert_eq!(source.event.payload, replica.event.payload);
    println!(
        "binary payload: {} bytes, the same in the replica",
        replica.event.payload.len()
    );
    Ok(())
}

/// Serialises as a MessagePack binary string.
struct Label<'a>(&'a [u8]);

impl serde::Serialize for Label<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}
