//! The checks shared by the crash-state enumeration, the simulator and the fuzz harness: what
//! a recovered store must show against the oracle ([`crate::conformance::expected_visible`])
//! and what its caller was told ([`Acks`]), the entity chains and the hybrid logical clock.
//! Every check returns a [`Violation`] naming the invariant (`INV-…`), so a mutant test can
//! assert that the right invariant is reported.

use crate::conformance::{expected_visible, Abstract};
use crate::record::{LogBody, LogRecord};
use crate::workload::{coord, Acks, Fate, KIND};
use batpak::coordinate::Region;
use batpak::store::{IndexEntry, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// An invariant a checker found broken.
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

impl Violation {
    /// The same violation with `context` in front of its detail.
    pub fn context(self, context: impl fmt::Display) -> Violation {
        Violation {
            inv: self.inv,
            detail: format!("{context}: {}", self.detail),
        }
    }
}

/// A violation of `inv`.
pub fn violation(inv: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        inv,
        detail: detail.into(),
    }
}

/// The result of a check.
pub type Check = Result<(), Violation>;

/// Every visible event, in sequence order.
pub fn visible(store: &Store) -> Vec<IndexEntry> {
    let mut v = store.query(&Region::all());
    v.sort_by_key(|e| e.global_sequence);
    v
}

/// (id, sequence) of each entry, for messages.
pub fn ids(v: &[IndexEntry]) -> Vec<(u128, u64)> {
    v.iter().map(|e| (e.event_id, e.global_sequence)).collect()
}

