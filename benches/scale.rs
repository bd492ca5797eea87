//! Scale benchmark: how reopen time, memory, cursor drain and query latency grow with the
//! number of events. Prints numbers, asserts nothing (`just bench-scale N`, release build).
//!
//! `cargo bench --bench scale -- 1000000 [DIR]` writes N events of about 100 bytes (100
//! entities, one scope, atomic batches of 1000), closes the store, then measures in a fresh
//! process (so the resident set is the reopened store's alone): reopen time, resident memory
//! after the reopen (`VmRSS`), the index's bytes per event (`diagnostics().index_bytes`), a
//! full `cursor_guaranteed` drain (`poll_batch(1000)`), and query latencies (whole-scope
//! query, one entity's stream, `entry` and `get_raw` by id). The store's directory is removed
//! at the end unless DIR was given (then it is kept and reused: an existing store of N
//! events is not written again). BATPAK_SCALE_STOP=reopen stops after the reopen (to profile
//! it); BATPAK_SCALE_TMP is where the temporary store goes (default: the system's temporary
//! directory; 10M events take about 2 GB). Results of 1M and 10M: `benches/SCALE.md`.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
use batpak::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The peer harness's payload: about 100 bytes of named MessagePack.
#[derive(Debug, Clone, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x1, type_id = 2)]
struct Payload {
    id: u64,
    name: String,
    amount: u64,
    tags: Vec<u32>,
}

fn payload(i: u64) -> Payload {
    Payload {
        id: i,
        name: format!("{:032}", i.wrapping_mul(0x9E37_79B9)),
        amount: i * 7,
        tags: (0..8).map(|k| (i as u32).wrapping_add(k)).collect(),
    }
}

const ENTITIES: u64 = 100;
const SCOPE: &str = "scale";

