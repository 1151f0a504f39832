//! The scheduling service: the queue of runnable tasks and the slots that run them. Admission
//! reserves a place in the queue before it journals a submission (`limits.rs`: the global and
//! per-tenant limits) and enqueues the task once it is durable; recovery re-queues every
//! unfinished task at start-up; the dispatcher (`dispatch.rs`) hands the task the fair queue
//! picks (`queue.rs`: fair across tenants by weight, priority within a tenant, per-tenant caps)
//! to step execution ([`Executor`]) when a slot frees up, at most
//! `runtime.max_concurrent_tasks` at once. It also owns what only the running process knows
//! about a task (its writer and its cancel switch), so cancelling and draining live here.
//!
//! On PostgreSQL with several processes ([`Scheduler::claim_from`], [`Scheduler::run_elsewhere`])
//! the queue is the database: workers claim runnable tasks under leases (`claims.rs`, fair
//! across tenants in the claim itself), admission counts there, and an API-only process runs
//! none. Every process refreshes the queue metrics (`backlog.rs`).
//!
//! A task whose steps all wait for approval is parked (`parking.rs`): it leaves its slot and
//! runs again when a vote for it arrives or its deadline passes. Votes and cancels reach the
//! process that runs the task: in this process through the approvals inbox, across
//! processes through the database's commands (`commands.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError};

use tokio::sync::{Mutex, Notify, Semaphore, mpsc, watch};
use tracing::{error, info, warn};

use amas_config::SchedulingConfig;
use amas_store::{Lease, StoreError, TaskQueue};
use amas_telemetry::Metrics;
use amas_types::{ApprovalStatus, JournalEvent, Priority, TaskId, TaskState, TenantId};

use crate::RuntimeError;
use crate::approvals::Inbox;
use crate::executor::{Executor, RunEnd};
use crate::journal::Journal;
use crate::writer::{HeldLease, TaskWriter};

mod backlog;
mod claims;
mod commands;
mod dispatch;
mod limits;
mod parking;
mod queue;

pub use claims::LeaseSettings;

/// A running task's handles: its journal writer (shared with `cancel`), its cancel switch and
/// the lease it runs under (PostgreSQL workers).
struct Running {
    writer: Arc<TaskWriter>,
    cancel: watch::Sender<bool>,
    lease: Option<Lease>,
    /// Where the task goes in the fair queue when it is queued again (parked, then woken).
    place: Place,
}

/// A task's tenant and priority: its place in the fair queue.
#[derive(Clone)]
pub(super) struct Place {
    tenant: TenantId,
    priority: Priority,
}

/// Where the tasks this process runs come from.
enum Mode {
    /// This process's own queue: admissions and recovery (one process; SQLite's only mode).
    Local,
    /// Leases claimed from the database, shared with other worker processes.
    Claims(Arc<claims::Claims>),
    /// None: tasks run in worker processes (`amas serve --role api`).
    Elsewhere,
}

/// The queue, the slots and the tasks running in this process.
pub struct Scheduler {
    journal: Arc<Journal>,
    metrics: Metrics,
    executor: Arc<Executor>,
    capacity: usize,
    scheduling: SchedulingConfig,
    /// Nudges for the claimer (PostgreSQL): this process admitted a task.
    queue_tx: mpsc::UnboundedSender<TaskId>,
    queue_rx: Mutex<Option<mpsc::UnboundedReceiver<TaskId>>>,
    /// This process's queue (tasks queued and places reserved, not yet handed a slot); on
    /// PostgreSQL only the places reserved for submissions being journaled.
    queue: std::sync::Mutex<queue::FairQueue>,
    /// Signalled when a task is queued or a running one ends: the dispatcher looks again.
    queue_changed: Notify,
    /// The database's queue (PostgreSQL), which admission counts and the metrics read.
    database: OnceLock<Arc<dyn TaskQueue>>,
    /// Admission's last count of the tasks waiting in the database.
    waiting_total: limits::TotalCount,
    running: Mutex<HashMap<TaskId, Running>>,
    slots: Arc<Semaphore>,
    shutting_down: AtomicBool,
    /// Set once, before [`Scheduler::start`]; unset is [`Mode::Local`].
    mode: OnceLock<Mode>,
    /// Signalled when a task's run ends (a slot is free: a claimer looks for work at once).
    freed: Notify,
    /// Votes waiting for the steps they are for (shared with step execution).
    inbox: Arc<Inbox>,
    /// Tasks parked in this process's own queue, and the timer that wakes them.
    parking: parking::Parking,
    /// Votes and cancels across processes (PostgreSQL); unset in one process.
    relay: OnceLock<Arc<commands::Relay>>,
}

