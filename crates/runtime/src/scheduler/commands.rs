//! Votes and cancels across processes (PostgreSQL). The API process that receives one checks
//! it as in one process, then records it as a command (`task_commands`) and waits (bounded)
//! for its outcome; only the worker holding the task's lease applies it, through the same
//! paths as in one process (the inbox a step takes votes from; the cancel switch and a fenced
//! append), and records the outcome. A command for a task nobody runs makes it claimable
//! (parked or not), and the worker that claims it applies the command before anything else.
//! A cancel of a task nobody holds is journaled by the API process itself under a short claim
//! of the task's lease, so only a lease holder ever writes a task's journal.
//!
//! Signals (`pg_notify` on `amas_commands`) make this prompt; a poll every third of the lease
//! lifetime makes it sure: a lost signal costs at most one poll. A vote counts at most once
//! whatever is delivered twice: the step checks it against the request as its journal has it
//! (one vote per approver), and an outcome is recorded only once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use amas_store::{
    Command, CommandId, CommandKind, CommandListener, CommandSignal, Fence, StoreError,
    TaskCommands, TaskJournal, TaskLeases,
};
use amas_types::{Approval, ApprovalId, ApprovalStatus, TaskId, TaskState, TaskStatus};

use super::parking::VOTE_PATIENCE;
use super::{Mode, Scheduler, cancel_events};
use crate::RuntimeError;
use crate::approvals::{Ballot, Vote};

/// How often a process waiting on a command reads its outcome when no signal comes.
const OUTCOME_POLL: Duration = Duration::from_millis(250);

/// How long a cancel waits for the worker holding the task beyond the lease's lifetime (after
/// which a dead worker's lease has expired and the task can be claimed).
const CANCEL_PATIENCE: Duration = Duration::from_secs(5);

/// What a process needs to relay commands: the commands table, leases for its short claims,
/// and the commands it has handed to a step and not yet settled.
pub(super) struct Relay {
    commands: Arc<dyn TaskCommands>,
    leases: Arc<dyn TaskLeases>,
    /// This process's name when it holds a task's lease for a moment (a cancel).
    name: String,
    /// The lease lifetime: the poll period is a third of it.
    ttl: Duration,
    /// Commands handed to a step here, by the generation that handed them.
    in_flight: Mutex<HashMap<CommandId, u64>>,
    generations: AtomicU64,
    /// Signalled on every recorded outcome (any process's): waiters read theirs again.
    done: Notify,
}

/// A vote as recorded: the approval and the checked ballot.
#[derive(Serialize, Deserialize)]
struct VoteBody {
    approval: ApprovalId,
    #[serde(flatten)]
    ballot: Ballot,
}

#[derive(Serialize, Deserialize)]
struct CancelBody {
    reason: String,
}

/// What became of a command, as recorded for the process waiting on it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Outcome {
    /// The vote is journaled; the approval as it then stood.
    Counted {
        approval: Box<Approval>,
    },
    Settled {
        approval: String,
        status: ApprovalStatus,
    },
    SelfApproval {
        approval: String,
    },
    NotAnApprover {
        roles: String,
    },
    AlreadyVoted {
        approval: String,
    },
    TooLate {
        approval: String,
        expires_at: DateTime<Utc>,
    },
    NotFound {
        approval: String,
    },
    /// The task ended (cancelled, or otherwise) before the command took effect, or by it.
    Ended {
        task: TaskId,
        status: TaskStatus,
    },
}

impl Outcome {
    /// The outcome of a vote the step answered; `None` when the answer is not final (the
    /// worker lost the lease, say): the command stays pending for the next holder.
    fn of_vote(result: Result<Approval, RuntimeError>) -> Option<Self> {
        Some(match result {
            Ok(approval) => Self::Counted {
                approval: Box::new(approval),
            },
            Err(RuntimeError::ApprovalSettled { id, status }) => Self::Settled {
                status: ApprovalStatus::parse(status).unwrap_or(ApprovalStatus::Denied),
                approval: id,
            },
            Err(RuntimeError::SelfApproval { id }) => Self::SelfApproval { approval: id },
            Err(RuntimeError::NotAnApprover { roles }) => Self::NotAnApprover { roles },
            Err(RuntimeError::AlreadyVoted { id }) => Self::AlreadyVoted { approval: id },
            Err(RuntimeError::VoteTooLate { id, expires_at }) => Self::TooLate {
                approval: id,
                expires_at,
            },
            Err(RuntimeError::ApprovalNotFound(id)) => Self::NotFound { approval: id },
            Err(RuntimeError::Store(StoreError::TaskEnded { task, status })) => {
                Self::Ended { task, status }
            }
            Err(_) => return None,
        })
    }

