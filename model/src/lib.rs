//! Models for batpak: the executable oracle, loom/shuttle models and crash-state enumerations.
//!
//! [`oracle`] is the Rust transcription of `spec/Store.tla`; [`conformance`] maps the real
//! store's log onto it for the crash-state enumeration; [`trace_check`] checks the real store's
//! TLA+-named trace events with TLC; [`fuzz_harness`] and [`reference`] back the cargo-fuzz
//! targets. [`scenarios`] drives the real [`batpak::store::Store`] on a
//! [`batpak::env::SimDisk`] with a deterministic clock and id source. Every scenario only uses
//! `batpak::sync` for its own threads and locks, so the same function runs on std threads
//! (`cargo test`), under `--cfg loom` and under `--cfg shuttle` (see `model/tests/`).
//! [`mutants`] lists the seeded bugs each scenario is shown to catch; [`schedules`] reads the
//! saved shuttle schedules.

pub mod conformance;
pub mod fuzz_harness;
pub mod harness;
pub mod mutants;
pub mod oracle;
pub mod reference;
pub mod scenarios;
pub mod schedules;
pub mod tla_value;
pub mod trace_check;

pub use scenarios::Scenario;