/// A place in the queue, taken before a submission is journaled so that a refused task leaves
/// no trace. Dropped without [`Reservation::enqueue`], it frees the place again.
pub(crate) struct Reservation<'a> {
    scheduler: &'a Scheduler,
    tenant: TenantId,
    used: bool,
}

impl Reservation<'_> {
    /// Queues `task` (journaled) in the reserved place.
    pub(crate) fn enqueue(mut self, task: TaskId, priority: Priority) {
        self.used = true;
        self.scheduler
            .enqueue_reserved(task, &self.tenant, priority, true);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.scheduler.queue().unreserve(&self.tenant.0);
        }
    }
}

impl Scheduler {
    pub(crate) fn new(
        journal: Arc<Journal>,
        metrics: Metrics,
        executor: Arc<Executor>,
        inbox: Arc<Inbox>,
        capacity: usize,
        max_concurrent: usize,
        scheduling: &SchedulingConfig,
    ) -> Self {
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        metrics
            .queue_capacity
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
        Self {
            journal,
            metrics,
            executor,
            capacity,
            scheduling: scheduling.clone(),
            queue_tx,
            queue_rx: Mutex::new(Some(queue_rx)),
            queue: std::sync::Mutex::new(queue::FairQueue::new(scheduling.clone(), capacity)),
            queue_changed: Notify::new(),
            database: OnceLock::new(),
            waiting_total: limits::TotalCount::default(),
            running: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            shutting_down: AtomicBool::new(false),
            mode: OnceLock::new(),
            freed: Notify::new(),
            inbox,
            parking: parking::Parking::default(),
            relay: OnceLock::new(),
        }
    }

    fn mode(&self) -> &Mode {
        self.mode.get().unwrap_or(&Mode::Local)
    }

    /// This process's queue; a panic while it was held cannot leave it half-updated (its
    /// methods do not panic), so a poisoned lock is taken as is.
    fn queue(&self) -> std::sync::MutexGuard<'_, queue::FairQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The database holds the queue (PostgreSQL, any role): admission counts the waiting tasks
    /// there and the queue metrics are read from it. Call before [`Scheduler::start`].
    pub fn queue_in(&self, database: Arc<dyn TaskQueue>) {
        let _ = self.database.set(database);
    }

    /// Runs no tasks in this process (`amas serve --role api`): admitted tasks stay queued in
    /// the database for the worker processes to claim. Call before [`Scheduler::start`]; a
    /// mode already chosen stays.
    pub fn run_elsewhere(&self) {
        let _ = self.mode.set(Mode::Elsewhere);
    }

    /// Starts the dispatcher that runs queued tasks, at most `max_concurrent_tasks` at once,
    /// and the refresh of the queue metrics. Call once; later calls do nothing.
    pub async fn start(self: &Arc<Self>) {
        let Some(rx) = self.queue_rx.lock().await.take() else {
            return;
        };
        self.start_backlog();
        self.start_waking();
        match self.mode() {
            Mode::Local => self.start_dispatching(),
            Mode::Claims(claims) => self.start_claiming(Arc::clone(claims), rx),
            Mode::Elsewhere => {}
        }
    }

    /// Whether new tasks are still admitted (false once shutdown began).
    pub(crate) fn admitting(&self) -> bool {
        !self.shutting_down.load(Ordering::SeqCst)
    }

    /// Queues `task` of `tenant`: in the place reserved for it (`reserved`), or beyond the
    /// limits (recovery).
    fn enqueue_reserved(
        &self,
        task: TaskId,
        tenant: &TenantId,
        priority: Priority,
        reserved: bool,
    ) {
        if !matches!(self.mode(), Mode::Local) {
            // The database is the queue: whoever claims the task reads it from there, and this
            // process's read model must not keep a state other processes move on.
            if reserved {
                self.queue().unreserve(&tenant.0);
            }
            self.journal.forget(task);
            if matches!(self.mode(), Mode::Claims(_)) {
                // A nudge: the claimer looks for work now rather than at its next poll.
                let _ = self.queue_tx.send(task);
            }
            return;
        }
        let depth = {
            let mut queue = self.queue();
            queue.push(&tenant.0, task, priority.get(), reserved);
            queue.queued()
        };
        self.metrics
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.queue_changed.notify_one();
    }

