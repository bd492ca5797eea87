//! Durable consumers in the sequential workloads (the simulator and the crash-state
//! enumeration): two consumers of the workload's scope follow the log across sessions,
//! crashes and resumes, and a ghost of what each was handed and told is judged against the
//! recovered log.
//!
//! - `c0` reacts: each `commit` is a `commit_with` that writes one output per source event
//!   handed out since its last commit (entity `r<seq>` in scope [`OUT_SCOPE`]) together with
//!   the checkpoint. After any crash the outputs must be exactly one per handed-out source at
//!   or before the recovered checkpoint (INV-EXACTLY-ONCE: present iff the checkpoint moved,
//!   never twice).
//! - `c1` only commits (`commit()`).
//!
//! For both: a poll hands out the next visible, durable events of the region in sequence
//! order with no gap (INV-CURSOR-ORDER); every event handed out is durable when handed out,
//! so no later crash takes it back or gives its sequence to another event, and a recovered
//! checkpoint is never behind an acknowledged one and is what the log's checkpoint records
//! say ([`crate::record::expected_checkpoints`]) (INV-CHECKPOINT-DURABLE).

use crate::check::{violation, visible, Check};
use crate::record::{expected_checkpoints, LogRecord};
use crate::workload::SCOPE;
use batpak::coordinate::{Coordinate, Region};
use batpak::event::EventKind;
use batpak::store::{IndexEntry, Store};
use std::collections::{BTreeMap, BTreeSet};

/// The consumers' checkpoint ids (`c0` reacts with `commit_with`, `c1` commits plainly).
pub const IDS: [&str; 2] = ["c0", "c1"];
/// The scope of `c0`'s outputs (outside the consumers' region).
pub const OUT_SCOPE: &str = "out";
/// The kind of `c0`'s outputs.
pub const OUT_KIND: EventKind = EventKind::custom(1, 2);

/// The region both consumers follow: the workload's events, not the outputs.
pub fn region() -> Region {
    Region::scope(SCOPE)
}

/// The coordinate of `c0`'s reaction to source sequence `src`.
pub fn output_coord(src: u64) -> Coordinate {
    Coordinate::new(format!("r{src}"), OUT_SCOPE)
        .unwrap_or_else(|e| panic!("output coordinate: {e}"))
}

/// What the client knows of one consumer, across sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGhost {
    /// The last checkpoint acknowledged or recovered: `None` none yet, `Some(None)` at the
    /// start, `Some(Some(s))` after sequence `s`.
    pub committed: Option<Option<u64>>,
    /// Positions of commits whose outcome is unknown (an indeterminate error): a recovery may
    /// show any of them.
    pub maybe: Vec<Option<u64>>,
    /// Every event handed out, in any session: sequence -> event id.
    pub delivered: BTreeMap<u64, u128>,
    /// Events handed out (counted once per poll that returned them).
    pub handed_out: u64,
    /// Commits answered `Ok` that wrote a checkpoint.
    pub commits: u64,
}

/// The events of the region visible now, in sequence order.
fn region_visible(store: &Store) -> Vec<IndexEntry> {
    let r = region();
    visible(store)
        .into_iter()
        .filter(|e| r.matches(&e.coord, e.kind, e.clock))
        .collect()
}

/// A poll of consumer `i` that was positioned after `prev` returned `got` (asked for at most
/// `max`): the events must be durable (below `frontier().durable`), and exactly the next
/// visible events of the region in sequence order. Records them in the ghost.
pub fn check_poll(
    store: &Store,
    ghost: &mut ConsumerGhost,
    i: usize,
    prev: Option<u64>,
    got: &[IndexEntry],
    max: usize,
) -> Check {
    let durable = store.frontier().durable;
    if let Some(e) = got.iter().find(|e| e.global_sequence >= durable) {
        return Err(violation(
            "INV-CHECKPOINT-DURABLE",
            format!(
                "consumer {} was handed seq {}, which is not durable (durable frontier {durable})",
                IDS[i], e.global_sequence
            ),
        ));
    }
    let want: Vec<(u64, u128)> = region_visible(store)
        .iter()
        .filter(|e| prev.is_none_or(|p| e.global_sequence > p) && e.global_sequence < durable)
        .take(max)
        .map(|e| (e.global_sequence, e.event_id))
        .collect();
    let have: Vec<(u64, u128)> = got
        .iter()
        .map(|e| (e.global_sequence, e.event_id))
        .collect();
    if have != want {
        return Err(violation(
            "INV-CURSOR-ORDER",
            format!(
                "consumer {} positioned after {prev:?} was handed {:?}, the region's next \
                 durable events are {:?}",
                IDS[i],
                have.iter().map(|x| x.0).collect::<Vec<_>>(),
                want.iter().map(|x| x.0).collect::<Vec<_>>()
            ),
        ));
    }
    for (s, id) in have {
        if let Some(old) = ghost.delivered.insert(s, id) {
            if old != id {
                return Err(violation(
                    "INV-CHECKPOINT-DURABLE",
                    format!(
                        "consumer {} was handed seq {s} as event {id:x}, earlier as {old:x}: \
                         an event handed out was taken back and its sequence reused",
                        IDS[i]
                    ),
                ));
            }
        }
        ghost.handed_out += 1;
    }
    Ok(())
}

