//! Reactors on real files: `react_loop_typed` / `react_loop_multi` write each reaction
//! exactly once (INV-EXACTLY-ONCE) across stops, reopens, handler panics and SIGKILL, with a
//! checkpoint (reactions and checkpoint in one atomic unit) and without one (deterministic
//! idempotency keys, so a replay from the start writes nothing); decode failures and handler
//! errors stop the reactor with what went wrong and write nothing of the failing event.
//!
//! The SIGKILL tests re-execute this binary as a child that appends sources and reacts until
//! killed; the parent then reopens the directory, lets a reactor finish the log, and counts
//! the reactions of each source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use batpak::event::StoredEvent;
use batpak::prelude::*;
use batpak::store::{AtLeastOnce, CheckpointId};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(serde::Serialize, serde::Deserialize, EventPayload, Debug)]
#[batpak(category = 0x7, type_id = 1)]
struct Source {
    n: u64,
}

#[derive(serde::Serialize, serde::Deserialize, EventPayload, Debug)]
#[batpak(category = 0x7, type_id = 2)]
struct Reaction {
    of: u64,
}

#[derive(serde::Serialize, serde::Deserialize, EventPayload, Debug)]
#[batpak(category = 0x7, type_id = 3)]
struct Other {
    label: String,
}

#[derive(Debug)]
struct Refused(u64);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused source {}", self.0)
    }
}
impl std::error::Error for Refused {}

fn src() -> Coordinate {
    Coordinate::new("src", "react").unwrap()
}

fn out() -> Coordinate {
    Coordinate::new("out", "react").unwrap()
}

/// One reaction per source; panics on `panic_on` (the first `panics` times) and refuses
/// `refuse`.
struct Echo {
    panic_on: Option<u64>,
    panics: Arc<AtomicU32>,
    refuse: Option<u64>,
    seen_witness: bool,
}

impl Echo {
    fn new() -> Self {
        Self {
            panic_on: None,
            panics: Arc::new(AtomicU32::new(0)),
            refuse: None,
            seen_witness: false,
        }
    }
}

impl TypedReactive<Source> for Echo {
    type Error = Refused;
    fn react(
        &mut self,
        event: &StoredEvent<Source>,
        out_batch: &mut ReactionBatch,
        witness: Option<&AtLeastOnce>,
    ) -> Result<(), Refused> {
        let n = event.event.payload.n;
        self.seen_witness |= witness.is_some();
        out_batch
            .push_typed(out(), &Reaction { of: n }, CausationRef::None)
            .unwrap();
        if self.refuse == Some(n) {
            return Err(Refused(n));
        }
        if self.panic_on == Some(n) && self.panics.fetch_sub(1, Ordering::SeqCst) > 0 {
            panic!("handler panics on {n}");
        }
        Ok(())
    }
}

