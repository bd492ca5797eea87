//! The append-only log: segment files ([`segment`]), the writer's active segment ([`active`]),
//! reading records back at open ([`scan`], which judges damage with [`damage`]) and while the
//! store runs ([`catalog`]). The records themselves are the codec's ([`crate::codec::Record`]).
//!
//! The log is a sequence of frames (see [`crate::codec`]) spread over segment files named
//! `NNNNNNNNNNNNNNNNNNNN.seg` (the segment id, 20 decimal digits). Every record stores its
//! global sequence; sequences are dense (each record takes the next one) and never reused.

pub mod active;
pub(crate) mod catalog;
mod damage;
mod report;
pub mod scan;
pub mod segment;

pub use crate::codec::{
    CheckpointPosition, CheckpointRecord, EventRecord, FactRecord, Record, RecordBody,
    RegionRecord, Unit,
};
pub(crate) use active::{leave_clean_mark, take_clean_mark};
pub use active::{SegmentOptions, SegmentWriter, CLEAN_FILE_NAME};
pub(crate) use catalog::Catalog;
pub use report::{RecoveryError, RecoveryReport, TornTail};
pub use scan::{scan, CutPolicy, Visit};
pub use segment::{DiskPos, SEGMENT_HEADER_BYTES};
