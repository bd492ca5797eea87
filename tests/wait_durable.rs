//! `wait_for_durable` blocks until the durable frontier covers the point or the timeout
//! elapses, in both durability modes: a point written later by another thread is waited for
//! (asking for a flush in the deferred mode), a point that never arrives answers `WaitTimeout`
//! after about its timeout, and a writer that dies while someone waits answers
//! `WriterCrashed` at once (INV-NO-HANG).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a test configures the store's seeded bug: [`real`] for the real store; the mutant
/// witnesses (mutant build only, `--cfg batpak_mutant`) seed one with `with_mutant`.
type Seed = fn(StoreConfig) -> StoreConfig;

/// The real store: no seeded bug.
fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x6, 1);

fn cfg(dir: &Path, deferred: bool) -> StoreConfig {
    let c = StoreConfig::new(dir);
    if deferred {
        // A flush timer that never fires within the test: only the wait's own flush request
        // can make the point durable.
        c.with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_secs(600))
    } else {
        c
    }
}

fn coord() -> Coordinate {
    Coordinate::new("w", "s").unwrap()
}

/// The point of the event at sequence `n` (the waits read only the sequence).
fn at(n: u64) -> HlcPoint {
    HlcPoint {
        wall_ms: 0,
        global_sequence: n,
    }
}

#[test]
fn wait_for_durable_waits_for_a_point_another_thread_appends_later() {
    for deferred in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(cfg(tmp.path(), deferred)).unwrap();
        store.append(&coord(), KIND, &0u32).unwrap();
        // The next event takes sequence `written`.
        let point = at(store.frontier().written);
        let start = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                store.append(&coord(), KIND, &1u32).unwrap();
            });
            store
                .wait_for_durable(point, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("deferred={deferred}: {e} after {:?}", start.elapsed()));
        });
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(40),
            "deferred={deferred}: returned after {waited:?}, before the point was written"
        );
        assert!(
            waited < Duration::from_secs(3),
            "deferred={deferred}: {waited:?}"
        );
        assert!(store.frontier().durable > point.global_sequence);
        store.close().unwrap();
    }
}

#[test]
fn wait_for_durable_of_a_point_that_never_arrives_answers_timeout_after_its_timeout() {
    for deferred in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(cfg(tmp.path(), deferred)).unwrap();
        let r = store.append(&coord(), KIND, &0u32).unwrap();
        let point = at(store.frontier().written + 10);
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        let err = store.wait_for_durable(point, timeout).unwrap_err();
        let waited = start.elapsed();
        assert!(
            matches!(
                err,
                StoreError::WaitTimeout {
                    watermark: WatermarkKind::Durable,
                    committed: None,
                    ..
                }
            ) && err.is_definite(),
            "deferred={deferred}: {err}"
        );
        assert!(
            waited >= timeout,
            "deferred={deferred}: gave up after {waited:?}, before the {timeout:?} timeout"
        );
        assert!(
            waited < Duration::from_secs(3),
            "deferred={deferred}: {waited:?}"
        );
        // Meanwhile, what was written was made durable (the wait asked for a flush).
        assert!(store.frontier().durable > r.sequence, "deferred={deferred}");
        store.close().unwrap();
    }
}

/// The witness for INV-NO-HANG in `wait_for_durable`: another thread kills the writer 50 ms
/// into a wait with a 3 s timeout; the wait must answer `WriterCrashed` well before its
/// timeout, and so must a wait started afterwards.
fn writer_dies_while_waiting(deferred: bool, seed: Seed) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let die = Arc::new(AtomicBool::new(false));
    let clock = {
        let die = Arc::clone(&die);
        move || {
            // The writer reads the clock for every event: a panic there kills its thread.
            assert!(!die.load(Ordering::SeqCst), "seeded writer death");
            1_700_000_000_000_000_i64
        }
    };
    let store = Store::open(seed(
        cfg(tmp.path(), deferred).with_clock(Some(Arc::new(clock))),
    ))
    .unwrap();
    store.append(&coord(), KIND, &0u32).unwrap();
    let point = at(store.frontier().written);
    let timeout = Duration::from_secs(3);
    let start = Instant::now();
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            die.store(true, Ordering::SeqCst);
            let r = store.append(&coord(), KIND, &1u32);
            assert!(matches!(r, Err(StoreError::WriterCrashed)), "{r:?}");
        });
        store.wait_for_durable(point, timeout)
    });
    let waited = start.elapsed();
    if !matches!(got, Err(StoreError::WriterCrashed)) || waited > Duration::from_secs(2) {
        return Err(format!(
            "INV-NO-HANG: the writer died 50 ms into the wait; the wait answered {got:?} after {waited:?} (deferred={deferred})"
        ));
    }
    assert!(waited >= Duration::from_millis(40), "{waited:?}");
    // And a later wait answers at once.
    let start = Instant::now();
    let got = store.wait_for_durable(point, timeout);
    let waited = start.elapsed();
    if !matches!(got, Err(StoreError::WriterCrashed)) || waited > Duration::from_secs(1) {
        return Err(format!(
            "INV-NO-HANG: a wait on a dead writer answered {got:?} after {waited:?} (deferred={deferred})"
        ));
    }
    drop(store);
    Ok(())
}

#[test]
fn wait_for_durable_answers_writer_crashed_when_the_writer_dies_while_waiting() {
    for deferred in [false, true] {
        writer_dies_while_waiting(deferred, real).unwrap();
    }
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_wait_ignores_writer_exit_is_caught() {
    let err = writer_dies_while_waiting(true, |c| c.with_mutant(Mutant::WaitIgnoresWriterExit))
        .expect_err("the seeded bug WaitIgnoresWriterExit was not caught");
    assert!(err.starts_with("INV-NO-HANG"), "reported as {err}");
}
