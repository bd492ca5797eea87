//! `use batpak::prelude::*;` brings in what a typical program needs.
pub use crate::coordinate::{Coordinate, CoordinateError, DagPosition};
pub use crate::error::{BatchStage, StoreError};
pub use crate::event::{
    revalidate_event_payload_registry, validate_event_payload_registry, EventPayloadKindCollision,
    EventPayloadRegistryError, EventPayloadValidation,
};
pub use crate::event::{
    DecodeSource, DecodeTyped, EventSourced, JsonValueInput, ProjectionEvent, ProjectionInput,
    ProjectionPayload, RawMsgpackInput, ReplayLane, TypedDecodeError,
};
pub use crate::event::{
    Event, EventHeader, EventKind, EventKindError, EventPosition, HashChain, StoredEvent,
};
pub use crate::guard::{DecisionTrace, Denial, Gate, GateDecision, GateOutcome, GateSet, Receipt};
pub use crate::index::IndexEntry;
pub use crate::outcome::{ErrorKind, Outcome, OutcomeError};
pub use crate::pipeline::{
    BypassAudit, BypassReason, BypassReceipt, CommitMetadata, Committed, Pipeline, Proposal,
};
pub use crate::region::{KindFilter, Region};
pub use crate::store::{
    Aggregate, ExecuteError, Freshness, NativeCache, NoCache, ProjectionCache, ProjectionWatcher,
    SnapshotPolicy, WatcherError,
};
pub use crate::store::{
    AppendOptions, AppendReceipt, AppendTicket, BatchAppendItem, BatchAppendTicket, CausationRef,
    Closed, DenialReceipt, DenialRecord, DurabilityGate, Frontier, HlcPoint, Open, Outbox,
    ReadOnly, Store, StoreConfig, StoreStats, SyncMode, VisibilityFence, WatermarkKind,
    WriterPressure,
};
pub use crate::store::{BatchConfig, IndexConfig, RestartPolicy, SyncConfig, WriterConfig};
pub use crate::store::{CompactionConfig, CompactionStrategy};
pub use crate::store::{
    MultiDispatchError, MultiReactive, ReactionBatch, ReactorConfig, ReactorError, TypedReactive,
    TypedReactorHandle,
};
pub use crate::EventPayload;
pub use batpak_macros::EventSourced;
pub use batpak_macros::MultiEventReactor;
