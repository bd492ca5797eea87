//! The oracle's invariants hold on every reachable state of the unmutated model, and each
//! seeded bug (the same mutants, constants and invariants as `spec/check_mutants.sh`) is
//! caught by its invariant. Also: the scenarios (a process crash, then recovery, then
//! a power loss; a failed fsync across a restart) replayed step by step through the oracle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashSet, VecDeque};

use batpak_model::oracle::invariants::{inv_durable, inv_monotone_visible, STATE_INVARIANTS};
use batpak_model::oracle::{
    allowed_after_recovery, append, fsync, fsync_fail, next_states, power_loss, process_crash,
    recover, recover_step, reply, submit_append, submit_sync, sync, Config, DiskState, Mutant,
    RecKind, Record, State, Status, UnitKind,
};

/// BFS; returns the name of the first invariant violated (state or step), if any, and the
/// number of states explored.
fn first_violation(cfg: &Config, only: Option<&str>) -> (Option<&'static str>, usize) {
    let init = State::init();
    let mut seen = HashSet::from([init.clone()]);
    let mut todo = VecDeque::from([init]);
    while let Some(s) = todo.pop_front() {
        for (name, inv) in STATE_INVARIANTS {
            if (only.is_none() || only == Some(name)) && !inv(cfg, &s) {
                return (Some(name), seen.len());
            }
        }
        for (_, n) in next_states(cfg, &s) {
            if (only.is_none() || only == Some("InvMonotoneVisible"))
                && !inv_monotone_visible(cfg, &s, &n)
            {
                return (Some("InvMonotoneVisible"), seen.len());
            }
            if seen.insert(n.clone()) {
                todo.push_back(n);
            }
        }
    }
    (None, seen.len())
}

/// The mutant table of spec/check_mutants.sh (the three liveness mutants are TLC's only).
const MUTANTS: [(&str, &str, u32); 19] = [
    ("ack_before_fsync", "InvDurable", 0),
    ("fence_commit_ack_before_durable", "InvFenceCrash", 0),
    ("recover_open_fence_visible", "InvFenceCrash", 0),
    ("visible_before_commit", "InvFenceHidden", 0),
    ("batch_publish_per_event", "InvBatchAtomic", 0),
    ("recover_partial_batch", "InvBatchAtomic", 0),
    ("recovery_stops_at_hidden_unit", "InvNoCollateral", 0),
    ("recover_cancel_as_commit", "InvNoResurrect", 0),
    ("recovery_renumbers", "InvStableSeq", 0),
    ("crash_image_not_prefix", "InvPrefix", 0),
    ("refuse_after_write", "InvDefiniteErrors", 0),
    ("publish_out_of_order", "InvReadIsolation", 0),
    ("recovery_keeps_torn_tail", "InvRecoveryIdempotent", 0),
    ("recovery_trusts_page_cache", "InvDurable", 0),
    ("recovery_fsync_trusts_clean_pages", "InvDurable", 1),
    ("fsync_retry_acks", "InvDurable", 1),
    ("latch_reports_definite", "InvDefiniteErrors", 1),
    (
        "fenced_batch_published_at_batch_commit",
        "InvFenceHidden",
        0,
    ),
    (
        "recover_fenced_batch_without_fence_commit",
        "InvFenceCrash",
        0,
    ),
];

#[test]
fn every_reachable_state_satisfies_every_invariant() {
    // The mutant constants with every feature on: a failed fsync, a sync, two crashes.
    let cfg = Config {
        max_events: 2,
        max_syncs: 1,
        max_crashes: 2,
        max_fsync_fails: 1,
        ..Config::MUTANTS
    };
    let (violated, states) = first_violation(&cfg, None);
    assert_eq!(violated, None);
    assert!(states > 100_000, "only {states} states");
    let (violated, _) = first_violation(
        &Config {
            max_fsync_fails: 1,
            ..Config::MUTANTS
        },
        None,
    );
    assert_eq!(violated, None);
}

#[test]
fn every_state_mutant_is_caught_by_its_invariant() {
    for (name, inv, fsync_fails) in MUTANTS {
        let cfg = Config {
            mutant: Mutant::from_name(name).unwrap(),
            max_fsync_fails: fsync_fails,
            ..Config::MUTANTS
        };
        assert_eq!(
            first_violation(&cfg, Some(inv)).0,
            Some(inv),
            "mutant {name} survived {inv}"
        );
    }
    let property = Config {
        mutant: Mutant::PublishBeforeFsync,
        ..Config::MUTANTS
    };
    assert_eq!(
        first_violation(&property, Some("InvMonotoneVisible")).0,
        Some("InvMonotoneVisible")
    );
}

