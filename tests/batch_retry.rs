//! A batch whose items carry idempotency keys, retried identically (the client lost the reply
//! to a crash, a timeout or `OutcomeUnknown`), is answered with the original receipts and
//! writes nothing (INV-IDEMPOTENT): after it was acknowledged, across a reopen, while the
//! original is still pending in the same writer group or in an open fence, and through the
//! outbox. A partial or mixed retry is a definite, explained `IdempotencyConflict`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::env::{Clock, ManualClock};
use batpak::prelude::*;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

/// How a test configures the store's seeded bug: [`real`] for the real store; the mutant
/// witnesses (mutant build only, `--cfg batpak_mutant`) seed one with `with_mutant`.
type Seed = fn(StoreConfig) -> StoreConfig;

/// The real store: no seeded bug.
fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x5, 1);
const OTHER_KIND: EventKind = EventKind::custom(0x5, 2);

fn item(entity: &str, kind: EventKind, payload: u64, key: Option<u128>) -> BatchAppendItem {
    let mut opts = AppendOptions::default();
    if let Some(k) = key {
        opts = opts.with_idempotency(k);
    }
    BatchAppendItem::new(
        Coordinate::new(entity, "retry").unwrap(),
        kind,
        &payload,
        opts,
        CausationRef::None,
    )
    .unwrap()
}

/// Three keyed items over two entities (the second caused by the first).
fn batch(keys: [u128; 3]) -> Vec<BatchAppendItem> {
    let mut v = vec![
        item("order:1", KIND, 10, Some(keys[0])),
        item("order:2", KIND, 20, Some(keys[1])),
        item("order:1", KIND, 30, Some(keys[2])),
    ];
    v[1] = BatchAppendItem::new(
        Coordinate::new("order:2", "retry").unwrap(),
        KIND,
        &20u64,
        AppendOptions::default().with_idempotency(keys[1]),
        CausationRef::PriorItem(0),
    )
    .unwrap();
    v
}

const KEYS: [u128; 3] = [0xA1, 0xA2, 0xA3];

fn open(dir: &Path) -> Store {
    Store::open(StoreConfig::new(dir).with_lifecycle_events(false)).unwrap()
}

fn same_receipts(a: &[AppendReceipt], b: &[AppendReceipt]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.event_id, y.event_id);
        assert_eq!(x.sequence, y.sequence);
        assert_eq!(x.clock, y.clock);
        assert_eq!(x.content_hash, y.content_hash);
        assert_eq!(x.disk_pos, y.disk_pos);
    }
}

/// The witness for INV-IDEMPOTENT over batches: an acknowledged keyed batch retried
/// identically (by `append_batch`, by `submit_batch`, and after a reopen) answers the original
/// receipts and writes nothing.
fn identical_retry(dir: &Path, seed: Seed) -> Result<(), String> {
    let open = || Store::open(seed(StoreConfig::new(dir).with_lifecycle_events(false))).unwrap();
    let check = |store: &Store,
                 what: &str,
                 first: &[AppendReceipt],
                 again: Result<Vec<AppendReceipt>, StoreError>,
                 written: u64| {
        let again = again.map_err(|e| format!("INV-IDEMPOTENT: {what} refused: {e}"))?;
        let same = first.len() == again.len()
            && first.iter().zip(&again).all(|(x, y)| {
                (x.event_id, x.sequence, x.clock, x.content_hash, x.disk_pos)
                    == (y.event_id, y.sequence, y.clock, y.content_hash, y.disk_pos)
            });
        if !same {
            return Err(format!(
                "INV-IDEMPOTENT: {what} answered other receipts than the original"
            ));
        }
        if store.frontier().written != written || store.stats().event_count != 3 {
            return Err(format!("INV-IDEMPOTENT: {what} wrote something"));
        }
        Ok(())
    };
    let store = open();
    let first = store.append_batch(batch(KEYS)).unwrap();
    let written = store.frontier().written;
    check(
        &store,
        "a retry",
        &first,
        store.append_batch(batch(KEYS)),
        written,
    )?;
    let ticket = store.submit_batch(batch(KEYS)).unwrap();
    check(&store, "a submitted retry", &first, ticket.wait(), written)?;
    store.close().unwrap();

    let store = open();
    let written = store.frontier().written;
    check(
        &store,
        "a retry after reopen",
        &first,
        store.append_batch(batch(KEYS)),
        written,
    )?;
    assert_eq!(store.stream("order:1").len(), 2);
    // One item retried alone still answers that item's receipt (INV-IDEMPOTENT per key).
    let one = store
        .append_with_options(
            &Coordinate::new("order:2", "retry").unwrap(),
            KIND,
            &20u64,
            AppendOptions::default().with_idempotency(KEYS[1]),
        )
        .unwrap();
    assert_eq!(one.event_id, first[1].event_id);
    store.close().unwrap();
    Ok(())
}

