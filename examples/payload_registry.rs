//! The payload registry: every `#[derive(EventPayload)]` type is registered at link time, so two
//! types that claim one `EventKind` (typically in two crates that never see each other) are
//! found at startup, by name, before either's events are misread as the other's.
//!
//! Run with `cargo run --example payload_registry`.

use batpak::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x4, type_id = 1)]
struct AccountOpened {
    owner: String,
}

// Tuple structs, unit structs and enums derive too; generic types do not (all their
// instantiations would share one kind).
#[derive(Debug, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x4, type_id = 2)]
enum AccountEvent {
    Frozen { reason: String },
    Closed,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Once at startup, after every payload crate is linked: fails naming both types and
    // their crates if two claim one kind.
    validate_event_payload_registry()?;
    println!("payload registry: no kind is claimed twice");

    let dir = tempfile::tempdir()?;
    // FailFast turns a clash into an open error; the default (Warn) logs it once.
    let store = Store::open(
        StoreConfig::new(dir.path())
            .with_event_payload_validation(EventPayloadValidation::FailFast),
    )?;
    let coord = Coordinate::new("account:7", "bank")?;
    store.append_typed(
        &coord,
        &AccountOpened {
            owner: "ada".into(),
        },
    )?;
    let r = store.append_typed(
        &coord,
        &AccountEvent::Frozen {
            reason: "audit".into(),
        },
    )?;
    store.append_typed(&coord, &AccountEvent::Closed)?;
    println!(
        "{:?}",
        store.get_typed::<AccountEvent>(r.event_id)?.event.payload
    );
    store.close()?;
    Ok(())
}
