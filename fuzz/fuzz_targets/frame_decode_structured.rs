//! A valid frame, one corruption: see `batpak_model::fuzz_harness::frame_decode_structured`.
#![no_main]

use batpak_model::fuzz_harness::{frame_decode_structured, StructuredFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: StructuredFrame| {
    frame_decode_structured(input);
});
