//! Compaction (INV-COMPACTION) on real files and on the simulated disk: kept records are
//! byte-identical with the same sequences; retention and tombstones drop events and whole
//! entities; atomic units are kept or dropped whole; an open fence is untouched; consumer
//! checkpoints and idempotency keys are still right afterwards and after a reopen; a read-only
//! open and a snapshot of a compacted store work; and a crash at every disk operation of a
//! compaction (power loss or process crash) recovers to the state before or after it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::__testing::codec;
use batpak::__testing::env::{CrashOptions, FaultKind, SimDisk};
use batpak::__testing::log::segment::{decode_header, parse_segment_file_name};
use batpak::__testing::log::SEGMENT_HEADER_BYTES;
#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use batpak::store::{CheckpointId, CompactionOutcome, ReadOnly};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

type Seed = fn(StoreConfig) -> StoreConfig;

fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x4, 1);

fn cfg(dir: &Path) -> StoreConfig {
    StoreConfig::new(dir)
        .with_lifecycle_events(false)
        .with_segment_max_bytes(1024)
}

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "compact").unwrap()
}

fn config(strategy: CompactionStrategy) -> CompactionConfig {
    CompactionConfig {
        strategy,
        min_segments: 1,
    }
}

fn retention(
    keep: impl Fn(&StoredEvent<serde_json::Value>) -> bool + Send + 'static,
) -> CompactionConfig {
    config(CompactionStrategy::Retention(Box::new(keep)))
}

fn tombstone(
    keep: impl Fn(&StoredEvent<serde_json::Value>) -> bool + Send + 'static,
) -> CompactionConfig {
    config(CompactionStrategy::Tombstone(Box::new(keep)))
}

/// The payload as a number (every payload here is one).
fn n(e: &StoredEvent<serde_json::Value>) -> u64 {
    e.event.payload.as_u64().unwrap_or(u64::MAX)
}

/// Visible events: seq -> (entity, event id, raw payload).
type Contents = BTreeMap<u64, (String, u128, Vec<u8>)>;

fn contents<S>(store: &Store<S>) -> Contents {
    store
        .query(&Region::all())
        .into_iter()
        .map(|e| {
            let raw = store.get_raw(e.event_id).unwrap();
            (
                e.global_sequence,
                (e.coord.entity().to_owned(), e.event_id, raw.event.payload),
            )
        })
        .collect()
}

/// Record bodies (the bytes after the frame header) by sequence, read from the segment files:
/// `Dropped` records left out.
fn bodies(dir: &Path) -> BTreeMap<u64, Vec<u8>> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| parse_segment_file_name(&e.unwrap().file_name().to_string_lossy()))
        .collect();
    ids.sort_unstable();
    let mut out = BTreeMap::new();
    for id in ids {
        let bytes = std::fs::read(dir.join(format!("{id:020}.seg"))).unwrap();
        let h = decode_header(&bytes[..SEGMENT_HEADER_BYTES]).unwrap();
        let mut at = SEGMENT_HEADER_BYTES;
        while at < bytes.len() {
            let (r, used) = codec::decode(&bytes[at..], h.frame_max, h.salt).unwrap();
            if !matches!(r.body, codec::RecordBody::Dropped { .. }) {
                out.insert(
                    r.seq,
                    bytes[at + codec::FRAME_HEADER_BYTES..at + used].to_vec(),
                );
            }
            at += used;
        }
    }
    out
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            parse_segment_file_name(&e.as_ref().unwrap().file_name().to_string_lossy()).is_some()
        })
        .count()
}

/// A store in `tmp`'s `s` (with `cfg`), filled with 4 x `n` events by [`fill`]; its
/// directory and the store.
fn filled_store(tmp: &tempfile::TempDir, n: u64) -> (std::path::PathBuf, Store) {
    let dir = tmp.path().join("s");
    let store = Store::open(cfg(&dir)).unwrap();
    fill(&store, n);
    (dir, store)
}

