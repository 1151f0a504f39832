//! The orchestrator: admits tasks into a bounded queue, runs each as a workflow DAG of agent
//! steps driven by its journal, resumes unfinished tasks after a restart, and streams journal
//! records to live subscribers.

mod access;
mod approvals;
mod clearance;
pub mod compose;
mod error;
mod executor;
mod inputs;
mod journal;
mod lineage;
mod reader;
mod replay;
mod retention;
mod safety;
mod step;
mod tools;
mod usage;
mod writer;

pub use access::ApiResource;
pub use clearance::{Outbound, Released, WITHHELD, lineage_level};
pub use error::{RuntimeError, codes};
pub use lineage::{
    FloorError, GraphEdge, GraphNode, LineageGraph, Why, declared_floor, graph as lineage_graph,
};
pub use reader::{ReleasedEvents, ReleasedTask, release_record};
pub use replay::{DecisionDiff, ReplayReport, Replayer, Ruling};
pub use retention::{PurgeReport, PurgedPayload, RetentionRun};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{Mutex, Semaphore, broadcast, mpsc, watch};
use tracing::{error, info, warn};

use amas_config::AmasConfig;
use amas_governance::pipeline::{self, ActionContext, Pipeline};
use amas_providers::{ProviderChain, ProviderSet};
use amas_store::{ApprovalFilter, ApprovalPage};
use amas_store::{GroupCommit, StoreError, TaskJournal};
use amas_telemetry::Metrics;
use amas_types::{
    Approval, ApprovalStatus, JournalEvent, JournalRecord, Principal, TaskId, TaskSpec, TaskState,
    Verdict,
};

use crate::writer::TaskWriter;

/// How long a vote waits for the step it is meant for to be waiting (a task resumed after a
/// restart needs a moment to get back to its approval).
const APPROVAL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Live journal records buffered per subscriber before it lags.
const LIVE_BUFFER: usize = 4096;

/// A running task's handles: its journal writer (shared with `cancel`) and its cancel switch.
struct Running {
    writer: Arc<TaskWriter>,
    cancel: watch::Sender<bool>,
}

pub(crate) struct Inner {
    pub(crate) config: Arc<AmasConfig>,
    /// Appends (group-committed, published, folded into the read model) and task state.
    pub(crate) journal: Arc<journal::Journal>,
    pub(crate) chains: BTreeMap<String, ProviderChain>,
    pub(crate) metrics: Metrics,
    /// Every governed action goes through it: tool and model calls, submissions, API
    /// operations, releases.
    pub(crate) pipeline: Arc<Pipeline>,
    /// The directory under which each task gets its workspace.
    pub(crate) workspaces: PathBuf,
    queue_tx: mpsc::UnboundedSender<TaskId>,
    queue_rx: Mutex<Option<mpsc::UnboundedReceiver<TaskId>>>,
    queued: AtomicUsize,
    live: broadcast::Sender<JournalRecord>,
    running: Mutex<HashMap<TaskId, Running>>,
    slots: Arc<Semaphore>,
    shutting_down: AtomicBool,
    /// Steps paused on an approval in this process.
    pub(crate) waiting: Arc<approvals::Waiting>,
    /// Detection, redaction and classification (DLP, lineage, clearance).
    pub(crate) protector: Arc<amas_dataprotect::DataProtector>,
    /// Screens submitted task input and model outputs: the pipeline's engine.
    pub(crate) content_safety: Arc<amas_dataprotect::ContentSafety>,
    /// The store's one writer: journal appends and every governance decision's audit record,
    /// group-committed.
    pub(crate) audit: Arc<amas_store::AuditWriter>,
    /// The audit log itself, for queries.
    pub(crate) audit_log: Arc<dyn amas_store::AuditLog>,
}

/// Everything a [`Runtime`] is made of. Governance is not optional: there is no runtime
/// without its pipeline and its audit writer. Built by [`compose::compose`] (the one
/// composition root) in production, tests and benches alike.
pub struct RuntimeParts<'a> {
    pub config: Arc<AmasConfig>,
    /// The journal and the audit log, in one store that commits both at once.
    pub store: Arc<dyn GroupCommit>,
    pub providers: &'a ProviderSet,
    pub metrics: Metrics,
    /// The governance pipeline (its policy engine is the one replays ask again; its
    /// content-safety engine screens submissions and model outputs).
    pub pipeline: Arc<Pipeline>,
    /// The store's writer, started with [`amas_store::AuditWriter::start_group`] on `store`.
    pub writer: Arc<amas_store::AuditWriter>,
    /// Each task gets a workspace directory under it.
    pub workspaces: PathBuf,
    /// Detection, redaction and classification, as the pipeline's.
    pub protector: Arc<amas_dataprotect::DataProtector>,
}

