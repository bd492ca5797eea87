---------------------------- MODULE Delivery ----------------------------
(***************************************************************************)
(* Durable consumers and their checkpoints as log records (spec/FORMAT.md, *)
(* "Consumer checkpoints"), abstracted from spec/Store.tla: one writer, one *)
(* consumer, plain events, and commit_with = outputs + checkpoint in one     *)
(* batch.  A crash keeps any record prefix at least as long as the durable  *)
(* one; the writer then goes on after the cut, so the sequences of lost     *)
(* records are reused.  Invariants: INV-CHECKPOINT-DURABLE,                 *)
(* INV-EXACTLY-ONCE, INV-CURSOR-ORDER (no skip after a resume).  Mutants    *)
(* (spec/check_delivery.sh) seed the bugs the real code's mutants seed.     *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS
    MaxEvents,   \* events appended in total (ids 1..MaxEvents)
    MaxCommits,  \* commit_with calls in total
    MaxCrashes,
    Mutant       \* "none" | "checkpoint_not_atomic" | "checkpoint_past_durable"
                 \* | "resume_at_head"

VARIABLES
    log,        \* the records written, in sequence order (index = sequence + 1)
    durable,    \* the durable prefix length
    delivered,  \* the consumer's position: the log index of the last event handed out (0 none)
    pending,    \* [pos, end] of a commit waiting for its fsync, or none
    acked,      \* the last checkpoint position acknowledged to the consumer (0 none)
    seen,       \* ghost: ids of events the consumer was handed
    nEvents, nCommits, nCrashes

vars == <<log, durable, delivered, pending, acked, seen, nEvents, nCommits, nCrashes>>

None == [pos |-> 0, end |-> 0]
Rec(k, id, u, p) == [k |-> k, id |-> id, u |-> u, pos |-> p]
\* k: "Event" (id), "Out" (u = batch of its commit), "Ckpt" (u = 0 or batch, pos),
\*    "Commit" (u = batch id)

Committed(l, b) == \E i \in 1..Len(l) : l[i].k = "Commit" /\ l[i].u = b
Effective(l, i) == l[i].k = "Ckpt" /\ (l[i].u = 0 \/ Committed(l, l[i].u))
\* The recovered checkpoint: the last effective one (0 = none / start).
CkptOf(l) == LET E == {i \in 1..Len(l) : Effective(l, i)}
             IN IF E = {} THEN 0 ELSE l[CHOOSE i \in E : \A j \in E : j <= i].pos
\* What a consumer may be handed: durable events (the mutant: every written one).
Deliverable == IF Mutant = "checkpoint_past_durable" THEN Len(log) ELSE durable

Init ==
    /\ log = <<>> /\ durable = 0 /\ delivered = 0 /\ pending = None /\ acked = 0
    /\ seen = {} /\ nEvents = 0 /\ nCommits = 0 /\ nCrashes = 0

AppendEvent ==
    /\ nEvents < MaxEvents
    /\ nEvents' = nEvents + 1
    /\ log' = Append(log, Rec("Event", nEvents + 1, 0, 0))
    /\ UNCHANGED <<durable, delivered, pending, acked, seen, nCommits, nCrashes>>

Fsync ==
    /\ durable < Len(log)
    /\ durable' = Len(log)
    /\ IF pending # None THEN acked' = pending.pos /\ pending' = None
                         ELSE UNCHANGED <<acked, pending>>
    /\ UNCHANGED <<log, delivered, seen, nEvents, nCommits, nCrashes>>

Poll ==
    /\ \E i \in (delivered + 1)..Deliverable :
          /\ log[i].k = "Event"
          /\ \A j \in (delivered + 1)..(i - 1) : log[j].k # "Event"
          /\ delivered' = i
          /\ seen' = seen \cup {log[i].id}
    /\ UNCHANGED <<log, durable, pending, acked, nEvents, nCommits, nCrashes>>

\* commit_with(one output): one group, acknowledged once durable (Fsync).
CommitWith ==
    /\ nCommits < MaxCommits /\ pending = None /\ delivered > 0
    /\ nCommits' = nCommits + 1
    /\ LET b == Len(log) + 1
           group == IF Mutant = "checkpoint_not_atomic"
                    THEN <<Rec("Ckpt", 0, 0, delivered), Rec("Out", 0, b + 1, 0),
                           Rec("Commit", 0, b + 1, 0)>>
                    ELSE <<Rec("Out", 0, b, 0), Rec("Ckpt", 0, b, delivered),
                           Rec("Commit", 0, b, 0)>>
       IN /\ log' = log \o group
          /\ IF Mutant = "checkpoint_past_durable"
             THEN acked' = delivered /\ pending' = None
             ELSE pending' = [pos |-> delivered, end |-> Len(log) + 3] /\ UNCHANGED acked
    /\ UNCHANGED <<durable, delivered, seen, nEvents, nCrashes>>

\* Any crash: the image is a record prefix no shorter than the durable one (torn records
\* are cut by recovery); the consumer resumes after the recovered checkpoint.
Crash ==
    /\ nCrashes < MaxCrashes
    /\ nCrashes' = nCrashes + 1
    /\ \E n \in durable..Len(log) :
          /\ log' = SubSeq(log, 1, n)
          /\ durable' = n
          /\ delivered' = IF Mutant = "resume_at_head" THEN n ELSE CkptOf(SubSeq(log, 1, n))
    /\ pending' = None
    /\ UNCHANGED <<acked, seen, nEvents, nCommits>>

Next == AppendEvent \/ Fsync \/ Poll \/ CommitWith \/ Crash

Spec == Init /\ [][Next]_vars

TypeOK ==
    /\ durable \in 0..Len(log) /\ delivered \in 0..Len(log) /\ acked \in Nat
    /\ seen \subseteq 1..MaxEvents

\* INV-CHECKPOINT-DURABLE: an acknowledged checkpoint is never taken back by a crash (it
\* never points past the durable frontier).
InvCheckpointDurable == acked <= CkptOf(SubSeq(log, 1, durable))

\* INV-EXACTLY-ONCE: in the log (and so in every crash image, a prefix of it), an output is
\* present (its batch committed) iff the checkpoint written with it took effect.
GroupOf(l, i) == IF l[i].k = "Ckpt" /\ l[i].u = 0 THEN i + 1 ELSE l[i].u
InvExactlyOnce ==
    \A i \in 1..Len(log) :
        log[i].k = "Ckpt" =>
            (Effective(log, i) <=> \E j \in 1..Len(log) :
                 log[j].k = "Out" /\ log[j].u = GroupOf(log, i) /\ Committed(log, log[j].u))

\* INV-CURSOR-ORDER: every event the recovered checkpoint covers was handed out; a resumed
\* consumer never skips one.
InvNoSkip ==
    \A i \in 1..Len(log) :
        (log[i].k = "Event" /\ i <= CkptOf(log)) => log[i].id \in seen
=============================================================================
