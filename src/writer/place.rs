//! Placing a step's frames in the log, and what a failed write, sync or roll means.
//!
//! The decision step only encodes records ([`super::frames`]); the thread then places them:
//! each frame goes after the bytes before it in the active segment, unless it does not fit
//! (it would cross `segment_max_bytes` or the segment's frame limit): then the bytes before it
//! are written, the segment is sealed and the next one created ([`SegmentWriter::roll`]), and
//! the frame (and every later frame of the step) is sealed again with the new segment's salt.
//! That roll is the only I/O of placing; the group's bytes are otherwise written at its end.
//!
//! Every failure latches the writer. It is *definite* (every command of the group gets an
//! error naming the file, the operation and the cause) only when nothing of the group is or
//! will ever be in the log; otherwise its outcome is unknown.

use super::frames::Frames;
use crate::append::DiskPos;
use crate::codec;
use crate::error::StoreError;
use crate::log::active::RollError;
use crate::log::segment::segment_file_name;
use crate::log::SegmentWriter;
use std::path::PathBuf;

/// How a group's I/O failed; the writer latches either way.
#[derive(Debug)]
pub(crate) struct GroupFailure {
    /// What failed (for logs and `WriterLatched`).
    pub detail: String,
    /// `Some` when nothing of the group is or will ever be in the log: every command of the
    /// group gets this definite error naming the file, the operation and the cause.
    definite: Option<Definite>,
    /// Everything written before the group is durable (a cut back synced it).
    pub synced_before: bool,
}

/// A definite failure: the file, the operation that failed, the cause.
#[derive(Debug)]
struct Definite {
    path: PathBuf,
    op: &'static str,
    kind: std::io::ErrorKind,
    message: String,
}

impl GroupFailure {
    /// A failure whose outcome is unknown.
    fn unknown(detail: String) -> Self {
        GroupFailure {
            detail,
            definite: None,
            synced_before: false,
        }
    }

    /// A failure that left nothing of the group in the log.
    fn definite(detail: String, path: PathBuf, op: &'static str, error: &std::io::Error) -> Self {
        GroupFailure {
            detail,
            definite: Some(Definite {
                path,
                op,
                kind: error.kind(),
                message: error.to_string(),
            }),
            synced_before: false,
        }
    }

    /// The error the group's commands get.
    pub fn error(&self) -> StoreError {
        match &self.definite {
            Some(d) => StoreError::IoAt {
                path: d.path.clone(),
                op: d.op,
                source: std::io::Error::new(d.kind, d.message.clone()),
            },
            None => StoreError::OutcomeUnknown {
                detail: self.detail.clone(),
            },
        }
    }
}

/// A failed placement: why, and the sequence of the record that could not be placed.
#[derive(Debug)]
pub(crate) struct PlaceFailure {
    pub failure: GroupFailure,
    pub seq: u64,
}

/// Places the frames of the current step (see the module docs). `group_segment`: the active
/// segment when the group began. On failure every unwritten frame is dropped.
pub(crate) fn place(
    seg: &mut SegmentWriter,
    frames: &mut Frames,
    group_segment: u64,
) -> Result<(), PlaceFailure> {
    let sealed_with = frames.salt;
    for i in 0..frames.step.len() {
        let Some(&super::frames::Frame {
            seq, start, len, ..
        }) = frames.step.get(i)
        else {
            break;
        };
        let mut start = start;
        if !seg.fits(start as u64, len as u64) {
            if let Err(failure) = roll_before(seg, frames, start, seq, group_segment) {
                frames.discard();
                return Err(PlaceFailure { failure, seq });
            }
            start = 0;
        }
        if seg.salt() != sealed_with {
            // The frame moved to a segment with another salt: seal it with that one.
            if let Some(frame) = frames.buf.get_mut(start..start + len) {
                codec::reseal(frame, seg.salt());
            }
        }
        if let Some(f) = frames.step.get_mut(i) {
            f.pos = DiskPos {
                segment_id: seg.segment_id(),
                offset: seg.len() + start as u64,
                length: len as u32,
            };
        }
    }
    frames.salt = seg.salt();
    Ok(())
}

