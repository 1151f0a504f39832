//! Durable storage. One trait per capability ([`TaskJournal`] for now), a SQLite backend (the
//! embedded default) and a PostgreSQL backend, and one conformance suite ([`conformance`]) that
//! every backend passes. [`Store::open`] opens the one the `store` section selects, its schema
//! checked ([`schema`]); [`copy`] moves an installation from SQLite to PostgreSQL.

pub mod audit;
mod backend;
mod commands;
mod commit;
pub mod conformance;
pub mod copy;
mod error;
mod leases;
mod notices;
mod postgres;
pub mod private;
mod queue;
pub mod retention;
pub mod schema;
mod shared;
mod sqlite;

pub use audit::{AuditLog, AuditRecord, AuditWriter};
pub use backend::{OpenOptions, SchemaAction, Store, location, sqlite_dir};
pub use commands::{
    CHANNEL as COMMANDS_CHANNEL, Command, CommandId, CommandKind, CommandListener, CommandSignal,
    TaskCommands,
};
pub use commit::{Append, Committed, GroupCommit};
pub use error::StoreError;
pub use leases::{Fence, Lease, TaskLeases};
pub use notices::{CommitListener, CommitNotice};
pub use postgres::{PgCommitListener, PostgresStore};
pub use queue::{Fairness, TaskQueue, TenantBacklog, TenantShare, Waiting};
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use amas_types::{
    Approval, ApprovalId, ApprovalStatus, Identity, JournalEvent, JournalRecord, Priority, TaskId,
    TaskStatus, TenantId,
};

/// The per-task, append-only event log and the task listing derived from it.
#[async_trait]
pub trait TaskJournal: Send + Sync {
    /// Appends `events` to `task`'s journal as seq `expected_last_seq + 1 ..`. The append succeeds
    /// only if the journal's last seq is exactly `expected_last_seq` (0 for a new task), so two
    /// writers can never both win. Appends and the listing projection commit atomically.
    /// The first event of a task must be `TaskSubmitted`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the last seq differs; [`StoreError::InvalidAppend`] for an
    /// empty batch or a first event that is not a submission; backend errors.
    async fn append(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
    ) -> Result<Vec<JournalRecord>, StoreError>;

    /// [`TaskJournal::append`] by a worker holding a lease on `task` ([`TaskLeases`]): with
    /// `fence`, the append is refused unless the fence's epoch is the task's current one and
    /// its lease has not expired, checked under the same lock as the seq and the end fence. A
    /// worker that lost its lease (expired, released, taken over) can never append again for
    /// the task. Without `fence`, as [`TaskJournal::append`].
    ///
    /// The default, for backends without leases (SQLite: one process), refuses every fence.
    ///
    /// # Errors
    /// As [`TaskJournal::append`]; [`StoreError::LeaseLost`] for a fence that is not current.
    async fn append_fenced(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
        fence: Option<Fence>,
    ) -> Result<Vec<JournalRecord>, StoreError> {
        match fence {
            None => self.append(task, expected_last_seq, events).await,
            Some(_) => Err(leases::unsupported()),
        }
    }

    /// The events of `task` with seq > `after_seq`, in order. Empty for an unknown task.
    async fn read(&self, task: TaskId, after_seq: u64) -> Result<Vec<JournalRecord>, StoreError>;

    /// The listing projection of one task; `None` when unknown.
    async fn summary(&self, task: TaskId) -> Result<Option<TaskSummary>, StoreError>;

    /// Tasks matching `filter`, newest first, with a cursor for the next page.
    async fn list(&self, filter: &TaskFilter) -> Result<TaskPage, StoreError>;

    /// Tasks whose status is not terminal (queued, running or waiting for approval), oldest
    /// first: what recovery resumes.
    async fn unfinished(&self) -> Result<Vec<TaskId>, StoreError>;

    /// One approval as projected from its task's journal; `None` when unknown.
    async fn approval(&self, id: &ApprovalId) -> Result<Option<Approval>, StoreError>;

    /// Approvals matching `filter`, newest first, with a cursor for the next page.
    async fn approvals(&self, filter: &ApprovalFilter) -> Result<ApprovalPage, StoreError>;

    /// Cheap check that the backend answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Ended tasks (succeeded, failed, cancelled) whose last event was recorded before
    /// `ended_before`, by id ascending after `after`, at most `limit`: what a retention purge
    /// looks at.
    async fn ended_before(
        &self,
        ended_before: DateTime<Utc>,
        after: Option<TaskId>,
        limit: u32,
    ) -> Result<Vec<TaskSummary>, StoreError>;

    /// Replaces the payloads of `task`'s events at `seqs` with tombstones
    /// ([`retention::tombstone_event`]) in one transaction, and the approval documents and the
    /// listing title that copy them. Seqs without a payload, unknown or already purged are
    /// skipped, so a purge is idempotent. Returns the seqs purged now.
    ///
    /// # Errors
    /// [`StoreError::NotPurgeable`] when the task is unknown or has not ended; backend errors.
    async fn purge_payloads(
        &self,
        task: TaskId,
        seqs: &[u64],
        at: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError>;
}

/// The listing view of a task, kept in step with its journal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskSummary {
    pub id: TaskId,
    pub tenant: TenantId,
    pub task_type: String,
    pub title: String,
    pub priority: Priority,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_seq: u64,
}

/// Listing filter. `cursor` is the last id of the previous page.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub tenant: Option<TenantId>,
    pub status: Option<TaskStatus>,
    pub task_type: Option<String>,
    /// 1..=500; the caller validates.
    pub limit: u32,
    pub cursor: Option<TaskId>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskPage {
    pub tasks: Vec<TaskSummary>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<TaskId>,
}

/// Approval listing filter. `cursor` is the last id of the previous page.
#[derive(Clone, Debug, Default)]
pub struct ApprovalFilter {
    pub tenant: Option<TenantId>,
    pub status: Option<ApprovalStatus>,
    /// Only approvals not requested by this person (what they may vote on): the same `sub`
    /// at another issuer is another person.
    pub not_requested_by: Option<Identity>,
    /// 1..=500; the caller validates.
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApprovalPage {
    pub approvals: Vec<Approval>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
