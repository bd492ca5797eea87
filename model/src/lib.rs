//! Models for batpak: the executable oracle, loom/shuttle models and crash-state enumerations.
//!
//! [`oracle`] is the Rust transcription of `spec/Store.tla`; [`conformance`] maps the real
//! store's log onto it and is the one "what is visible after recovery" reference
//! ([`conformance::expected_visible`]); [`trace_check`] checks the real store's TLA+-named
//! trace events with TLC.
//!
//! The crash checkers share one record type ([`record::LogRecord`], read from the disk by
//! [`record::scan_log`] without the store's recovery), one workload runner
//! ([`workload::Runner`]: a sequential client, what it was told, live checks) and one set of
//! checks ([`check`]): [`crash_states`] enumerates every crash image of small workloads,
//! [`sim`] is the deterministic multi-session simulator (many sessions, faults and crashes per
//! seed), and [`fuzz_harness`] backs the cargo-fuzz targets (its recovery target runs
//! fuzz-chosen simulator sessions). [`scenarios`] drives the real [`batpak::store::Store`] on a
//! [`batpak::__testing::env::SimDisk`] with a deterministic clock and id source. Every scenario
//! only uses `batpak::__testing::sync` for its own threads and locks, so the same function runs
//! on std threads (`cargo test`), under `--cfg loom` and under `--cfg shuttle` (see `model/tests/`).
//! `mutants` lists the seeded bugs each scenario is shown to catch; `schedules` reads the
//! saved shuttle schedules (both in the mutant build only: `--cfg batpak_mutant`).

pub mod check;
pub mod compaction;
pub mod conformance;
pub mod consumers;
pub mod crash_states;
pub mod fuzz_harness;
pub mod harness;
#[cfg(batpak_mutant)]
pub mod mutants;
pub mod oracle;
pub mod projections;
pub mod record;
pub mod scenarios;
#[cfg(batpak_mutant)]
pub mod schedules;
pub mod sim;
pub mod tla_value;
pub mod trace_check;
pub mod workload;

pub use scenarios::Scenario;

/// The store's seeded bugs: they exist only in the mutant build (`--cfg batpak_mutant`, which
/// every loom and shuttle build sets); see `batpak`'s `mutant` module.
#[cfg(batpak_mutant)]
pub use batpak::__testing::Mutant;

/// Outside the mutant build the store has no seeded bugs: only the real store runs.
#[cfg(not(batpak_mutant))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mutant {
    /// No seeded bug.
    #[default]
    None,
}

/// `cfg` with `mutant` seeded (outside the mutant build there is only [`Mutant::None`]).
pub fn seed(cfg: batpak::store::StoreConfig, mutant: Mutant) -> batpak::store::StoreConfig {
    #[cfg(batpak_mutant)]
    return cfg.with_mutant(mutant);
    #[cfg(not(batpak_mutant))]
    {
        let Mutant::None = mutant;
        cfg
    }
}
