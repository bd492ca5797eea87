//! `cursor_worker` on real files: drains in order, resumes after its checkpoint, rolls back,
//! restarts a panicking handler within its budget and reports the spent budget from `join()`
//! (upstream reports `Ok(())`); dropping the handle joins the thread, so the store can close.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::prelude::*;
use batpak::store::delivery::{CursorWorkerAction, CursorWorkerConfig, RestartPolicy};
use batpak::store::CheckpointId;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KIND: EventKind = EventKind::custom(0x7, 1);

fn coord() -> Coordinate {
    Coordinate::new("w", "s").unwrap()
}

fn wait_until(f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_worker_drains_in_order_and_a_checkpointed_one_resumes_after_its_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(StoreConfig::new(tmp.path())).unwrap());
    let want: Vec<u64> = (0..10u32)
        .map(|i| store.append(&coord(), KIND, &i).unwrap().sequence)
        .collect();
    let mut cfg = CursorWorkerConfig::default();
    cfg.batch_size = 3;
    cfg.checkpoint_id = Some(CheckpointId::new("w1"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let w = {
        let seen = Arc::clone(&seen);
        store
            .cursor_worker(
                &Region::entity("w"),
                cfg.clone(),
                move |batch, _s, witness| {
                    assert!(witness.is_some());
                    let mut v = seen.lock().unwrap();
                    v.extend(batch.iter().map(|e| e.global_sequence));
                    if v.len() >= 6 {
                        CursorWorkerAction::Stop
                    } else {
                        CursorWorkerAction::Continue
                    }
                },
            )
            .unwrap()
    };
    w.join().unwrap();
    let first = seen.lock().unwrap().clone();
    assert_eq!(first, want[..6]);
    // Resumes after the committed batches; a rollback leaves its batch uncommitted.
    let again = Arc::new(Mutex::new(Vec::new()));
    let w = {
        let again = Arc::clone(&again);
        store
            .cursor_worker(&Region::entity("w"), cfg.clone(), move |batch, _s, _w| {
                again
                    .lock()
                    .unwrap()
                    .extend(batch.iter().map(|e| e.global_sequence));
                CursorWorkerAction::StopWithRollback
            })
            .unwrap()
    };
    w.join().unwrap();
    assert_eq!(*again.lock().unwrap(), want[6..9]);
    let w = store
        .cursor_worker(&Region::entity("w"), cfg, |batch, _s, _w| {
            assert_eq!(batch[0].global_sequence, batch[0].global_sequence);
            CursorWorkerAction::Stop
        })
        .unwrap();
    w.join().unwrap();
    assert_eq!(store.consumers()[0].committed, Some(want[8]));
    // Dropping a running handle joins it: the store can be unwrapped and closed at once.
    let w = store
        .cursor_worker(
            &Region::entity("nothing"),
            CursorWorkerConfig::default(),
            |_, _, _| CursorWorkerAction::Continue,
        )
        .unwrap();
    drop(w);
    Arc::try_unwrap(store).unwrap().close().unwrap();
}

#[test]
fn a_panicking_handler_is_restarted_within_its_budget_and_then_join_reports_the_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(StoreConfig::new(tmp.path())).unwrap());
    store.append(&coord(), KIND, &1u8).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut cfg = CursorWorkerConfig::default();
    cfg.restart = RestartPolicy::Bounded {
        max_restarts: 2,
        within_ms: 60_000,
    };
    let w = {
        let calls = Arc::clone(&calls);
        store
            .cursor_worker(&Region::all(), cfg, move |_, _, _| {
                calls.fetch_add(1, Ordering::SeqCst);
                panic!("handler bug");
            })
            .unwrap()
    };
    let r = w.join();
    assert!(
        matches!(r, Err(StoreError::ConsumerPanicked { .. })),
        "a spent budget must not look like a clean stop: {r:?}"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the first run and two restarts"
    );
    // A handler that recovers after one panic is restarted once (the default) and finishes.
    let calls = Arc::new(AtomicUsize::new(0));
    let w = {
        let calls = Arc::clone(&calls);
        store
            .cursor_worker(
                &Region::all(),
                CursorWorkerConfig::default(),
                move |_, _, _| {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("first time only");
                    }
                    CursorWorkerAction::Stop
                },
            )
            .unwrap()
    };
    wait_until(|| calls.load(Ordering::SeqCst) >= 2);
    w.join().unwrap();
    assert!(matches!(
        store.cursor_worker(
            &Region::all(),
            {
                let mut c = CursorWorkerConfig::default();
                c.checkpoint_id = Some(CheckpointId::new("../x"));
                c
            },
            |_, _, _| CursorWorkerAction::Stop
        ),
        Err(StoreError::InvalidCheckpointId { .. })
    ));
}

#[test]
fn a_worker_without_a_checkpoint_restarts_after_the_last_batch_it_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(StoreConfig::new(tmp.path())).unwrap());
    let seqs: Vec<u64> = (0..4u32)
        .map(|i| store.append(&coord(), KIND, &i).unwrap().sequence)
        .collect();
    let mut cfg = CursorWorkerConfig::default();
    cfg.batch_size = 1;
    cfg.restart = RestartPolicy::Bounded {
        max_restarts: 2,
        within_ms: 60_000,
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (panic_at, last) = (seqs[2], seqs[3]);
    let w = {
        let seen = Arc::clone(&seen);
        let panicked = std::sync::atomic::AtomicBool::new(false);
        store
            .cursor_worker(&Region::entity("w"), cfg, move |batch, _, _| {
                let s = batch[0].global_sequence;
                seen.lock().unwrap().push(s);
                if s == panic_at && !panicked.swap(true, Ordering::SeqCst) {
                    panic!("once, on the third event");
                }
                if s == last {
                    CursorWorkerAction::Stop
                } else {
                    CursorWorkerAction::Continue
                }
            })
            .unwrap()
    };
    w.join().unwrap();
    // The batch it panicked on comes again; the finished ones do not.
    assert_eq!(
        *seen.lock().unwrap(),
        vec![seqs[0], seqs[1], seqs[2], seqs[2], seqs[3]]
    );
}

/// Spawns a checkpointed worker and, right away, checks that its consumer is registered: a
/// second `consumer(id)` is refused with `ConsumerBusy` (on the old code it could win the race
/// and the worker then failed). `Err` names what was seen.
fn registered_when_spawn_returns(seed: fn(StoreConfig) -> StoreConfig) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(seed(StoreConfig::new(tmp.path()))).unwrap());
    for round in 0..20 {
        let id = CheckpointId::new(format!("reg{round}"));
        let mut cfg = CursorWorkerConfig::default();
        cfg.checkpoint_id = Some(id.clone());
        let w = store
            .cursor_worker(&Region::entity("w"), cfg, |_, _, _| {
                CursorWorkerAction::Continue
            })
            .unwrap();
        let second = store.consumer(&id, &Region::entity("w")).map(|_| ());
        w.stop_and_join().unwrap();
        match second {
            Err(StoreError::ConsumerBusy { .. }) => {}
            other => {
                return Err(format!(
                    "round {round}: a second consumer(id) right after spawning: {other:?}"
                ))
            }
        }
    }
    Ok(())
}

#[test]
fn a_checkpointed_worker_is_registered_when_spawning_returns() {
    registered_when_spawn_returns(|c| c).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_worker_registers_late_is_caught() {
    let err = registered_when_spawn_returns(|c| {
        c.with_mutant(batpak::__testing::Mutant::WorkerRegistersLate)
    })
    .unwrap_err();
    assert!(err.contains("round 0"), "{err}");
}
