//! The recovery checkpoint under the fuzzer: the last crash image opened with a fuzz-chosen
//! `recovery.ckpt` must give exactly what it gives opened without one
//! (INV-CORRUPTION-FAILS-CLOSED, INV-STABLE-SEQ: the checkpoint is a cache, never a source of
//! truth).
//!
//! The file is raw fuzzed bytes, fuzzed bytes framed as a checkpoint of this format (a
//! recomputed checksum, so the decoder's field checks are reached), the image's real checkpoint
//! (saved by a clean close of a copy) with bytes flipped or cut off (torn or damaged), a
//! checkpoint of an earlier prefix of the log (a stale one, which may have gone on to events a
//! crash or a rewrite has since replaced), or one of another store. Two copies of the image,
//! damaged as the harness damages it, are opened with the same configuration, one with the
//! checkpoint switched off: both fail with the same error, or both show the same events with
//! the same ids, sequences, positions and chain hashes, the same recovery report and frontier.
//! A checkpoint whose checksum the harness forged is not a fault the disk model makes (a saved
//! hash is trusted once the fingerprints and the id check hold): for it only the hashes may
//! differ.

use crate::check::visible;
use crate::record::scan_log;
use crate::workload::{config, coord, Mode, DIR};
use arbitrary::Arbitrary;
use batpak::__testing::env::{CrashImage, Disk, SimDisk};
use batpak::event::EventKind;
use batpak::prelude::HashChain;
use batpak::store::{IndexEntry, Store, StoreConfig};
use std::path::{Path, PathBuf};

/// The checkpoint's file name (`batpak`'s `checkpoint::FILE_NAME`).
pub const CHECKPOINT_FILE: &str = "recovery.ckpt";
/// The checkpoint format's magic and version (`src/checkpoint.rs`).
const MAGIC: &[u8; 8] = b"BPKRCKP1";
const VERSION: u32 = 2;
/// Most byte flips of a damaged checkpoint.
const FLIPS_MAX: usize = 4;
/// Sessions of the copies' opens (ids, clocks and salts of their own).
const SESSION_PREFIX: u64 = 90;
const SESSION_FOREIGN: u64 = 91;
const SESSION_COMPARE: u64 = 92;

/// The `recovery.ckpt` the last crash image is opened with, next to the open without one.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum CheckpointInput {
    /// These bytes as they are (no checkpoint's checksum holds for them).
    Raw(Vec<u8>),
    /// These bytes after the format's magic and version, with a valid checksum after them: the
    /// decoder's field checks see arbitrary fields.
    Forged(Vec<u8>),
    /// The image's own checkpoint (a clean close of a copy saves it), then `flips` (offset
    /// modulo the length, xor mask, 0 taken as 1; at most 4) and a cut to `truncate` bytes
    /// (modulo the length). No flip and no cut: the real checkpoint, which must be used.
    Damaged {
        /// (offset, xor mask).
        flips: Vec<(u16, u8)>,
        /// Keep only the first `n % len` bytes.
        truncate: Option<u16>,
    },
    /// The checkpoint of an earlier prefix of the log (the first `keep % (records + 1)` records
    /// of the image), saved after `diverge % 8` more events written on that prefix (a history
    /// the image has since replaced: the checkpoint covers events the image does not have).
    Stale {
        /// Records kept.
        keep: u16,
        /// Events written on the prefix before the checkpoint is saved.
        diverge: u8,
    },
    /// The checkpoint of another store (the same layout, other salts and ids) after
    /// `1 + events % 16` appends.
    Foreign {
        /// Appends.
        events: u8,
    },
}

impl CheckpointInput {
    /// A short name of the variant (for corpus statistics).
    pub fn kind(&self) -> &'static str {
        match self {
            CheckpointInput::Raw(_) => "raw",
            CheckpointInput::Forged(_) => "forged",
            CheckpointInput::Damaged { flips, truncate }
                if flips.is_empty() && truncate.is_none() =>
            {
                "real"
            }
            CheckpointInput::Damaged { .. } => "damaged",
            CheckpointInput::Stale { diverge, .. } if diverge % 8 == 0 => "stale",
            CheckpointInput::Stale { .. } => "stale-diverged",
            CheckpointInput::Foreign { .. } => "foreign",
        }
    }
}

/// What an open gave, for the comparison.
#[derive(Debug, PartialEq, Eq)]
enum Opened {
    /// The error's text.
    Failed(String),
    /// Visible events, the recovery report, the frontier.
    Store {
        visible: Vec<IndexEntry>,
        report: String,
        frontier: String,
    },
}

fn open(cfg: StoreConfig) -> Opened {
    match Store::open(cfg) {
        Err(e) => Opened::Failed(e.to_string()),
        Ok(store) => Opened::Store {
            visible: visible(&store),
            report: format!("{:?}", store.recovery_report()),
            frontier: format!("{:?}", store.frontier()),
        },
    }
}

/// The first difference between the open without the checkpoint and the open with it.
fn difference(without: &Opened, with: &Opened) -> String {
    match (without, with) {
        (
            Opened::Store {
                visible: a,
                report: ra,
                frontier: fa,
            },
            Opened::Store {
                visible: b,
                report: rb,
                frontier: fb,
            },
        ) => match a.iter().zip(b).position(|(x, y)| x != y) {
            Some(i) => format!("visible event {i}: without {:?}, with {:?}", a[i], b[i]),
            None if a.len() != b.len() => {
                format!("{} visible events without, {} with", a.len(), b.len())
            }
            None => format!("without: {ra}, {fa}; with: {rb}, {fb}"),
        },
        (a, b) => format!("without: {a:?}\nwith: {b:?}"),
    }
}

