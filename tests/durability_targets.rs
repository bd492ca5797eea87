//! Durability targets: `HlcPoint`, the three waits (`wait_for_durable`, `wait_for_visible`,
//! `wait_for_applied`), `DurabilityGate` on `append_with_options` and
//! `append_batch_with_options`, and `StoreError::WaitTimeout`. Every wait decides by the
//! target's sequence, never by its wall time (upstream compares wall time first and can return
//! before the sequence is durable), and the target's own sequence is included (INV-DURABLE).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};

type Seed = fn(StoreConfig) -> StoreConfig;

fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x6, 2);

/// Deferred durability whose own flush never fires within a test: only a wait's flush
/// request (or `sync()`) makes anything durable.
fn deferred(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .with_sync_every_n_events(1000)
        .with_flush_interval(Duration::from_secs(600))
}

fn coord() -> Coordinate {
    Coordinate::new("acct:1", "ledger").unwrap()
}

fn at(n: u64) -> HlcPoint {
    HlcPoint {
        wall_ms: 0,
        global_sequence: n,
    }
}

#[test]
fn hlc_point_orders_like_upstream_and_comes_from_receipts_and_entries() {
    let a = HlcPoint {
        wall_ms: 5,
        global_sequence: 9,
    };
    let b = HlcPoint {
        wall_ms: 6,
        global_sequence: 1,
    };
    assert!(a < b, "wall_ms orders first, as upstream");
    assert!(HlcPoint::ORIGIN <= a);
    assert_eq!(HlcPoint::default(), HlcPoint::ORIGIN);

    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let r = store.append(&coord(), KIND, &1u32).unwrap();
    let e = store.entry(r.event_id).unwrap();
    assert_eq!(e.point().global_sequence, r.sequence);
    assert_eq!(e.point().wall_ms, e.wall_ms);
    assert_eq!(HlcPoint::from(&r).global_sequence, r.sequence);
    store.close().unwrap();
}

/// The witness: a point whose sequence is written but not yet durable, and whose wall time is
/// below everything (0). `wait_for_durable` must return only once that very sequence is
/// durable (it asks the writer for a flush), whatever the wall time says.
fn wait_covers_the_target_sequence(seed: Seed) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(seed(deferred(tmp.path()))).unwrap();
    let a = store.append(&coord(), KIND, &1u32).unwrap();
    store.sync().unwrap();
    let b = store.append(&coord(), KIND, &2u32).unwrap();
    assert!(
        store.frontier().durable <= b.sequence,
        "b is not durable yet"
    );
    store
        .wait_for_durable(at(b.sequence), Duration::from_secs(5))
        .map_err(|e| format!("wait failed: {e}"))?;
    let durable = store.frontier().durable;
    if durable <= b.sequence {
        return Err(format!(
            "INV-DURABLE: wait_for_durable(sequence {}) returned Ok with the durable frontier at {durable} (a at {})",
            b.sequence, a.sequence
        ));
    }
    // A point far ahead in wall time but already durable returns at once.
    let start = Instant::now();
    store
        .wait_for_durable(
            HlcPoint {
                wall_ms: u64::MAX,
                global_sequence: a.sequence,
            },
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    store.close().unwrap();
    Ok(())
}

#[test]
fn wait_for_durable_decides_by_the_target_sequence_inclusive_never_by_wall_time() {
    wait_covers_the_target_sequence(real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_wait_point_exclusive_is_caught() {
    let err = wait_covers_the_target_sequence(|c| c.with_mutant(Mutant::WaitPointExclusive))
        .expect_err("the seeded bug WaitPointExclusive was not caught");
    assert!(err.starts_with("INV-DURABLE"), "reported as {err}");
}

#[test]
fn a_durable_gate_never_times_out_under_the_default_config() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    for i in 0..20u32 {
        let r = store
            .append_with_options(
                &coord(),
                KIND,
                &i,
                AppendOptions::new().with_gate(DurabilityGate {
                    kind: WatermarkKind::Durable,
                    timeout: Duration::ZERO,
                }),
            )
            .unwrap();
        assert!(store.frontier().durable > r.sequence);
    }
    store.close().unwrap();
}

#[test]
fn a_durable_gate_in_the_deferred_mode_asks_for_a_flush_instead_of_timing_out() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(deferred(tmp.path())).unwrap();
    let start = Instant::now();
    let r = store
        .append_with_options(
            &coord(),
            KIND,
            &1u32,
            AppendOptions::new().with_gate(DurabilityGate {
                kind: WatermarkKind::Durable,
                timeout: Duration::from_secs(5),
            }),
        )
        .unwrap();
    assert!(!r.durable, "the receipt itself was issued before the flush");
    assert!(store.frontier().durable > r.sequence);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    store.close().unwrap();
}

