//! Events: kinds, payload trait, headers and the hash chain. Public through the `event`
//! facade, which adds the payload registry's and the event-sourcing items under upstream's
//! paths; this module sits below them, and they import it (it names neither them nor the
//! facade: see tests/layers.rs).

use crate::coord::Coordinate;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An event's kind: a `u16` whose high 4 bits are the category and low 12 bits the type.
///
/// Categories `0x0` (system) and `0xD` (effects) are reserved for the store itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventKind(u16);

/// Why an [`EventKind`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKindError {
    /// The category does not fit in 4 bits.
    CategoryOutOfRange {
        /// The refused category.
        category: u8,
    },
    /// Category 0x0 is reserved for the store's own (system) kinds.
    ReservedSystemCategory,
    /// Category 0xD is reserved for effect kinds.
    ReservedEffectCategory,
    /// The type id does not fit in 12 bits.
    TypeIdOutOfRange {
        /// The refused type id.
        type_id: u16,
    },
}

impl fmt::Display for EventKindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CategoryOutOfRange { category } => {
                write!(f, "event kind category {category:#x} exceeds 0xF")
            }
            Self::TypeIdOutOfRange { type_id } => {
                write!(f, "event kind type id {type_id:#x} exceeds 0xFFF")
            }
            Self::ReservedSystemCategory => {
                write!(f, "event kind category 0x0 is reserved for system kinds")
            }
            Self::ReservedEffectCategory => {
                write!(f, "event kind category 0xd is reserved for effect kinds")
            }
        }
    }
}

impl std::error::Error for EventKindError {}

impl EventKind {
    /// Category of system events written by the store itself (denials, ...).
    pub const SYSTEM_CATEGORY: u8 = 0x0;
    /// Category reserved for effects.
    pub const EFFECT_CATEGORY: u8 = 0xD;

    // Upstream's library kinds, with upstream's values. Callers cannot append kinds of the
    // reserved categories; the store writes the ones it uses itself.

    /// A plain data event (category 0x1, a user category): upstream's generic kind.
    pub const DATA: EventKind = EventKind(0x1000);
    /// System initialisation (reserved; this store writes none).
    pub const SYSTEM_INIT: EventKind = EventKind(0x0001);
    /// System shutdown (reserved; this store writes none).
    pub const SYSTEM_SHUTDOWN: EventKind = EventKind(0x0002);
    /// System heartbeat (reserved; this store writes none).
    pub const SYSTEM_HEARTBEAT: EventKind = EventKind(0x0003);
    /// System configuration change (reserved; this store writes none).
    pub const SYSTEM_CONFIG_CHANGE: EventKind = EventKind(0x0004);
    /// System checkpoint (reserved; this store writes none).
    pub const SYSTEM_CHECKPOINT: EventKind = EventKind(0x0005);
    /// Upstream's batch-begin marker kind (reserved; this store's batch markers are log
    /// records, not events, and never visible).
    pub const SYSTEM_BATCH_BEGIN: EventKind = EventKind(0x0006);
    /// Upstream's batch-commit marker kind (reserved, as [`EventKind::SYSTEM_BATCH_BEGIN`]).
    pub const SYSTEM_BATCH_COMMIT: EventKind = EventKind(0x0007);
    /// The lifecycle event a writable open appends once recovery is done (at
    /// `batpak:store` / `batpak:lifecycle`; `StoreConfig::with_lifecycle_events`).
    pub const SYSTEM_OPEN_COMPLETED: EventKind = EventKind(0x0008);
    /// The lifecycle event an explicit `close()` appends before the writer stops.
    pub const SYSTEM_CLOSE_COMPLETED: EventKind = EventKind(0x0009);
    /// The kind of a gate denial recorded by `Store::append_denial` /
    /// `Store::append_denial_record`.
    pub const SYSTEM_DENIAL: EventKind = EventKind(0x000F);
    /// Effect: an error was observed (reserved).
    pub const EFFECT_ERROR: EventKind = EventKind(0xD001);
    /// Effect: a retry (reserved).
    pub const EFFECT_RETRY: EventKind = EventKind(0xD002);
    /// Effect: an acknowledgement (reserved).
    pub const EFFECT_ACK: EventKind = EventKind(0xD004);
    /// Effect: backpressure (reserved).
    pub const EFFECT_BACKPRESSURE: EventKind = EventKind(0xD005);
    /// Effect: a cancellation (reserved).
    pub const EFFECT_CANCEL: EventKind = EventKind(0xD006);
    /// Effect: a conflict (reserved).
    pub const EFFECT_CONFLICT: EventKind = EventKind(0xD007);
    /// Upstream's compaction tombstone kind (reserved).
    pub const TOMBSTONE: EventKind = EventKind(0x0FFE);