#[test]
fn an_identical_retry_of_an_acknowledged_batch_returns_the_original_receipts_even_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    identical_retry(tmp.path(), real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_batch_retry_writes_again_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let err = identical_retry(tmp.path(), |c| c.with_mutant(Mutant::BatchRetryWritesAgain))
        .expect_err("the seeded bug BatchRetryWritesAgain was not caught");
    assert!(err.starts_with("INV-IDEMPOTENT"), "reported as {err}");
}

#[test]
fn an_identical_outbox_flush_retry_returns_the_original_receipts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let flush = |store: &Store| {
        let mut ob = store.outbox();
        for it in batch(KEYS) {
            ob.push_item(it);
        }
        ob.flush()
    };
    let first = flush(&store).unwrap();
    let again = flush(&store).unwrap();
    same_receipts(&first, &again);
    assert_eq!(store.stats().event_count, 3);
    store.close().unwrap();
}

/// A clock that, once armed, holds the writer inside its next reading until released.
#[derive(Debug, Default)]
struct StallClock {
    inner: ManualClock,
    state: Mutex<(bool, bool)>, // (armed, stalled)
    cv: Condvar,
}

impl Clock for StallClock {
    fn now_us(&self) -> i64 {
        let mut s = self.state.lock().unwrap();
        if s.0 {
            s.1 = true;
            self.cv.notify_all();
            while s.0 {
                s = self.cv.wait(s).unwrap();
            }
            s.1 = false;
        }
        drop(s);
        self.inner.now_us()
    }
}

impl StallClock {
    fn arm(&self) {
        self.state.lock().unwrap().0 = true;
    }
    fn wait_stalled(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.1 {
            s = self.cv.wait(s).unwrap();
        }
    }
    fn release(&self) {
        self.state.lock().unwrap().0 = false;
        self.cv.notify_all();
    }
}

#[test]
fn a_retry_queued_behind_its_still_pending_original_in_the_same_group_gets_the_same_receipts() {
    for deferred in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(StallClock {
            inner: ManualClock::new(1_700_000_000_000_000),
            ..StallClock::default()
        });
        let mut cfg = StoreConfig::new(tmp.path())
            .with_lifecycle_events(false)
            .with_clock_source(clock.clone());
        if deferred {
            cfg = cfg.with_sync_every_n_events(1000);
        }
        let store = Store::open(cfg).unwrap();
        // Hold the writer inside an append, queue the batch and its retry behind it: the
        // writer then takes both in one group, the original still unpublished.
        clock.arm();
        let blocker = store
            .submit(&Coordinate::new("blocker", "retry").unwrap(), KIND, &0u64)
            .unwrap();
        clock.wait_stalled();
        let t1 = store.submit_batch(batch(KEYS)).unwrap();
        let t2 = store.submit_batch(batch(KEYS)).unwrap();
        clock.release();
        blocker.wait().unwrap();
        let (r1, r2) = (t1.wait().unwrap(), t2.wait().unwrap());
        same_receipts(&r1, &r2);
        assert_eq!(store.stats().event_count, 4, "deferred={deferred}");
        store.close().unwrap();
        let store = open(tmp.path());
        assert_eq!(store.stats().event_count, 4);
        store.close().unwrap();
    }
}