/// 4 entities, `n` events each, interleaved; payload = running number.
fn fill(store: &Store, n: u64) {
    for i in 0..n * 4 {
        store
            .append(&coord(&format!("user:{}", i % 4)), KIND, &i)
            .unwrap();
    }
}

#[test]
fn merge_keeps_every_record_byte_for_byte_with_its_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store) = filled_store(&tmp, 50);
    let before = contents(&store);
    let bodies_before = bodies(&dir);
    let segs = segment_count(&dir);
    assert!(segs > 4);
    let r = store.compact(&CompactionConfig::default()).unwrap();
    assert_eq!(r.outcome, CompactionOutcome::Performed);
    assert_eq!(r.segments_removed, segs - 2);
    assert_eq!(segment_count(&dir), 2);
    assert_eq!(contents(&store), before);
    assert_eq!(
        bodies(&dir),
        bodies_before,
        "bodies are copied, never re-encoded"
    );
    // Appends continue the sequence; a second compaction merges the compacted segment too.
    fill(&store, 10);
    let more = contents(&store);
    assert_eq!(more.len(), 240);
    store.compact(&CompactionConfig::default()).unwrap();
    assert_eq!(contents(&store), more);
    store.close().unwrap();
    let reopened = Store::open(cfg(&dir)).unwrap();
    assert_eq!(contents(&reopened), more);
    assert_eq!(reopened.frontier().written, 240);
}

#[test]
fn below_min_segments_compaction_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(cfg(tmp.path())).unwrap();
    fill(&store, 2);
    let r = store
        .compact(&CompactionConfig {
            strategy: CompactionStrategy::Merge,
            min_segments: 1000,
        })
        .unwrap();
    assert_eq!(r.outcome, CompactionOutcome::Skipped);
    assert_eq!(r.bytes_reclaimed, 0);
}

#[test]
fn retention_drops_events_keeps_sequences_and_entity_chains_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store) = filled_store(&tmp, 50);
    let before = contents(&store);
    let bodies_before = bodies(&dir);
    let r = store.compact(&retention(|e| n(e) >= 120)).unwrap();
    assert_eq!(r.outcome, CompactionOutcome::Performed);
    assert!(r.bytes_reclaimed > 0);
    let after = contents(&store);
    // Exactly the events of the sealed segments below 120 went; the rest kept their sequence.
    assert!(after
        .values()
        .all(|(_, id, _)| before.values().any(|b| b.1 == *id)));
    for (seq, v) in &after {
        assert_eq!(before.get(seq), Some(v), "sequence {seq} kept its event");
    }
    let gone: Vec<u64> = before
        .keys()
        .filter(|s| !after.contains_key(s))
        .copied()
        .collect();
    assert!(!gone.is_empty());
    assert!(gone.iter().all(|s| *s < 120));
    let kept_bodies = bodies(&dir);
    for (seq, b) in &kept_bodies {
        assert_eq!(
            bodies_before.get(seq),
            Some(b),
            "record {seq} is byte-identical"
        );
    }
    // The entities' chains continue after events that are gone, live and after a reopen.
    fill(&store, 5);
    let live = contents(&store);
    store.close().unwrap();
    let reopened = Store::open(cfg(&dir)).unwrap();
    assert_eq!(contents(&reopened), live);
    fill(&reopened, 5);
    reopened.close().unwrap();
    let ro = Store::<ReadOnly>::open_read_only(cfg(&dir)).unwrap();
    assert_eq!(ro.query(&Region::all()).len(), live.len() + 20);
}

#[test]
fn tombstone_drops_whole_entities() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store) = filled_store(&tmp, 50);
    let active_user1 = store.stream("user:1").len();
    // One event of user:1 tombstones the entity: every one of its events in sealed segments
    // goes, whatever the predicate said about them.
    store
        .compact(&tombstone(|e| {
            !(e.coordinate.entity() == "user:1" && n(e) == 5)
        }))
        .unwrap();
    let left = store.stream("user:1");
    assert!(left.len() < active_user1);
    // What is left of user:1 lies in the active segment, above everything compacted.
    let first_active = store.stream("user:0").last().unwrap().global_sequence;
    assert!(left.iter().all(|e| e.global_sequence + 8 > first_active));
    assert_eq!(store.stream("user:0").len(), 50);
    assert_eq!(store.stream("user:2").len(), 50);
    let live = contents(&store);
    store.close().unwrap();
    assert_eq!(contents(&Store::open(cfg(&dir)).unwrap()), live);
}