    /// The voter's answer.
    fn into_vote(self) -> Result<Approval, RuntimeError> {
        match self {
            Self::Counted { approval } => Ok(*approval),
            Self::Settled { approval, status } => Err(RuntimeError::ApprovalSettled {
                id: approval,
                status: status.as_str(),
            }),
            Self::SelfApproval { approval } => Err(RuntimeError::SelfApproval { id: approval }),
            Self::NotAnApprover { roles } => Err(RuntimeError::NotAnApprover { roles }),
            Self::AlreadyVoted { approval } => Err(RuntimeError::AlreadyVoted { id: approval }),
            Self::TooLate {
                approval,
                expires_at,
            } => Err(RuntimeError::VoteTooLate {
                id: approval,
                expires_at,
            }),
            Self::NotFound { approval } => Err(RuntimeError::ApprovalNotFound(approval)),
            Self::Ended { task, status } => {
                Err(RuntimeError::Store(StoreError::TaskEnded { task, status }))
            }
        }
    }

    fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Relay {
    /// Takes `id` for this process unless it is handed to a step here already; the
    /// generation to give it back with.
    fn take(&self, id: CommandId) -> Option<u64> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if in_flight.contains_key(&id) {
            return None;
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        in_flight.insert(id, generation);
        Some(generation)
    }

    /// Gives `id` back (settled, or to be handed again by a later poll).
    fn give_back(&self, id: CommandId, generation: u64) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if in_flight.get(&id) == Some(&generation) {
            in_flight.remove(&id);
        }
    }

    async fn complete(&self, id: CommandId, outcome: &Outcome) {
        if let Err(e) = self.commands.complete(id, &outcome.to_value()).await {
            // The command stays pending: it is applied again, and counted at most once.
            warn!(command.id = %id, error.code = e.code(), error.message = %e, "Recording a command's outcome failed.");
        }
    }

    /// Answers every command of `task` still pending: the task has ended.
    pub(super) async fn ended(&self, task: TaskId, status: TaskStatus) {
        let outcome = Outcome::Ended { task, status }.to_value();
        if let Err(e) = self.commands.complete_task(task, &outcome).await {
            warn!(task.id = %task, error.code = e.code(), error.message = %e, "Answering the commands of an ended task failed.");
        }
    }

    /// The outcome of `id`, waiting up to `patience` for it.
    async fn wait(&self, id: CommandId, patience: Duration) -> Result<Option<Outcome>, StoreError> {
        let deadline = Instant::now() + patience;
        loop {
            let signalled = self.done.notified();
            tokio::pin!(signalled);
            signalled.as_mut().enable();
            if let Some(value) = self.commands.outcome(id).await? {
                return Ok(Some(serde_json::from_value(value).map_err(|e| {
                    StoreError::Corrupt(format!("command {id} outcome: {e}"))
                })?));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::select! {
                () = signalled => {}
                () = tokio::time::sleep(OUTCOME_POLL.min(deadline - now)) => {}
            }
        }
    }
}

/// The outcome for a vote its step never answered: `Ended` when the task has ended, else
/// none (the command stays pending for whoever runs the task next).
async fn ended_outcome(store: &Arc<dyn TaskJournal>, task: TaskId) -> Option<Outcome> {
    match store.summary(task).await {
        Ok(Some(s)) if s.status.is_terminal() => Some(Outcome::Ended {
            task,
            status: s.status,
        }),
        _ => None,
    }
}

impl Scheduler {
    /// Relays votes and cancels between this process and the others sharing the database
    /// (PostgreSQL): the ones it receives for tasks run elsewhere go through `commands`; the
    /// ones for the tasks it runs come back from there. `ttl` is the lease lifetime (the
    /// fallback poll runs every third of it). Call before [`Scheduler::start`], once.
    pub fn relay_commands(
        &self,
        commands: Arc<dyn TaskCommands>,
        leases: Arc<dyn TaskLeases>,
        ttl: Duration,
    ) {
        let _ = self.relay.set(Arc::new(Relay {
            commands,
            leases,
            name: super::claims::worker_name(),
            ttl,
            in_flight: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
            done: Notify::new(),
        }));
    }

