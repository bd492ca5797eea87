//! What compaction costs and reclaims on a large store.
//!
//! Fills a store in a temporary directory (real files) with N events (default 1,000,000, in
//! batches of 1000 events of one entity each, 100 entities, a ~100-byte payload, 8 MiB
//! segments), then compacts it:
//! first `Merge` (every record copied, nothing dropped), then `Retention` keeping the newest
//! half, then `Tombstone` of 10 of the 100 entities. Prints for each the time, the records
//! per second and the bytes reclaimed, and the reopen time of the compacted store.
//! Run: `cargo run --release --example compaction_cost [-- N]`.

use batpak::prelude::*;
use std::path::Path;
use std::time::Instant;

fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let config = || {
        StoreConfig::new(&dir)
            .with_lifecycle_events(false)
            .with_segment_max_bytes(8 << 20)
    };
    let store = Store::open(config())?;
    let kind = EventKind::custom(1, 1);
    let coords: Vec<Coordinate> = (0..100)
        .map(|i| Coordinate::new(format!("account:{i}"), "bench"))
        .collect::<Result<_, _>>()?;
    let filler = "p".repeat(80);
    let t = Instant::now();
    let mut i = 0u64;
    while i < n {
        let items = (i..(i + 1000).min(n))
            .map(|k| {
                // One entity per batch: units are kept or dropped whole, so a tombstone of
                // an entity frees the batches that hold only its events.
                BatchAppendItem::new(
                    coords[((k / 1000) % 100) as usize].clone(),
                    kind,
                    &(k, &filler),
                    AppendOptions::default(),
                    CausationRef::None,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        i += items.len() as u64;
        store.append_batch(items)?;
    }
    // Everything but the active (last) segment is sealed and gets compacted.
    store.sync()?;
    println!(
        "filled {n} events in {:.2} s: {} bytes of segments",
        t.elapsed().as_secs_f64(),
        log_bytes(&dir)
    );
    let run = |name: &str, config: CompactionConfig| -> Result<(), Box<dyn std::error::Error>> {
        let events = store.stats().event_count;
        let bytes = log_bytes(&dir);
        let t = Instant::now();
        let r = store.compact(&config)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{name:<10} {:?}: {secs:.2} s, {:.0} events/s ({:.1} MB/s of log read), {} of {bytes} bytes reclaimed ({:.1}%), {} segment file(s) removed, {} -> {} events",
            r.outcome,
            events as f64 / secs,
            bytes as f64 / secs / 1e6,
            r.bytes_reclaimed,
            100.0 * r.bytes_reclaimed as f64 / bytes.max(1) as f64,
            r.segments_removed,
            events,
            store.stats().event_count,
        );
        Ok(())
    };
    run("merge", CompactionConfig::default())?;
    let half = n / 2;
    run(
        "retention",
        CompactionConfig {
            strategy: CompactionStrategy::Retention(Box::new(move |e| {
                e.event
                    .payload
                    .get(0)
                    .and_then(|v| v.as_u64())
                    .is_some_and(|k| k >= half)
            })),
            min_segments: 1,
        },
    )?;
    run(
        "tombstone",
        CompactionConfig {
            strategy: CompactionStrategy::Tombstone(Box::new(|e| {
                e.coordinate
                    .entity()
                    .strip_prefix("account:")
                    .and_then(|s| s.parse::<u32>().ok())
                    .is_none_or(|k| k >= 10)
            })),
            min_segments: 1,
        },
    )?;
    store.close()?;
    let t = Instant::now();
    let reopened = Store::open(config())?;
    println!(
        "reopen of the compacted store: {:.2} s, {} events, {} bytes of segments",
        t.elapsed().as_secs_f64(),
        reopened.stats().event_count,
        log_bytes(&dir)
    );
    Ok(())
}
