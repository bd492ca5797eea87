//! Store setup shared by the integration tests that open real stores in temporary
//! directories (`tests/projection.rs`, `tests/reactor.rs`, ...): include it with
//! `#[path = "support/store.rs"] mod support;`. Each test file uses part of it.
#![allow(dead_code)]

use batpak::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh temporary directory (removed when dropped).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"))
}

/// Opens the store in `dir` with `cfg` applied to its default configuration.
pub fn open_with(dir: &Path, cfg: impl FnOnce(StoreConfig) -> StoreConfig) -> Store {
    Store::open(cfg(StoreConfig::new(dir)))
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Opens the store in `dir` with the default configuration.
pub fn open(dir: &Path) -> Store {
    open_with(dir, |c| c)
}

/// A store in a fresh temporary directory (keep the directory alive while the store is).
pub fn temp_store(cfg: impl FnOnce(StoreConfig) -> StoreConfig) -> (tempfile::TempDir, Store) {
    let dir = temp_dir();
    let store = open_with(dir.path(), cfg);
    (dir, store)
}

/// [`open_with`], shared between threads (reactors, watchers, writers).
pub fn open_shared(dir: &Path, cfg: impl FnOnce(StoreConfig) -> StoreConfig) -> Arc<Store> {
    Arc::new(open_with(dir, cfg))
}

/// Closes a shared store; panics if another handle (a reactor, a watcher) still holds it.
pub fn close_shared(store: Arc<Store>) {
    match Arc::try_unwrap(store) {
        Ok(s) => {
            s.close().unwrap_or_else(|e| panic!("close: {e}"));
        }
        Err(_) => panic!("another handle still holds the store"),
    }
}

/// The coordinate `entity` in `scope`.
pub fn coord_in(entity: &str, scope: &str) -> Coordinate {
    Coordinate::new(entity, scope).unwrap_or_else(|e| panic!("coordinate {entity}/{scope}: {e}"))
}

/// A projection that counts the events it folds; `INCREMENTAL` is its answer to
/// `EventSourced::supports_incremental_apply` (whether a cache row may be brought up to date
/// by applying the newer events, or the fold starts over from the log).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventCount<const INCREMENTAL: bool>(pub usize);

impl<const INCREMENTAL: bool> EventSourced for EventCount<INCREMENTAL> {
    type Input = JsonValueInput;
    fn from_events(events: &[Event<serde_json::Value>]) -> Option<Self> {
        Some(EventCount(events.len()))
    }
    fn apply_event(&mut self, _: &Event<serde_json::Value>) {
        self.0 += 1;
    }
    fn relevant_event_kinds() -> &'static [EventKind] {
        &[]
    }
    fn supports_incremental_apply() -> bool {
        INCREMENTAL
    }
}

/// Polls `cond` until it holds; panics after 20 s (a hang, not a timing assertion).
pub fn wait_for(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}
