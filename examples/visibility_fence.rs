//! Visibility fences: several writes become durable at once but stay hidden until the fence
//! commits; a cancelled (or dropped, or crashed) fence never becomes visible.
//!
//! Run with `cargo run --example visibility_fence`.

use batpak::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let kind = EventKind::custom(0x3, 1);
    let cart = Coordinate::new("cart:1", "shop")?;
    let stock = Coordinate::new("stock:apple", "shop")?;

    // Commit: both writes appear together.
    let fence = store.begin_visibility_fence()?;
    let t1 = fence.submit(&cart, kind, &json!({"add": "apple"}))?;
    let t2 = fence.submit(&stock, kind, &json!({"reserve": 1}))?;
    // While the fence is open, unfenced writes are refused by the writer thread.
    let refused = store.append(&cart, kind, &json!({"add": "pear"}));
    println!(
        "unfenced write during the fence: {:?}",
        refused.err().map(|e| e.to_string())
    );
    println!(
        "visible before commit: {}",
        store.query(&Region::scope("shop")).len()
    );
    fence.commit()?;
    let (r1, r2) = (t1.wait()?, t2.wait()?);
    println!(
        "visible after commit: {} (sequences {} and {})",
        store.query(&Region::scope("shop")).len(),
        r1.sequence,
        r2.sequence
    );

    // Cancel: nothing appears, tickets say so.
    let fence = store.begin_visibility_fence()?;
    let t = fence.submit(&cart, kind, &json!({"add": "plum"}))?;
    fence.cancel()?;
    println!(
        "cancelled ticket: {:?}",
        t.wait().err().map(|e| e.to_string())
    );

    // A fenced outbox flush returns once the batch is durably staged (no deadlock).
    let fence = store.begin_visibility_fence()?;
    let mut outbox = fence.outbox();
    outbox.stage(&cart, kind, &json!({"add": "kiwi"}))?;
    outbox.stage(&stock, kind, &json!({"reserve": 2}))?;
    let staged = outbox.flush()?;
    println!(
        "staged {} events under the fence, visible now: {}",
        staged.len(),
        store.query(&Region::scope("shop")).len()
    );
    fence.commit()?;
    println!(
        "after commit: {}",
        store.query(&Region::scope("shop")).len()
    );

    // Drop without commit = cancel (never blocks the dropping thread).
    {
        let fence = store.begin_visibility_fence()?;
        let _ = fence.submit(&cart, kind, &json!({"add": "fig"}))?;
    }
    store.close()?;

    let store = Store::open(StoreConfig::new(dir.path()))?;
    println!(
        "after reopen: {} visible events (cancelled and dropped fences stay hidden)",
        store.query(&Region::scope("shop")).len()
    );
    store.close()?;
    Ok(())
}
