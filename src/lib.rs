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
//! ```no_run
//! use batpak::prelude::*;
//! # fn main() -> Result<(), StoreError> {
//! let store = Store::open(StoreConfig::new("./data"))?;
//! let coord = Coordinate::new("order:1", "shop").map_err(StoreError::from)?;
//! store.append(&coord, EventKind::custom(0xF, 1), &serde_json::json!({"total": 42}))?;
//! store.close()?;
//! # Ok(()) }
//! ```
//!
//! ## Typed payloads
//!
//! `#[derive(EventPayload)]` (re-exported here next to the trait, like serde's derives) gives
//! a payload type its fixed [`EventKind`](event::EventKind):
//!
//! ```
//! use batpak::EventPayload;
//!
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 0xF, type_id = 1)]
//! struct OrderPlaced {
//!     total: u64,
//! }
//!
//! assert_eq!(<OrderPlaced as batpak::EventPayload>::KIND.as_raw(), 0xF001);
//! ```
//!
//! The derive expands to paths under `::batpak`, so it is for crates that depend on batpak;
//! batpak's own payloads implement the trait by hand. The attribute is checked at compile
//! time. A reserved category (0x0 system, 0xD effects) is refused:
//!
//! ```compile_fail
//! use batpak::EventPayload;
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 0xD, type_id = 1)]
//! struct Effect;
//! ```
//!
//! so is a type id that does not fit in 12 bits:
//!
//! ```compile_fail
//! use batpak::EventPayload;
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 0xF, type_id = 0x1000)]
//! struct TooBig;
//! ```
//!
//! and a missing attribute:
//!
//! ```compile_fail
//! use batpak::EventPayload;
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! struct NoKind;
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod sync;

mod mutant;

pub mod trace;

pub mod env;

pub mod append;
pub mod codec;
pub mod coordinate;
pub mod error;
pub mod event;
pub mod log;
pub mod region;

pub mod index;
pub mod writer;

mod recovery;

pub mod store;

pub mod guard;
pub mod pipeline;

pub mod prelude;

pub use batpak_macros::EventPayload;
pub use event::EventPayload;

/// Paths used by code that batpak's derive macros generate. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
