//! Parking: a task whose steps all wait for approval leaves its slot instead of holding it for
//! as long as the approval takes (an hour, say). Its run ends as [`RunEnd::Parked`]; the task
//! runs again, from its journal like after a restart, when a vote for it arrives or its
//! earliest approval deadline passes, and its step gets back to the approval and takes the
//! vote (or expires the request).
//!
//! In one process (SQLite) this file keeps the parked tasks and their deadlines, a timer wakes
//! them, and a vote wakes its task after posting itself in the approvals inbox. On PostgreSQL
//! the worker releases the lease with the task marked parked until the deadline
//! (`claims.rs`); a pending command (`commands.rs`) or the deadline makes it claimable again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, oneshot};
use tracing::debug;

use amas_store::StoreError;
use amas_types::{Approval, ApprovalStatus, TaskId, TaskStatus};

use super::{Mode, Place, Running, Scheduler};
use crate::RuntimeError;
use crate::approvals::{Ballot, Vote};
use crate::executor::RunEnd;

/// How long a vote waits for the step it is for to take it (a slot to free up, a task to
/// resume), and then for the step's answer.
pub(super) const VOTE_PATIENCE: Duration = Duration::from_secs(10);

/// Added to a deadline before the task is woken for it: the step judges expiry on its own
/// clock, so it must find the deadline passed when it runs again.
const DEADLINE_SLACK: chrono::TimeDelta = chrono::TimeDelta::milliseconds(250);

/// Until when a task waiting on approvals with the earliest deadline `until` stays parked.
pub(super) fn parked_until(until: DateTime<Utc>) -> DateTime<Utc> {
    until + DEADLINE_SLACK
}

/// Parked tasks of this process's own queue (one process), touched only under the
/// scheduler's `running` lock, so a wake never falls between a run's end and its parking.
#[derive(Default)]
pub(super) struct Parking {
    state: Mutex<ParkState>,
    /// A task was parked: the timer looks at the deadlines again.
    changed: Notify,
}

#[derive(Default)]
struct ParkState {
    /// Parked tasks: when their deadline wakes them, and their place in the queue then.
    parked: HashMap<TaskId, (DateTime<Utc>, Place)>,
    /// Running tasks a vote was posted for: if the run parks, it is queued again at once.
    woken: HashSet<TaskId>,
}

impl Parking {
    fn lock(&self) -> MutexGuard<'_, ParkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Scheduler {
    /// Starts what wakes parked tasks: the deadline timer of this process's own queue, and the
    /// relay of commands from other processes when there is one.
    pub(super) fn start_waking(self: &Arc<Self>) {
        if matches!(self.mode(), Mode::Local) {
            let scheduler = Arc::clone(self);
            amas_telemetry::tasks::spawn("runtime.parking", async move {
                scheduler.deadline_loop().await;
            });
        }
        if let Some(relay) = self.relay.get() {
            self.start_relay(Arc::clone(relay));
        }
    }

