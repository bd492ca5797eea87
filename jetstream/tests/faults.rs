//! Reliability under faults, against real `nats-server` processes the tests start (loopback
//! only): the replicating process SIGKILLed at random points (single server); a cluster node
//! killed and restarted, and the whole cluster restarted (three nodes, stream replicas 3); a
//! server outage across a replicator restart. After each, every committed event is in the
//! stream exactly once, in order, and nothing uncommitted or cancelled is. The tests skip,
//! saying why, only where `nats-server` is not installed. `BATPAK_JS_DEEP=1` repeats each
//! fault more often (`just jetstream-deep`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/nats.rs"]
mod nats;
#[path = "support/work.rs"]
mod work;

use batpak::prelude::*;
use batpak::store::CheckpointId;
use batpak_jetstream::{Replicator, ReplicatorConfig};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use work::{assert_clean, check, deep, wait_committed, write_round, Rng, PREFIX, STREAM};

const MODE_VAR: &str = "BATPAK_JS_CHILD";
const DIR_VAR: &str = "BATPAK_JS_DIR";
const URLS_VAR: &str = "BATPAK_JS_URLS";
const PROTO: &str = "@@js@@ ";

fn config(urls: &[String], replicas: usize) -> ReplicatorConfig {
    ReplicatorConfig::new(urls.to_vec(), STREAM, PREFIX)
        .with_replicas(replicas)
        .with_batch(64)
        .with_ack_timeout(Duration::from_secs(2))
}

fn checkpoint() -> CheckpointId {
    CheckpointId::new(format!("jetstream-{STREAM}"))
}

/// The child: writes rounds on one thread and replicates on this one until killed (or 90 s).
#[test]
fn child_entry() {
    let Some((dir, urls)) = work::child_env(MODE_VAR, DIR_VAR, URLS_VAR) else {
        return;
    };
    let store = Store::open(StoreConfig::new(&dir)).unwrap();
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = store.stats().event_count as u64;
            while start.elapsed() < Duration::from_secs(90) {
                write_round(&store, n);
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut rep = Replicator::start(&store, config(&urls, 1)).unwrap();
        while start.elapsed() < Duration::from_secs(90) {
            match rep.step(Duration::from_millis(20)) {
                Ok(step) if step.published > 0 => println!("{PROTO}{:?}", step.last_sequence),
                Ok(_) => {}
                Err(e) if e.is_transient() => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("{e}"),
            }
        }
    });
}

#[test]
fn a_replicating_process_sigkilled_at_random_points_loses_and_duplicates_nothing() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    let Some(bin) = nats::require_nats("sigkill") else {
        return;
    };
    let nats = nats::Nats::single(&bin);
    let urls = nats.urls();
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng::from_env();
    let kills = if deep() { 40 } else { 8 };
    for _ in 0..kills {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(MODE_VAR, "1")
            .env(DIR_VAR, tmp.path())
            .env(URLS_VAR, urls.join(","))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with(PROTO) && tx.send(line).is_err() {
                    break;
                }
            }
        });
        let steps = 1 + rng.below(25);
        for _ in 0..steps {
            rx.recv_timeout(Duration::from_secs(60))
                .expect("the child published nothing for 60 s");
        }
        std::thread::sleep(Duration::from_micros(rng.below(40_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
    }
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let mut rep = Replicator::start(&store, config(&urls, 1)).unwrap();
    rep.catch_up(Duration::from_secs(120)).unwrap();
    drop(rep);
    assert_clean(
        "replicating process SIGKILLed",
        kills,
        check(&store, &urls, STREAM),
    );
}

/// Writes and replicates on two threads while `faults` runs on this one, then catches up
/// with a fresh replicator and checks the stream.
fn live(
    name: &str,
    nats: &mut nats::Nats,
    replicas: usize,
    faults: impl FnOnce(&Store<Open>, &mut nats::Nats) -> usize,
) {
    let urls = nats.urls();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let (stop_w, stop_r) = (AtomicBool::new(false), AtomicBool::new(false));
    let kills = std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while !stop_w.load(Ordering::SeqCst) {
                write_round(&store, n);
                n += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        let rep = s.spawn(|| {
            let mut rep = Replicator::start(&store, config(&urls, replicas)).unwrap();
            rep.run(&stop_r).unwrap()
        });
        let kills = faults(&store, nats);
        stop_w.store(true, Ordering::SeqCst);
        stop_r.store(true, Ordering::SeqCst);
        rep.join().unwrap();
        kills
    });
    let mut rep = Replicator::start(&store, config(&urls, replicas)).unwrap();
    rep.catch_up(Duration::from_secs(120)).unwrap();
    drop(rep);
    assert_clean(name, kills, check(&store, &urls, STREAM));
}

