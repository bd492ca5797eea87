//! Compaction: merge sealed segments, keep a retention window, forget an entity.
//!
//! `Store::compact` rewrites the sealed segments (every one but the one being written) into
//! one: kept records are copied byte for byte with their sequences; removed runs of sequences
//! are recorded as `Dropped` records, so sequences never move and consumers, cursors and
//! checkpoints keep pointing at the same events. Batches and fences are kept or dropped whole,
//! a fence still open is left alone, and a crash at any point recovers to the state before or
//! after. Run: `cargo run --example compaction`.

use batpak::prelude::*;
use batpak::store::{CheckpointId, CompactionOutcome};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = || {
        StoreConfig::new(dir.path())
            .with_lifecycle_events(false)
            .with_segment_max_bytes(16 * 1024)
    };
    let store = Store::open(config())?;
    let reading = EventKind::custom(1, 1);
    for i in 0..5_000u64 {
        let coord = Coordinate::new(format!("sensor:{}", i % 10), "plant")?;
        store.append(&coord, reading, &i)?;
    }
    // A consumer that has processed everything so far.
    let mut consumer = store.consumer(&CheckpointId::new("alerts"), &Region::entity("sensor"))?;
    while !consumer.poll(1000, Duration::from_millis(10)).is_empty() {}
    consumer.commit()?;
    let committed = consumer.committed();
    drop(consumer);

    // 1. Merge: no event removed, fewer files.
    let merged = store.compact(&CompactionConfig::default())?;
    println!(
        "merge:     {:?}, {} segment file(s) removed, {} bytes reclaimed",
        merged.outcome, merged.segments_removed, merged.bytes_reclaimed
    );

    // 2. Retention: keep only readings from 4,000 on (in the sealed segments).
    let retention = store.compact(&CompactionConfig {
        strategy: CompactionStrategy::Retention(Box::new(|e| {
            e.event.payload.as_u64().is_some_and(|n| n >= 4_000)
        })),
        min_segments: 1,
    })?;
    assert_eq!(retention.outcome, CompactionOutcome::Performed);
    println!(
        "retention: {} bytes reclaimed, {} events left",
        retention.bytes_reclaimed,
        store.stats().event_count
    );

    // 3. Tombstone: forget sensor:3 entirely (every event of it in the sealed segments).
    let tombstone = store.compact(&CompactionConfig {
        strategy: CompactionStrategy::Tombstone(Box::new(|e| e.coordinate.entity() != "sensor:3")),
        min_segments: 1,
    })?;
    println!(
        "tombstone: {} bytes reclaimed; sensor:3 has {} event(s) left (in the active segment)",
        tombstone.bytes_reclaimed,
        store.stream("sensor:3").len()
    );

    // Sequences did not move: the last event is still number 4,999, and the consumer's
    // checkpoint still names the same event.
    let last = store
        .query(&Region::all())
        .last()
        .map(|e| e.global_sequence);
    assert_eq!(last, Some(4_999));
    store.close()?;
    let store = Store::open(config())?;
    let consumer = store.consumer(&CheckpointId::new("alerts"), &Region::entity("sensor"))?;
    assert_eq!(consumer.committed(), committed);
    println!(
        "reopened:  {} events, consumer 'alerts' still at {:?}",
        store.stats().event_count,
        consumer.committed()
    );
    Ok(())
}
