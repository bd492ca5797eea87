//! The group's frames: records encoded by the decision step (no I/O), waiting for the thread
//! to place them in the active segment ([`super::place`]) and for their effects on the state
//! to apply once placed ([`super::state::WriterState::apply`]).

use super::state::Effect;
use crate::append::DiskPos;
use crate::codec::{self, Record};
use crate::error::StoreError;

/// A position not known yet: the frame is not placed.
pub(crate) const UNPLACED: DiskPos = DiskPos {
    segment_id: u64::MAX,
    offset: 0,
    length: 0,
};

/// One frame of the current step.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The record's sequence.
    pub seq: u64,
    /// Where its bytes start in the group buffer.
    pub start: usize,
    /// Its length in bytes.
    pub len: usize,
    /// Where it is on disk, once placed.
    pub pos: DiskPos,
    /// What it changes in the writer's state once placed.
    pub effect: Effect,
}

/// The group's bytes not yet written, and the frames of the step being decided.
#[derive(Debug)]
pub(crate) struct Frames {
    /// Encoded frames of the group not yet written to the active segment.
    pub buf: Vec<u8>,
    /// The frames the current step added, in order (cleared once applied).
    pub step: Vec<Frame>,
    /// The salt of the active segment: frames are sealed with it when encoded.
    pub salt: u32,
    /// The writer's largest frame body.
    frame_max: u32,
    /// The sequence the next encoded record must carry.
    next_seq: u64,
}

impl Frames {
    /// No frames; `salt` is the active segment's, `next_seq` the sequence the log continues
    /// at.
    pub fn new(frame_max: u32, salt: u32, next_seq: u64) -> Self {
        Self {
            buf: Vec::with_capacity(64 * 1024),
            step: Vec::new(),
            salt,
            frame_max,
            next_seq,
        }
    }

    /// Encodes `record` at the end of the group (its effect is attached with
    /// [`Frames::attach`]). An encoding error leaves everything as it was.
    pub fn encode(&mut self, record: &Record<'_>) -> Result<(), StoreError> {
        assert_eq!(
            record.seq, self.next_seq,
            "INV-STABLE-SEQ: records are written with consecutive sequences, never reused"
        );
        let start = self.buf.len();
        let len = codec::encode_into(record, self.frame_max, self.salt, &mut self.buf)
            .map_err(|e| StoreError::Serialization(Box::new(e)))?;
        self.next_seq += 1;
        self.step.push(Frame {
            seq: record.seq,
            start,
            len,
            pos: UNPLACED,
            effect: Effect::None,
        });
        Ok(())
    }

    /// Sets the effect of the frame encoded last.
    pub fn attach(&mut self, effect: Effect) {
        if let Some(last) = self.step.last_mut() {
            last.effect = effect;
        }
    }

    /// Where the frame of record `seq` of the current step was placed.
    pub fn position(&self, seq: u64) -> Option<DiskPos> {
        let first = self.step.first()?.seq;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.step.get(i).map(|f| f.pos)
    }

    /// Drops every unwritten frame (after a failed write or roll: the group's earlier frames
    /// are written or their fate is unknown, and they must never be written again).
    pub fn discard(&mut self) {
        self.buf.clear();
        self.step.clear();
    }
}
