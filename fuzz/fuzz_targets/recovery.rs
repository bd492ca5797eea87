//! Fuzz-chosen simulator sessions, then a workload, a crash image, damage and recovery, judged by
//! the oracle, and the image opened with a fuzz-chosen recovery checkpoint against the open
//! without one: see `batpak_model::fuzz_harness::recovery`.
//!
//! In the mutant build, `BATPAK_FUZZ_MUTANT` picks a seeded bug to run with (see
//! `fuzz_harness::fuzz_mutant`).
#![no_main]

use batpak_model::fuzz_harness::{fuzz_mutant, recovery_with, RecoveryInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: RecoveryInput| {
    recovery_with(input, fuzz_mutant());
});
