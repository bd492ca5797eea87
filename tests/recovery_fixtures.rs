//! Recovery on damaged real files: torn tails (in the last segment, in an older segment with
//! record-less later segments, a torn segment header), and damage that is not a torn tail,
//! which must fail `open` naming the file and offset (INV-CORRUPTION-FAILS-CLOSED).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::log::segment::{encode_header, segment_file_name, SegmentHeader};
use batpak::prelude::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

fn kind() -> EventKind {
    EventKind::custom(0x1, 1)
}

fn coord() -> Coordinate {
    Coordinate::new("acct:1", "bank").unwrap()
}

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir).with_segment_max_bytes(1024)
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

fn flip(path: &Path, offset: u64) {
    let mut b = fs::read(path).unwrap();
    b[offset as usize] ^= 0x40;
    fs::write(path, b).unwrap();
}

fn corrupt_err(dir: &Path) -> (u64, PathBuf, u64, String) {
    match Store::open(cfg(dir)) {
        Err(StoreError::CorruptSegment {
            segment_id,
            file,
            offset,
            detail,
        }) => (segment_id, file, offset, detail),
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
    let first_seq_of_last = {
        let b = fs::read(&last).unwrap();
        u64::from_le_bytes(b[20..28].try_into().unwrap())
    };
    let last_id: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    // Make the last segment record-less (header only) and tear the one before it.
    fs::write(
        &last,
        encode_header(SegmentHeader {
            segment_id: last_id,
            first_seq: first_seq_of_last,
        }),
    )
    .unwrap();
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
    flip(&victim, 40); // inside the first frame's body
    let (segment_id, file, offset, detail) = corrupt_err(dir.path());
    assert_eq!(file, victim);
    assert_eq!(segment_id, 0);
    assert_eq!(
        offset, 32,
        "the first frame starts after the 32-byte header"
    );
    assert!(
        detail.contains("valid record follows") || detail.contains("valid records follow"),
        "{detail}"
    );
    // Nothing was changed on disk: a second open fails the same way.
    assert_eq!(corrupt_err(dir.path()).2, 32);
}

#[test]
fn a_segment_whose_header_names_another_segment_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 30);
    let second = segs[1].clone();
    let mut b = fs::read(&second).unwrap();
    let first_seq = u64::from_le_bytes(b[20..28].try_into().unwrap());
    b[..32].copy_from_slice(&encode_header(SegmentHeader {
        segment_id: 99,
        first_seq,
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
    // Copy the first frame of segment 0 to the end of the last segment: its CRC is fine but its
    // sequence repeats, which no crash can produce.
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 30);
    let b = fs::read(&segs[0]).unwrap();
    let len = u32::from_le_bytes(b[32..36].try_into().unwrap()) as usize;
    let frame = b[32..32 + 8 + len].to_vec();
    let last = segs.last().unwrap().clone();
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
    flip(&seg, 40);
    match Store::open(config()) {
        Err(StoreError::CorruptSegment { offset, detail, .. }) => {
            assert_eq!(offset, 32);
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
    flip(&segs[0], 40);
    let err = match Store::open(cfg(dir.path())) {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    };
    let text = err.to_string();
    assert!(text.contains(&segs[0].display().to_string()), "{text}");
    assert!(text.contains("offset 32"), "{text}");
    // An I/O error during recovery names the path and the operation.
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, b"x").unwrap();
    let err = Store::open(StoreConfig::new(&not_a_dir)).unwrap_err();
    assert!(
        err.to_string().contains(&not_a_dir.display().to_string()),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}
