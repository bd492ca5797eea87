//! `batpak graph`: the causal graph as Graphviz DOT: one node per visible event, an edge from
//! each cause to its effect (dashed to a cause outside the store); with `--entity`, that
//! entity's chain (solid edges in clock order) plus the causes of its events.

use crate::open::{hex, open};
use batpak::prelude::*;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

pub fn run(dir: &Path, entity: Option<&str>, out: Option<&Path>) -> Result<ExitCode, String> {
    let store = open(dir)?;
    let dot = render(&store, entity);
    match out {
        Some(path) => std::fs::write(path, dot).map_err(|e| format!("{}: {e}", path.display()))?,
        None => print!("{dot}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn node_id(id: u128) -> String {
    format!("e{}", hex(id))
}

fn label(e: &IndexEntry) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "{}\\n{} #{}\\nkind {} seq {}",
        esc(e.coord.entity()),
        esc(e.coord.scope()),
        e.clock,
        e.kind,
        e.global_sequence
    )
}

/// The DOT text.
pub fn render(store: &Store<ReadOnly>, entity: Option<&str>) -> String {
    let events = match entity {
        Some(x) => store.stream(x),
        None => store.query(&Region::all()),
    };
    let mut dot =
        String::from("digraph batpak {\n  rankdir=LR;\n  node [shape=box, fontsize=10];\n");
    let mut drawn: BTreeSet<u128> = events.iter().map(|e| e.event_id).collect();
    for e in &events {
        let _ = writeln!(dot, "  {} [label=\"{}\"];", node_id(e.event_id), label(e));
    }
    if entity.is_some() {
        for pair in events.windows(2) {
            let _ = writeln!(
                dot,
                "  {} -> {} [color=gray40, label=\"chain\"];",
                node_id(pair[0].event_id),
                node_id(pair[1].event_id)
            );
        }
    }
    for e in &events {
        let Some(cause) = e.causation_id else {
            continue;
        };
        if drawn.insert(cause) {
            match store.entry(cause) {
                Some(c) => {
                    let _ = writeln!(
                        dot,
                        "  {} [label=\"{}\", style=dotted];",
                        node_id(cause),
                        label(&c)
                    );
                }
                None => {
                    let _ = writeln!(
                        dot,
                        "  {} [label=\"external\\n{}\", style=dashed];",
                        node_id(cause),
                        hex(cause)
                    );
                }
            }
        }
        let style = if store.entry(cause).is_some() {
            "solid"
        } else {
            "dashed"
        };
        let _ = writeln!(
            dot,
            "  {} -> {} [color=firebrick, style={style}];",
            node_id(cause),
            node_id(e.event_id)
        );
    }
    dot.push_str("}\n");
    dot
}
