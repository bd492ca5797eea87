//! Raw bytes into the frame decoder: see `batpak_model::fuzz_harness::frame_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    batpak_model::fuzz_harness::frame_decode(data);
});
