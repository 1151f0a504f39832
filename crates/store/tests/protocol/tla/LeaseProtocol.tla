--------------------------- MODULE LeaseProtocol ---------------------------
(***************************************************************************)
(* The lease, fence, approval and cancel protocol of issue 14 (ADR 12) for *)
(* one task: the same protocol as the stateright model beside it           *)
(* (../model.rs, ../model/transitions.rs), action for action, checked with *)
(* TLC by scripts/check-tla.sh. The database holds the task's journal      *)
(* (each entry with the actor and epoch that wrote it, as ghost state),    *)
(* its lease row and the pending vote and cancel commands; each worker and *)
(* the API process holds what it believes of its run. Faults (a crash, a   *)
(* lease running out under a holder that goes on later with its old epoch) *)
(* are bounded by MaxFaults.                                               *)
(***************************************************************************)
EXTENDS Naturals, Sequences, FiniteSets

CONSTANTS Workers,        \* the worker processes
          API,            \* the API process (a model value)
          Approvers,      \* who may vote
          Required,       \* approve votes needed
          MaxFaults,      \* crashes and leases lost under a running holder, in all
          NeedsApproval,  \* whether the task's tool needs approval
          ClaimRaisesEpoch \* FALSE only to show that the checks catch a claim keeping the epoch

Actors == Workers \cup {API}
None == "none"
EndKinds == {"succeeded", "failed", "cancelled"}
NoRun == [has |-> FALSE, epoch |-> 0, seen |-> 0, tool |-> "idle"]

VARIABLES journal,     \* Seq of [k: kind, a: approver or None, ok: BOOLEAN, by: actor or None, ep: Nat]
          lease,       \* [epoch: Nat, holder: actor or None, live: BOOLEAN]
          votes,       \* Seq of [a: approver, ok: BOOLEAN], oldest first
          cancel,      \* a cancel command not yet applied
          cancelAsked, \* the API takes one cancel
          deadline,    \* the approval's deadline passed
          runs,        \* per actor: [has, epoch, seen, tool]
          toolRuns,    \* ghost: per execution of the tool, the journal index of its tool_started (0: none)
          faults       \* faults spent

vars == <<journal, lease, votes, cancel, cancelAsked, deadline, runs, toolRuns, faults>>

Ev(k) == [k |-> k, a |-> None, ok |-> FALSE, by |-> None, ep |-> 0]
Vote(v) == [k |-> "voted", a |-> v.a, ok |-> v.ok, by |-> None, ep |-> 0]

\* What a journal (prefix) says.
Has(v, k) == \E i \in 1..Len(v) : v[i].k = k
Ended(v) == \E i \in 1..Len(v) : v[i].k \in EndKinds
Resolution(v) == IF \E i \in 1..Len(v) : v[i].k \in {"approved", "denied", "expired"}
                 THEN v[CHOOSE i \in 1..Len(v) : v[i].k \in {"approved", "denied", "expired"}].k
                 ELSE None
Approves(v) == Cardinality({i \in 1..Len(v) : v[i].k = "voted" /\ v[i].ok})
Pending(v) == Has(v, "requested") /\ Resolution(v) = None
View(a) == SubSeq(journal, 1, runs[a].seen)

Live == lease.live
Woken == Len(votes) > 0 \/ cancel \/ deadline
\* The design's claim rule: a task parked on its approval is claimable once woken.
Claimable == ~Ended(journal) /\ ~Live /\ (~Pending(journal) \/ Woken)

Released(a) == IF lease.epoch = runs[a].epoch /\ lease.holder = a /\ lease.live
               THEN [lease EXCEPT !.live = FALSE] ELSE lease

TypeOK == /\ lease.epoch \in Nat /\ lease.live \in BOOLEAN
          /\ runs \in [Actors -> [has : BOOLEAN, epoch : Nat, seen : Nat,
                                  tool : {"idle", "started", "ran"}]]
          /\ faults \in 0..MaxFaults

Init == /\ journal = << Ev("submitted") >>
        /\ lease = [epoch |-> 0, holder |-> None, live |-> FALSE]
        /\ votes = << >>
        /\ cancel = FALSE /\ cancelAsked = FALSE /\ deadline = FALSE
        /\ runs = [a \in Actors |-> NoRun]
        /\ toolRuns = << >>
        /\ faults = 0

(* The store's fenced append, checked in the store's order (the end fence, the epoch and  *)
(* liveness of the lease, the expected seq). Accepted: the entries are journaled, the run  *)
(* has seen them (and, when they end the task, releases); the commands become votesOk and  *)
(* cancelOk; the run's tool phase toolOk. Refused: the run stops and releases.             *)
Write(a, evs, votesOk, cancelOk, toolOk) ==
    LET r == runs[a]
        ok == ~Ended(journal) /\ lease.epoch = r.epoch /\ lease.live /\ Len(journal) = r.seen
        ends == evs[Len(evs)].k \in EndKinds
        entries == [i \in 1..Len(evs) |-> [evs[i] EXCEPT !.by = a, !.ep = r.epoch]]
    IN IF ok
       THEN /\ journal' = journal \o entries
            /\ votes' = votesOk /\ cancel' = cancelOk
            /\ IF ends THEN /\ lease' = Released(a) /\ runs' = [runs EXCEPT ![a] = NoRun]
                       ELSE /\ lease' = lease
                            /\ runs' = [runs EXCEPT ![a].seen = r.seen + Len(evs), ![a].tool = toolOk]
            /\ UNCHANGED <<cancelAsked, deadline, toolRuns, faults>>
       ELSE /\ lease' = Released(a) /\ runs' = [runs EXCEPT ![a] = NoRun]
            /\ UNCHANGED <<journal, votes, cancel, cancelAsked, deadline, toolRuns, faults>>

TakeLease(a) ==
    LET epoch == IF ClaimRaisesEpoch \/ lease.epoch = 0 THEN lease.epoch + 1 ELSE lease.epoch
    IN /\ lease' = [epoch |-> epoch, holder |-> a, live |-> TRUE]
       /\ runs' = [runs EXCEPT ![a] = [has |-> TRUE, epoch |-> epoch, seen |-> Len(journal),
                                       tool |-> "idle"]]
       /\ UNCHANGED <<journal, votes, cancel, cancelAsked, deadline, toolRuns, faults>>

