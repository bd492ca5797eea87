-------------------------------- MODULE Store --------------------------------
(***************************************************************************)
(* batpak's write path as a state machine.                                 *)
(*                                                                         *)
(* Clients submit commands into the writer's bounded FIFO queue.  One      *)
(* writer takes them in order and decides admission there (nowhere else).  *)
(* Records go to the *written* log (what the OS page cache holds);         *)
(* Fsync (group commit) makes the whole written log durable; Publish makes *)
(* committed units visible, one unit per step, in log order; Reply         *)
(* acknowledges a command once its records are durable and published      *)
(* (durable sync policy).                                                  *)
(*                                                                         *)
(* Durable means fsynced (the crash terms of INVARIANTS.md).  The disk     *)
(* side (`durableLen`, `pagesClean`) is kept apart from what the store     *)
(* believes and reports durable (`frontier`):                              *)
(*  - FsyncFail: an fsync fails (EIO); the kernel may drop the dirty pages *)
(*    or keep them, and marks them clean, so no later fsync persists them; *)
(*    the writer latches (later writes refused, waiting callers get an     *)
(*    indeterminate OutcomeUnknown).                                       *)
(*  - ProcessCrash: the process dies, the page cache survives: what the    *)
(*    writer had handed to the kernel stays readable but is still NOT      *)
(*    durable.                                                             *)
(*  - PowerLoss: the durable log survives plus any prefix of the rest,     *)
(*    maybe with a torn last record.                                       *)
(*  - Recover cuts the torn tail, makes what it kept durable before it     *)
(*    reports any of it (fsync; a rewrite first if a failed fsync may have *)
(*    left clean pages) and rebuilds visibility from the log alone.        *)
(*                                                                         *)
(* Names: every action, variable and invariant here has the same name in   *)
(* model/src/oracle.rs and in the writer's `tla-trace` events.             *)
(* spec/README.md lists what is abstracted away.                           *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets
(* Sequences is not extended: its `Append` would clash with the writer's     *)
(* `Append` action, whose name the Rust side mirrors.  The few sequence       *)
(* operators needed are defined below.                                        *)

CONSTANTS
    MaxEvents,     \* events that clients may submit in total (all kinds)
    MaxBatches,    \* atomic batches that clients may submit (fenced or not)
    BatchSize,     \* events per batch (>= 1)
    MaxFences,     \* visibility fences that clients may begin
    MaxSyncs,      \* sync() calls
    MaxWaits,      \* wait_for_durable(point) calls (the point: a sequence already written)
    MaxCrashes,    \* crashes of either kind (each followed by a recovery)
    MaxFsyncFails, \* failed fsyncs
    QueueCap,      \* capacity of the writer's bounded queue
    Mutant         \* "none", or the name of a seeded bug (spec/check_mutants.sh)

ASSUME BatchSize >= 1 /\ QueueCap >= 1

VARIABLES
    up,          \* the writer process is running (FALSE between a crash and Recover)
    queue,       \* the writer's FIFO queue: a sequence of ticket numbers
    written,     \* the written log as a read sees it (page cache): a sequence of records
    durableLen,  \* disk truth: SubSeq(written, 1, durableLen) is durable (fsynced)
    frontier,    \* the durable frontier the store reports (frontier(), sync, receipts);
                 \* kept across a crash as a ghost: the last prefix reported durable
    pubLen,      \* publish cursor: commit points at positions <= pubLen are published
    visible,     \* the in-memory visible set of events (what readers see)
    openFence,   \* the fence the writer has open (0 = none)
    held,        \* fences whose handle a client holds (begin answered Ok, not yet closed)
    latched,     \* the writer latched after a failed fsync (writes refused until restart)
    pagesClean,  \* disk truth: a failed fsync marked the unsynced pages clean, so a
                 \* successful fsync no longer persists them (only a rewrite does)
    tickets,     \* every command ever submitted with its reply status (history)
    crashes,     \* number of crashes so far (both kinds)
    fsyncFails,  \* number of failed fsyncs so far
    preCrash     \* ghost: the written log at the last crash (<<>> once recovered)

vars == <<up, queue, written, durableLen, frontier, pubLen, visible, openFence, held,
          latched, pagesClean, tickets, crashes, fsyncFails, preCrash>>

-----------------------------------------------------------------------------
Len(s) == Cardinality(DOMAIN s)
SubSeq(s, m, n) == [i \in 1..(1 + n - m) |-> s[i + m - 1]]
Head(s) == s[1]
Tail(s) == [i \in 1..(Len(s) - 1) |-> s[i + 1]]
s \o t == [i \in 1..(Len(s) + Len(t)) |-> IF i <= Len(s) THEN s[i] ELSE t[i - Len(s)]]
Snoc(s, x) == s \o <<x>>

-----------------------------------------------------------------------------
(* Records.  Every record stores its global sequence `seq`.  `u`/`id` name *)
(* the unit: "None" (id 0), "Batch" (batch id) or "Fence" (fence id).  `f` *)
(* is the fence the record was written under (0: none): a fenced event's   *)
(* own fence, or the fence of a batch written inside a fence.              *)
Rec(k, e, u, id, s) ==
    [k |-> k, e |-> e, u |-> u, id |-> id, f |-> IF u = "Fence" THEN id ELSE 0, seq |-> s]
BatchRec(k, e, b, f, s) == [k |-> k, e |-> e, u |-> "Batch", id |-> b, f |-> f, seq |-> s]
RecKinds == {"Event", "BatchCommit", "FenceBegin", "FenceCommit", "FenceCancel", "Torn"}
Units == {"None", "Batch", "Fence"}

(* Commands (the `cmd` field of a ticket). *)
Cmds == {"Append", "Batch", "FenceBegin", "FenceAppend", "FenceBatch", "FenceCommit",
         "FenceCancel", "FenceDrop", "Sync", "Wait"}
BatchCmds == {"Batch", "FenceBatch"}
FencedCmds == {"FenceAppend", "FenceBatch"}
(* Commands a latched writer refuses (a cancel or drop still closes the fence). *)
WriteCmds == {"Append", "Batch", "FenceBegin", "FenceAppend", "FenceBatch", "FenceCommit",
              "Sync", "Wait"}

(* Reply statuses.  Queued: in the queue; Taken: the writer took it and the *)
(* caller waits; Ok: acknowledged; the rest are errors.                    *)
Definite == {"VisibilityFenceActive", "VisibilityFenceCancelled", "FenceNotOpen",
             "WriterLatched"}
Indeterminate == {"WriterCrashed", "OutcomeUnknown"}
Final == {"Ok"} \cup Definite \cup Indeterminate
Statuses == {"Queued", "Taken"} \cup Final
(* Refusals: definite errors decided at admission, before anything is written. *)
Refusals == {"VisibilityFenceActive", "FenceNotOpen", "WriterLatched"}

Ticket(c, evs, id) == [cmd |-> c, evs |-> evs, id |-> id, st |-> "Queued", mark |-> 0]

-----------------------------------------------------------------------------
(* Helpers over logs. *)
Min(S) == CHOOSE x \in S : \A y \in S : x <= y
Range(s) == {s[i] : i \in DOMAIN s}

IsUnitEvent(r, u, id) == r.k = "Event" /\ r.u = u /\ r.id = id
Has(log, k, id) == \E i \in DOMAIN log : log[i].k = k /\ log[i].id = id
(* Position of the first record satisfying kind/id (0 if absent). *)
PosOf(log, k, id) ==
    LET P == {i \in DOMAIN log : log[i].k = k /\ log[i].id = id}
    IN IF P = {} THEN 0 ELSE Min(P)
EvPos(log, e) ==
    LET P == {i \in DOMAIN log : log[i].k = "Event" /\ log[i].e = e}
    IN IF P = {} THEN 0 ELSE Min(P)
UnitEventsIn(log, u, id) == {log[i].e : i \in {j \in DOMAIN log : IsUnitEvent(log[j], u, id)}}
(* Every event written under fence f: its single events and its batches' events. *)
FenceEventsIn(log, f) == {log[i].e : i \in {j \in DOMAIN log : log[j].k = "Event" /\ log[j].f = f}}
LogEvents(log) == {log[i].e : i \in {j \in DOMAIN log : log[j].k = "Event"}}

(* A commit point is the record whose publication makes a unit visible.  A *)
(* batch inside a fence has none of its own: its fence's commit publishes it. *)
IsCommitPoint(r) ==
    \/ r.k = "Event" /\ r.u = "None"
    \/ r.k = "BatchCommit" /\ (r.f = 0 \/ Mutant = "fenced_batch_published_at_batch_commit")
    \/ r.k = "FenceCommit"
    \/ Mutant = "visible_before_commit" /\ r.k = "Event" /\ r.u = "Fence"
    \/ Mutant = "batch_publish_per_event" /\ r.k = "Event" /\ r.u = "Batch"
(* The events a commit point publishes. *)
PointEvents(log, i) ==
    IF log[i].k = "Event" THEN {log[i].e}
    ELSE IF log[i].k = "BatchCommit" THEN UnitEventsIn(log, "Batch", log[i].id)
    ELSE FenceEventsIn(log, log[i].id)

(* The torn tail cut off: what recovery keeps of a crash image. *)
CutTorn(log) ==
    IF Len(log) > 0 /\ log[Len(log)].k = "Torn" THEN SubSeq(log, 1, Len(log) - 1) ELSE log

(* Is fence f committed in log, as recovery judges it? *)
FenceDone(log, f) ==
    \/ Has(log, "FenceCommit", f)
    \/ Mutant = "recover_open_fence_visible" /\ ~Has(log, "FenceCancel", f)
    \/ Mutant = "recover_cancel_as_commit" /\ Has(log, "FenceCancel", f)
(* Is the unit of record r complete (committed) in log?  A fenced batch     *)
(* needs both its BatchCommit and its fence's FenceCommit.                   *)
Committed(log, r) ==
    \/ r.u = "None"
    \/ r.u = "Batch" /\ (Has(log, "BatchCommit", r.id) \/ Mutant = "recover_partial_batch")
                     /\ \/ r.f = 0
                        \/ FenceDone(log, r.f)
                        \/ Mutant = "recover_fenced_batch_without_fence_commit"
    \/ r.u = "Fence" /\ FenceDone(log, r.id)
(* Records recovery treats as belonging to a hidden (never visible) unit. *)
Hidden(log, r) == r.k = "Event" /\ ~Committed(log, r)

(* The records of s that are not hidden according to ref, in order. *)
RECURSIVE Visibles(_, _, _)
Visibles(s, ref, i) ==
    IF i > Len(s) THEN <<>>
    ELSE (IF Hidden(ref, s[i]) THEN <<>> ELSE <<s[i]>>) \o Visibles(s, ref, i + 1)

(* Recovery: the log it leaves on disk (torn tail cut) ... *)
RecoverLog(image) ==
    LET L == IF Mutant = "recovery_keeps_torn_tail" THEN image ELSE CutTorn(image)
        K == Visibles(L, L, 1)
    IN IF Mutant = "recovery_renumbers"
       \* seeded bug: compact hidden units away and renumber the survivors
       THEN [n \in DOMAIN K |-> [K[n] EXCEPT !.seq = n]]
       ELSE L
(* ... and the visible set it rebuilds from that log. *)
RecoverVisible(log) ==
    LET Stop == {i \in DOMAIN log : Hidden(log, log[i])}
        lim == IF Mutant = "recovery_stops_at_hidden_unit" /\ Stop # {}
               THEN Min(Stop) ELSE Len(log) + 1
    IN {log[i].e : i \in {j \in DOMAIN log : j < lim /\ log[j].k = "Event"
                                              /\ ~Hidden(log, log[j])}}

-----------------------------------------------------------------------------
(* Helpers over tickets and client-side id allocation. *)
TicketsOf(c) == {t \in DOMAIN tickets : tickets[t].cmd = c}
UsedEvents == UNION {tickets[t].evs : t \in DOMAIN tickets}
NextEvent == Cardinality(UsedEvents) + 1
(* Batch ids count both kinds of batch; ticket t's batch id is BatchNo(t). *)
NextBatch == Cardinality({t \in DOMAIN tickets : tickets[t].cmd \in BatchCmds}) + 1
BatchNo(t) == Cardinality({u \in 1..t : tickets[u].cmd \in BatchCmds})
NextFence == Cardinality(TicketsOf("FenceBegin")) + 1
HeadCmd == tickets[Head(queue)]
CanSubmit == up /\ Len(queue) < QueueCap

Submit(c, evs, id) ==
    /\ tickets' = Snoc(tickets, Ticket(c, evs, id))
    /\ queue' = Snoc(queue, Len(tickets) + 1)

-----------------------------------------------------------------------------
Init ==
    /\ up = TRUE
    /\ queue = <<>>
    /\ written = <<>>
    /\ durableLen = 0
    /\ frontier = 0
    /\ pubLen = 0
    /\ visible = {}
    /\ openFence = 0
    /\ held = {}
    /\ latched = FALSE
    /\ pagesClean = FALSE
    /\ tickets = <<>>
    /\ crashes = 0
    /\ fsyncFails = 0
    /\ preCrash = <<>>

ClientUnchanged == UNCHANGED <<up, written, durableLen, frontier, pubLen, visible, openFence,
                               latched, pagesClean, crashes, fsyncFails, preCrash>>

(****************************** client side ********************************)
SubmitAppend ==
    /\ CanSubmit /\ NextEvent <= MaxEvents
    /\ Submit("Append", {NextEvent}, 0)
    /\ UNCHANGED held /\ ClientUnchanged

SubmitBatch ==
    /\ CanSubmit /\ NextBatch <= MaxBatches /\ NextEvent + BatchSize - 1 <= MaxEvents
    /\ Submit("Batch", NextEvent..(NextEvent + BatchSize - 1), NextBatch)
    /\ UNCHANGED held /\ ClientUnchanged

SubmitFenceBegin ==
    /\ CanSubmit /\ NextFence <= MaxFences
    /\ Submit("FenceBegin", {}, NextFence)
    /\ UNCHANGED held /\ ClientUnchanged

SubmitFenceAppend(f) ==
    /\ CanSubmit /\ f \in held /\ NextEvent <= MaxEvents
    /\ Submit("FenceAppend", {NextEvent}, f)
    /\ UNCHANGED held /\ ClientUnchanged

(* A batch inside fence f (the ticket's id is the fence; its batch id is BatchNo). *)
SubmitFenceBatch(f) ==
    /\ CanSubmit /\ f \in held
    /\ NextBatch <= MaxBatches /\ NextEvent + BatchSize - 1 <= MaxEvents
    /\ Submit("FenceBatch", NextEvent..(NextEvent + BatchSize - 1), f)
    /\ UNCHANGED held /\ ClientUnchanged

(* commit(self) / cancel(self) consume the handle. *)
SubmitFenceCommit(f) ==
    /\ CanSubmit /\ f \in held
    /\ Submit("FenceCommit", {}, f)
    /\ held' = held \ {f} /\ ClientUnchanged

SubmitFenceCancel(f) ==
    /\ CanSubmit /\ f \in held
    /\ Submit("FenceCancel", {}, f)
    /\ held' = held \ {f} /\ ClientUnchanged

(* Drop never blocks: when the queue is full a helper thread does the      *)
(* blocking send, so the request enters the queue even beyond QueueCap.   *)
SubmitFenceDrop(f) ==
    /\ up /\ f \in held
    /\ Submit("FenceDrop", {}, f)
    /\ held' = held \ {f} /\ ClientUnchanged

(* sync(), or wait_for_durable(point): the caller names a record's         *)
(* sequence s (the ticket's id; any sequence already handed out, e.g. from  *)
(* a receipt or an index entry, durable or not) and waits until s itself is *)
(* durable.  The store sends a Sync for it (hence one action, whose name    *)
(* the implementation's trace uses) and decides by the sequence only, never *)
(* by wall time.                                                             *)
SubmitSync ==
    /\ CanSubmit
    /\ \/ Cardinality(TicketsOf("Sync")) < MaxSyncs /\ Submit("Sync", {}, 0)
       \/ Cardinality(TicketsOf("Wait")) < MaxWaits
          /\ \E s \in 1..Len(written) : Submit("Wait", {}, s)
    /\ UNCHANGED held /\ ClientUnchanged

(****************************** writer side ********************************)
(* The writer takes the head of the queue; t is its ticket number. *)
Take(st) ==
    /\ queue' = Tail(queue)
    /\ tickets' = [tickets EXCEPT ![Head(queue)].st = st]

WriterUnchanged == UNCHANGED <<up, durableLen, frontier, pubLen, visible, held, latched,
                               pagesClean, crashes, fsyncFails, preCrash>>

Writable == up /\ queue # <<>>

(* Admission: the reply a head command gets instead of being executed. *)
Refusal(c) ==
    CASE latched /\ c.cmd \in WriteCmds
            -> "WriterLatched"
      [] c.cmd \in {"Append", "Batch", "FenceBegin"} /\ openFence # 0
            -> "VisibilityFenceActive"
      [] c.cmd \in {"FenceAppend", "FenceBatch", "FenceCommit", "FenceCancel", "FenceDrop"}
            /\ openFence # c.id
            -> "FenceNotOpen"
      [] OTHER -> "none"

Append ==
    /\ Writable /\ HeadCmd.cmd = "Append" /\ Refusal(HeadCmd) = "none"
    /\ LET e == CHOOSE x \in HeadCmd.evs : TRUE
       IN written' = Snoc(written, Rec("Event", e, "None", 0, Len(written) + 1))
    /\ Take("Taken")
    /\ UNCHANGED openFence /\ WriterUnchanged

(* The batch's events and its BatchCommit go out in one write. *)
AppendBatch ==
    /\ Writable /\ HeadCmd.cmd = "Batch" /\ Refusal(HeadCmd) = "none"
    /\ LET n == Len(written)
           b == HeadCmd.id
           first == Min(HeadCmd.evs)
           evRecs == [i \in 1..BatchSize |-> Rec("Event", first + i - 1, "Batch", b, n + i)]
       IN written' = (written \o evRecs) \o <<Rec("BatchCommit", 0, "Batch", b, n + BatchSize + 1)>>
    /\ Take("Taken")
    /\ UNCHANGED openFence /\ WriterUnchanged

FenceBegin ==
    /\ Writable /\ HeadCmd.cmd = "FenceBegin" /\ Refusal(HeadCmd) = "none"
    /\ written' = Snoc(written, Rec("FenceBegin", 0, "Fence", HeadCmd.id, Len(written) + 1))
    /\ openFence' = HeadCmd.id
    /\ Take("Taken")
    /\ WriterUnchanged

FenceAppend ==
    /\ Writable /\ HeadCmd.cmd = "FenceAppend" /\ Refusal(HeadCmd) = "none"
    /\ LET e == CHOOSE x \in HeadCmd.evs : TRUE
       IN written' = Snoc(written, Rec("Event", e, "Fence", HeadCmd.id, Len(written) + 1))
    /\ Take("Taken")
    /\ UNCHANGED openFence /\ WriterUnchanged

(* A batch inside the open fence: events and BatchCommit in one write, all *)
(* of them marked with the fence; visible only with the fence's commit.    *)
FenceBatch ==
    /\ Writable /\ HeadCmd.cmd = "FenceBatch" /\ Refusal(HeadCmd) = "none"
    /\ LET n == Len(written)
           b == BatchNo(Head(queue))
           f == HeadCmd.id
           first == Min(HeadCmd.evs)
           evRecs == [i \in 1..BatchSize |-> BatchRec("Event", first + i - 1, b, f, n + i)]
       IN written' = (written \o evRecs) \o <<BatchRec("BatchCommit", 0, b, f, n + BatchSize + 1)>>
    /\ Take("Taken")
    /\ UNCHANGED openFence /\ WriterUnchanged

FenceCommit ==
    /\ Writable /\ HeadCmd.cmd = "FenceCommit" /\ Refusal(HeadCmd) = "none"
    /\ written' = Snoc(written, Rec("FenceCommit", 0, "Fence", HeadCmd.id, Len(written) + 1))
    /\ openFence' = 0
    /\ Take("Taken")
    /\ WriterUnchanged

(* cancel() and drop-cancel: write FenceCancel, answer the cancel at once *)
(* and every fenced ticket of this fence with VisibilityFenceCancelled.    *)
(* A latched writer writes no cancel record: the fence then stays open in  *)
(* the log, which recovery hides forever just the same.                    *)
FenceCancel ==
    /\ Writable /\ HeadCmd.cmd \in {"FenceCancel", "FenceDrop"} /\ Refusal(HeadCmd) = "none"
    /\ LET f == HeadCmd.id
           t0 == Head(queue)
       IN IF Mutant = "drop_never_cancels" /\ HeadCmd.cmd = "FenceDrop"
          THEN \* seeded bug: the drop request is consumed but nothing is cancelled
               /\ queue' = Tail(queue)
               /\ tickets' = [tickets EXCEPT ![t0].st = "Ok"]
               /\ UNCHANGED <<written, openFence>>
          ELSE
               /\ written' = IF latched THEN written
                             ELSE Snoc(written, Rec("FenceCancel", 0, "Fence", f, Len(written) + 1))
               /\ openFence' = 0
               /\ queue' = Tail(queue)
               /\ tickets' = [t \in DOMAIN tickets |->
                                IF t = t0 THEN [tickets[t] EXCEPT !.st = "Ok"]
                                ELSE IF tickets[t].cmd \in FencedCmds /\ tickets[t].id = f
                                        /\ tickets[t].st = "Taken"
                                     THEN [tickets[t] EXCEPT !.st = "VisibilityFenceCancelled"]
                                     ELSE tickets[t]]
    /\ WriterUnchanged

(* Sync: the caller waits until everything written so far is durable.     *)
(* Wait: the caller waits until its point (sequence id) is durable; with    *)
(* `wait_before_durable` seeded, the point counts as exclusive.            *)
WaitMark(c) == IF Mutant = "wait_before_durable" THEN c.id - 1 ELSE c.id
Sync ==
    /\ Writable /\ HeadCmd.cmd \in {"Sync", "Wait"} /\ Refusal(HeadCmd) = "none"
    /\ queue' = Tail(queue)
    /\ tickets' = [tickets EXCEPT ![Head(queue)].st = "Taken",
                                  ![Head(queue)].mark =
                                      IF HeadCmd.cmd = "Wait" THEN WaitMark(HeadCmd)
                                      ELSE Len(written)]
    /\ UNCHANGED <<written, openFence>> /\ WriterUnchanged

Refuse ==
    /\ Writable /\ Refusal(HeadCmd) # "none"
    /\ IF Mutant = "refuse_after_write" /\ HeadCmd.cmd = "Append"
       \* seeded bug: admission checked after the record was written
       THEN written' = Snoc(written, Rec("Event", CHOOSE x \in HeadCmd.evs : TRUE, "None", 0,
                                           Len(written) + 1))
       ELSE UNCHANGED written
    /\ Take(Refusal(HeadCmd))
    /\ UNCHANGED openFence /\ WriterUnchanged

(* Group commit: the writer fsyncs what it wrote and reports it durable.   *)
(* Pages a failed fsync marked clean are not written by it (Linux), so the *)
(* disk's durable prefix stops before them.                                *)
Fsync ==
    /\ up /\ ~latched /\ frontier < Len(written)
    /\ durableLen' = IF pagesClean THEN durableLen ELSE Len(written)
    /\ frontier' = Len(written)
    /\ UNCHANGED <<up, queue, written, pubLen, visible, openFence, held, latched, pagesClean,
                   tickets, crashes, fsyncFails, preCrash>>

(* A failed fsync (EIO, ENOSPC at writeback).  The unsynced pages are       *)
(* marked clean: no later fsync writes them.  The kernel may also drop them; *)
(* a read then shows what reached the disk, a prefix of them, maybe torn.    *)
(* A latched process reads nothing back and writes nothing more, so the      *)
(* dropped case is the kept one seen through the next crash's images (both   *)
(* kinds of crash may keep any prefix, maybe torn): `written` is kept.  The  *)
(* writer latches: every caller still waiting gets OutcomeUnknown, later     *)
(* writes are refused, and nothing is reported durable any more.             *)
FsyncFail ==
    /\ up /\ ~latched /\ frontier < Len(written) /\ fsyncFails < MaxFsyncFails
    /\ pagesClean' = TRUE
    /\ fsyncFails' = fsyncFails + 1
    /\ IF Mutant = "fsync_retry_acks"
       \* seeded bug: no latch; the writer retries the fsync and acknowledges
       THEN UNCHANGED <<latched, tickets>>
       ELSE /\ latched' = TRUE
            /\ tickets' = [t \in DOMAIN tickets |->
                             IF tickets[t].st = "Taken"
                             THEN [tickets[t] EXCEPT !.st =
                                     \* seeded bug: a definite error for what was written
                                     IF Mutant = "latch_reports_definite" THEN "WriterLatched"
                                     ELSE "OutcomeUnknown"]
                             ELSE tickets[t]]
    /\ UNCHANGED <<up, queue, written, durableLen, frontier, pubLen, visible, openFence,
                   held, crashes, preCrash>>

(* Publish the next durable commit point (one unit, atomically, in log order). *)
PublishLimit == IF Mutant = "publish_before_fsync" THEN Len(written) ELSE frontier
PublishCandidates == {i \in (pubLen + 1)..PublishLimit : IsCommitPoint(written[i])}
Publish ==
    /\ up /\ PublishCandidates # {}
    /\ \E i \in PublishCandidates :
          /\ Mutant = "publish_out_of_order" \/ i = Min(PublishCandidates)
          /\ visible' = visible \cup PointEvents(written, i)
          /\ pubLen' = IF i > pubLen THEN i ELSE pubLen
    /\ UNCHANGED <<up, queue, written, durableLen, frontier, openFence, held, latched,
                   pagesClean, tickets, crashes, fsyncFails, preCrash>>

(* When a taken ticket may be answered Ok. *)
Published(k, id) == LET p == PosOf(written, k, id) IN p # 0 /\ p <= pubLen
EarlyAck(c) ==
    \/ Mutant = "ack_before_fsync" /\ c.cmd = "Append"
    \/ Mutant = "fence_commit_ack_before_durable" /\ c.cmd = "FenceCommit"
ReadyOk(c) ==
    CASE EarlyAck(c) -> TRUE
      [] c.cmd = "Append" ->
            LET p == EvPos(written, CHOOSE x \in c.evs : TRUE) IN p # 0 /\ p <= pubLen
      [] c.cmd = "Batch" -> Published("BatchCommit", c.id)
      [] c.cmd = "FenceBegin" ->
            LET p == PosOf(written, "FenceBegin", c.id) IN p # 0 /\ p <= frontier
      [] c.cmd \in FencedCmds \cup {"FenceCommit"} -> Published("FenceCommit", c.id)
      [] c.cmd \in {"Sync", "Wait"} -> c.mark <= frontier
      [] OTHER -> FALSE

Reply(t) ==
    /\ up /\ tickets[t].st = "Taken" /\ ReadyOk(tickets[t])
    /\ tickets' = [tickets EXCEPT ![t].st = "Ok"]
    \* a begun fence hands its handle to the client
    /\ held' = IF tickets[t].cmd = "FenceBegin" THEN held \cup {tickets[t].id} ELSE held
    /\ UNCHANGED <<up, queue, written, durableLen, frontier, pubLen, visible, openFence,
                   latched, pagesClean, crashes, fsyncFails, preCrash>>

(********************************* crashes *********************************)
(* Crash images of the written log: the durable log plus any prefix of the *)
(* unsynced suffix, optionally followed by a torn record.                  *)
Image(k, torn) ==
    SubSeq(written, 1, k) \o (IF torn THEN <<Rec("Torn", 0, "None", 0, k + 1)>> ELSE <<>>)
CrashImages ==
    ({Image(k, torn) : k \in durableLen..Len(written), torn \in BOOLEAN}
       \ {Image(Len(written), TRUE)})
    \cup (IF Mutant = "crash_image_not_prefix" /\ Len(written) > durableLen + 1
          \* seeded bug: a later unsynced record survives while an earlier one is lost
          THEN {SubSeq(written, 1, durableLen) \o <<written[Len(written)]>>}
          ELSE {})

(* What every crash does to the process: memory (queue, visible set, open  *)
(* fence, handles, latch) is lost and every caller that still waits gets    *)
(* WriterCrashed (indeterminate).  `frontier` keeps, as a ghost, what the   *)
(* dead process last reported durable.                                      *)
CrashProcess ==
    /\ up /\ crashes < MaxCrashes
    /\ up' = FALSE
    /\ crashes' = crashes + 1
    /\ queue' = <<>>
    /\ visible' = {}
    /\ pubLen' = 0
    /\ openFence' = 0
    /\ held' = {}
    /\ latched' = FALSE
    /\ tickets' = [t \in DOMAIN tickets |->
                     IF tickets[t].st \in {"Queued", "Taken"} /\ Mutant # "crash_forgets_tickets"
                     THEN [tickets[t] EXCEPT !.st = "WriterCrashed"]
                     ELSE tickets[t]]
    /\ preCrash' = written
    /\ UNCHANGED <<frontier, fsyncFails>>

(* The process dies; the page cache survives.  What the writer had handed  *)
(* to the kernel stays readable (the next process reads it) but nothing     *)
(* becomes durable; what it had not handed over yet is lost, and a write     *)
(* cut short by the kill leaves a torn record: the same images as a power   *)
(* loss, but the kept unsynced records are still not durable.                *)
ProcessCrash ==
    /\ CrashProcess
    /\ \E img \in CrashImages : written' = img
    /\ UNCHANGED <<durableLen, pagesClean>>

(* Power is lost: only what reached the disk survives (the durable log plus *)
(* any prefix of the rest, maybe torn).  After the reboot what is read comes *)
(* from the disk itself, so the records that survived are durable.           *)
PowerLoss ==
    /\ CrashProcess
    /\ \E img \in CrashImages :
          /\ written' = img
          /\ durableLen' = Len(CutTorn(img))
    /\ pagesClean' = FALSE

(* Cut the torn tail on disk, make the kept log durable before reporting    *)
(* any of it (recovery's own fsync; pages a failed fsync left clean must be  *)
(* rewritten first), then rebuild visibility from the log alone.             *)
Recover ==
    /\ ~up
    /\ LET L == RecoverLog(written)
       IN /\ written' = L
          /\ durableLen' =
                CASE Mutant = "recovery_trusts_page_cache" -> durableLen
                  [] Mutant = "recovery_fsync_trusts_clean_pages" /\ pagesClean -> durableLen
                  [] OTHER -> Len(L)
          /\ pagesClean' = IF Mutant \in {"recovery_trusts_page_cache",
                                          "recovery_fsync_trusts_clean_pages"}
                           THEN pagesClean ELSE FALSE
          /\ frontier' = Len(L)
          /\ pubLen' = Len(L)
          /\ visible' = RecoverVisible(L)
    /\ up' = TRUE
    \* the crash's ghost is no longer needed: InvPrefix and InvStableSeq judge
    \* recovery's result while down, and nothing changes the recovered part later
    /\ preCrash' = <<>>
    /\ UNCHANGED <<queue, openFence, held, latched, tickets, crashes, fsyncFails>>

-----------------------------------------------------------------------------
Next ==
    \/ SubmitAppend \/ SubmitBatch \/ SubmitFenceBegin \/ SubmitSync
    \/ \E f \in held : SubmitFenceAppend(f) \/ SubmitFenceBatch(f) \/ SubmitFenceCommit(f)
                       \/ SubmitFenceCancel(f) \/ SubmitFenceDrop(f)
    \/ Append \/ AppendBatch \/ FenceBegin \/ FenceAppend \/ FenceBatch \/ FenceCommit
    \/ FenceCancel \/ Sync \/ Refuse \/ Fsync \/ FsyncFail \/ Publish
    \/ \E t \in DOMAIN tickets : Reply(t)
    \/ ProcessCrash \/ PowerLoss \/ Recover

WriterStep == Append \/ AppendBatch \/ FenceBegin \/ FenceAppend \/ FenceBatch \/ FenceCommit
              \/ FenceCancel \/ Sync \/ Refuse

(* The writer, fsync, publish and recovery make progress; a client that     *)
(* holds a fence eventually lets go of it (at the latest by dropping it).  *)
Fairness ==
    /\ WF_vars(WriterStep)
    /\ WF_vars(Fsync)
    /\ WF_vars(Publish)
    /\ WF_vars(\E t \in DOMAIN tickets : Reply(t))
    /\ WF_vars(Recover)
    /\ WF_vars(\E f \in held : SubmitFenceDrop(f))

Spec == Init /\ [][Next]_vars /\ Fairness

-----------------------------------------------------------------------------
(*************************** invariants ************************************)
(* One per protocol INV-* of INVARIANTS.md, named after it.                 *)

MaxTickets == MaxEvents + MaxBatches + 2 * MaxFences + MaxSyncs + MaxWaits
(* The fences begun so far (the invariants quantify over these only, so that *)
(* trace checking with huge bounds stays cheap).                             *)
FenceIds == {tickets[t].id : t \in TicketsOf("FenceBegin")}

TypeOK ==
    /\ up \in BOOLEAN /\ latched \in BOOLEAN /\ pagesClean \in BOOLEAN
    /\ queue \in [1..Len(queue) -> DOMAIN tickets]
    /\ \A i \in DOMAIN written :
          /\ written[i].k \in RecKinds /\ written[i].u \in Units
          /\ written[i].e \in 0..MaxEvents /\ written[i].id \in Nat
          /\ written[i].f \in 0..MaxFences /\ written[i].seq \in Nat
    /\ durableLen \in 0..Len(written) /\ frontier \in 0..Len(written)
    /\ pubLen \in 0..frontier
    /\ visible \subseteq 1..MaxEvents
    /\ openFence \in 0..MaxFences /\ held \subseteq 1..MaxFences
    /\ Len(tickets) <= MaxTickets
    /\ \A t \in DOMAIN tickets : tickets[t].cmd \in Cmds /\ tickets[t].st \in Statuses
    /\ crashes \in 0..MaxCrashes /\ fsyncFails \in 0..MaxFsyncFails

(* What readers see now, or (while down) what recovery will let them see. *)
Observable == IF up THEN visible ELSE RecoverVisible(RecoverLog(written))

TicketEvents(c, st) == UNION {tickets[t].evs : t \in {u \in TicketsOf(c) : tickets[u].st \in st}}
FenceTicketEvents(f, st) ==
    UNION {tickets[t].evs : t \in {u \in DOMAIN tickets : tickets[u].cmd \in FencedCmds
                                      /\ tickets[u].id = f /\ tickets[u].st \in st}}
CommitOk(f) == \E t \in TicketsOf("FenceCommit") : tickets[t].id = f /\ tickets[t].st = "Ok"
NotRefused == Statuses \ Definite
(* Events acknowledged durable: Ok appends and batches, fenced appends and   *)
(* fenced batches Ok or covered by an Ok commit.                             *)
AckedEvents ==
    TicketEvents("Append", {"Ok"}) \cup TicketEvents("Batch", {"Ok"})
    \cup TicketEvents("FenceAppend", {"Ok"}) \cup TicketEvents("FenceBatch", {"Ok"})
    \cup UNION {FenceTicketEvents(f, NotRefused) : f \in {g \in FenceIds : CommitOk(g)}}

(* INV-DURABLE: what the store reports durable (its frontier: frontier(),   *)
(* sync, wait_for_durable, receipts) is durable on disk, and everything ever *)
(* acknowledged, in this or an earlier session, is durable and observable.   *)
(* Durability never shrinks (no crash loses durable records), so this is     *)
(* "everything ever acknowledged or reported durable survives any later      *)
(* crash", checked before the crash happens.                                 *)
InvDurable ==
    /\ frontier <= durableLen
    /\ \A e \in AckedEvents :
          /\ EvPos(written, e) \in 1..durableLen
          /\ e \in Observable
    /\ \A t \in TicketsOf("Sync") : tickets[t].st = "Ok" => tickets[t].mark <= durableLen
    /\ \A t \in TicketsOf("Wait") : tickets[t].st = "Ok" => tickets[t].id <= durableLen

(* INV-PREFIX: the log recovery will produce is a prefix of the log written *)
(* before the crash, minus whole hidden units.  (Sequences are              *)
(* InvStableSeq's job.)  Judged while down, on what Recover will leave: the  *)
(* recovered part of the log never changes afterwards.                       *)
Content(r) == [k |-> r.k, e |-> r.e, u |-> r.u, id |-> r.id, f |-> r.f]
Contents(s) == [i \in DOMAIN s |-> Content(s[i])]
InvPrefix ==
    ~up =>
        LET R == RecoverLog(written)
            a == Contents(Visibles(R, R, 1))
            b == Contents(Visibles(preCrash, R, 1))
        IN Len(a) <= Len(b) /\ a = SubSeq(b, 1, Len(a))

(* INV-NO-COLLATERAL: every committed unit in the published (or recovered)  *)
(* log is visible, whatever unfinished unit or torn frame precedes it.      *)
TrulyCommitted(log, r) ==
    \/ r.u = "None"
    \/ r.u = "Batch" /\ Has(log, "BatchCommit", r.id)
                     /\ (r.f = 0 \/ Has(log, "FenceCommit", r.f))
    \/ r.u = "Fence" /\ Has(log, "FenceCommit", r.id)
InvNoCollateral ==
    LET L == IF up THEN SubSeq(written, 1, pubLen) ELSE RecoverLog(written)
    IN \A i \in DOMAIN L :
          L[i].k = "Event" /\ TrulyCommitted(L, L[i]) => L[i].e \in Observable

(* INV-STABLE-SEQ: every record sits at its sequence, and every event      *)
(* recovery will keep has the sequence it had before the crash.              *)
InvStableSeq ==
    /\ \A i \in DOMAIN written : written[i].seq = i
    /\ ~up =>
          \A r \in Range(RecoverLog(written)) :
             r.k = "Event" =>
                \E j \in DOMAIN preCrash : /\ preCrash[j].k = "Event"
                                           /\ preCrash[j].e = r.e
                                           /\ preCrash[j].seq = r.seq

(* INV-BATCH-ATOMIC (fenced batches too) *)
InvBatchAtomic ==
    \A t \in TicketsOf("Batch") \cup TicketsOf("FenceBatch") :
        tickets[t].evs \subseteq Observable \/ tickets[t].evs \cap Observable = {}

(* INV-FENCE-HIDDEN *)
InvFenceHidden ==
    \A f \in FenceIds :
        LET E == FenceEventsIn(written, f)
            CL == IF up THEN SubSeq(written, 1, durableLen) ELSE RecoverLog(written)
        IN /\ E \cap Observable # {} => E \subseteq Observable /\ Has(CL, "FenceCommit", f)
           /\ CommitOk(f) => FenceTicketEvents(f, NotRefused) \subseteq Observable

(* INV-FENCE-CRASH *)
InvFenceCrash ==
    \A f \in FenceIds :
        /\ CommitOk(f) => PosOf(written, "FenceCommit", f) \in 1..durableLen
        /\ ~up => LET L == RecoverLog(written)
                  IN \A e \in FenceEventsIn(L, f) :
                        e \in Observable <=> Has(L, "FenceCommit", f)
        \* open at a crash: nobody can ever commit it
        /\ up /\ Has(written, "FenceBegin", f) /\ ~Has(written, "FenceCommit", f)
           /\ ~Has(written, "FenceCancel", f) /\ f # openFence
           => f \notin held /\ FenceEventsIn(written, f) \cap visible = {}

(* INV-NO-RESURRECT *)
CancelledFences ==
    {tickets[t].id : t \in {u \in TicketsOf("FenceCancel") \cup TicketsOf("FenceDrop") :
                                tickets[u].st = "Ok"}}
InvNoResurrect ==
    /\ \A f \in CancelledFences : FenceTicketEvents(f, Statuses) \cap Observable = {}
    /\ (TicketEvents("Batch", Definite) \cup TicketEvents("FenceBatch", Definite))
          \cap Observable = {}

(* INV-DEFINITE-ERRORS: a definite error leaves nothing visible, ever; a   *)
(* refusal writes nothing at all.                                            *)
InvDefiniteErrors ==
    \A t \in DOMAIN tickets :
        /\ tickets[t].st \in Definite => tickets[t].evs \cap Observable = {}
        /\ tickets[t].st \in Refusals => tickets[t].evs \cap LogEvents(written) = {}

(* INV-READ-ISOLATION: readers see a prefix of the publish order. *)
TrueCommitPoint(r) ==
    \/ r.k = "FenceCommit"
    \/ r.k = "BatchCommit" /\ r.f = 0
    \/ r.k = "Event" /\ r.u = "None"
PublishedUpTo(k) == UNION {PointEvents(written, i) : i \in {j \in 1..k : TrueCommitPoint(written[j])}}
InvReadIsolation == up => \E k \in 0..Len(written) : visible = PublishedUpTo(k)

(* INV-RECOVERY-IDEMPOTENT: a running store has no torn tail on disk, and  *)
(* recovering the recovered log again changes nothing.                      *)
InvRecoveryIdempotent ==
    /\ up => \A i \in DOMAIN written : written[i].k # "Torn"
    /\ LET L == RecoverLog(written)
       IN RecoverLog(L) = L /\ RecoverVisible(RecoverLog(L)) = RecoverVisible(L)

(* INV-MONOTONE-VISIBLE (an action property): within a session the visible *)
(* set only grows; a crash and a recovery lose nothing that was visible.   *)
MonotoneStep ==
    /\ up /\ up' => visible \subseteq visible'
    /\ up /\ ~up' => visible \subseteq RecoverVisible(RecoverLog(written'))
    /\ ~up /\ up' => RecoverVisible(RecoverLog(written)) \subseteq visible'
InvMonotoneVisible == [][MonotoneStep]_vars

(* INV-NO-HANG: every submitted command is eventually answered.  Final      *)
(* statuses are absorbing and tickets are bounded, so "always eventually     *)
(* every ticket is final" says exactly that each ticket is eventually        *)
(* answered, and TLC checks it as one cheap formula.                         *)
AllAnswered == \A t \in DOMAIN tickets : tickets[t].st \in Final
LiveNoHang == []<>AllAnswered

(* INV-DROP: a dropped fence is eventually no longer open (the writer took    *)
(* the drop and cancelled it, or the writer died), and a drop request         *)
(* never stays queued.  Both parts are absorbing per ticket, as above.         *)
DropsDone ==
    \A t \in TicketsOf("FenceDrop") :
        tickets[t].st # "Queued" /\ (up => openFence # tickets[t].id)
LiveDropCancels == []<>DropsDone

=============================================================================
