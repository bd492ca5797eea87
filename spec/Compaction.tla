---------------------------- MODULE Compaction ----------------------------
(***************************************************************************)
(* Compaction and its crash safety (spec/FORMAT.md, "Compaction";         *)
(* src/store/compaction.rs; recovery's supersede rule in src/log/scan.rs,  *)
(* live_segment_ids / remove_superseded), on a file-system model that      *)
(* keeps what the page cache and the directory hold (volatile) apart from  *)
(* what was fsynced (durable).  Separate from spec/Store.tla (whose state  *)
(* counts are compared with the Rust oracle), like spec/Delivery.tla.      *)
(*                                                                         *)
(* Three sealed segments 1..3 and the active segment 4 hold records        *)
(* 1..7 of five units; unit 2 (records 2 and 3) spans segments 1 and 2 and *)
(* is the one the compaction removes (a retention/tombstone drop), unit 3  *)
(* (records 4 and 5) spans segments 2 and 3 and is kept.  The compacted   *)
(* segment (id 3, first sequence 1) starts with a Dropped record and       *)
(* replaces the removed run 2..3 by Dropped{to: 4}.                        *)
(*                                                                         *)
(* Steps (one action each): create <3>.seg.compact (removing a stale one), *)
(* write it, fsync it, rename it over <3>.seg, fsync the directory (the    *)
(* commit point), remove segments 1 and 2 one by one, fsync the directory. *)
(* A failed fsync of the new file or of the directory ends the attempt     *)
(* with an error (the kernel may have marked the pages clean: no later     *)
(* fsync writes them).  Crash terms of shared/design/INVARIANTS.md:        *)
(* ProcessCrash keeps the page cache and the directory as the kernel has   *)
(* them (nothing becomes durable); PowerLoss keeps what was fsynced, any   *)
(* prefix of a file's unsynced records, and any in-order subset of the     *)
(* directory operations not yet made durable by a directory fsync (a       *)
(* create, rename or unlink is durable only after it).  Crashes may hit    *)
(* any step, recovery included.  Recovery (a writable open) that finds     *)
(* superseded segments fsyncs the directory as it found it, removes them   *)
(* and fsyncs it again (src/log/scan.rs today skips the first fsync: that  *)
(* is mutant recovery_unlinks_before_dir_sync, refuted); a read-only open  *)
(* ignores them: View, checked in every state, is exactly                  *)
(* what a read-only open (or the recovery, before its removals) shows.     *)
(* The visible log is the live segments' records; a gap in sequences is a  *)
(* recovery that fails (corruption or loss), never accepted.               *)
(*                                                                         *)
(* Invariants: InvBeforeOrAfter (INV-COMPACTION: every state - so every    *)
(* process-crash image and every power-loss image taken - recovers to      *)
(* exactly the records before or exactly those after), InvStableSeq,       *)
(* InvUnitsWhole, InvNoLoss (every record durable before compaction began  *)
(* and not removed by it survives).  Mutants (spec/check_compaction.sh).   *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS
    MaxCrashes,   \* process crashes and power losses in total
    MaxAttempts,  \* compaction attempts (a crash or failed fsync before the rename allows a retry)
    MaxFails,     \* failed fsyncs in total
    Mutant        \* "none" | "delete_before_dir_sync" | "no_fsync_new" | "split_unit"
                  \* | "renumber" | "supersede_strict" | "recovery_unlinks_before_dir_sync"

VARIABLES
    dir,      \* volatile directory: name -> inode (0 = absent); name 0 is <3>.seg.compact
    ddir,     \* durable directory
    pend,     \* directory operations since the last directory fsync, in order
    len,      \* inode -> records written (what the page cache holds)
    dlen,     \* inode -> records durable
    pc,       \* the compaction's step
    rm,       \* the next old segment to remove
    up,       \* "up" | "down" (crashed) | "presynced" (recovery synced the directory)
              \* | "recovering" (removals done, directory not synced)
    attempts, crashes, fails

vars == <<dir, ddir, pend, len, dlen, pc, rm, up, attempts, crashes, fails>>

Names == 0..4
NewInodes == 5..(4 + MaxAttempts)   \* the compaction attempts' files
Inodes == 1..4 \cup NewInodes        \* 1..4 the original segments
Sealed == 3             \* the last sealed segment: the compacted one takes its id
Temp == 0

Ev(s, u) == [k |-> "ev", s |-> s, u |-> u, to |-> 0]
Drop(s, t) == [k |-> "drop", s |-> s, u |-> 0, to |-> t]

SegContent == <<<<Ev(1, 1), Ev(2, 2)>>, <<Ev(3, 2), Ev(4, 3)>>,
                <<Ev(5, 3), Ev(6, 4)>>, <<Ev(7, 5)>>>>
Orig == {Ev(1, 1), Ev(2, 2), Ev(3, 2), Ev(4, 3), Ev(5, 3), Ev(6, 4), Ev(7, 5)}
Units == 1..5
Removed == {r \in Orig : r.u = 2}

\* The compacted segment as the build writes it (the mutants change the build).
Compacted ==
    CASE Mutant = "split_unit" ->       \* only record 2 of unit 2 goes (CompactionSplitsUnit)
            <<Drop(1, 1), Ev(1, 1), Drop(2, 3), Ev(3, 2), Ev(4, 3), Ev(5, 3), Ev(6, 4)>>
      [] Mutant = "renumber" ->         \* kept records closed up over the gap
            <<Drop(1, 1), Ev(1, 1), Ev(2, 3), Ev(3, 3), Ev(4, 4)>>
      [] OTHER ->
            <<Drop(1, 1), Ev(1, 1), Drop(2, 4), Ev(4, 3), Ev(5, 3), Ev(6, 4)>>

Content(i) == IF i <= 4 THEN SegContent[i] ELSE Compacted
MaxLen == 7

Range(f) == {f[x] : x \in DOMAIN f}
Snoc(s, x) == Append(s, x)

\* ---- recovery's reading of a directory (live_segment_ids) ----
FileOf(d, l, n) == SubSeq(Content(d[n]), 1, l[d[n]])
\* A file with no complete record has no intact header: no first sequence, not compacted.
FirstSeq(d, l, n) == IF l[d[n]] = 0 THEN 0 ELSE Content(d[n])[1].s
IsCompacted(d, l, n) == l[d[n]] > 0 /\ Content(d[n])[1].k = "drop"
Segs(d) == LET ids == {n \in 1..4 : d[n] # 0}
           IN [i \in 1..Cardinality(ids) |->
                 CHOOSE n \in ids : Cardinality({m \in ids : m < n}) = i - 1]

\* Pops earlier segments a compacted one with first sequence f supersedes.
RECURSIVE PopWhile(_, _, _, _)
PopWhile(stack, f, d, l) ==
    IF stack = <<>> THEN stack
    ELSE LET prev == stack[Len(stack)]
             pf == FirstSeq(d, l, prev)
         IN IF pf = 0 THEN stack
            ELSE IF (IF Mutant = "supersede_strict" THEN pf > f ELSE pf >= f)
                 THEN PopWhile(SubSeq(stack, 1, Len(stack) - 1), f, d, l)
                 ELSE stack

RECURSIVE LiveFrom(_, _, _, _)
LiveFrom(stack, rest, d, l) ==
    IF rest = <<>> THEN stack
    ELSE LET n == Head(rest)
         IN IF IsCompacted(d, l, n)
            THEN LiveFrom(Snoc(PopWhile(stack, FirstSeq(d, l, n), d, l), n), Tail(rest), d, l)
            ELSE LiveFrom(Snoc(stack, n), Tail(rest), d, l)

Live(d, l) == LiveFrom(<<>>, Segs(d), d, l)
Superseded(d, l) == {n \in 1..4 : d[n] # 0} \ Range(Live(d, l))

RECURSIVE Concat(_, _, _)
Concat(ns, d, l) == IF ns = <<>> THEN <<>> ELSE FileOf(d, l, Head(ns)) \o Concat(Tail(ns), d, l)

LogOf(d, l) == Concat(Live(d, l), d, l)
NextSeq(r) == IF r.k = "drop" THEN r.to ELSE r.s + 1
Dense(g) == /\ g # <<>> => g[1].s = 1
            /\ \A i \in 1..(Len(g) - 1) : g[i + 1].s = NextSeq(g[i])
\* What an open shows: the records of a dense log (a gap: the open fails, nothing shown).
View(d, l) == LET g == LogOf(d, l)
              IN IF Dense(g) THEN [ok |-> TRUE, vis |-> {g[i] : i \in {j \in 1..Len(g) : g[j].k = "ev"}}]
                 ELSE [ok |-> FALSE, vis |-> {}]

Before == [ok |-> TRUE, vis |-> Orig]
After == [ok |-> TRUE, vis |-> Orig \ Removed]

\* ---- directory operations ----
\* A power loss keeps any in-order subset of the pending operations, except that a rename
\* moves the file a create made: it survives only together with that create.
Op(k, a, b, i) == [k |-> k, a |-> a, b |-> b, i |-> i]
DoOp(d, o) == CASE o.k = "create" -> [d EXCEPT ![o.a] = o.i]
               [] o.k = "unlink" -> [d EXCEPT ![o.a] = 0]
               [] o.k = "rename" -> IF d[o.a] # o.i THEN d  \* the create it moves did not survive
                                    ELSE [d EXCEPT ![o.b] = o.i, ![o.a] = 0]
RECURSIVE DoOps(_, _)
DoOps(d, os) == IF os = <<>> THEN d ELSE DoOps(DoOp(d, Head(os)), Tail(os))
\* The operations at the indices S, in order.
RECURSIVE PickFrom(_, _, _)
PickFrom(os, S, i) == IF i > Len(os) THEN <<>>
                      ELSE (IF i \in S THEN <<os[i]>> ELSE <<>>) \o PickFrom(os, S, i + 1)
Pick(os, S) == PickFrom(os, S, 1)

Ino == 4 + attempts     \* the current attempt's compacted file

Init ==
    /\ dir = [n \in Names |-> n] /\ ddir = dir /\ pend = <<>>
    /\ len = [i \in Inodes |-> IF i <= 4 THEN Len(SegContent[i]) ELSE 0]
    /\ dlen = len
    /\ pc = "idle" /\ rm = 1 /\ up = "up" /\ attempts = 0 /\ crashes = 0 /\ fails = 0

\* Begin: remove a stale <3>.seg.compact, create a new one (both directory operations).
Create ==
    /\ up = "up" /\ pc = "idle" /\ attempts < MaxAttempts
    /\ dir[Sealed] = Sealed                    \* not compacted yet
    /\ attempts' = attempts + 1
    /\ LET ino == 4 + attempts + 1
           stale == IF dir[Temp] # 0 THEN <<Op("unlink", Temp, 0, 0)>> ELSE <<>>
       IN /\ dir' = [dir EXCEPT ![Temp] = ino]
          /\ pend' = pend \o stale \o <<Op("create", Temp, 0, ino)>>
    /\ pc' = "created"
    /\ UNCHANGED <<ddir, len, dlen, rm, up, crashes, fails>>

Write ==
    /\ up = "up" /\ pc = "created"
    /\ len' = [len EXCEPT ![Ino] = Len(Compacted)]
    /\ pc' = "written"
    /\ UNCHANGED <<dir, ddir, pend, dlen, rm, up, attempts, crashes, fails>>

SyncNew ==
    /\ up = "up" /\ pc = "written"
    /\ dlen' = [dlen EXCEPT ![Ino] = len[Ino]]
    /\ pc' = "synced"
    /\ UNCHANGED <<dir, ddir, pend, len, rm, up, attempts, crashes, fails>>

\* The fsync fails: the pages may be clean and never written; compaction returns an error.
SyncNewFail ==
    /\ up = "up" /\ pc = "written" /\ fails < MaxFails
    /\ fails' = fails + 1
    /\ pc' = "idle"
    /\ UNCHANGED <<dir, ddir, pend, len, dlen, rm, up, attempts, crashes>>

Rename ==
    /\ up = "up"
    /\ pc = IF Mutant = "no_fsync_new" THEN "written" ELSE "synced"
    /\ dir' = [dir EXCEPT ![Sealed] = dir[Temp], ![Temp] = 0]
    /\ pend' = Snoc(pend, Op("rename", Temp, Sealed, dir[Temp]))
    /\ pc' = "renamed"
    /\ UNCHANGED <<ddir, len, dlen, rm, up, attempts, crashes, fails>>

DirSync ==
    /\ up = "up" /\ pc = "renamed"
    /\ ddir' = dir /\ pend' = <<>>
    /\ pc' = "committed"
    /\ UNCHANGED <<dir, len, dlen, rm, up, attempts, crashes, fails>>

\* The directory fsync fails: compaction returns an error, the old segments stay.
DirSyncFail ==
    /\ up = "up" /\ pc = "renamed" /\ fails < MaxFails
    /\ fails' = fails + 1
    /\ pc' = "failed"
    /\ UNCHANGED <<dir, ddir, pend, len, dlen, rm, up, attempts, crashes>>

RemoveOld ==
    /\ up = "up"
    /\ pc \in IF Mutant = "delete_before_dir_sync" THEN {"renamed", "removing"}
              ELSE {"committed", "removing"}
    /\ dir' = [dir EXCEPT ![rm] = 0]
    /\ pend' = Snoc(pend, Op("unlink", rm, 0, 0))
    /\ rm' = rm + 1
    /\ pc' = IF rm + 1 = Sealed THEN "removed" ELSE "removing"
    /\ UNCHANGED <<ddir, len, dlen, up, attempts, crashes, fails>>

FinalDirSync ==
    /\ up = "up" /\ pc = "removed"
    /\ ddir' = dir /\ pend' = <<>>
    /\ pc' = "done"
    /\ UNCHANGED <<dir, len, dlen, rm, up, attempts, crashes, fails>>

\* The process dies: page cache and directory as the kernel holds them, nothing more durable.
ProcessCrash ==
    /\ up # "down" /\ crashes < MaxCrashes
    /\ crashes' = crashes + 1
    /\ up' = "down" /\ pc' = "idle" /\ rm' = 1
    /\ UNCHANGED <<dir, ddir, pend, len, dlen, attempts, fails>>

\* Power loss: the durable directory plus any in-order subset of the pending operations,
\* every file its durable records plus any prefix of the rest; after the reboot all of it
\* is read from the disk, so durable.
PowerLoss ==
    /\ crashes < MaxCrashes
    /\ crashes' = crashes + 1
    /\ \E S \in SUBSET (1..Len(pend)), f \in [NewInodes -> 0..MaxLen] :
        /\ \A i \in NewInodes : dlen[i] <= f[i] /\ f[i] <= len[i]
        /\ dir' = DoOps(ddir, Pick(pend, S))
        /\ len' = [i \in Inodes |-> IF i \in NewInodes THEN f[i] ELSE len[i]]
        /\ dlen' = len'
    /\ ddir' = dir' /\ pend' = <<>>
    /\ up' = "down" /\ pc' = "idle" /\ rm' = 1
    /\ UNCHANGED <<attempts, fails>>

\* A writable open that finds superseded segments first makes the directory durable as it
\* reads it (the rename the supersede decision rests on may not be: a process crash between
\* the compaction's rename and its directory fsync), ...
RecoverSyncFirst ==
    /\ up = "down" /\ Mutant # "recovery_unlinks_before_dir_sync"
    /\ Superseded(dir, len) # {}
    /\ ddir' = dir /\ pend' = <<>>
    /\ up' = "presynced"
    /\ UNCHANGED <<dir, len, dlen, pc, rm, attempts, crashes, fails>>

\* ... removes the superseded segments (remove_superseded) ...
Recover ==
    /\ \/ up = "presynced"
       \/ up = "down" /\ (Superseded(dir, len) = {} \/ Mutant = "recovery_unlinks_before_dir_sync")
    /\ LET sup == Superseded(dir, len)
       IN /\ dir' = [n \in Names |-> IF n \in sup THEN 0 ELSE dir[n]]
          /\ pend' = pend \o Pick([j \in 1..4 |-> Op("unlink", j, 0, 0)], sup)
    /\ up' = "recovering"
    /\ UNCHANGED <<ddir, len, dlen, pc, rm, attempts, crashes, fails>>

\* ... and fsyncs the directory before the store opens.
RecoverSync ==
    /\ up = "recovering"
    /\ ddir' = dir /\ pend' = <<>>
    /\ up' = "up"
    /\ UNCHANGED <<dir, len, dlen, pc, rm, attempts, crashes, fails>>

Next ==
    \/ Create \/ Write \/ SyncNew \/ SyncNewFail \/ Rename \/ DirSync \/ DirSyncFail
    \/ RemoveOld \/ FinalDirSync \/ ProcessCrash \/ PowerLoss
    \/ RecoverSyncFirst \/ Recover \/ RecoverSync

Spec == Init /\ [][Next]_vars

\* ---- invariants ----
TypeOK ==
    /\ dir \in [Names -> {0} \cup Inodes] /\ ddir \in [Names -> {0} \cup Inodes]
    /\ len \in [Inodes -> 0..MaxLen] /\ dlen \in [Inodes -> 0..MaxLen]
    /\ \A i \in Inodes : dlen[i] <= len[i]
    /\ up \in {"up", "down", "presynced", "recovering"}
    /\ pc \in {"idle", "created", "written", "synced", "renamed", "committed", "failed",
               "removing", "removed", "done"}

CurView == View(dir, len)
LogNow == LogOf(dir, len)

\* INV-STABLE-SEQ: every record an open reads carries the sequence it had before.
InvStableSeq == \A i \in 1..Len(LogNow) : LogNow[i].k = "ev" => LogNow[i] \in Orig

\* Units kept or dropped whole.
InvUnitsWhole == \A u \in Units : LET rs == {r \in Orig : r.u = u}
                                  IN rs \subseteq CurView.vis \/ rs \cap CurView.vis = {}

\* Nothing durable before compaction began (all of it) is lost unless compaction removed it.
InvNoLoss == CurView.ok /\ (Orig \ Removed) \subseteq CurView.vis

\* INV-COMPACTION: an open of the disk as it is now (after a process crash: the page cache;
\* after a power loss: the image it left), writable or read-only, shows exactly the records
\* before the compaction or exactly those after it.
InvBeforeOrAfter == CurView \in {Before, After}

\* Once the compaction finished, the store stays compacted.
InvDoneIsAfter == pc = "done" => CurView = After
=============================================================================