Claim(w) == /\ ~runs[w].has /\ Claimable /\ TakeLease(w)

ApiClaim == /\ ~runs[API].has /\ cancel /\ ~Live /\ ~Ended(journal) /\ TakeLease(API)

\* A run waiting on its approval: the oldest vote, else the deadline, else park.
Wait(w) ==
    LET v == View(w)
    IN IF Len(votes) > 0
       THEN LET h == Head(votes)
                decides == ~h.ok \/ Approves(v) + 1 >= Required
                res == IF ~h.ok THEN << Ev("denied") >>
                       ELSE IF Approves(v) + 1 >= Required THEN << Ev("approved") >> ELSE << >>
            IN Write(w, << Vote(h) >> \o res, IF decides THEN << >> ELSE Tail(votes),
                      cancel, runs[w].tool)
       ELSE IF deadline
       THEN Write(w, << Ev("expired") >>, votes, cancel, runs[w].tool)
       ELSE /\ ~cancel
            /\ lease' = Released(w) /\ runs' = [runs EXCEPT ![w] = NoRun]
            /\ UNCHANGED <<journal, votes, cancel, cancelAsked, deadline, toolRuns, faults>>

RunTool(w) ==
    LET v == View(w)
        at == CHOOSE i \in 1..Len(v) : v[i].k = "tool_started"
    IN /\ toolRuns' = Append(toolRuns, at)
       /\ runs' = [runs EXCEPT ![w].tool = "ran"]
       /\ UNCHANGED <<journal, lease, votes, cancel, cancelAsked, deadline, faults>>

\* A worker's next step, from what it has seen.
Step(w) ==
    LET v == View(w)
        r == runs[w]
    IN /\ r.has /\ ~Ended(v)
       /\ IF ~Has(v, "started") THEN Write(w, << Ev("started") >>, votes, cancel, r.tool)
          ELSE IF NeedsApproval /\ ~Has(v, "requested")
               THEN Write(w, << Ev("requested") >>, votes, cancel, r.tool)
          ELSE IF NeedsApproval /\ Resolution(v) = None THEN Wait(w)
          ELSE IF NeedsApproval /\ Resolution(v) \in {"denied", "expired"}
               THEN Write(w, << Ev("failed") >>, votes, cancel, r.tool)
          ELSE IF ~Has(v, "tool_started")
               THEN Write(w, << Ev("tool_started") >>, votes, cancel, "started")
          ELSE IF Has(v, "tool_completed")
               THEN Write(w, << Ev("succeeded") >>, votes, cancel, r.tool)
          ELSE IF r.tool = "started" THEN RunTool(w)
          ELSE IF r.tool = "ran"
               THEN Write(w, << Ev("tool_completed") >>, votes, cancel, r.tool)
          \* Started by an earlier run: it may have happened, so it is not run again.
          ELSE Write(w, << Ev("failed") >>, votes, cancel, r.tool)

ApplyCancel(w) == /\ runs[w].has /\ cancel /\ ~Ended(View(w))
                  /\ Write(w, << Ev("cancelled") >>, << >>, FALSE, runs[w].tool)