/// The waits: with `wait_before_durable` seeded (the point taken as exclusive) `InvDurable`
/// fails, on the constants `spec/check_mutants.sh` uses for it (`MaxWaits=1,MaxBatches=0`).
/// (That every state invariant holds with waits is checked on `spec/Store_waits.cfg`'s states
/// by `tlc_agreement::oracle_agrees_with_tlc_with_waits`.)
#[test]
fn an_early_wait_breaks_inv_durable() {
    let mutant = Config {
        mutant: Mutant::WaitBeforeDurable,
        max_waits: 1,
        max_batches: 0,
        ..Config::MUTANTS
    };
    assert_eq!(
        first_violation(&mutant, Some("InvDurable")).0,
        Some("InvDurable")
    );
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/check_mutants.sh"),
    )
    .unwrap();
    let line = script
        .lines()
        .find(|l| l.split_whitespace().next() == Some("wait_before_durable"))
        .unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cols[1..],
        ["InvDurable", "INVARIANT", "MaxWaits=1,MaxBatches=0"]
    );
}

#[test]
fn the_mutant_table_matches_check_mutants_sh() {
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/check_mutants.sh"),
    )
    .unwrap();
    for (name, inv, fsync_fails) in MUTANTS {
        let line = script
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} is not in check_mutants.sh"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], inv, "{name}");
        let overrides = if fsync_fails == 0 {
            "-".to_string()
        } else {
            format!("MaxFsyncFails={fsync_fails}")
        };
        assert_eq!(cols[3], overrides, "{name}");
    }
    for (m, name) in Mutant::ALL.iter().skip(1) {
        assert!(
            script
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{m:?} has no line in check_mutants.sh"
        );
    }
}

/// Submit an append, take it, then process-crash with the event in the page cache only.
fn appended_then_process_crash(cfg: &Config) -> State {
    let s = submit_append(cfg, &State::init()).unwrap();
    let s = append(cfg, &s).unwrap();
    assert_eq!((s.written.len(), s.durable_len), (1, 0));
    let s = process_crash(cfg, &s, 1, false, false).unwrap();
    assert_eq!(s.ticket(1).unwrap().st, Status::WriterCrashed);
    assert_eq!(s.durable_len, 0, "a process crash makes nothing durable");
    s
}

/// Sync in the recovered session: submitted, taken, answered Ok.
fn sync_ok(cfg: &Config, s: &State) -> State {
    let s = submit_sync(cfg, s).unwrap();
    let s = sync(cfg, &s).unwrap();
    let t = s.tickets.len();
    reply(cfg, &s, t).expect("sync answered Ok")
}

#[test]
fn process_crash_recovery_sync_then_power_loss_keeps_the_event_unless_recovery_trusts_the_cache() {
    let cfg = Config {
        max_syncs: 1,
        max_crashes: 2,
        ..Config::MUTANTS
    };
    // The spec: recovery makes the event durable before it reports it.
    let s = recover_step(&cfg, &appended_then_process_crash(&cfg)).unwrap();
    assert_eq!((s.durable_len, s.frontier), (1, 1));
    let s = sync_ok(&cfg, &s);
    assert!(inv_durable(&cfg, &s));
    assert!(
        power_loss(&cfg, &s, 0, false, false).is_none(),
        "a power loss cannot lose a durable record"
    );
    let after = power_loss(&cfg, &s, 1, false, false).unwrap();
    let after = recover_step(&cfg, &after).unwrap();
    assert_eq!(after.visible, BTreeSet::from([1]));
    assert!(inv_durable(&cfg, &after));

    // The seeded bug: the frontier covers what only the page cache holds; sync says Ok; the
    // power loss then loses the event.
    let bad = Config {
        mutant: Mutant::RecoveryTrustsPageCache,
        ..cfg
    };
    let s = recover_step(&bad, &appended_then_process_crash(&bad)).unwrap();
    assert_eq!((s.durable_len, s.frontier), (0, 1));
    assert!(
        !inv_durable(&bad, &s),
        "the frontier reports a non-durable record"
    );
    let s = sync_ok(&bad, &s);
    let lost = power_loss(&bad, &s, 0, false, false).expect("the event was never durable");
    let lost = recover_step(&bad, &lost).unwrap();
    assert!(lost.visible.is_empty() && lost.written.is_empty());
    assert!(
        !inv_durable(&bad, &lost),
        "a sync answered Ok before the power loss covers a lost event"
    );
}