    /// Builds a user kind. Usable in `const` context.
    ///
    /// # Panics
    /// At compile time (in a `const`) or at run time if the category is above 0xF or
    /// reserved, or the type id is above 0xFFF. Use [`EventKind::try_custom`] for input that
    /// is not a constant.
    #[allow(clippy::panic)]
    pub const fn custom(category: u8, type_id: u16) -> EventKind {
        match Self::try_custom(category, type_id) {
            Ok(kind) => kind,
            // One message per refusal (upstream's wording for the reserved categories).
            Err(EventKindError::CategoryOutOfRange { .. }) => {
                panic!("invalid EventKind: category must be 0-15 (4 bits)")
            }
            Err(EventKindError::ReservedSystemCategory) => {
                panic!("invalid EventKind: category 0x0 is reserved for system kinds")
            }
            Err(EventKindError::ReservedEffectCategory) => {
                panic!("invalid EventKind: category 0xD is reserved for effect kinds")
            }
            Err(EventKindError::TypeIdOutOfRange { .. }) => {
                panic!("invalid EventKind: type id must fit in 12 bits (at most 0xFFF)")
            }
        }
    }

    /// Builds a user kind, refusing bad input.
    pub const fn try_custom(category: u8, type_id: u16) -> Result<EventKind, EventKindError> {
        if category > 0xF {
            return Err(EventKindError::CategoryOutOfRange { category });
        }
        if type_id > 0xFFF {
            return Err(EventKindError::TypeIdOutOfRange { type_id });
        }
        if category == Self::SYSTEM_CATEGORY {
            return Err(EventKindError::ReservedSystemCategory);
        }
        if category == Self::EFFECT_CATEGORY {
            return Err(EventKindError::ReservedEffectCategory);
        }
        Ok(EventKind(((category as u16) << 12) | type_id))
    }

    /// Reassembles a kind from its raw `u16` (as stored on disk); any value is accepted.
    pub const fn from_raw(raw: u16) -> EventKind {
        EventKind(raw)
    }

    /// The raw `u16`.
    pub const fn as_raw(self) -> u16 {
        self.0
    }

    /// High 4 bits.
    pub const fn category(self) -> u8 {
        (self.0 >> 12) as u8
    }

    /// Low 12 bits.
    pub const fn type_id(self) -> u16 {
        self.0 & 0x0FFF
    }

    /// Whether this kind belongs to a reserved category (system or effects).
    pub const fn is_reserved(self) -> bool {
        let c = self.category();
        c == Self::SYSTEM_CATEGORY || c == Self::EFFECT_CATEGORY
    }

    /// Whether this kind is in the system category (0x0).
    pub const fn is_system(self) -> bool {
        self.category() == Self::SYSTEM_CATEGORY
    }

    /// Whether this kind is in the effects category (0xD).
    pub const fn is_effect(self) -> bool {
        self.category() == Self::EFFECT_CATEGORY
    }
}

impl fmt::Debug for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventKind({:#x}:{:#x})", self.category(), self.type_id())
    }
}

impl fmt::Display for EventKind {
    /// `0x` and four upper-case hex digits (upstream's form), e.g. `0xA0BC`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.0)
    }
}

/// A typed event payload with a fixed kind. Derive it with `#[derive(EventPayload)]` and
/// `#[batpak(category = 0xF, type_id = 1)]`.
pub trait EventPayload: Serialize + DeserializeOwned {
    /// The kind every event of this type is stored under.
    const KIND: EventKind;
}

/// Where an event sits in time: the store's hybrid logical clock in milliseconds and the
/// entity's own clock. `(wall_ms, clock)` strictly increases along an entity, and `wall_ms`
/// never decreases along the store's sequence order (INV-HLC-MONOTONE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventPosition {
    /// Hybrid logical clock, milliseconds since the Unix epoch: the wall clock when the writer
    /// stamped the event, unless the clock was behind an earlier event (stepped back, or an
    /// earlier reading was ahead); then the earlier event's time. Never decreases, also across
    /// restarts (recovered from the log).
    pub wall_ms: u64,
    /// The entity's clock: 1 for its first event, then +1 per written event (hidden ones too).
    pub clock: u32,
}

impl EventPosition {
    /// The hybrid-clock milliseconds (the `wall_ms` field; upstream's `DagPosition::wall_ms()`
    /// accessor, so code written against upstream's header position compiles).
    pub const fn wall_ms(&self) -> u64 {
        self.wall_ms
    }

    /// The entity clock (the `clock` field): upstream's name for an event's place on its
    /// entity's chain. It counts from 1 here; upstream's first event has sequence 0.
    pub const fn sequence(&self) -> u32 {
        self.clock
    }
}

impl PartialEq<crate::coord::DagPosition> for EventPosition {
    /// Whether `other` is this position as upstream's (see the `From` conversions: depth 0,
    /// lane 0, sequence = the entity clock, the same `wall_ms`, counter 0).
    fn eq(&self, other: &crate::coord::DagPosition) -> bool {
        crate::coord::DagPosition::from(*self) == *other
    }
}

