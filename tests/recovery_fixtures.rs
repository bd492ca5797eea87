//! Recovery on damaged real files: torn tails (in the last segment, in an older segment with
//! record-less later segments, a torn segment header), and damage that is not a torn tail,
//! which must fail `open` naming the file and offset (INV-CORRUPTION-FAILS-CLOSED).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::codec::{self, FRAME_HEADER_BYTES};
use batpak::__testing::log::segment::{
    decode_header, encode_header, segment_file_name, SegmentHeader, SEGMENT_HEADER_BYTES,
};
#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How a test configures the store's seeded bug: [`real`] for the real store; the mutant
/// witnesses (mutant build only, `--cfg batpak_mutant`) seed one with `with_mutant`.
type Seed = fn(StoreConfig) -> StoreConfig;

/// The real store: no seeded bug.
fn real(c: StoreConfig) -> StoreConfig {
    c
}

fn kind() -> EventKind {
    EventKind::custom(0x1, 1)
}

fn coord() -> Coordinate {
    Coordinate::new("acct:1", "bank").unwrap()
}

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .with_lifecycle_events(false)
        .with_segment_max_bytes(1024)
}

/// Fills a store with `n` events over small segments; returns the segment paths.
fn fill(dir: &Path, n: u32) -> Vec<PathBuf> {
    let store = Store::open(cfg(dir)).unwrap();
    for i in 0..n {
        store
            .append(
                &coord(),
                kind(),
                &format!("event number {i:04} with some padding"),
            )
            .unwrap();
    }
    store.close().unwrap();
    segments(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

/// The decoded header of the segment file at `path`.
fn header(path: &Path) -> SegmentHeader {
    decode_header(&fs::read(path).unwrap()).unwrap()
}

/// Offset of the first frame of a segment, and of a byte inside its body.
const FIRST_FRAME: u64 = SEGMENT_HEADER_BYTES as u64;
const IN_FIRST_BODY: u64 = FIRST_FRAME + FRAME_HEADER_BYTES as u64 + 8;

fn flip(path: &Path, offset: u64) {
    let mut b = fs::read(path).unwrap();
    b[offset as usize] ^= 0x40;
    fs::write(path, b).unwrap();
}

fn corrupt_err(dir: &Path) -> (u64, PathBuf, u64, String) {
    match Store::open(cfg(dir)) {
        Err(StoreError::CorruptSegment { segment_id, detail }) => (
            segment_id,
            detail.file().map(Path::to_path_buf).unwrap_or_default(),
            detail.offset().unwrap_or(u64::MAX),
            detail.message().to_string(),
        ),
        Err(e) => panic!("expected CorruptSegment, got {e}"),
        Ok(_) => panic!("expected CorruptSegment, the store opened"),
    }
}

#[test]
fn a_torn_tail_in_an_older_segment_before_record_less_segments_is_cut() {
    // Upstream made such a store unopenable. Here: damage followed by no valid record anywhere
    // is a torn tail, whichever segment holds it; the record-less later segment goes.
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 30);
    assert!(segs.len() >= 2);
    let last = segs.last().unwrap().clone();
    // Make the last segment record-less (header only) and tear the one before it.
    fs::write(&last, encode_header(header(&last))).unwrap();
    let older = segs[segs.len() - 2].clone();
    append_bytes(&older, &[0xAB; 13]);
    let store = Store::open(cfg(dir.path())).unwrap();
    let report = store.recovery_report().clone();
    let torn = report.torn_tail.expect("a torn tail was cut");
    assert_eq!(torn.file, older);
    assert_eq!(torn.cut_bytes, 13);
    assert_eq!(report.removed_segments, vec![last.clone()]);
    assert!(!last.exists());
    let before = store.stream("acct:1").len();
    store.append(&coord(), kind(), &"after the repair").unwrap();
    store.close().unwrap();
    let store = Store::open(cfg(dir.path())).unwrap();
    assert!(
        store.recovery_report().torn_tail.is_none(),
        "the repair is durable"
    );
    assert_eq!(store.stream("acct:1").len(), before + 1);
}

#[test]
fn damage_in_an_older_segment_followed_by_records_in_a_later_one_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 30);
    let victim = segs[0].clone();
    flip(&victim, IN_FIRST_BODY);
    let (segment_id, file, offset, detail) = corrupt_err(dir.path());
    assert_eq!(file, victim);
    assert_eq!(segment_id, 0);
    assert_eq!(
        offset, FIRST_FRAME,
        "the first frame starts after the 40-byte header"
    );
    assert!(
        detail.contains("valid record follows") || detail.contains("valid records follow"),
        "{detail}"
    );
    // Nothing was changed on disk: a second open fails the same way.
    assert_eq!(corrupt_err(dir.path()).2, FIRST_FRAME);
}

