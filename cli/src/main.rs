//! `batpak`: look at a closed store or a snapshot without modifying it.
//!
//! Every command opens the directory with `Store::<ReadOnly>::open_read_only`: nothing is
//! created, cut or written, and a store a writer holds is refused (`StoreLocked`).
//!
//! - `batpak verify DIR`: frames, CRCs, sequences, entity hash chains and units (the store's
//!   own recovery, run in memory), then every visible event read back (CRC, id, payload) and
//!   its causation link. Exit status 0 = clean, 1 = problems (each named with its file and
//!   offset), 2 = the store could not be read (wrong path, locked, I/O).
//! - `batpak stats DIR [--json]`: counts, segments, bytes, kinds, the frontier.
//! - `batpak dump DIR [--entity E] [--scope S] [--kind K] [--from-seq A] [--to-seq B] [--dropped]`:
//!   events as JSON lines.
//! - `batpak graph DIR [--entity E] [--out FILE]`: the causal graph (or one entity's chain)
//!   as Graphviz DOT.

mod dump;
mod frames;
mod graph;
mod open;
mod progress;
mod stats;
mod verify;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "batpak",
    version,
    about = "Inspect a batpak store or snapshot without modifying it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check frames, CRCs, sequences, entity chains, units and causation links.
    Verify {
        /// The store's directory.
        dir: PathBuf,
        /// Count a torn tail (a crash artifact a writable open cuts) as a problem.
        #[arg(long)]
        strict: bool,
    },
    /// Counts, segments, bytes, kinds and the frontier.
    Stats {
        /// The store's directory.
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Events as JSON lines, in sequence order.
    Dump {
        /// The store's directory.
        dir: PathBuf,
        #[command(flatten)]
        filter: dump::Filter,
    },
    /// The causal graph (or one entity's chain) as Graphviz DOT.
    Graph {
        /// The store's directory.
        dir: PathBuf,
        /// Only this entity's chain (its events in order, with their causes).
        #[arg(long)]
        entity: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify { dir, strict } => verify::run(&dir, strict),
        Command::Stats { dir, json } => stats::run(&dir, json),
        Command::Dump { dir, filter } => dump::run(&dir, &filter),
        Command::Graph { dir, entity, out } => graph::run(&dir, entity.as_deref(), out.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("batpak: {e}");
            ExitCode::from(2)
        }
    }
}