/// Batches and fences are kept or dropped whole: a unit with one kept event stays whole, a
/// unit whose events all go leaves nothing, a cancelled fence leaves nothing and stays
/// hidden. `Err` names INV-COMPACTION.
fn units_are_kept_or_dropped_whole(seed: Seed) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(seed(cfg(&dir))).unwrap();
    let item = |entity: &str, v: u64| {
        BatchAppendItem::new(
            coord(entity),
            KIND,
            &v,
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap()
    };
    // Mixed batch: one event of the doomed entity, one of a kept one.
    let mixed = store
        .append_batch(vec![item("doomed", 1), item("kept", 2), item("doomed", 3)])
        .unwrap();
    // All doomed.
    store
        .append_batch(vec![item("doomed", 4), item("doomed", 5)])
        .unwrap();
    // A committed fence with a doomed and a kept event, and a cancelled one.
    let fence = store.begin_visibility_fence().unwrap();
    let _ = fence.submit(&coord("doomed"), KIND, &6u64).unwrap();
    let _ = fence.submit(&coord("kept"), KIND, &7u64).unwrap();
    fence.commit().unwrap();
    let fence = store.begin_visibility_fence().unwrap();
    let _ = fence.submit(&coord("kept"), KIND, &8u64).unwrap();
    fence.cancel().unwrap();
    // Seal all of it.
    fill(&store, 20);
    let drop_doomed = || retention(|e| e.coordinate.entity() != "doomed");
    store.compact(&drop_doomed()).map_err(|e| e.to_string())?;
    let check = |c: &Contents, when: &str| -> Result<(), String> {
        let payloads: Vec<Vec<u8>> = c
            .values()
            .filter(|(e, _, _)| e == "doomed" || e == "kept")
            .map(|(_, _, p)| p.clone())
            .collect();
        let mp = |v: u64| rmp_serde::to_vec_named(&v).unwrap();
        let want = vec![mp(1), mp(2), mp(3), mp(6), mp(7)];
        if payloads != want {
            return Err(format!(
                "INV-COMPACTION ({when}): units not kept or dropped whole: {} doomed/kept events visible, want the mixed batch and the mixed fence whole (5)",
                payloads.len()
            ));
        }
        Ok(())
    };
    check(&contents(&store), "live")?;
    if store.get(mixed[0].event_id).is_err() {
        return Err("INV-COMPACTION: the mixed batch's first event cannot be read".into());
    }
    store.close().map_err(|e| e.to_string())?;
    let reopened =
        Store::open(seed(cfg(&dir))).map_err(|e| format!("INV-COMPACTION: reopen: {e}"))?;
    check(&contents(&reopened), "after reopen")?;
    Ok(())
}