#[test]
fn a_segment_whose_header_names_another_segment_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 30);
    let second = segs[1].clone();
    let mut b = fs::read(&second).unwrap();
    b[..SEGMENT_HEADER_BYTES].copy_from_slice(&encode_header(SegmentHeader {
        segment_id: 99,
        ..header(&second)
    }));
    fs::write(&second, b).unwrap();
    let (_, file, offset, detail) = corrupt_err(dir.path());
    assert_eq!((file, offset), (second, 0));
    assert!(detail.contains("header names segment 99"), "{detail}");
}

#[test]
fn a_missing_middle_segment_fails_closed_with_a_sequence_gap() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 40);
    assert!(segs.len() >= 3);
    fs::remove_file(&segs[1]).unwrap();
    let (_, file, offset, detail) = corrupt_err(dir.path());
    assert_eq!((file, offset), (segs[2].clone(), 0));
    assert!(detail.contains("but the log continues at"), "{detail}");
}

#[test]
fn a_valid_frame_with_the_wrong_sequence_fails_closed() {
    // Copy the first frame of segment 0 to the end of the last segment, sealed with the last
    // segment's salt: its checks are fine but its sequence repeats, which no crash can produce.
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 30);
    let b = fs::read(&segs[0]).unwrap();
    let at0 = FIRST_FRAME as usize;
    let len = u32::from_le_bytes(b[at0..at0 + 4].try_into().unwrap()) as usize;
    let mut frame = b[at0..at0 + FRAME_HEADER_BYTES + len].to_vec();
    let last = segs.last().unwrap().clone();
    codec::reseal(&mut frame, header(&last).salt);
    let at = fs::metadata(&last).unwrap().len();
    append_bytes(&last, &frame);
    let (_, file, offset, detail) = corrupt_err(dir.path());
    assert_eq!((file, offset), (last, at));
    assert!(
        detail.contains("where") && detail.contains("was expected"),
        "{detail}"
    );
}

#[test]
fn a_torn_header_of_the_last_segment_removes_it_and_the_store_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 30);
    let n = segs.len();
    let last_id: u64 = segs[n - 1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // A roll interrupted after creating the next file: half a header.
    let next = dir.path().join(segment_file_name(last_id + 1));
    fs::write(
        &next,
        &encode_header(SegmentHeader {
            segment_id: last_id + 1,
            first_seq: 1_000,
            ..header(&segs[n - 1])
        })[..10],
    )
    .unwrap();
    let store = Store::open(cfg(dir.path())).unwrap();
    assert_eq!(store.recovery_report().removed_segments, vec![next.clone()]);
    assert_eq!(store.stream("acct:1").len(), 30);
    store.append(&coord(), kind(), &"goes on").unwrap();
    store.close().unwrap();
    let store = Store::open(cfg(dir.path())).unwrap();
    assert_eq!(store.stream("acct:1").len(), 31);
}