#[test]
fn a_failed_fsync_latches_and_a_later_process_must_rewrite_what_it_finds() {
    let cfg = Config {
        max_syncs: 1,
        max_crashes: 2,
        max_fsync_fails: 1,
        ..Config::MUTANTS
    };
    let s = submit_append(&cfg, &State::init()).unwrap();
    let s = append(&cfg, &s).unwrap();
    let s = fsync_fail(&cfg, &s).unwrap();
    assert!(s.latched && s.pages_clean);
    assert_eq!(s.ticket(1).unwrap().st, Status::OutcomeUnknown);
    assert!(
        fsync(&cfg, &s).is_none(),
        "a latched writer does not fsync again"
    );
    // Later writes are refused with a definite error and write nothing.
    let s2 = submit_append(&cfg, &s).unwrap();
    let s2 = next_states(&cfg, &s2)
        .into_iter()
        .find(|(a, _)| a.name() == "Refuse")
        .unwrap()
        .1;
    assert_eq!(s2.ticket(2).unwrap().st, Status::WriterLatched);
    assert_eq!(s2.written.len(), 1);
    // The next process finds the record in the page cache; the spec's recovery makes it
    // durable (rewrite, fsync), an fsync alone would not: the pages are clean.
    let down = process_crash(&cfg, &s, 1, false, false).unwrap();
    assert!(down.pages_clean);
    let up = recover_step(&cfg, &down).unwrap();
    assert_eq!((up.durable_len, up.frontier, up.pages_clean), (1, 1, false));
    let bad = Config {
        mutant: Mutant::RecoveryFsyncTrustsCleanPages,
        ..cfg
    };
    let up = recover_step(&bad, &down).unwrap();
    assert_eq!((up.durable_len, up.frontier), (0, 1));
    assert!(!inv_durable(&bad, &up));
    // Retrying the fsync and believing it is the other half of the same bug.
    let retry = Config {
        mutant: Mutant::FsyncRetryAcks,
        ..cfg
    };
    let s = submit_append(&retry, &State::init()).unwrap();
    let s = append(&retry, &s).unwrap();
    let s = fsync_fail(&retry, &s).unwrap();
    let s = fsync(&retry, &s).expect("the seeded bug retries");
    assert_eq!((s.durable_len, s.frontier), (0, 1));
    assert!(!inv_durable(&retry, &s));
}

#[test]
fn disk_state_follows_the_spec_across_sessions() {
    let mut d = DiskState::new();
    d.write([Record::new(RecKind::Event, 1, UnitKind::None, 0, 1)]);
    d.fsync();
    d.write([Record::new(RecKind::Event, 2, UnitKind::None, 0, 2)]);
    assert_eq!(d.crash_images(), vec![(1, false), (1, true), (2, false)]);
    // Process crash keeping event 2: still not durable; recovery makes it durable.
    let pc = d.process_crash(2, false).unwrap();
    assert_eq!(pc.durable_len, 1);
    assert_eq!(
        pc.allowed_after_crash().len(),
        2,
        "event 2 may still be lost"
    );
    let (rec, r) = pc.recover();
    assert_eq!(r.visible, BTreeSet::from([1, 2]));
    assert_eq!(rec.durable_events(), BTreeSet::from([1, 2]));
    // Power loss keeping event 2: durable at once.
    let pl = d.power_loss(2, false).unwrap();
    assert_eq!(pl.durable_len, 2);
    assert!(d.power_loss(0, false).is_none(), "durable records survive");
    // A failed fsync leaves the pages clean: a later fsync does not make them durable.
    let mut f = d.clone();
    f.fsync_fail();
    f.fsync();
    assert_eq!(f.durable_len, 1);
    assert!(f.process_crash(2, false).unwrap().pages_clean);
    assert!(!f.power_loss(2, false).unwrap().pages_clean);
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
fn a_fenced_batch_needs_its_batch_commit_and_its_fence_commit() {
    let batch = |commit: bool| {
        let mut log = vec![
            Record::new(RecKind::FenceBegin, 0, UnitKind::Fence, 1, 1),
            Record::in_batch(RecKind::Event, 1, 1, 1, 2),
            Record::in_batch(RecKind::Event, 2, 1, 1, 3),
            Record::in_batch(RecKind::BatchCommit, 0, 1, 1, 4),
        ];
        if commit {
            log.push(Record::new(RecKind::FenceCommit, 0, UnitKind::Fence, 1, 5));
        }
        log
    };
    assert!(recover(&batch(false)).visible.is_empty());
    assert_eq!(recover(&batch(true)).visible, BTreeSet::from([1, 2]));
    let mut no_batch_commit = batch(true);
    no_batch_commit.remove(3);
    assert!(recover(&no_batch_commit).visible.is_empty());
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
