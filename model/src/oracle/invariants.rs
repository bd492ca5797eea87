//! The spec's invariants, one function per TLA+ definition with the same name.
//! `inv_monotone_visible` is the action property `MonotoneStep` (a pair of states).
//! The liveness properties (`LiveNoHang`, `LiveDropCancels`) are checked by TLC only.

use std::collections::BTreeSet;

use super::log::{
    ev_pos, fence_events_in, has, log_events, point_events, pos_of, recover_log, recover_visible,
    true_commit_point, truly_committed, visibles, EventNo, RecKind, Record,
};
use super::{Cmd, Config, State, Status};

/// `Observable`: what readers see now, or (while down) what recovery will let them see.
pub fn observable(cfg: &Config, s: &State) -> BTreeSet<EventNo> {
    if s.up {
        s.visible.clone()
    } else {
        recover_visible(&recover_log(&s.written, cfg.mutant), cfg.mutant)
    }
}

fn ticket_events(s: &State, c: Cmd, ok: impl Fn(Status) -> bool) -> BTreeSet<EventNo> {
    s.tickets
        .iter()
        .filter(|t| t.cmd == c && ok(t.st))
        .flat_map(|t| t.evs.iter().copied())
        .collect()
}

/// `FenceIds`: the fences begun so far.
fn fence_ids(s: &State) -> BTreeSet<u32> {
    s.tickets
        .iter()
        .filter(|t| t.cmd == Cmd::FenceBegin)
        .map(|t| t.id)
        .collect()
}

/// `FenceTicketEvents(f, st)`: fenced appends and fenced batches of fence `f`.
fn fence_ticket_events(s: &State, f: u32, ok: impl Fn(Status) -> bool) -> BTreeSet<EventNo> {
    s.tickets
        .iter()
        .filter(|t| t.cmd.is_fenced() && t.id == f && ok(t.st))
        .flat_map(|t| t.evs.iter().copied())
        .collect()
}

/// `CommitOk(f)`.
fn commit_ok(s: &State, f: u32) -> bool {
    s.tickets
        .iter()
        .any(|t| t.cmd == Cmd::FenceCommit && t.id == f && t.st == Status::Ok)
}

fn not_refused(st: Status) -> bool {
    !st.is_definite()
}

/// `AckedEvents`.
pub fn acked_events(_cfg: &Config, s: &State) -> BTreeSet<EventNo> {
    let ok = |st: Status| st == Status::Ok;
    let mut a = ticket_events(s, Cmd::Append, ok);
    a.extend(ticket_events(s, Cmd::Batch, ok));
    a.extend(ticket_events(s, Cmd::FenceAppend, ok));
    a.extend(ticket_events(s, Cmd::FenceBatch, ok));
    for f in fence_ids(s) {
        if commit_ok(s, f) {
            a.extend(fence_ticket_events(s, f, not_refused));
        }
    }
    a
}

/// `InvDurable` (INV-DURABLE): what the store reports durable (its frontier) is durable on
/// disk, and everything ever acknowledged, in this or an earlier session, is durable and
/// observable.
pub fn inv_durable(cfg: &Config, s: &State) -> bool {
    if s.frontier > s.durable_len {
        return false;
    }
    let obs = observable(cfg, s);
    let events_ok = acked_events(cfg, s).iter().all(|&e| {
        let p = ev_pos(&s.written, e);
        p != 0 && p <= s.durable_len && obs.contains(&e)
    });
    let syncs_ok = s
        .tickets
        .iter()
        .all(|t| t.cmd != Cmd::Sync || t.st != Status::Ok || t.mark <= s.durable_len);
    let waits_ok = s
        .tickets
        .iter()
        .all(|t| t.cmd != Cmd::Wait || t.st != Status::Ok || t.id as usize <= s.durable_len);
    events_ok && syncs_ok && waits_ok
}

/// `Content(r)`: a record without its sequence.
fn contents(s: &[Record]) -> Vec<Record> {
    s.iter()
        .map(|r| Record {
            seq: 0,
            ..r.clone()
        })
        .collect()
}

