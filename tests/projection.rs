//! Projections against real files (INV-PROJECTION): `project` equals a plain fold of the
//! entity's visible events; a payload that does not decode is `ProjectionDecode` naming the
//! event (never a panic, never a skipped event); time travel, region read models,
//! generations, commands with CAS, in-memory snapshots and the on-disk cache (stable keys,
//! store identity, durable watermarks, schema versions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(batpak_mutant)]
use batpak::__testing::Mutant;
use batpak::prelude::*;
use batpak::store::{CacheMeta, ReadOnly};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};

#[path = "support/store.rs"]
mod support;
use support::{close_shared, coord_in, open_shared, temp_dir, temp_store};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x2, type_id = 1)]
struct Deposited {
    amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x2, type_id = 2)]
struct Withdrawn {
    amount: i64,
}

/// A kind no projection here reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, EventPayload)]
#[batpak(category = 0x2, type_id = 3)]
struct Noted {
    text: String,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, EventSourced)]
#[batpak(input = JsonValueInput, cache_version = 1)]
#[batpak(event = Deposited, handler = on_deposit)]
#[batpak(event = Withdrawn, handler = on_withdraw)]
struct Balance {
    balance: i64,
    ops: u64,
    /// Order-sensitive: a fold in another order or with a skipped event differs.
    trail: u64,
}

impl Balance {
    fn on_deposit(&mut self, d: &Deposited) {
        self.step(d.amount);
    }
    fn on_withdraw(&mut self, w: &Withdrawn) {
        self.step(-w.amount);
    }
    fn step(&mut self, delta: i64) {
        self.balance += delta;
        self.ops += 1;
        self.trail = self
            .trail
            .wrapping_mul(1_000_003)
            .wrapping_add(delta as u64);
    }
}

/// The same fold on the raw lane.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, EventSourced)]
#[batpak(input = RawMsgpackInput)]
#[batpak(event = Deposited, handler = on_deposit)]
#[batpak(event = Withdrawn, handler = on_withdraw)]
struct RawBalance {
    inner: Balance,
}

impl RawBalance {
    fn on_deposit(&mut self, d: &Deposited) {
        self.inner.on_deposit(d);
    }
    fn on_withdraw(&mut self, w: &Withdrawn) {
        self.inner.on_withdraw(w);
    }
}

/// The plain fold the projection must equal: the entity's visible events, in stream order,
/// decoded by hand.
fn plain_fold<S>(store: &Store<S>, entity: &str, upto: Option<u64>) -> Option<Balance> {
    let mut state: Option<Balance> = None;
    for e in store.stream(entity) {
        if upto.is_some_and(|u| e.global_sequence > u) {
            continue;
        }
        let raw = store.get_raw(e.event_id).unwrap();
        let delta = if e.kind == Deposited::KIND {
            rmp_serde::from_slice::<Deposited>(&raw.event.payload)
                .unwrap()
                .amount
        } else if e.kind == Withdrawn::KIND {
            -rmp_serde::from_slice::<Withdrawn>(&raw.event.payload)
                .unwrap()
                .amount
        } else {
            continue;
        };
        state.get_or_insert_with(Balance::default).step(delta);
    }
    state
}

fn coord(entity: &str) -> Coordinate {
    coord_in(entity, "bank")
}

