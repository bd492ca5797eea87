//! INV-NO-HANG for fenced tickets: a fenced ticket resolves at commit or cancel, so waiting for
//! it on the thread that holds the open fence answers `FenceTicketPending` at once instead of
//! blocking forever; another thread's wait blocks until the fence ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use std::time::{Duration, Instant};

/// How a test configures the store's seeded bug: [`real`] for the real store; the mutant
/// witnesses (mutant build only, `--cfg batpak_mutant`) seed one with `with_mutant`.
type Seed = fn(StoreConfig) -> StoreConfig;

/// The real store: no seeded bug.
fn real(c: StoreConfig) -> StoreConfig {
    c
}

fn setup() -> (tempfile::TempDir, Store, Coordinate, EventKind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).unwrap();
    (
        dir,
        store,
        Coordinate::new("cart:1", "shop").unwrap(),
        EventKind::custom(0x3, 1),
    )
}

#[test]
fn waiting_on_a_fenced_ticket_before_commit_on_the_fence_thread_returns_at_once() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let ticket = fence.submit(&coord, kind, &1u32).unwrap();
    let started = Instant::now();
    let err = ticket.wait().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, StoreError::FenceTicketPending { fence: f } if f == fence.token()));
    assert!(
        !err.is_definite(),
        "the write is still pending, not refused"
    );
    // The write itself goes on: commit publishes it.
    fence.commit().unwrap();
    assert_eq!(store.stream("cart:1").len(), 1);
}

#[test]
fn a_fenced_batch_ticket_follows_the_same_rule() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let item = BatchAppendItem::new(
        coord,
        kind,
        &1u32,
        AppendOptions::default(),
        CausationRef::None,
    )
    .unwrap();
    let ticket = fence.submit_batch(vec![item]).unwrap();
    assert!(matches!(
        ticket.wait(),
        Err(StoreError::FenceTicketPending { .. })
    ));
    fence.cancel().unwrap();
    assert!(store.stream("cart:1").is_empty());
}

#[test]
fn another_thread_waits_until_the_fence_commits() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let ticket = fence.submit(&coord, kind, &7u32).unwrap();
    std::thread::scope(|s| {
        let waiter = s.spawn(move || ticket.wait());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "the ticket must not resolve before commit"
        );
        fence.commit().unwrap();
        let receipt = waiter.join().unwrap().unwrap();
        assert_eq!(
            store.entry(receipt.event_id).unwrap().event_id,
            receipt.event_id
        );
    });
}

#[test]
fn after_commit_the_fence_thread_gets_the_receipt() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let t1 = fence.submit(&coord, kind, &1u32).unwrap();
    let t2 = fence.submit(&coord, kind, &2u32).unwrap();
    fence.commit().unwrap();
    let (r1, r2) = (t1.wait().unwrap(), t2.wait().unwrap());
    assert_eq!((r1.clock, r2.clock), (1, 2));
}

#[test]
fn after_cancel_the_fence_thread_gets_cancelled() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let t = fence.submit(&coord, kind, &1u32).unwrap();
    fence.cancel().unwrap();
    assert!(matches!(
        t.wait(),
        Err(StoreError::VisibilityFenceCancelled)
    ));
    drop(store);
}

/// Runs `f` on its own thread; `Err` naming INV-NO-HANG if it does not finish within `secs`
/// seconds (the stuck thread is left behind; the test binary still exits).
fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .map_err(|_| format!("INV-NO-HANG: {what} did not return within {secs} s"))
}