impl From<crate::coord::DagPosition> for EventPosition {
    /// Upstream's position as this crate's: `wall_ms` is the stamp, the entity clock is the
    /// sequence (depth, lane and the stamp's counter have no place in one chain per entity).
    fn from(p: crate::coord::DagPosition) -> Self {
        Self {
            wall_ms: p.wall_ms(),
            clock: p.sequence(),
        }
    }
}

impl From<EventPosition> for crate::coord::DagPosition {
    /// The event's place as upstream's position: depth 0, lane 0 (one chain per entity),
    /// sequence = the entity clock, stamped with `wall_ms`.
    fn from(p: EventPosition) -> Self {
        Self::child_at(p.clock, p.wall_ms, 0)
    }
}

/// An event's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHeader {
    /// UUIDv7 event id.
    pub event_id: u128,
    /// Correlation id (the event's own id for a root cause).
    pub correlation_id: u128,
    /// The event that caused this one, if any.
    pub causation_id: Option<u128>,
    /// The writer's hybrid logical clock in microseconds since the Unix epoch (see
    /// [`EventPosition::wall_ms`], which is this divided by 1000).
    pub timestamp_us: i64,
    /// Wall-clock and per-entity clock position.
    pub position: EventPosition,
    /// Payload length in bytes (MessagePack).
    pub payload_size: u32,
    /// The event's kind.
    pub event_kind: EventKind,
    /// Caller-defined flags.
    pub flags: u8,
    /// blake3 of the payload bytes.
    pub content_hash: [u8; 32],
}

/// Header flag (upstream's meaning): the event asks its consumers to acknowledge it.
pub const FLAG_REQUIRES_ACK: u8 = 0x01;
/// Header flag (upstream's meaning): the event is part of a transaction group.
pub const FLAG_TRANSACTIONAL: u8 = 0x02;
/// Header flag (upstream's meaning): the event replays an earlier one rather than being new.
pub const FLAG_REPLAY: u8 = 0x08;

impl EventHeader {
    /// A header from its parts, as upstream's `EventHeader::new` (its argument order), for
    /// building events by hand (tests, decoders, projections fed outside a store). `position`
    /// takes this crate's [`EventPosition`] or upstream's
    /// [`DagPosition`](crate::coord::DagPosition); flags start at 0 and the content hash
    /// at all zeros. The store stamps its own headers; this one is never written as given.
    pub fn new(
        event_id: u128,
        correlation_id: u128,
        causation_id: Option<u128>,
        timestamp_us: i64,
        position: impl Into<EventPosition>,
        payload_size: u32,
        event_kind: EventKind,
    ) -> Self {
        Self {
            event_id,
            correlation_id,
            causation_id,
            timestamp_us,
            position: position.into(),
            payload_size,
            event_kind,
            flags: 0,
            content_hash: [0u8; 32],
        }
    }

    /// [`EventHeader::new`] from typed ids (an event id cannot be passed as a correlation id).
    pub fn new_typed(
        event_id: crate::id::EventId,
        correlation_id: crate::id::CorrelationId,
        causation_id: Option<crate::id::CausationId>,
        timestamp_us: i64,
        position: impl Into<EventPosition>,
        payload_size: u32,
        event_kind: EventKind,
    ) -> Self {
        use crate::id::EntityIdType;
        Self::new(
            event_id.as_u128(),
            correlation_id.as_u128(),
            causation_id.map(|c| c.as_u128()),
            timestamp_us,
            position,
            payload_size,
            event_kind,
        )
    }

    /// Microseconds from the event's `timestamp_us` to `now_us` (0 when `now_us` is earlier).
    pub fn age_us(&self, now_us: i64) -> u64 {
        u64::try_from(now_us.saturating_sub(self.timestamp_us)).unwrap_or(0)
    }

    /// The header with `flags` replaced. The store records flags as given and attaches no
    /// behaviour to them; the `FLAG_*` constants are upstream's names for three bits.
    pub fn with_flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// Whether [`FLAG_REQUIRES_ACK`] is set.
    pub fn requires_ack(&self) -> bool {
        self.flags & FLAG_REQUIRES_ACK != 0
    }

    /// Whether [`FLAG_TRANSACTIONAL`] is set.
    pub fn is_transactional(&self) -> bool {
        self.flags & FLAG_TRANSACTIONAL != 0
    }

    /// Whether [`FLAG_REPLAY`] is set.
    pub fn is_replay(&self) -> bool {
        self.flags & FLAG_REPLAY != 0
    }
}

