//! `batpak stats`: what the store holds.

use crate::open::open;
use batpak::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

pub fn run(dir: &Path, json: bool) -> Result<ExitCode, String> {
    let store = open(dir)?;
    let stats = store.stats();
    let report = store.recovery_report();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for e in store.query(&Region::all()) {
        *kinds.entry(e.kind.to_string()).or_default() += 1;
    }
    let (mut segments, mut bytes) = (0u64, 0u64);
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".seg") {
            segments += 1;
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    let dropped = crate::frames::dropped(dir)?;
    let dropped_seqs: u64 = dropped.iter().map(|(a, b)| b - a).sum();
    let value = serde_json::json!({
        "dir": dir.display().to_string(),
        "events": stats.event_count,
        "entities": stats.entity_count,
        "scopes": stats.scope_count,
        "records": report.records,
        "next_sequence": report.next_seq,
        "segments": segments,
        "segment_bytes": bytes,
        "torn_tail": report.torn_tail.as_ref().map(|t| serde_json::json!({
            "file": t.file.display().to_string(), "offset": t.offset
        })),
        "dropped_ranges": dropped.len(),
        "dropped_sequences": dropped_seqs,
        "kinds": kinds,
    });
    if json {
        println!("{value}");
    } else {
        println!("store {}", dir.display());
        println!("  events:    {}", stats.event_count);
        println!("  entities:  {}", stats.entity_count);
        println!("  scopes:    {}", stats.scope_count);
        println!(
            "  records:   {} (next sequence {})",
            report.records, report.next_seq
        );
        println!("  segments:  {segments} ({bytes} bytes)");
        if !dropped.is_empty() {
            println!(
                "  compacted: {dropped_seqs} sequence(s) removed in {} range(s)",
                dropped.len()
            );
        }
        if let Some(t) = &report.torn_tail {
            println!("  torn tail: {} offset {}", t.file.display(), t.offset);
        }
        for (k, n) in &kinds {
            println!("  kind {k}: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
