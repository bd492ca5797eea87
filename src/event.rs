//! Events: kinds, payload trait, headers and the hash chain; the link-time payload registry
//! and the event-sourcing traits, under upstream's paths (`batpak::event::EventSourced`, ...).

pub use crate::event_types::*;
pub use crate::payload_registry::{
    revalidate_event_payload_registry, validate_event_payload_registry, EventPayloadKindCollision,
    EventPayloadRegistryError, EventPayloadValidation,
};
pub use crate::sourcing::{
    DecodeSource, DecodeTyped, EventSourced, JsonValueInput, ProjectionEvent, ProjectionInput,
    ProjectionPayload, RawMsgpackInput, Reactive, ReplayLane, TypedDecodeError,
};

/// Upstream's module path for the event-sourcing traits (`batpak::event::sourcing::Reactive`);
/// the same items as at [`crate::event`].
pub mod sourcing {
    pub use crate::sourcing::{
        DecodeSource, DecodeTyped, EventSourced, JsonValueInput, ProjectionEvent, ProjectionInput,
        ProjectionPayload, RawMsgpackInput, Reactive, ReplayLane, TypedDecodeError,
    };
}
