//! Throughput benchmark: prints a table, asserts nothing. `just bench` (release build).
//!
//! Sizes can be scaled down with BATPAK_BENCH_SCALE (e.g. 0.1) for a quick run.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
use batpak::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x1, type_id = 1)]
struct Payload {
    user: String,
    amount: u64,
    note: String,
    tags: Vec<String>,
}

fn payload(i: u64) -> Payload {
    Payload {
        user: format!("user-{:06}", i % 100_000),
        amount: i * 7,
        note: "a typical event body of about one hundred bytes".into(),
        tags: vec!["alpha".into(), "beta".into()],
    }
}

fn coord(i: u64) -> Coordinate {
    match Coordinate::new(format!("entity:{}", i % 100), "bench") {
        Ok(c) => c,
        Err(e) => panic!("coordinate: {e}"),
    }
}

fn scale(n: u64) -> u64 {
    let s: f64 = std::env::var("BATPAK_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * s) as u64).max(10)
}

/// BATPAK_BENCH_ONLY=durable1,deferred,... runs only those rows.
fn wanted(key: &str) -> bool {
    match std::env::var("BATPAK_BENCH_ONLY") {
        Ok(v) => v.split(',').any(|k| k.trim() == key),
        Err(_) => true,
    }
}

fn row(name: &str, events: u64, elapsed: Duration, extra: &str) {
    let rate = events as f64 / elapsed.as_secs_f64();
    println!(
        "| {name:<44} | {events:>9} | {:>9.3} s | {rate:>12.0} /s | {extra}",
        elapsed.as_secs_f64()
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn fdatasync_rate(dir: &Path) -> f64 {
    let path = dir.join("fsync-probe");
    let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return 0.0;
    };
    let block = vec![7u8; 4096];
    let n = scale(300);
    let t = Instant::now();
    for _ in 0..n {
        let _ = f.write_all(&block);
        let _ = f.sync_data();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

fn open(dir: &Path, cfg: impl FnOnce(StoreConfig) -> StoreConfig) -> Store {
    match Store::open(cfg(StoreConfig::new(dir))) {
        Ok(s) => s,
        Err(e) => panic!("open: {e}"),
    }
}

/// Appends events `0..n` as atomic batches of 1000, event `j` at `coord_of(j)`.
fn fill_batches(
    store: &Store,
    n: u64,
    coord_of: impl Fn(u64) -> Coordinate,
) -> Result<(), StoreError> {
    let mut i = 0;
    while i < n {
        let items: Vec<_> = (i..(i + 1000).min(n))
            .filter_map(|j| {
                BatchAppendItem::typed(
                    coord_of(j),
                    &payload(j),
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .ok()
            })
            .collect();
        i += items.len() as u64;
        store.append_batch(items)?;
    }
    Ok(())
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Child modes for the reopen measurement (run in fresh processes).
fn child(mode: &str, dir: &Path, n: u64) {
    match mode {
        "fill" => {
            let store = open(dir, |c| c.with_sync_every_n_events(100_000));
            if let Err(e) = fill_batches(&store, n, coord) {
                panic!("fill: {e}");
            }
            let _ = store.sync();
            println!("FILLED");
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_secs(600));
        }
        "reopen" => {
            let t = Instant::now();
            let store = open(dir, |c| c);
            let el = t.elapsed();
            let count = store.stats().event_count;
            println!("REOPENED {} {} {}", count, el.as_secs_f64(), peak_rss_kib());
            std::mem::forget(store);
            std::process::exit(0);
        }
        _ => {}
    }
}

fn reopen_after_sigkill(n: u64) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(_) => return,
    };
    let mut fill = match Command::new(&exe)
        .env("BATPAK_BENCH_CHILD", "fill")
        .env("BATPAK_BENCH_DIR", dir.path())
        .env("BATPAK_BENCH_N", n.to_string())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("spawn: {e}"),
    };
    if let Some(out) = fill.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("FILLED") {
                break;
            }
        }
    }
    let _ = fill.kill(); // SIGKILL
    let _ = fill.wait();
    let out = match Command::new(&exe)
        .env("BATPAK_BENCH_CHILD", "reopen")
        .env("BATPAK_BENCH_DIR", dir.path())
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("spawn: {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = text.lines().find(|l| l.starts_with("REOPENED")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let count: u64 = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        let secs: f64 = f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let rss: u64 = f.get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
        row(
            "reopen after SIGKILL (recovery + index)",
            count,
            Duration::from_secs_f64(secs),
            &format!("peak RSS {} MiB", rss / 1024),
        );
        println!(
            "|   bytes on disk per event                    | {:>9.1} |",
            dir_bytes(dir.path()) as f64 / count.max(1) as f64
        );
    }
}