/// `InvPrefix` (INV-PREFIX), judged while down on what recovery will leave.
pub fn inv_prefix(cfg: &Config, s: &State) -> bool {
    if s.up {
        return true;
    }
    let r = recover_log(&s.written, cfg.mutant);
    let a = contents(&visibles(&r, &r, cfg.mutant));
    let b = contents(&visibles(&s.pre_crash, &r, cfg.mutant));
    a.len() <= b.len() && b.starts_with(&a)
}

/// `InvNoCollateral` (INV-NO-COLLATERAL).
pub fn inv_no_collateral(cfg: &Config, s: &State) -> bool {
    let log: Vec<Record> = if s.up {
        s.written.iter().take(s.pub_len).cloned().collect()
    } else {
        recover_log(&s.written, cfg.mutant)
    };
    let obs = observable(cfg, s);
    log.iter()
        .filter(|r| r.k == RecKind::Event && truly_committed(&log, r))
        .all(|r| obs.contains(&r.e))
}

/// `InvStableSeq` (INV-STABLE-SEQ).
pub fn inv_stable_seq(cfg: &Config, s: &State) -> bool {
    let dense = s
        .written
        .iter()
        .enumerate()
        .all(|(i, r)| usize::try_from(r.seq).ok() == Some(i + 1));
    if !dense || s.up {
        return dense;
    }
    recover_log(&s.written, cfg.mutant)
        .iter()
        .filter(|r| r.k == RecKind::Event)
        .all(|r| {
            s.pre_crash
                .iter()
                .any(|p| p.k == RecKind::Event && p.e == r.e && p.seq == r.seq)
        })
}

/// `InvBatchAtomic` (INV-BATCH-ATOMIC).
pub fn inv_batch_atomic(cfg: &Config, s: &State) -> bool {
    let obs = observable(cfg, s);
    s.tickets
        .iter()
        .filter(|t| t.cmd.is_batch())
        .all(|t| t.evs.is_subset(&obs) || t.evs.is_disjoint(&obs))
}

/// `InvFenceHidden` (INV-FENCE-HIDDEN).
pub fn inv_fence_hidden(cfg: &Config, s: &State) -> bool {
    let obs = observable(cfg, s);
    let commit_log: Vec<Record> = if s.up {
        s.written.iter().take(s.durable_len).cloned().collect()
    } else {
        recover_log(&s.written, cfg.mutant)
    };
    fence_ids(s).into_iter().all(|f| {
        let e = fence_events_in(&s.written, f);
        let hidden_ok =
            e.is_disjoint(&obs) || (e.is_subset(&obs) && has(&commit_log, RecKind::FenceCommit, f));
        let commit_ok_ok =
            !commit_ok(s, f) || fence_ticket_events(s, f, not_refused).is_subset(&obs);
        hidden_ok && commit_ok_ok
    })
}

/// `InvFenceCrash` (INV-FENCE-CRASH).
pub fn inv_fence_crash(cfg: &Config, s: &State) -> bool {
    let obs = observable(cfg, s);
    fence_ids(s).into_iter().all(|f| {
        let p = pos_of(&s.written, RecKind::FenceCommit, f);
        let acked_durable = !commit_ok(s, f) || (p != 0 && p <= s.durable_len);
        let after_crash = s.up || {
            let log = recover_log(&s.written, cfg.mutant);
            let committed = has(&log, RecKind::FenceCommit, f);
            fence_events_in(&log, f)
                .iter()
                .all(|e| obs.contains(e) == committed)
        };
        let orphan = s.up
            && has(&s.written, RecKind::FenceBegin, f)
            && !has(&s.written, RecKind::FenceCommit, f)
            && !has(&s.written, RecKind::FenceCancel, f)
            && f != s.open_fence;
        let orphan_ok = !orphan
            || (!s.held.contains(&f) && fence_events_in(&s.written, f).is_disjoint(&s.visible));
        acked_durable && after_crash && orphan_ok
    })
}

/// `InvNoResurrect` (INV-NO-RESURRECT).
pub fn inv_no_resurrect(cfg: &Config, s: &State) -> bool {
    let obs = observable(cfg, s);
    let cancelled: BTreeSet<u32> = s
        .tickets
        .iter()
        .filter(|t| matches!(t.cmd, Cmd::FenceCancel | Cmd::FenceDrop) && t.st == Status::Ok)
        .map(|t| t.id)
        .collect();
    cancelled
        .iter()
        .all(|&f| fence_ticket_events(s, f, |_| true).is_disjoint(&obs))
        && ticket_events(s, Cmd::Batch, Status::is_definite).is_disjoint(&obs)
        && ticket_events(s, Cmd::FenceBatch, Status::is_definite).is_disjoint(&obs)
}