    /// Wakes the parked tasks whose deadline passed.
    async fn deadline_loop(self: Arc<Self>) {
        let mut stopping = amas_telemetry::tasks::global().stopping();
        loop {
            let next = self.parking.lock().parked.values().map(|(at, _)| *at).min();
            let wait = next.map_or(Duration::from_secs(3600), |at| {
                (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.parking.changed.notified() => continue,
                () = stopping.wait() => break,
            }
            let now = Utc::now();
            let due: Vec<TaskId> = self
                .parking
                .lock()
                .parked
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(task, _)| *task)
                .collect();
            for task in due {
                debug!(task.id = %task, "Approval deadline passed; resuming the parked task.");
                self.wake(task).await;
            }
        }
    }

    /// Wakes `task` in this process's own queue: a parked task is queued now; a running one
    /// is queued again as soon as its run parks. Does nothing in other modes (the database
    /// wakes tasks there).
    pub(super) async fn wake(&self, task: TaskId) {
        if !matches!(self.mode(), Mode::Local) {
            return;
        }
        let running = self.running.lock().await;
        let mut parking = self.parking.lock();
        if running.contains_key(&task) {
            parking.woken.insert(task);
        } else if let Some((_, place)) = parking.parked.remove(&task) {
            drop(parking);
            drop(running);
            self.requeue(task, &place);
        }
    }

    /// Queues a task admitted before (not bounded by the queue's limits, like recovery).
    fn requeue(&self, task: TaskId, place: &Place) {
        self.enqueue_reserved(task, &place.tenant, place.priority, false);
    }

    /// After a run, under the `running` lock it was removed with: parks the task, or queues it
    /// again when a vote came for it meanwhile, and gives the votes left for this run their
    /// answer (dropped: each voter looks at the request again).
    pub(super) fn after_run(
        &self,
        task: TaskId,
        place: Place,
        end: &RunEnd,
        running: tokio::sync::MutexGuard<'_, HashMap<TaskId, Running>>,
    ) {
        let woken = self.parking.lock().woken.remove(&task);
        match (self.mode(), end) {
            (Mode::Local, RunEnd::Parked { until, approvals }) => {
                self.inbox.drop_task(task, approvals);
                if woken || self.inbox.has_any(approvals) {
                    drop(running);
                    self.requeue(task, &place);
                } else {
                    self.parking
                        .lock()
                        .parked
                        .insert(task, (parked_until(*until), place));
                    self.parking.changed.notify_one();
                }
            }
            // On PostgreSQL the votes are commands in the database: whoever runs the task next
            // is handed them again.
            _ => self.inbox.drop_task(task, &[]),
        }
    }

    /// After `task` was cancelled (or found ended, `status`): nothing wakes it any more, the
    /// votes waiting for it are answered, and so are its commands from other processes.
    pub(super) async fn cancelled(&self, task: TaskId, status: TaskStatus) {
        {
            let _running = self.running.lock().await;
            let mut parking = self.parking.lock();
            parking.parked.remove(&task);
            parking.woken.remove(&task);
        }
        self.inbox.drop_task(task, &[]);
        if let Some(relay) = self.relay.get() {
            relay.ended(task, status).await;
        }
    }

    /// Hands `ballot` (checked against `approval` as stored) to the step waiting on it and
    /// returns the approval as the vote left it, or why the vote was refused.
    ///
    /// # Errors
    /// The refusals of the step (the request as it stands when the vote is taken),
    /// [`RuntimeError::ApprovalSettled`] or the task's end when something else settled it
    /// first, [`RuntimeError::ApprovalUnavailable`] when no step took the vote in time (it
    /// then never counts, except across processes: `commands.rs`), or a store error.
    pub(crate) async fn deliver_vote(
        &self,
        approval: &Approval,
        ballot: Ballot,
    ) -> Result<Approval, RuntimeError> {
        if let Some(relay) = self.relay.get() {
            return self.vote_elsewhere(relay, approval, ballot).await;
        }
        let (reply, mut answer) = oneshot::channel();
        let ticket = self
            .inbox
            .post(approval.task_id, &approval.id, Vote::of(ballot, reply));
        self.wake(approval.task_id).await;
        match tokio::time::timeout(VOTE_PATIENCE, &mut answer).await {
            Ok(Ok(result)) => return result,
            // Dropped untaken: the task ended or settled the request another way.
            Ok(Err(_)) => {}
            Err(_) => {
                if !self.inbox.withdraw(&approval.id, ticket) {
                    // A step took it just now: its answer follows its journal append.
                    if let Ok(Ok(result)) = tokio::time::timeout(VOTE_PATIENCE, answer).await {
                        return result;
                    }
                }
            }
        }
        self.unanswered(approval).await
    }

    /// Why a vote on `approval` got no answer from a step: the request was settled, the task
    /// ended, or it could not be reached in time.
    pub(super) async fn unanswered(&self, approval: &Approval) -> Result<Approval, RuntimeError> {
        let store = self.journal.store();
        if let Some(now) = store.approval(&approval.id).await?
            && now.status != ApprovalStatus::Pending
        {
            return Err(RuntimeError::ApprovalSettled {
                id: now.id.to_string(),
                status: now.status.as_str(),
            });
        }
        if let Some(summary) = store.summary(approval.task_id).await?
            && summary.status.is_terminal()
        {
            return Err(RuntimeError::Store(StoreError::TaskEnded {
                task: approval.task_id,
                status: summary.status,
            }));
        }
        Err(RuntimeError::ApprovalUnavailable {
            id: approval.id.to_string(),
        })
    }
}
