//! Models for batpak: the executable oracle, loom/shuttle models and crash-state enumerations.

pub mod oracle;
pub mod tla_value;
pub mod trace_check;
