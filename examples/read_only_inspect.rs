//! Looking at a store without any risk: a read-only open of a store that a crash left with a
//! torn tail. Nothing is repaired or written; two readers look at once; a writer is kept out
//! while they do.
//!
//! Run: `cargo run --example read_only_inspect`

use batpak::prelude::*;
use batpak::store::ReadOnly;
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let coord = Coordinate::new("order:7", "shop")?;
    for step in ["placed", "paid", "shipped"] {
        store.append(&coord, EventKind::custom(1, 1), &step)?;
    }
    store.close()?;

    // A crash in the middle of a write leaves a few bytes of a frame at the end.
    let segment = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .ok_or("no segment")?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)?
        .write_all(&[0x42; 9])?;
    let size_before = std::fs::metadata(&segment)?.len();

    let a = Store::<ReadOnly>::open_read_only(StoreConfig::new(dir.path()))?;
    let b = Store::<ReadOnly>::open_read_only(StoreConfig::new(dir.path()))?;
    for e in a.stream("order:7") {
        let step: String = serde_json::from_value(a.get(e.event_id)?.event.payload)?;
        println!("seq {}: {step}", e.global_sequence);
    }
    if let Some(t) = &a.recovery_report().torn_tail {
        println!(
            "torn tail ignored in memory at {} offset {}",
            t.file.display(),
            t.offset
        );
    }
    println!("second reader sees {} events", b.stats().event_count);
    match Store::open(StoreConfig::new(dir.path())) {
        Err(StoreError::StoreLocked { .. }) => println!("a writer waits until the readers close"),
        other => return Err(format!("expected StoreLocked, got {other:?}").into()),
    }
    drop((a, b));
    assert_eq!(std::fs::metadata(&segment)?.len(), size_before);
    println!("segment unchanged: {size_before} bytes");
    Ok(())
}