#[test]
fn a_cluster_node_killed_and_restarted_loses_and_duplicates_nothing() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    let Some(bin) = nats::require_nats("cluster node kill") else {
        return;
    };
    let mut nats = nats::Nats::cluster(&bin);
    let mut rng = Rng::from_env();
    let rounds = if deep() { 12 } else { 3 };
    live(
        "cluster node killed and restarted",
        &mut nats,
        3,
        |store, nats| {
            let id = checkpoint();
            let mut at = wait_committed(store, &id, None);
            for r in 0..rounds {
                let node = (r + rng.below(3) as usize) % 3;
                nats.nodes[node].kill();
                std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
                at = wait_committed(store, &id, at);
                nats.nodes[node].start();
                at = wait_committed(store, &id, at);
            }
            rounds
        },
    );
}

#[test]
fn a_whole_cluster_restarted_loses_and_duplicates_nothing() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    let Some(bin) = nats::require_nats("cluster restart") else {
        return;
    };
    let mut nats = nats::Nats::cluster(&bin);
    let mut rng = Rng::from_env();
    let rounds = if deep() { 5 } else { 1 };
    live("whole cluster restarted", &mut nats, 3, |store, nats| {
        let id = checkpoint();
        let mut at = wait_committed(store, &id, None);
        for _ in 0..rounds {
            nats.kill_all();
            std::thread::sleep(Duration::from_millis(200 + rng.below(800)));
            nats.start_all();
            at = wait_committed(store, &id, at);
        }
        rounds * 3
    });
}

/// A server outage across a replicator restart: events are committed, replicated, then the
/// server is killed while a batch is in flight, the replicator's process goes away (its
/// connection and whatever it buffered with it), the server comes back and a new replicator
/// catches up.
fn outage_across_restart(cfg: impl Fn(&[String]) -> ReplicatorConfig) -> work::Report {
    let bin = nats::nats_server().unwrap();
    let mut nats = nats::Nats::single(&bin);
    let urls = nats.urls();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    for n in 0..5 {
        write_round(&store, n);
    }
    let mut rep = Replicator::start(&store, cfg(&urls)).unwrap();
    rep.catch_up(Duration::from_secs(60)).unwrap();
    nats.nodes[0].kill();
    for n in 5..10 {
        write_round(&store, n);
    }
    let failed = rep.step(Duration::from_millis(100));
    assert!(
        failed.as_ref().is_err_and(|e| e.is_transient()),
        "a step with the server down must fail: {failed:?}"
    );
    drop(rep);
    nats.nodes[0].start();
    let mut rep = Replicator::start(&store, cfg(&urls)).unwrap();
    rep.catch_up(Duration::from_secs(60)).unwrap();
    drop(rep);
    check(&store, &urls, STREAM)
}

#[test]
fn a_server_outage_across_a_replicator_restart_loses_and_duplicates_nothing() {
    if std::env::var(MODE_VAR).is_ok() || nats::require_nats("outage").is_none() {
        return;
    }
    let r = outage_across_restart(|urls| config(urls, 1));
    assert_clean("server outage across a replicator restart", 1, r);
}

/// The seeded bug `CommitBeforeAck` (checkpoint before JetStream acknowledged) is caught: the
/// same scenario finds losses.
#[cfg(batpak_mutant)]
#[test]
fn the_outage_test_catches_a_checkpoint_committed_before_the_ack() {
    use batpak_jetstream::ReplicatorMutant;
    if std::env::var(MODE_VAR).is_ok() || nats::require_nats("mutant witness").is_none() {
        return;
    }
    let r = outage_across_restart(|urls| {
        config(urls, 1).with_mutant(ReplicatorMutant::CommitBeforeAck)
    });
    println!("jetstream faults: mutant CommitBeforeAck: {r:?}");
    assert!(r.losses > 0, "the seeded bug went unnoticed: {r:?}");
}