#[test]
fn atomic_units_are_kept_or_dropped_whole() {
    units_are_kept_or_dropped_whole(real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_compaction_splits_unit_is_caught() {
    let err = units_are_kept_or_dropped_whole(|c| c.with_mutant(Mutant::CompactionSplitsUnit))
        .unwrap_err();
    assert!(err.starts_with("INV-COMPACTION"), "{err}");
}

/// A fence still open while compaction runs (a consumer commits in between, so a checkpoint
/// record lies among its records) is left untouched: hidden during, whole once committed,
/// the same after a reopen. `Err` names INV-COMPACTION.
fn open_fence_is_untouched(seed: Seed) -> Result<(), String> {
    let inv = |what: &str, e: &dyn std::fmt::Display| format!("INV-COMPACTION: {what}: {e}");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(seed(cfg(&dir))).unwrap();
    fill(&store, 20);
    let mut consumer = store
        .consumer(&CheckpointId::new("audit"), &Region::entity("user"))
        .unwrap();
    let fence = store.begin_visibility_fence().unwrap();
    // Large enough that the fence's own events roll segments: its begin and first events
    // are in sealed segments. A consumer commits while the fence is open: its checkpoint
    // record lies between the fence's records, and the fence is still open.
    let big = "x".repeat(600);
    for i in 0..6 {
        let _ = fence.submit(&coord("fenced"), KIND, &big).unwrap();
        if i == 2 {
            assert!(!consumer
                .poll(5, std::time::Duration::from_millis(10))
                .is_empty());
            consumer.commit().unwrap();
        }
    }
    drop(consumer);
    store.sync().unwrap();
    assert!(segment_count(&dir) > 3);
    let r = store
        .compact(&retention(|_| false))
        .map_err(|e| inv("compact", &e))?;
    assert_eq!(r.outcome, CompactionOutcome::Performed);
    if !store.stream("fenced").is_empty() {
        return Err("INV-COMPACTION: the open fence became visible".into());
    }
    assert!(
        store.stream("user:0").len() < 20,
        "what precedes the fence was compacted"
    );
    fence.commit().map_err(|e| inv("commit", &e))?;
    let fenced = store.stream("fenced");
    if fenced.len() != 6 {
        return Err(format!(
            "INV-COMPACTION: the committed fence shows {} of its 6 events",
            fenced.len()
        ));
    }
    for e in &fenced {
        store
            .get_raw(e.event_id)
            .map_err(|err| inv("a committed fence event cannot be read", &err))?;
    }
    let live: Vec<u64> = store
        .query(&Region::all())
        .iter()
        .map(|e| e.global_sequence)
        .collect();
    store.close().map_err(|e| inv("close", &e))?;
    let reopened = Store::open(seed(cfg(&dir))).map_err(|e| inv("reopen", &e))?;
    let again: Vec<u64> = reopened
        .query(&Region::all())
        .iter()
        .map(|e| e.global_sequence)
        .collect();
    if again != live {
        return Err("INV-COMPACTION: the reopened store differs".into());
    }
    Ok(())
}

#[test]
fn an_open_fence_is_copied_untouched_and_never_published_by_compaction() {
    open_fence_is_untouched(real).unwrap();
    let big = "x".repeat(600);

    // A fence open when the process dies stays hidden through compactions and reopens
    // (simulated disk: the process crash keeps the page cache).
    let disk = SimDisk::new();
    let on = |d: &SimDisk| cfg(Path::new("/o")).with_disk(Arc::new(d.clone()));
    let store = Store::open(on(&disk)).unwrap();
    fill(&store, 20);
    let fence = store.begin_visibility_fence().unwrap();
    for _ in 0..6 {
        let _ = fence.submit(&coord("fenced"), KIND, &big).unwrap();
    }
    store.sync().unwrap();
    store.compact(&CompactionConfig::default()).unwrap();
    assert!(store.stream("fenced").is_empty());
    std::mem::forget(fence);
    std::mem::forget(store);
    let disk = disk.process_crash();
    let reopened = Store::open(on(&disk)).unwrap();
    assert!(reopened.stream("fenced").is_empty());
    fill(&reopened, 20);
    let r = reopened.compact(&retention(|_| true)).unwrap();
    assert_eq!(r.outcome, CompactionOutcome::Performed);
    assert!(reopened.stream("fenced").is_empty());
    let live = contents(&reopened);
    reopened.close().unwrap();
    let again = Store::open(on(&disk)).unwrap();
    assert!(again.stream("fenced").is_empty());
    assert_eq!(contents(&again), live);
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_compaction_takes_open_fence_is_caught() {
    let err =
        open_fence_is_untouched(|c| c.with_mutant(Mutant::CompactionTakesOpenFence)).unwrap_err();
    assert!(err.starts_with("INV-COMPACTION"), "{err}");
}

#[test]
fn consumer_checkpoints_and_idempotency_keys_are_right_after_compaction_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(cfg(&dir)).unwrap();
    let id = CheckpointId::new("billing");
    let keyed = |store: &Store, key: u128, v: u64| {
        store
            .append_with_options(
                &coord("keyed"),
                KIND,
                &v,
                AppendOptions::new().with_idempotency(key),
            )
            .unwrap()
    };
    let first_keyed = keyed(&store, 1, 1000);
    fill(&store, 10);
    let mut committed = None;
    {
        let mut c = store.consumer(&id, &Region::entity("user")).unwrap();
        // Commit several times (older checkpoints are superseded).
        for _ in 0..4 {
            let got = c.poll(5, std::time::Duration::from_millis(10));
            assert!(!got.is_empty());
            c.commit().unwrap();
            committed = c.committed();
        }
    }
    let doomed_key = keyed(&store, 2, 2000);
    fill(&store, 10);
    let kept_key = keyed(&store, 3, 3000);
    fill(&store, 20);
    let committed = committed.unwrap();
    // Drop user:* events up to sequence 30 and the event of key 2.
    let r = store
        .compact(&retention(|e| {
            !(e.coordinate.entity().starts_with("user:") && e.event.header.position.clock <= 8)
                && n(e) != 2000
        }))
        .unwrap();
    assert_eq!(r.outcome, CompactionOutcome::Performed);
    let check = |store: &Store, when: &str| {
        let c = store.consumer(&id, &Region::entity("user")).unwrap();
        assert_eq!(
            c.committed(),
            Some(committed),
            "{when}: the checkpoint stands"
        );
        // A retry of a kept keyed append answers the original receipt, writes nothing.
        let before = store.frontier().written;
        let again = keyed(store, 3, 3000);
        assert_eq!(again.sequence, kept_key.sequence, "{when}");
        assert_eq!(again.event_id, kept_key.event_id, "{when}");
        let again = keyed(store, 1, 1000);
        assert_eq!(again.event_id, first_keyed.event_id, "{when}");
        assert_eq!(
            store.frontier().written,
            before,
            "{when}: a retry writes nothing"
        );
    };
    check(&store, "live");
    let mut c = store.consumer(&id, &Region::entity("user")).unwrap();
    let next = c.poll(1, std::time::Duration::from_millis(10));
    assert!(next[0].global_sequence > committed);
    drop(c);
    store.close().unwrap();
    let reopened = Store::open(cfg(&dir)).unwrap();
    check(&reopened, "after reopen");
    // The dropped key's event is gone after the reopen: a retry writes it anew.
    assert!(reopened.get(doomed_key.event_id).is_err());
    let anew = keyed(&reopened, 2, 2000);
    assert_ne!(anew.event_id, doomed_key.event_id);
    assert!(anew.sequence > kept_key.sequence);
}

#[test]
fn a_compacted_store_opens_read_only_and_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, store) = filled_store(&tmp, 40);
    store
        .compact(&retention(|e| !n(e).is_multiple_of(3)))
        .unwrap();
    let live = contents(&store);
    store.snapshot(&tmp.path().join("snap")).unwrap();
    store.close().unwrap();
    let ro = Store::<ReadOnly>::open_read_only(cfg(&dir)).unwrap();
    assert_eq!(contents(&ro), live);
    let snap = Store::<ReadOnly>::open_read_only(cfg(&tmp.path().join("snap"))).unwrap();
    assert_eq!(contents(&snap), live);
    // A cursor sees the survivors in order and reports the removed sequences as gaps.
    let mut cursor = ro
        .cursor_guaranteed(&Region::all())
        .with_gap_config(batpak::store::CursorGapConfig::default());
    let seen: Vec<u64> = std::iter::from_fn(|| cursor.poll())
        .map(|e| e.global_sequence)
        .collect();
    assert_eq!(seen, live.keys().copied().collect::<Vec<_>>());
}

