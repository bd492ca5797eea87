//! INV-BOUNDED-DECODE: the frame decoder never panics and never allocates more than the
//! configured maximum frame size, whatever bytes it is given. A counting global allocator
//! measures the largest single allocation and the bytes live at the peak during decoding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::codec;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = TRACK.try_with(|t| {
            if t.get() {
                let _ = LIVE.try_with(|l| {
                    l.set(l.get() + layout.size());
                    let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
                });
            }
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = TRACK.try_with(|t| {
            if t.get() {
                let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(layout.size())));
            }
        });
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The segment salt the frames here are sealed with.
const SALT: u32 = 0x1234_5678;

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes allocated (peak live) while decoding `bytes`.
fn decode_peak(bytes: &[u8], max: u32) -> usize {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACK.with(|t| t.set(true));
    let r = codec::decode(bytes, max, SALT);
    let ok = r.is_ok();
    drop(r);
    TRACK.with(|t| t.set(false));
    let _ = ok;
    PEAK.with(|p| p.get())
}

#[test]
fn a_length_field_claiming_four_gigabytes_allocates_nothing() {
    let mut frame = vec![0u8; 64];
    frame[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    // Valid checks, so the length limit is what refuses it.
    codec::reseal(&mut frame, SALT);
    assert_eq!(decode_peak(&frame, 1 << 20), 0);
    assert!(matches!(
        codec::decode(&frame, 1 << 20, SALT),
        Err(codec::DecodeError::BadLength { .. })
    ));
}

#[test]
fn a_valid_frame_decodes_without_copying_its_payload() {
    use batpak::__testing::log::{EventRecord, Record, RecordBody, Unit};
    let payload = vec![9u8; 4096];
    let r = Record {
        seq: 5,
        body: RecordBody::Event(EventRecord {
            unit: Unit::None,
            event_id: 1,
            correlation_id: None,
            causation_id: None,
            timestamp_us: 0,
            clock: 1,
            kind: 0x1001,
            flags: 0,
            prev_hash: [0; 32],
            idempotency_key: None,
            entity: "e",
            scope: "s",
            payload: &payload,
        }),
    };
    let frame = codec::encode(&r, 1 << 20, SALT).unwrap();
    let peak = decode_peak(&frame, 1 << 20);
    assert!(
        peak < 1024,
        "decoding a 4 KiB payload allocated {peak} bytes"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn decoding_arbitrary_bytes_never_allocates_past_the_maximum(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        max in 16u32..2048,
    ) {
        let peak = decode_peak(&bytes, max);
        prop_assert!(peak <= max as usize, "peak {} > max {}", peak, max);
    }

    #[test]
    fn a_plausible_header_over_random_bytes_never_allocates_past_the_maximum(
        len in 0u32..10_000,
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        max in 16u32..4096,
    ) {
        let mut frame = len.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0; 8]);
        frame.extend_from_slice(&body);
        codec::reseal(&mut frame, SALT);
        let peak = decode_peak(&frame, max);
        prop_assert!(peak <= max as usize, "peak {} > max {}", peak, max);
    }
}

/// The witness: decoding `bytes` (and every prefix of it) neither panics nor allocates past
/// `max`; reported with the invariant's tag.
fn check_decode(bytes: &[u8], max: u32) -> Result<(), String> {
    for end in 0..=bytes.len() {
        let piece = &bytes[..end];
        let peak = std::panic::catch_unwind(|| decode_peak(piece, max))
            .map_err(|_| format!("INV-BOUNDED-DECODE: the decoder panicked on {end} bytes"))?;
        TRACK.with(|t| t.set(false));
        if peak > max as usize {
            return Err(format!(
                "INV-BOUNDED-DECODE: decoding {end} bytes allocated {peak} (maximum {max})"
            ));
        }
    }
    Ok(())
}

/// A valid frame and its every prefix (a torn write, a short read).
fn a_valid_frame() -> Vec<u8> {
    use batpak::__testing::log::{EventRecord, Record, RecordBody, Unit};
    let r = Record {
        seq: 1,
        body: RecordBody::Event(EventRecord {
            unit: Unit::None,
            event_id: 1,
            correlation_id: None,
            causation_id: None,
            timestamp_us: 0,
            clock: 1,
            kind: 0x1001,
            flags: 0,
            prev_hash: [0; 32],
            idempotency_key: None,
            entity: "e",
            scope: "s",
            payload: b"{}",
        }),
    };
    codec::encode(&r, 1 << 20, SALT).unwrap()
}

#[test]
fn every_prefix_of_a_valid_frame_decodes_without_panic_or_allocation() {
    check_decode(&a_valid_frame(), 1 << 20).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_decode_reads_past_end_is_caught_by_the_decode_witness() {
    use batpak::__testing::{seed_thread, Mutant};
    let frame = a_valid_frame();
    let _bug = seed_thread(Mutant::DecodeReadsPastEnd);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let err = check_decode(&frame, 1 << 20);
    std::panic::set_hook(prev);
    let err = err.expect_err("the seeded bug DecodeReadsPastEnd was not caught");
    assert!(err.starts_with("INV-BOUNDED-DECODE"), "reported as {err}");
}
