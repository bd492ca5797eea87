//! The append-only log: segment files ([`segment`]) and recovery ([`recover`]). The records
//! themselves are the codec's ([`crate::codec::Record`]).
//!
//! The log is a sequence of frames (see [`crate::codec`]) spread over segment files named
//! `NNNNNNNNNNNNNNNNNNNN.seg` (the segment id, 20 decimal digits). Every record stores its
//! global sequence; sequences are dense (each record takes the next one) and never reused.

pub mod active;
pub(crate) mod catalog;
pub mod recover;
pub mod segment;

pub use crate::codec::{EventRecord, Record, RecordBody, Unit};
pub use active::{SegmentOptions, SegmentWriter};
pub(crate) use catalog::Catalog;
pub use recover::{recover, RecoveryError, RecoveryReport, TornTail};
pub use segment::{DiskPos, SEGMENT_HEADER_BYTES};
