//! # batpak
//!
//! An embedded, synchronous event store: event sourcing with causal graphs, policy gates and
//! crash-atomic visibility fences. One process, one data directory, one writer thread, many
//! reader threads, no async runtime.
//!
//! This crate is the *verification-first reference*: every promise it makes (see
//! `spec/README.md` and the `INV-*` names in the docs) is checked by TLA+/TLC, loom, shuttle, a
//! crash-state enumerator and cargo-fuzz.
//!
//! ```ignore
//! use batpak::prelude::*;
//! # fn main() -> Result<(), StoreError> {
//! let store = Store::open(StoreConfig::new("./data"))?;
//! let coord = Coordinate::new("order:1", "shop").map_err(StoreError::from)?;
//! store.append(&coord, EventKind::custom(0xF, 1), &serde_json::json!({"total": 42}))?;
//! store.close()?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod sync;

pub mod env;

// pub mod codec;
pub mod coordinate;
pub mod event;
// pub mod log;

// pub mod index;
// pub mod writer;

// pub mod store;

// pub mod guard;
// pub mod pipeline;

pub mod prelude;

pub use batpak_macros::EventPayload;
pub use event::EventPayload;