#[test]
fn a_gate_timeout_carries_the_committed_receipt_and_is_not_definite() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(deferred(tmp.path())).unwrap();
    let err = store
        .append_with_options(
            &coord(),
            KIND,
            &7u32,
            AppendOptions::new().with_gate(DurabilityGate {
                kind: WatermarkKind::Durable,
                timeout: Duration::ZERO,
            }),
        )
        .unwrap_err();
    let StoreError::WaitTimeout {
        watermark,
        target,
        waited_ms,
        committed: Some(receipt),
    } = &err
    else {
        panic!("expected a WaitTimeout with the receipt, got {err:?}");
    };
    assert_eq!(*watermark, WatermarkKind::Durable);
    assert_eq!(target.global_sequence, receipt.sequence);
    assert_eq!(*waited_ms, 0);
    assert!(!err.is_definite(), "the write committed: {err}");
    assert!(err.to_string().contains("committed"), "{err}");
    // The event was written and is readable; waiting again regains the guarantee.
    assert!(store.entry(receipt.event_id).is_some());
    store
        .wait_for_durable(&**receipt, Duration::from_secs(5))
        .unwrap();
    store.close().unwrap();
    let store = Store::open(deferred(tmp.path())).unwrap();
    assert_eq!(store.stream("acct:1").len(), 1);
    store.close().unwrap();
}

#[test]
fn wait_for_visible_and_applied_wait_for_a_point_another_thread_appends_later() {
    for kind in [WatermarkKind::Visible, WatermarkKind::Applied] {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(deferred(tmp.path())).unwrap();
        store.append(&coord(), KIND, &0u32).unwrap();
        let point = at(store.frontier().written);
        let start = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                store.append(&coord(), KIND, &1u32).unwrap();
            });
            let got = match kind {
                WatermarkKind::Visible => store.wait_for_visible(point, Duration::from_secs(3)),
                _ => store.wait_for_applied(point, Duration::from_secs(3)),
            };
            got.unwrap_or_else(|e| panic!("{kind}: {e}"));
        });
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(40), "{kind}: {waited:?}");
        assert!(store.frontier().visible > point.global_sequence);
        assert_eq!(store.stream("acct:1").len(), 2);
        // Visible, not durable: the visible wait asks for no flush.
        assert!(store.frontier().durable <= point.global_sequence);
        store.close().unwrap();
    }
}

#[test]
fn visible_and_applied_waits_for_a_point_never_written_answer_wait_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let point = at(store.frontier().written + 5);
    for kind in [WatermarkKind::Visible, WatermarkKind::Applied] {
        let start = Instant::now();
        let err = match kind {
            WatermarkKind::Visible => store.wait_for_visible(point, Duration::from_millis(100)),
            _ => store.wait_for_applied(point, Duration::from_millis(100)),
        }
        .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(
            matches!(&err, StoreError::WaitTimeout { watermark, target, waited_ms: 100, committed: None }
                if *watermark == kind && *target == point),
            "{err:?}"
        );
        assert!(err.is_definite());
    }
    store.close().unwrap();
}