#[test]
fn frames_larger_than_the_read_window_recover_and_damage_after_them_is_judged() {
    // Recovery reads through a 1 MiB window; a 1.5 MiB event crosses it.
    let dir = tempfile::tempdir().unwrap();
    let big = vec![7u8; 1_500_000];
    let config = || {
        StoreConfig::new(dir.path())
            .with_lifecycle_events(false)
            .with_single_append_max_bytes(2_000_000)
            .with_frame_max_bytes(4_000_000)
    };
    {
        let store = Store::open(config()).unwrap();
        store.append(&coord(), kind(), &"small").unwrap();
        store
            .append(&coord(), kind(), &serde_bytes_like(&big))
            .unwrap();
        store.append(&coord(), kind(), &"after").unwrap();
        store.close().unwrap();
    }
    let store = Store::open(config()).unwrap();
    assert_eq!(store.stream("acct:1").len(), 3);
    store.close().unwrap();
    // Tear the small frame after the big one: a torn tail, cut.
    let seg = segments(dir.path())[0].clone();
    let len = fs::metadata(&seg).unwrap().len();
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let store = Store::open(config()).unwrap();
    assert!(store.recovery_report().torn_tail.is_some());
    assert_eq!(store.stream("acct:1").len(), 2);
    store.close().unwrap();
    // Damage the small first frame: the big valid frame after it makes this corruption.
    flip(&seg, IN_FIRST_BODY);
    match Store::open(config()) {
        Err(StoreError::CorruptSegment { detail, .. }) => {
            assert_eq!(detail.offset(), Some(FIRST_FRAME));
            assert!(detail.contains("follows"), "{detail}");
        }
        other => panic!("expected CorruptSegment, got {other:?}"),
    }
}

/// A payload that MessagePack stores as one binary string.
fn serde_bytes_like(b: &[u8]) -> serde_json::Value {
    serde_json::Value::String(String::from_utf8_lossy(b).into_owned())
}

#[test]
fn corruption_errors_say_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 30);
    flip(&segs[0], IN_FIRST_BODY);
    let err = match Store::open(cfg(dir.path())) {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    };
    let text = err.to_string();
    assert!(text.contains(&segs[0].display().to_string()), "{text}");
    assert!(text.contains("offset 40"), "{text}");
    // An I/O error during recovery names the path and the operation.
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, b"x").unwrap();
    let err = Store::open(StoreConfig::new(&not_a_dir).with_lifecycle_events(false)).unwrap_err();
    assert!(
        err.to_string().contains(&not_a_dir.display().to_string()),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

// ------------------------------------------------------------------ user data shaped like frames

/// A payload that MessagePack stores as one byte string, bytes as they are.
struct RawBytes(Vec<u8>);

impl serde::Serialize for RawBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// `FenceBegin { fence: seq }` at sequence `seq` in the old (version 1) frame format: length,
/// CRC32 of length and body, body (11 bytes).
fn v1_fence_begin_frame(seq: u8) -> Vec<u8> {
    let body = [seq, 2, seq];
    let len = (body.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(&body);
    [&len[..], &h.finalize().to_le_bytes(), &body].concat()
}

/// The same record as a valid frame of this format, sealed with `salt`.
fn fence_begin_frame(seq: u64, salt: u32) -> Vec<u8> {
    let r = batpak::__testing::log::Record {
        seq,
        body: batpak::__testing::log::RecordBody::FenceBegin { fence: seq },
    };
    codec::encode(&r, 1 << 20, salt).unwrap()
}

/// Writes "before", then an event whose payload holds frames (`frames`, given the segment's
/// salt), and tears that event's frame the way a crash inside its write does (its last
/// `torn` bytes never reached the disk). Returns the store directory and the torn frame's
/// offset.
fn torn_record_holding_frames(
    frames: impl Fn(u32) -> Vec<u8>,
    torn: u64,
) -> (tempfile::TempDir, PathBuf, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path()).with_lifecycle_events(false)).unwrap();
    store.append(&coord(), kind(), &"before").unwrap();
    let seg = segments(dir.path())[0].clone();
    let mut payload = frames(header(&seg).salt);
    payload.extend_from_slice(&[b'.'; 64]);
    let r = store.append(&coord(), kind(), &RawBytes(payload)).unwrap();
    store.close().unwrap();
    let end = r.disk_pos.offset + u64::from(r.disk_pos.length);
    assert_eq!(fs::metadata(&seg).unwrap().len(), end);
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(end - torn).unwrap();
    f.sync_all().unwrap();
    (dir, seg, r.disk_pos.offset)
}