/// The task runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// Builds the runtime; every agent's provider chain is resolved now, so a bad chain fails at
    /// start, not in the middle of a task.
    ///
    /// # Errors
    /// [`RuntimeError::Setup`] when an agent names a provider the set does not have, or when
    /// the writer does not commit the journal (it was not started with `start_group`).
    pub fn new(parts: RuntimeParts<'_>) -> Result<Self, RuntimeError> {
        let RuntimeParts {
            config,
            store,
            providers,
            metrics,
            pipeline,
            writer,
            workspaces,
            protector,
        } = parts;
        let mut chains = BTreeMap::new();
        for (id, agent) in &config.agents {
            let chain = providers
                .chain(&agent.providers)
                .map_err(|e| RuntimeError::Setup {
                    agent: id.clone(),
                    reason: e.to_string(),
                })?;
            chains.insert(id.clone(), chain);
        }
        if !writer.has_journal() {
            return Err(RuntimeError::Setup {
                agent: "*".to_owned(),
                reason: "the audit writer must commit the journal too (AuditWriter::start_group on the runtime's store)".to_owned(),
            });
        }
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        let slots = Arc::new(Semaphore::new(config.runtime.max_concurrent_tasks.max(1)));
        metrics
            .queue_capacity
            .set(i64::try_from(config.runtime.queue_capacity).unwrap_or(i64::MAX));
        // The store's one writer commits the journal's appends too, with the audit records.
        let journal = journal::Journal::new(
            Arc::clone(&store) as Arc<dyn TaskJournal>,
            Arc::clone(&writer),
            live.clone(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                journal: Arc::new(journal),
                chains,
                metrics,
                content_safety: Arc::clone(pipeline.content_safety()),
                pipeline,
                workspaces,
                queue_tx,
                queue_rx: Mutex::new(Some(queue_rx)),
                queued: AtomicUsize::new(0),
                live,
                running: Mutex::new(HashMap::new()),
                slots,
                shutting_down: AtomicBool::new(false),
                waiting: Arc::default(),
                protector,
                audit: writer,
                audit_log: store as Arc<dyn amas_store::AuditLog>,
            }),
        })
    }

    /// Replays `task` under the policy now in force: every decision its journal records is
    /// asked again, with no model or tool call. For auditors (`audit.read`); another tenant's
    /// task is not found.
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`] when policy refuses, [`RuntimeError::NotFound`], or a
    /// store error.
    pub async fn replay(
        &self,
        viewer: &Principal,
        task: TaskId,
    ) -> Result<ReplayReport, RuntimeError> {
        self.authorize_api(viewer, "audit.read", None).await?;
        let records = self.inner.journal.store().read(task, 0).await?;
        match TaskState::fold(&records) {
            Some(s) if s.principal.tenant == viewer.tenant => {}
            Some(_) => {
                self.cross_tenant_attempt(viewer, "task.replay", &format!("task:{task}"))
                    .await;
                return Err(RuntimeError::NotFound(task));
            }
            None => return Err(RuntimeError::NotFound(task)),
        }
        Replayer::of(
            &self.inner.config,
            &self.inner.pipeline,
            &self.inner.protector,
        )
        .replay(&records)
        .ok_or(RuntimeError::NotFound(task))
    }

    /// Audit records of `viewer`'s tenant matching `query` (its tenant is overridden), if policy
    /// lets `viewer` read audit data (`audit.read`).
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`] when policy refuses, or a store error.
    pub async fn audit_records(
        &self,
        viewer: &Principal,
        mut query: amas_store::audit::AuditQuery,
    ) -> Result<Vec<amas_store::audit::StoredAuditRecord>, RuntimeError> {
        self.authorize_api(viewer, "audit.read", None).await?;
        query.tenant = Some(viewer.tenant.clone());
        Ok(self.inner.audit_log.query(&query).await?)
    }

    /// Queues one record in the audit log (waits only while its queue is full; never drops). For security events outside tasks, such as failed logins.
    pub async fn audit(&self, record: amas_store::AuditRecord) {
        if let Err(e) = self.inner.audit.record(record).await {
            warn!(error = %e, "An audit record was refused.");
        }
    }

    /// Commits every audit record queued so far and signs a checkpoint; returns once they are
    /// durable (for readers of the log that must see them, such as an export or a test).
    ///
    /// # Errors
    /// The writer's error when it is shut down or its store fails.
    pub async fn flush_audit(&self) -> Result<(), amas_store::audit::AuditError> {
        self.inner.audit.flush().await.map(drop)
    }

    /// Writes every audit record still queued and signs a final checkpoint (at shutdown).
    pub async fn close_audit(&self) {
        if let Err(e) = self.inner.audit.shutdown().await {
            error!(error = %e, "Could not close the audit log cleanly.");
        }
    }

    #[must_use]
    pub fn config(&self) -> &Arc<AmasConfig> {
        &self.inner.config
    }

    #[must_use]
    pub fn journal(&self) -> &Arc<dyn TaskJournal> {
        self.inner.journal.store()
    }

    /// Starts the dispatcher that runs queued tasks, at most `max_concurrent_tasks` at once.
    /// Call once; later calls do nothing.
    pub async fn start(&self) {
        let Some(mut rx) = self.inner.queue_rx.lock().await.take() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        let mut stopping = amas_telemetry::tasks::global().stopping();
        amas_telemetry::tasks::spawn("runtime.dispatcher", async move {
            // At shutdown queued tasks stay in their journal and resume at the next start.
            while let Some(task) = tokio::select! {
                t = rx.recv() => t,
                () = stopping.wait() => None,
            } {
                let Ok(permit) = Arc::clone(&inner.slots).acquire_owned().await else {
                    break;
                };
                let depth = inner
                    .queued
                    .fetch_sub(1, Ordering::SeqCst)
                    .saturating_sub(1);
                inner
                    .metrics
                    .queue_depth
                    .set(i64::try_from(depth).unwrap_or(i64::MAX));
                let inner = Arc::clone(&inner);
                amas_telemetry::tasks::spawn("runtime.task", async move {
                    run_one(&inner, task).await;
                    drop(permit);
                });
            }
        });
    }

    /// Admits a task: journals `TaskSubmitted` and queues it.
    ///
    /// # Errors
    /// Unknown task type, a full queue (backpressure), shutdown, or a store error.
    pub async fn submit(
        &self,
        spec: TaskSpec,
        principal: Principal,
        trace_id: Option<String>,
    ) -> Result<JournalRecord, RuntimeError> {
        self.submit_classified(spec, principal, trace_id, None)
            .await
    }

    /// As [`Runtime::submit`], with a classification floor the submitter declares for the
    /// input (see [`declared_floor`]); the input's lineage node is journaled with the
    /// submission.
    ///
    /// # Errors
    /// As [`Runtime::submit`].
    pub async fn submit_classified(
        &self,
        spec: TaskSpec,
        principal: Principal,
        trace_id: Option<String>,
        floor: Option<amas_dataprotect::Classification>,
    ) -> Result<JournalRecord, RuntimeError> {
        let inner = &self.inner;
        if inner.shutting_down.load(Ordering::SeqCst) {
            return Err(RuntimeError::ShuttingDown);
        }
        if !inner.config.workflows.contains_key(&spec.task_type) {
            return Err(RuntimeError::UnknownTaskType {
                task_type: spec.task_type,
                known: inner
                    .config
                    .workflows
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        // The pipeline's submission entry point: content safety on the input, then policy.
        let ctx = ActionContext {
            principal: &principal,
            task: None,
            step: None,
            agent: None,
            trace_id: trace_id.clone(),
        };
        let governed = pipeline::entry::submission(
            inner.pipeline.as_ref(),
            &inner.metrics,
            &inner.content_safety,
            &ctx,
            &spec,
        )
        .await;
        let submission_audit = match governed {
            Ok(governed) => governed.audit,
            Err(refused) => {
                for record in refused.audit {
                    self.audit(record).await;
                }
                return Err(
                    if refused.decision.stage == pipeline::Stage::ContentSafety {
                        RuntimeError::ContentBlocked {
                            categories: refused.message,
                        }
                    } else {
                        RuntimeError::Denied {
                            task_type: spec.task_type,
                            reasons: refused.message,
                        }
                    },
                );
            }
        };
        let capacity = inner.config.runtime.queue_capacity;
        // Reserve a queue slot before writing anything, so a refused task leaves no trace.
        let reserved = inner
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q < capacity).then_some(q + 1)
            });
        if reserved.is_err() {
            return Err(RuntimeError::QueueFull {
                capacity,
                retry_after_secs: 1,
            });
        }
        let task = TaskId::new();
        // The submitting span is the parent of the task's span, when it is in the same trace.
        let parent_span_id = trace_id
            .as_ref()
            .filter(|t| amas_telemetry::current_trace_id().as_ref() == Some(*t))
            .and_then(|_| amas_telemetry::propagation::current_span_id());
        let input = lineage::input_node(&inner.protector, &spec, floor);
        let event = JournalEvent::TaskSubmitted {
            spec,
            principal,
            trace_id,
            parent_span_id,
        };
        let batch = [event, JournalEvent::LineageRecorded { node: input }];
        let record = match inner.journal.append(task, 0, &batch).await {
            Ok(records) => records.into_iter().next(),
            Err(e) => {
                inner.queued.fetch_sub(1, Ordering::SeqCst);
                return Err(e.into());
            }
        };
        let Some(record) = record else {
            inner.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::InvalidAppend("no record returned".to_owned()).into());
        };
        self.enqueue_reserved(task);
        for audit in submission_audit {
            self.audit(audit.with_task(task)).await;
        }
        Ok(record)
    }

    fn enqueue_reserved(&self, task: TaskId) {
        let depth = self.inner.queued.load(Ordering::SeqCst);
        self.inner
            .metrics
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        if self.inner.queue_tx.send(task).is_err() {
            warn!(task.id = %task, "Dispatcher is gone; the task stays queued in the journal.");
        }
    }

    /// Re-queues every unfinished task from the journal (at start-up). Recovery is not bounded by
    /// the queue capacity: these tasks were admitted before.
    ///
    /// # Errors
    /// A store error.
    pub async fn recover(&self) -> Result<usize, RuntimeError> {
        let unfinished = self.inner.journal.store().unfinished().await?;
        for task in &unfinished {
            self.inner.queued.fetch_add(1, Ordering::SeqCst);
            self.enqueue_reserved(*task);
        }
        if !unfinished.is_empty() {
            info!(tasks = unfinished.len(), "Resuming unfinished tasks.");
        }
        Ok(unfinished.len())
    }

    /// The task's current state: from memory while this process runs it, else folded from its
    /// journal.
    ///
    /// # Errors
    /// A store error.
    pub async fn get(&self, task: TaskId) -> Result<Option<TaskState>, RuntimeError> {
        Ok(self.inner.journal.state(task).await?)
    }

    /// Records an approver's vote on a pending approval and returns the approval as it then
    /// stands (approved, denied, or still pending when more approvers are needed). Only what the
    /// approver's tenant owns is visible; the requester cannot vote on their own request.
    ///
    /// # Errors
    /// [`RuntimeError::ApprovalNotFound`], [`RuntimeError::ApprovalSettled`],
    /// [`RuntimeError::SelfApproval`], [`RuntimeError::NotAnApprover`],
    /// [`RuntimeError::AlreadyVoted`], [`RuntimeError::ApprovalUnavailable`] when the waiting
    /// task is not running here, or a store error.
    pub async fn decide_approval(
        &self,
        approval_id: &str,
        approver: Principal,
        verdict: Verdict,
        reason: String,
    ) -> Result<Approval, RuntimeError> {
        let approval = self
            .approval(approval_id, &approver, "approval.decide")
            .await?
            .ok_or_else(|| RuntimeError::ApprovalNotFound(approval_id.to_owned()))?;
        if let Some(refused) = approvals::refuse_vote(
            &approval,
            &approver,
            &self.inner.config.approvals.approver_roles,
        ) {
            return Err(refused);
        }
        let unavailable = || RuntimeError::ApprovalUnavailable {
            id: approval_id.to_owned(),
        };
        let step = self
            .inner
            .waiting
            .sender(approval_id, APPROVAL_PATIENCE)
            .await
            .ok_or_else(unavailable)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        step.send(approvals::Vote {
            approver,
            verdict,
            reason,
            reply,
        })
        .await
        .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }

    /// One approval, if it belongs to `viewer`'s tenant. Another tenant's approval is not
    /// found, and the attempt (`operation` on it) is audited.
    ///
    /// # Errors
    /// A store error.
    pub async fn approval(
        &self,
        approval_id: &str,
        viewer: &Principal,
        operation: &str,
    ) -> Result<Option<Approval>, RuntimeError> {
        match self.inner.journal.store().approval(approval_id).await? {
            Some(a) if a.tenant == viewer.tenant => Ok(Some(a)),
            Some(_) => {
                self.cross_tenant_attempt(viewer, operation, &format!("approval:{approval_id}"))
                    .await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Approvals of `viewer`'s tenant matching `filter` (its tenant is overridden), for holders
    /// of an approver role.
    ///
    /// # Errors
    /// [`RuntimeError::NotAnApprover`], or a store error.
    pub async fn approvals(
        &self,
        viewer: &Principal,
        mut filter: ApprovalFilter,
    ) -> Result<ApprovalPage, RuntimeError> {
        let roles = &self.inner.config.approvals.approver_roles;
        if !approvals::is_approver(viewer, roles) {
            return Err(RuntimeError::NotAnApprover {
                roles: roles.join(", "),
            });
        }
        filter.tenant = Some(viewer.tenant.clone());
        Ok(self.inner.journal.store().approvals(&filter).await?)
    }

    /// Cancels a task that has not ended. Cancelling an ended task changes nothing. Its pending
    /// approvals are resolved as denied in the same commit.
    ///
    /// # Errors
    /// [`RuntimeError::NotFound`], or a store error.
    pub async fn cancel(&self, task: TaskId, reason: String) -> Result<TaskState, RuntimeError> {
        let running = self.inner.running.lock().await;
        let events = |state: &TaskState| {
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
                reason: reason.clone(),
            });
            events
        };
        if let Some(run) = running.get(&task) {
            let _ = run.cancel.send(true);
            let state = self.get(task).await?.ok_or(RuntimeError::NotFound(task))?;
            if !state.status.is_terminal() {
                run.writer.append_all(&events(&state)).await?;
            }
        } else {
            let state = self.get(task).await?.ok_or(RuntimeError::NotFound(task))?;
            if !state.status.is_terminal() {
                // Not running in this process: the queue entry will find it terminal and skip it.
                self.inner
                    .journal
                    .append(task, state.last_seq, &events(&state))
                    .await?;
            }
        }
        drop(running);
        self.get(task).await?.ok_or(RuntimeError::NotFound(task))
    }

    /// Live journal records of every task, from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<JournalRecord> {
        self.inner.live.subscribe()
    }

    /// Live journal records of `task` from now on (what its event stream needs, without the
    /// records of every other task).
    #[must_use]
    pub fn subscribe_task(&self, task: TaskId) -> broadcast::Receiver<JournalRecord> {
        self.inner.journal.subscribe_task(task)
    }

    /// Stops admitting tasks; running ones continue (their journals make them resumable anyway).
    pub fn shut_down(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Stops for shutdown: admits and starts no more tasks, tells every running task to stop at
    /// its next pause (a model call, an approval wait; a tool call already running finishes and
    /// is journaled), and waits up to `patience` for them to stop. Their journals resume them at
    /// the next start. Everything they decided is then queued in the audit log, so closing it
    /// afterwards loses no record. Returns how many tasks were still running at the deadline.
    pub async fn drain(&self, patience: std::time::Duration) -> usize {
        self.shut_down();
        for run in self.inner.running.lock().await.values() {
            let _ = run.cancel.send(true);
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let left = self.inner.running.lock().await.len();
            if left == 0 || tokio::time::Instant::now() >= deadline {
                if left > 0 {
                    warn!(
                        tasks = left,
                        "Tasks still running at shutdown; their last decisions may miss the audit log."
                    );
                }
                return left;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Tasks waiting to run.
    #[must_use]
    pub fn queue_depth(&self) -> usize {
        self.inner.queued.load(Ordering::SeqCst)
    }
}

async fn run_one(inner: &Arc<Inner>, task: TaskId) {
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let writer = {
        let mut running = inner.running.lock().await;
        // Shutting down: the task stays queued in its journal and resumes at the next start.
        if running.contains_key(&task) || inner.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let known = match inner.journal.cached(task) {
            Some(state) => Ok(Some((state.status, state.last_seq))),
            None => inner
                .journal
                .store()
                .summary(task)
                .await
                .map(|s| s.map(|s| (s.status, s.last_seq))),
        };
        let last_seq = match known {
            Ok(Some((status, last_seq))) if !status.is_terminal() => last_seq,
            Ok(_) => return,
            Err(e) => {
                error!(task.id = %task, error = %e, "Could not read the task; leaving it queued.");
                return;
            }
        };
        let writer = Arc::new(TaskWriter::new(Arc::clone(&inner.journal), task, last_seq));
        running.insert(
            task,
            Running {
                writer: Arc::clone(&writer),
                cancel: cancel_tx,
            },
        );
        writer
    };
    inner.metrics.tasks_running.inc();
    if let Err(e) = executor::execute(Arc::clone(inner), task, writer, cancel_rx).await {
        match e {
            StoreError::Conflict { .. } => {
                warn!(task.id = %task, "Another writer owns the task; stopping here.");
            }
            other => {
                error!(task.id = %task, error = %other, "Task execution stopped on a store error.")
            }
        }
    }
    inner.metrics.tasks_running.dec();
    let mut running = inner.running.lock().await;
    running.remove(&task);
    // Stopped without an end (shutdown, takeover): whoever resumes it seeds it again.
    inner.journal.forget(task);
}
