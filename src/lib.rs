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
//!
//! A generic type is refused too: every instantiation would share the one kind, so after a
//! restart an event written as `G<u64>` would read back as `G<i64>` without an error. Derive it
//! on a concrete type instead (tuple structs, unit structs and enums are fine):
//!
//! ```compile_fail
//! use batpak::EventPayload;
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 1, type_id = 4)]
//! struct G<T> {
//!     v: T,
//! }
//! ```
//!
//! The same without the generic parameter compiles (so the example above fails for the
//! generic alone):
//!
//! ```
//! use batpak::EventPayload;
//! #[derive(serde::Serialize, serde::Deserialize, EventPayload)]
//! #[batpak(category = 1, type_id = 4)]
//! struct G {
//!     v: u64,
//! }
//! # assert_eq!(<G as EventPayload>::KIND.as_raw(), 0x1004);
//! ```
//!
//! ## The payload registry
//!
//! Each derived type is also registered at link time, so two types claiming one kind are found
//! wherever they are declared, in this crate or a dependency:
//! [`event::validate_event_payload_registry`] names both types and their crates, and
//! `Store::open` warns (or, with
//! [`EventPayloadValidation::FailFast`](event::EventPayloadValidation::FailFast), refuses).
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

// The layers, bottom up (tests/layers.rs enforces the order): the concurrency shim and the
// seeded bugs; what the outside world gives the store; the vocabulary; the frame codec; the
// log; the index; the writer; recovery; the store; the gates.
pub(crate) mod mutant;
pub(crate) mod sync;
pub(crate) mod trace;

pub mod env;

pub mod append;
pub(crate) mod coord;
pub mod coordinate;
pub mod error;
pub mod event;
pub(crate) mod event_types;
pub(crate) mod payload_registry;
pub mod region;
pub mod signing;
pub(crate) mod sourcing;
pub mod typestate;

pub(crate) mod codec;
pub(crate) mod log;

pub(crate) mod index;
pub(crate) mod writer;

pub(crate) mod checkpoint;
pub(crate) mod recovery;

pub mod store;

pub mod guard;
pub mod id;
pub mod outcome;
pub mod pipeline;

pub mod prelude;

pub use batpak_macros::EventPayload;
pub use batpak_macros::EventSourced;
pub use batpak_macros::MultiEventReactor;
pub use event::EventPayload;
pub use sourcing::EventSourced;

/// Paths used by code that batpak's derive macros generate. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::payload_registry::EventPayloadRegistration;
    pub use crate::store::delivery::reactor::typed_view;
    pub use inventory;
    pub use serde;
}

/// The door for batpak's own model, fuzz and test crates: the internals they drive directly
/// (the concurrency shim, the simulated disk, the frame codec, the log's records, segments and
/// scan, the trace events, recovery without a writer thread, and in the mutant build the
/// seeded bugs).
///
/// **Not public API.** Nothing here is covered by semver: it changes whenever the internals
/// do. Programs use the documented modules ([`store`], [`env`](mod@env), [`coordinate`], ...).
#[doc(hidden)]
pub mod __testing {
    /// The concurrency shim (`std` + flume, or loom / shuttle under `--cfg loom` / `shuttle`).
    pub mod sync {
        pub use crate::sync::*;
    }
    /// Everything of [`crate::env`], plus the simulated disk and its crash images and faults.
    pub mod env {
        pub use crate::env::sim::{
            CrashImage, CrashOptions, FailedSync, Fault, FaultError, FaultKind, SimDisk,
        };
        pub use crate::env::*;
    }
    /// The frame codec and the records of the log.
    pub mod codec {
        pub use crate::codec::*;
    }
    /// The log: records, segment names and headers, the scan that recovery runs.
    pub mod log {
        pub use crate::log::*;
    }
    /// The TLA+ trace events (the `tla-trace` feature's sink and the spec's action names).
    pub mod trace {
        pub use crate::trace::*;
    }
    pub use crate::store::open::recover_visible;

    /// The seeded bugs (mutant build only: `--cfg batpak_mutant`).
    #[cfg(batpak_mutant)]
    pub use crate::mutant::{seed_thread, Mutant, ThreadBug};
}
