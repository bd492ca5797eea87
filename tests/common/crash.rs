//! Crash-state checker shared by `tests/crash_states.rs`: runs small workloads on a
//! [`SimDisk`], records what was acknowledged and what was written, and checks every crash
//! image against the invariants of `INVARIANTS.md`. Every check returns a [`Violation`] naming
//! the invariant, so mutant tests can assert that the right invariant is reported.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    clippy::too_many_lines
)]

use batpak::__testing::env::{
    CounterIds, CrashImage, CrashOptions, Disk, Fault, FaultKind, ManualClock, SeededEntropy,
    SimDisk,
};
use batpak::__testing::log::{self, RecordBody, Unit};
use batpak::__testing::recover_visible;
use batpak::coordinate::{Coordinate, Region};
use batpak::event::EventKind;
use batpak::store::{
    AppendOptions, AppendTicket, BatchAppendItem, BatchAppendTicket, CausationRef, IndexEntry,
    Store, StoreConfig, StoreError,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The store's seeded bugs exist only in the mutant build (`--cfg batpak_mutant`).
#[cfg(batpak_mutant)]
pub use batpak::__testing::Mutant;

/// Outside the mutant build only the real store runs.
#[cfg(not(batpak_mutant))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// No seeded bug.
    None,
}

/// The data directory on every simulated disk.
pub const DIR: &str = "/db";
const T0: i64 = 1_700_000_000_000_000;
const KIND: EventKind = EventKind::custom(1, 1);
const ROLL_PAD: usize = 300;

/// An invariant the checker found broken.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The invariant's name (`INV-…`).
    pub inv: &'static str,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inv, self.detail)
    }
}

fn violation(inv: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        inv,
        detail: detail.into(),
    }
}

type Check = Result<(), Violation>;

/// How the store under test is configured.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// Deferred durability (`sync_every_n_events(1000)`, flush interval of an hour).
    pub deferred: bool,
    /// Seeded bug.
    pub mutant: Mutant,
}

impl Mode {
    pub const DURABLE: Mode = Mode {
        deferred: false,
        mutant: Mutant::None,
    };
    pub const DEFERRED: Mode = Mode {
        deferred: true,
        mutant: Mutant::None,
    };
}

/// A deterministic configuration; `session` separates the id/clock spaces of reopens.
pub fn config(disk: &SimDisk, mode: Mode, session: u64) -> StoreConfig {
    let session_i = i64::try_from(session).unwrap();
    let mut c = StoreConfig::new(DIR)
        .with_disk(Arc::new(disk.clone()))
        // Every reopen finds the clock 1,000 s further back (INV-HLC-MONOTONE across restarts).
        .with_clock_source(Arc::new(ManualClock::new(T0 - session_i * 1_000_000_000)))
        .with_id_source(Arc::new(CounterIds::new(1 + session * 1_000_000)))
        .with_entropy_source(Arc::new(SeededEntropy::new(session)))
        .with_segment_max_bytes(512);
    #[cfg(batpak_mutant)]
    {
        c = c.with_mutant(mode.mutant);
    }
    if mode.deferred {
        c = c
            .with_sync_every_n_events(1000)
            .with_flush_interval(Duration::from_secs(3600));
    }
    c
}

/// The workload alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AppendA,
    AppendB,
    Batch,
    Sync,
    Roll,
    FenceBegin,
    FencedAppend,
    FenceCommit,
    FenceCancel,
    /// An atomic batch of two under the open fence (`fence.submit_batch`).
    FencedBatch,
    /// The fenced outbox: stage two events, `flush()` (returns durable, still hidden).
    FencedOutbox,
}

const ALL_OPS: [Op; 9] = [
    Op::AppendA,
    Op::AppendB,
    Op::Batch,
    Op::Sync,
    Op::Roll,
    Op::FenceBegin,
    Op::FencedAppend,
    Op::FenceCommit,
    Op::FenceCancel,
];

/// The alphabet of the random workloads: the canonical one plus fenced batches and the fenced
/// outbox flush.
const RANDOM_OPS: [Op; 11] = [
    Op::AppendA,
    Op::AppendB,
    Op::Batch,
    Op::Sync,
    Op::Roll,
    Op::FenceBegin,
    Op::FencedAppend,
    Op::FenceCommit,
    Op::FenceCancel,
    Op::FencedBatch,
    Op::FencedOutbox,
];

fn needs_open_fence(op: Op) -> bool {
    matches!(
        op,
        Op::FencedAppend | Op::FencedBatch | Op::FencedOutbox | Op::FenceCommit | Op::FenceCancel
    )
}

/// `count` pseudo-random workloads of `min_len..=max_len` operations over [`RANDOM_OPS`]
/// (splitmix64 from `seed`, so the list is the same on every run). Fence operations come in a
/// valid order; a workload that opens a fence gets at least one fenced batch or outbox flush
/// more often than not (they are the point of the random part).
pub fn random_workloads(count: usize, min_len: usize, max_len: usize, seed: u64) -> Vec<Vec<Op>> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let span = (max_len - min_len + 1) as u64;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let len = min_len + (next() % span) as usize;
        let mut w = Vec::with_capacity(len);
        let mut open = false;
        while w.len() < len {
            let op = RANDOM_OPS[(next() % RANDOM_OPS.len() as u64) as usize];
            let valid = match op {
                Op::FenceBegin => !open,
                o if needs_open_fence(o) => open,
                _ => true,
            };
            if !valid {
                continue;
            }
            open = match op {
                Op::FenceBegin => true,
                Op::FenceCommit | Op::FenceCancel => false,
                _ => open,
            };
            w.push(op);
        }
        out.push(w);
    }
    out
}

/// Every workload of 1..=`max_len` operations whose fence operations come in a valid order
/// (plain writes while a fence is open are kept: the store must refuse them).
pub fn workloads(max_len: usize) -> Vec<Vec<Op>> {
    let mut out = Vec::new();
    let mut layer: Vec<(Vec<Op>, bool)> = vec![(Vec::new(), false)];
    for _ in 0..max_len {
        let mut next = Vec::new();
        for (w, open) in &layer {
            for op in ALL_OPS {
                let valid = match op {
                    Op::FenceBegin => !open,
                    Op::FencedAppend | Op::FenceCommit | Op::FenceCancel => *open,
                    _ => true,
                };
                if !valid {
                    continue;
                }
                let mut w2 = w.clone();
                w2.push(op);
                let open2 = match op {
                    Op::FenceBegin => true,
                    Op::FenceCommit | Op::FenceCancel => false,
                    _ => *open,
                };
                out.push(w2.clone());
                next.push((w2, open2));
            }
        }
        layer = next;
    }
    out
}

fn coord(entity: &str) -> Coordinate {
    Coordinate::new(entity, "s").unwrap()
}

/// An event answered `Ok`.
#[derive(Debug, Clone)]
pub struct AckedEvent {
    pub id: u128,
    pub seq: u64,
    pub entity: &'static str,
    pub payload: Value,
    pub durable: bool,
}

/// A record the store promised is durable: it must be in every surviving prefix.
#[derive(Debug, Clone)]
pub struct Claim {
    pub inv: &'static str,
    pub seq: u64,
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Open,
    Committed,
    Cancelled,
    /// The commit's outcome is unknown (indeterminate error).
    Unknown,
}

