//! Models for batpak: the executable oracle, loom/shuttle models and crash-state enumerations.
//!
//! [`oracle`] is the Rust transcription of `spec/Store.tla`; [`conformance`] maps the real
//! store's log onto it for the crash-state enumeration; [`trace_check`] checks the real store's
//! TLA+-named trace events with TLC; [`fuzz_harness`] and [`reference`](mod@reference) back the cargo-fuzz
//! targets. [`scenarios`] drives the real [`batpak::store::Store`] on a
//! [`batpak::__testing::env::SimDisk`] with a deterministic clock and id source. Every scenario only uses
//! `batpak::__testing::sync` for its own threads and locks, so the same function runs on std threads
//! (`cargo test`), under `--cfg loom` and under `--cfg shuttle` (see `model/tests/`).
//! `mutants` lists the seeded bugs each scenario is shown to catch; `schedules` reads the
//! saved shuttle schedules (both in the mutant build only: `--cfg batpak_mutant`).

pub mod conformance;
pub mod fuzz_harness;
pub mod harness;
#[cfg(batpak_mutant)]
pub mod mutants;
pub mod oracle;
pub mod reference;
pub mod scenarios;
#[cfg(batpak_mutant)]
pub mod schedules;
pub mod tla_value;
pub mod trace_check;

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
