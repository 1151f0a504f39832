//! The reader service: everything a principal asks about tasks and approvals that exist. Each
//! answer is found in the reader's tenant only (another tenant's object is not found, exactly
//! like a missing one, and the attempt is audited), authorized by API policy, and released at
//! the reader's clearance (payloads above it redacted, the redaction audited). The writes a
//! reader may ask for (cancel, vote) are delegated to the service that owns them and answered
//! the same way. API handlers call one function each and map the result.
//!
//! It also holds the read model's plain accessors for in-process callers (the CLI, tests):
//! the state of a task and its live records, unreleased.

mod approvals;
mod audit;
mod live;

pub use live::{LiveEvent, LiveEvents};

use std::sync::Arc;

use amas_config::AmasConfig;
use amas_dataprotect::DataProtector;
use amas_governance::pipeline::Pipeline;
use amas_store::{TaskFilter, TaskPage};
use amas_types::{JournalRecord, Principal, TaskId, TaskState};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::access::{Access, ApiResource};
use crate::approvals::Approvals;
use crate::journal::Journal;
use crate::lineage::{LineageGraph, graph};
use crate::scheduler::Scheduler;
use crate::{Outbound, Released, RuntimeError, WITHHELD};

/// A task as its reader may see it.
#[derive(Debug)]
pub struct ReleasedTask {
    /// The state, payloads above the reader's clearance redacted.
    pub state: TaskState,
    /// Whether anything was redacted (the view says so).
    pub redacted_for_clearance: bool,
}

/// A task's journal as its reader may see it: each record as JSON, redacted like the task.
#[derive(Debug)]
pub struct ReleasedEvents {
    pub task: TaskId,
    pub events: Vec<Value>,
    pub redacted_for_clearance: bool,
}

/// Reads for principals, released for them.
pub struct Reader {
    pub(crate) config: Arc<AmasConfig>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) access: Arc<Access>,
    /// Cancels (a reader's `task.cancel`).
    pub(crate) scheduler: Arc<Scheduler>,
    /// Votes (a reader's `approval.decide`).
    pub(crate) approvals: Arc<Approvals>,
    /// For replays: the pipeline whose policy is asked again.
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) protector: Arc<DataProtector>,
    /// The audit log, for queries.
    pub(crate) audit_log: Arc<dyn amas_store::AuditLog>,
}

impl Reader {
    /// The task's current state, unreleased (for in-process callers): from memory while this
    /// process runs it, else folded from its journal.
    ///
    /// # Errors
    /// A store error.
    pub async fn state(&self, task: TaskId) -> Result<Option<TaskState>, RuntimeError> {
        Ok(self.journal.state(task).await?)
    }