/// What the workload's caller saw.
#[derive(Debug, Clone, Default)]
pub struct Acks {
    pub events: Vec<AckedEvent>,
    pub claims: Vec<Claim>,
    /// Sequence of each fenced event written -> fence token.
    pub fenced: BTreeMap<u64, u64>,
    pub fences: BTreeMap<u64, Fate>,
    /// Errors answered, as text (op, error, definite).
    pub errors: Vec<String>,
    pub definite_errors: usize,
    pub indefinite_errors: usize,
    /// Events of fenced outbox flushes answered `Ok` (durable, hidden): acknowledged as
    /// visible only once their fence commits.
    pub staged: Vec<(u64, AckedEvent)>,
}

/// A written record, owned.
#[derive(Debug, Clone)]
pub enum Rec {
    Event {
        unit: Unit,
        id: u128,
        entity: String,
        scope: String,
        kind: u16,
        clock: u32,
        prev_hash: [u8; 32],
        payload: Vec<u8>,
    },
    BatchCommit(u64),
    FenceBegin(u64),
    FenceCommit(u64),
    FenceCancel(u64),
    /// A consumer checkpoint (not an event: never visible).
    Checkpoint(Unit),
}

/// Every record in the log as it is now (no crash), by sequence.
/// `strict`: the run had no injected fault, so the log must end cleanly (after a fault a
/// failed write may legitimately leave a torn tail, e.g. a segment file without its header).
pub fn history(disk: &SimDisk, strict: bool) -> Result<Vec<Rec>, Violation> {
    let full = disk.crash_with(&mut |n| n - 1).disk();
    if !full.exists(Path::new(DIR)).unwrap() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut visit = |r: &log::Record<'_>, _pos: log::DiskPos| -> Result<(), String> {
        if r.seq != out.len() as u64 {
            return Err(format!("record {} at position {}", r.seq, out.len()));
        }
        out.push(match &r.body {
            RecordBody::Event(e) => Rec::Event {
                unit: e.unit,
                id: e.event_id,
                entity: e.entity.to_string(),
                scope: e.scope.to_string(),
                kind: e.kind,
                clock: e.clock,
                prev_hash: e.prev_hash,
                payload: e.payload.to_vec(),
            },
            RecordBody::BatchCommit { batch, .. } => Rec::BatchCommit(*batch),
            RecordBody::FenceBegin { fence } => Rec::FenceBegin(*fence),
            RecordBody::FenceCommit { fence } => Rec::FenceCommit(*fence),
            RecordBody::FenceCancel { fence } => Rec::FenceCancel(*fence),
            RecordBody::Checkpoint(c) => Rec::Checkpoint(c.unit),
        });
        Ok(())
    };
    let report = log::scan(&full, Path::new(DIR), log::CutPolicy::OnDisk, &mut visit)
        .map_err(|e| violation("INV-PREFIX", format!("the written log is damaged: {e}")))?;
    if let Some(t) = report.torn_tail.filter(|_| strict) {
        return Err(violation(
            "INV-PREFIX",
            format!("the written log (no crash) has a torn tail: {t:?}"),
        ));
    }
    Ok(out)
}

/// What the log's first `p` records make visible, by the rules of INVARIANTS.md: plain events,
/// batches whose commit record is in the prefix, fences whose commit record is in the prefix.
fn expected_visible(hist: &[Rec], p: usize) -> BTreeSet<u64> {
    let prefix = &hist[..p.min(hist.len())];
    let batches: BTreeSet<u64> = prefix
        .iter()
        .filter_map(|r| match r {
            Rec::BatchCommit(b) => Some(*b),
            _ => None,
        })
        .collect();
    let fences: BTreeSet<u64> = prefix
        .iter()
        .filter_map(|r| match r {
            Rec::FenceCommit(f) => Some(*f),
            _ => None,
        })
        .collect();
    let mut out = BTreeSet::new();
    for (seq, r) in prefix.iter().enumerate() {
        if let Rec::Event { unit, .. } = r {
            let ok = unit.batch().is_none_or(|b| batches.contains(&b))
                && unit.fence().is_none_or(|f| fences.contains(&f));
            if ok {
                out.insert(seq as u64);
            }
        }
    }
    out
}

/// Whether an unfinished unit (batch without commit, fence without commit or cancel) starts
/// before `seq` in the prefix.
fn unfinished_unit_before(hist: &[Rec], p: usize, seq: u64) -> bool {
    let prefix = &hist[..p.min(hist.len())];
    let mut ended_batches = BTreeSet::new();
    let mut ended_fences = BTreeSet::new();
    for r in prefix {
        match r {
            Rec::BatchCommit(b) => {
                ended_batches.insert(*b);
            }
            Rec::FenceCommit(f) | Rec::FenceCancel(f) => {
                ended_fences.insert(*f);
            }
            _ => {}
        }
    }
    prefix
        .iter()
        .enumerate()
        .take(seq as usize)
        .any(|(_, r)| match r {
            Rec::Event { unit, .. } => {
                unit.batch().is_some_and(|b| !ended_batches.contains(&b))
                    || unit.fence().is_some_and(|f| !ended_fences.contains(&f))
            }
            Rec::FenceBegin(f) => !ended_fences.contains(f),
            _ => false,
        })
}

/// Every visible event, in sequence order.
pub fn visible(store: &Store) -> Vec<IndexEntry> {
    let mut v = store.query(&Region::all());
    v.sort_by_key(|e| e.global_sequence);
    v
}

fn ids(v: &[IndexEntry]) -> Vec<(u128, u64)> {
    v.iter().map(|e| (e.event_id, e.global_sequence)).collect()
}

/// INV-CHAIN over a visible set: per entity strictly increasing clocks, and where clocks are
/// consecutive `prev_hash` is the previous event's hash; then INV-HLC-MONOTONE.
fn check_chain(vis: &[IndexEntry]) -> Check {
    let mut last: BTreeMap<&str, &IndexEntry> = BTreeMap::new();
    for e in vis {
        let entity = e.coord.entity();
        if let Some(prev) = last.get(entity) {
            if e.clock <= prev.clock {
                return Err(violation(
                    "INV-CHAIN",
                    format!(
                        "entity {entity}: clock {} after clock {} (seq {} after {})",
                        e.clock, prev.clock, e.global_sequence, prev.global_sequence
                    ),
                ));
            }
            if e.clock == prev.clock + 1 && e.hash_chain.prev_hash != prev.hash_chain.event_hash {
                return Err(violation(
                    "INV-CHAIN",
                    format!(
                        "entity {entity}: seq {} prev_hash is not the hash of seq {}",
                        e.global_sequence, prev.global_sequence
                    ),
                ));
            }
        } else if e.clock == 1 && e.hash_chain.prev_hash != [0; 32] {
            return Err(violation(
                "INV-CHAIN",
                format!("entity {entity}: first event has a non-zero prev_hash"),
            ));
        }
        last.insert(entity, e);
    }
    check_hlc(vis)
}