    /// Re-queues every unfinished task from the journal (at start-up). Recovery is not bounded by
    /// the queue capacity: these tasks were admitted before.
    ///
    /// # Errors
    /// A store error.
    pub async fn recover(&self) -> Result<usize, RuntimeError> {
        if !matches!(self.mode(), Mode::Local) {
            // Workers claim unfinished tasks from the database as their leases allow.
            return Ok(0);
        }
        let unfinished = self.journal.store().unfinished().await?;
        for task in &unfinished {
            // Queued under its tenant and priority; unknown (purged meanwhile): nothing to run.
            if let Some(summary) = self.journal.store().summary(*task).await? {
                self.enqueue_reserved(*task, &summary.tenant, summary.priority, false);
            }
        }
        if !unfinished.is_empty() {
            info!(tasks = unfinished.len(), "Resuming unfinished tasks.");
        }
        Ok(unfinished.len())
    }

    /// Cancels a task that has not ended. Cancelling an ended task changes nothing. Its pending
    /// approvals are resolved as denied in the same commit. Once the cancellation is journaled
    /// the journal refuses every later append of the task (the store's fence), so nothing of a
    /// step still running is recorded or acted on after it.
    ///
    /// # Errors
    /// [`RuntimeError::NotFound`], or a store error.
    pub async fn cancel(&self, task: TaskId, reason: String) -> Result<TaskState, RuntimeError> {
        if let Some(relay) = self.relay.get()
            && !self.running.lock().await.contains_key(&task)
        {
            // Run by another process, or by none: the relay hands it to whoever runs it.
            return self.cancel_elsewhere(relay, task, reason).await;
        }
        let state = self.cancel_here(task, &reason).await?;
        self.cancelled(task, state.status).await;
        Ok(state)
    }

