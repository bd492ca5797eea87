//! Reads racing a compaction's swap (INV-COMPACTION: a concurrent compaction never makes a
//! read fail). A read that took an event's position before the swap and reads the file after
//! it finds the event at its new position; every read path keeps working while compactions
//! that move positions (Retention, Tombstone) run again and again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/store.rs"]
mod support;

use batpak::prelude::*;
use batpak::store::CompactionOutcome;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KIND: EventKind = EventKind::custom(0x4, 2);

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "race").unwrap()
}

fn keep_only_kept(e: &StoredEvent<serde_json::Value>) -> bool {
    !e.coordinate.entity().starts_with("gone")
}

/// The events folded, from the log every time.
type Count = support::EventCount<false>;

/// One read path's check, run again and again by a reader thread.
type ReadPath = Box<dyn Fn(&Store) -> Result<(), String> + Send>;

/// What the writer appended: event id -> (entity, payload).
type Written = Arc<Mutex<HashMap<u128, (String, u64)>>>;

/// A read of `id` delivered by a cursor or subscription: a kept event must read back as
/// written; a removed one may also be `NotFound`.
fn check_read(store: &Store, written: &Written, id: u128) -> Result<(), String> {
    let Some((entity, v)) = written.lock().unwrap().get(&id).cloned() else {
        return Err(format!("{id:032x} was never written"));
    };
    match store.get(id) {
        Ok(e) if e.event.payload == serde_json::json!(v) => Ok(()),
        Ok(e) => Err(format!(
            "{id:032x}: read {} instead of {v}",
            e.event.payload
        )),
        Err(StoreError::NotFound(_)) if entity.starts_with("gone") => Ok(()),
        Err(e) => Err(format!("{id:032x} ({entity}): {e}")),
    }
}

