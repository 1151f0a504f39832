//! The model's transitions: what each action needs to be enabled, the database operations it
//! makes (each checked as the store checks it) and the state it leads to.

use super::{
    Action, Actor, Bug, ClaimRule, Entry, Ev, Folded, LeaseRow, Op, Protocol, Refusal, Resolution,
    Run, State, TaskRow, ToolPhase, fold,
};

/// What the next step of a run is, from what its actor has seen.
enum Plan {
    Append(Ev),
    /// Append the task's end, then release.
    End(Ev),
    /// Waiting for a vote, a cancel or the deadline.
    Wait,
    RunTool,
    /// Nothing to do (a view that already ends the task).
    Nothing,
}

impl TaskRow {
    fn live_lease(&self) -> bool {
        self.lease.is_some_and(|l| l.live)
    }

    fn woken(&self, bug: Option<Bug>) -> bool {
        !self.votes.is_empty()
            || self.cancel
            || (self.deadline_passed && bug != Some(Bug::DeadlineWakesNobody))
    }
}

impl Protocol {
    pub fn api(&self) -> u8 {
        self.workers
    }

    /// The task a worker's claim would take: the first claimable one.
    pub fn claimable_task(&self, s: &State) -> Option<u8> {
        (0..self.tasks).find(|&t| self.claimable(&s.tasks[usize::from(t)]))
    }

    fn claimable(&self, row: &TaskRow) -> bool {
        let f = fold(&row.journal);
        if f.ended.is_some() || row.live_lease() {
            return false;
        }
        match self.rule {
            ClaimRule::Unfinished => true,
            ClaimRule::Woken => !f.pending_approval() || row.woken(self.bug),
        }
    }

    fn plan(&self, view: &Folded, run: &Run) -> Plan {
        let needs_approval = run.task < self.approvals;
        if view.ended.is_some() {
            return Plan::Nothing;
        }
        if !view.started {
            return Plan::Append(Ev::Started);
        }
        if needs_approval {
            match view.resolution {
                None if !view.requested => return Plan::Append(Ev::ApprovalRequested),
                None => return Plan::Wait,
                Some(Resolution::Denied | Resolution::Expired) => return Plan::End(Ev::Failed),
                Some(Resolution::Approved) => {}
            }
        }
        match (view.tool_started, view.tool_completed, run.tool) {
            (false, _, _) => Plan::Append(Ev::ToolStarted),
            (true, true, _) => Plan::End(Ev::Succeeded),
            (true, false, ToolPhase::Started) => Plan::RunTool,
            (true, false, ToolPhase::Ran) => Plan::Append(Ev::ToolCompleted),
            // Started by an earlier run: its side effect may have happened, so the task fails
            // rather than running it again (STEP_UNCERTAIN_SIDE_EFFECT).
            (true, false, ToolPhase::Idle) => Plan::End(Ev::Failed),
        }
    }

    /// The store's fenced append, with its checks in the store's order.
    fn append(
        &self,
        s: &mut State,
        actor: u8,
        run: &Run,
        events: Vec<Ev>,
        ops: &mut Vec<Op>,
    ) -> Result<(), Refusal> {
        let row = &mut s.tasks[usize::from(run.task)];
        let current = row.lease.is_some_and(|l| l.epoch == run.epoch && l.live);
        let outcome = if fold(&row.journal).ended.is_some() {
            Err(Refusal::Ended)
        } else if !current && self.bug != Some(Bug::NoFence) {
            Err(Refusal::LeaseLost)
        } else if row.journal.len() != usize::from(run.seen) {
            Err(Refusal::Conflict)
        } else {
            Ok(())
        };
        ops.push(Op::Append {
            task: run.task,
            epoch: run.epoch,
            after: run.seen,
            events: events.clone(),
            outcome,
        });
        match outcome {
            Ok(()) => {
                s.stale_accepted |= !current;
                let row = &mut s.tasks[usize::from(run.task)];
                row.journal.extend(events.into_iter().map(|ev| Entry {
                    ev,
                    by: Some((actor, run.epoch)),
                }));
            }
            Err(Refusal::LeaseLost) => s.lease_lost_seen = true,
            Err(_) => {}
        }
        outcome
    }

    /// The store's release: only the holder's live lease of that epoch.
    fn release(s: &mut State, actor: u8, run: &Run, ops: &mut Vec<Op>) {
        ops.push(Op::Release {
            actor,
            task: run.task,
            epoch: run.epoch,
        });
        if let Some(l) = &mut s.tasks[usize::from(run.task)].lease
            && l.epoch == run.epoch
            && l.holder == actor
            && l.live
        {
            l.live = false;
        }
    }