// ---- crashes during compaction, on the simulated disk ----

const DIR: &str = "/c";

fn sim_cfg(disk: &SimDisk, seed: Seed) -> StoreConfig {
    seed(
        StoreConfig::new(DIR)
            .with_lifecycle_events(false)
            .with_segment_max_bytes(700)
            .with_disk(Arc::new(disk.clone())),
    )
}

fn sim_contents(disk: &SimDisk) -> Result<Contents, String> {
    let ro = Store::<ReadOnly>::open_read_only(sim_cfg(disk, real)).map_err(|e| e.to_string())?;
    Ok(contents(&ro))
}

/// A crash (power loss with every image a crash can leave, and a process crash) at every
/// disk operation of a compaction: the store opens, and holds exactly the events before or
/// exactly those after the compaction. `Err` names INV-COMPACTION.
fn a_crash_anywhere_in_compaction_recovers_to_before_or_after(seed: Seed) -> Result<usize, String> {
    // The store before compaction: a batch, a cancelled fence, plain events, all durable.
    let base = SimDisk::new();
    {
        let store = Store::open(sim_cfg(&base, real)).unwrap();
        let items = (0..3u64)
            .map(|v| {
                BatchAppendItem::new(
                    coord("b"),
                    KIND,
                    &v,
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .unwrap()
            })
            .collect();
        store.append_batch(items).unwrap();
        let fence = store.begin_visibility_fence().unwrap();
        let _ = fence.submit(&coord("f"), KIND, &9u64).unwrap();
        fence.cancel().unwrap();
        fill(&store, 12);
        store.close().unwrap();
    }
    let copy = |d: &SimDisk| d.crash_images(&CrashOptions::default())[0].disk();
    let strategy = || retention(|e| n(e).is_multiple_of(2));
    let before = sim_contents(&base)?;
    // A run without a crash: the state after, and how many operations compaction does.
    let (after, ops) = {
        let disk = copy(&base);
        let store = Store::open(sim_cfg(&disk, seed)).unwrap();
        let start = disk.op_count();
        store.compact(&strategy()).map_err(|e| e.to_string())?;
        let ops = disk.op_count() - start;
        store.close().unwrap();
        (sim_contents(&disk)?, ops)
    };
    if after == before || after.len() >= before.len() {
        return Err("the strategy must drop something".into());
    }
    let judge = |d: &SimDisk, what: String| -> Result<(), String> {
        // A writable open first (it removes superseded segments), then read-only.
        let store = Store::open(sim_cfg(d, real))
            .map_err(|e| format!("INV-COMPACTION: {what}: open fails: {e}"))?;
        let got = contents(&store);
        store.close().map_err(|e| e.to_string())?;
        if got != before && got != after {
            return Err(format!(
                "INV-COMPACTION: {what}: {} events, neither the {} before nor the {} after",
                got.len(),
                before.len(),
                after.len()
            ));
        }
        let again = sim_contents(d)?;
        if again != got {
            return Err(format!("INV-COMPACTION: {what}: a second open differs"));
        }
        Ok(())
    };
    let mut states = 0;
    for k in 0..ops {
        for fault in [FaultKind::Persistent, FaultKind::ProcessCrash] {
            let disk = copy(&base);
            let store = Store::open(sim_cfg(&disk, seed)).unwrap();
            disk.fail_at(disk.op_count() + k, fault);
            let _ = store.compact(&strategy());
            std::mem::forget(store);
            match fault {
                FaultKind::ProcessCrash => {
                    states += 1;
                    judge(&disk.process_crash(), format!("process crash at op {k}"))?;
                }
                _ => {
                    for image in disk.crash_images(&CrashOptions::default()) {
                        states += 1;
                        judge(
                            &image.power_loss_disk(),
                            format!("power loss at op {k} ({})", image.describe()),
                        )?;
                    }
                }
            }
        }
    }
    Ok(states)
}

#[test]
fn a_crash_at_every_disk_operation_of_compaction_recovers_to_before_or_after() {
    let states = a_crash_anywhere_in_compaction_recovers_to_before_or_after(real).unwrap();
    assert!(states > 20, "{states} crash states");
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_compaction_deletes_before_durable_is_caught() {
    let err = a_crash_anywhere_in_compaction_recovers_to_before_or_after(|c| {
        c.with_mutant(Mutant::CompactionDeletesBeforeDurable)
    })
    .unwrap_err();
    assert!(err.starts_with("INV-COMPACTION"), "{err}");
}

#[test]
fn compaction_runs_online_while_threads_append_and_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Arc::new(Store::open(cfg(&dir)).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 200 {
                    let v = t * 1_000_000 + i;
                    let r = store.append(&coord(&format!("w:{t}")), KIND, &v).unwrap();
                    acked.push((r.event_id, r.sequence, v));
                    i += 1;
                }
                acked
            })
        })
        .collect();
    let reader = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for e in store.stream("w:0").iter().rev().take(20) {
                    // A read that races the swap may fail (the event moved); one that
                    // succeeds returns this very event.
                    if let Ok(raw) = store.get_raw(e.event_id) {
                        let v: u64 = rmp_serde::from_slice(&raw.event.payload).unwrap();
                        assert!(v < 1_000_000);
                        reads += 1;
                    }
                }
            }
            reads
        })
    };
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.compact(&CompactionConfig::default()).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<(u128, u64, u64)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(reader.join().unwrap() > 0);
    store.compact(&CompactionConfig::default()).unwrap();
    let check = |s: &Store| {
        for (id, seq, v) in &acked {
            let raw = s.get_raw(*id).unwrap();
            assert_eq!(s.entry(*id).unwrap().global_sequence, *seq);
            assert_eq!(
                rmp_serde::from_slice::<u64>(&raw.event.payload).unwrap(),
                *v
            );
        }
        assert_eq!(s.query(&Region::all()).len(), acked.len());
    };
    check(&store);
    let store = Arc::into_inner(store).unwrap();
    store.close().unwrap();
    check(&Store::open(cfg(&dir)).unwrap());
}

