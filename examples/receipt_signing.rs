//! Receipt signing: a store opened with an Ed25519 key signs every receipt; the store verifies
//! a receipt against the event it holds, so a changed field, another key or another store's
//! receipt is refused.
//!
//! Run with `cargo run --example receipt_signing`.

use batpak::prelude::*;
use batpak::store::SigningKey;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // In production the 32 secret bytes come from a secret store, never from source code.
    let key = SigningKey::from_bytes([42; 32]);
    println!("signing key: {key:?}"); // prints the public key id only
    let store = Store::open(StoreConfig::new(dir.path()).with_signing_key(key))?;
    let coord = Coordinate::new("settings:primary", "config")?;

    let receipt = store.append(&coord, EventKind::custom(6, 1), &"retention_days=30")?;
    println!(
        "event {} at sequence {} verified: {}",
        receipt.event_id,
        receipt.sequence,
        store.verify_append_receipt(&receipt)
    );

    let mut tampered = receipt;
    tampered.sequence += 1;
    println!(
        "same receipt claiming another sequence verified: {}",
        store.verify_append_receipt(&tampered)
    );
    store.close()?;

    let other_dir = tempfile::tempdir()?;
    let other = Store::open(
        StoreConfig::new(other_dir.path()).with_signing_key(SigningKey::from_bytes([42; 32])),
    )?;
    println!(
        "receipt checked by another store with the same key: {}",
        other.verify_append_receipt(&receipt)
    );
    other.close()?;
    Ok(())
}