#[test]
fn both_lanes_equal_the_plain_fold_and_skip_other_kinds() {
    let (_dir, store) = temp_store(|c| c);
    assert_eq!(
        store
            .project::<Balance>("acct:1", &Freshness::Consistent)
            .unwrap(),
        None
    );
    let c = coord("acct:1");
    store.append_typed(&c, &Deposited { amount: 10 }).unwrap();
    store.append_typed(&c, &Noted { text: "x".into() }).unwrap();
    store.append_typed(&c, &Withdrawn { amount: 3 }).unwrap();
    store
        .append_typed(&coord("acct:2"), &Deposited { amount: 99 })
        .unwrap();
    let json = store
        .project::<Balance>("acct:1", &Freshness::Consistent)
        .unwrap()
        .unwrap();
    assert_eq!((json.balance, json.ops), (7, 2));
    assert_eq!(Some(json.clone()), plain_fold(&store, "acct:1", None));
    let raw = store
        .project::<RawBalance>("acct:1", &Freshness::MaybeStale { max_stale_ms: 10 })
        .unwrap()
        .unwrap();
    assert_eq!(raw.inner, json);
    assert_eq!(
        Balance::relevant_event_kinds(),
        &[Deposited::KIND, Withdrawn::KIND]
    );
    assert_eq!(Balance::schema_version(), 1);
    assert!(Balance::supports_incremental_apply());
}

/// A hand-written projection that is not incremental: `project` calls `try_from_events`
/// once with every event (upstream's contract) and names the event a failure starts at.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Strict {
    seen: Vec<i64>,
}

impl EventSourced for Strict {
    type Input = RawMsgpackInput;
    fn from_events(events: &[Event<Vec<u8>>]) -> Option<Self> {
        Self::try_from_events(events).unwrap_or(None)
    }
    fn apply_event(&mut self, event: &Event<Vec<u8>>) {
        let _ = self.try_apply_event(event);
    }
    fn relevant_event_kinds() -> &'static [EventKind] {
        &[Deposited::KIND]
    }
    fn try_apply_event(&mut self, event: &Event<Vec<u8>>) -> Result<(), TypedDecodeError> {
        let d: Deposited = event.decode_typed()?;
        self.seen.push(d.amount);
        Ok(())
    }
    fn try_from_events(events: &[Event<Vec<u8>>]) -> Result<Option<Self>, TypedDecodeError> {
        if events.is_empty() {
            return Ok(None);
        }
        let mut s = Strict::default();
        for e in events {
            s.try_apply_event(e)?;
        }
        Ok(Some(s))
    }
}

#[test]
fn a_payload_that_does_not_decode_is_an_error_naming_the_event_on_every_path() {
    let (_dir, store) = temp_store(|c| c);
    let c = coord("acct:bad");
    store.append_typed(&c, &Deposited { amount: 1 }).unwrap();
    store.append_typed(&c, &Deposited { amount: 2 }).unwrap();
    // Written under Deposited's kind, but not its shape.
    let bad = store.append(&c, Deposited::KIND, &"not a deposit").unwrap();
    store.append_typed(&c, &Deposited { amount: 4 }).unwrap();
    let check = |r: Result<(), StoreError>| match r {
        Err(StoreError::ProjectionDecode {
            entity,
            event_id,
            kind,
            ..
        }) => {
            assert_eq!(entity, "acct:bad");
            assert_eq!(event_id, bad.event_id);
            assert_eq!(kind, Deposited::KIND);
        }
        other => panic!("expected ProjectionDecode, got {other:?}"),
    };
    check(
        store
            .project::<Balance>("acct:bad", &Freshness::Consistent)
            .map(drop),
    );
    check(
        store
            .project::<RawBalance>("acct:bad", &Freshness::Consistent)
            .map(drop),
    );
    check(
        store
            .project::<Strict>("acct:bad", &Freshness::Consistent)
            .map(drop),
    );
    check(
        store
            .project_region::<Balance>(&Region::entity("acct:bad"), &Freshness::Consistent)
            .map(drop),
    );
    // Before the bad event, time travel still works; the derived infallible forms never
    // panic either.
    let ok = store
        .project_at::<Balance>("acct:bad", bad.sequence - 1)
        .unwrap()
        .unwrap();
    assert_eq!(ok.balance, 3);
    let err = store
        .project::<Balance>("acct:bad", &Freshness::Consistent)
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("{:032x}", bad.event_id)),
        "{err}"
    );
}