/// A payload MessagePack holds as a binary string (`serialize_bytes`, as `serde_bytes` or
/// `bytes::Bytes` write it), with a number-keyed map: JSON has neither.
struct Blob(Vec<u8>, u8);

impl serde::Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("bytes", &Bin(&self.0))?;
        m.serialize_entry(&7u8, &self.1)?;
        m.end()
    }
}

/// A borrowed slice serialized as a binary string.
struct Bin<'a>(&'a [u8]);

impl serde::Serialize for Bin<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Found by the simulator: Retention and Tombstone read every event as JSON, and a binary
/// payload made `get` (and so the whole compaction) fail with "invalid type: byte array".
/// `get` gives binary as an array of byte numbers and a number key as its text; compaction
/// then drops and keeps such events like any other.
#[test]
fn binary_payloads_read_as_json_and_compact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(cfg(&dir)).unwrap();
    let mut ids = Vec::new();
    for i in 0..200u8 {
        let r = store
            .append(
                &coord(&format!("blob:{}", i % 2)),
                KIND,
                &Blob(vec![i, 0, 255], i),
            )
            .unwrap();
        ids.push(r.event_id);
    }
    let first = store.get(ids[3]).unwrap();
    assert_eq!(
        first.event.payload,
        serde_json::json!({"bytes": [3, 0, 255], "7": 3})
    );
    store
        .compact(&retention(|e| {
            e.event.payload["7"].as_u64().unwrap() % 2 == 0
        }))
        .unwrap();
    // Odd ones in sealed segments are gone; every even one is still there.
    assert!(matches!(store.get(ids[1]), Err(StoreError::NotFound(_))));
    for id in ids.iter().step_by(2) {
        store.get(*id).unwrap();
    }
    store
        .compact(&tombstone(|e| e.coordinate.entity() != "blob:0"))
        .unwrap();
    assert!(store.stream("blob:0").len() < 100);
    let live = contents(&store);
    store.close().unwrap();
    assert_eq!(contents(&Store::open(cfg(&dir)).unwrap()), live);
}