/// The entity hash chain link of an event (INV-CHAIN). `Default` is the all-zero link (no
/// previous event, no hash), upstream's placeholder for an unlinked event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct HashChain {
    /// Hash of the entity's previous written event (all zeros for the first).
    pub prev_hash: [u8; 32],
    /// This event's hash over header and payload.
    pub event_hash: [u8; 32],
}

/// An event with its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<P> {
    /// Header.
    pub header: EventHeader,
    /// Payload.
    pub payload: P,
    /// Chain link.
    pub hash_chain: Option<HashChain>,
}

impl<P> Event<P> {
    /// An event from a header and a payload, without a chain link.
    pub fn new(header: EventHeader, payload: P) -> Self {
        Self {
            header,
            payload,
            hash_chain: None,
        }
    }

    /// The event with `chain` as its chain link.
    pub fn with_hash_chain(mut self, chain: HashChain) -> Self {
        self.hash_chain = Some(chain);
        self
    }

    /// The event id.
    pub fn event_id(&self) -> u128 {
        self.header.event_id
    }

    /// The event's kind.
    pub fn event_kind(&self) -> EventKind {
        self.header.event_kind
    }

    /// Where the event sits in time (hybrid logical clock, entity clock).
    pub fn position(&self) -> &EventPosition {
        &self.header.position
    }

    /// Whether the event is the first of its entity's chain (no previous hash; an event
    /// without a chain link counts as one).
    pub fn is_genesis(&self) -> bool {
        self.hash_chain
            .as_ref()
            .is_none_or(|c| c.prev_hash == [0u8; 32])
    }

    /// The same event with its payload mapped by `f` (header and chain kept).
    pub fn map_payload<U, F: FnOnce(P) -> U>(self, f: F) -> Event<U> {
        Event {
            header: self.header,
            payload: f(self.payload),
            hash_chain: self.hash_chain,
        }
    }
}

/// An event with its coordinate, as returned by reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent<P> {
    /// Where the event was appended.
    pub coordinate: Coordinate,
    /// The event.
    pub event: Event<P>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_packs_category_and_type() {
        let k = EventKind::custom(0xF, 0x123);
        assert_eq!(k.category(), 0xF);
        assert_eq!(k.type_id(), 0x123);
        assert_eq!(k.as_raw(), 0xF123);
    }

    #[test]
    fn reserved_and_out_of_range_kinds_are_refused() {
        assert_eq!(
            EventKind::try_custom(0, 1),
            Err(EventKindError::ReservedSystemCategory)
        );
        assert_eq!(
            EventKind::try_custom(0xD, 1),
            Err(EventKindError::ReservedEffectCategory)
        );
        assert_eq!(
            EventKind::try_custom(0x10, 1),
            Err(EventKindError::CategoryOutOfRange { category: 0x10 })
        );
        assert_eq!(
            EventKind::try_custom(1, 0x1000),
            Err(EventKindError::TypeIdOutOfRange { type_id: 0x1000 })
        );
    }
}

/// Hashing helpers under upstream's path (`event::hash`).
///
/// A stored event's [`HashChain::event_hash`] here covers its header and payload (ids, time,
/// clock, kind, flags, the previous hash, the coordinate and the payload bytes), where
/// upstream's covers the payload bytes only; [`EventHeader::content_hash`] is the hash of the
/// payload bytes alone, what [`compute_hash`](hash::compute_hash) returns for them.
pub mod hash {
    pub use super::HashChain;

    /// blake3 of `content_bytes` (for an event's payload bytes: its
    /// [`EventHeader::content_hash`](super::EventHeader::content_hash)).
    pub fn compute_hash(content_bytes: &[u8]) -> [u8; 32] {
        *blake3::hash(content_bytes).as_bytes()
    }

    /// Whether `chain` links to `expected_prev` and its `event_hash` is the hash of
    /// `content_bytes` (the bytes the link was made over).
    pub fn verify_chain(content_bytes: &[u8], chain: &HashChain, expected_prev: &[u8; 32]) -> bool {
        chain.prev_hash == *expected_prev && chain.event_hash == compute_hash(content_bytes)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn verify_chain_checks_both_the_link_and_the_content() {
            let content = b"payload";
            let chain = HashChain {
                prev_hash: [1; 32],
                event_hash: compute_hash(content),
            };
            assert!(verify_chain(content, &chain, &[1; 32]));
            assert!(!verify_chain(b"payloaD", &chain, &[1; 32]));
            assert!(!verify_chain(content, &chain, &[2; 32]));
            assert_eq!(HashChain::default().prev_hash, [0; 32]);
        }
    }
}

/// Upstream's module path for the kind types (`event::kind::EventKindError`).
pub mod kind {
    pub use super::{EventKind, EventKindError};
}

/// Upstream's module path for the header (`event::header::EventHeader`).
pub mod header {
    pub use super::{EventHeader, FLAG_REPLAY, FLAG_REQUIRES_ACK, FLAG_TRANSACTIONAL};
}