/// INV-HLC-MONOTONE over a visible set in sequence order: `wall_ms` never decreases (so it
/// never decreases along an entity either).
fn check_hlc(vis: &[IndexEntry]) -> Check {
    for w in vis.windows(2) {
        if w[1].wall_ms < w[0].wall_ms {
            return Err(violation(
                "INV-HLC-MONOTONE",
                format!(
                    "seq {} has wall_ms {} after seq {} with {}",
                    w[1].global_sequence, w[1].wall_ms, w[0].global_sequence, w[0].wall_ms
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a visible set recovered from a prefix of `p` records of `hist` against everything.
fn check_state(store: &Store, vis: &[IndexEntry], p: u64, acks: &Acks, hist: &[Rec]) -> Check {
    let pu = usize::try_from(p).unwrap();
    if pu > hist.len() {
        return Err(violation(
            "INV-PREFIX",
            format!(
                "recovery found {p} records, only {} were written",
                hist.len()
            ),
        ));
    }
    // INV-STABLE-SEQ: each visible event sits at the sequence it was written at.
    let by_id: BTreeMap<u128, u64> = hist
        .iter()
        .enumerate()
        .filter_map(|(s, r)| match r {
            Rec::Event { id, .. } => Some((*id, s as u64)),
            _ => None,
        })
        .collect();
    for w in vis.windows(2) {
        if w[0].global_sequence >= w[1].global_sequence {
            return Err(violation("INV-STABLE-SEQ", "visible sequences repeat"));
        }
    }
    for e in vis {
        match by_id.get(&e.event_id) {
            None => {
                return Err(violation(
                    "INV-PREFIX",
                    format!("visible event {:x} was never written", e.event_id),
                ))
            }
            Some(&s) if s != e.global_sequence => {
                return Err(violation(
                    "INV-STABLE-SEQ",
                    format!(
                        "event {:x} written at seq {s} is visible at seq {}",
                        e.event_id, e.global_sequence
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    // The oracle: exactly the complete units of the surviving prefix.
    let expected = expected_visible(hist, pu);
    let got: BTreeSet<u64> = vis.iter().map(|e| e.global_sequence).collect();
    let committed_or_cancelled = |f: u64, cancel: bool| {
        hist[..pu].iter().any(|r| match r {
            Rec::FenceCancel(x) => cancel && *x == f,
            Rec::FenceCommit(x) => !cancel && *x == f,
            _ => false,
        })
    };
    if let Some(&s) = got.difference(&expected).next() {
        let su = usize::try_from(s).unwrap();
        if su >= pu {
            return Err(violation(
                "INV-PREFIX",
                format!("seq {s} visible beyond the recovered prefix of {p} records"),
            ));
        }
        let Rec::Event { unit, .. } = &hist[su] else {
            return Err(violation("INV-PREFIX", format!("seq {s} is not an event")));
        };
        let batch_open = unit.batch().is_some_and(|b| {
            !hist[..pu]
                .iter()
                .any(|r| matches!(r, Rec::BatchCommit(x) if *x == b))
        });
        if batch_open {
            return Err(violation(
                "INV-BATCH-ATOMIC",
                format!("seq {s} of batch {unit:?} visible without its commit record (prefix {p})"),
            ));
        }
        if let Some(f) = unit.fence() {
            let cancelled =
                committed_or_cancelled(f, true) || acks.fences.get(&f) == Some(&Fate::Cancelled);
            let inv = if cancelled {
                "INV-NO-RESURRECT"
            } else {
                "INV-FENCE-CRASH"
            };
            return Err(violation(
                inv,
                format!("seq {s} of fence {f} visible without its commit record (cancelled: {cancelled})"),
            ));
        }
        return Err(violation(
            "INV-PREFIX",
            format!("seq {s} visible unexpectedly"),
        ));
    }
    if let Some(&s) = expected.difference(&got).next() {
        let su = usize::try_from(s).unwrap();
        if unfinished_unit_before(hist, pu, s) {
            return Err(violation(
                "INV-NO-COLLATERAL",
                format!("seq {s} hidden after an unfinished unit (prefix {p})"),
            ));
        }
        let inv = match &hist[su] {
            Rec::Event { unit, .. } if unit.fence().is_some() => "INV-FENCE-CRASH",
            Rec::Event { unit, .. } if unit.batch().is_some() => "INV-BATCH-ATOMIC",
            _ => "INV-PREFIX",
        };
        return Err(violation(
            inv,
            format!("seq {s} is complete in the surviving prefix of {p} records but hidden"),
        ));
    }
    // INV-BATCH-ATOMIC, explicitly: each batch all or nothing.
    let mut batch_counts: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for (s, r) in hist.iter().enumerate() {
        if let Rec::Event { unit, .. } = r {
            if let Some(b) = unit.batch() {
                let c = batch_counts.entry(b).or_default();
                c.0 += 1;
                if got.contains(&(s as u64)) {
                    c.1 += 1;
                }
            }
        }
    }
    for (b, (all, seen)) in batch_counts {
        if seen != 0 && seen != all {
            return Err(violation(
                "INV-BATCH-ATOMIC",
                format!("batch {b}: {seen} of {all} events visible"),
            ));
        }
    }
    // Promises of durability.
    for c in &acks.claims {
        if c.seq >= p {
            return Err(violation(
                c.inv,
                format!(
                    "{} (record {}) acknowledged durable but the surviving prefix has {p} records",
                    c.what, c.seq
                ),
            ));
        }
    }
    // Acknowledged events: same id, sequence, coordinate, kind, payload.
    for a in &acks.events {
        let Some(e) = vis.iter().find(|e| e.event_id == a.id) else {
            if a.durable {
                return Err(violation(
                    "INV-DURABLE",
                    format!(
                        "acknowledged durable event {:x} (seq {}) not visible",
                        a.id, a.seq
                    ),
                ));
            }
            continue;
        };
        if e.global_sequence != a.seq {
            return Err(violation(
                "INV-STABLE-SEQ",
                format!(
                    "event {:x} acknowledged at seq {} visible at {}",
                    a.id, a.seq, e.global_sequence
                ),
            ));
        }
        if e.coord != coord(a.entity) || e.kind != KIND {
            return Err(violation(
                "INV-DURABLE",
                format!("event {:x}: coordinate or kind changed", a.id),
            ));
        }
        let stored = store
            .get(a.id)
            .map_err(|err| violation("INV-DURABLE", format!("get {:x}: {err}", a.id)))?;
        if stored.event.payload != a.payload {
            return Err(violation(
                "INV-DURABLE",
                format!("event {:x}: payload changed", a.id),
            ));
        }
    }
    // Visible entries agree with what was written (clock, prev_hash, coordinate, kind).
    for e in vis {
        let su = usize::try_from(e.global_sequence).unwrap();
        if let Rec::Event {
            entity,
            scope,
            kind,
            clock,
            prev_hash,
            ..
        } = &hist[su]
        {
            if e.clock != *clock || e.hash_chain.prev_hash != *prev_hash {
                return Err(violation(
                    "INV-CHAIN",
                    format!("seq {su}: clock/prev_hash differ from the written record"),
                ));
            }
            if e.coord.entity() != entity || e.coord.scope() != scope || e.kind.as_raw() != *kind {
                return Err(violation(
                    "INV-DURABLE",
                    format!("seq {su}: coordinate/kind differ from the written record"),
                ));
            }
        }
    }
    check_chain(vis)
}

fn open_violation(e: &StoreError, fallback: &'static str, what: &str) -> Violation {
    let text = format!("{e:?}");
    let inv = [
        "INV-CHAIN",
        "INV-BATCH-ATOMIC",
        "INV-STABLE-SEQ",
        "INV-FENCE-CRASH",
    ]
    .into_iter()
    .find(|n| text.contains(n))
    .unwrap_or(fallback);
    violation(inv, format!("{what}: open failed: {e}"))
}

/// What an [`ImageJudge`] expects of one crash image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Recovery succeeds; [`ImageJudge::recovered`] then checks what it rebuilt.
    Recovers,
    /// Recovery must fail closed (INV-CORRUPTION-FAILS-CLOSED) with `CorruptSegment` naming
    /// this file and offset, and leave the disk as it was.
    FailsClosed { file: PathBuf, offset: u64 },
}

/// An external judge of crash images (the oracle of the model crate): told the written log
/// once per snapshot, asked what each image must recover to, shown what recovery rebuilt.
pub trait ImageJudge {
    /// Called before the images of `disk` (the state now) are checked.
    fn prepare(&mut self, disk: &SimDisk, acks: &Acks) -> Check;
    /// What recovery of `image` must do.
    fn expect(&mut self, image: &SimDisk) -> Result<Expect, Violation>;
    /// What recovery of the last image passed to `expect` rebuilt.
    fn recovered(&mut self, report: &log::RecoveryReport, vis: &[IndexEntry]) -> Check;
}

/// Counters for the report, and the enumeration's options.
#[derive(Default)]
pub struct Stats {
    pub workloads: usize,
    pub runs: usize,
    pub crash_states: usize,
    pub recovery_crash_states: usize,
    /// Power losses checked after a reopen (process crash -> reopen -> power loss -> reopen)
    /// that could lose something (when everything is durable after the reopen there is only
    /// one outcome, the reopened state itself, and it is not counted).
    pub reopen_power_loss_states: usize,
    /// Crash states whose recovery had to fail closed (a hole before surviving records).
    pub fail_closed_states: usize,
    /// Images (by a 128-bit hash of their content) whose recovery-idempotence checks already
    /// ran: those checks depend only on the disk content, not on the acknowledgements.
    pub seen: BTreeSet<(u64, u64)>,
    /// Which crash images to enumerate at every point (default: prefixes, torn, garbage).
    pub crash_opts: CrashOptions,
    /// I/O fault injection tries only an EIO and a dead disk at every operation, not also a
    /// full disk with a short write at appends and a failed fsync that drops its pages at
    /// syncs (see [`faults_for`]).
    pub classic_faults_only: bool,
    /// Checks every image against an oracle too, when set.
    pub judge: Option<Box<dyn ImageJudge>>,
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} workloads, {} runs, {} crash states ({} fail closed), {} crash-during-recovery states, {} power losses after a reopen",
            self.workloads,
            self.runs,
            self.crash_states,
            self.fail_closed_states,
            self.recovery_crash_states,
            self.reopen_power_loss_states
        )
    }
}

fn content_hash(bytes: &[u8]) -> (u64, u64) {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut a = DefaultHasher::new();
    bytes.hash(&mut a);
    let mut b = DefaultHasher::new();
    0xB47_u16.hash(&mut b);
    bytes.hash(&mut b);
    (a.finish(), b.finish())
}

/// Every file of the disk with its content, as one byte string.
fn fingerprint(disk: &SimDisk) -> Vec<u8> {
    let mut out = Vec::new();
    for f in disk.files() {
        out.extend_from_slice(f.to_string_lossy().as_bytes());
        let c = disk.read_file(&f).unwrap_or_default();
        out.extend_from_slice(&(c.len() as u64).to_le_bytes());
        out.extend_from_slice(&c);
    }
    out
}

/// Checks one crash image: recovery, idempotent reopen, append after recovery, and crashes
/// during recovery.
pub fn check_image(
    image: &CrashImage,
    mode: Mode,
    acks: &Acks,
    hist: &[Rec],
    stats: &mut Stats,
) -> Check {
    stats.crash_states += 1;
    let disk = image.disk();
    let ctx = || image.describe();
    let with_ctx = |v: Violation| Violation {
        inv: v.inv,
        detail: format!("{} [image: {}]", v.detail, ctx()),
    };
    let expect = match stats.judge.as_mut() {
        Some(j) => j.expect(&disk).map_err(with_ctx)?,
        None => Expect::Recovers,
    };
    let before = fingerprint(&disk);
    if let Expect::FailsClosed { file, offset } = expect {
        stats.fail_closed_states += 1;
        for session in [1, 2] {
            match Store::open(config(&disk, mode, session)) {
                Err(StoreError::CorruptSegment {
                    file: f, offset: o, ..
                }) if f == file && o == offset => {}
                Err(e) => {
                    return Err(with_ctx(violation(
                        "INV-CORRUPTION-FAILS-CLOSED",
                        format!(
                            "a hole at {}:{offset} before surviving records: expected \
                             CorruptSegment there, got {e}",
                            file.display()
                        ),
                    )))
                }
                Ok(s) => {
                    let v = ids(&visible(&s));
                    return Err(with_ctx(violation(
                        "INV-CORRUPTION-FAILS-CLOSED",
                        format!(
                            "a hole at {}:{offset} before surviving records, yet open \
                             succeeded (records {}, visible {v:?})",
                            file.display(),
                            s.recovery_report().records
                        ),
                    )));
                }
            }
        }
        if fingerprint(&disk) != before {
            return Err(with_ctx(violation(
                "INV-CORRUPTION-FAILS-CLOSED",
                "a failed (fail-closed) open changed the disk",
            )));
        }
        return Ok(());
    }
    let fresh = stats.seen.insert(content_hash(&before));
    drop(before);
    let store = Store::open(config(&disk, mode, 1))
        .map_err(|e| open_violation(&e, "INV-PREFIX", &format!("image [{}]", ctx())))?;
    let p = store.recovery_report().records;
    let recovery_wrote = store.recovery_report().torn_tail.is_some()
        || !store.recovery_report().removed_segments.is_empty();
    let vis1 = visible(&store);
    check_state(&store, &vis1, p, acks, hist).map_err(with_ctx)?;
    if let Some(j) = stats.judge.as_mut() {
        j.recovered(store.recovery_report(), &vis1)
            .map_err(with_ctx)?;
    }
    check_power_loss_after_reopen(&disk, mode, &store, &vis1, acks, stats).map_err(with_ctx)?;
    store
        .close()
        .map_err(|e| violation("INV-RECOVERY-IDEMPOTENT", format!("close: {e}")))?;
    if !fresh {
        return Ok(());
    }

    // INV-RECOVERY-IDEMPOTENT: reopen sees the same state and no torn tail.
    let store = Store::open(config(&disk, mode, 2)).map_err(|e| {
        open_violation(
            &e,
            "INV-RECOVERY-IDEMPOTENT",
            &format!("reopen [{}]", ctx()),
        )
    })?;
    if let Some(t) = &store.recovery_report().torn_tail {
        return Err(violation(
            "INV-RECOVERY-IDEMPOTENT",
            format!(
                "second recovery still finds a torn tail {t:?} [image: {}]",
                ctx()
            ),
        ));
    }
    let vis2 = visible(&store);
    if vis2 != vis1 {
        return Err(violation(
            "INV-RECOVERY-IDEMPOTENT",
            format!(
                "reopen changed the visible state {:?} -> {:?}",
                ids(&vis1),
                ids(&vis2)
            ),
        ));
    }
    // Append after recovery: one event and a batch; all visible, nothing earlier changes.
    let mut new_ids = Vec::new();
    let mut new_seqs = Vec::new();
    let r = store
        .append(&coord("a"), KIND, &json!({"after": 1}))
        .map_err(|e| violation("INV-PREFIX", format!("append after recovery: {e}")))?;
    new_ids.push(r.event_id);
    new_seqs.push((r.event_id, r.sequence));
    let items = vec![
        BatchAppendItem::new(
            coord("a"),
            KIND,
            &json!({"after": 2}),
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap(),
        BatchAppendItem::new(
            coord("b"),
            KIND,
            &json!({"after": 3}),
            AppendOptions::default(),
            CausationRef::None,
        )
        .unwrap(),
    ];
    let rs = store
        .append_batch(items)
        .map_err(|e| violation("INV-PREFIX", format!("batch after recovery: {e}")))?;
    new_ids.extend(rs.iter().map(|r| r.event_id));
    new_seqs.extend(rs.iter().map(|r| (r.event_id, r.sequence)));
    let live = visible(&store);
    check_chain(&live)?;
    store
        .close()
        .map_err(|e| violation("INV-RECOVERY-IDEMPOTENT", format!("close: {e}")))?;
    let store = Store::open(config(&disk, mode, 3)).map_err(|e| {
        open_violation(
            &e,
            "INV-RECOVERY-IDEMPOTENT",
            &format!("reopen after appending post-recovery [{}]", ctx()),
        )
    })?;
    let vis3 = visible(&store);
    drop(store);
    for id in &new_ids {
        if !vis3.iter().any(|e| e.event_id == *id) {
            let pu = usize::try_from(p).unwrap();
            let inv = if unfinished_unit_before(hist, pu, p) {
                "INV-NO-COLLATERAL"
            } else {
                "INV-DURABLE"
            };
            return Err(violation(
                inv,
                format!(
                    "event {id:x} appended after recovery is hidden on reopen [image: {}]",
                    ctx()
                ),
            ));
        }
    }
    for (id, seq) in &new_seqs {
        if let Some(e) = vis3.iter().find(|e| e.event_id == *id) {
            if e.global_sequence != *seq {
                return Err(violation(
                    "INV-STABLE-SEQ",
                    format!(
                        "event {id:x} appended at seq {seq} after recovery is at seq {} on reopen",
                        e.global_sequence
                    ),
                ));
            }
        }
    }
    if vis3 != live || vis3.get(..vis1.len()) != Some(&vis1[..]) {
        return Err(violation(
            "INV-RECOVERY-IDEMPOTENT",
            format!(
                "after appending post-recovery: {:?} then reopen {:?}",
                ids(&live),
                ids(&vis3)
            ),
        ));
    }

    // Crash during recovery (only when recovery wrote something): freeze the disk just before
    // and just after each of recovery's own syncs, take every image, recover again. On the
    // power-loss reading of the image (everything in it durable): there an interrupted
    // recovery must end exactly where an uninterrupted one does (in the process-crash reading
    // a power loss during recovery may also lose what was never synced, which the checks above
    // cover).
    let freeze: BTreeSet<u64> = if recovery_wrote {
        let d = image.power_loss_disk();
        recover_visible(&config(&d, mode, 1)).map_err(|e| {
            open_violation(
                &e,
                "INV-RECOVERY-IDEMPOTENT",
                &format!("recovery of the power-loss reading [{}]", ctx()),
            )
        })?;
        d.persisting_sync_indices()
            .iter()
            .flat_map(|&s| [s, s + 1])
            .collect()
    } else {
        BTreeSet::new()
    };
    {
        for k in freeze {
            let d = image.power_loss_disk();
            d.fail_at(k, FaultKind::Persistent);
            if let Ok(s) = Store::open(config(&d, mode, 1)) {
                drop(s);
            }
            for img2 in d.crash_images(&CrashOptions::default()) {
                stats.recovery_crash_states += 1;
                let d2 = img2.disk();
                let store = Store::open(config(&d2, mode, 4)).map_err(|e| {
                    open_violation(
                        &e,
                        "INV-RECOVERY-IDEMPOTENT",
                        &format!("recovery crashed at op {k} [{}] then", ctx()),
                    )
                })?;
                let v = visible(&store);
                drop(store);
                if v != vis1 {
                    return Err(violation(
                        "INV-RECOVERY-IDEMPOTENT",
                        format!(
                            "crash at op {k} of recovery: {:?}, uninterrupted recovery: {:?}",
                            ids(&v),
                            ids(&vis1)
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Process crash -> reopen -> power loss -> reopen: `store` was just opened on `disk` (a crash
/// image read as the page cache a crashed process left). Whatever it reports durable - its
/// `frontier().durable` - and every event acknowledged durable before the crash must survive
/// any power loss now. (If everything on the disk is durable, a power loss changes nothing.)
fn check_power_loss_after_reopen(
    disk: &SimDisk,
    mode: Mode,
    store: &Store,
    vis: &[IndexEntry],
    acks: &Acks,
    stats: &mut Stats,
) -> Check {
    if disk.is_all_durable() {
        return Ok(());
    }
    let durable = store.frontier().durable;
    for img in disk.crash_images(&CrashOptions::default()) {
        stats.reopen_power_loss_states += 1;
        let after = recover_visible(&config(&img.power_loss_disk(), mode, 5)).map_err(|e| {
            open_violation(
                &e,
                "INV-DURABLE",
                &format!(
                    "power loss after a reopen that reported {durable} records durable [{}]",
                    img.describe()
                ),
            )
        })?;
        let has = |id: u128, seq: u64| {
            after
                .iter()
                .any(|e| e.event_id == id && e.global_sequence == seq)
        };
        for e in vis.iter().filter(|e| e.global_sequence < durable) {
            if !has(e.event_id, e.global_sequence) {
                return Err(violation(
                    "INV-DURABLE",
                    format!(
                        "event {:x} (seq {}) was recovered and reported durable (frontier().durable \
                         = {durable}) by the reopened store, then lost by a power loss [{}]",
                        e.event_id,
                        e.global_sequence,
                        img.describe()
                    ),
                ));
            }
        }
        for a in acks.events.iter().filter(|a| a.durable) {
            if !has(a.id, a.seq) {
                return Err(violation(
                    "INV-DURABLE",
                    format!(
                        "acknowledged durable event {:x} (seq {}) lost by a power loss after a reopen [{}]",
                        a.id,
                        a.seq,
                        img.describe()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks every crash image the disk may leave now.
pub fn check_all_images(
    disk: &SimDisk,
    mode: Mode,
    acks: &Acks,
    strict: bool,
    stats: &mut Stats,
) -> Check {
    let hist = history(disk, strict)?;
    // The acknowledgements agree with the log.
    for a in &acks.events {
        match hist.get(usize::try_from(a.seq).unwrap()) {
            Some(Rec::Event { id, .. }) if *id == a.id => {}
            // After a failed fsync the writer cuts off what it had not synced: events
            // acknowledged as not durable (deferred mode) may be lost then, as in a crash.
            None if !a.durable && !strict => {}
            None => {
                return Err(violation(
                    "INV-DURABLE",
                    format!(
                        "receipt says {:x} at seq {}, the log ends at {} records",
                        a.id,
                        a.seq,
                        hist.len()
                    ),
                ))
            }
            other => {
                return Err(violation(
                    "INV-STABLE-SEQ",
                    format!(
                        "receipt says {:x} at seq {}, the log holds {other:?}",
                        a.id, a.seq
                    ),
                ))
            }
        }
    }
    if let Some(j) = stats.judge.as_mut() {
        j.prepare(disk, acks)?;
    }
    let opts = stats.crash_opts;
    for image in disk.crash_images(&opts) {
        check_image(&image, mode, acks, &hist, stats)?;
    }
    Ok(())
}

/// Checks the live store after an operation: fenced events hidden until commit, cancelled
/// ones never visible, acknowledged ones visible, the chain intact.
fn live_check(store: &Store, acks: &Acks) -> Check {
    let vis = visible(store);
    for e in &vis {
        if let Some(f) = acks.fenced.get(&e.global_sequence) {
            match acks.fences.get(f) {
                Some(Fate::Open) => {
                    return Err(violation(
                        "INV-FENCE-HIDDEN",
                        format!("seq {} of open fence {f} is visible", e.global_sequence),
                    ))
                }
                Some(Fate::Cancelled) => {
                    return Err(violation(
                        "INV-NO-RESURRECT",
                        format!(
                            "seq {} of cancelled fence {f} is visible",
                            e.global_sequence
                        ),
                    ))
                }
                _ => {}
            }
        }
    }
    for a in &acks.events {
        if !vis.iter().any(|e| e.event_id == a.id) {
            let inv = if acks.fenced.contains_key(&a.seq) {
                "INV-FENCE-HIDDEN"
            } else {
                "INV-MONOTONE-VISIBLE"
            };
            return Err(violation(
                inv,
                format!(
                    "acknowledged event {:x} (seq {}) is not visible",
                    a.id, a.seq
                ),
            ));
        }
    }
    check_chain(&vis)
}

struct Runner<'s> {
    store: &'s Store,
    acks: Acks,
    fence: Option<batpak::store::VisibilityFence<'s>>,
    pending: Vec<(AppendTicket, &'static str, Value)>,
    /// Fenced batch tickets (resolve at commit or cancel) with their events' entity/payload.
    pending_batches: Vec<(BatchAppendTicket, Vec<(&'static str, Value)>)>,
    n: u64,
    faults: bool,
}

impl<'s> Runner<'s> {
    fn payload(&mut self, pad: usize) -> Value {
        self.n += 1;
        json!({"n": self.n, "pad": "x".repeat(pad)})
    }

    fn written(&self) -> u64 {
        self.store.frontier().written
    }

    /// Records an error; a definite one must have written nothing.
    fn error(&mut self, op: Op, e: &StoreError, written_before: u64, vis_before: usize) -> Check {
        let definite = e.is_definite();
        self.acks
            .errors
            .push(format!("{op:?}: {e} (definite: {definite})"));
        if definite {
            self.acks.definite_errors += 1;
            let w = self.written();
            if w != written_before || visible(self.store).len() != vis_before {
                return Err(violation(
                    "INV-DEFINITE-ERRORS",
                    format!(
                        "{op:?} failed definitely ({e}) but the log moved {written_before} -> {w}"
                    ),
                ));
            }
        } else {
            self.acks.indefinite_errors += 1;
            if !matches!(
                e,
                StoreError::OutcomeUnknown { .. }
                    | StoreError::WriterCrashed
                    | StoreError::BatchFailed { .. }
            ) {
                return Err(violation(
                    "INV-DEFINITE-ERRORS",
                    format!("indeterminate error of an unexpected variant: {e:?}"),
                ));
            }
        }
        if !self.faults && !matches!(e, StoreError::VisibilityFenceActive) {
            return Err(violation(
                "INV-DEFINITE-ERRORS",
                format!("{op:?} failed without any fault: {e:?}"),
            ));
        }
        Ok(())
    }

    fn append(&mut self, op: Op, entity: &'static str, pad: usize) -> Check {
        let payload = self.payload(pad);
        let (w, v) = (self.written(), visible(self.store).len());
        match self.store.append(&coord(entity), KIND, &payload) {
            Ok(r) => {
                self.acks.events.push(AckedEvent {
                    id: r.event_id,
                    seq: r.sequence,
                    entity,
                    payload,
                    durable: r.durable,
                });
                if r.durable {
                    self.acks.claims.push(Claim {
                        inv: "INV-DURABLE",
                        seq: r.sequence,
                        what: format!("{op:?} event {:x}", r.event_id),
                    });
                }
                Ok(())
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    fn two_items(&mut self) -> (Vec<BatchAppendItem>, Vec<(&'static str, Value)>) {
        let (pa, pb) = (self.payload(0), self.payload(0));
        let items = vec![
            BatchAppendItem::new(
                coord("a"),
                KIND,
                &pa,
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap(),
            BatchAppendItem::new(
                coord("b"),
                KIND,
                &pb,
                AppendOptions::default(),
                CausationRef::None,
            )
            .unwrap(),
        ];
        (items, vec![("a", pa), ("b", pb)])
    }

    /// `fence.submit_batch` of two events: waits until the writer has written the batch
    /// (the ticket itself resolves at commit or cancel).
    fn fenced_batch(&mut self, op: Op) -> Check {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let token = fence.token();
        let (items, events) = self.two_items();
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let (w, v) = (self.written(), visible(self.store).len());
        let before_vis = self.store.frontier().visible;
        match fence.submit_batch(items) {
            Ok(t) => {
                let start = Instant::now();
                loop {
                    // Two events and the batch commit record.
                    if self.store.frontier().visible >= before_vis + 3 {
                        self.acks.fenced.insert(before_vis, token);
                        self.acks.fenced.insert(before_vis + 1, token);
                        self.pending_batches.push((t, events));
                        return Ok(());
                    }
                    match t.try_check() {
                        None => {}
                        Some(Ok(r)) => {
                            return Err(violation(
                                "INV-FENCE-HIDDEN",
                                format!("fenced batch ticket resolved before commit: {r:?}"),
                            ))
                        }
                        Some(Err(e)) => return self.error(op, &e, w, v),
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(20),
                        "fenced batch hangs"
                    );
                    std::thread::yield_now();
                }
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    /// The fenced outbox: stage two events and flush; the flush answers once the batch is
    /// durably written, hidden until the fence commits.
    fn fenced_outbox(&mut self, op: Op) -> Check {
        if self.fence.is_none() {
            return Ok(());
        }
        let (pa, pb) = (self.payload(0), self.payload(0));
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let token = fence.token();
        let (w, v) = (self.written(), visible(self.store).len());
        let mut ob = fence.outbox();
        ob.stage(coord("a"), KIND, &pa).unwrap();
        ob.stage(coord("b"), KIND, &pb).unwrap();
        let r = ob.flush();
        drop(ob);
        match r {
            Ok(rs) => {
                if rs.len() != 2 {
                    return Err(violation(
                        "INV-BATCH-ATOMIC",
                        format!("fenced outbox flush of 2 answered {} receipts", rs.len()),
                    ));
                }
                for (r, (entity, payload)) in rs.iter().zip([("a", pa), ("b", pb)]) {
                    self.acks.fenced.insert(r.sequence, token);
                    self.acks.staged.push((
                        token,
                        AckedEvent {
                            id: r.event_id,
                            seq: r.sequence,
                            entity,
                            payload,
                            durable: r.durable,
                        },
                    ));
                }
                if rs.iter().all(|r| r.durable) {
                    let last = rs.last().map_or(0, |r| r.sequence);
                    self.acks.claims.push(Claim {
                        inv: "INV-DURABLE",
                        seq: last + 1,
                        what: format!("fenced outbox batch commit record (fence {token})"),
                    });
                }
                Ok(())
            }
            Err(e) => self.error(op, &e, w, v),
        }
    }

    fn step(&mut self, op: Op) -> Check {
        match op {
            Op::FencedBatch => self.fenced_batch(op),
            Op::FencedOutbox => self.fenced_outbox(op),
            Op::AppendA => self.append(op, "a", 0),
            Op::AppendB => self.append(op, "b", 0),
            Op::Roll => {
                self.append(op, "a", ROLL_PAD)?;
                self.append(op, "a", ROLL_PAD)
            }
            Op::Batch => {
                let (pa, pb) = (self.payload(0), self.payload(0));
                let items = vec![
                    BatchAppendItem::new(
                        coord("a"),
                        KIND,
                        &pa,
                        AppendOptions::default(),
                        CausationRef::None,
                    )
                    .unwrap(),
                    BatchAppendItem::new(
                        coord("b"),
                        KIND,
                        &pb,
                        AppendOptions::default(),
                        CausationRef::None,
                    )
                    .unwrap(),
                ];
                let (w, v) = (self.written(), visible(self.store).len());
                match self.store.append_batch(items) {
                    Ok(rs) => {
                        for (r, (entity, payload)) in rs.iter().zip([("a", pa), ("b", pb)]) {
                            self.acks.events.push(AckedEvent {
                                id: r.event_id,
                                seq: r.sequence,
                                entity,
                                payload,
                                durable: r.durable,
                            });
                        }
                        if rs.iter().all(|r| r.durable) {
                            let last = rs.last().map_or(0, |r| r.sequence);
                            self.acks.claims.push(Claim {
                                inv: "INV-DURABLE",
                                seq: last + 1,
                                what: "batch commit record".into(),
                            });
                        }
                        Ok(())
                    }
                    Err(e) => self.error(op, &e, w, v),
                }
            }
            Op::Sync => {
                let (w, v) = (self.written(), visible(self.store).len());
                match self.store.sync() {
                    Ok(()) => {
                        if w > 0 {
                            self.acks.claims.push(Claim {
                                inv: "INV-DURABLE",
                                seq: w - 1,
                                what: "sync() returned Ok".into(),
                            });
                        }
                        Ok(())
                    }
                    Err(e) => self.error(op, &e, w, v),
                }
            }
            Op::FenceBegin => {
                let (w, v) = (self.written(), visible(self.store).len());
                match self.store.begin_visibility_fence() {
                    Ok(f) => {
                        self.acks.fences.insert(f.token(), Fate::Open);
                        self.fence = Some(f);
                        Ok(())
                    }
                    Err(e) => self.error(op, &e, w, v),
                }
            }
            Op::FencedAppend => {
                let Some(fence) = &self.fence else {
                    return Ok(());
                };
                let token = fence.token();
                self.n += 1;
                let payload = json!({"n": self.n, "pad": ""});
                let (w, v) = (self.written(), visible(self.store).len());
                let before_vis = self.store.frontier().visible;
                match fence.submit(&coord("a"), KIND, &payload) {
                    Ok(t) => {
                        // Wait until the writer has handled it (the ticket itself resolves at
                        // commit or cancel).
                        let start = Instant::now();
                        loop {
                            if self.store.frontier().visible > before_vis {
                                self.acks.fenced.insert(before_vis, token);
                                self.pending.push((t, "a", payload));
                                break;
                            }
                            match t.try_check() {
                                None => {}
                                Some(Ok(r)) => {
                                    return Err(violation(
                                        "INV-FENCE-HIDDEN",
                                        format!("fenced ticket resolved before commit: {r:?}"),
                                    ))
                                }
                                Some(Err(e)) => return self.error(op, &e, w, v),
                            }
                            assert!(
                                start.elapsed() < Duration::from_secs(20),
                                "fenced append hangs"
                            );
                            std::thread::yield_now();
                        }
                        Ok(())
                    }
                    Err(e) => self.error(op, &e, w, v),
                }
            }
            Op::FenceCommit | Op::FenceCancel => {
                let Some(fence) = self.fence.take() else {
                    return Ok(());
                };
                let token = fence.token();
                let (w, v) = (self.written(), visible(self.store).len());
                let commit = op == Op::FenceCommit;
                let r = if commit {
                    fence.commit()
                } else {
                    fence.cancel()
                };
                let fate = match (&r, commit) {
                    (Ok(()), true) => Fate::Committed,
                    (_, false) => Fate::Cancelled,
                    (Err(e), true) if e.is_definite() => Fate::Cancelled,
                    (Err(_), true) => Fate::Unknown,
                };
                self.acks.fences.insert(token, fate);
                if commit && r.is_ok() {
                    let seq = self.written().saturating_sub(1);
                    self.acks.claims.push(Claim {
                        inv: "INV-FENCE-CRASH",
                        seq,
                        what: format!("commit of fence {token}"),
                    });
                }
                if let Err(e) = &r {
                    self.error(op, e, w, v)?;
                }
                for (t, entity, payload) in std::mem::take(&mut self.pending) {
                    match t.wait() {
                        Ok(rc) => {
                            if fate != Fate::Committed {
                                return Err(violation(
                                    "INV-NO-RESURRECT",
                                    format!(
                                        "fenced ticket answered Ok though the fence ended {fate:?}"
                                    ),
                                ));
                            }
                            self.acks.events.push(AckedEvent {
                                id: rc.event_id,
                                seq: rc.sequence,
                                entity,
                                payload,
                                durable: rc.durable,
                            });
                        }
                        Err(e) => {
                            if fate == Fate::Committed {
                                return Err(violation(
                                    "INV-FENCE-HIDDEN",
                                    format!("fence committed but its ticket failed: {e}"),
                                ));
                            }
                            self.acks.errors.push(format!("fenced ticket: {e}"));
                        }
                    }
                }
                for (t, events) in std::mem::take(&mut self.pending_batches) {
                    match t.wait() {
                        Ok(rs) => {
                            if fate != Fate::Committed {
                                return Err(violation(
                                    "INV-NO-RESURRECT",
                                    format!(
                                        "fenced batch ticket answered Ok though the fence ended {fate:?}"
                                    ),
                                ));
                            }
                            for (rc, (entity, payload)) in rs.iter().zip(events) {
                                self.acks.events.push(AckedEvent {
                                    id: rc.event_id,
                                    seq: rc.sequence,
                                    entity,
                                    payload,
                                    durable: rc.durable,
                                });
                            }
                        }
                        Err(e) => {
                            if fate == Fate::Committed {
                                return Err(violation(
                                    "INV-FENCE-HIDDEN",
                                    format!("fence committed but its batch ticket failed: {e}"),
                                ));
                            }
                            self.acks.errors.push(format!("fenced batch ticket: {e}"));
                        }
                    }
                }
                // Fenced outbox batches: acknowledged as visible once the fence committed.
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acks.staged)
                    .into_iter()
                    .partition(|(f, _)| *f == token);
                self.acks.staged = rest;
                if fate == Fate::Committed {
                    self.acks.events.extend(mine.into_iter().map(|(_, a)| a));
                }
                Ok(())
            }
        }
    }
}

/// Runs `ops` on a fresh store over `disk`; after every operation checks the live store and
/// calls `at_point`. Returns the acknowledgements (also when the store could not be opened
/// because of an injected fault: then nothing was acknowledged).
pub fn run_workload(
    disk: &SimDisk,
    mode: Mode,
    ops: &[Op],
    faults: bool,
    at_point: &mut dyn FnMut(&Acks) -> Check,
) -> Result<Acks, Violation> {
    let store = match Store::open(config(disk, mode, 0)) {
        Ok(s) => s,
        Err(e) if faults => {
            let mut acks = Acks::default();
            acks.errors.push(format!("open: {e}"));
            return Ok(acks);
        }
        Err(e) => {
            return Err(violation(
                "INV-PREFIX",
                format!("open of a fresh disk: {e}"),
            ))
        }
    };
    let mut runner = Runner {
        store: &store,
        acks: Acks::default(),
        fence: None,
        pending: Vec::new(),
        pending_batches: Vec::new(),
        n: 0,
        faults,
    };
    for &op in ops {
        runner.step(op)?;
        let d = store.frontier().durable;
        if d > 0 {
            runner.acks.claims.push(Claim {
                inv: "INV-DURABLE",
                seq: d - 1,
                what: "frontier().durable".into(),
            });
        }
        live_check(&store, &runner.acks)?;
        at_point(&runner.acks)?;
    }
    let acks = runner.acks.clone();
    // Stop the writer before the fence handle goes (the fence's drop-cancel is not part of the
    // workload: it would write after the images were taken).
    std::mem::forget(runner.fence.take());
    drop(runner);
    drop(store);
    Ok(acks)
}

/// Part 1: every workload, crash images after every operation and around every sync.
pub fn enumerate_crash_states(mode: Mode, max_len: usize, stats: &mut Stats) -> Check {
    enumerate_crash_states_of(mode, &workloads(max_len), stats)
}

/// [`enumerate_crash_states`] over the given workloads.
pub fn enumerate_crash_states_of(mode: Mode, list: &[Vec<Op>], stats: &mut Stats) -> Check {
    for ops in list {
        let ops = ops.clone();
        stats.workloads += 1;
        let disk = SimDisk::new();
        stats.runs += 1;
        let mut st = std::mem::take(stats);
        let ctx = |v: Violation| Violation {
            inv: v.inv,
            detail: format!("workload {ops:?}: {}", v.detail),
        };
        run_workload(&disk, mode, &ops, false, &mut |acks| {
            check_all_images(&disk, mode, acks, true, &mut st)
        })
        .map_err(ctx)?;
        *stats = st;
        // Freeze the disk just before and just after every sync and take images there.
        for s in disk.sync_op_indices() {
            for k in [s, s + 1] {
                let d = SimDisk::new();
                d.fail_at(k, FaultKind::Persistent);
                stats.runs += 1;
                run_faulted(&d, mode, &ops, stats).map_err(|v| Violation {
                    inv: v.inv,
                    detail: format!("workload {ops:?} frozen at op {k}: {}", v.detail),
                })?;
            }
        }
    }
    Ok(())
}

/// Part 2: every workload, a fault at every operation index, transient and persistent.
pub fn inject_io_errors(mode: Mode, max_len: usize, stats: &mut Stats) -> Check {
    inject_io_errors_of(mode, &workloads(max_len), stats)
}

/// [`inject_io_errors`] over the given workloads.
pub fn inject_io_errors_of(mode: Mode, list: &[Vec<Op>], stats: &mut Stats) -> Check {
    for ops in list {
        let ops = ops.clone();
        stats.workloads += 1;
        let clean = SimDisk::new();
        run_workload(&clean, mode, &ops, false, &mut |_| Ok(()))?;
        let names = clean.op_names();
        let classic = stats.classic_faults_only;
        for (k, name) in (0u64..).zip(names) {
            let faults = if classic {
                faults_for("")
            } else {
                faults_for(name)
            };
            for fault in faults {
                let d = SimDisk::new();
                d.fail_with(k, fault);
                stats.runs += 1;
                let ctx = |v: Violation| Violation {
                    inv: v.inv,
                    detail: format!(
                        "workload {ops:?}, fault {fault:?} at op {k} ({name}): {}",
                        v.detail
                    ),
                };
                run_faulted(&d, mode, &ops, stats).map_err(ctx)?;
            }
        }
    }
    Ok(())
}

/// The faults tried at an operation named `name`: an I/O error (EIO) there only, and a dead
/// disk from there on; for an append also a full disk after a short write (part of the bytes
/// written); for a data sync also a failed fsync that drops its pages (the EIO one keeps them
/// cached but clean).
pub fn faults_for(name: &str) -> Vec<Fault> {
    let transient = Fault::new(FaultKind::Transient);
    let persistent = Fault::new(FaultKind::Persistent);
    match name {
        "append" => vec![
            transient,
            transient.no_space().short_write(SHORT_WRITE),
            persistent,
        ],
        "sync_data" | "sync_all" => vec![transient, transient.drop_pages(), persistent],
        _ => vec![transient, persistent],
    }
}

/// Bytes a short write writes before failing: part of a frame header and body.
const SHORT_WRITE: usize = 13;

/// Runs `ops` on a disk with a scheduled fault and checks every crash image of the state at
/// the end of the workload (taken before the store is dropped), or of the state after a
/// failed open.
fn run_faulted(d: &SimDisk, mode: Mode, ops: &[Op], stats: &mut Stats) -> Check {
    let mut checked = false;
    let mut done = 0;
    let acks = run_workload(d, mode, ops, true, &mut |acks| {
        done += 1;
        if done == ops.len() {
            checked = true;
            check_all_images(d, mode, acks, false, stats)?;
        }
        Ok(())
    })?;
    if !checked {
        check_all_images(d, mode, &acks, false, stats)?;
    }
    Ok(())
}
