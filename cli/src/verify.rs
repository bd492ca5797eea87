//! `batpak verify`: the store's own recovery run in memory (frames, CRCs, sequences, entity
//! hash chains, units; every hash computed from the bytes, the recovery checkpoint unused),
//! then every visible event read back and its causation link checked.

use crate::open::{hex, open_full_scan, segment_file};
use crate::progress::Progress;
use batpak::prelude::*;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// One finding: where and what.
struct Finding {
    file: std::path::PathBuf,
    offset: u64,
    what: String,
}

pub fn run(dir: &Path, strict: bool) -> Result<ExitCode, String> {
    let started = Instant::now();
    println!("verifying {}", dir.display());
    // Every hash computed from the bytes: the recovery checkpoint's saved ones are not used.
    let store = match open_full_scan(dir) {
        Ok(s) => s,
        Err(e) => return corrupt_at_open(dir, e),
    };
    let report = store.recovery_report().clone();
    println!(
        "  log: {} segment(s), {} record(s); frames, CRCs, sequences, entity chains and units: ok",
        report.segments, report.records
    );
    let dropped = crate::frames::dropped(dir)?;
    if !dropped.is_empty() {
        let n: u64 = dropped.iter().map(|(a, b)| b - a).sum();
        println!(
            "  compaction: {n} sequence(s) removed in {} range(s) (Dropped records); the rest keep their sequences",
            dropped.len()
        );
    }
    let mut problems: Vec<Finding> = Vec::new();
    let mut warnings: Vec<Finding> = Vec::new();
    if let Some(t) = &report.torn_tail {
        let f = Finding {
            file: t.file.clone(),
            offset: t.offset,
            what: format!("torn tail ({}): ignored; a writable open cuts it", t.reason),
        };
        if strict {
            problems.push(f);
        } else {
            warnings.push(f);
        }
    }
    let entries = store.query(&Region::all());
    let mut progress = Progress::new("verify", entries.len());
    for (i, e) in entries.iter().enumerate() {
        check_event(&store, dir, e, &mut problems);
        progress.tick(i + 1);
    }
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    for w in &warnings {
        println!(
            "  warning: {} offset {}: {}",
            w.file.display(),
            w.offset,
            w.what
        );
    }
    for p in &problems {
        println!(
            "  problem: {} offset {}: {}",
            p.file.display(),
            p.offset,
            p.what
        );
    }
    let rate = entries.len() as f64 / elapsed.max(1e-9);
    println!(
        "  {} event(s) checked in {elapsed:.3} s ({rate:.0} events/s)",
        entries.len()
    );
    if problems.is_empty() {
        println!("result: ok");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("result: {} problem(s)", problems.len());
        Ok(ExitCode::from(1))
    }
}

/// A store recovery refuses: corruption is a finding (exit 1, with its file and offset);
/// anything else (wrong path, locked, I/O) means it could not be checked (exit 2).
fn corrupt_at_open(dir: &Path, message: String) -> Result<ExitCode, String> {
    match Store::<ReadOnly>::open_read_only(StoreConfig::new(dir).with_enable_checkpoint(false)) {
        Err(StoreError::CorruptSegment { detail, .. }) => {
            let (file, offset) = (detail.file().unwrap_or(dir), detail.offset().unwrap_or(0));
            println!("  problem: {} offset {offset}: {detail}", file.display());
            // Recovery stops there; a frame walk names every other damaged place.
            let mut count = 1;
            for d in crate::frames::walk(dir)? {
                if d.file == file && d.offset == offset {
                    continue;
                }
                println!(
                    "  problem: {} offset {}: {}",
                    d.file.display(),
                    d.offset,
                    d.what
                );
                count += 1;
            }
            println!("result: {count} problem(s)");
            Ok(ExitCode::from(1))
        }
        _ => Err(message),
    }
}

/// Reads the event back (frame CRC and id, payload as MessagePack) and checks its cause.
fn check_event(store: &Store<ReadOnly>, dir: &Path, e: &IndexEntry, out: &mut Vec<Finding>) {
    let at = |what: String| Finding {
        file: segment_file(dir, e.disk_pos.segment_id),
        offset: e.disk_pos.offset,
        what,
    };
    match store.get(e.event_id) {
        Ok(_) => {}
        Err(err) => {
            out.push(at(format!(
                "event {} (seq {}): {err}",
                hex(e.event_id),
                e.global_sequence
            )));
            return;
        }
    }
    if let Some(cause) = e.causation_id {
        match store.entry(cause) {
            Some(c) if c.global_sequence >= e.global_sequence => out.push(at(format!(
                "event {} (seq {}) names cause {} at the later seq {}",
                hex(e.event_id),
                e.global_sequence,
                hex(cause),
                c.global_sequence
            ))),
            // A cause outside the store is allowed (`allow_external_causes`); hidden causes
            // (a cancelled fence) cannot be named by a visible effect.
            _ => {}
        }
    }
}