/// `o` without the events' chain hashes.
fn without_hashes(o: Opened) -> Opened {
    match o {
        Opened::Store {
            mut visible,
            report,
            frontier,
        } => {
            for e in &mut visible {
                e.hash_chain = HashChain::default();
            }
            Opened::Store {
                visible,
                report,
                frontier,
            }
        }
        failed => failed,
    }
}

/// The checkpoint file a clean close of `disk` leaves (opened with `mode` and lifecycle events
/// off, after `extra` appends), if the open succeeds and there is one.
fn saved_checkpoint(disk: &SimDisk, mode: Mode, session: u64, extra: usize) -> Option<Vec<u8>> {
    let store = Store::open(config(disk, mode, session)).ok()?;
    for i in 0..extra {
        let c = coord(&format!("ckpt:{}", i % 3));
        store
            .append(&c, EventKind::custom(1, 7), &format!("s{session}-{i}"))
            .ok()?;
    }
    store.close().ok()?;
    disk.read_file(&Path::new(DIR).join(CHECKPOINT_FILE))
}

/// `disk` cut to its log's first `keep` records (a copy the caller owns).
fn cut_to_prefix(disk: &SimDisk, keep: usize) {
    let dir = Path::new(DIR);
    let scanned = scan_log(disk, dir);
    let Some(at) = scanned.positions.get(keep) else {
        return;
    };
    let name = |id| dir.join(batpak::__testing::log::segment::segment_file_name(id));
    let path = name(at.segment_id);
    let bytes = disk.read_file(&path).unwrap_or_default();
    let cut = bytes.get(..at.offset as usize).unwrap_or(&bytes);
    if disk.write_file_durably(&path, cut).is_err() {
        return;
    }
    for p in disk.files() {
        let later = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(batpak::__testing::log::segment::parse_segment_file_name)
            .is_some_and(|id| id > at.segment_id);
        if later && p.parent() == Some(dir) {
            let _ = disk.remove(&p);
        }
    }
}

/// The checkpoint's bytes the input asks for, built from copies of `image` (the undamaged
/// crash image); `None` when there is none to put there (a copy that does not open, a log
/// with nothing to save).
fn checkpoint_bytes(input: &CheckpointInput, image: &CrashImage, mode: Mode) -> Option<Vec<u8>> {
    let dir = Path::new(DIR);
    Some(match input {
        CheckpointInput::Raw(b) => b.clone(),
        CheckpointInput::Forged(body) => {
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&VERSION.to_le_bytes());
            out.extend_from_slice(body);
            let sum = blake3::hash(&out);
            out.extend_from_slice(sum.as_bytes());
            out
        }
        CheckpointInput::Damaged { flips, truncate } => {
            let mut b = saved_checkpoint(&image.disk(), mode, SESSION_PREFIX, 0)?;
            for &(at, xor) in flips.iter().take(FLIPS_MAX) {
                let len = b.len().max(1);
                if let Some(x) = b.get_mut(usize::from(at) % len) {
                    *x ^= xor.max(1);
                }
            }
            if let Some(n) = truncate {
                let len = b.len().max(1);
                b.truncate(usize::from(*n) % len);
            }
            b
        }
        CheckpointInput::Stale { keep, diverge } => {
            let copy = image.disk();
            let records = scan_log(&copy, dir).records.len();
            cut_to_prefix(&copy, usize::from(*keep) % (records + 1));
            saved_checkpoint(&copy, mode, SESSION_PREFIX, usize::from(diverge % 8))?
        }
        CheckpointInput::Foreign { events } => {
            let other = SimDisk::new();
            saved_checkpoint(&other, mode, SESSION_FOREIGN, 1 + usize::from(events % 16))?
        }
    })
}

/// Checks the input's checkpoint against the open without one (see the module docs). `image`
/// is the last crash image, `damage` puts the harness's damage on a copy of it, `lifecycle`
/// as the harness opens it. Panics, naming the invariant, on a difference. Returns the
/// variant checked (`None`: no checkpoint to put there).
pub fn check(
    input: &CheckpointInput,
    image: &CrashImage,
    mode: Mode,
    lifecycle: bool,
    damage: impl Fn(&SimDisk),
) -> Option<&'static str> {
    let bytes = checkpoint_bytes(input, image, mode)?;
    let copy = || {
        let d = image.disk();
        damage(&d);
        d
    };
    let cfg = |disk: &SimDisk| config(disk, mode, SESSION_COMPARE).with_lifecycle_events(lifecycle);
    let without = copy();
    let path: PathBuf = Path::new(DIR).join(CHECKPOINT_FILE);
    let _ = without.remove(&path);
    let with = copy();
    if with.write_file_durably(&path, &bytes).is_err() {
        return None;
    }
    let full = open(cfg(&without).with_enable_checkpoint(false));
    let cached = open(cfg(&with));
    let forged = matches!(input, CheckpointInput::Forged(_));
    let (full, cached) = if forged {
        (without_hashes(full), without_hashes(cached))
    } else {
        (full, cached)
    };
    if full != cached {
        panic!(
            "INV-STABLE-SEQ: the open with a {} recovery checkpoint ({} bytes) differs from the \
             open without one (image: {}): {}",
            input.kind(),
            bytes.len(),
            image.describe(),
            difference(&full, &cached)
        );
    }
    Some(input.kind())
}
