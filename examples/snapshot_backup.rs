//! An online backup: `snapshot` copies the store at its durable frontier while a writer keeps
//! appending and a visibility fence is open. The backup opens as the store at that moment:
//! the fence, committed only afterwards, is not in it.
//!
//! Run: `cargo run --example snapshot_backup`

use batpak::prelude::*;
use batpak::store::ReadOnly;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(root.path().join("live")))?;
    let kind = EventKind::custom(1, 1);
    let stop = AtomicBool::new(false);
    let backup = root.path().join("backup");
    let appended = std::thread::scope(|s| -> Result<u32, Box<dyn std::error::Error>> {
        let writer = s.spawn(|| -> Result<u32, StoreError> {
            let coord = Coordinate::new("sensor:1", "plant")?;
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                match store.append(&coord, kind, &n) {
                    Ok(_) => n += 1,
                    // Plain appends wait while the fence below is open.
                    Err(StoreError::VisibilityFenceActive) => std::thread::yield_now(),
                    Err(e) => return Err(e),
                }
            }
            Ok(n)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let fence = store.begin_visibility_fence()?;
        let _ticket = fence.submit(&Coordinate::new("order:9", "shop")?, kind, &"reserved")?;
        store.snapshot(&backup)?;
        fence.commit()?;
        stop.store(true, Ordering::Relaxed);
        Ok(writer.join().map_err(|_| "writer panicked")??)
    })?;
    let live_events = store.stats().event_count;
    store.close()?;

    let copy = Store::<ReadOnly>::open_read_only(StoreConfig::new(&backup))?;
    println!("writer appended {appended} events while the backup ran");
    println!(
        "live store: {live_events} events; backup: {} events at one frontier",
        copy.stats().event_count
    );
    println!(
        "fenced order in the backup: {} (the fence was open when it was taken)",
        copy.stream("order:9").len()
    );
    Ok(())
}
