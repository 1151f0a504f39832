//! Commands to a task from a process that does not run it (PostgreSQL, several processes): an
//! approver's vote or a cancel arrives at whichever API process the load balancer picked,
//! while only the worker holding the task's lease may write its journal. The API process
//! records the command ([`TaskCommands::record`]); the worker holding the lease, or the next
//! one to claim the task (a pending command wakes a parked task), applies it and records the
//! outcome ([`TaskCommands::complete`], first outcome wins), which the API process waits for.
//! Each record and outcome is also signalled on the channel [`CHANNEL`]
//! ([`CommandListener`]); a lost signal only delays a command until the next poll, since the
//! table is what counts.

use async_trait::async_trait;
use serde_json::Value;

use amas_types::TaskId;

use crate::StoreError;

/// The `LISTEN`/`NOTIFY` channel of commands: `task:<task id>/<schema>` when one is
/// recorded, `done:<command id>/<schema>` when its outcome is. The channel is the database's,
/// shared by every schema in it: the schema (empty for the connection's default) keeps the
/// installations (or parallel test runs) sharing a database from waking each other.
pub const CHANNEL: &str = "amas_commands";

/// The payload signalling a command recorded for `task` in `schema`.
pub(crate) fn recorded_payload(task: TaskId, schema: Option<&str>) -> String {
    format!("task:{task}/{}", schema.unwrap_or_default())
}

/// The payload signalling the outcome of command `id` in `schema`.
pub(crate) fn done_payload(id: CommandId, schema: Option<&str>) -> String {
    format!("done:{id}/{}", schema.unwrap_or_default())
}

/// A recorded command's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub i64);

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a command asks of the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// An approver's vote on one of the task's pending approvals.
    Vote,
    /// Cancel the task.
    Cancel,
}

impl CommandKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vote => "vote",
            Self::Cancel => "cancel",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "vote" => Ok(Self::Vote),
            "cancel" => Ok(Self::Cancel),
            other => Err(StoreError::Corrupt(format!(
                "unknown command kind {other:?}"
            ))),
        }
    }
}

/// A command not applied yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub id: CommandId,
    pub task: TaskId,
    pub kind: CommandKind,
    /// What the runtime recorded (the vote, the cancel's reason).
    pub body: Value,
}

/// A signal on [`CHANNEL`], as [`CommandListener::next`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandSignal {
    /// A command for this task was recorded.
    Recorded(TaskId),
    /// This command's outcome was recorded.
    Done(CommandId),
    /// The connection was lost and re-established: signals may have been missed.
    Missed,
}

/// Commands to tasks, in the database the tasks are in.
#[async_trait]
pub trait TaskCommands: Send + Sync {
    /// Records a command for `task` and signals it; returns its id.
    ///
    /// # Errors
    /// Backend errors (an unknown task among them).
    async fn record(
        &self,
        task: TaskId,
        kind: CommandKind,
        body: &Value,
    ) -> Result<CommandId, StoreError>;

    /// The commands of `tasks` without an outcome, oldest first.
    ///
    /// # Errors
    /// Backend errors; [`StoreError::Corrupt`] for a row this binary cannot read.
    async fn pending(&self, tasks: &[TaskId]) -> Result<Vec<Command>, StoreError>;

    /// Records the outcome of a command and signals it, unless it already has one (the first
    /// outcome wins); returns whether this one was recorded.
    ///
    /// # Errors
    /// Backend errors.
    async fn complete(&self, id: CommandId, outcome: &Value) -> Result<bool, StoreError>;

    /// Records `outcome` for every command of `task` still without one (the task ended);
    /// returns how many.
    ///
    /// # Errors
    /// Backend errors.
    async fn complete_task(&self, task: TaskId, outcome: &Value) -> Result<u64, StoreError>;

    /// The outcome of a command, once it has one.
    ///
    /// # Errors
    /// Backend errors.
    async fn outcome(&self, id: CommandId) -> Result<Option<Value>, StoreError>;

    /// Listens to [`CHANNEL`] on a connection of its own.
    ///
    /// # Errors
    /// Backend errors.
    async fn listen(&self) -> Result<CommandListener, StoreError>;
}

/// The signals of [`CHANNEL`], on a connection of their own that reconnects by itself.
pub struct CommandListener {
    pub(crate) inner: sqlx::postgres::PgListener,
    /// The schema whose signals this listener reports (empty: the default one).
    pub(crate) schema: String,
}

impl CommandListener {
    /// The next signal; [`CommandSignal::Missed`] after a reconnection. Payloads this binary
    /// does not know are skipped.
    ///
    /// # Errors
    /// Backend errors (the pool was closed, a reconnection failed).
    pub async fn next(&mut self) -> Result<CommandSignal, StoreError> {
        loop {
            let Some(notification) = self.inner.try_recv().await? else {
                return Ok(CommandSignal::Missed);
            };
            if let Some(signal) = parse_signal(notification.payload(), &self.schema) {
                return Ok(signal);
            }
        }
    }
}

/// A payload of [`CHANNEL`] for `schema`, if this binary knows it.
fn parse_signal(payload: &str, schema: &str) -> Option<CommandSignal> {
    let (payload, of) = payload.rsplit_once('/')?;
    if of != schema {
        return None;
    }
    if let Some(task) = payload.strip_prefix("task:") {
        return uuid::Uuid::parse_str(task)
            .ok()
            .map(|id| CommandSignal::Recorded(TaskId(id)));
    }
    payload
        .strip_prefix("done:")
        .and_then(|id| id.parse().ok())
        .map(|id| CommandSignal::Done(CommandId(id)))
}

/// The `kind` column read back.
pub(crate) fn kind_of(s: &str) -> Result<CommandKind, StoreError> {
    CommandKind::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signals come from every schema sharing the database: only this schema's are reported,
    /// and what does not parse is skipped, never an error.
    #[test]
    fn signals_of_this_schema_parse_and_anything_else_is_skipped() {
        let task = TaskId::new();
        for schema in [None, Some("amas_a")] {
            let mine = schema.unwrap_or_default();
            assert_eq!(
                parse_signal(&recorded_payload(task, schema), mine),
                Some(CommandSignal::Recorded(task))
            );
            assert_eq!(
                parse_signal(&done_payload(CommandId(42), schema), mine),
                Some(CommandSignal::Done(CommandId(42)))
            );
        }
        assert_eq!(
            parse_signal(&recorded_payload(task, Some("amas_b")), "amas_a"),
            None,
            "another schema's"
        );
        assert_eq!(
            parse_signal(&recorded_payload(task, Some("amas_b")), ""),
            None
        );
        for other in ["", "task:nope/", "done:x/", "hello", "done:/", "done:1"] {
            assert_eq!(parse_signal(other, ""), None, "{other:?}");
        }
    }
}