#[test]
fn time_travel_generations_and_regions() {
    let (_dir, store) = temp_store(|c| c);
    assert_eq!(store.entity_generation("acct:t"), None);
    let c = coord("acct:t");
    let mut seqs = Vec::new();
    for i in 1..=6 {
        let r = if i % 3 == 0 {
            store.append_typed(&c, &Withdrawn { amount: i }).unwrap()
        } else {
            store.append_typed(&c, &Deposited { amount: i }).unwrap()
        };
        seqs.push(r.sequence);
        store
            .append_typed(&coord("acct:other"), &Deposited { amount: 100 })
            .unwrap();
    }
    for &s in &seqs {
        assert_eq!(
            store.project_at::<Balance>("acct:t", s).unwrap(),
            plain_fold(&store, "acct:t", Some(s)),
            "as of sequence {s}"
        );
    }
    assert_eq!(store.project_at::<Balance>("acct:t", 0).unwrap(), None);
    assert_eq!(store.entity_generation("acct:t"), Some(6));
    assert!(store
        .project_if_changed::<Balance>("acct:t", 6, &Freshness::Consistent)
        .unwrap()
        .is_none());
    let (g, s) = store
        .project_if_changed::<Balance>("acct:t", 5, &Freshness::Consistent)
        .unwrap()
        .unwrap();
    assert_eq!((g, s), (6, plain_fold(&store, "acct:t", None)));
    // One read model across entities, in global order.
    let all = store
        .project_region::<Balance>(&Region::scope("bank"), &Freshness::Consistent)
        .unwrap()
        .unwrap();
    assert_eq!(all.ops, 12);
    assert_eq!(all.balance, 603); // 1 + 2 - 3 + 4 + 5 - 6 + 6 x 100
    let mut want = Balance::default();
    for e in store.by_scope("bank") {
        let raw = store.get_raw(e.event_id).unwrap();
        if e.kind == Deposited::KIND {
            want.step(
                rmp_serde::from_slice::<Deposited>(&raw.event.payload)
                    .unwrap()
                    .amount,
            );
        } else {
            want.step(
                -rmp_serde::from_slice::<Withdrawn>(&raw.event.payload)
                    .unwrap()
                    .amount,
            );
        }
    }
    assert_eq!(all, want);
}

// --------------------------------------------------------------------------- commands

#[derive(Debug, Clone)]
enum Cmd {
    Deposit(i64),
    Withdraw(i64),
}

#[derive(Debug, PartialEq)]
struct Insufficient;

impl std::fmt::Display for Insufficient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "insufficient funds")
    }
}

impl Aggregate for Balance {
    type Command = (String, Cmd);
    type Error = Insufficient;
    fn handle(
        state: Option<&Self>,
        (entity, cmd): &Self::Command,
    ) -> Result<Vec<BatchAppendItem>, Insufficient> {
        let have = state.map_or(0, |s| s.balance);
        let c = coord(entity);
        let none = AppendOptions::default();
        Ok(vec![match cmd {
            Cmd::Deposit(a) => {
                BatchAppendItem::typed(c, &Deposited { amount: *a }, none, CausationRef::None)
                    .unwrap()
            }
            Cmd::Withdraw(a) if *a <= have => {
                BatchAppendItem::typed(c, &Withdrawn { amount: *a }, none, CausationRef::None)
                    .unwrap()
            }
            Cmd::Withdraw(_) => return Err(Insufficient),
        }])
    }
}

