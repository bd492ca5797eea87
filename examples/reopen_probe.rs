//! Fills a store with N events (batches of 1000), then times reopening it. A tool for
//! profiling recovery: `cargo run --release --example reopen_probe -- 200000`.

use batpak::prelude::*;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    // With a second argument, reuse (or fill once) that directory, so a profiler sees only
    // the reopen.
    let keep = std::env::args().nth(2).map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir()?;
    let dir_path = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let filled = keep
        .as_ref()
        .is_some_and(|d| d.join("00000000000000000000.seg").exists());
    if !filled {
        let store = Store::open(StoreConfig::new(&dir_path))?;
        let kind = EventKind::custom(0x1, 1);
        let mut i = 0;
        while i < n {
            let mut items = Vec::with_capacity(1000);
            for j in i..(i + 1000).min(n) {
                let c = Coordinate::new(format!("entity:{}", j % 100), "bench")?;
                let payload = serde_json::json!({"user": format!("user-{j:06}"), "amount": j * 7, "note": "about one hundred bytes of payload in total"});
                items.push(BatchAppendItem::new(
                    c,
                    kind,
                    &payload,
                    AppendOptions::default(),
                    CausationRef::None,
                )?);
            }
            i += items.len() as u64;
            store.append_batch(items)?;
        }
        store.close()?;
    }
    let t = Instant::now();
    let store = Store::open(StoreConfig::new(&dir_path))?;
    let el = t.elapsed();
    println!(
        "reopened {} events in {:.3} s ({:.0} events/s)",
        store.stats().event_count,
        el.as_secs_f64(),
        store.stats().event_count as f64 / el.as_secs_f64()
    );
    store.close()?;
    Ok(())
}