    fn claim(&self, s: &mut State, actor: u8, task: u8, ops: &mut Vec<Op>) {
        let row = &mut s.tasks[usize::from(task)];
        let last = row.lease.map_or(0, |l| l.epoch);
        let epoch = if self.bug == Some(Bug::ClaimKeepsEpoch) {
            last.max(1)
        } else {
            last + 1
        };
        row.lease = Some(LeaseRow {
            epoch,
            holder: actor,
            live: true,
        });
        let seen = u8::try_from(row.journal.len()).unwrap_or(u8::MAX);
        s.actors[usize::from(actor)].run = Some(Run {
            task,
            epoch,
            seen,
            tool: ToolPhase::Idle,
        });
        ops.push(Op::Claim { actor, task, epoch });
    }

    /// An append by `actor` for its run; on success the run has seen it, on refusal the run
    /// stops (and gives back a lease it may still hold).
    /// Returns whether the store accepted it.
    fn run_append(
        &self,
        s: &mut State,
        actor: u8,
        run: Run,
        events: Vec<Ev>,
        ops: &mut Vec<Op>,
    ) -> bool {
        let n = u8::try_from(events.len()).unwrap_or(u8::MAX);
        let ends = events.last().is_some_and(|e| e.ends_task());
        let outcome = self.append(s, actor, &run, events, ops);
        match outcome {
            Ok(()) if ends => {
                Self::release(s, actor, &run, ops);
                s.actors[usize::from(actor)].run = None;
            }
            Ok(()) => {
                s.actors[usize::from(actor)].run = Some(Run {
                    seen: run.seen + n,
                    ..run
                });
            }
            Err(_) => {
                Self::release(s, actor, &run, ops);
                s.actors[usize::from(actor)].run = None;
            }
        }
        outcome.is_ok()
    }

    fn step(&self, s: &mut State, actor: u8, run: Run, ops: &mut Vec<Op>) -> Option<()> {
        let t = usize::from(run.task);
        if actor == self.api() {
            if self.run_append(s, actor, run, vec![Ev::Cancelled], ops) {
                s.tasks[t].cancel = false;
                s.tasks[t].votes.clear();
            }
            return Some(());
        }
        let view = fold(&s.tasks[t].journal[..usize::from(run.seen)]);
        match self.plan(&view, &run) {
            Plan::Nothing => None,
            Plan::Append(Ev::ToolStarted) if self.bug == Some(Bug::ToolBeforeStartCommits) => {
                let at = u8::try_from(s.tasks[t].journal.len()).unwrap_or(u8::MAX);
                let ok = self.run_append(s, actor, run, vec![Ev::ToolStarted], ops);
                s.tasks[t].tool_runs.push(if ok { at } else { u8::MAX });
                if let Some(r) = &mut s.actors[usize::from(actor)].run {
                    r.tool = ToolPhase::Ran;
                }
                Some(())
            }
            Plan::Append(Ev::ToolStarted) => {
                self.run_append(s, actor, run, vec![Ev::ToolStarted], ops);
                if let Some(r) = &mut s.actors[usize::from(actor)].run {
                    r.tool = ToolPhase::Started;
                }
                Some(())
            }
            Plan::Append(ev) | Plan::End(ev) => {
                self.run_append(s, actor, run, vec![ev], ops);
                Some(())
            }
            Plan::RunTool => {
                // The side effect: no database operation, only what the world saw.
                let at = s.tasks[t].journal[..usize::from(run.seen)]
                    .iter()
                    .rposition(|e| e.ev == Ev::ToolStarted)
                    .and_then(|i| u8::try_from(i).ok())
                    .unwrap_or(u8::MAX);
                s.tasks[t].tool_runs.push(at);
                s.actors[usize::from(actor)].run = Some(Run {
                    tool: ToolPhase::Ran,
                    ..run
                });
                Some(())
            }
            Plan::Wait => self.wait(s, actor, run, &view, ops),
        }
    }

    /// A run waiting on its approval: the oldest vote, else the deadline, else park (release
    /// the lease: the task is claimable again once something wakes it). A pending cancel is
    /// [`Action::ApplyCancel`]'s.
    fn wait(
        &self,
        s: &mut State,
        actor: u8,
        run: Run,
        view: &Folded,
        ops: &mut Vec<Op>,
    ) -> Option<()> {
        let t = usize::from(run.task);
        if let Some(&(approver, approve)) = s.tasks[t].votes.first() {
            let mut events = vec![Ev::ApprovalVoted { approver, approve }];
            if !approve {
                events.push(Ev::ApprovalResolved(Resolution::Denied));
            } else if view.approves + 1 >= self.required {
                events.push(Ev::ApprovalResolved(Resolution::Approved));
            }
            let resolves = events.len() == 2;
            if self.run_append(s, actor, run, events, ops) {
                // Applied with the append, in its transaction; once decided, the other votes
                // are refused.
                s.tasks[t].votes.remove(0);
                if resolves {
                    s.tasks[t].votes.clear();
                }
            }
            return Some(());
        }
        if s.tasks[t].deadline_passed {
            self.run_append(
                s,
                actor,
                run,
                vec![Ev::ApprovalResolved(Resolution::Expired)],
                ops,
            );
            return Some(());
        }
        if s.tasks[t].cancel {
            return None;
        }
        Self::release(s, actor, &run, ops);
        s.actors[usize::from(actor)].run = None;
        Some(())
    }