/// Reader threads on every read path (get and get_raw, walk_ancestors and stream,
/// projections, a cursor, a subscription) while 40 compactions, Retention and Tombstone in
/// turn, move every position; returns the reads that failed or were wrong.
fn failed_reads_under_compaction(seed: fn(StoreConfig) -> StoreConfig) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(seed(
            StoreConfig::new(tmp.path().join("s"))
                .with_lifecycle_events(false)
                .with_segment_max_bytes(1024),
        ))
        .unwrap(),
    );
    let written: Written = Arc::default();
    let kept: Arc<Mutex<Vec<(u128, String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let reads = Arc::new(AtomicU64::new(0));
    let mut next = 0u64;
    let mut append = |entity: &str| {
        // Held over the append: a reader that sees the event waits for its record here.
        let mut w = written.lock().unwrap();
        let r = store.append(&coord(entity), KIND, &next).unwrap();
        w.insert(r.event_id, (entity.to_owned(), next));
        drop(w);
        if !entity.starts_with("gone") {
            kept.lock()
                .unwrap()
                .push((r.event_id, entity.to_owned(), next));
        }
        next += 1;
    };
    for _ in 0..40 {
        append("keep:0");
        append("keep:1");
    }
    let mut readers = Vec::new();
    let spawn = |readers: &mut Vec<std::thread::JoinHandle<()>>, f: ReadPath| {
        let (store, stop, errors, reads) = (
            Arc::clone(&store),
            Arc::clone(&stop),
            Arc::clone(&errors),
            Arc::clone(&reads),
        );
        readers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Err(e) = f(&store) {
                    errors.lock().unwrap().push(e);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    };
    // get and get_raw of every kept event.
    {
        let kept = Arc::clone(&kept);
        spawn(
            &mut readers,
            Box::new(move |store| {
                let snapshot = kept.lock().unwrap().clone();
                for (id, entity, v) in snapshot {
                    let e = store.get(id).map_err(|e| format!("get {entity}: {e}"))?;
                    if e.event.payload != serde_json::json!(v) {
                        return Err(format!("get {entity}: {} instead of {v}", e.event.payload));
                    }
                    store
                        .get_raw(id)
                        .map_err(|e| format!("get_raw {entity}: {e}"))?;
                }
                Ok(())
            }),
        );
    }
    // walk_ancestors and stream/query of a kept entity: the whole chain every time.
    {
        let kept = Arc::clone(&kept);
        spawn(
            &mut readers,
            Box::new(move |store| {
                let chain: Vec<u128> = kept
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, e, _)| e == "keep:0")
                    .map(|(id, _, _)| *id)
                    .collect();
                let last = *chain.last().unwrap();
                let walked = store.walk_ancestors(last, usize::MAX);
                if walked.len() < chain.len() {
                    return Err(format!(
                        "walk_ancestors: {} of {} events",
                        walked.len(),
                        chain.len()
                    ));
                }
                if store.stream("keep:0").len() < chain.len() {
                    return Err("stream lost kept events".into());
                }
                Ok(())
            }),
        );
    }
    // Projections.
    {
        let kept = Arc::clone(&kept);
        spawn(
            &mut readers,
            Box::new(move |store| {
                let n = kept
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(_, e, _)| e == "keep:1")
                    .count();
                match store.project::<Count>("keep:1", &Freshness::Consistent) {
                    Ok(Some(support::EventCount(c))) if c >= n => Ok(()),
                    Ok(c) => Err(format!("project: {c:?}, at least {n} expected")),
                    Err(e) => Err(format!("project: {e}")),
                }
            }),
        );
    }
    // A cursor and a subscription, reading every event they deliver.
    {
        let written = Arc::clone(&written);
        let cursor = Mutex::new(store.cursor_guaranteed(&Region::all()));
        spawn(
            &mut readers,
            Box::new(move |store| {
                let batch = cursor.lock().unwrap().poll_batch(64);
                if batch.is_empty() {
                    cursor.lock().unwrap().seek(None);
                }
                batch
                    .iter()
                    .try_for_each(|e| check_read(store, &written, e.event_id))
            }),
        );
    }
    {
        let written = Arc::clone(&written);
        let sub = Mutex::new(store.subscribe_from(&Region::all(), None));
        spawn(
            &mut readers,
            Box::new(move |store| {
                match sub.lock().unwrap().recv_timeout(Duration::from_millis(5)) {
                    Ok(n) => check_read(store, &written, n.event_id),
                    Err(_) => Ok(()),
                }
            }),
        );
    }
    let mut performed = 0;
    for round in 0..40 {
        for i in 0..30 {
            append(if i % 3 == 0 { "keep:0" } else { "keep:1" });
            append(&format!("gone:{round}:{}", i % 2));
        }
        let strategy = if round % 2 == 0 {
            CompactionStrategy::Retention(Box::new(keep_only_kept))
        } else {
            CompactionStrategy::Tombstone(Box::new(keep_only_kept))
        };
        let r = store
            .compact(&CompactionConfig {
                strategy,
                min_segments: 1,
            })
            .unwrap();
        if r.outcome == CompactionOutcome::Performed {
            performed += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    assert!(performed >= 30, "only {performed} compactions ran");
    assert!(reads.load(Ordering::Relaxed) > 0);
    // Every kept event reads back after the last compaction too.
    for (id, _, v) in kept.lock().unwrap().iter() {
        assert_eq!(store.get(*id).unwrap().event.payload, serde_json::json!(v));
    }
    let errors = errors.lock().unwrap().clone();
    errors
}

#[test]
fn readers_never_error_while_compactions_move_positions() {
    let errors = failed_reads_under_compaction(|c| c);
    assert!(
        errors.is_empty(),
        "{} failed reads, first: {:?}",
        errors.len(),
        errors.first()
    );
}

/// The seeded bug also widens its window (2 ms between taking an event's position and
/// reading it), so the readers, always inside such a window, meet the 40 compactions' swaps:
/// at least one read of a moved event fails. (Without the widening, CI once saw none fail.)
#[cfg(batpak_mutant)]
#[test]
fn mutant_compaction_read_race_is_caught() {
    let errors = failed_reads_under_compaction(|c| {
        c.with_mutant(batpak::__testing::Mutant::CompactionReadRace)
    });
    assert!(!errors.is_empty(), "INV-COMPACTION: no read failed");
}