    /// [`Scheduler::cancel`] by this process: of a task it runs, or (one process) of one it
    /// does not run at the moment.
    async fn cancel_here(&self, task: TaskId, reason: &str) -> Result<TaskState, RuntimeError> {
        let running = self.running.lock().await;
        let events = |state: &TaskState| cancel_events(state, reason);
        let appended = if let Some(run) = running.get(&task) {
            let _ = run.cancel.send(true);
            let state = self.state(task).await?;
            if state.status.is_terminal() {
                Ok(())
            } else {
                match run.writer.append_all(&events(&state)).await {
                    // This process's run lost its lease: the cancel does not need one (an API
                    // process's does not either); it goes after whatever the store holds now.
                    Err(StoreError::LeaseLost { .. }) => {
                        self.cancel_under(None, task, reason).await
                    }
                    other => other,
                }
            }
        } else {
            let state = self.state(task).await?;
            if state.status.is_terminal() {
                Ok(())
            } else {
                // Not running in this process: the queue entry will find it terminal and skip it.
                self.journal
                    .append(task, state.last_seq, &events(&state))
                    .await
                    .map(drop)
            }
        };
        drop(running);
        match appended {
            // It ended on its own in the meantime: cancelling an ended task changes nothing.
            Ok(()) | Err(StoreError::TaskEnded { .. }) => self.state(task).await,
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn state(&self, task: TaskId) -> Result<TaskState, RuntimeError> {
        self.journal
            .state(task)
            .await?
            .ok_or(RuntimeError::NotFound(task))
    }

    /// Stops admitting tasks; running ones continue (their journals make them resumable anyway).
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Stops for shutdown: admits and starts no more tasks, tells every running task to stop at
    /// its next pause (a model call, an approval wait; a tool call already running finishes and
    /// is journaled), and waits up to `patience` for them to stop. Their journals resume them at
    /// the next start. Everything they decided is then queued in the audit log, so closing it
    /// afterwards loses no record. Returns how many tasks were still running at the deadline.
    pub async fn drain(&self, patience: std::time::Duration) -> usize {
        self.shut_down();
        for run in self.running.lock().await.values() {
            let _ = run.cancel.send(true);
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let left = self.running().await;
            if left == 0 || tokio::time::Instant::now() >= deadline {
                if left > 0 {
                    warn!(
                        tasks = left,
                        "Tasks still running at shutdown; their last decisions may miss the audit log."
                    );
                    // Their leases go now: another worker takes over at once, and whatever
                    // these runs still try to append is refused by the fence.
                    self.release_running().await;
                }
                return left;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Tasks waiting to run in this process's queue, and places reserved for submissions.
    #[must_use]
    pub fn queue_depth(&self) -> usize {
        self.queue().len()
    }

    /// Tasks running in this process now (a task has left once its run has stopped writing).
    pub async fn running(&self) -> usize {
        self.running.lock().await.len()
    }

    /// Runs `task`, under `lease` (and the instant up to which this process surely holds it)
    /// when it was claimed.
    async fn run_one(&self, task: TaskId, claimed: Option<(Lease, std::time::Instant)>) -> RunEnd {
        let lease = claimed.map(|(lease, _)| lease);
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let writer = {
            let mut running = self.running.lock().await;
            // Shutting down: the task stays queued in its journal and resumes at the next start.
            if running.contains_key(&task) || !self.admitting() {
                return RunEnd::Stopped;
            }
            // Under a lease, other processes may have written the task: only the store knows.
            let cached = self.journal.cached(task).filter(|_| lease.is_none());
            let known = match cached {
                Some(state) => Ok(Some((
                    state.status,
                    state.last_seq,
                    Place {
                        tenant: state.principal.tenant.clone(),
                        priority: state.spec.priority,
                    },
                ))),
                None => self.journal.store().summary(task).await.map(|s| {
                    s.map(|s| {
                        let place = Place {
                            tenant: s.tenant,
                            priority: s.priority,
                        };
                        (s.status, s.last_seq, place)
                    })
                }),
            };
            let (last_seq, place) = match known {
                Ok(Some((status, last_seq, place))) if !status.is_terminal() => (last_seq, place),
                Ok(_) => {
                    // Ended (cancelled by another writer while it was parked, say): the votes
                    // that woke it get their answer.
                    self.inbox.drop_task(task, &[]);
                    return RunEnd::Ended;
                }
                Err(e) => {
                    error!(task.id = %task, error = %e, "Could not read the task; leaving it queued.");
                    return RunEnd::Stopped;
                }
            };
            if lease.is_some() {
                self.journal.forget(task);
            }
            let writer = Arc::new(TaskWriter::new(
                Arc::clone(&self.journal),
                task,
                last_seq,
                claimed.map(|(lease, until)| HeldLease::new(lease.fence(), until)),
            ));
            running.insert(
                task,
                Running {
                    writer: Arc::clone(&writer),
                    cancel: cancel_tx,
                    lease,
                    place,
                },
            );
            writer
        };
        self.metrics.tasks_running.inc();
        // Commands recorded while nobody ran the task (a cancel first of all).
        self.before_run(task).await;
        let executed = self.executor.execute(task, writer, cancel_rx).await;
        let end = match executed {
            Ok(end) => end,
            Err(e) => {
                stopped_by(task, e, &self.metrics);
                RunEnd::Stopped
            }
        };
        self.metrics.tasks_running.dec();
        let mut running = self.running.lock().await;
        let place = running.remove(&task).map(|r| r.place);
        // Stopped without an end (shutdown, takeover, parked): whoever resumes it seeds it again.
        self.journal.forget(task);
        if let Some(place) = place {
            self.after_run(task, place, &end, running);
        }
        end
    }
}

/// Logs why a run stopped on a store error.
fn stopped_by(task: TaskId, e: StoreError, metrics: &Metrics) {
    match e {
        StoreError::Conflict { .. } => {
            warn!(task.id = %task, "Another writer owns the task; stopping here.");
        }
        StoreError::LeaseLost { epoch, .. } => {
            // The fence of leases: another worker holds the task now (or will), and resumes
            // it from the journal; nothing of this run is written any more.
            metrics.queue.lease_lost("append");
            warn!(task.id = %task, lease.epoch = epoch, error.code = amas_types::codes::STORE_LEASE_LOST, "The task's lease was lost; stopping here.");
        }
        StoreError::TaskEnded { status, .. } => {
            // The fence: the task was cancelled (or ended) while a step still worked; what
            // the step did after the end was refused, and it stops here.
            info!(task.id = %task, task.status = status.as_str(), "The task ended while a step was running; the step stopped.");
        }
        other => {
            error!(task.id = %task, error = %other, "Task execution stopped on a store error.");
        }
    }
}

/// The events that cancel a task in `state`: its pending approvals denied, then the end.
pub(super) fn cancel_events(state: &TaskState, reason: &str) -> Vec<JournalEvent> {
    let mut events: Vec<JournalEvent> = state
        .approvals
        .values()
        .filter(|a| a.status == ApprovalStatus::Pending)
        .map(|a| JournalEvent::ApprovalResolved {
            approval_id: a.id.clone(),
            step: a.step.clone(),
            status: ApprovalStatus::Denied,
            reason: format!("the task was cancelled: {reason}"),
        })
        .collect();
    events.push(JournalEvent::TaskCancelled {
        reason: reason.to_owned(),
    });
    events
}
