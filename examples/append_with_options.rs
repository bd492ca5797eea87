//! Optimistic concurrency and idempotent retries.
//!
//! * A CAS retry loop: read the entity's clock, append with `with_cas(clock)`, and on
//!   `SequenceMismatch` re-read and retry.
//! * An idempotent retry: the same key and payload returns the original receipt and writes
//!   nothing; the same key with another payload is an `IdempotencyConflict`.
//! * A batch retry: a batch whose items all carry keys, sent again unchanged, returns the
//!   original receipts; a partial or reordered retry is an explained `IdempotencyConflict`.
//!
//! Run with `cargo run --example append_with_options`.

use batpak::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x4, type_id = 1)]
struct Deposited {
    cents: u64,
}

/// The entity's clock = the number of events written to it (0 = none yet).
fn clock_of(store: &Store, entity: &str) -> u32 {
    store.stream(entity).last().map(|e| e.clock).unwrap_or(0)
}

fn deposit_with_cas(
    store: &Store,
    coord: &Coordinate,
    cents: u64,
) -> Result<AppendReceipt, StoreError> {
    loop {
        let expected = clock_of(store, coord.entity());
        let options = AppendOptions::default().with_cas(expected);
        match store.append_typed_with_options(coord, &Deposited { cents }, options) {
            Err(StoreError::SequenceMismatch {
                expected, actual, ..
            }) => {
                println!("  CAS lost the race (expected {expected}, entity at {actual}); retrying");
            }
            other => return other,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()))?;
    let account = Coordinate::new("account:1", "bank")?;

    // CAS: "no events yet" is 0, distinct from "one event" (1).
    let r = deposit_with_cas(&store, &account, 100)?;
    println!("first deposit at clock {}", r.clock);
    let stale = store.append_typed_with_options(
        &account,
        &Deposited { cents: 5 },
        AppendOptions::default().with_cas(0),
    );
    println!(
        "append expecting an empty entity: {}",
        match stale {
            Err(e) => e.to_string(),
            Ok(_) => "unexpectedly accepted".into(),
        }
    );
    // Two threads racing with CAS: both succeed eventually, each exactly once.
    std::thread::scope(|s| {
        for cents in [10, 20] {
            let (store, account) = (&store, &account);
            s.spawn(move || deposit_with_cas(store, account, cents));
        }
    });
    println!("after the race: {} events", store.stream("account:1").len());

    // Idempotency: a retried request with the same key writes nothing new.
    let key: u128 = 0x5eed_0000_0000_0000_0000_0000_0000_0001;
    let options = AppendOptions::default().with_idempotency(key);
    let first = store.append_typed_with_options(&account, &Deposited { cents: 7 }, options)?;
    let retry = store.append_typed_with_options(&account, &Deposited { cents: 7 }, options)?;
    println!(
        "retry returned the original receipt: {}",
        first.event_id == retry.event_id
    );
    match store.append_typed_with_options(&account, &Deposited { cents: 8 }, options) {
        Err(e @ StoreError::IdempotencyConflict { .. }) => {
            println!("key reused for another payload: {e}")
        }
        other => println!("unexpected: {other:?}"),
    }
    println!("account:1 has {} events", store.stream("account:1").len());

    // A keyed batch retried after a lost reply: the original receipts, nothing written.
    let transfer = |keys: [u128; 2]| -> Result<Vec<BatchAppendItem>, StoreError> {
        let accounts = [
            Coordinate::new("account:1", "bank")?,
            Coordinate::new("account:2", "bank")?,
        ];
        keys.iter()
            .zip(accounts)
            .map(|(key, coord)| {
                BatchAppendItem::typed(
                    coord,
                    &Deposited { cents: 50 },
                    AppendOptions::default().with_idempotency(*key),
                    CausationRef::None,
                )
            })
            .collect()
    };
    let keys = [0x7a11, 0x7a12];
    let sent = store.append_batch(transfer(keys)?)?;
    let resent = store.append_batch(transfer(keys)?)?;
    println!(
        "batch retry returned the original receipts: {}",
        sent.iter()
            .zip(&resent)
            .all(|(a, b)| a.event_id == b.event_id)
    );
    match store.append_batch(transfer([keys[1], keys[0]])?) {
        Err(e) => println!("reordered retry refused: {e}"),
        Ok(_) => println!("unexpected: a reordered retry was accepted"),
    }
    store.close()?;
    Ok(())
}
