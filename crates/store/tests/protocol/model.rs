//! The lease, fence, approval and cancel protocol of issue 14 (ADR 12) as a finite model for
//! `stateright`: the database (per task its journal, its lease row, the pending commands),
//! the workers and one API process as actors, the approvers and the clock as the environment.
//! Every database operation a transition makes is also returned as an [`Op`] with the answer
//! the model expects, which is what `conformance.rs` replays against the real store.

use stateright::{Model, Property};

/// Which unleased tasks a claim may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimRule {
    /// The design: a task parked on an approval is claimable only once something woke it (a
    /// vote or cancel command, or the approval's deadline).
    Woken,
    /// Today's claim SQL: every unfinished task without a live lease.
    Unfinished,
}

/// A deliberate break of the protocol, to show that the checked properties can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Appends are checked by seq and the end fence only, not by the lease's epoch.
    NoFence,
    /// A claim takes the lease without raising the epoch.
    ClaimKeepsEpoch,
    /// The worker runs the tool without waiting for `tool_started` to commit.
    ToolBeforeStartCommits,
    /// An approval's deadline does not wake its parked task.
    DeadlineWakesNobody,
}

/// One configuration of the protocol to check.
#[derive(Clone, Debug)]
pub struct Protocol {
    /// Worker processes (the API process is one more actor, after them).
    pub workers: u8,
    pub tasks: u8,
    /// The first `approvals` tasks' tool calls need approval; the others' do not.
    pub approvals: u8,
    /// Approve votes needed (1 or 2; there are two approvers).
    pub required: u8,
    /// Crashes, and expiries of a lease whose holder is still running, in all.
    pub faults: u8,
    pub rule: ClaimRule,
    pub bug: Option<Bug>,
}

/// How an approval was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    Approved,
    Denied,
    Expired,
}

/// The journal events the protocol is about (each stands for its `JournalEvent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ev {
    Submitted,
    Started,
    ApprovalRequested,
    ApprovalVoted { approver: u8, approve: bool },
    ApprovalResolved(Resolution),
    ToolStarted,
    ToolCompleted,
    Succeeded,
    Failed,
    Cancelled,
}

impl Ev {
    pub fn ends_task(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// A journal entry with who wrote it under which epoch (`None`: unfenced). The writer is
/// ghost state for the properties; the real journal does not record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub ev: Ev,
    pub by: Option<(u8, u8)>,
}

/// A task's row in `task_leases`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeaseRow {
    pub epoch: u8,
    pub holder: u8,
    pub live: bool,
}

/// One task in the database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskRow {
    pub journal: Vec<Entry>,
    pub lease: Option<LeaseRow>,
    /// Vote commands not yet applied, oldest first: (approver, approve).
    pub votes: Vec<(u8, bool)>,
    /// A cancel command not yet applied.
    pub cancel: bool,
    /// Whether a cancel was ever asked for (the API takes one per task).
    pub cancel_asked: bool,
    pub deadline_passed: bool,
    /// Ghost: per execution of the tool, the journal index of the `tool_started` it ran
    /// under (`u8::MAX`: none was committed).
    pub tool_runs: Vec<u8>,
}

/// Where a run's tool call is, as its worker knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ToolPhase {
    /// Not started by this run.
    Idle,
    /// `tool_started` committed: the tool may run.
    Started,
    /// The tool ran.
    Ran,
}

/// A task an actor holds: the lease it believes it has and the journal prefix it has seen
/// (the journal is append-only, so what it saw is `journal[..seen]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Run {
    pub task: u8,
    pub epoch: u8,
    pub seen: u8,
    pub tool: ToolPhase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Actor {
    pub run: Option<Run>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub tasks: Vec<TaskRow>,
    /// The workers, then the API process.
    pub actors: Vec<Actor>,
    pub faults_left: u8,
    /// Ghost: an append was accepted although its epoch was not the live one.
    pub stale_accepted: bool,
    /// Ghost: an append was refused for a lost lease (for a `sometimes` property).
    pub lease_lost_seen: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A worker claims the first claimable task (the claim SQL's order: all tasks have one
    /// priority, so submission order).
    Claim(u8),
    /// An actor's next step in the task it holds (one append, the tool's execution, or parking).
    Step(u8),
    /// The holder applies the task's pending cancel.
    ApplyCancel(u8),
    Renew(u8),
    /// The actor's process dies: it forgets its run, its lease is left to expire.
    Crash(u8),
    /// The clock: the task's lease runs out. Under a holder still running, this is the fault
    /// that stands for a pause (a stop-the-world, a partition, renewals that fail): the holder
    /// acts later, with its old epoch, whenever the interleaving lets it.
    Expire(u8),
    /// The API process claims a task nobody holds to journal its cancel itself.
    ApiClaim(u8),
    /// An approver's vote reaches an API process (a command for the holder).
    Vote {
        task: u8,
        approver: u8,
        approve: bool,
    },
    /// A cancel reaches an API process.
    Cancel(u8),
    /// The approval's deadline passes.
    Deadline(u8),
}

/// Why the store refuses an append, in the order it checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// AMAS-STORE-0010.
    Ended,
    /// AMAS-STORE-0014.
    LeaseLost,
    /// The expected seq is not the last one.
    Conflict,
}