/// A torn record whose payload holds frame-shaped bytes must recover as a torn tail: the
/// store opens, keeps the record before it, and the repair is durable. `frames` builds the
/// frame-shaped bytes from the segment's salt; `mutant` seeds a bug in the recovering store.
fn torn_frame_with_frames_inside_recovers(
    frames: impl Fn(u32) -> Vec<u8>,
    seed: Seed,
) -> Result<(), String> {
    let (dir, seg, at) = torn_record_holding_frames(frames, 20);
    let store = Store::open(seed(
        StoreConfig::new(dir.path()).with_lifecycle_events(false),
    ))
    .map_err(|e| {
        format!("INV-RECOVERY-IDEMPOTENT: a torn last record was taken for corruption: {e}")
    })?;
    let torn = store
        .recovery_report()
        .torn_tail
        .clone()
        .ok_or("the torn record was not reported")?;
    assert_eq!((torn.file, torn.offset), (seg.clone(), at));
    assert_eq!(store.stream("acct:1").len(), 1);
    store.close().unwrap();
    assert_eq!(fs::metadata(&seg).unwrap().len(), at, "the cut is on disk");
    let store = Store::open(StoreConfig::new(dir.path()).with_lifecycle_events(false)).unwrap();
    assert!(store.recovery_report().torn_tail.is_none());
    assert_eq!(store.stream("acct:1").len(), 1);
    Ok(())
}

#[test]
fn a_torn_record_whose_payload_holds_an_old_format_frame_is_a_torn_tail() {
    // A payload holding an 11-byte FenceBegin frame of the old format.
    torn_frame_with_frames_inside_recovers(|_| v1_fence_begin_frame(9), real).unwrap();
}