/// The thread that began a fence submits, a scoped worker submits through `&fence` and waits
/// for its own ticket, then the beginning thread waits for its ticket before committing: both
/// waits must answer `FenceTicketPending` at once (each thread may still have to end the
/// fence), and commit publishes both writes.
fn fence_shared_with_a_scoped_worker(seed: Seed) -> Result<(), String> {
    let (owner, worker, published) = within(5, "the fence owner's wait", move || {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(seed(StoreConfig::new(dir.path()))).unwrap();
        let (coord, kind) = (
            Coordinate::new("cart:1", "shop").unwrap(),
            EventKind::custom(0x3, 1),
        );
        let fence = store.begin_visibility_fence().unwrap();
        let t0 = fence.submit(&coord, kind, &0u32).unwrap();
        let worker = std::thread::scope(|s| {
            s.spawn(|| fence.submit(&coord, kind, &1u32).unwrap().wait())
                .join()
                .unwrap()
        });
        let owner = t0.wait();
        fence.commit().unwrap();
        (owner, worker, store.stream("cart:1").len())
    })?;
    for (who, answer) in [("owner", owner), ("worker", worker)] {
        if !matches!(answer, Err(StoreError::FenceTicketPending { .. })) {
            return Err(format!("INV-NO-HANG: the {who}'s wait answered {answer:?}"));
        }
    }
    if published != 2 {
        return Err(format!(
            "{published} of 2 fenced writes published at commit"
        ));
    }
    Ok(())
}

#[test]
fn a_fence_shared_with_a_scoped_worker_never_hangs_the_thread_that_began_it() {
    fence_shared_with_a_scoped_worker(real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_fence_remembers_last_thread_is_caught() {
    let err =
        fence_shared_with_a_scoped_worker(|c| c.with_mutant(Mutant::FenceRemembersLastThread))
            .unwrap_err();
    assert!(err.starts_with("INV-NO-HANG"), "{err}");
}

#[test]
fn tickets_submitted_by_a_scoped_worker_resolve_after_the_owner_commits() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let t0 = fence.submit(&coord, kind, &0u32).unwrap();
    let tickets: Vec<AppendTicket> = std::thread::scope(|s| {
        (0..3u32)
            .map(|i| {
                let fence = &fence;
                let coord = &coord;
                s.spawn(move || fence.submit(coord, kind, &(i + 1)).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect()
    });
    fence.commit().unwrap();
    let mut clocks: Vec<u32> = tickets
        .into_iter()
        .map(|t| t.wait().unwrap().clock)
        .collect();
    clocks.push(t0.wait().unwrap().clock);
    clocks.sort_unstable();
    assert_eq!(clocks, vec![1, 2, 3, 4]);
}

#[test]
fn a_thread_that_only_received_a_ticket_still_waits_for_the_commit() {
    let (_d, store, coord, kind) = setup();
    let fence = store.begin_visibility_fence().unwrap();
    let ticket = std::thread::scope(|s| {
        s.spawn(|| fence.submit(&coord, kind, &1u32).unwrap())
            .join()
            .unwrap()
    });
    std::thread::scope(|s| {
        let waiter = s.spawn(move || ticket.wait());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "resolved before commit");
        fence.commit().unwrap();
        assert_eq!(waiter.join().unwrap().unwrap().clock, 1);
    });
}

#[test]
fn a_ticket_keeps_its_answer_for_later_try_check_and_wait() {
    let (_d, store, coord, kind) = setup();
    let ticket = store.submit(&coord, kind, &1u32).unwrap();
    let first = loop {
        if let Some(answer) = ticket.try_check() {
            break answer.unwrap();
        }
        std::thread::yield_now();
    };
    let again = ticket
        .try_check()
        .expect("answered once, answered again")
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(ticket.wait().unwrap(), first, "wait after try_check");

    // An error answer is kept too (here: a CAS refusal).
    let refused = store
        .submit_with_options(&coord, kind, &2u32, AppendOptions::default().with_cas(0))
        .unwrap();
    let first = loop {
        if let Some(answer) = refused.try_check() {
            break answer.unwrap_err();
        }
        std::thread::yield_now();
    };
    assert!(
        matches!(first, StoreError::SequenceMismatch { .. }),
        "{first}"
    );
    assert!(matches!(
        refused.try_check(),
        Some(Err(StoreError::SequenceMismatch { .. }))
    ));
    assert!(matches!(
        refused.wait(),
        Err(StoreError::SequenceMismatch { .. })
    ));
}