#[test]
fn execute_decides_on_the_folded_state_and_never_loses_an_update_under_contention() {
    let dir = temp_dir();
    let store = open_shared(dir.path(), |c| c);
    let e = "acct:cmd".to_string();
    assert!(matches!(
        store.execute::<Balance>(&e, (e.clone(), Cmd::Withdraw(1))),
        Err(ExecuteError::Rejected(Insufficient))
    ));
    store
        .execute::<Balance>(&e, (e.clone(), Cmd::Deposit(5)))
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            let e = e.clone();
            std::thread::spawn(move || {
                let mut ok = 0;
                for _ in 0..25 {
                    match store.execute::<Balance>(&e, (e.clone(), Cmd::Deposit(1))) {
                        Ok(r) => {
                            assert_eq!(r.len(), 1);
                            ok += 1;
                        }
                        Err(ExecuteError::Conflict { attempts, .. }) => {
                            assert_eq!(attempts, batpak::store::projection::EXECUTE_MAX_ATTEMPTS)
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let s = store
        .project::<Balance>(&e, &Freshness::Consistent)
        .unwrap()
        .unwrap();
    assert_eq!(
        s.balance,
        5 + ok,
        "every accepted command is in the state, once"
    );
    assert_eq!(s.ops as i64, 1 + ok);
    // A withdrawal of everything, then one more is refused.
    store
        .execute::<Balance>(&e, (e.clone(), Cmd::Withdraw(s.balance)))
        .unwrap();
    assert!(matches!(
        store.execute::<Balance>(&e, (e.clone(), Cmd::Withdraw(1))),
        Err(ExecuteError::Rejected(Insufficient))
    ));
}

// --------------------------------------------------------------------------- snapshots

#[test]
fn in_memory_snapshots_resume_and_stay_equal_to_the_fold_within_their_bound() {
    let (_dir, store) = temp_store(|c| {
        c.with_projection_snapshots(SnapshotPolicy {
            every_n_events: 3,
            max_entries: 2,
        })
    });
    for round in 0..6i64 {
        for e in 0..4 {
            let entity = format!("acct:s{e}");
            store
                .append_typed(&coord(&entity), &Deposited { amount: round + e })
                .unwrap();
            if round % 2 == 1 {
                store
                    .append_typed(&coord(&entity), &Withdrawn { amount: 1 })
                    .unwrap();
            }
            assert_eq!(
                store
                    .project::<Balance>(&entity, &Freshness::Consistent)
                    .unwrap(),
                plain_fold(&store, &entity, None)
            );
            assert_eq!(
                store
                    .project::<RawBalance>(&entity, &Freshness::Consistent)
                    .unwrap()
                    .map(|r| r.inner),
                plain_fold(&store, &entity, None)
            );
        }
    }
    // Time travel never uses a snapshot past its bound.
    let first = store.stream("acct:s0")[2].global_sequence;
    assert_eq!(
        store.project_at::<Balance>("acct:s0", first).unwrap(),
        plain_fold(&store, "acct:s0", Some(first))
    );
}

/// A cache that records what the store writes, to check the durable watermark rule.
type Rows = std::collections::HashMap<Vec<u8>, (Vec<u8>, CacheMeta)>;

#[derive(Default)]
struct Recording {
    rows: Mutex<Rows>,
    puts: Mutex<Vec<(usize, u64)>>,
}

struct RecHandle(Arc<Recording>);

impl ProjectionCache for RecHandle {
    fn capabilities(&self) -> batpak::store::CacheCapabilities {
        batpak::store::CacheCapabilities::none()
    }
    fn get(&self, key: &[u8]) -> Result<Option<(Vec<u8>, CacheMeta)>, StoreError> {
        Ok(self.0.rows.lock().unwrap().get(key).cloned())
    }
    fn put(&self, key: &[u8], value: &[u8], meta: CacheMeta) -> Result<(), StoreError> {
        self.0
            .puts
            .lock()
            .unwrap()
            .push((key.len(), meta.watermark));
        self.0
            .rows
            .lock()
            .unwrap()
            .insert(key.to_vec(), (value.to_vec(), meta));
        Ok(())
    }
    fn delete_prefix(&self, _: &[u8]) -> Result<u64, StoreError> {
        Ok(0)
    }
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[test]
fn the_cache_is_written_only_at_durable_events() {
    cache_rows_at_durable_events(|c| c).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_projection_cache_above_durable_is_caught() {
    let err = cache_rows_at_durable_events(|c| c.with_mutant(Mutant::ProjectionCacheAboveDurable))
        .unwrap_err();
    assert!(err.starts_with("INV-PROJECTION"), "{err}");
}

/// INV-PROJECTION's cache half: every row the store writes covers durable events only.
fn cache_rows_at_durable_events(seed: fn(StoreConfig) -> StoreConfig) -> Result<(), String> {
    let dir = temp_dir();
    let rec = Arc::new(Recording::default());
    // Deferred durability: events are visible long before they are durable.
    let cfg = seed(StoreConfig::new(dir.path()))
        .with_sync_every_n_events(1_000_000)
        .with_flush_interval(std::time::Duration::from_secs(3600));
    let store = Store::open_with_cache(cfg, Box::new(RecHandle(Arc::clone(&rec)))).unwrap();
    let c = coord("acct:d");
    for i in 0..10 {
        store.append_typed(&c, &Deposited { amount: i }).unwrap();
    }
    let durable = store.frontier().durable;
    let visible_last = store.stream("acct:d").last().unwrap().global_sequence;
    assert!(
        visible_last >= durable,
        "the events must not be durable yet"
    );
    assert_eq!(
        store
            .project::<Balance>("acct:d", &Freshness::Consistent)
            .unwrap(),
        plain_fold(&store, "acct:d", None)
    );
    for &(len, watermark) in rec.puts.lock().unwrap().iter() {
        assert_eq!(len, 32, "fixed-length keys");
        if watermark >= durable {
            return Err(format!(
                "INV-PROJECTION: a cache row covers the event at {watermark}, the durable frontier is {durable}"
            ));
        }
    }

    store.sync().unwrap();
    assert_eq!(
        store
            .project::<Balance>("acct:d", &Freshness::Consistent)
            .unwrap(),
        plain_fold(&store, "acct:d", None)
    );
    let puts = rec.puts.lock().unwrap().clone();
    let last = puts.last().expect("a row once the events are durable");
    assert_eq!(last.1, visible_last);
    // The row is what the next fold resumes from: a row whose events match today's stream
    // is trusted (here doctored, to see it used), one that does not match is ignored.
    let doctored = Balance {
        balance: 424_242,
        ops: 1,
        trail: 0,
    };
    for (value, _) in rec.rows.lock().unwrap().values_mut() {
        value.truncate(24);
        value.extend(rmp_serde::to_vec_named(&doctored).unwrap());
    }
    assert_eq!(
        store
            .project::<Balance>("acct:d", &Freshness::Consistent)
            .unwrap(),
        Some(doctored.clone())
    );
    store.append_typed(&c, &Deposited { amount: 1 }).unwrap();
    assert_eq!(
        store
            .project::<Balance>("acct:d", &Freshness::Consistent)
            .unwrap()
            .unwrap()
            .balance,
        424_243
    );
    for (_, meta) in rec.rows.lock().unwrap().values_mut() {
        meta.watermark += 1;
    }
    store.sync().unwrap();
    assert_eq!(
        store
            .project::<Balance>("acct:d", &Freshness::Consistent)
            .unwrap(),
        plain_fold(&store, "acct:d", None),
        "a row that does not match the stream is not used"
    );
    Ok(())
}

/// Every file under `dir` with its bytes.
fn dir_bytes(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p, bytes);
            }
        }
    }
    out
}

#[test]
fn read_only_stores_keep_their_cache_elsewhere_and_rows_at_sealed_events() {
    read_only_cache(|c| c).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_read_only_cache_above_sealed_is_caught() {
    let err = read_only_cache(|c| c.with_mutant(Mutant::ReadOnlyCacheAboveSealed)).unwrap_err();
    assert!(err.starts_with("INV-PROJECTION"), "{err}");
}

/// Read-only stores with a projection cache (upstream's `open_read_only_with_cache` /
/// `open_read_only_with_native_cache`): the store's directory is never written
/// (INV-READ-ONLY; a cache inside it is refused before anything is opened), folds equal the
/// plain fold, and rows are written only at events of sealed segments (a read-only handle
/// syncs nothing; the last segment may hold what a crashed writer never synced). `Err`
/// names the invariant.
fn read_only_cache(seed: fn(StoreConfig) -> StoreConfig) -> Result<(), String> {
    let root = temp_dir();
    let data = root.path().join("data");
    let cache = root.path().join("cache");
    let cfg = || seed(StoreConfig::new(&data)).with_segment_max_bytes(4096);
    {
        let store = Store::open(cfg()).unwrap();
        for i in 0..200 {
            store
                .append_typed(&coord("acct:ro"), &Deposited { amount: i })
                .unwrap();
        }
        store.close().unwrap();
    }
    let before = dir_bytes(&data);
    for inside in [
        data.clone(),
        data.join("cache"),
        data.join("x/../cache"),
        root.path().join("cache/../data/./c"),
    ] {
        assert!(
            matches!(
                Store::<ReadOnly>::open_read_only_with_native_cache(cfg(), &inside),
                Err(StoreError::Configuration(_))
            ),
            "a cache at {} was accepted",
            inside.display()
        );
    }
    assert!(!cache.exists());

    let rec = Arc::new(Recording::default());
    let reader =
        Store::<ReadOnly>::open_read_only_with_cache(cfg(), Box::new(RecHandle(Arc::clone(&rec))))
            .unwrap();
    let last_segment = reader.recovery_report().active.map(|a| a.0).unwrap();
    let stream = reader.stream("acct:ro");
    let sealed: Vec<u64> = stream
        .iter()
        .filter(|e| e.disk_pos.segment_id < last_segment)
        .map(|e| e.global_sequence)
        .collect();
    assert!(
        !sealed.is_empty() && sealed.len() < stream.len(),
        "the events span sealed segments and the last one"
    );
    assert_eq!(
        reader
            .project::<Balance>("acct:ro", &Freshness::Consistent)
            .unwrap(),
        plain_fold(&reader, "acct:ro", None)
    );
    let puts = rec.puts.lock().unwrap().clone();
    if puts.is_empty() {
        return Err("no cache row was written by the read-only store".into());
    }
    for &(_, watermark) in &puts {
        if !sealed.contains(&watermark) {
            return Err(format!(
                "INV-PROJECTION: a read-only store wrote a cache row at seq {watermark}, in the \
                 last segment (never synced by this handle)"
            ));
        }
    }
    drop(reader);

    // The native cache, twice at once (shared locks): rows outside the store's directory.
    let a = Store::<ReadOnly>::open_read_only_with_native_cache(cfg(), &cache).unwrap();
    let b = Store::<ReadOnly>::open_read_only_with_native_cache(cfg(), &cache).unwrap();
    for r in [&a, &b, &a] {
        assert_eq!(
            r.project::<Balance>("acct:ro", &Freshness::Consistent)
                .unwrap(),
            plain_fold(r, "acct:ro", None)
        );
    }
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "one row");
    drop((a, b));
    if dir_bytes(&data) != before {
        return Err("INV-READ-ONLY: the store's directory changed".into());
    }
    // A writer after the readers: the row still matches its stream.
    let store = Store::open_with_native_cache(cfg(), &cache).unwrap();
    store
        .append_typed(&coord("acct:ro"), &Withdrawn { amount: 5 })
        .unwrap();
    assert_eq!(
        store
            .project::<Balance>("acct:ro", &Freshness::Consistent)
            .unwrap(),
        plain_fold(&store, "acct:ro", None)
    );
    store.close().unwrap();
    Ok(())
}

#[test]
fn native_cache_rows_survive_reopen_and_never_cross_stores_or_versions() {
    let root = temp_dir();
    let cache = root.path().join("cache");
    let long = format!("acct:{}", "x".repeat(300));
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    for (dir, base) in [(&a, 1i64), (&b, 1000)] {
        let store = Store::open_with_native_cache(StoreConfig::new(dir), &cache).unwrap();
        for i in 0..20 {
            store
                .append_typed(&coord(&long), &Deposited { amount: base + i })
                .unwrap();
        }
        assert_eq!(
            store
                .project::<Balance>(&long, &Freshness::Consistent)
                .unwrap(),
            plain_fold(&store, &long, None)
        );
        store.close().unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "one row per store: {names:?}");
    assert!(names.iter().all(|n| n.len() == 64), "{names:?}");
    for (dir, extra) in [(&a, 5i64), (&b, 7)] {
        let store = Store::open_with_native_cache(StoreConfig::new(dir), &cache).unwrap();
        store
            .append_typed(&coord(&long), &Withdrawn { amount: extra })
            .unwrap();
        assert_eq!(
            store
                .project::<Balance>(&long, &Freshness::Consistent)
                .unwrap(),
            plain_fold(&store, &long, None)
        );
        // Another schema version of the "same" projection has its own rows.
        assert_eq!(
            store
                .project::<RawBalance>(&long, &Freshness::Consistent)
                .unwrap()
                .map(|r| r.inner),
            plain_fold(&store, &long, None)
        );
        store.close().unwrap();
    }
    // A damaged row is a miss, not an error or a wrong state.
    for n in std::fs::read_dir(&cache).unwrap() {
        let p = n.unwrap().path();
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(&p, bytes).unwrap();
    }
    let store = Store::open_with_native_cache(StoreConfig::new(&a), &cache).unwrap();
    assert_eq!(
        store
            .project::<Balance>(&long, &Freshness::Consistent)
            .unwrap(),
        plain_fold(&store, &long, None)
    );
}

#[test]
fn watch_projection_sees_every_change_and_reports_closed_only_when_closed() {
    let dir = temp_dir();
    let store = open_shared(dir.path(), |c| c);
    let c = coord("acct:w");
    store.append_typed(&c, &Deposited { amount: 1 }).unwrap();
    let mut w = store.watch_projection::<Balance>("acct:w", Freshness::Consistent);
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 2..=5 {
                store.append_typed(&c, &Deposited { amount: i }).unwrap();
            }
        })
    };
    let mut last = 0;
    while last < 5 {
        let (g, s) = w.recv().unwrap();
        assert!(g > last);
        assert_eq!(s.unwrap().ops, g);
        last = g;
    }
    writer.join().unwrap();
    drop(w);
    close_shared(store);
}

