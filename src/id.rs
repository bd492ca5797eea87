//! Typed ids (upstream's `batpak::id`): newtypes around a `u128` UUIDv7 so an event id cannot
//! be passed where a correlation id is meant, and [`define_entity_id!`](crate::define_entity_id)
//! to declare more.
//!
//! The store's own API takes and returns raw `u128` ids (as upstream's does); these types are
//! for application code. Display and parse as `"<entity>:<32 hex digits>"`.
//!
//! ```
//! use batpak::id::EntityIdType;
//! batpak::define_entity_id!(OrderId, "order");
//!
//! let id = OrderId::new(0x2a);
//! assert_eq!(id.to_string(), "order:0000000000000000000000000000002a");
//! assert_eq!(id.to_string().parse::<OrderId>(), Ok(id));
//! assert!("invoice:2a".parse::<OrderId>().is_err());
//! assert_ne!(OrderId::now_v7(), OrderId::now_v7());
//! ```

use crate::env::{Clock, IdSource, RandomIds, SystemClock};
use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

/// A typed `u128` id (made by [`define_entity_id!`](crate::define_entity_id)).
pub trait EntityIdType:
    Copy + Clone + Eq + Hash + fmt::Debug + fmt::Display + FromStr + Send + Sync + 'static
{
    /// The entity name used in the text form (for example `"event"`).
    const ENTITY_NAME: &'static str;
    /// The id with this raw value.
    fn new(id: u128) -> Self;
    /// The raw value.
    fn as_u128(&self) -> u128;
    /// A fresh UUIDv7 ([`generate_v7_id`]).
    fn now_v7() -> Self;
    /// The nil (zero) id.
    fn nil() -> Self;
}

/// A fresh UUIDv7-shaped `u128`: the system clock's millisecond in the top 48 bits, then
/// version and variant bits and 73 random bits drawn from the OS (the same layout as the
/// store's event ids, [`RandomIds`]). Unique (two calls collide with probability about
/// 2^-73 per millisecond) and ordered by millisecond; ids of one millisecond are unordered.
/// Stores stamp event ids from their configured [`IdSource`]; this is for application ids.
pub fn generate_v7_id() -> u128 {
    RandomIds::new().next_id(SystemClock.now_us())
}

/// Declares a typed id `$name` whose text form is `"$entity:<32 hex digits>"`:
/// `batpak::define_entity_id!(OrderId, "order");` gives `OrderId` with
/// [`EntityIdType`](crate::id::EntityIdType), `Display` and `FromStr` (which refuses a
/// missing or different entity prefix).
#[macro_export]
macro_rules! define_entity_id {
    ($name:ident, $entity:literal) => {
        #[doc = concat!("Typed id of `", $entity, "` entities: a `u128` UUIDv7.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u128);

        impl $crate::id::EntityIdType for $name {
            const ENTITY_NAME: &'static str = $entity;

            fn new(id: u128) -> Self {
                Self(id)
            }

            fn as_u128(&self) -> u128 {
                self.0
            }

            fn now_v7() -> Self {
                Self($crate::id::generate_v7_id())
            }

            fn nil() -> Self {
                Self(0)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}:{:032x}", $entity, self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::string::String;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                let hex = s.strip_prefix(concat!($entity, ":")).ok_or_else(|| {
                    format!(
                        "invalid {} id {s:?}: it must start with '{}:'",
                        $entity, $entity
                    )
                })?;
                u128::from_str_radix(hex, 16)
                    .map(Self)
                    .map_err(|e| format!("invalid {} id {s:?}: {e}", $entity))
            }
        }
    };
}

define_entity_id!(EventId, "event");
define_entity_id!(CorrelationId, "correlation");
define_entity_id!(CausationId, "causation");

macro_rules! raw_conversions {
    ($($t:ty),*) => {$(
        impl From<u128> for $t {
            fn from(id: u128) -> Self {
                <Self as EntityIdType>::new(id)
            }
        }
        impl From<$t> for u128 {
            fn from(id: $t) -> Self {
                id.as_u128()
            }
        }
    )*};
}
raw_conversions!(EventId, CorrelationId, CausationId);
