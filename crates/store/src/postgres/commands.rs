//! Commands to tasks on PostgreSQL (`task_commands`, migration 0007). A record and its
//! `pg_notify` commit together, so a signal never names a command that is not there; an
//! outcome is recorded only once (`done_at IS NULL` in the update), under the row lock the
//! update takes, so two workers (the old holder of a lease and the new one) cannot both answer.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPoolOptions};
use uuid::Uuid;

use amas_types::TaskId;

use super::PostgresStore;
use crate::StoreError;
use crate::commands::{
    CHANNEL, Command, CommandId, CommandKind, CommandListener, TaskCommands, done_payload, kind_of,
    recorded_payload,
};

fn encode(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::InvalidAppend(e.to_string()))
}

fn decode(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("command document: {e}")))
}

#[async_trait]
impl TaskCommands for PostgresStore {
    async fn record(
        &self,
        task: TaskId,
        kind: CommandKind,
        body: &Value,
    ) -> Result<CommandId, StoreError> {
        let mut tx = self.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO task_commands (task_id, kind, body) VALUES ($1, $2, $3::jsonb) \
             RETURNING id",
        )
        .bind(task.0)
        .bind(kind.as_str())
        .bind(encode(body)?)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(recorded_payload(task, self.schema()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(CommandId(id))
    }

    async fn pending(&self, tasks: &[TaskId]) -> Result<Vec<Command>, StoreError> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.0).collect();
        let rows = sqlx::query(
            "SELECT id, task_id, kind, body::text AS body FROM task_commands \
             WHERE task_id = ANY($1) AND done_at IS NULL ORDER BY id",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let body: Option<String> = row.try_get("body")?;
                Ok(Command {
                    id: CommandId(row.try_get("id")?),
                    task: TaskId(row.try_get("task_id")?),
                    kind: kind_of(row.try_get("kind")?)?,
                    body: body.as_deref().map_or(Ok(Value::Null), decode)?,
                })
            })
            .collect()
    }

    async fn complete(&self, id: CommandId, outcome: &Value) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE task_commands SET done_at = clock_timestamp(), outcome = $2::jsonb, \
             body = NULL WHERE id = $1 AND done_at IS NULL",
        )
        .bind(id.0)
        .bind(encode(outcome)?)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(done_payload(id, self.schema()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn complete_task(&self, task: TaskId, outcome: &Value) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE task_commands SET done_at = clock_timestamp(), outcome = $2::jsonb, \
             body = NULL WHERE task_id = $1 AND done_at IS NULL RETURNING id",
        )
        .bind(task.0)
        .bind(encode(outcome)?)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(done_payload(CommandId(*id), self.schema()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
    }

    async fn outcome(&self, id: CommandId) -> Result<Option<Value>, StoreError> {
        let outcome: Option<Option<String>> =
            sqlx::query_scalar("SELECT outcome::text FROM task_commands WHERE id = $1")
                .bind(id.0)
                .fetch_optional(self.pool())
                .await?;
        outcome.flatten().as_deref().map(decode).transpose()
    }

    async fn listen(&self) -> Result<CommandListener, StoreError> {
        // A connection of its own, outside the pool: a listener holds its connection for
        // good, and must never take the last one the journal needs.
        let options = (*self.pool().connect_options()).clone();
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let mut inner = PgListener::connect_with(&own).await?;
        inner.listen(CHANNEL).await?;
        Ok(CommandListener {
            inner,
            schema: self.schema().unwrap_or_default().to_owned(),
        })
    }
}