/// A database operation and the answer the model expects from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Claim {
        actor: u8,
        task: u8,
        epoch: u8,
    },
    Renew {
        actor: u8,
        task: u8,
        epoch: u8,
        kept: bool,
    },
    Release {
        actor: u8,
        task: u8,
        epoch: u8,
    },
    Append {
        task: u8,
        epoch: u8,
        after: u8,
        events: Vec<Ev>,
        outcome: Result<(), Refusal>,
    },
    Expire {
        task: u8,
    },
}

/// What a task's journal says so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    pub started: bool,
    pub requested: bool,
    pub resolution: Option<Resolution>,
    pub approves: u8,
    pub tool_started: bool,
    pub tool_completed: bool,
    pub ended: Option<Ev>,
}

pub fn fold(journal: &[Entry]) -> Folded {
    let mut f = Folded::default();
    for e in journal {
        match e.ev {
            Ev::Submitted => {}
            Ev::Started => f.started = true,
            Ev::ApprovalRequested => f.requested = true,
            Ev::ApprovalVoted { approve, .. } => f.approves += u8::from(approve),
            Ev::ApprovalResolved(r) => f.resolution = Some(r),
            Ev::ToolStarted => f.tool_started = true,
            Ev::ToolCompleted => f.tool_completed = true,
            Ev::Succeeded | Ev::Failed | Ev::Cancelled => f.ended = Some(e.ev),
        }
    }
    f
}

impl Folded {
    pub fn pending_approval(&self) -> bool {
        self.requested && self.resolution.is_none()
    }
}

/// The task status the store projects from a journal (`amas_types::TaskStatus::as_str`).
pub fn status(journal: &[Entry]) -> &'static str {
    let f = fold(journal);
    match f.ended {
        Some(Ev::Succeeded) => "succeeded",
        Some(Ev::Failed) => "failed",
        Some(_) => "cancelled",
        None if f.pending_approval() => "waiting_approval",
        None if f.started => "running",
        None => "queued",
    }
}

mod transitions;

impl Model for Protocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let task = TaskRow {
            journal: vec![Entry {
                ev: Ev::Submitted,
                by: None,
            }],
            lease: None,
            votes: Vec::new(),
            cancel: false,
            cancel_asked: false,
            deadline_passed: false,
            tool_runs: Vec::new(),
        };
        vec![State {
            tasks: vec![task; usize::from(self.tasks)],
            actors: vec![Actor { run: None }; usize::from(self.workers) + 1],
            faults_left: self.faults,
            stale_accepted: false,
            lease_lost_seen: false,
        }]
    }

    fn actions(&self, _s: &State, actions: &mut Vec<Action>) {
        for w in 0..self.workers {
            actions.push(Action::Claim(w));
            actions.push(Action::ApplyCancel(w));
        }
        for a in 0..=self.workers {
            actions.extend([Action::Step(a), Action::Renew(a), Action::Crash(a)]);
        }
        for t in 0..self.tasks {
            actions.extend([
                Action::Expire(t),
                Action::ApiClaim(t),
                Action::Cancel(t),
                Action::Deadline(t),
            ]);
            if t < self.approvals {
                for approver in 0..2 {
                    for approve in [true, false] {
                        actions.push(Action::Vote {
                            task: t,
                            approver,
                            approve,
                        });
                    }
                }
            }
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        self.transition(s, action)
            .map(|(n, _)| n)
            .filter(|n| n != s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("one writer per epoch", |_, s: &State| {
                s.tasks.iter().all(one_writer_per_epoch)
            }),
            Property::always("stale appends are refused", |_, s: &State| {
                !s.stale_accepted
            }),
            Property::always("nothing is journaled after a cancel", |_, s: &State| {
                s.tasks.iter().all(nothing_after_the_end)
            }),
            Property::always(
                "a tool runs only after its start commits",
                |_, s: &State| s.tasks.iter().all(runs_under_a_committed_start),
            ),
            Property::always("a tool runs at most once", |_, s: &State| {
                s.tasks.iter().all(|t| t.tool_runs.len() <= 1)
            }),
            Property::always(
                "an approval is decided at most once",
                |m: &Protocol, s: &State| s.tasks.iter().all(|t| decided_once(m, t)),
            ),
            Property::always("no deadlock", |m: &Protocol, s: &State| {
                Protocol::all_ended(s) || m.progress(s)
            }),
            Property::eventually("every task ends", |_, s: &State| Protocol::all_ended(s)),
            Property::sometimes("a stale append is refused", |_, s: &State| {
                s.lease_lost_seen
            }),
            Property::sometimes("a task taken over succeeds", |_, s: &State| {
                s.tasks.iter().any(|t| {
                    t.journal
                        .last()
                        .is_some_and(|e| e.ev == Ev::Succeeded && e.by.is_some_and(|b| b.1 >= 2))
                })
            }),
            Property::sometimes(
                "the API cancels a task nobody runs",
                |m: &Protocol, s: &State| {
                    s.tasks.iter().any(|t| {
                        t.journal
                            .iter()
                            .any(|e| e.ev == Ev::Cancelled && e.by.is_some_and(|b| b.0 == m.api()))
                    })
                },
            ),
        ]
    }
}

