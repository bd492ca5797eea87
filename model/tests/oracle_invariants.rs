//! The oracle's invariants hold on every reachable state of the unmutated model, and each
//! seeded bug (the same mutants as `spec/check_mutants.sh`) is caught by its invariant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashSet, VecDeque};

use batpak_model::oracle::invariants::{inv_monotone_visible, STATE_INVARIANTS};
use batpak_model::oracle::{
    allowed_after_recovery, next_states, recover, Config, Mutant, RecKind, Record, State, UnitKind,
};

/// The mutant-check constants of spec/check_mutants.sh.
const SMALL: Config = Config {
    max_events: 3,
    ..Config::CI
};

/// BFS; returns the name of the first invariant violated (state or step), if any.
fn first_violation(cfg: &Config, only: Option<&str>) -> Option<&'static str> {
    let init = State::init();
    let mut seen = HashSet::from([init.clone()]);
    let mut todo = VecDeque::from([init]);
    while let Some(s) = todo.pop_front() {
        for (name, inv) in STATE_INVARIANTS {
            if (only.is_none() || only == Some(name)) && !inv(cfg, &s) {
                return Some(name);
            }
        }
        for (_, n) in next_states(cfg, &s) {
            if (only.is_none() || only == Some("InvMonotoneVisible"))
                && !inv_monotone_visible(cfg, &s, &n)
            {
                return Some("InvMonotoneVisible");
            }
            if seen.insert(n.clone()) {
                todo.push_back(n);
            }
        }
    }
    None
}

#[test]
fn every_reachable_state_satisfies_every_invariant() {
    assert_eq!(first_violation(&SMALL, None), None);
}

#[test]
fn every_state_mutant_is_caught_by_its_invariant() {
    let table = [
        ("ack_before_fsync", "InvDurable"),
        ("fence_commit_ack_before_durable", "InvFenceCrash"),
        ("recover_open_fence_visible", "InvFenceCrash"),
        ("visible_before_commit", "InvFenceHidden"),
        ("batch_publish_per_event", "InvBatchAtomic"),
        ("recover_partial_batch", "InvBatchAtomic"),
        ("recovery_stops_at_hidden_unit", "InvNoCollateral"),
        ("recover_cancel_as_commit", "InvNoResurrect"),
        ("recovery_renumbers", "InvStableSeq"),
        ("crash_image_not_prefix", "InvPrefix"),
        ("refuse_after_write", "InvDefiniteErrors"),
        ("publish_out_of_order", "InvReadIsolation"),
        ("recovery_keeps_torn_tail", "InvRecoveryIdempotent"),
        ("publish_before_fsync", "InvMonotoneVisible"),
    ];
    for (name, inv) in table {
        let cfg = Config {
            mutant: Mutant::from_name(name).unwrap(),
            ..SMALL
        };
        assert_eq!(
            first_violation(&cfg, Some(inv)),
            Some(inv),
            "mutant {name} survived {inv}"
        );
    }
}

fn ev(e: u32, u: UnitKind, id: u32, seq: u32) -> Record {
    Record::new(RecKind::Event, e, u, id, seq)
}

#[test]
fn recovery_hides_an_open_fence_but_keeps_what_follows_it() {
    let log = vec![
        ev(1, UnitKind::None, 0, 1),
        Record::new(RecKind::FenceBegin, 0, UnitKind::Fence, 1, 2),
        ev(2, UnitKind::Fence, 1, 3),
        Record::new(RecKind::FenceCancel, 0, UnitKind::Fence, 1, 4),
        ev(3, UnitKind::None, 0, 5),
        ev(4, UnitKind::Batch, 1, 6),
    ];
    let r = recover(&log);
    assert_eq!(r.visible, BTreeSet::from([1, 3]));
    assert_eq!(r.log, log, "recovery keeps every record and its sequence");
}

#[test]
fn allowed_after_recovery_lists_one_visible_set_per_crash_outcome() {
    let log = vec![
        ev(1, UnitKind::None, 0, 1),
        ev(2, UnitKind::Batch, 1, 2),
        ev(3, UnitKind::Batch, 1, 3),
        Record::new(RecKind::BatchCommit, 0, UnitKind::Batch, 1, 4),
    ];
    let allowed = allowed_after_recovery(&log, 1);
    assert_eq!(
        allowed,
        BTreeSet::from([BTreeSet::from([1]), BTreeSet::from([1, 2, 3])])
    );
}