// --------------------------------------------------------------------------- the witness

/// INV-PROJECTION's witness: project after snapshots were kept and more events arrived,
/// against the plain fold. `Err` names the invariant.
fn snapshot_then_append(seed: fn(StoreConfig) -> StoreConfig) -> Result<(), String> {
    let (_dir, store) = temp_store(|c| {
        seed(c).with_projection_snapshots(SnapshotPolicy {
            every_n_events: 1,
            max_entries: 16,
        })
    });
    let c = coord("acct:m");
    for round in 0..3 {
        for i in 0..4 {
            store
                .append_typed(
                    &c,
                    &Deposited {
                        amount: round * 10 + i,
                    },
                )
                .unwrap();
        }
        let got = store
            .project::<Balance>("acct:m", &Freshness::Consistent)
            .map_err(|e| e.to_string())?;
        let want = plain_fold(&store, "acct:m", None);
        if got != want {
            return Err(format!(
                "INV-PROJECTION: project returned {got:?}, the fold of the visible events is {want:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn projection_witness_holds() {
    snapshot_then_append(|c| c).unwrap();
}

#[cfg(batpak_mutant)]
#[test]
fn mutant_projection_stale_snapshot_is_caught() {
    let err = snapshot_then_append(|c| c.with_mutant(Mutant::ProjectionStaleSnapshot)).unwrap_err();
    assert!(err.starts_with("INV-PROJECTION"), "{err}");
}

#[test]
fn long_streams_fold_in_chunks_and_name_the_failing_event_past_the_first_chunk() {
    let (_dir, store) = temp_store(|c| {
        c.with_projection_snapshots(SnapshotPolicy {
            every_n_events: 1000,
            max_entries: 8,
        })
    });
    let c = coord("acct:long");
    for b in 0..9i64 {
        let items = (0..1000i64)
            .map(|i| {
                BatchAppendItem::typed(
                    c.clone(),
                    &Deposited {
                        amount: b * 1000 + i,
                    },
                    AppendOptions::default(),
                    CausationRef::None,
                )
                .unwrap()
            })
            .collect();
        store.append_batch(items).unwrap();
    }
    let s = store
        .project::<Balance>("acct:long", &Freshness::Consistent)
        .unwrap();
    assert_eq!(s, plain_fold(&store, "acct:long", None));
    assert_eq!(s.unwrap().ops, 9000);
    let mid = store.stream("acct:long")[6500].global_sequence;
    assert_eq!(
        store.project_at::<Balance>("acct:long", mid).unwrap(),
        plain_fold(&store, "acct:long", Some(mid))
    );
    let bad = store.append(&c, Withdrawn::KIND, &[1u8, 2, 3]).unwrap();
    store.append_typed(&c, &Deposited { amount: 1 }).unwrap();
    for r in [
        store
            .project::<Balance>("acct:long", &Freshness::Consistent)
            .map(drop),
        store
            .project::<Strict>("acct:long", &Freshness::Consistent)
            .map(drop),
    ] {
        match r {
            Err(StoreError::ProjectionDecode { event_id, kind, .. }) if kind == Withdrawn::KIND => {
                assert_eq!(event_id, bad.event_id)
            }
            // Strict reads deposits only: it never sees the bad withdrawal.
            Ok(()) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        store.project::<Balance>("acct:long", &Freshness::Consistent),
        Err(StoreError::ProjectionDecode { .. })
    ));
}

/// Upstream's D2 for cache rows: a row persisted above the durable frontier would be served
/// after a power loss even though its events are gone and their sequences reused. Here rows
/// are written only at durable events and used only when the stream still has their last
/// event (same position, sequence and id), so after every power-loss image and different
/// appends in the lost sequences, `project` still equals the fold of what is there.
#[test]
fn after_a_power_loss_with_reused_sequences_the_cache_never_serves_lost_events() {
    use batpak::__testing::env::{CrashOptions, SimDisk};
    let disk = SimDisk::new();
    let cfg = |d: &SimDisk| {
        StoreConfig::new("/s")
            .with_disk(Arc::new(d.clone()))
            .with_sync_every_n_events(1000)
            .with_flush_interval(std::time::Duration::from_secs(3600))
    };
    let store = Store::open_with_native_cache(cfg(&disk), "/cache").unwrap();
    let c = coord("acct:crash");
    for i in 0..20 {
        store.append_typed(&c, &Deposited { amount: i }).unwrap();
    }
    store.sync().unwrap();
    for i in 0..10 {
        store
            .append_typed(&c, &Withdrawn { amount: 100 + i })
            .unwrap();
    }
    // Visible, not durable: the fold sees 30 events, the cache row covers the durable ones.
    assert_eq!(
        store
            .project::<Balance>("acct:crash", &Freshness::Consistent)
            .unwrap(),
        plain_fold(&store, "acct:crash", None)
    );
    let images = disk.crash_images(&CrashOptions::default());
    assert!(images.len() > 1);
    for image in &images {
        let after = image.power_loss_disk();
        let store = Store::open_with_native_cache(cfg(&after), "/cache").unwrap();
        assert_eq!(
            store
                .project::<Balance>("acct:crash", &Freshness::Consistent)
                .unwrap(),
            plain_fold(&store, "acct:crash", None)
        );
        for i in 0..10 {
            store
                .append_typed(&c, &Deposited { amount: 7 * i })
                .unwrap();
        }
        store.sync().unwrap();
        assert_eq!(
            store
                .project::<Balance>("acct:crash", &Freshness::Consistent)
                .unwrap(),
            plain_fold(&store, "acct:crash", None)
        );
        store.close().unwrap();
    }
    drop(store);
}