#[test]
fn a_torn_record_whose_payload_holds_a_frame_sealed_for_its_own_segment_is_a_torn_tail() {
    // Worst case: the payload holds valid frames of this very segment (someone who knows the
    // salt). Recovery trusts the torn frame's length (its head check holds) and never looks
    // inside it.
    let frames = |salt| [fence_begin_frame(2, salt), fence_begin_frame(1 << 40, salt)].concat();
    torn_frame_with_frames_inside_recovers(frames, real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_recovery_looks_inside_torn_frame_is_caught() {
    let frames = |salt| fence_begin_frame(2, salt);
    let err = torn_frame_with_frames_inside_recovers(frames, |c| {
        c.with_mutant(Mutant::RecoveryLooksInsideTornFrame)
    })
    .unwrap_err();
    assert!(err.starts_with("INV-RECOVERY-IDEMPOTENT"), "{err}");
}

#[test]
fn with_a_damaged_frame_header_only_frames_of_the_segments_salt_count_as_records() {
    // Damage the torn frame's length field too: recovery then searches byte by byte. Frames
    // sealed with another salt (or the old format) never check out: still a torn tail.
    let other = |salt: u32| [fence_begin_frame(2, salt ^ 1), v1_fence_begin_frame(9)].concat();
    let (dir, seg, at) = torn_record_holding_frames(other, 20);
    flip(&seg, at + 1);
    let store = Store::open(cfg(dir.path())).unwrap();
    assert_eq!(
        store.recovery_report().torn_tail.as_ref().unwrap().offset,
        at
    );
    assert_eq!(store.stream("acct:1").len(), 1);
    drop(store);
    // A frame of this segment's salt after damage that leaves no trusted length is what
    // media damage in front of real records looks like: open fails closed and cuts nothing.
    let mine = |salt| fence_begin_frame(2, salt);
    let (dir, seg, at) = torn_record_holding_frames(mine, 20);
    flip(&seg, at + 1);
    let len = fs::metadata(&seg).unwrap().len();
    let (_, file, offset, detail) = corrupt_err(dir.path());
    assert_eq!((file, offset), (seg.clone(), at));
    assert!(detail.contains("frame head check mismatch"), "{detail}");
    assert_eq!(fs::metadata(&seg).unwrap().len(), len, "nothing was cut");
}

// ------------------------------------------------------------------ frame limits on disk

/// Payload limit 24 MiB, frame limit 64 MiB: a writer with limits above the defaults.
fn big_limits(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .with_lifecycle_events(false)
        .with_single_append_max_bytes(24 << 20)
        .with_frame_max_bytes(64 << 20)
}

fn sizes(dir: &Path) -> Vec<(PathBuf, u64)> {
    segments(dir)
        .into_iter()
        .map(|p| {
            let n = fs::metadata(&p).unwrap().len();
            (p, n)
        })
        .collect()
}

#[test]
fn a_record_above_the_openers_frame_limit_is_read_with_the_limit_it_was_written_with() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![0x5Au8; 20 << 20];
    let id = {
        let store = Store::open(big_limits(dir.path())).unwrap();
        store.append(&coord(), kind(), &"small").unwrap();
        let r = store
            .append(&coord(), kind(), &RawBytes(big.clone()))
            .unwrap();
        store.close().unwrap();
        r.event_id
    };
    let before = sizes(dir.path());
    // The default configuration (16 MiB payloads) opens it: nothing cut, both events there.
    {
        let store = Store::open(StoreConfig::new(dir.path()).with_lifecycle_events(false)).unwrap();
        assert!(store.recovery_report().torn_tail.is_none());
        assert_eq!(store.stream("acct:1").len(), 2);
        assert_eq!(
            store.get_raw(id).unwrap().event.payload.len(),
            big.len() + 5
        );
        store.append(&coord(), kind(), &"after").unwrap();
        store.close().unwrap();
    }
    assert_eq!(sizes(dir.path())[0].0, before[0].0);
    assert!(sizes(dir.path())[0].1 >= before[0].1, "nothing was cut");
    let store = Store::open(big_limits(dir.path())).unwrap();
    assert_eq!(store.stream("acct:1").len(), 3);
    let back = store.get_raw(id).unwrap().event.payload;
    assert_eq!(&back[5..], &big[..], "the big payload reads back whole");
}

#[test]
fn a_frame_above_the_active_segments_limit_starts_a_new_segment() {
    // The active segment was made under the default limit; a later session with a larger one
    // must not put a bigger frame into it (its header would understate its frames).
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(StoreConfig::new(dir.path()).with_lifecycle_events(false)).unwrap();
        store.append(&coord(), kind(), &"small").unwrap();
        store.close().unwrap();
    }
    let limit_before = header(&segments(dir.path())[0]).frame_max;
    let id = {
        let store = Store::open(big_limits(dir.path())).unwrap();
        let r = store
            .append(&coord(), kind(), &RawBytes(vec![1u8; 20 << 20]))
            .unwrap();
        store.close().unwrap();
        r.event_id
    };
    let segs = segments(dir.path());
    assert_eq!(
        segs.len(),
        2,
        "the big frame went to a segment of its own limit"
    );
    assert_eq!(header(&segs[0]).frame_max, limit_before);
    assert!(header(&segs[1]).frame_max >= 20 << 20);
    let store = Store::open(StoreConfig::new(dir.path()).with_lifecycle_events(false)).unwrap();
    assert_eq!(store.stream("acct:1").len(), 2);
    assert_eq!(
        store.get_raw(id).unwrap().event.payload.len(),
        (20 << 20) + 5
    );
}

#[test]
fn a_segment_of_format_version_1_is_refused_by_name_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut v1 = Vec::new();
    v1.extend_from_slice(b"BATPAKSG");
    v1.extend_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&0u64.to_le_bytes());
    v1.extend_from_slice(&0u64.to_le_bytes());
    let crc = crc32fast::hash(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    v1.extend_from_slice(&v1_fence_begin_frame(0));
    let seg = dir.path().join(segment_file_name(0));
    fs::write(&seg, &v1).unwrap();
    let (_, file, offset, detail) = corrupt_err(dir.path());
    assert_eq!((file, offset), (seg.clone(), 0));
    assert!(detail.contains("format version 1"), "{detail}");
    assert_eq!(
        fs::read(&seg).unwrap(),
        v1,
        "a version-1 segment is never cut or removed"
    );
}
