//! Models for batpak: the executable oracle, loom/shuttle models and crash-state enumerations.

pub mod conformance;
pub mod fuzz_harness;
pub mod oracle;
pub mod reference;
pub mod tla_value;
pub mod trace_check;