/// The frame at `start` of the buffer (record `seq`) does not fit: writes what precedes it,
/// seals the segment and starts the next one at `seq`, and drops the written bytes from the
/// buffer (the frames after them move to its front).
fn roll_before(
    seg: &mut SegmentWriter,
    frames: &mut Frames,
    start: usize,
    seq: u64,
    group_segment: u64,
) -> Result<(), GroupFailure> {
    let rolled = seg.segment_id() != group_segment;
    // Nothing of the group is written anywhere yet (so a failure of the roll itself leaves
    // nothing of it in the log).
    let wrote_nothing = !rolled && start == 0;
    let next = seg
        .path()
        .with_file_name(segment_file_name(seg.segment_id().saturating_add(1)));
    match seg.write(frames.buf.get(..start).unwrap_or(&[])) {
        Err(e) => return Err(after_write_failure(seg, &e, rolled)),
        Ok(()) => match seg.roll(seq) {
            Ok(()) => {}
            Err(RollError::Seal(e)) => return Err(after_sync_failure(seg, &e, wrote_nothing)),
            // The old segment is sealed (synced): nothing to cut there; the new one was left
            // without a header (recovery removes it).
            Err(RollError::Create(e)) => {
                let detail = format!("creating {} failed: {e}", next.display());
                return Err(if wrote_nothing {
                    GroupFailure::definite(detail, next, "create segment", &e)
                } else {
                    GroupFailure::unknown(detail)
                });
            }
        },
    }
    frames.buf.drain(..start);
    for f in frames.step.iter_mut() {
        f.start = f.start.saturating_sub(start);
    }
    Ok(())
}

/// After a failed write to `seg` (disk full, I/O error, maybe after writing part of it). If
/// the group did not roll (all of it was in this write) and the failed bytes can be cut back
/// off durably, nothing of the group is or will be in the log: a definite failure. Otherwise
/// its outcome is unknown, and what `seg` holds past its last sync is cut off (it may hold
/// part of the group).
pub(crate) fn after_write_failure(
    seg: &mut SegmentWriter,
    error: &std::io::Error,
    rolled: bool,
) -> GroupFailure {
    let path = seg.path();
    let mut detail = format!("write to {} failed: {error}", path.display());
    if !rolled {
        match seg.cut_back() {
            Ok(()) => {
                let mut f = GroupFailure::definite(detail, path, "write segment", error);
                f.synced_before = true;
                return f;
            }
            Err(e) => detail = format!("{detail}; cutting it back failed: {e}"),
        }
    }
    discard_unsynced(seg, &mut detail);
    GroupFailure::unknown(detail)
}

/// After a failed sync of `seg`: the kernel may have dropped its unsynced pages or marked them
/// clean without writing them, so a retry would succeed and prove nothing (Linux). They are
/// cut off, so that no later process finds them in the page cache and takes them for durable.
/// Definite only if the group had written nothing (`wrote_nothing`): whatever of its bytes
/// reached the platter before the error is unknown.
pub(crate) fn after_sync_failure(
    seg: &mut SegmentWriter,
    error: &std::io::Error,
    wrote_nothing: bool,
) -> GroupFailure {
    let path = seg.path();
    let mut detail = format!("sync of {} failed: {error}", path.display());
    discard_unsynced(seg, &mut detail);
    if wrote_nothing {
        GroupFailure::definite(detail, path, "seal segment", error)
    } else {
        GroupFailure::unknown(detail)
    }
}

fn discard_unsynced(seg: &mut SegmentWriter, detail: &mut String) {
    match seg.discard_unsynced() {
        Ok(len) => tracing::warn!(
            file = %seg.path().display(),
            len,
            "cut the segment back to its last synced length"
        ),
        Err(e) => *detail = format!("{detail}; cutting off its unsynced bytes failed: {e}"),
    }
}