/// `InvDefiniteErrors` (INV-DEFINITE-ERRORS).
pub fn inv_definite_errors(cfg: &Config, s: &State) -> bool {
    let obs = observable(cfg, s);
    let logged = log_events(&s.written);
    s.tickets.iter().all(|t| {
        (!t.st.is_definite() || t.evs.is_disjoint(&obs))
            && (!t.st.is_refusal() || t.evs.is_disjoint(&logged))
    })
}

/// `InvReadIsolation` (INV-READ-ISOLATION): the visible set is a prefix of the publish order.
pub fn inv_read_isolation(_cfg: &Config, s: &State) -> bool {
    if !s.up {
        return true;
    }
    let mut cut: BTreeSet<EventNo> = BTreeSet::new();
    if cut == s.visible {
        return true;
    }
    for (i, r) in s.written.iter().enumerate() {
        if true_commit_point(r) {
            cut.extend(point_events(&s.written, i + 1));
        }
        if cut == s.visible {
            return true;
        }
    }
    false
}

/// `InvRecoveryIdempotent` (INV-RECOVERY-IDEMPOTENT).
pub fn inv_recovery_idempotent(cfg: &Config, s: &State) -> bool {
    let no_torn = !s.up || s.written.iter().all(|r| r.k != RecKind::Torn);
    let l = recover_log(&s.written, cfg.mutant);
    let ll = recover_log(&l, cfg.mutant);
    no_torn && ll == l && recover_visible(&ll, cfg.mutant) == recover_visible(&l, cfg.mutant)
}

/// `TypeOK`.
pub fn type_ok(cfg: &Config, s: &State) -> bool {
    s.queue.iter().all(|&t| t >= 1 && t <= s.tickets.len())
        && s.written
            .iter()
            .all(|r| r.e <= cfg.max_events && r.f <= cfg.max_fences)
        && s.durable_len <= s.written.len()
        && s.frontier <= s.written.len()
        && s.pub_len <= s.frontier
        && s.visible.iter().all(|&e| (1..=cfg.max_events).contains(&e))
        && s.open_fence <= cfg.max_fences
        && s.held.iter().all(|&f| (1..=cfg.max_fences).contains(&f))
        && s.tickets.len() <= cfg.max_tickets()
        && s.crashes <= cfg.max_crashes
        && s.fsync_fails <= cfg.max_fsync_fails
}

/// `MonotoneStep`, the step predicate of `InvMonotoneVisible` (INV-MONOTONE-VISIBLE).
pub fn inv_monotone_visible(cfg: &Config, s: &State, n: &State) -> bool {
    let rv = |st: &State| recover_visible(&recover_log(&st.written, cfg.mutant), cfg.mutant);
    match (s.up, n.up) {
        (true, true) => s.visible.is_subset(&n.visible),
        (true, false) => s.visible.is_subset(&rv(n)),
        (false, true) => rv(s).is_subset(&n.visible),
        (false, false) => true,
    }
}

/// A state invariant: its TLA+ name and its check.
pub type StateInvariant = (&'static str, fn(&Config, &State) -> bool);

/// Every state invariant of the CI config, by TLA+ name.
pub const STATE_INVARIANTS: [StateInvariant; 12] = [
    ("TypeOK", type_ok),
    ("InvDurable", inv_durable),
    ("InvPrefix", inv_prefix),
    ("InvNoCollateral", inv_no_collateral),
    ("InvStableSeq", inv_stable_seq),
    ("InvBatchAtomic", inv_batch_atomic),
    ("InvFenceHidden", inv_fence_hidden),
    ("InvFenceCrash", inv_fence_crash),
    ("InvNoResurrect", inv_no_resurrect),
    ("InvDefiniteErrors", inv_definite_errors),
    ("InvReadIsolation", inv_read_isolation),
    ("InvRecoveryIdempotent", inv_recovery_idempotent),
];
