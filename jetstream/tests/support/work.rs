//! The fault tests' workload and their check of the stream against the store.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::CheckpointId;
use batpak_jetstream::{read_replicated, ReplicatedMessage};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

pub const KIND: EventKind = EventKind::custom(0x1, 1);
pub const STREAM: &str = "FAULTS";
pub const PREFIX: &str = "faults";

/// A child process's store directory and server URLs, from the environment variables its
/// parent set (`None` when `mode_var` is unset: not a child).
pub fn child_env(mode_var: &str, dir_var: &str, urls_var: &str) -> Option<(String, Vec<String>)> {
    std::env::var(mode_var).ok()?;
    let dir = std::env::var(dir_var).unwrap();
    let urls = std::env::var(urls_var)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    Some((dir, urls))
}

fn coord(i: u64) -> Coordinate {
    Coordinate::new(format!("e{}", i % 5), "faults").unwrap()
}

/// One round of writes, 9 submitted, 7 committed: a plain append, a reaction caused by it,
/// a batch of 3, a committed fence of 2, and a cancelled fence of 2 (never visible).
pub fn write_round(store: &Store<Open>, n: u64) {
    let r = store
        .append(&coord(n), KIND, &json!({"n": n, "what": "plain"}))
        .unwrap();
    store
        .append_reaction(
            &coord(n + 1),
            KIND,
            &json!({"n": n, "what": "reaction"}),
            r.event_id,
            r.event_id,
        )
        .unwrap();
    let items = (0..3)
        .map(|i| {
            BatchAppendItem::new(
                coord(n + 2),
                KIND,
                &json!({"n": n, "what": "batch", "i": i}),
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect();
    store.append_batch(items).unwrap();
    let f = store.begin_visibility_fence().unwrap();
    for i in 0..2 {
        let _ = f
            .submit(
                &coord(n + 3),
                KIND,
                &json!({"n": n, "what": "fenced", "i": i}),
            )
            .unwrap();
    }
    f.commit().unwrap();
    let f = store.begin_visibility_fence().unwrap();
    for i in 0..2 {
        let _ = f
            .submit(
                &coord(n + 4),
                KIND,
                &json!({"n": n, "what": "cancelled", "i": i}),
            )
            .unwrap();
    }
    f.cancel().unwrap();
}

/// What the check found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub checked: usize,
    pub duplicates: usize,
    pub losses: usize,
    pub extras: usize,
    pub cancelled: usize,
    pub out_of_order: usize,
    /// Messages whose batch headers disagree with the store: `Batpak-Batch` not the batch
    /// the event was written in, or `Batpak-Batch-End` not exactly on a batch's last message.
    pub bad_batch_marks: usize,
}

/// Every committed event of the store is in the stream exactly once, in global-sequence
/// order (so in order per entity), with its headers; nothing else is.
pub fn check(store: &Store<Open>, urls: &[String], stream: &str) -> Report {
    let msgs = read_replicated(urls, stream, Duration::from_secs(120)).unwrap();
    check_messages(store, &msgs)
}

pub fn check_messages(store: &Store<Open>, msgs: &[ReplicatedMessage]) -> Report {
    let mut entries = store.query(&Region::all());
    entries.sort_by_key(|e| e.global_sequence);
    let by_id: HashMap<u128, &IndexEntry> = entries.iter().map(|e| (e.event_id, e)).collect();
    let mut r = Report {
        checked: msgs.len(),
        ..Report::default()
    };
    let mut seen = HashSet::new();
    let mut last_seq = None;
    let mut last_clock: HashMap<String, u32> = HashMap::new();
    for m in msgs {
        if !seen.insert(m.event_id) {
            r.duplicates += 1;
            continue;
        }
        if last_seq.is_some_and(|s| m.sequence <= s) {
            r.out_of_order += 1;
        }
        last_seq = Some(m.sequence);
        let entity = m.coordinate.entity().to_string();
        if last_clock.get(&entity).is_some_and(|&c| m.clock <= c) {
            r.out_of_order += 1;
        }
        last_clock.insert(entity, m.clock);
        let payload: serde_json::Value = rmp_serde::from_slice(&m.payload).unwrap();
        if payload["what"] == "cancelled" {
            r.cancelled += 1;
        }
        match by_id.get(&m.event_id) {
            None => r.extras += 1,
            Some(e) => {
                assert_eq!(
                    e.global_sequence, m.sequence,
                    "sequence header of {:032x}",
                    m.event_id
                );
                assert_eq!(e.coord, m.coordinate);
                assert_eq!(e.kind, m.kind);
                assert_eq!(e.correlation_id, m.correlation_id);
                assert_eq!(e.causation_id, m.causation_id);
            }
        }
    }
    r.losses = entries
        .iter()
        .filter(|e| !seen.contains(&e.event_id))
        .count();
    for (i, m) in msgs.iter().enumerate() {
        if by_id.contains_key(&m.event_id) {
            let (_, batch) = store.get_raw_with_batch(m.event_id).unwrap();
            let next = msgs.get(i + 1).and_then(|n| n.batch);
            let end = m.batch.is_some() && next != m.batch;
            if m.batch != batch || m.batch_end != end {
                r.bad_batch_marks += 1;
            }
        }
    }
    r
}

pub fn assert_clean(name: &str, kills: usize, r: Report) {
    println!(
        "jetstream faults: {name}: kills survived {kills}, events checked {}, duplicates: {}, losses: {}, extras: {}, cancelled: {}, out of order: {}, bad batch marks: {}",
        r.checked, r.duplicates, r.losses, r.extras, r.cancelled, r.out_of_order, r.bad_batch_marks
    );
    assert!(r.checked > 0, "{name}: nothing was replicated");
    assert_eq!(
        (
            r.duplicates,
            r.losses,
            r.extras,
            r.cancelled,
            r.out_of_order,
            r.bad_batch_marks
        ),
        (0, 0, 0, 0, 0, 0),
        "{name}: {r:?}"
    );
}

/// Waits until consumer `id` has committed past `beyond`, for at most 120 s.
pub fn wait_committed(store: &Store<Open>, id: &CheckpointId, beyond: Option<u64>) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = store
            .consumers()
            .into_iter()
            .find(|c| &c.id == id)
            .and_then(|c| c.committed);
        if c.is_some() && c > beyond {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "consumer {} did not commit past {beyond:?} in 120 s",
            id.as_str()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small xorshift generator (seeded, printed: a failing run can be replayed).
pub struct Rng(pub u64);

impl Rng {
    pub fn from_env() -> Self {
        let seed = std::env::var("BATPAK_JS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        println!("jetstream faults: seed {seed} (BATPAK_JS_SEED={seed} replays it)");
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Deep runs (`BATPAK_JS_DEEP=1`, `just jetstream-deep`) repeat each fault more often.
pub fn deep() -> bool {
    std::env::var("BATPAK_JS_DEEP").is_ok_and(|v| v == "1")
}
