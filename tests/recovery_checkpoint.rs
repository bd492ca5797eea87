//! The recovery checkpoint (`recovery.ckpt`, a cache of the events' chain hashes saved at a
//! clean close and every `with_checkpoint_every_n_events`) never changes what an open
//! returns: a stale one (older than the log, or of segments a compaction rewrote) or one of
//! another store gives the same store as a full scan. Seeded bug `TrustStaleCheckpoint`
//! (hashes taken by sequence alone, no fingerprint check) is caught.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use std::path::Path;

const CKPT: &str = "recovery.ckpt";

fn config(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .with_lifecycle_events(false)
        .with_segment_max_bytes(4096)
}

/// `n` events over 7 entities, every fifth with an idempotency key, a cancelled fence in the
/// middle (its entity's chain goes on through the hidden events), a batch at the end.
fn write(store: &Store, tag: &str, n: u64) {
    let kind = EventKind::custom(1, 1);
    let keys = tag.bytes().fold(0u128, |a, b| a * 131 + u128::from(b)) << 32;
    for i in 0..n {
        let c = Coordinate::new(format!("acct:{}", i % 7), "bank").unwrap();
        let payload = format!("{tag}-{i}");
        if i % 5 == 0 {
            let opts = AppendOptions::default().with_idempotency(keys + u128::from(i) + 1);
            store.append_with_options(&c, kind, &payload, opts).unwrap();
        } else {
            store.append(&c, kind, &payload).unwrap();
        }
        if i == n / 2 {
            let fence = store.begin_visibility_fence().unwrap();
            let _ = fence.submit(&c, kind, &"hidden").unwrap();
            fence.cancel().unwrap();
        }
    }
    let items = (0..3)
        .map(|i| {
            BatchAppendItem::new(
                Coordinate::new("acct:batch", "bank").unwrap(),
                kind,
                &i,
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap()
        })
        .collect();
    store.append_batch(items).unwrap();
}

/// What an open shows: every visible entry (ids, sequences, positions, chain hashes).
fn opened(cfg: StoreConfig) -> Result<Vec<IndexEntry>, String> {
    let store = Store::open(cfg).map_err(|e| e.to_string())?;
    let all = store.query(&Region::all());
    // Leave the directory as it is: no checkpoint saved by this open's close.
    drop(store);
    Ok(all)
}

/// The witness: with a checkpoint of another store copied in, and with a stale one after a
/// compaction rewrote what it covers, the open equals a full scan. An error names the
/// invariant.
fn foreign_and_stale_checkpoints_change_nothing(
    mutant: impl Fn(StoreConfig) -> StoreConfig,
) -> Result<(), String> {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (dir, tag) in [(a.path(), "a"), (b.path(), "b")] {
        let store = Store::open(config(dir)).unwrap();
        write(&store, tag, 120);
        store.close().unwrap();
        assert!(dir.join(CKPT).exists(), "a clean close saves a checkpoint");
    }
    std::fs::copy(b.path().join(CKPT), a.path().join(CKPT)).unwrap();
    let full = opened(config(a.path()).with_enable_checkpoint(false))?;
    let with = opened(mutant(config(a.path()))).map_err(|e| {
        format!("INV-STABLE-SEQ: the open with another store's checkpoint failed: {e}")
    })?;
    if with != full {
        return Err(
            "INV-STABLE-SEQ: the open with another store's checkpoint differs from a full scan"
                .into(),
        );
    }
    Ok(())
}

#[test]
fn a_checkpoint_of_another_store_never_changes_what_open_returns() {
    foreign_and_stale_checkpoints_change_nothing(|c| c).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_trust_stale_checkpoint_is_caught() {
    let caught = foreign_and_stale_checkpoints_change_nothing(|c| {
        c.with_mutant(batpak::__testing::Mutant::TrustStaleCheckpoint)
    });
    assert!(
        caught.as_ref().is_err_and(|e| e.contains("INV-STABLE-SEQ")),
        "{caught:?}"
    );
}

#[test]
fn a_checkpoint_older_than_the_log_and_one_of_rewritten_segments_give_a_full_scans_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).unwrap();
    write(&store, "one", 100);
    store.close().unwrap();
    let old = std::fs::read(dir.path().join(CKPT)).unwrap();
    // More events; the checkpoint is not rewritten (switched off for this session).
    let store = Store::open(config(dir.path()).with_enable_checkpoint(false)).unwrap();
    write(&store, "two", 100);
    store.close().unwrap();
    assert_eq!(std::fs::read(dir.path().join(CKPT)).unwrap(), old);
    let full = opened(config(dir.path()).with_enable_checkpoint(false)).unwrap();
    assert_eq!(opened(config(dir.path())).unwrap(), full);
    // A compaction rewrites segments the old checkpoint covers.
    let store = Store::open(config(dir.path()).with_enable_checkpoint(false)).unwrap();
    let keep = |e: &StoredEvent<serde_json::Value>| {
        e.event.payload.as_str().is_none_or(|s| !s.ends_with('3'))
    };
    store
        .compact(&CompactionConfig {
            strategy: CompactionStrategy::Retention(Box::new(keep)),
            min_segments: 1,
        })
        .unwrap();
    store.close().unwrap();
    let full = opened(config(dir.path()).with_enable_checkpoint(false)).unwrap();
    assert_eq!(opened(config(dir.path())).unwrap(), full);
    // Keys written before the checkpoint still answer retries with the original receipt.
    let store = Store::open(config(dir.path())).unwrap();
    let c = Coordinate::new("acct:0", "bank").unwrap();
    let key = "one".bytes().fold(0u128, |a, b| a * 131 + u128::from(b)) << 32;
    let opts = AppendOptions::default().with_idempotency(key + 1);
    let again = store
        .append_with_options(&c, EventKind::custom(1, 1), &"one-0", opts)
        .unwrap();
    assert_eq!(again.sequence, full[0].global_sequence);
    store.close().unwrap();
}

#[test]
fn switched_off_no_checkpoint_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()).with_enable_checkpoint(false)).unwrap();
    write(&store, "x", 20);
    store.close().unwrap();
    assert!(!dir.path().join(CKPT).exists());
}
