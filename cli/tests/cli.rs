//! The `batpak` binary against good, torn and damaged stores on real files: exit status,
//! reports naming file and offset, JSON lines, DOT, and that nothing in the directory changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn batpak(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_batpak"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = tree(dir)
        .into_keys()
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// A closed store: orders with causes, 30 events over small segments.
fn store(dir: &Path) -> Vec<AppendReceipt> {
    let s = Store::open(
        StoreConfig::new(dir)
            .with_lifecycle_events(false)
            .with_segment_max_bytes(1024),
    )
    .unwrap();
    let mut receipts = Vec::new();
    for i in 0..10u32 {
        let c = Coordinate::new(format!("order:{}", i % 2), "shop").unwrap();
        let placed = s
            .append(&c, EventKind::custom(1, 1), &format!("placed {i}"))
            .unwrap();
        let paid = s
            .append_reaction(
                &Coordinate::new("billing", "shop").unwrap(),
                EventKind::custom(1, 2),
                &serde_json::json!({ "order": i, "cents": 100 * i }),
                placed.event_id,
                placed.event_id,
            )
            .unwrap();
        let _ = paid;
        receipts.push(placed);
        receipts.push(s.append(&c, EventKind::custom(1, 3), &i).unwrap());
    }
    s.close().unwrap();
    receipts
}