/// INV-EXACTLY-ONCE for `c0`: the visible outputs are exactly one per source it was handed
/// at or before its checkpoint `committed`.
pub fn check_outputs(store: &Store, ghost: &ConsumerGhost, committed: Option<u64>) -> Check {
    let mut srcs: BTreeMap<u64, usize> = BTreeMap::new();
    for e in visible(store) {
        if e.coord.scope() != OUT_SCOPE {
            continue;
        }
        let src = e
            .coord
            .entity()
            .strip_prefix('r')
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        *srcs.entry(src).or_default() += 1;
    }
    if let Some((s, n)) = srcs.iter().find(|(_, n)| **n > 1) {
        return Err(violation(
            "INV-EXACTLY-ONCE",
            format!("consumer c0 reacted {n} times to source seq {s}"),
        ));
    }
    let have: BTreeSet<u64> = srcs.into_keys().collect();
    let want: BTreeSet<u64> = ghost
        .delivered
        .keys()
        .copied()
        .filter(|s| committed.is_some_and(|c| *s <= c))
        .collect();
    if have != want {
        let missing: Vec<_> = want.difference(&have).collect();
        let extra: Vec<_> = have.difference(&want).collect();
        return Err(violation(
            "INV-EXACTLY-ONCE",
            format!(
                "consumer c0 committed after {committed:?}: reactions missing for sources \
                 {missing:?} (checkpoint moved without its outputs), reactions to {extra:?} \
                 (outputs without their checkpoint)"
            ),
        ));
    }
    Ok(())
}

/// After a recovery that kept `kept` (the log as written, up to what the image kept): the
/// store's checkpoints are the log's; each consumer's recovered checkpoint is not behind the
/// one acknowledged and is one that was committed; every event handed out is still there
/// with its id; `c0`'s outputs match its checkpoint. Then the ghosts follow the recovery.
pub fn check_recovered(
    store: &Store,
    ghosts: &mut [ConsumerGhost; 2],
    kept: &[LogRecord],
) -> Check {
    let want = expected_checkpoints(kept);
    let got: BTreeMap<String, Option<u64>> = store
        .consumers()
        .into_iter()
        .map(|c| (c.id.as_str().to_owned(), c.committed))
        .collect();
    if got != want {
        return Err(violation(
            "INV-CHECKPOINT-DURABLE",
            format!("recovered checkpoints {got:?}, the log's checkpoint records say {want:?}"),
        ));
    }
    if got.is_empty() && ghosts.iter().all(|g| *g == ConsumerGhost::default()) {
        return Ok(());
    }
    let vis: BTreeMap<u64, u128> = visible(store)
        .iter()
        .map(|e| (e.global_sequence, e.event_id))
        .collect();
    for (i, g) in ghosts.iter_mut().enumerate() {
        let now = got.get(IDS[i]).copied();
        if let Some(acked) = g.committed {
            if now.is_none_or(|n| n < acked) {
                return Err(violation(
                    "INV-CHECKPOINT-DURABLE",
                    format!(
                        "consumer {}: acknowledged checkpoint after {acked:?}, recovered {now:?}",
                        IDS[i]
                    ),
                ));
            }
        }
        if now != g.committed && !now.is_some_and(|n| g.maybe.contains(&n)) {
            return Err(violation(
                "INV-CHECKPOINT-DURABLE",
                format!(
                    "consumer {}: recovered checkpoint {now:?} was never committed (acknowledged \
                     {:?}, unknown outcome {:?})",
                    IDS[i], g.committed, g.maybe
                ),
            ));
        }
        if let Some((s, id)) = g.delivered.iter().find(|(s, id)| vis.get(s) != Some(id)) {
            return Err(violation(
                "INV-CHECKPOINT-DURABLE",
                format!(
                    "consumer {} was handed seq {s} (event {id:x}); after the crash it reads \
                     {:?}: it was handed an event that was not durable",
                    IDS[i],
                    vis.get(s).map(|x| format!("{x:x}"))
                ),
            ));
        }
        g.committed = now;
        g.maybe.clear();
        if i == 0 {
            check_outputs(store, g, now.flatten())?;
        }
    }
    Ok(())
}
