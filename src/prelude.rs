//! `use batpak::prelude::*;` brings in what a typical program needs.
pub use crate::coordinate::{Coordinate, CoordinateError, KindFilter, Region};
pub use crate::event::{
    Event, EventHeader, EventKind, EventKindError, EventPosition, HashChain,
    StoredEvent,
};
pub use crate::EventPayload;