#[test]
fn verify_a_good_store_exits_zero_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let before = tree(dir.path());
    let (code, out, err) = batpak(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("30 event(s) checked"), "{out}");
    assert!(out.contains("events/s"), "{out}");
    assert!(out.contains("result: ok"), "{out}");
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn verify_reports_corruption_with_file_and_offset_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let first = segments(dir.path())[0].clone();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[70] ^= 0x55;
    std::fs::write(&first, &bytes).unwrap();
    let before = tree(dir.path());
    let (code, out, _) = batpak(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let line = out.lines().find(|l| l.contains("problem:")).unwrap();
    assert!(line.contains(&first.display().to_string()), "{line}");
    assert!(line.contains("offset 40"), "{line}");
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn verify_notes_a_torn_tail_and_strict_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let last = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 4)
        .unwrap();
    let before = tree(dir.path());
    let (code, out, _) = batpak(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning:") && out.contains("torn tail"),
        "{out}"
    );
    assert!(out.contains(&last.display().to_string()), "{out}");
    let (code, out, _) = batpak(&["verify", "--strict", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(tree(dir.path()), before, "verify cut nothing");
}

#[test]
fn a_wrong_path_or_a_held_store_is_a_clear_error_with_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    for cmd in ["verify", "stats", "dump", "graph"] {
        let (code, _, err) = batpak(&[cmd, missing.to_str().unwrap()]);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(err.contains("no such directory"), "{cmd}: {err}");
    }
    assert!(!missing.exists());
    let live = Store::open(StoreConfig::new(dir.path().join("live")).with_lifecycle_events(false))
        .unwrap();
    let (code, _, err) = batpak(&["stats", dir.path().join("live").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("a writer has the store open"), "{err}");
    drop(live);
    let (code, _, err) = batpak(&["frobnicate"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn dump_prints_json_lines_filtered_by_entity_kind_and_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let receipts = store(dir.path());
    let d = dir.path().to_str().unwrap();
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let (code, out, err) = batpak(args);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = lines(&["dump", d]);
    assert_eq!(all.len(), 30);
    let seqs: Vec<u64> = all.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all[0]["payload"], "placed 0");
    assert_eq!(all[1]["payload"]["cents"], 0);
    assert_eq!(
        all[1]["causation_id"],
        format!("{:032x}", receipts[0].event_id)
    );
    assert_eq!(lines(&["dump", d, "--entity", "order:1"]).len(), 10);
    assert_eq!(
        lines(&["dump", d, "--scope", "shop", "--kind", "0x1002"]).len(),
        10
    );
    let kind = EventKind::custom(1, 3).as_raw().to_string();
    assert_eq!(lines(&["dump", d, "--kind", &kind]).len(), 10);
    let range = lines(&["dump", d, "--from-seq", "5", "--to-seq", "9"]);
    assert_eq!(
        range
            .iter()
            .map(|v| v["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![5, 6, 7, 8, 9]
    );
    let (code, _, err) = batpak(&["dump", d, "--kind", "banana"]);
    assert_eq!(code, 2);
    assert!(err.contains("banana"), "{err}");
}

#[test]
fn stats_and_graph_describe_the_store() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let d = dir.path().to_str().unwrap();
    let (code, out, _) = batpak(&["stats", d, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["events"], 30);
    assert_eq!(v["entities"], 3);
    assert_eq!(v["kinds"]["0x1002"], 10);
    assert!(v["segments"].as_u64().unwrap() > 1);
    let (code, text, _) = batpak(&["stats", d]);
    assert_eq!(code, 0);
    assert!(text.contains("events:    30"), "{text}");

    let dot_path = dir
        .path()
        .join("..")
        .join(format!("g-{}.dot", std::process::id()));
    let (code, _, err) = batpak(&["graph", d, "--out", dot_path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let dot = std::fs::read_to_string(&dot_path).unwrap();
    std::fs::remove_file(&dot_path).unwrap();
    assert!(dot.starts_with("digraph batpak {") && dot.trim_end().ends_with('}'));
    assert_eq!(dot.matches("color=firebrick").count(), 10, "{dot}");
    assert_eq!(dot.matches("[label=").count(), 30);
    let (code, chain, _) = batpak(&["graph", d, "--entity", "order:0"]);
    assert_eq!(code, 0);
    assert_eq!(chain.matches("label=\"chain\"").count(), 9, "{chain}");
}

/// Damage anywhere (a flipped byte, a cut, garbage appended, a segment removed): verify never
/// crashes, answers 0 (clean or only a torn tail) or 1 (a problem, named with a file), and
/// changes no byte.
#[test]
fn verify_on_many_damaged_images_answers_and_changes_nothing() {
    let base = tempfile::tempdir().unwrap();
    store(base.path());
    let segs = segments(base.path());
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n.max(1)
    };
    let mut codes = [0usize; 3];
    for case in 0..24 {
        let dir = tempfile::tempdir().unwrap();
        for (p, b) in tree(base.path()) {
            std::fs::write(dir.path().join(p.file_name().unwrap()), b).unwrap();
        }
        let victim = dir
            .path()
            .join(segs[next(segs.len() as u64) as usize].file_name().unwrap());
        let mut bytes = std::fs::read(&victim).unwrap();
        match case % 4 {
            0 => {
                let at = next(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << next(8);
            }
            1 => bytes.truncate(next(bytes.len() as u64) as usize),
            2 => bytes.extend((0..next(64) + 1).map(|_| next(256) as u8)),
            _ => {
                std::fs::remove_file(&victim).unwrap();
            }
        }
        if case % 4 != 3 {
            std::fs::write(&victim, &bytes).unwrap();
        }
        let before = tree(dir.path());
        let (code, out, err) = batpak(&["verify", dir.path().to_str().unwrap()]);
        assert!(
            code == 0 || code == 1,
            "case {case}: exit {code}: {out}{err}"
        );
        if code == 1 {
            let line = out.lines().find(|l| l.contains("problem:")).unwrap();
            assert!(line.contains(".seg offset "), "case {case}: {line}");
        }
        codes[code as usize] += 1;
        assert_eq!(
            tree(dir.path()),
            before,
            "case {case}: verify changed the directory"
        );
    }
    assert!(codes[1] > 0, "some damage is found: {codes:?}");
}

/// Recovery stops at the first corruption; verify still names every damaged place, in every
/// file, each with its offset.
#[test]
fn verify_names_every_damaged_place_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    for (seg, at) in [(&segs[0], 60usize), (&segs[1], 90usize)] {
        let mut bytes = std::fs::read(seg).unwrap();
        bytes[at] ^= 0xFF;
        std::fs::write(seg, &bytes).unwrap();
    }
    let before = tree(dir.path());
    let (code, out, err) = batpak(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let problems: Vec<&str> = out.lines().filter(|l| l.contains("problem:")).collect();
    assert!(
        problems
            .iter()
            .any(|l| l.contains(&segs[0].display().to_string())),
        "{out}"
    );
    assert!(
        problems
            .iter()
            .any(|l| l.contains(&segs[1].display().to_string())),
        "{out}"
    );
    assert!(
        out.contains(&format!("result: {} problem(s)", problems.len())),
        "{out}"
    );
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn stats_verify_and_dump_understand_a_compacted_store() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    {
        let s = Store::open(
            StoreConfig::new(dir.path())
                .with_lifecycle_events(false)
                .with_segment_max_bytes(1024),
        )
        .unwrap();
        // Drop the plain events of kind 0x1003 (no event names them as a cause).
        let r = s
            .compact(&CompactionConfig {
                strategy: CompactionStrategy::Retention(Box::new(|e| {
                    e.event.header.event_kind != EventKind::custom(1, 3)
                })),
                min_segments: 1,
            })
            .unwrap();
        assert!(r.bytes_reclaimed > 0);
        s.close().unwrap();
    }
    let d = dir.path().to_str().unwrap();
    let before = tree(dir.path());
    let (code, out, _) = batpak(&["stats", d, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dropped = v["dropped_sequences"].as_u64().unwrap();
    let events = v["events"].as_u64().unwrap();
    assert!(dropped > 0 && dropped <= 10, "{v}");
    assert_eq!(events + dropped, 30, "{v}");
    assert_eq!(v["next_sequence"], 30);
    let (code, text, _) = batpak(&["verify", d]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("compaction: {dropped} sequence(s) removed")),
        "{text}"
    );
    let (code, dump, _) = batpak(&["dump", d, "--dropped"]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let removed: u64 = lines
        .iter()
        .filter_map(|l| l.get("dropped"))
        .map(|r| r["to"].as_u64().unwrap() - r["from"].as_u64().unwrap())
        .sum();
    assert_eq!(removed, dropped);
    // In sequence order: a range's start sits between the events around it.
    let mut last = None;
    for l in &lines {
        let at = l["seq"]
            .as_u64()
            .or_else(|| l.get("dropped").and_then(|r| r["from"].as_u64()))
            .unwrap();
        assert!(last.is_none_or(|p| p < at), "{dump}");
        last = Some(at);
    }
    assert_eq!(tree(dir.path()), before, "the tool changes nothing");
}