    /// Whether `action` is enabled in `s`, and where it leads with the operations it makes.
    /// A renewal that keeps the lease changes nothing and comes back as `s` itself.
    pub fn transition(&self, s: &State, action: Action) -> Option<(State, Vec<Op>)> {
        let mut ops = Vec::new();
        // Each arm checks that the action is enabled before it copies the state.
        let n = match action {
            Action::Claim(w) => {
                let a = s.actors[usize::from(w)];
                if a.run.is_some() {
                    return None;
                }
                let task = self.claimable_task(s)?;
                let mut n = s.clone();
                self.claim(&mut n, w, task, &mut ops);
                n
            }
            Action::ApiClaim(t) => {
                let a = s.actors[usize::from(self.api())];
                let row = &s.tasks[usize::from(t)];
                if a.run.is_some()
                    || !row.cancel
                    || row.live_lease()
                    || fold(&row.journal).ended.is_some()
                {
                    return None;
                }
                let mut n = s.clone();
                self.claim(&mut n, self.api(), t, &mut ops);
                n
            }
            Action::Step(w) => {
                let run = s.actors[usize::from(w)].run?;
                let mut n = s.clone();
                self.step(&mut n, w, run, &mut ops)?;
                n
            }
            Action::ApplyCancel(w) => {
                let run = s.actors[usize::from(w)].run.filter(|_| w != self.api())?;
                let row = &s.tasks[usize::from(run.task)];
                if !row.cancel || fold(&row.journal[..usize::from(run.seen)]).ended.is_some() {
                    return None;
                }
                let mut n = s.clone();
                if self.run_append(&mut n, w, run, vec![Ev::Cancelled], &mut ops) {
                    let row = &mut n.tasks[usize::from(run.task)];
                    row.cancel = false;
                    row.votes.clear();
                }
                n
            }
            Action::Renew(w) => {
                let run = s.actors[usize::from(w)].run?;
                let kept = s.tasks[usize::from(run.task)]
                    .lease
                    .is_some_and(|l| l.epoch == run.epoch && l.holder == w && l.live);
                ops.push(Op::Renew {
                    actor: w,
                    task: run.task,
                    epoch: run.epoch,
                    kept,
                });
                let mut n = s.clone();
                if !kept {
                    n.actors[usize::from(w)].run = None;
                }
                n
            }
            Action::Crash(w) => {
                if s.actors[usize::from(w)].run.is_none() || s.faults_left == 0 {
                    return None;
                }
                let mut n = s.clone();
                n.faults_left -= 1;
                n.actors[usize::from(w)] = Actor { run: None };
                n
            }
            Action::Expire(t) => {
                let lease = s.tasks[usize::from(t)].lease.filter(|l| l.live)?;
                let running = s.actors[usize::from(lease.holder)]
                    .run
                    .is_some_and(|r| r.task == t && r.epoch == lease.epoch);
                // A lease whose holder died or let it go runs out anyway; one whose holder is
                // still working runs out only on a fault.
                if running && s.faults_left == 0 {
                    return None;
                }
                let mut n = s.clone();
                n.faults_left -= u8::from(running);
                if let Some(l) = &mut n.tasks[usize::from(t)].lease {
                    l.live = false;
                }
                ops.push(Op::Expire { task: t });
                n
            }
            Action::Vote {
                task,
                approver,
                approve,
            } => {
                let row = &s.tasks[usize::from(task)];
                let f = fold(&row.journal);
                let voted = row.journal.iter().any(
                    |e| matches!(e.ev, Ev::ApprovalVoted { approver: a, .. } if a == approver),
                ) || row.votes.iter().any(|&(a, _)| a == approver);
                // Past the deadline the API refuses votes (RuntimeError::VoteTooLate).
                if f.ended.is_some() || !f.pending_approval() || voted || row.deadline_passed {
                    return None;
                }
                let mut n = s.clone();
                n.tasks[usize::from(task)].votes.push((approver, approve));
                n
            }
            Action::Cancel(t) => {
                let row = &s.tasks[usize::from(t)];
                if row.cancel_asked || fold(&row.journal).ended.is_some() {
                    return None;
                }
                let mut n = s.clone();
                n.tasks[usize::from(t)].cancel = true;
                n.tasks[usize::from(t)].cancel_asked = true;
                n
            }
            Action::Deadline(t) => {
                let row = &s.tasks[usize::from(t)];
                let f = fold(&row.journal);
                if row.deadline_passed || f.ended.is_some() || !f.pending_approval() {
                    return None;
                }
                let mut n = s.clone();
                n.tasks[usize::from(t)].deadline_passed = true;
                n
            }
        };
        Some((n, ops))
    }

    pub fn all_ended(s: &State) -> bool {
        s.tasks.iter().all(|t| fold(&t.journal).ended.is_some())
    }
}