/// INV-CHAIN over a visible set: per entity strictly increasing clocks, and where clocks are
/// consecutive `prev_hash` is the previous event's hash; then INV-HLC-MONOTONE.
pub fn check_chain(vis: &[IndexEntry]) -> Check {
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
pub fn check_hlc(vis: &[IndexEntry]) -> Check {
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

/// Whether an unfinished unit (batch without commit, fence without commit or cancel) starts
/// before `seq` in the first `p` records of `hist`.
pub fn unfinished_unit_before(hist: &[LogRecord], p: usize, seq: u64) -> bool {
    let prefix = &hist[..p.min(hist.len())];
    let mut ended_batches = BTreeSet::new();
    let mut ended_fences = BTreeSet::new();
    for r in prefix {
        match &r.body {
            LogBody::BatchCommit { batch, .. } => {
                ended_batches.insert(*batch);
            }
            LogBody::FenceCommit { fence } | LogBody::FenceCancel { fence } => {
                ended_fences.insert(*fence);
            }
            _ => {}
        }
    }
    prefix
        .iter()
        .take(usize::try_from(seq).unwrap_or(usize::MAX))
        .any(|r| match &r.body {
            LogBody::Event(e) => {
                e.unit.batch().is_some_and(|b| !ended_batches.contains(&b))
                    || e.unit.fence().is_some_and(|f| !ended_fences.contains(&f))
            }
            LogBody::FenceBegin { fence } => !ended_fences.contains(fence),
            _ => false,
        })
}

/// Names the invariant behind a failed open from the error's text.
pub fn open_violation(e: &StoreError, fallback: &'static str, what: &str) -> Violation {
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

/// Checks a store recovered from the first `p` records (its own count) of the written log
/// `hist` (`abs`: the oracle's view of it) against the oracle and against what the caller
/// was told (`acks`): sequences stable, exactly the oracle's visible set (a difference is
/// named by the invariant it breaks), every durability promise kept, acknowledged events
/// unchanged, chains intact. `read_payloads`: also read every acknowledged event's payload
/// back through the store (disk reads: not while a fault is scheduled at an operation index).
pub fn check_recovered(
    store: &Store,
    vis: &[IndexEntry],
    p: u64,
    acks: &Acks,
    hist: &[LogRecord],
    abs: &Abstract,
    read_payloads: bool,
) -> Check {
    let pu = usize::try_from(p).unwrap_or(usize::MAX);
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
        .filter_map(|r| r.event().map(|e| (e.event_id, r.seq)))
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
    // The oracle: exactly what recovery of the surviving prefix makes visible.
    let expected = expected_visible(abs, pu, false);
    let got: BTreeSet<u64> = vis.iter().map(|e| e.global_sequence).collect();
    let has = |pred: &dyn Fn(&LogBody) -> bool| hist[..pu].iter().any(|r| pred(&r.body));
    if let Some(&s) = got.difference(&expected).next() {
        let su = usize::try_from(s).unwrap_or(usize::MAX);
        if su >= pu {
            return Err(violation(
                "INV-PREFIX",
                format!("seq {s} visible beyond the recovered prefix of {p} records"),
            ));
        }
        let Some(unit) = hist[su].unit() else {
            return Err(violation("INV-PREFIX", format!("seq {s} is not an event")));
        };
        let batch_open = unit.batch().is_some_and(|b| {
            !has(&|r| matches!(r, LogBody::BatchCommit { batch, .. } if *batch == b))
        });
        if batch_open {
            return Err(violation(
                "INV-BATCH-ATOMIC",
                format!("seq {s} of batch {unit:?} visible without its commit record (prefix {p})"),
            ));
        }
        if let Some(f) = unit.fence() {
            let cancelled = has(&|r| matches!(r, LogBody::FenceCancel { fence } if *fence == f))
                || acks.fences.get(&f) == Some(&Fate::Cancelled);
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
        let su = usize::try_from(s).unwrap_or(usize::MAX);
        if unfinished_unit_before(hist, pu, s) {
            return Err(violation(
                "INV-NO-COLLATERAL",
                format!("seq {s} hidden after an unfinished unit (prefix {p})"),
            ));
        }
        let inv = match hist[su].unit() {
            Some(u) if u.fence().is_some() => "INV-FENCE-CRASH",
            Some(u) if u.batch().is_some() => "INV-BATCH-ATOMIC",
            _ => "INV-PREFIX",
        };
        return Err(violation(
            inv,
            format!("seq {s} is complete in the surviving prefix of {p} records but hidden"),
        ));
    }
    // INV-BATCH-ATOMIC, explicitly: each batch all or nothing.
    let mut batch_counts: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for r in hist {
        if let Some(b) = r.unit().and_then(|u| u.batch()) {
            let c = batch_counts.entry(b).or_default();
            c.0 += 1;
            if got.contains(&r.seq) {
                c.1 += 1;
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
    check_acked(store, vis, acks, hist, read_payloads)?;
    // Visible entries agree with what was written (clock, prev_hash, coordinate, kind).
    for e in vis {
        let su = usize::try_from(e.global_sequence).unwrap_or(usize::MAX);
        if let Some(w) = hist.get(su).and_then(LogRecord::event) {
            if e.clock != w.clock || e.hash_chain.prev_hash != w.prev_hash {
                return Err(violation(
                    "INV-CHAIN",
                    format!("seq {su}: clock/prev_hash differ from the written record"),
                ));
            }
            if e.coord.entity() != w.entity
                || e.coord.scope() != w.scope
                || e.kind.as_raw() != w.kind
            {
                return Err(violation(
                    "INV-DURABLE",
                    format!("seq {su}: coordinate/kind differ from the written record"),
                ));
            }
        }
    }
    check_chain(vis)
}

/// Acknowledged events are visible when they were promised durable, and wherever they are
/// visible they keep their id, sequence, coordinate, kind and payload.
fn check_acked(
    store: &Store,
    vis: &[IndexEntry],
    acks: &Acks,
    hist: &[LogRecord],
    read_payloads: bool,
) -> Check {
    let by_id: BTreeMap<u128, &IndexEntry> = vis.iter().map(|e| (e.event_id, e)).collect();
    for a in &acks.events {
        let Some(&e) = by_id.get(&a.id) else {
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
        if e.coord != coord(&a.entity) || e.kind != KIND {
            return Err(violation(
                "INV-DURABLE",
                format!("event {:x}: coordinate or kind changed", a.id),
            ));
        }
        if !read_payloads {
            continue;
        }
        let changed = match &a.payload {
            Some(json) => {
                let stored = store
                    .get(a.id)
                    .map_err(|err| violation("INV-DURABLE", format!("get {:x}: {err}", a.id)))?;
                stored.event.payload != *json
            }
            None => {
                let stored = store
                    .get_raw(a.id)
                    .map_err(|err| violation("INV-DURABLE", format!("get {:x}: {err}", a.id)))?;
                let written = usize::try_from(a.seq)
                    .ok()
                    .and_then(|s| hist.get(s))
                    .and_then(LogRecord::event);
                written.is_none_or(|w| w.payload != stored.event.payload)
            }
        };
        if changed {
            return Err(violation(
                "INV-DURABLE",
                format!("event {:x}: payload changed", a.id),
            ));
        }
    }
    Ok(())
}

/// Checks the live store after an operation: fenced events hidden until commit, cancelled
/// ones never visible, acknowledged ones visible, the chain intact.
pub fn live_check(store: &Store, acks: &Acks) -> Check {
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
    let ids: BTreeSet<u128> = vis.iter().map(|e| e.event_id).collect();
    for a in &acks.events {
        if !ids.contains(&a.id) {
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
