//! Coordinates: where an event is appended (an entity within a scope).
//!
//! [`Region`] and [`KindFilter`] (what a query selects) live in [`crate::region`]; they are
//! re-exported here because upstream's path is `batpak::coordinate::Region`.

pub use crate::coord::*;
pub use crate::region::{KindFilter, Region};
