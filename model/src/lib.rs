//! Models for batpak: the executable oracle, loom/shuttle models and crash-state enumerations.
//!
//! [`scenarios`] drives the real [`batpak::store::Store`] on a [`batpak::env::SimDisk`] with a
//! deterministic clock and id source. Every scenario only uses `batpak::sync` for its own
//! threads and locks, so the same function runs on std threads (`cargo test`), under
//! `--cfg loom` and under `--cfg shuttle` (see `model/tests/`). [`mutants`] lists the seeded
//! bugs each scenario is shown to catch; [`schedules`] reads the saved shuttle schedules.

pub mod harness;
pub mod mutants;
pub mod scenarios;
pub mod schedules;

pub use scenarios::Scenario;
