//! Non-blocking writes: `submit` returns a ticket at once; many tickets in flight share the
//! writer's group commits (one write + one fsync per drained group). `try_submit` never
//! blocks and answers `Backpressure` (retryable) when the writer queue is at its threshold.
//! In the deferred durability mode an append is acknowledged before it is durable;
//! `wait_for_durable` blocks until it is (asking the writer for a flush), or its timeout.
//!
//! Run with `cargo run --example submit_pipeline`.

use batpak::prelude::*;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(dir.path()).with_writer_channel_capacity(1024))?;
    let kind = EventKind::custom(0x6, 1);

    let n = 5_000u32;
    let start = Instant::now();
    let mut tickets = Vec::with_capacity(n as usize);
    for i in 0..n {
        let coord = Coordinate::new(format!("sensor:{}", i % 10), "plant")?;
        tickets.push(store.submit(&coord, kind, &i)?);
    }
    let mut durable = 0;
    for t in tickets {
        if t.wait()?.durable {
            durable += 1;
        }
    }
    let el = start.elapsed();
    println!(
        "{n} pipelined durable appends in {:.3} s ({:.0}/s), {durable} acknowledged durable",
        el.as_secs_f64(),
        f64::from(n) / el.as_secs_f64()
    );

    // try_submit: a full queue is a retryable refusal, never a block.
    let coord = Coordinate::new("sensor:0", "plant")?;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..5_000u32 {
        match store.try_submit(&coord, kind, &i) {
            Ok(t) => accepted.push(t),
            Err(e) if e.is_retryable() => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "try_submit: {} accepted, {refused} refused with backpressure (pressure now {:?})",
        accepted.len(),
        store.writer_pressure()
    );
    for t in accepted {
        t.wait()?;
    }
    println!("frontier: {:?}", store.frontier());
    store.close()?;

    // Deferred durability: acknowledged once written, fsynced every 10,000 events or 10 s,
    // unless someone waits for a point.
    let lazy = Store::open(
        StoreConfig::new(dir.path().join("deferred"))
            .with_sync_every_n_events(10_000)
            .with_flush_interval(std::time::Duration::from_secs(10)),
    )?;
    let r = lazy.append(&coord, kind, &0u32)?;
    println!("deferred append acknowledged, durable: {}", r.durable);
    let start = Instant::now();
    lazy.wait_for_durable(&r, std::time::Duration::from_secs(5))?;
    println!(
        "wait_for_durable returned after {:.1} ms; durable frontier {}",
        start.elapsed().as_secs_f64() * 1e3,
        lazy.frontier().durable
    );
    // A point nobody writes: the wait gives up after its timeout.
    let never = HlcPoint {
        wall_ms: 0,
        global_sequence: lazy.frontier().written + 100,
    };
    match lazy.wait_for_durable(never, std::time::Duration::from_millis(100)) {
        Err(e) => println!("waiting for an unwritten point: {e}"),
        Ok(()) => println!("unexpected: an unwritten point is durable"),
    }
    lazy.close()?;
    Ok(())
}