fn coord(i: u64) -> Coordinate {
    Coordinate::new(format!("entity:{}", i % ENTITIES), SCOPE).expect("coordinate")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU time of the whole process (every thread), from `/proc/self/stat` (clock ticks of
/// 10 ms): on a shared machine it tells the work apart from the waiting for a core.
fn cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at field 3.
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn open(dir: &Path) -> Store {
    match Store::open(StoreConfig::new(dir)) {
        Ok(s) => s,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

/// Percentile `p` (0..=100) of `v` (sorted here), in microseconds.
fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn write(dir: &Path, n: u64) {
    let store = open(dir);
    let have = store.by_scope(SCOPE).len() as u64;
    if have == n {
        println!("write: reusing the {n} events in {}", dir.display());
        store.close().expect("close");
        return;
    }
    assert_eq!(
        have,
        0,
        "{} holds {have} events, not 0 or {n}",
        dir.display()
    );
    let coords: Vec<Coordinate> = (0..ENTITIES).map(coord).collect();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let items: Vec<_> = (i..(i + 1000).min(n))
            .map(|j| {
                BatchAppendItem::typed(
                    coords[(j % ENTITIES) as usize].clone(),
                    &payload(j),
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .expect("item")
            })
            .collect();
        i += items.len() as u64;
        store.append_batch(items).expect("append_batch");
    }
    let secs = t.elapsed().as_secs_f64();
    store.close().expect("close");
    println!(
        "write: {n} events in {secs:.1} s ({:.0} events/s), {:.0} MiB on disk",
        n as f64 / secs,
        dir_bytes(dir) as f64 / (1 << 20) as f64
    );
}

fn measure(dir: &Path, n: u64) {
    let rss_before = status_kib("VmRSS:");
    let (t, c) = (Instant::now(), cpu());
    let store = open(dir);
    let reopen = t.elapsed();
    let reopen_cpu = cpu() - c;
    let rss_after = status_kib("VmRSS:");
    let d = store.diagnostics();
    // The store's own records (its identity) are visible events too.
    assert!(d.event_count as u64 >= n, "events after reopen");
    println!("| events | {n} |");
    println!(
        "| reopen | {:.3} s wall, {:.2} s CPU ({:.0} ns CPU/event) |",
        reopen.as_secs_f64(),
        reopen_cpu.as_secs_f64(),
        reopen_cpu.as_secs_f64() * 1e9 / n as f64
    );
    println!(
        "| RSS after reopen | {:.1} MiB ({:.1} MiB before open; {:.0} B/event over it) |",
        mib(rss_after),
        mib(rss_before),
        (rss_after.saturating_sub(rss_before) * 1024) as f64 / n as f64
    );
    println!(
        "| index bytes | {:.1} MiB ({:.1} B/event) |",
        d.index_bytes as f64 / (1 << 20) as f64,
        d.index_bytes as f64 / n as f64
    );

    if std::env::var("BATPAK_SCALE_STOP").is_ok_and(|v| v == "reopen") {
        // For profiling the reopen alone (`perf record`).
        return;
    }

    // Cursor drain of every event.
    let (t, c) = (Instant::now(), cpu());
    let mut cursor = store.cursor_guaranteed(&Region::scope(SCOPE));
    let mut drained = 0u64;
    loop {
        let got = cursor.poll_batch(1000);
        if got.is_empty() {
            break;
        }
        drained += got.len() as u64;
    }
    let drain = t.elapsed();
    let drain_cpu = cpu() - c;
    drop(cursor);
    assert_eq!(drained, n, "events drained");
    println!(
        "| cursor drain (poll_batch 1000) | {:.3} s wall ({:.0} events/s), {:.2} s CPU ({:.0} ns CPU/event) |",
        drain.as_secs_f64(),
        n as f64 / drain.as_secs_f64(),
        drain_cpu.as_secs_f64(),
        drain_cpu.as_secs_f64() * 1e9 / n as f64
    );

    // Whole-scope query: its result is all N entries, so it is timed a few times only.
    let mut scope_times = Vec::new();
    let mut ids = Vec::new();
    let c = cpu();
    for round in 0..3 {
        let t = Instant::now();
        let all = store.by_scope(SCOPE);
        scope_times.push(t.elapsed());
        assert_eq!(all.len() as u64, n, "scope query");
        if round == 0 {
            // Every (n / 100_000)-th id, for the lookups below.
            let step = (n / 100_000).max(1) as usize;
            ids = all.iter().step_by(step).map(|e| e.event_id).collect();
        }
    }
    let scope_cpu = (cpu() - c) / 3;
    let per = |v: &[Duration], k: u64| v.iter().min().unwrap().as_secs_f64() * 1e9 / k as f64;
    println!(
        "| scope query (all {n}) | p50 {:.0} ms, min {:.0} ms ({:.0} ns/event); {:.0} ms CPU per query ({:.0} ns CPU/event) |",
        pct(&mut scope_times.clone(), 50.0) / 1e3,
        scope_times.iter().min().unwrap().as_secs_f64() * 1e3,
        per(&scope_times, n),
        scope_cpu.as_secs_f64() * 1e3,
        scope_cpu.as_secs_f64() * 1e9 / n as f64
    );

    // The scope query plus every payload (the peer harness's query_scope_read), over the
    // first min(n, 1M) events of the scope.
    let k = n.min(1_000_000) as usize;
    let all = store.by_scope(SCOPE);
    let (t, c) = (Instant::now(), cpu());
    let mut bytes = 0usize;
    for e in all.iter().take(k) {
        bytes += store
            .get_raw(e.event_id)
            .expect("get_raw")
            .event
            .payload
            .len();
    }
    let (read, read_cpu) = (t.elapsed(), cpu() - c);
    drop(all);
    assert!(bytes >= k * 50, "payload bytes");
    println!(
        "| scope read (get_raw of {k} events in scope order) | {:.0} events/s wall, {:.0} events/s CPU ({:.0} ns CPU/event) |",
        k as f64 / read.as_secs_f64(),
        k as f64 / read_cpu.as_secs_f64(),
        read_cpu.as_secs_f64() * 1e9 / k as f64
    );

    // One entity's stream (n / 100 events).
    let mut stream_times = Vec::new();
    for k in 0..50u64 {
        let e = format!("entity:{}", (k * 37) % ENTITIES);
        let t = Instant::now();
        let s = store.stream(&e);
        stream_times.push(t.elapsed());
        assert_eq!(s.len() as u64, n / ENTITIES, "stream of {e}");
    }
    let stream_min = per(&stream_times, n / ENTITIES);
    println!(
        "| entity stream ({} events) | p50 {:.0} us, p99 {:.0} us ({stream_min:.0} ns/event) |",
        n / ENTITIES,
        pct(&mut stream_times, 50.0),
        pct(&mut stream_times, 99.0)
    );

    // Lookups by id, in a scrambled order (no read-ahead luck).
    let mut order: Vec<usize> = (0..ids.len()).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut entry_times = Vec::with_capacity(order.len());
    for &i in &order {
        let t = Instant::now();
        let e = store.entry(ids[i]);
        entry_times.push(t.elapsed());
        assert!(e.is_some());
    }
    println!(
        "| entry by id (index only, {} ids) | p50 {:.2} us, p99 {:.2} us |",
        order.len(),
        pct(&mut entry_times, 50.0),
        pct(&mut entry_times, 99.0)
    );
    let mut raw_times = Vec::with_capacity(order.len());
    for &i in order.iter().take(20_000) {
        let t = Instant::now();
        let e = store.get_raw(ids[i]).expect("get_raw");
        raw_times.push(t.elapsed());
        assert!(!e.event.payload.is_empty());
    }
    println!(
        "| get_raw by id (payload from disk, {} ids) | p50 {:.2} us, p99 {:.2} us |",
        raw_times.len(),
        pct(&mut raw_times, 50.0),
        pct(&mut raw_times, 99.0)
    );
    println!(
        "| peak RSS of the reading process | {:.1} MiB |",
        mib(status_kib("VmHWM:"))
    );
    store.close().expect("close");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--measure") {
        let dir = PathBuf::from(&args[1]);
        let n: u64 = args[2].parse().expect("N");
        measure(&dir, n);
        return;
    }
    // `cargo bench` passes `--bench`; the first number is N, a later non-flag word the DIR.
    let mut free = args.iter().filter(|a| !a.starts_with("--"));
    let n: u64 = free
        .next()
        .map(|v| v.replace('_', "").parse().expect("N: a number of events"))
        .unwrap_or(1_000_000);
    let (dir, temp) = match free.next() {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("batpak-scale-")
                .tempdir_in(
                    std::env::var_os("BATPAK_SCALE_TMP")
                        .map_or_else(std::env::temp_dir, PathBuf::from),
                )
                .expect("temp dir");
            (t.path().to_path_buf(), Some(t))
        }
    };
    std::fs::create_dir_all(&dir).expect("dir");
    write(&dir, n);
    let status = Command::new(std::env::current_exe().expect("exe"))
        .arg("--measure")
        .arg(&dir)
        .arg(n.to_string())
        .status()
        .expect("measuring process");
    assert!(status.success(), "measuring process failed: {status}");
    drop(temp);
}