    /// Live journal records of every task, from now on (unreleased, for in-process callers).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<JournalRecord> {
        self.journal.subscribe()
    }

    /// Live journal records of `task` from now on (what its event stream needs, without the
    /// records of every other task).
    #[must_use]
    pub fn subscribe_task(&self, task: TaskId) -> broadcast::Receiver<JournalRecord> {
        self.journal.subscribe_task(task)
    }

    /// The task if it exists in `principal`'s tenant and policy lets `principal` perform
    /// `operation` on it. Another tenant's task is [`RuntimeError::NotFound`] before policy is
    /// asked (ids leak nothing), and the attempt is audited.
    ///
    /// # Errors
    /// [`RuntimeError::NotFound`], [`RuntimeError::Forbidden`] when policy refuses, or a store
    /// error.
    pub async fn visible_task(
        &self,
        principal: &Principal,
        task: TaskId,
        operation: &str,
    ) -> Result<TaskState, RuntimeError> {
        let state = match self.state(task).await? {
            Some(state) if state.principal.tenant == principal.tenant => state,
            Some(_) => {
                self.access
                    .cross_tenant_attempt(principal, operation, &format!("task:{task}"))
                    .await;
                return Err(RuntimeError::NotFound(task));
            }
            None => return Err(RuntimeError::NotFound(task)),
        };
        let resource = ApiResource {
            tenant: &state.principal.tenant,
            owner: &state.principal.sub,
            owner_issuer: &state.principal.issuer,
        };
        self.access
            .authorize_api(principal, operation, Some(resource))
            .await?;
        Ok(state)
    }

    /// `task.read`: the task as `principal` may see it.
    ///
    /// # Errors
    /// As [`Reader::visible_task`].
    pub async fn read_task(
        &self,
        principal: &Principal,
        task: TaskId,
    ) -> Result<ReleasedTask, RuntimeError> {
        let state = self.visible_task(principal, task, "task.read").await?;
        Ok(self.release_task(principal, state, "task_read").await)
    }

    /// `task.read` of the task's lineage: where each payload came from and how sensitive it is
    /// (levels and tags, never payloads).
    ///
    /// # Errors
    /// As [`Reader::visible_task`].
    pub async fn read_lineage(
        &self,
        principal: &Principal,
        task: TaskId,
    ) -> Result<LineageGraph, RuntimeError> {
        let state = self.visible_task(principal, task, "task.read").await?;
        Ok(graph(&state))
    }

    /// `task.list`: the tasks of `principal`'s tenant matching `filter` (its tenant is
    /// overridden), each title released by its own scan (a listing has no lineage at hand).
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`], or a store error.
    pub async fn list_tasks(
        &self,
        principal: &Principal,
        mut filter: TaskFilter,
    ) -> Result<TaskPage, RuntimeError> {
        self.access
            .authorize_api(principal, "task.list", None)
            .await?;
        filter.tenant = Some(principal.tenant.clone());
        let mut page = self.journal.store().list(&filter).await?;
        let outbound = self.access.outbound(principal);
        for task in &mut page.tasks {
            let mut released = Released::default();
            outbound.text(
                "title",
                amas_dataprotect::Level::Public,
                &mut task.title,
                &mut released,
            );
            // Audited like every other release that redacted something.
            self.access
                .audit_release(principal, "task_list", task.id, &released)
                .await;
        }
        Ok(page)
    }

    /// `task.cancel`: cancels the task (see [`Scheduler::cancel`]) and returns it as
    /// `principal` may see it.
    ///
    /// # Errors
    /// As [`Reader::visible_task`], or a store error.
    pub async fn cancel_as(
        &self,
        principal: &Principal,
        task: TaskId,
        reason: String,
    ) -> Result<ReleasedTask, RuntimeError> {
        let state = self.visible_task(principal, task, "task.cancel").await?;
        let state = self.scheduler.cancel(state.id, reason).await?;
        Ok(self.release_task(principal, state, "task_cancel").await)
    }

    /// `task.events`: the task's journal as `principal` may see it, every record judged at the
    /// task's most sensitive lineage node and its own scan.
    ///
    /// # Errors
    /// As [`Reader::visible_task`], or a store error.
    pub async fn read_events(
        &self,
        principal: &Principal,
        task: TaskId,
    ) -> Result<ReleasedEvents, RuntimeError> {
        let state = self.visible_task(principal, task, "task.events").await?;
        let records = self.journal.store().read(state.id, 0).await?;
        let floor = Outbound::event_floor(&state);
        let outbound = self.access.outbound(principal);
        let mut released = Released::default();
        let events = records
            .iter()
            .map(|r| release_record(&outbound, floor, r, &mut released))
            .collect();
        self.access
            .audit_release(principal, "task_events", state.id, &released)
            .await;
        Ok(ReleasedEvents {
            task: state.id,
            events,
            redacted_for_clearance: released.redacted(),
        })
    }

    /// `config.read`: the configuration (agents, workflows) for a principal policy lets read it.
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`].
    pub async fn read_config(&self, principal: &Principal) -> Result<&AmasConfig, RuntimeError> {
        self.access
            .authorize_api(principal, "config.read", None)
            .await?;
        Ok(&self.config)
    }

    /// `state` as `principal` may see it, the redaction (if any) audited as `action`.
    pub async fn release_task(
        &self,
        principal: &Principal,
        mut state: TaskState,
        action: &str,
    ) -> ReleasedTask {
        let released = self.access.outbound(principal).task(&mut state);
        self.access
            .audit_release(principal, action, state.id, &released)
            .await;
        ReleasedTask {
            state,
            redacted_for_clearance: released.redacted(),
        }
    }
}

/// One journal record as a reader may see it (JSON), judged at `floor` (the task's most
/// sensitive lineage node) and its own scan; an object gets `redacted_for_clearance: true`
/// when it was above clearance.
#[must_use]
pub fn release_record(
    outbound: &Outbound<'_>,
    floor: amas_dataprotect::Level,
    record: &JournalRecord,
    released: &mut Released,
) -> Value {
    let mut value =
        serde_json::to_value(record).unwrap_or_else(|_| Value::String(WITHHELD.to_owned()));
    let mut mine = Released::default();
    if let Some(event) = value.get_mut("event") {
        outbound.value("event", floor, event, &mut mine);
    }
    if mine.redacted()
        && let Some(obj) = value.as_object_mut()
    {
        obj.insert("redacted_for_clearance".to_owned(), Value::Bool(true));
    }
    released.merge(mine);
    value
}
