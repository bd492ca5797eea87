//! Cold start of a large store, with and without the recovery checkpoint: fills a store with
//! N events of about 100 bytes over 100 entities (batches of 1000; once, in the directory
//! given), closes it, then times `Store::open` plus a first query (one entity's stream) with
//! a full scan (`with_enable_checkpoint(false)`), with the checkpoint saved at close, and
//! after a crash (a child process that appends 1% more events with a checkpoint every
//! N/200 events and aborts without closing, so the open finds the last periodic checkpoint
//! and scans the tail after it). Prints the closed store's bytes on disk (the log's segments,
//! the checkpoint, their sum, each per event), then wall time and this process's CPU time
//! (user + system, from /proc: all threads, and the opening thread alone) of each open.
//!
//! `cargo run --release --example cold_start -- 1000000 /tmp/cold`
//!
//! With a third argument `checkpoint` or `scan` and a count K (`... 1000000 /tmp/cold
//! checkpoint 5`), it only times K opens of that kind of the filled store (for a profiler,
//! or alternating runs of two builds).

use batpak::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn fill(dir: &Path, from: u64, n: u64, config: StoreConfig) -> Result<Store, StoreError> {
    let store = Store::open(config)?;
    let kind = EventKind::custom(0x1, 1);
    let mut i = from;
    while i < from + n {
        let mut items = Vec::with_capacity(1000);
        for j in i..(i + 1000).min(from + n) {
            let c = Coordinate::new(format!("entity:{}", j % 100), "bench")?;
            let payload = serde_json::json!({"user": format!("user-{j:06}"), "amount": j * 7, "note": "about one hundred bytes of payload in total"});
            items.push(BatchAppendItem::new(
                c,
                kind,
                &payload,
                AppendOptions::default(),
                CausationRef::None,
            )?);
        }
        i += items.len() as u64;
        store.append_batch(items)?;
    }
    let _ = dir;
    Ok(store)
}

/// User + system CPU seconds of this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// User + system CPU seconds of the calling thread so far (the opening thread: the open's
/// critical path when the machine has a core free for each helper thread).
fn thread_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/thread-self/stat")
}

fn stat_cpu_seconds(file: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(file) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn timed_open(label: &str, config: StoreConfig) -> Result<(), Box<dyn std::error::Error>> {
    let (t, cpu, own) = (Instant::now(), cpu_seconds(), thread_cpu_seconds());
    let store = Store::open(config)?;
    let first = store.stream("entity:42").len();
    let wall = t.elapsed().as_secs_f64();
    let (cpu, own) = (cpu_seconds() - cpu, thread_cpu_seconds() - own);
    println!(
        "{label:<34} {:>8} events  open+first query {wall:.3} s wall, {cpu:.2} s CPU ({own:.2} s on the opening thread; {first} in the first query)",
        store.stats().event_count
    );
    // Drop releases the lock; like close, it saves a new checkpoint (the callers restore the
    // file they measured where a run must open with the same one again).
    drop(store);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "/tmp/batpak-cold".into()),
    );
    if args.get(3).map(String::as_str) == Some("crash-child") {
        // Append 1% more with a checkpoint every 0.5%, then die without closing.
        let config = StoreConfig::new(&dir).with_checkpoint_every_n_events(n / 200);
        let store = fill(&dir, n, n / 100, config)?;
        store.sync()?;
        std::process::abort();
    }
    let base = || StoreConfig::new(&dir).with_lifecycle_events(false);
    if !dir.join("00000000000000000000.seg").exists() {
        let store = fill(&dir, 0, n, base())?;
        store.close()?;
    }
    let only = args.get(3).map(String::as_str);
    if let Some(kind @ ("checkpoint" | "scan")) = only {
        let k: u32 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1);
        for _ in 0..k {
            let config = base().with_enable_checkpoint(kind == "checkpoint");
            timed_open(kind, config)?;
        }
        return Ok(());
    }
    // A clean close saved a checkpoint (the fill's close, or the run before): keep a copy to
    // restore it after the runs that change it.
    let ckpt = std::fs::read(dir.join("recovery.ckpt")).ok();
    let mut log_bytes = 0u64;
    for e in std::fs::read_dir(&dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().ends_with(".seg") {
            log_bytes += e.metadata()?.len();
        }
    }
    let ckpt_bytes = ckpt.as_ref().map_or(0, |c| c.len() as u64);
    let per = |b: u64| b as f64 / n as f64;
    println!(
        "on disk: log {log_bytes} bytes ({:.1}/event), checkpoint {ckpt_bytes} bytes ({:.1}/event), sum {:.1} bytes/event",
        per(log_bytes),
        per(ckpt_bytes),
        per(log_bytes + ckpt_bytes)
    );
    for _ in 0..2 {
        timed_open(
            "full scan (no checkpoint)",
            base().with_enable_checkpoint(false),
        )?;
        timed_open("after close (checkpoint)", base())?;
    }
    let copy = dir.with_extension("crashcopy");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy)?;
    for e in std::fs::read_dir(&dir)? {
        let e = e?;
        std::fs::copy(e.path(), copy.join(e.file_name()))?;
    }
    // The crash runs on the copy; its own checkpoint there is the fill's (covering n events).
    let exe = std::env::current_exe()?;
    let status = std::process::Command::new(exe)
        .args([
            n.to_string(),
            copy.display().to_string(),
            "crash-child".into(),
        ])
        .status()?;
    println!("crash child exited: {status}");
    let copy_base = || StoreConfig::new(&copy).with_lifecycle_events(false);
    timed_open(
        "after a crash, full scan",
        copy_base().with_enable_checkpoint(false),
    )?;
    timed_open("after a crash (last checkpoint + tail)", copy_base())?;
    let _ = std::fs::remove_dir_all(&copy);
    if let Some(c) = ckpt {
        std::fs::write(dir.join("recovery.ckpt"), c)?;
    }
    Ok(())
}