    pub(super) fn start_relay(self: &Arc<Self>, relay: Arc<Relay>) {
        let scheduler = Arc::clone(self);
        amas_telemetry::tasks::spawn("runtime.commands", async move {
            scheduler.relay_loop(relay).await;
        });
    }

    /// Listens for signals and polls: commands for the tasks running here are applied,
    /// commands for tasks parked or queued nudge the claimer, outcomes wake their waiters.
    async fn relay_loop(self: Arc<Self>, relay: Arc<Relay>) {
        let mut stopping = amas_telemetry::tasks::global().stopping();
        let mut listener: Option<CommandListener> = None;
        let mut poll = tokio::time::interval((relay.ttl / 3).max(Duration::from_millis(100)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if listener.is_none() {
                match relay.commands.listen().await {
                    Ok(l) => {
                        listener = Some(l);
                        // Whatever was signalled before listening started.
                        self.poll_commands(&relay).await;
                    }
                    Err(e) => {
                        warn!(error.code = e.code(), error.message = %e, "Listening for task commands failed; polling until it works.");
                    }
                }
            }
            let event = tokio::select! {
                signal = next_signal(listener.as_mut()) => Some(signal),
                _ = poll.tick() => None,
                () = stopping.wait() => break,
            };
            match event {
                Some(Ok(CommandSignal::Recorded(task))) => self.on_recorded(&relay, task).await,
                Some(Ok(CommandSignal::Done(_))) => relay.done.notify_waiters(),
                Some(Ok(CommandSignal::Missed)) | None => self.poll_commands(&relay).await,
                Some(Err(e)) => {
                    warn!(error.code = e.code(), error.message = %e, "Task command signals lost; reconnecting.");
                    listener = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The fallback: applies the pending commands of every task running here, and wakes the
    /// waiters (their outcome may have come without a signal).
    async fn poll_commands(&self, relay: &Arc<Relay>) {
        let here: Vec<TaskId> = self.running.lock().await.keys().copied().collect();
        self.apply_commands(relay, &here).await;
        relay.done.notify_waiters();
    }

    async fn on_recorded(&self, relay: &Arc<Relay>, task: TaskId) {
        if self.running.lock().await.contains_key(&task) {
            self.apply_commands(relay, &[task]).await;
        } else if matches!(self.mode(), Mode::Claims(_)) {
            // Parked or queued here or elsewhere: the command made it claimable.
            let _ = self.queue_tx.send(task);
        }
    }

    /// Before a run under a lease: the commands recorded while nobody ran the task (a cancel
    /// is journaled before any step runs).
    pub(super) async fn before_run(&self, task: TaskId) {
        if let Some(relay) = self.relay.get() {
            self.apply_commands(relay, &[task]).await;
        }
    }

    /// Applies the pending commands of `tasks` (which run here), oldest first.
    async fn apply_commands(&self, relay: &Arc<Relay>, tasks: &[TaskId]) {
        if tasks.is_empty() {
            return;
        }
        let pending = match relay.commands.pending(tasks).await {
            Ok(pending) => pending,
            Err(e) => {
                warn!(error.code = e.code(), error.message = %e, "Reading task commands failed; retrying at the next poll.");
                return;
            }
        };
        for command in pending {
            let Some(generation) = relay.take(command.id) else {
                continue;
            };
            debug!(task.id = %command.task, command.id = %command.id, command.kind = command.kind.as_str(), "Applying a task command.");
            match command.kind {
                CommandKind::Cancel => self.apply_cancel(relay, command, generation).await,
                CommandKind::Vote => self.apply_vote(relay, command, generation).await,
            }
        }
    }

    async fn apply_cancel(&self, relay: &Arc<Relay>, command: Command, generation: u64) {
        let reason = serde_json::from_value::<CancelBody>(command.body)
            .map_or_else(|_| "cancelled".to_owned(), |b| b.reason);
        if self.running.lock().await.contains_key(&command.task) {
            match self.cancel_here(command.task, &reason).await {
                // Answers this command and every other one of the task.
                Ok(state) => self.cancelled(command.task, state.status).await,
                Err(e) => {
                    warn!(task.id = %command.task, error.code = e.code(), error.message = %e, "Applying a cancel failed; retrying at the next poll.");
                }
            }
        }
        relay.give_back(command.id, generation);
    }

    /// Hands a recorded vote to the step waiting on its approval (through the inbox) and
    /// records the step's answer once it is final.
    async fn apply_vote(&self, relay: &Arc<Relay>, command: Command, generation: u64) {
        let (id, task) = (command.id, command.task);
        let Ok(VoteBody { approval, ballot }) = serde_json::from_value(command.body) else {
            relay
                .complete(
                    id,
                    &Outcome::NotFound {
                        approval: String::new(),
                    },
                )
                .await;
            relay.give_back(id, generation);
            return;
        };
        let store = Arc::clone(self.journal.store());
        // This process is the task's writer: the projection is current for it.
        let refused = match store.approval(&approval).await {
            Ok(Some(a)) if a.task_id != task => Some(Outcome::NotFound {
                approval: approval.to_string(),
            }),
            Ok(Some(a)) if a.status != ApprovalStatus::Pending => Some(Outcome::Settled {
                approval: approval.to_string(),
                status: a.status,
            }),
            Ok(Some(_)) => None,
            Ok(None) => Some(Outcome::NotFound {
                approval: approval.to_string(),
            }),
            Err(e) => {
                warn!(task.id = %task, error.code = e.code(), error.message = %e, "Reading an approval failed; retrying the vote at the next poll.");
                relay.give_back(id, generation);
                return;
            }
        };
        if let Some(refused) = refused {
            relay.complete(id, &refused).await;
            relay.give_back(id, generation);
            return;
        }
        let (reply, answer) = oneshot::channel();
        self.inbox.post(task, &approval, Vote::of(ballot, reply));
        let relay = Arc::clone(relay);
        amas_telemetry::tasks::spawn("runtime.vote_outcome", async move {
            let outcome = match answer.await {
                Ok(result) => Outcome::of_vote(result),
                // Not taken in this run (it parked or stopped first).
                Err(_) => ended_outcome(&store, task).await,
            };
            if let Some(outcome) = outcome {
                relay.complete(id, &outcome).await;
            }
            relay.give_back(id, generation);
        });
    }

    /// A vote for a task this process may not run: recorded, then answered by the worker
    /// that applies it.
    pub(super) async fn vote_elsewhere(
        &self,
        relay: &Arc<Relay>,
        approval: &Approval,
        ballot: Ballot,
    ) -> Result<Approval, RuntimeError> {
        let body = serde_json::to_value(VoteBody {
            approval: approval.id.clone(),
            ballot,
        })
        .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
        let id = relay
            .commands
            .record(approval.task_id, CommandKind::Vote, &body)
            .await?;
        match relay.wait(id, VOTE_PATIENCE).await? {
            Some(outcome) => outcome.into_vote(),
            // Still recorded: it counts once a worker takes it (a retry says so).
            None => self.unanswered(approval).await,
        }
    }

    /// A cancel of a task this process does not run: journaled here under a short claim of
    /// the task's lease when nobody holds it, else recorded for the worker holding it, and
    /// waited for (the lease's lifetime and a little more: a dead worker's lease runs out).
    pub(super) async fn cancel_elsewhere(
        &self,
        relay: &Arc<Relay>,
        task: TaskId,
        reason: String,
    ) -> Result<TaskState, RuntimeError> {
        let deadline = Instant::now() + relay.ttl + CANCEL_PATIENCE;
        let store = Arc::clone(self.journal.store());
        let mut command = None;
        loop {
            let summary = store
                .summary(task)
                .await?
                .ok_or(RuntimeError::NotFound(task))?;
            if summary.status.is_terminal() {
                if let Some(id) = command {
                    let ended = Outcome::Ended {
                        task,
                        status: summary.status,
                    };
                    relay.complete(id, &ended).await;
                }
                return self.stored_state(task).await;
            }
            if let Some(lease) = relay
                .leases
                .claim_task(&relay.name, task, relay.ttl)
                .await?
            {
                let appended = self.cancel_under(Some(lease.fence()), task, &reason).await;
                if let Err(e) = relay.leases.release(&relay.name, &[lease]).await {
                    warn!(task.id = %task, error.code = e.code(), error.message = %e, "Releasing a cancel's lease failed; it expires instead.");
                }
                match appended {
                    Ok(()) | Err(StoreError::TaskEnded { .. }) => {}
                    // Lost the lease meanwhile: look again.
                    Err(StoreError::LeaseLost { .. } | StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
                let state = self.stored_state(task).await?;
                info!(task.id = %task, "Task cancelled by this process under a short lease (nobody ran it).");
                self.cancelled(task, state.status).await;
                return Ok(state);
            }
            let id = match command {
                Some(id) => id,
                None => {
                    let body = serde_json::to_value(CancelBody {
                        reason: reason.clone(),
                    })
                    .map_err(|e| StoreError::InvalidAppend(e.to_string()))?;
                    let id = relay
                        .commands
                        .record(task, CommandKind::Cancel, &body)
                        .await?;
                    command = Some(id);
                    id
                }
            };
            if Instant::now() >= deadline {
                return Err(RuntimeError::CancelPending { task });
            }
            // Answered or not, the task's state says whether it ended.
            relay.wait(id, OUTCOME_POLL).await?;
        }
    }

    /// Journals the cancel of `task` as the store has it, under `fence` (a lease this process
    /// claimed for this), or without one (a run whose lease was lost while cancelling: the
    /// cancel goes after whatever the store holds). An unknown or ended task is left as is.
    pub(super) async fn cancel_under(
        &self,
        fence: Option<Fence>,
        task: TaskId,
        reason: &str,
    ) -> Result<(), StoreError> {
        let Some(state) = self.stored(task).await? else {
            return Ok(());
        };
        if state.status.is_terminal() {
            return Ok(());
        }
        self.journal
            .append_fenced(task, state.last_seq, &cancel_events(&state, reason), fence)
            .await
            .map(drop)
    }

    /// The task as the store has it (another process may have written it).
    async fn stored_state(&self, task: TaskId) -> Result<TaskState, RuntimeError> {
        self.stored(task).await?.ok_or(RuntimeError::NotFound(task))
    }

    /// The same, `None` for a task the store does not have.
    async fn stored(&self, task: TaskId) -> Result<Option<TaskState>, StoreError> {
        let records = self.journal.store().read(task, 0).await?;
        Ok(TaskState::fold(&records))
    }
}

/// The next signal, or never without a listener (the poll goes on).
async fn next_signal(listener: Option<&mut CommandListener>) -> Result<CommandSignal, StoreError> {
    match listener {
        Some(l) => l.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal a step can give a vote survives the trip through the database as the
    /// same error (the API process answers with the worker's code); a non-final answer is not
    /// recorded, so the command stays pending.
    #[test]
    fn outcomes_round_trip_as_the_same_refusals() {
        let task = TaskId::new();
        let refusals = [
            RuntimeError::ApprovalSettled {
                id: "a".into(),
                status: "approved",
            },
            RuntimeError::SelfApproval { id: "a".into() },
            RuntimeError::NotAnApprover {
                roles: "approver".into(),
            },
            RuntimeError::AlreadyVoted { id: "a".into() },
            RuntimeError::VoteTooLate {
                id: "a".into(),
                expires_at: Utc::now(),
            },
            RuntimeError::ApprovalNotFound("a".into()),
            RuntimeError::Store(StoreError::TaskEnded {
                task,
                status: TaskStatus::Cancelled,
            }),
        ];
        for refusal in refusals {
            let code = refusal.code();
            let outcome = Outcome::of_vote(Err(refusal)).expect("final");
            let back: Outcome = serde_json::from_value(outcome.to_value()).expect("decodes");
            let answer = back.into_vote().expect_err("a refusal");
            assert_eq!(answer.code(), code);
        }
        assert!(
            Outcome::of_vote(Err(RuntimeError::ApprovalUnavailable { id: "a".into() })).is_none(),
            "not final: the next lease holder applies the vote"
        );
    }
}
