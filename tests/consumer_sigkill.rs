//! A durable consumer killed with SIGKILL: the test binary re-executes itself as a child that
//! reacts to source events with `commit_with` (one output per source, in one atomic unit with
//! the checkpoint) and reports each commit on stdout; the parent kills it at a varying point,
//! several times over the same directory, and checks INV-EXACTLY-ONCE and INV-CURSOR-ORDER on
//! real files: every source the checkpoint covers has exactly one output, none after it has
//! any, and every acknowledged commit survived.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::CheckpointId;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const MODE_VAR: &str = "BATPAK_CONSUMER_CHILD";
const DIR_VAR: &str = "BATPAK_CONSUMER_DIR";
const PROTO: &str = "@@consumer@@ ";
const SOURCE: EventKind = EventKind::custom(0x6, 1);
const OUTPUT: EventKind = EventKind::custom(0x6, 2);

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "kill").unwrap()
}

/// The child: appends sources and reacts to them forever, until killed.
#[test]
fn child_entry() {
    if std::env::var(MODE_VAR).is_err() {
        return;
    }
    let dir = std::env::var(DIR_VAR).unwrap();
    let store = Store::open(StoreConfig::new(&dir)).unwrap();
    let mut c = store
        .consumer(&CheckpointId::new("reactor"), &Region::entity("src"))
        .unwrap();
    loop {
        let got = c.poll(3, Duration::from_millis(1));
        if got.is_empty() {
            for i in 0..5u32 {
                store.append(&coord("src"), SOURCE, &i).unwrap();
            }
            continue;
        }
        let outs = got
            .iter()
            .map(|e| {
                BatchAppendItem::new(
                    coord("out"),
                    OUTPUT,
                    &e.global_sequence,
                    AppendOptions::default(),
                    CausationRef::Absolute(e.event_id),
                )
                .unwrap()
            })
            .collect();
        c.commit_with(outs).unwrap();
        println!("{PROTO}{}", c.committed().unwrap());
    }
}

#[test]
fn a_consumer_killed_at_any_point_resumes_without_skipping_or_repeating_a_reaction() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut acked = None;
    for round in 0..4u32 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(MODE_VAR, "1")
            .env(DIR_VAR, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let want = 3 + round * 7;
        let mut seen = 0;
        while seen < want {
            let line = lines.next().unwrap().unwrap();
            if let Some(rest) = line.strip_prefix(PROTO) {
                acked = Some(rest.parse::<u64>().unwrap());
                seen += 1;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
        let committed = store
            .consumers()
            .first()
            .and_then(|i| i.committed)
            .expect("a checkpoint");
        assert!(
            Some(committed) >= acked,
            "INV-CHECKPOINT-DURABLE: acknowledged checkpoint {acked:?} lost, recovered {committed}"
        );
        let mut per_source: BTreeMap<u64, u32> = BTreeMap::new();
        for e in store.by_fact(OUTPUT) {
            let src: u64 = store.get_typed_raw_seq(e.event_id);
            *per_source.entry(src).or_default() += 1;
        }
        for s in store.query(&Region::entity("src")) {
            let n = per_source.get(&s.global_sequence).copied().unwrap_or(0);
            if s.global_sequence <= committed {
                assert_eq!(
                    n, 1,
                    "INV-EXACTLY-ONCE: source {} has {n} outputs",
                    s.global_sequence
                );
            } else {
                assert_eq!(
                    n, 0,
                    "INV-EXACTLY-ONCE: source {} after the checkpoint has outputs",
                    s.global_sequence
                );
            }
        }
        store.close().unwrap();
    }
}

trait RawSeq {
    fn get_typed_raw_seq(&self, id: u128) -> u64;
}

impl RawSeq for Store {
    fn get_typed_raw_seq(&self, id: u128) -> u64 {
        let raw = self.get_raw(id).unwrap();
        rmp_serde::from_slice(&raw.event.payload).unwrap()
    }
}
