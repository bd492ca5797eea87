//! INV-EXCLUSIVE: at most one `Store` handle owns a data directory at a time; a second open
//! fails with `StoreLocked` and never damages the first. With its seeded bug.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use batpak::store::StoreLockMode;
use std::path::Path;

type Seed = fn(StoreConfig) -> StoreConfig;

fn real(c: StoreConfig) -> StoreConfig {
    c
}

const KIND: EventKind = EventKind::custom(0x4, 8);

fn coord() -> Coordinate {
    Coordinate::new("e", "s").unwrap()
}

/// The witness: while one store is open, a second open of its directory (from this thread
/// and from another) fails with `StoreLocked` naming the directory; the first store keeps
/// working, and a reopen after it closed finds every event it acknowledged.
fn check_exclusive(dir: &Path, seed: Seed) -> Result<(), String> {
    let first = Store::open(seed(StoreConfig::new(dir))).unwrap();
    first
        .append(&coord(), KIND, &serde_json::json!({"n": 0}))
        .unwrap();
    let attempts: Vec<Result<Store, StoreError>> = vec![
        Store::open(seed(StoreConfig::new(dir))),
        std::thread::scope(|s| {
            s.spawn(|| Store::open(seed(StoreConfig::new(dir))))
                .join()
                .unwrap()
        }),
    ];
    for (i, got) in attempts.into_iter().enumerate() {
        match got {
            Err(StoreError::StoreLocked {
                path: d,
                mode: StoreLockMode::Mutable,
            }) if d == dir => {}
            Err(e) => return Err(format!("INV-EXCLUSIVE: second open #{i} failed with {e}")),
            Ok(second) => {
                // Both handles write: the damage the invariant exists to prevent.
                let _ = second.append(&coord(), KIND, &serde_json::json!({"second": i}));
                let _ = second.close();
                return Err(format!(
                    "INV-EXCLUSIVE: a second open #{i} of a directory held by an open store \
                     succeeded"
                ));
            }
        }
    }
    first
        .append(&coord(), KIND, &serde_json::json!({"n": 1}))
        .unwrap();
    first.close().unwrap();
    let again = Store::open(seed(StoreConfig::new(dir))).unwrap();
    let n = again.stream("e").len();
    again.close().unwrap();
    if n != 2 {
        return Err(format!(
            "INV-EXCLUSIVE: after the refused opens {n} events remain, not 2"
        ));
    }
    Ok(())
}

#[test]
fn a_second_open_is_refused_and_leaves_the_first_intact() {
    let tmp = tempfile::tempdir().unwrap();
    check_exclusive(tmp.path(), real).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_open_skips_lock_is_caught_by_the_exclusive_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let err = check_exclusive(tmp.path(), |c| c.with_mutant(Mutant::OpenSkipsLock))
        .expect_err("the seeded bug OpenSkipsLock was not caught");
    assert!(err.starts_with("INV-EXCLUSIVE"), "reported as {err}");
}
