//! `StoreError`: every error the store can produce. Each variant names what and where.
//!
//! Write errors are either **definite** (nothing was or will ever become visible) or
//! **indeterminate** ([`StoreError::OutcomeUnknown`], [`StoreError::WriterCrashed`]): the
//! write may or may not survive, but it still obeys the atomicity invariants
//! (INV-DEFINITE-ERRORS). [`StoreError::is_definite`] tells which.

use crate::coordinate::CoordinateError;
use std::fmt;
use std::path::{Path, PathBuf};

/// Stage of batch processing when a batch failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStage {
    /// Pre-write checks (size, CAS, idempotency, causation, fence state).
    Validation,
    /// Payload serialisation.
    Encoding,
    /// Segment file write.
    Writing,
    /// fsync.
    Syncing,
    /// In-memory index update.
    Indexing,
}

/// What [`StoreError::CorruptSegment`] says: a message and, for damage this store found,
/// the damaged file and the byte offset of the damage.
///
/// It stands where upstream has `detail: String`: it dereferences to the message (`&str`),
/// displays as the message, compares with strings, and converts from `String` / `&str`, so
/// upstream code that builds or matches `CorruptSegment { segment_id, detail }` compiles.
///
/// ```
/// use batpak::store::{CorruptionDetail, StoreError};
///
/// let e = StoreError::CorruptSegment { segment_id: 3, detail: "bad magic".into() };
/// let StoreError::CorruptSegment { detail, .. } = &e else { unreachable!() };
/// assert!(detail.contains("magic"));
/// assert_eq!(detail.file(), None);
///
/// let found = CorruptionDetail::at("/data/000003.seg", 4096, "CRC mismatch");
/// assert_eq!(found.offset(), Some(4096));
/// assert_eq!(found, "CRC mismatch");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptionDetail {
    message: String,
    place: Option<(PathBuf, u64)>,
}

impl CorruptionDetail {
    /// Damage at byte `offset` of `file`.
    pub fn at(file: impl Into<PathBuf>, offset: u64, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            place: Some((file.into(), offset)),
        }
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The damaged file, when known (always, for damage this store found).
    pub fn file(&self) -> Option<&Path> {
        self.place.as_ref().map(|(file, _)| file.as_path())
    }

    /// Byte offset of the damage in [`CorruptionDetail::file`], when known.
    pub fn offset(&self) -> Option<u64> {
        self.place.as_ref().map(|(_, offset)| *offset)
    }
}

impl From<String> for CorruptionDetail {
    fn from(message: String) -> Self {
        Self {
            message,
            place: None,
        }
    }
}

impl From<&str> for CorruptionDetail {
    fn from(message: &str) -> Self {
        Self::from(message.to_string())
    }
}

