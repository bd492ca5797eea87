//! Fuzz-chosen simulator sessions, then a workload, a crash image, damage and recovery, judged by
//! the oracle: see `batpak_model::fuzz_harness::recovery`.
#![no_main]

use batpak_model::fuzz_harness::{recovery, RecoveryInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: RecoveryInput| {
    recovery(input);
});