/// Every fenced append of one epoch came from one actor.
fn one_writer_per_epoch(task: &TaskRow) -> bool {
    let writers: Vec<(u8, u8)> = task.journal.iter().filter_map(|e| e.by).collect();
    writers
        .iter()
        .all(|&(a, e)| writers.iter().all(|&(b, f)| e != f || a == b))
}

/// Nothing follows a task's end (a cancel, or any other) in its journal: no `tool_started`
/// after a cancel.
fn nothing_after_the_end(task: &TaskRow) -> bool {
    task.journal
        .iter()
        .position(|e| e.ev.ends_task())
        .is_none_or(|i| i + 1 == task.journal.len())
}

/// Every execution of the tool ran under a committed `tool_started`, which therefore precedes
/// any cancel: a task cancelled before its tool started never runs it.
fn runs_under_a_committed_start(task: &TaskRow) -> bool {
    task.tool_runs.iter().all(|&at| {
        task.journal
            .get(usize::from(at))
            .is_some_and(|e| e.ev == Ev::ToolStarted)
    })
}

/// At most one resolution, an approval only with enough approve votes and no denial before it.
fn decided_once(m: &Protocol, task: &TaskRow) -> bool {
    let resolutions: Vec<usize> = task
        .journal
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.ev, Ev::ApprovalResolved(_)))
        .map(|(i, _)| i)
        .collect();
    match resolutions.as_slice() {
        [] => true,
        [i] => {
            let f = fold(&task.journal[..*i]);
            let denied = task.journal[..*i]
                .iter()
                .any(|e| matches!(e.ev, Ev::ApprovalVoted { approve: false, .. }));
            match task.journal[*i].ev {
                // The deciding vote is journaled just before the resolution.
                Ev::ApprovalResolved(Resolution::Approved) => f.approves >= m.required && !denied,
                _ => true,
            }
        }
        _ => false,
    }
}

/// The system's own progress for `actor` and `task`: the actions of workers and the API
/// process, the lease clock running out on a holder that stopped, and approval deadlines
/// passing; not faults, votes or cancels, which nobody has to send.
fn progress_actions(actor: u8, task: u8) -> [Action; 7] {
    [
        Action::Step(actor),
        Action::ApplyCancel(actor),
        Action::Renew(actor),
        Action::Claim(actor),
        Action::ApiClaim(task),
        Action::Expire(task),
        Action::Deadline(task),
    ]
}

impl Protocol {
    /// Whether some progress action changes `s` without spending a fault.
    pub fn progress(&self, s: &State) -> bool {
        (0..=self.workers).any(|actor| {
            (0..self.tasks).any(|task| {
                progress_actions(actor, task).into_iter().any(|a| {
                    self.transition(s, a)
                        .is_some_and(|(n, _)| n != *s && n.faults_left == s.faults_left)
                })
            })
        })
    }
}

/// The same state with the workers in a canonical order (not the API process, which plays
/// another part): workers are interchangeable, so the checker visits one state of each class.
pub fn representative(s: &State) -> State {
    let workers = s.actors.len() - 1;
    let key = |w: usize| {
        let mine = |a: u8| usize::from(a) == w;
        let traces: Vec<(bool, Vec<bool>)> = s
            .tasks
            .iter()
            .map(|t| {
                (
                    t.lease.is_some_and(|l| mine(l.holder)),
                    t.journal
                        .iter()
                        .map(|e| e.by.is_some_and(|b| mine(b.0)))
                        .collect(),
                )
            })
            .collect();
        (s.actors[w].run, traces)
    };
    let mut order: Vec<usize> = (0..workers).collect();
    order.sort_by_cached_key(|&w| key(w));
    let mut new_index: Vec<u8> = (0..=workers)
        .map(|a| u8::try_from(a).unwrap_or(u8::MAX))
        .collect();
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = u8::try_from(new).unwrap_or(u8::MAX);
    }
    let mut out = s.clone();
    for (new, &old) in order.iter().enumerate() {
        out.actors[new] = s.actors[old];
    }
    for t in &mut out.tasks {
        if let Some(l) = &mut t.lease {
            l.holder = new_index[usize::from(l.holder)];
        }
        for e in &mut t.journal {
            if let Some(by) = &mut e.by {
                by.0 = new_index[usize::from(by.0)];
            }
        }
    }
    out
}