impl std::ops::Deref for CorruptionDetail {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl AsRef<str> for CorruptionDetail {
    fn as_ref(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for CorruptionDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl PartialEq<str> for CorruptionDetail {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<&str> for CorruptionDetail {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

impl PartialEq<String> for CorruptionDetail {
    fn eq(&self, other: &String) -> bool {
        self.message == *other
    }
}

/// How an open asked for the directory lock (named in [`StoreError::StoreLocked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreLockMode {
    /// `Store::open`: the exclusive lock.
    Mutable,
    /// `Store::open_read_only`: a shared lock.
    ReadOnly,
}

/// Every error the store can produce.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A file-system or OS-level I/O failure (with the path and operation where known).
    Io(std::io::Error),
    /// An I/O failure on a named file.
    IoAt {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// An invalid coordinate.
    Coordinate(CoordinateError),
    /// MessagePack (de)serialisation failed.
    Serialization(Box<dyn std::error::Error + Send + Sync>),
    /// CRC mismatch reading a frame.
    CrcMismatch {
        /// Segment id.
        segment_id: u64,
        /// Byte offset of the frame.
        offset: u64,
    },
    /// Damage that is not a torn tail: `open` refuses the store (INV-CORRUPTION-FAILS-CLOSED).
    ///
    /// Upstream's two fields. `detail` reads as the message (`detail.contains(..)`,
    /// `{detail}`) and, when this store found the damage, also names the damaged file and
    /// byte offset ([`CorruptionDetail::file`], [`CorruptionDetail::offset`]);
    /// `detail: "bad magic".into()` builds one without a place, as upstream's `String` did.
    CorruptSegment {
        /// Segment id (or `u64::MAX` if the damage is outside a segment).
        segment_id: u64,
        /// What is wrong, and where.
        detail: CorruptionDetail,
    },
    /// No visible event has this id.
    NotFound(u128),
    /// CAS failed: the entity's clock (number of written events) is not the expected one.
    SequenceMismatch {
        /// Entity.
        entity: String,
        /// What the caller expected.
        expected: u32,
        /// What the entity has.
        actual: u32,
    },
    /// The writer thread is gone; the outcome of an in-flight write is unknown.
    WriterCrashed,
    /// A `StoreConfig` value is invalid.
    Configuration(String),
    /// A visibility fence is open: unfenced writes and a second fence are refused.
    VisibilityFenceActive,
    /// The fence named is not the open one.
    VisibilityFenceNotActive,
    /// The fence was cancelled; its writes never become visible.
    VisibilityFenceCancelled,
    /// A batch failed at one item.
    BatchFailed {
        /// Index of the failing item (0-based).
        item_index: usize,
        /// Stage.
        stage: BatchStage,
        /// Cause.
        source: Box<StoreError>,
    },
    /// Another handle holds the directory's lock in a conflicting mode (INV-EXCLUSIVE): a
    /// writable open meets any other handle, a read-only open meets a writer.
    StoreLocked {
        /// The data directory.
        path: PathBuf,
        /// The mode this open asked for.
        mode: StoreLockMode,
    },
    /// An idempotency key was reused for a different entity, kind or payload (INV-IDEMPOTENT).
    IdempotencyConflict {
        /// The key.
        key: u128,
        /// The event first written with it.
        original_event_id: u128,
        /// What differs.
        detail: String,
    },
    /// Never returned here; kept so code matching upstream's variant compiles. Upstream
    /// refuses an append without an idempotency key when `group_commit_max_batch` is above 1;
    /// this crate's group commit answers each command exactly and needs no keys.
    IdempotencyRequired,
    /// Never returned here; kept so code matching upstream's variant compiles. Upstream
    /// refuses a batch mixing keyed and unkeyed items with it; this crate checks each keyed
    /// item, and refuses a batch that replays part of an earlier one with
    /// `BatchFailed { .. IdempotencyConflict .. }` naming the item.
    IdempotencyPartialBatch {
        /// What upstream found wrong with the batch's keys.
        reason: String,
    },
    /// A causation id names no earlier event (INV-CAUSAL).
    UnknownCausation {
        /// The causation id.
        causation_id: u128,
    },
    /// A payload, batch or frame exceeds a configured limit.
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Indeterminate outcome: an I/O failure happened while the write was in flight; it may
    /// or may not survive a restart (but never partially). The store refuses writes until
    /// reopened.
    OutcomeUnknown {
        /// What failed.
        detail: String,
    },
    /// An earlier I/O failure latched the writer; reopen the store (definite: nothing written).
    WriterLatched {
        /// The failure that latched it.
        detail: String,
    },
    /// The writer queue is past its threshold: retry later (definite: nothing written).
    Backpressure {
        /// Commands queued.
        queued: usize,
        /// The threshold.
        threshold: usize,
    },
    /// A wait ended before its condition held.
    Timeout {
        /// What was awaited.
        what: String,
    },
    /// Two payload types claim the same event kind.
    DuplicateEventKind {
        /// The kind.
        kind: crate::event::EventKind,
        /// The type registered first.
        first: &'static str,
        /// The type registered second.
        second: &'static str,
    },
    /// The store is closed.
    Closed,
    /// Two linked `#[derive(EventPayload)]` types claim one kind, and the store was opened
    /// with `EventPayloadValidation::FailFast`. The error names both types and their crates.
    EventPayloadRegistry(crate::payload_registry::EventPayloadRegistryError),
    /// A fenced ticket was waited on by the thread holding its still-open fence: it resolves
    /// only when that fence commits or is cancelled, so the wait would never end (INV-NO-HANG).
    /// Commit (or cancel) first, then wait. Not definite: the write is still pending.
    FenceTicketPending {
        /// The fence token.
        fence: u64,
    },
    /// A wait (`wait_for_durable` / `wait_for_visible` / `wait_for_applied`) or an append's
    /// [`DurabilityGate`](crate::append::DurabilityGate) ran out of time before the frontier
    /// reached the target point. From a gate, `committed` holds the receipt: the event **was
    /// written** and reads find it (not definite; wait again to regain the guarantee).
    WaitTimeout {
        /// The frontier waited for.
        watermark: crate::append::WatermarkKind,
        /// The point waited for (its `global_sequence` decides).
        target: crate::append::HlcPoint,
        /// The wait's timeout in milliseconds (how long it waited).
        waited_ms: u64,
        /// The receipt of the committed write, when the wait was an append's gate (of a
        /// batch: its last item's).
        committed: Option<Box<crate::append::AppendReceipt>>,
    },
    /// A checkpoint id that is not 1 to 128 characters of `[A-Za-z0-9._-]`.
    InvalidCheckpointId {
        /// The id as given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A cursor worker's handler panicked and its restart budget is spent.
    ConsumerPanicked {
        /// What happened.
        detail: String,
    },
    /// A consumer with this checkpoint id is already live (one per id).
    ConsumerBusy {
        /// The checkpoint id.
        id: String,
    },
    /// The checkpoint id belongs to a consumer of another region: resuming would start from
    /// an unrelated position.
    CursorCheckpointRegionMismatch {
        /// The checkpoint id.
        id: String,
        /// The region the checkpoint was committed for.
        stored: String,
        /// The region asked for.
        expected: String,
    },
    /// A `ProjectionCache` implementation failed (upstream's
    /// variant, for cache backends to report their own errors). Cache failures never fail a
    /// projection: `project` logs them and replays from the log instead.
    CacheFailed(Box<dyn std::error::Error + Send + Sync>),
    /// An event of the entity did not decode while a projection replayed it
    /// (INV-PROJECTION: never a panic, never a silently skipped event).
    ProjectionDecode {
        /// The entity projected (for a region projection, the event's entity).
        entity: String,
        /// The event whose payload did not decode.
        event_id: u128,
        /// Its kind.
        kind: crate::event::EventKind,
        /// The projection type.
        projection: &'static str,
        /// Why (boxed: it keeps `StoreError` small).
        source: Box<crate::sourcing::TypedDecodeError>,
    },
}

impl StoreError {
    /// Whether the error is definite: nothing was or will ever become visible from the call
    /// (INV-DEFINITE-ERRORS). `false` for [`StoreError::OutcomeUnknown`],
    /// [`StoreError::WriterCrashed`] and a gate's [`StoreError::WaitTimeout`] (whose write
    /// committed).
    pub fn is_definite(&self) -> bool {
        !matches!(
            self,
            Self::OutcomeUnknown { .. } | Self::WriterCrashed | Self::FenceTicketPending { .. }
        ) && !matches!(self, Self::BatchFailed { source, .. } if !source.is_definite())
            && !matches!(
                self,
                Self::WaitTimeout {
                    committed: Some(_),
                    ..
                }
            )
    }

    /// Whether retrying later may succeed (backpressure).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backpressure { .. })
    }

    /// An equal copy for answering the same question twice (a ticket asked again after it
    /// answered). `StoreError` is not `Clone` because of the boxed and I/O sources it carries;
    /// those are copied as their kind and message, everything else field by field.
    pub(crate) fn replay(&self) -> StoreError {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            Self::Io(e) => Self::Io(io(e)),
            Self::IoAt { path, op, source } => Self::IoAt {
                path: path.clone(),
                op,
                source: io(source),
            },
            Self::Coordinate(e) => Self::Coordinate(e.clone()),
            Self::Serialization(e) => Self::Serialization(e.to_string().into()),
            Self::CrcMismatch { segment_id, offset } => Self::CrcMismatch {
                segment_id: *segment_id,
                offset: *offset,
            },
            Self::CorruptSegment { segment_id, detail } => Self::CorruptSegment {
                segment_id: *segment_id,
                detail: detail.clone(),
            },
            Self::NotFound(id) => Self::NotFound(*id),
            Self::SequenceMismatch {
                entity,
                expected,
                actual,
            } => Self::SequenceMismatch {
                entity: entity.clone(),
                expected: *expected,
                actual: *actual,
            },
            Self::WriterCrashed => Self::WriterCrashed,
            Self::Configuration(m) => Self::Configuration(m.clone()),
            Self::VisibilityFenceActive => Self::VisibilityFenceActive,
            Self::VisibilityFenceNotActive => Self::VisibilityFenceNotActive,
            Self::VisibilityFenceCancelled => Self::VisibilityFenceCancelled,
            Self::BatchFailed {
                item_index,
                stage,
                source,
            } => Self::BatchFailed {
                item_index: *item_index,
                stage: *stage,
                source: Box::new(source.replay()),
            },
            Self::StoreLocked { path, mode } => Self::StoreLocked {
                path: path.clone(),
                mode: *mode,
            },
            Self::IdempotencyConflict {
                key,
                original_event_id,
                detail,
            } => Self::IdempotencyConflict {
                key: *key,
                original_event_id: *original_event_id,
                detail: detail.clone(),
            },
            Self::UnknownCausation { causation_id } => Self::UnknownCausation {
                causation_id: *causation_id,
            },
            Self::IdempotencyRequired => Self::IdempotencyRequired,
            Self::IdempotencyPartialBatch { reason } => Self::IdempotencyPartialBatch {
                reason: reason.clone(),
            },
            Self::TooLarge { what, size, max } => Self::TooLarge {
                what,
                size: *size,
                max: *max,
            },
            Self::OutcomeUnknown { detail } => Self::OutcomeUnknown {
                detail: detail.clone(),
            },
            Self::WriterLatched { detail } => Self::WriterLatched {
                detail: detail.clone(),
            },
            Self::Backpressure { queued, threshold } => Self::Backpressure {
                queued: *queued,
                threshold: *threshold,
            },
            Self::Timeout { what } => Self::Timeout { what: what.clone() },
            Self::DuplicateEventKind {
                kind,
                first,
                second,
            } => Self::DuplicateEventKind {
                kind: *kind,
                first,
                second,
            },
            Self::Closed => Self::Closed,
            Self::EventPayloadRegistry(e) => Self::EventPayloadRegistry(e.clone()),
            Self::FenceTicketPending { fence } => Self::FenceTicketPending { fence: *fence },
            Self::WaitTimeout {
                watermark,
                target,
                waited_ms,
                committed,
            } => Self::WaitTimeout {
                watermark: *watermark,
                target: *target,
                waited_ms: *waited_ms,
                committed: committed.clone(),
            },
            Self::InvalidCheckpointId { id, reason } => Self::InvalidCheckpointId {
                id: id.clone(),
                reason,
            },
            Self::ConsumerBusy { id } => Self::ConsumerBusy { id: id.clone() },
            Self::ConsumerPanicked { detail } => Self::ConsumerPanicked {
                detail: detail.clone(),
            },
            Self::CursorCheckpointRegionMismatch {
                id,
                stored,
                expected,
            } => Self::CursorCheckpointRegionMismatch {
                id: id.clone(),
                stored: stored.clone(),
                expected: expected.clone(),
            },
            Self::CacheFailed(e) => Self::CacheFailed(e.to_string().into()),
            Self::ProjectionDecode {
                entity,
                event_id,
                kind,
                projection,
                source,
            } => Self::ProjectionDecode {
                entity: entity.clone(),
                event_id: *event_id,
                kind: *kind,
                projection,
                source: Box::new(source.replay()),
            },
        }
    }

    pub(crate) fn ser(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Serialization(Box::new(e))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::IoAt { path, op, source } => {
                write!(f, "I/O error: {op} {}: {source}", path.display())
            }
            Self::Coordinate(e) => write!(f, "coordinate error: {e}"),
            Self::Serialization(e) => write!(f, "serialization error: {e}"),
            Self::CrcMismatch { segment_id, offset } => {
                write!(f, "CRC mismatch in segment {segment_id} at offset {offset}")
            }
            Self::CorruptSegment { segment_id, detail } => match detail.place.as_ref() {
                Some((file, offset)) => write!(
                    f,
                    "corrupt log: {} at offset {offset}: {detail}",
                    file.display()
                ),
                None => write!(f, "corrupt segment {segment_id}: {detail}"),
            },
            Self::NotFound(id) => write!(f, "event {id:032x} not found"),
            Self::SequenceMismatch {
                entity,
                expected,
                actual,
            } => write!(
                f,
                "CAS failed for entity {entity}: expected clock {expected}, entity is at {actual}"
            ),
            Self::WriterCrashed => write!(f, "writer thread is gone; outcome unknown"),
            Self::Configuration(m) => write!(f, "invalid config: {m}"),
            Self::VisibilityFenceActive => write!(f, "a visibility fence is active"),
            Self::VisibilityFenceNotActive => {
                write!(f, "no matching visibility fence is active")
            }
            Self::VisibilityFenceCancelled => {
                write!(f, "visibility fence was cancelled before publish")
            }
            Self::BatchFailed {
                item_index,
                stage,
                source,
            } => write!(
                f,
                "batch failed at item {item_index} during {stage:?}: {source}"
            ),
            Self::StoreLocked { path, mode } => {
                let (mode, other) = match mode {
                    StoreLockMode::Mutable => ("a writable", "another handle"),
                    StoreLockMode::ReadOnly => ("a read-only", "a writer"),
                };
                write!(
                    f,
                    "store directory {} cannot be opened as {mode} store: {other} holds its lock",
                    path.display()
                )
            }
            Self::IdempotencyConflict {
                key,
                original_event_id,
                detail,
            } => write!(
                f,
                "idempotency key {key:032x} was used by event {original_event_id:032x}: {detail}"
            ),
            Self::UnknownCausation { causation_id } => {
                write!(f, "causation id {causation_id:032x} names no earlier event")
            }
            Self::IdempotencyRequired => {
                write!(f, "an idempotency key is required (upstream's group commit)")
            }
            Self::IdempotencyPartialBatch { reason } => {
                write!(f, "a batch mixes keyed and unkeyed items: {reason}")
            }
            Self::TooLarge { what, size, max } => {
                write!(f, "{what} of {size} bytes exceeds the limit {max}")
            }
            Self::OutcomeUnknown { detail } => {
                write!(f, "write outcome unknown after I/O failure: {detail}")
            }
            Self::WriterLatched { detail } => write!(
                f,
                "writes refused after an earlier I/O failure ({detail}); reopen the store"
            ),
            Self::Backpressure { queued, threshold } => write!(
                f,
                "writer queue has {queued} commands (threshold {threshold}); retry later"
            ),
            Self::Timeout { what } => write!(f, "timed out waiting for {what}"),
            Self::DuplicateEventKind {
                kind,
                first,
                second,
            } => write!(
                f,
                "event kind {kind} is claimed by both {first} and {second}"
            ),
            Self::Closed => write!(f, "the store is closed"),
            Self::EventPayloadRegistry(e) => write!(f, "{e}"),
            Self::FenceTicketPending { fence } => write!(
                f,
                "this ticket resolves when fence {fence} commits or is cancelled; waiting for it on the thread holding the open fence would never end (commit first)"
            ),
            Self::WaitTimeout {
                watermark,
                target,
                waited_ms,
                committed,
            } => {
                write!(
                    f,
                    "sequence {} was not {watermark} after {waited_ms} ms",
                    target.global_sequence
                )?;
                if let Some(r) = committed {
                    write!(
                        f,
                        " (the write committed: event {:032x} at sequence {}; wait again for the guarantee)",
                        r.event_id, r.sequence
                    )?;
                }
                Ok(())
            }
            Self::InvalidCheckpointId { id, reason } => {
                write!(f, "invalid checkpoint id {id:?}: {reason}")
            }
            Self::ConsumerBusy { id } => {
                write!(f, "a consumer with checkpoint id {id:?} is already live")
            }
            Self::ConsumerPanicked { detail } => write!(f, "cursor worker stopped: {detail}"),
            Self::CursorCheckpointRegionMismatch {
                id,
                stored,
                expected,
            } => write!(
                f,
                "checkpoint {id:?} was committed for region {stored}, not {expected}"
            ),
            Self::CacheFailed(e) => write!(f, "cache error: {e}"),
            Self::ProjectionDecode {
                entity,
                event_id,
                kind,
                projection,
                source,
            } => write!(
                f,
                "projection {projection} of entity {entity}: event {event_id:032x} (kind {kind}) does not decode: {source}"
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::IoAt { source, .. } => Some(source),
            Self::Coordinate(e) => Some(e),
            Self::Serialization(e) => Some(e.as_ref()),
            Self::BatchFailed { source, .. } => Some(source.as_ref()),
            Self::EventPayloadRegistry(e) => Some(e),
            Self::ProjectionDecode { source, .. } => Some(source.as_ref()),
            Self::CacheFailed(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<CoordinateError> for StoreError {
    fn from(e: CoordinateError) -> Self {
        Self::Coordinate(e)
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<crate::event::EventKindError> for StoreError {
    fn from(e: crate::event::EventKindError) -> Self {
        Self::Configuration(e.to_string())
    }
}