fn wait_for(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Reactions per source `n`, and each reaction's causation checked against its source.
fn reactions(store: &Store) -> BTreeMap<u64, u32> {
    let mut per = BTreeMap::new();
    for e in store.by_fact_typed::<Reaction>() {
        let r = store.get_typed::<Reaction>(e.event_id).unwrap();
        *per.entry(r.event.payload.of).or_insert(0) += 1;
        let cause = e.causation_id.expect("a reaction is caused by its source");
        let s = store.get_typed::<Source>(cause).unwrap();
        assert_eq!(s.event.payload.n, r.event.payload.of);
        assert_eq!(
            Some(e.correlation_id),
            store.entry(cause).map(|c| c.correlation_id)
        );
    }
    per
}

/// Every source `0..n` has exactly one reaction.
fn exactly_once(store: &Store, n: u64) -> Result<(), String> {
    let per = reactions(store);
    for s in 0..n {
        let k = per.get(&s).copied().unwrap_or(0);
        if k != 1 {
            return Err(format!("INV-EXACTLY-ONCE: source {s} has {k} reactions"));
        }
    }
    if let Some(extra) = per.keys().find(|s| **s >= n) {
        return Err(format!(
            "INV-EXACTLY-ONCE: reaction to unknown source {extra}"
        ));
    }
    Ok(())
}

fn append_sources(store: &Store, range: std::ops::Range<u64>) {
    for n in range {
        store.append_typed(&src(), &Source { n }).unwrap();
    }
}

fn open(dir: &Path, cfg: impl Fn(StoreConfig) -> StoreConfig) -> Arc<Store> {
    Arc::new(Store::open(cfg(StoreConfig::new(dir))).unwrap())
}

fn close(store: Arc<Store>) {
    match Arc::try_unwrap(store) {
        Ok(s) => {
            s.close().unwrap();
        }
        Err(_) => panic!("the reactor still holds the store"),
    }
}

/// Runs a reactor over the log until the reaction to source `until - 1` exists, then stops it.
fn react_until(store: &Arc<Store>, config: ReactorConfig, until: u64) {
    let h = store
        .react_loop_typed::<Source, _>(&Region::all(), config, Echo::new())
        .unwrap();
    wait_for(|| reactions(store).contains_key(&(until - 1)));
    h.stop_and_join().unwrap();
}

fn checkpointed() -> ReactorConfig {
    ReactorConfig {
        checkpoint_id: Some(CheckpointId::new("echo")),
        batch_size: 4,
        ..ReactorConfig::default()
    }
}

#[test]
fn a_checkpointed_reactor_resumes_after_its_checkpoint_across_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), |c| c);
    append_sources(&store, 0..10);
    react_until(&store, checkpointed(), 10);
    exactly_once(&store, 10).unwrap();
    close(store);

    let store = open(tmp.path(), |c| c);
    let info = store.consumers();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].id.as_str(), "echo");
    assert!(info[0].committed.is_some());
    append_sources(&store, 10..15);
    react_until(&store, checkpointed(), 15);
    exactly_once(&store, 15).unwrap();
    close(store);
}

/// A reactor without a checkpoint, run over the same log twice (with a reopen between): the
/// second run replays every source from the start.
fn keyed_replay(dir: &Path, cfg: impl Fn(StoreConfig) -> StoreConfig) -> Result<(), String> {
    let store = open(dir, &cfg);
    append_sources(&store, 0..8);
    react_until(&store, ReactorConfig::default(), 8);
    exactly_once(&store, 8)?;
    close(store);
    let store = open(dir, &cfg);
    append_sources(&store, 8..9);
    react_until(&store, ReactorConfig::default(), 9);
    let r = exactly_once(&store, 9);
    close(store);
    r
}

#[test]
fn a_reactor_without_checkpoint_replays_from_the_start_and_writes_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    keyed_replay(tmp.path(), |c| c).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_reaction_keys_omitted_is_caught() {
    use batpak::__testing::Mutant;
    let tmp = tempfile::tempdir().unwrap();
    let err = keyed_replay(tmp.path(), |c| c.with_mutant(Mutant::ReactionKeysOmitted)).unwrap_err();
    assert!(err.starts_with("INV-EXACTLY-ONCE"), "reported as {err}");
}

#[test]
fn a_handler_panic_restarts_the_reactor_without_losing_or_repeating_a_reaction() {
    for config in [checkpointed(), ReactorConfig::default()] {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path(), |c| c);
        append_sources(&store, 0..12);
        let mut echo = Echo::new();
        echo.panic_on = Some(6);
        echo.panics.store(1, Ordering::SeqCst);
        let h = store
            .react_loop_typed::<Source, _>(&Region::all(), config, echo)
            .unwrap();
        wait_for(|| reactions(&store).contains_key(&11));
        h.stop_and_join().unwrap();
        exactly_once(&store, 12).unwrap();
        close(store);
    }
}

#[test]
fn a_handler_that_keeps_panicking_spends_the_budget_and_join_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), |c| c);
    append_sources(&store, 0..3);
    let mut echo = Echo::new();
    echo.panic_on = Some(1);
    echo.panics.store(u32::MAX, Ordering::SeqCst);
    let config = ReactorConfig {
        restart_policy: RestartPolicy::Bounded {
            max_restarts: 2,
            within_ms: 60_000,
        },
        ..checkpointed()
    };
    let h = store
        .react_loop_typed::<Source, _>(&Region::all(), config, echo)
        .unwrap();
    let err = h.join().unwrap_err();
    assert!(matches!(err, ReactorError::RestartBudgetExhausted), "{err}");
    // Source 0's reaction is committed; nothing of the panicking source is.
    let per = reactions(&store);
    assert_eq!(per.get(&0), Some(&1));
    assert_eq!(per.get(&1), None);
    close(store);
}