ApiStep == /\ runs[API].has
           /\ Write(API, << Ev("cancelled") >>, << >>, FALSE, "idle")

\* A renewal that keeps the lease changes nothing; one that finds it lost stops the run.
Renew(a) == /\ runs[a].has
            /\ ~(lease.epoch = runs[a].epoch /\ lease.holder = a /\ lease.live)
            /\ runs' = [runs EXCEPT ![a] = NoRun]
            /\ UNCHANGED <<journal, lease, votes, cancel, cancelAsked, deadline, toolRuns, faults>>

HolderRunning == lease.holder # None /\ runs[lease.holder].has
                 /\ runs[lease.holder].epoch = lease.epoch

\* The clock: a lease whose holder stopped runs out anyway.
ExpireStopped == /\ Live /\ ~HolderRunning
                 /\ lease' = [lease EXCEPT !.live = FALSE]
                 /\ UNCHANGED <<journal, votes, cancel, cancelAsked, deadline, runs, toolRuns, faults>>

Deadline == /\ ~deadline /\ ~Ended(journal) /\ Pending(journal)
            /\ deadline' = TRUE
            /\ UNCHANGED <<journal, lease, votes, cancel, cancelAsked, runs, toolRuns, faults>>

\* Faults.
Crash(a) == /\ runs[a].has /\ faults < MaxFaults
            /\ runs' = [runs EXCEPT ![a] = NoRun] /\ faults' = faults + 1
            /\ UNCHANGED <<journal, lease, votes, cancel, cancelAsked, deadline, toolRuns>>

ExpireRunning == /\ Live /\ HolderRunning /\ faults < MaxFaults
                 /\ lease' = [lease EXCEPT !.live = FALSE] /\ faults' = faults + 1
                 /\ UNCHANGED <<journal, votes, cancel, cancelAsked, deadline, runs, toolRuns>>

\* The environment: votes (refused past the deadline) and a cancel, which nobody has to send.
Voted(p, ok) == /\ ~Ended(journal) /\ Pending(journal) /\ ~deadline
                /\ ~\E i \in 1..Len(journal) : journal[i].k = "voted" /\ journal[i].a = p
                /\ ~\E i \in 1..Len(votes) : votes[i].a = p
                /\ votes' = Append(votes, [a |-> p, ok |-> ok])
                /\ UNCHANGED <<journal, lease, cancel, cancelAsked, deadline, runs, toolRuns, faults>>

Cancel == /\ ~cancelAsked /\ ~Ended(journal)
          /\ cancel' = TRUE /\ cancelAsked' = TRUE
          /\ UNCHANGED <<journal, lease, votes, deadline, runs, toolRuns, faults>>

Progress == \/ \E w \in Workers : Claim(w) \/ Step(w) \/ ApplyCancel(w)
            \/ \E a \in Actors : Renew(a)
            \/ ApiClaim \/ ApiStep \/ ExpireStopped \/ Deadline

Environment == \/ \E a \in Actors : Crash(a)
               \/ ExpireRunning
               \/ \E p \in Approvers, ok \in BOOLEAN : Voted(p, ok)
               \/ Cancel

\* Where neither can move, the behaviour stutters (TLC runs with -deadlock; NoDeadlock below
\* says such a state has the task ended).
Next == Progress \/ Environment

\* The system acts while it can (weak fairness); the environment need not.
Spec == Init /\ [][Next]_vars /\ WF_vars(Progress)

-----------------------------------------------------------------------------
\* Invariants: the same as the stateright model's.

OneWriterPerEpoch == \A i, j \in 1..Len(journal) :
    (journal[i].by # None /\ journal[j].by # None /\ journal[i].ep = journal[j].ep)
        => journal[i].by = journal[j].by

NothingAfterTheEnd == \A i \in 1..Len(journal) : journal[i].k \in EndKinds => i = Len(journal)

ToolRunsUnderACommittedStart == \A i \in 1..Len(toolRuns) :
    toolRuns[i] \in 1..Len(journal) /\ journal[toolRuns[i]].k = "tool_started"

ToolRunsAtMostOnce == Len(toolRuns) <= 1

DecidedAtMostOnce ==
    /\ Cardinality({i \in 1..Len(journal) : journal[i].k \in {"approved", "denied", "expired"}}) <= 1
    /\ \A i \in 1..Len(journal) : journal[i].k = "approved" =>
          /\ Approves(SubSeq(journal, 1, i)) >= Required
          /\ ~\E j \in 1..i : journal[j].k = "voted" /\ ~journal[j].ok

\* In every state where the task has not ended, the system itself can move.
NoDeadlock == ~Ended(journal) => ENABLED Progress

\* Liveness: under weak fairness of the system, the task ends.
TaskEnds == <>Ended(journal)
=============================================================================
