//! Replication throughput and end-to-end lag, against a single JetStream server and a
//! three-node cluster (stream replicas 3) that this program starts on loopback ports (it
//! needs `nats-server`). Numbers are printed, never asserted.
//!
//! Two runs per target:
//! - saturated: a writer appends `BENCH_EVENTS` events (default 1,000,000) in batches of
//!   1,000 as fast as the store takes them while the replicator follows; throughput is
//!   events / (last acknowledgement - first commit), lag (commit -> JetStream ack) includes
//!   the backlog;
//! - paced: `BENCH_PACED_EVENTS` (default 50,000) at `BENCH_RATE` events/s (default 5,000),
//!   in batches of 100: the lag of a replicator that keeps up.
//!
//! `cargo run --release -p batpak-jetstream --example replication_bench` (`just
//! bench-jetstream`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/nats.rs"]
mod nats;

use batpak::prelude::*;
use batpak_jetstream::{Replicator, ReplicatorConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const KIND: EventKind = EventKind::custom(0x1, 1);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    events: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Writes `events` in batches of `batch` (paced at `rate` events/s if given) while a
/// replicator follows; lag per event = its step's acknowledgement - its batch's commit.
fn run(
    urls: &[String],
    replicas: usize,
    stream: &str,
    events: u64,
    batch: u64,
    rate: Option<u64>,
) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let base = store.stats().event_count as u64;
    let commits: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let acks: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let cfg = ReplicatorConfig::new(urls.to_vec(), stream, stream.to_lowercase())
        .with_replicas(replicas)
        .with_batch(1024)
        .with_region(Region::all().with_fact_category(0x1));
    let mut rep = Replicator::start(&store, cfg).unwrap();
    // Create the stream before the clock starts.
    rep.catch_up(Duration::from_secs(60)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            let mut written = 0;
            while written < events {
                let n = batch.min(events - written);
                let items = (0..n)
                    .map(|i| {
                        BatchAppendItem::new(
                            Coordinate::new(format!("e{}", (written + i) % 64), "bench").unwrap(),
                            KIND,
                            &serde_json::json!({"n": written + i, "note": "a small event of the benchmark"}),
                            AppendOptions::default(),
                            CausationRef::None,
                        )
                        .unwrap()
                    })
                    .collect();
                let receipts = store.append_batch(items).unwrap();
                let last = receipts.last().unwrap().sequence;
                commits.lock().unwrap().push((last, Instant::now()));
                written += n;
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(written as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut acked = 0u64;
        let deadline = Instant::now() + Duration::from_secs(1800);
        while !(done.load(Ordering::SeqCst) && acked >= events) {
            assert!(
                Instant::now() < deadline,
                "replication did not finish in 30 min"
            );
            match rep.step(Duration::from_millis(20)) {
                Ok(step) => {
                    if let Some(last) = step.last_sequence {
                        acks.lock().unwrap().push((last, Instant::now()));
                    }
                    acked += step.published;
                }
                Err(e) if e.is_transient() => eprintln!("transient: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
    });
    let (commits, acks) = (commits.into_inner().unwrap(), acks.into_inner().unwrap());
    // Per batch of the writer: every event of it is acked by the first step past its last.
    let mut lags = Vec::with_capacity(events as usize);
    let mut prev = base;
    let mut j = 0;
    for &(last, t_commit) in &commits {
        while acks[j].0 < last {
            j += 1;
        }
        let lag = acks[j].1.saturating_duration_since(t_commit).as_secs_f64() * 1e3;
        for _ in prev..last {
            lags.push(lag);
        }
        prev = last;
    }
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| lags[((lags.len() - 1) as f64 * p) as usize];
    let first = commits.first().unwrap().1;
    let secs = acks.last().unwrap().1.duration_since(first).as_secs_f64();
    Run {
        events,
        secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: *lags.last().unwrap(),
    }
}

fn main() {
    let Some(bin) = nats::nats_server() else {
        eprintln!("replication_bench: nats-server is not installed (apt-get install nats-server)");
        return;
    };
    let events = env("BENCH_EVENTS", 1_000_000);
    let paced = env("BENCH_PACED_EVENTS", 50_000);
    let rate = env("BENCH_RATE", 5_000);
    println!("replication to JetStream: {events} events saturated, {paced} paced at {rate}/s (lag = commit -> JetStream ack)");
    println!(
        "{:<34} {:>10} {:>9} {:>12} {:>10} {:>10} {:>10}",
        "target", "events", "secs", "events/s", "lag p50", "lag p99", "lag max"
    );
    for (name, replicas) in [("single server", 1usize), ("3-node cluster, replicas 3", 3)] {
        let nats = if replicas == 1 {
            nats::Nats::single(&bin)
        } else {
            nats::Nats::cluster(&bin)
        };
        let urls = nats.urls();
        for (mode, n, batch, r) in [
            ("saturated", events, 1000, None),
            ("paced", paced, 100, Some(rate)),
        ] {
            let stream = format!("BENCH{}{}", replicas, mode.to_uppercase());
            let res = run(&urls, replicas, &stream, n, batch, r);
            println!(
                "{:<34} {:>10} {:>9.1} {:>12.0} {:>8.1}ms {:>8.1}ms {:>8.1}ms",
                format!("{name}, {mode}"),
                res.events,
                res.secs,
                res.events as f64 / res.secs,
                res.p50_ms,
                res.p99_ms,
                res.max_ms
            );
        }
        drop(nats);
    }
}