#[test]
fn waiting_for_the_origin_returns_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path()).with_lifecycle_events(false)).unwrap();
    store
        .wait_for_durable(HlcPoint::ORIGIN, Duration::ZERO)
        .unwrap();
    store
        .wait_for_visible(HlcPoint::ORIGIN, Duration::ZERO)
        .unwrap();
    store
        .wait_for_applied(HlcPoint::ORIGIN, Duration::ZERO)
        .unwrap();
    store.close().unwrap();
    // Once an event is written, the origin names its sequence 0: no early return.
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(deferred(tmp.path()).with_lifecycle_events(false)).unwrap();
    let r = store.append(&coord(), KIND, &1u32).unwrap();
    assert_eq!(r.sequence, 0);
    assert_eq!(store.frontier().durable, 0);
    store
        .wait_for_durable(HlcPoint::ORIGIN, Duration::from_secs(5))
        .unwrap();
    assert!(store.frontier().durable > 0);
    store.close().unwrap();
}

#[test]
fn append_batch_with_options_gates_on_the_last_item() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(deferred(tmp.path())).unwrap();
    let items = |n: u32| {
        (0..n)
            .map(|i| {
                BatchAppendItem::new(coord(), KIND, &i, AppendOptions::new(), CausationRef::None)
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let rs = store
        .append_batch_with_options(
            items(3),
            AppendOptions::new().with_gate(DurabilityGate {
                kind: WatermarkKind::Durable,
                timeout: Duration::from_secs(5),
            }),
        )
        .unwrap();
    assert_eq!(rs.len(), 3);
    assert!(store.frontier().durable > rs[2].sequence);

    // Without a gate it is append_batch.
    let rs = store
        .append_batch_with_options(items(2), AppendOptions::new())
        .unwrap();
    assert_eq!(rs.len(), 2);

    // A gate that runs out of time names the last item's receipt.
    let err = store
        .append_batch_with_options(
            items(2),
            AppendOptions::new().with_gate(DurabilityGate {
                kind: WatermarkKind::Durable,
                timeout: Duration::ZERO,
            }),
        )
        .unwrap_err();
    match &err {
        StoreError::WaitTimeout {
            committed: Some(r), ..
        } => assert_eq!(store.entry(r.event_id).unwrap().global_sequence, r.sequence),
        other => panic!("{other:?}"),
    }
    assert!(!err.is_definite());

    // Options other than the gate belong to the items: refused, nothing written.
    let before = store.stats().event_count;
    let err = store
        .append_batch_with_options(items(2), AppendOptions::new().with_idempotency(9))
        .unwrap_err();
    assert!(matches!(err, StoreError::Configuration(_)), "{err:?}");
    // A gate on an item cannot be honoured: refused with the item's index.
    let mut gated = items(3);
    gated[1] = BatchAppendItem::new(
        coord(),
        KIND,
        &1u32,
        AppendOptions::new().with_gate(DurabilityGate {
            kind: WatermarkKind::Visible,
            timeout: Duration::from_secs(1),
        }),
        CausationRef::None,
    )
    .unwrap();
    let err = store.append_batch(gated).unwrap_err();
    assert!(
        matches!(err, StoreError::BatchFailed { item_index: 1, .. }),
        "{err:?}"
    );
    assert!(err.is_definite());
    assert_eq!(store.stats().event_count, before);
    store.close().unwrap();
}

#[test]
fn a_gate_on_a_write_that_cannot_wait_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(tmp.path())).unwrap();
    let gated = AppendOptions::new().with_gate(DurabilityGate {
        kind: WatermarkKind::Durable,
        timeout: Duration::from_secs(1),
    });
    let err = store
        .submit_with_options(&coord(), KIND, &1u32, gated)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Configuration(m) if m.contains("wait_for_durable")),
        "{err}"
    );
    let fence = store.begin_visibility_fence().unwrap();
    let err = fence
        .submit_with_options(&coord(), KIND, &1u32, gated)
        .unwrap_err();
    assert!(matches!(err, StoreError::Configuration(_)), "{err}");
    fence.commit().unwrap();
    assert!(store.stream("acct:1").is_empty());
    store.close().unwrap();
}