fn main() {
    if let (Ok(mode), Ok(dir)) = (
        std::env::var("BATPAK_BENCH_CHILD"),
        std::env::var("BATPAK_BENCH_DIR"),
    ) {
        let n = std::env::var("BATPAK_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        child(&mode, Path::new(&dir), n);
        return;
    }
    let Ok(tmp) = tempfile::tempdir() else { return };
    let fsync = fdatasync_rate(tmp.path());
    println!("fdatasync rate (4 KiB appends): {fsync:.0} /s");
    println!(
        "| {:<44} | {:>9} | {:>11} | {:>15} | notes",
        "benchmark", "events", "time", "rate"
    );
    println!("|{}|", "-".repeat(100));

    // 1. durable append, 1 thread.
    if wanted("durable1") {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(d.path(), |c| c);
        let n = scale(2_000);
        let t = Instant::now();
        for i in 0..n {
            let _ = store.append_typed(&coord(i), &payload(i));
        }
        let el = t.elapsed();
        let rate = n as f64 / el.as_secs_f64();
        row(
            "durable append, 1 thread",
            n,
            el,
            &format!("{:.0}% of fdatasync rate", 100.0 * rate / fsync),
        );
    }
    // 2. durable append, 8 threads.
    if wanted("durable8") {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(d.path(), |c| c);
        let n = scale(2_000);
        let t = Instant::now();
        std::thread::scope(|s| {
            for th in 0..8u64 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..n / 8 {
                        let j = th * 1_000_000 + i;
                        let _ = store.append_typed(&coord(j), &payload(j));
                    }
                });
            }
        });
        row(
            "durable append, 8 threads (group commit)",
            n / 8 * 8,
            t.elapsed(),
            "",
        );
    }
    // 3. deferred append.
    if wanted("deferred") {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(d.path(), |c| c.with_sync_every_n_events(1000));
        let n = scale(100_000);
        let t = Instant::now();
        for i in 0..n {
            let _ = store.append_typed(&coord(i), &payload(i));
        }
        let _ = store.sync();
        row("deferred append (sync every 1000)", n, t.elapsed(), "");
    }
    // 3b. deferred append with receipt signing (one Ed25519 signature per event on the writer).
    if wanted("deferred_signed") {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let key = batpak::store::SigningKey::from_bytes([7; 32]);
        let store = open(d.path(), |c| {
            c.with_sync_every_n_events(1000).with_signing_key(key)
        });
        let n = scale(100_000);
        let t = Instant::now();
        for i in 0..n {
            let _ = store.append_typed(&coord(i), &payload(i));
        }
        let _ = store.sync();
        row("deferred append, signed receipts", n, t.elapsed(), "");
    }
    // 4. submit pipelined.
    if wanted("pipelined") {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(d.path(), |c| c.with_writer_channel_capacity(8192));
        let n = scale(100_000);
        let t = Instant::now();
        let tickets: Vec<_> = (0..n)
            .filter_map(|i| store.submit_typed(&coord(i), &payload(i)).ok())
            .collect();
        for tk in tickets {
            let _ = tk.wait();
        }
        row(
            "submit pipelined (tickets, then wait)",
            n,
            t.elapsed(),
            "durable",
        );
    }
    // 5. batch of 1000.
    if wanted("batch") {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(d.path(), |c| c);
        let n = scale(200_000);
        let t = Instant::now();
        if let Err(e) = fill_batches(&store, n, coord) {
            panic!("batch row: {e}");
        }
        row("batch of 1000 (durable)", n, t.elapsed(), "");
    }
    // 6. fence of 100 then commit.
    if wanted("fence") {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(d.path(), |c| c);
        let rounds = scale(100);
        let t = Instant::now();
        for r in 0..rounds {
            let Ok(fence) = store.begin_visibility_fence() else {
                continue;
            };
            let tickets: Vec<_> = (0..100)
                .filter_map(|i| fence.submit_typed(&coord(r * 100 + i), &payload(i)).ok())
                .collect();
            let _ = fence.commit();
            for tk in tickets {
                let _ = tk.wait();
            }
        }
        row("fence of 100 then commit", rounds * 100, t.elapsed(), "");
    }
    // 7-8. projection scan and query over 100k events.
    if wanted("scan") {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = open(d.path(), |c| c);
        let n = scale(100_000);
        let one = coord(0);
        if let Err(e) = fill_batches(&store, n, |_| one.clone()) {
            panic!("scan row fill: {e}");
        }
        let t = Instant::now();
        let mut sum = 0u64;
        for e in store.stream(one.entity()) {
            if let Ok(ev) = store.get_typed::<Payload>(e.event_id) {
                sum = sum.wrapping_add(ev.event.payload.amount);
            }
        }
        row(
            "projection scan of one entity (read+decode)",
            n,
            t.elapsed(),
            &format!("checksum {sum}"),
        );
        let t = Instant::now();
        let got = store.query(&Region::entity(one.entity())).len() as u64;
        row("query (index entries)", got, t.elapsed(), "");
    }
    // 9. reopen after SIGKILL.
    if wanted("reopen") {
        reopen_after_sigkill(scale(1_000_000));
    }
}