#[test]
fn a_retry_inside_the_open_fence_shares_the_original_fate() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    // Committed: both answer the same receipts at commit.
    let fence = store.begin_visibility_fence().unwrap();
    let t1 = fence.submit_batch(batch(KEYS)).unwrap();
    let t2 = fence.submit_batch(batch(KEYS)).unwrap();
    // The fenced outbox retried: answered once staged, with the same receipts.
    let staged = {
        let mut ob = fence.outbox();
        for it in batch(KEYS) {
            ob.push_item(it);
        }
        ob.flush().unwrap()
    };
    assert!(
        t2.try_check().is_none(),
        "a fenced retry answered before commit"
    );
    fence.commit().unwrap();
    let (r1, r2) = (t1.wait().unwrap(), t2.wait().unwrap());
    same_receipts(&r1, &r2);
    same_receipts(&r1, &staged);
    assert_eq!(store.stats().event_count, 3);

    // Cancelled: both are cancelled, and the keys are free again afterwards.
    let keys = [0xB1, 0xB2, 0xB3];
    let fence = store.begin_visibility_fence().unwrap();
    let t1 = fence.submit_batch(batch(keys)).unwrap();
    let t2 = fence.submit_batch(batch(keys)).unwrap();
    fence.cancel().unwrap();
    assert!(matches!(
        t1.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    assert!(matches!(
        t2.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    let fresh = store.append_batch(batch(keys)).unwrap();
    assert_ne!(fresh[0].event_id, r1[0].event_id);
    assert_eq!(store.stats().event_count, 6);

    // An acknowledged batch retried inside a later fence: answered at once (the original is
    // visible already), even if that fence is then cancelled.
    let fence = store.begin_visibility_fence().unwrap();
    let ticket = fence.submit_batch(batch(keys)).unwrap();
    // Polled: a blocking wait on the fence holder's own thread is refused while it is open.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let again = loop {
        if let Some(r) = ticket.try_check() {
            break r.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the retry was not answered before commit"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    same_receipts(&fresh, &again);
    fence.cancel().unwrap();
    assert_eq!(store.stats().event_count, 6);
    store.close().unwrap();
}

/// Runs a refused retry: a definite `BatchFailed { Validation, IdempotencyConflict }` at
/// `index`, whose detail contains `needle`, with nothing written.
fn refused(store: &Store, items: Vec<BatchAppendItem>, index: usize, needle: &str) {
    let before = store.frontier();
    let count = store.stats().event_count;
    let err = store.append_batch(items).unwrap_err();
    assert!(err.is_definite(), "{err}");
    match &err {
        StoreError::BatchFailed {
            item_index,
            stage: BatchStage::Validation,
            source,
        } => {
            assert_eq!(*item_index, index, "{err}");
            match &**source {
                StoreError::IdempotencyConflict { detail, .. } => {
                    assert!(detail.contains(needle), "{detail:?} lacks {needle:?}")
                }
                other => panic!("expected IdempotencyConflict, got {other}"),
            }
        }
        other => panic!("expected BatchFailed at validation, got {other}"),
    }
    assert_eq!(store.frontier(), before, "a refused retry wrote something");
    assert_eq!(store.stats().event_count, count);
}

#[test]
fn a_partial_or_mixed_batch_retry_is_a_definite_explained_conflict_that_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let first = store.append_batch(batch(KEYS)).unwrap();
    let single = store
        .append_with_options(
            &Coordinate::new("solo", "retry").unwrap(),
            KIND,
            &1u64,
            AppendOptions::default().with_idempotency(0xC1),
        )
        .unwrap();

    // Known keys plus a new one.
    let mut more = batch(KEYS);
    more.push(item("order:3", KIND, 40, Some(0xA4)));
    refused(&store, more, 3, "new");
    // Known keys plus an unkeyed item.
    let mut unkeyed = batch(KEYS);
    unkeyed.push(item("order:3", KIND, 40, None));
    refused(&store, unkeyed, 3, "no idempotency key");
    // A subset of the original.
    let mut fewer = batch(KEYS);
    fewer.pop();
    refused(&store, fewer, 0, "3 items");
    // The same keys in another order.
    let mut swapped = batch(KEYS);
    swapped.swap(0, 2);
    refused(&store, swapped, 0, "order");
    // Same keys, another payload / entity / kind.
    let mut payload = batch(KEYS);
    payload[2] = item("order:1", KIND, 31, Some(KEYS[2]));
    refused(&store, payload, 2, "payload");
    let mut entity = batch(KEYS);
    entity[2] = item("order:9", KIND, 30, Some(KEYS[2]));
    refused(&store, entity, 2, "entity");
    let mut kind = batch(KEYS);
    kind[2] = item("order:1", OTHER_KIND, 30, Some(KEYS[2]));
    refused(&store, kind, 2, "kind");
    // A key written by a single append, in a batch.
    refused(
        &store,
        vec![
            item("solo", KIND, 1, Some(0xC1)),
            item("solo", KIND, 2, Some(0xC2)),
        ],
        0,
        "single append",
    );
    // Keys of two different earlier units.
    refused(
        &store,
        vec![
            item("order:1", KIND, 10, Some(KEYS[0])),
            item("solo", KIND, 1, Some(0xC1)),
        ],
        1,
        "single append",
    );
    // Nothing changed: the original is still answered.
    same_receipts(&first, &store.append_batch(batch(KEYS)).unwrap());
    assert_eq!(
        store
            .append_with_options(
                &Coordinate::new("solo", "retry").unwrap(),
                KIND,
                &1u64,
                AppendOptions::default().with_idempotency(0xC1),
            )
            .unwrap()
            .event_id,
        single.event_id
    );
    store.close().unwrap();
}

#[test]
fn a_key_used_twice_inside_one_batch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let err = store
        .append_batch(vec![
            item("d", KIND, 1, Some(0xD1)),
            item("d", KIND, 1, Some(0xD1)),
        ])
        .unwrap_err();
    assert!(err.is_definite());
    assert!(
        matches!(
            &err,
            StoreError::BatchFailed {
                item_index: 1,
                stage: BatchStage::Validation,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("twice"), "{err}");
    assert_eq!(store.stats().event_count, 0);
    store.close().unwrap();
}