#[test]
fn a_handler_error_stops_the_reactor_and_writes_nothing_of_that_event() {
    for config in [checkpointed(), ReactorConfig::default()] {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path(), |c| c);
        append_sources(&store, 0..6);
        let mut echo = Echo::new();
        echo.refuse = Some(3);
        let h = store
            .react_loop_typed::<Source, _>(&Region::all(), config.clone(), echo)
            .unwrap();
        match h.join() {
            Err(ReactorError::User(Refused(3))) => {}
            other => panic!("expected User(Refused(3)), got {other:?}"),
        }
        let per = reactions(&store);
        assert_eq!(per.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        if config.checkpoint_id.is_some() {
            // The checkpoint stops before the refused event, so a fixed handler resumes there.
            let h = store
                .react_loop_typed::<Source, _>(&Region::all(), config, Echo::new())
                .unwrap();
            wait_for(|| reactions(&store).contains_key(&5));
            h.stop_and_join().unwrap();
            exactly_once(&store, 6).unwrap();
        }
        close(store);
    }
}

#[test]
fn a_payload_that_does_not_decode_is_a_decode_error_not_a_skip_or_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), |c| c);
    append_sources(&store, 0..2);
    // Kind of Source, payload of another shape.
    store
        .append(&src(), <Source as EventPayload>::KIND, &"not a source")
        .unwrap();
    append_sources(&store, 2..3);
    let h = store
        .react_loop_typed::<Source, _>(&Region::all(), ReactorConfig::default(), Echo::new())
        .unwrap();
    match h.join() {
        Err(ReactorError::Decode(TypedDecodeError::DecodeFailure { kind, .. })) => {
            assert_eq!(kind, <Source as EventPayload>::KIND)
        }
        other => panic!("expected a decode failure, got {other:?}"),
    }
    let per = reactions(&store);
    assert_eq!(per.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
    close(store);
}

#[test]
fn dropping_the_handle_stops_the_reactor_and_releases_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), |c| c);
    let h = store
        .react_loop_typed::<Source, _>(&Region::all(), checkpointed(), Echo::new())
        .unwrap();
    append_sources(&store, 0..2);
    wait_for(|| reactions(&store).len() == 2);
    drop(h);
    close(store);
}

#[test]
fn a_bad_checkpoint_id_is_refused_when_spawning() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), |c| c);
    let config = ReactorConfig {
        checkpoint_id: Some(CheckpointId::new("../escape")),
        ..ReactorConfig::default()
    };
    let err = store
        .react_loop_typed::<Source, _>(&Region::all(), config, Echo::new())
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InvalidCheckpointId { .. }),
        "{err}"
    );
    close(store);
}

#[derive(MultiEventReactor)]
#[batpak(input = RawMsgpackInput, error = Refused)]
#[batpak(event = Source, handler = on_source)]
#[batpak(event = Other, handler = on_other)]
struct Both {
    sources: u64,
    others: Vec<String>,
}

impl Both {
    fn on_source(
        &mut self,
        e: &StoredEvent<Source>,
        out_batch: &mut ReactionBatch,
        _w: Option<&AtLeastOnce>,
    ) -> Result<(), Refused> {
        self.sources += 1;
        out_batch
            .push_typed(
                out(),
                &Reaction {
                    of: e.event.payload.n,
                },
                CausationRef::None,
            )
            .map_err(|_| Refused(e.event.payload.n))
    }
    fn on_other(
        &mut self,
        e: &StoredEvent<Other>,
        _out: &mut ReactionBatch,
        _w: Option<&AtLeastOnce>,
    ) -> Result<(), Refused> {
        self.others.push(e.event.payload.label.clone());
        Ok(())
    }
}

#[derive(MultiEventReactor)]
#[batpak(input = JsonValueInput, error = Refused)]
#[batpak(event = Source, handler = on_source)]
struct JsonLane;

impl JsonLane {
    fn on_source(
        &mut self,
        e: &StoredEvent<Source>,
        out_batch: &mut ReactionBatch,
        _w: Option<&AtLeastOnce>,
    ) -> Result<(), Refused> {
        out_batch
            .push_typed(
                out(),
                &Reaction {
                    of: e.event.payload.n,
                },
                CausationRef::None,
            )
            .map_err(|_| Refused(e.event.payload.n))
    }
}

