//! `batpak dump`: events as JSON lines, filtered.

use crate::open::{hex, open};
use batpak::prelude::*;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Which events to dump (all given filters must match).
#[derive(clap::Args, Debug)]
pub struct Filter {
    /// Only this entity.
    #[arg(long)]
    entity: Option<String>,
    /// Only this scope.
    #[arg(long)]
    scope: Option<String>,
    /// Only this kind (raw value, decimal or 0x hex).
    #[arg(long, value_parser = parse_kind)]
    kind: Option<u16>,
    /// From this global sequence on (inclusive).
    #[arg(long)]
    from_seq: Option<u64>,
    /// Up to this global sequence (inclusive).
    #[arg(long)]
    to_seq: Option<u64>,
    /// Also print the sequence ranges compaction removed, as `{"dropped": {"from", "to"}}`
    /// lines in sequence order (`to` exclusive).
    #[arg(long)]
    dropped: bool,
}

fn parse_kind(s: &str) -> Result<u16, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("kind {s:?}: {e} (a raw u16, decimal or 0x hex)"))
}

impl Filter {
    fn matches(&self, e: &IndexEntry) -> bool {
        self.entity.as_deref().is_none_or(|x| e.coord.entity() == x)
            && self.scope.as_deref().is_none_or(|x| e.coord.scope() == x)
            && self.kind.is_none_or(|k| e.kind.as_raw() == k)
            && self.from_seq.is_none_or(|s| e.global_sequence >= s)
            && self.to_seq.is_none_or(|s| e.global_sequence <= s)
    }
}

/// One event as a JSON object.
pub fn event_json(store: &Store<ReadOnly>, e: &IndexEntry) -> serde_json::Value {
    let payload = match store.get(e.event_id) {
        Ok(ev) => ev.event.payload,
        Err(err) => serde_json::json!({ "error": err.to_string() }),
    };
    serde_json::json!({
        "seq": e.global_sequence,
        "event_id": hex(e.event_id),
        "entity": e.coord.entity(),
        "scope": e.coord.scope(),
        "kind": e.kind.to_string(),
        "wall_ms": e.wall_ms,
        "clock": e.clock,
        "correlation_id": hex(e.correlation_id),
        "causation_id": e.causation_id.map(hex),
        "payload": payload,
    })
}

pub fn run(dir: &Path, filter: &Filter) -> Result<ExitCode, String> {
    let store = open(dir)?;
    let entries = match &filter.entity {
        Some(entity) => store.stream(entity),
        None => store.query(&Region::all()),
    };
    let mut ranges = if filter.dropped {
        crate::frames::dropped(dir)?
    } else {
        Vec::new()
    };
    ranges.retain(|&(from, to)| {
        filter.from_seq.is_none_or(|s| to > s) && filter.to_seq.is_none_or(|s| from <= s)
    });
    let mut ranges = ranges.into_iter().peekable();
    let range_json =
        |(from, to): (u64, u64)| serde_json::json!({ "dropped": { "from": from, "to": to } });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for e in entries.iter().filter(|e| filter.matches(e)) {
        while let Some(r) = ranges.next_if(|r| r.0 < e.global_sequence) {
            if !write_line(&mut out, &range_json(r))? {
                return Ok(ExitCode::SUCCESS);
            }
        }
        if !write_line(&mut out, &event_json(&store, e))? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    for r in ranges {
        if !write_line(&mut out, &range_json(r))? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    out.flush().map_err(|e| format!("writing the dump: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Writes one JSON line; `Ok(false)` when the reader went away (a closed pipe, `| head`, ends
/// the dump quietly).
fn write_line(out: &mut impl Write, line: &serde_json::Value) -> Result<bool, String> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(format!("writing the dump: {err}")),
    }
}