#[test]
fn the_derived_multi_reactor_routes_each_kind_and_skips_the_rest() {
    assert_eq!(
        <Both as MultiReactive<RawMsgpackInput>>::relevant_event_kinds(),
        &[
            <Source as EventPayload>::KIND,
            <Other as EventPayload>::KIND
        ]
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path(), |c| c);
    append_sources(&store, 0..3);
    store
        .append_typed(&src(), &Other { label: "x".into() })
        .unwrap();
    let h = store
        .react_loop_multi_raw(
            &Region::all(),
            checkpointed(),
            Both {
                sources: 0,
                others: Vec::new(),
            },
        )
        .unwrap();
    wait_for(|| reactions(&store).len() == 3);
    h.stop_and_join().unwrap();
    exactly_once(&store, 3).unwrap();

    // The JSON lane's hand-callable dispatch decodes from the JSON value; the runner uses
    // the stored MessagePack. Both reach the same handler.
    let mut lane = JsonLane;
    let mut batch = ReactionBatch::default();
    let e = store
        .get(store.by_fact_typed::<Source>()[0].event_id)
        .unwrap();
    MultiReactive::<JsonValueInput>::dispatch(&mut lane, &e, &mut batch, None).unwrap();
    assert_eq!(batch.len(), 1);
    let bad = StoredEvent {
        coordinate: e.coordinate.clone(),
        event: Event {
            payload: serde_json::json!("not a source"),
            ..e.event.clone()
        },
    };
    let err =
        MultiReactive::<JsonValueInput>::dispatch(&mut lane, &bad, &mut batch, None).unwrap_err();
    assert!(matches!(err, MultiDispatchError::Decode(_)), "{err}");
    close(store);
}

const MODE_VAR: &str = "BATPAK_REACTOR_CHILD";
const DIR_VAR: &str = "BATPAK_REACTOR_DIR";
const PROTO: &str = "@@reactor@@ ";

fn child_config(mode: &str) -> ReactorConfig {
    match mode {
        "checkpoint" => checkpointed(),
        _ => ReactorConfig {
            batch_size: 4,
            ..ReactorConfig::default()
        },
    }
}

/// The child: appends sources (numbered on from what the log holds) while a reactor runs,
/// until killed.
#[test]
fn child_entry() {
    let Ok(mode) = std::env::var(MODE_VAR) else {
        return;
    };
    let dir = std::env::var(DIR_VAR).unwrap();
    let store = Arc::new(Store::open(StoreConfig::new(&dir)).unwrap());
    let _h = store
        .react_loop_typed::<Source, _>(&Region::all(), child_config(&mode), Echo::new())
        .unwrap();
    let mut n = store.by_fact_typed::<Source>().len() as u64;
    loop {
        store.append_typed(&src(), &Source { n }).unwrap();
        n += 1;
        println!("{PROTO}{n} {}", store.by_fact_typed::<Reaction>().len());
    }
}

fn killed_at_any_point(mode: &str) {
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(MODE_VAR, mode)
            .env(DIR_VAR, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill once the reactor has reacted a varying amount.
        let want = 5 + round * 9;
        loop {
            let line = lines.next().unwrap().unwrap();
            if let Some(rest) = line.strip_prefix(PROTO) {
                let reacted: u64 = rest.split(' ').nth(1).unwrap().parse().unwrap();
                if reacted >= want {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let store = open(tmp.path(), |c| c);
        let sources = store.by_fact_typed::<Source>().len() as u64;
        let before = reactions(&store);
        assert!(
            before.values().all(|k| *k == 1),
            "INV-EXACTLY-ONCE: {before:?}"
        );
        react_until(&store, child_config(mode), sources);
        exactly_once(&store, sources).unwrap();
        close(store);
    }
}

#[test]
fn a_checkpointed_reactor_killed_at_any_point_writes_each_reaction_once() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    killed_at_any_point("checkpoint");
}

#[test]
fn a_keyed_reactor_killed_at_any_point_writes_each_reaction_once() {
    if std::env::var(MODE_VAR).is_ok() {
        return;
    }
    killed_at_any_point("keyed");
}
