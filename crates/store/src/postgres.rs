//! The PostgreSQL backend: for several AMAS processes sharing one database.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, QueryBuilder, Row};

use std::collections::BTreeMap;

use amas_types::{Approval, ApprovalId, JournalEvent, JournalRecord, TaskId, TaskStatus, TenantId};

use crate::shared::{self, Failed, NewTask};
use crate::{
    ApprovalFilter, ApprovalPage, StoreError, TaskFilter, TaskJournal, TaskPage, TaskSummary,
};

mod claim;
mod commands;
mod group;
mod leases;
mod notify;
mod queue;

pub use notify::PgCommitListener;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A [`TaskJournal`] in a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    schema: Option<String>,
    /// Where its commits are announced (`notify.rs`).
    channel: std::sync::Arc<str>,
}

impl PostgresStore {
    /// Connects to `url` and brings the schema up to date. Tables live in the connection's
    /// default schema (usually `public`).
    ///
    /// # Errors
    /// [`StoreError::InvalidConfig`] for a URL that does not parse; [`StoreError::Backend`] when
    /// the server cannot be reached; [`StoreError::Migration`] when migrating fails.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let store = Self::unmigrated(url, max_connections, None, None).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// Like [`PostgresStore::connect`], with every table in `schema` (created when missing):
    /// several installations, or parallel test runs, can share one database.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`], and [`StoreError::InvalidConfig`] for a schema name that is
    /// not 1-63 characters of `[a-z0-9_]` starting with a letter or `_`.
    pub async fn connect_in_schema(
        url: &str,
        max_connections: u32,
        schema: &str,
    ) -> Result<Self, StoreError> {
        let store = Self::unmigrated(url, max_connections, Some(schema), None).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// Connects as [`PostgresStore::connect_in_schema`] (or [`PostgresStore::connect`] without
    /// a schema) does, without touching the tables: for [`crate::Store::open`], which decides
    /// about migrations.
    ///
    /// `idle_limit`: the server ends a session whose transaction sits idle longer
    /// (`idle_in_transaction_session_timeout`). A worker paused or cut off in the middle of a
    /// transaction (between its statements) holds row locks that claims skip; fencing keeps
    /// it from writing, this lets the others claim its tasks again (the lease's lifetime).
    pub(crate) async fn unmigrated(
        url: &str,
        max_connections: u32,
        schema: Option<&str>,
        idle_limit: Option<std::time::Duration>,
    ) -> Result<Self, StoreError> {
        let mut options = parse_url(url)?;
        if let Some(schema) = schema {
            validate_schema_name(schema)?;
            let mut conn = PgConnection::connect_with(&options).await?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&mut conn)
            .await?;
            conn.close().await?;
            options = options.options([("search_path", schema)]);
        }
        if let Some(limit) = idle_limit {
            let ms = limit.as_millis().max(1).to_string();
            options = options.options([("idle_in_transaction_session_timeout", ms)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            schema: schema.map(str::to_owned),
            channel: notify::channel(schema).into(),
        })
    }

    /// The connection pool, for other stores that share the database.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema given to [`PostgresStore::connect_in_schema`], if any.
    #[must_use]
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A listener to the journal commits of every process sharing this store's schema (its
    /// own included), on a connection of its own, made on the first
    /// [`crate::CommitListener::next`].
    #[must_use]
    pub fn commit_listener(&self) -> PgCommitListener {
        PgCommitListener::new(&self.pool, self.channel.to_string())
    }

    /// Closes every connection; later calls fail. Waits for running transactions to end.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Drops the store's own schema with everything in it, then closes the pool. For tests and
    /// for uninstalling; does nothing to the database for a store without its own schema.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the drop fails.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        if let Some(schema) = &self.schema {
            sqlx::query(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&self.pool)
            .await?;
        }
        self.pool.close().await;
        Ok(())
    }
}

fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    // The parse error can quote the URL, password included: say only that it is invalid.
    PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::InvalidConfig("the PostgreSQL URL does not parse".to_owned()))
}

/// Schema names are put into SQL text (DDL takes no bind parameters), so only a safe alphabet
/// is accepted.
fn validate_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(StoreError::InvalidConfig(format!(
            "schema name {schema:?} must be 1-63 characters of [a-z0-9_], not starting with a digit"
        )))
    }
}

fn summary_from_row(row: &PgRow) -> Result<TaskSummary, StoreError> {
    Ok(TaskSummary {
        id: TaskId(row.try_get("id")?),
        tenant: TenantId(row.try_get("tenant")?),
        task_type: row.try_get("task_type")?,
        title: row.try_get("title")?,
        priority: shared::parse_priority(i64::from(row.try_get::<i16, _>("priority")?))?,
        status: shared::parse_status(row.try_get("status")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_seq: shared::from_db_seq(row.try_get("last_seq")?)?,
    })
}

const SUMMARY_COLUMNS: &str =
    "id, tenant, task_type, title, priority, status, created_at, updated_at, last_seq";

/// Inserts the batch's events (all in one statement, whatever the batch size) and then moves the
/// projection row on; `$1` task, `$2` time, `$3..$5` seqs, kinds and JSON texts.
const INSERT_EVENTS: &str = "INSERT INTO journal (task_id, seq, recorded_at, kind, event) \
     SELECT $1, e.seq, $2, e.kind, e.event::json \
     FROM UNNEST($3::bigint[], $4::text[], $5::text[]) AS e (seq, kind, event)";

impl PostgresStore {
    async fn try_append(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
        fence: Option<crate::Fence>,
    ) -> Result<Vec<JournalRecord>, Failed> {
        shared::validate(expected_last_seq, events)?;
        let encoded = shared::encode(expected_last_seq, events)?;
        let now: DateTime<Utc> = shared::now();

        let mut tx = self.pool.begin().await?;
        let written = append_in(
            &mut tx,
            task,
            expected_last_seq,
            events,
            fence,
            &encoded,
            now,
        )
        .await;
        if let Err(e) = written {
            // At once, not when the pool gets to it: the row lock of a refused append must not
            // outlive the refusal (a claimer would skip the task meanwhile).
            let _ = tx.rollback().await;
            return Err(e);
        }
        let records = shared::records(task, expected_last_seq, now, events)?;
        // Delivered to listeners when this commits.
        notify::send(&mut tx, &self.channel, &notify::last_seqs(&records)).await?;
        notify::send_submitted(&mut tx, self.schema(), &notify::submitted(&records)).await?;
        tx.commit().await?;
        Ok(records)
    }

    async fn last_seq(&self, task: TaskId) -> Result<u64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM tasks WHERE id = $1")
            .bind(task.0)
            .fetch_optional(&self.pool)
            .await?;
        seq.map_or(Ok(0), shared::from_db_seq)
    }
}

/// The checks and writes of one append, inside `tx` (committed by the caller).
async fn append_in(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    task: TaskId,
    expected_last_seq: u64,
    events: &[JournalEvent],
    fence: Option<crate::Fence>,
    encoded: &shared::Encoded,
    now: DateTime<Utc>,
) -> Result<(), Failed> {
    // The row lock serializes appenders of an existing task: the second waits here, then
    // sees the new last seq. Two creators of the same new task both find no row; the second
    // then fails on the primary key, which is reported as a conflict.
    let current =
        sqlx::query("SELECT last_seq, status, tenant FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(task.0)
            .fetch_optional(&mut **tx)
            .await?;
    let current = match current {
        Some(row) => Some((
            shared::from_db_seq(row.try_get("last_seq")?)?,
            shared::parse_status(row.try_get("status")?)?,
            TenantId(row.try_get("tenant")?),
        )),
        None => None,
    };
    // The fence first: an ended task takes nothing, whatever seq is expected. The row lock
    // makes it exact: an append waiting behind the one that ended the task sees the end.
    if let Some((_, status, _)) = &current {
        shared::refuse_if_ended(task, *status)?;
    }
    // Then the lease's fence, under the same row lock (every claim takes it too): a worker
    // whose epoch is not current, or whose lease expired, writes nothing.
    if let Some(fence) = fence {
        let held = leases::current(tx, &[task.0]).await?;
        leases::check(&held, task, fence)?;
    }
    let actual = current.as_ref().map_or(0, |(seq, _, _)| *seq);
    let current_exists = current.is_some();
    if actual != expected_last_seq {
        return Err(Failed::Store(StoreError::Conflict {
            task,
            expected: expected_last_seq,
            actual,
        }));
    }
    let status = shared::project_status(current.as_ref().map(|(_, s, _)| *s), events);
    let last_seq = encoded.seqs.last().copied().unwrap_or_default();

    let tenant = if let Some((_, _, tenant)) = current {
        tenant
    } else {
        let new = NewTask::from_first(events)?;
        sqlx::query(
            "INSERT INTO tasks (id, tenant, task_type, title, priority, status, created_at, \
                 updated_at, last_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
        )
        .bind(task.0)
        .bind(new.tenant)
        .bind(new.task_type)
        .bind(new.title)
        .bind(new.priority)
        .bind(status.as_str())
        .bind(now)
        .bind(last_seq)
        .execute(&mut **tx)
        .await?;
        TenantId(new.tenant.to_owned())
    };
    if current_exists {
        sqlx::query("UPDATE tasks SET status = $2, updated_at = $3, last_seq = $4 WHERE id = $1")
            .bind(task.0)
            .bind(status.as_str())
            .bind(now)
            .bind(last_seq)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(INSERT_EVENTS)
        .bind(task.0)
        .bind(now)
        .bind(&encoded.seqs)
        .bind(&encoded.kinds)
        .bind(&encoded.json)
        .execute(&mut **tx)
        .await?;
    project_approvals(tx, task, &tenant, status, events, now).await?;
    Ok(())
}

/// Keeps the approvals projection, and the task status that depends on how many approvals are
/// pending, in step with a batch, inside its transaction.
async fn project_approvals(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    task: TaskId,
    tenant: &TenantId,
    status: TaskStatus,
    events: &[JournalEvent],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let touched = shared::touched_approvals(events);
    if touched.is_empty() {
        return Ok(());
    }
    let mut approvals = BTreeMap::new();
    for approval_id in &touched {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc::text FROM approvals WHERE id = $1")
                .bind(approval_id.as_str())
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(doc) = doc {
            approvals.insert(approval_id.clone(), shared::decode_approval(&doc)?);
        }
    }
    shared::apply_approvals(&mut approvals, task, tenant, events, now);
    for approval in approvals.values() {
        sqlx::query(
            "INSERT INTO approvals (id, task_id, tenant, status, requested_by, updated_at, doc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::json) ON CONFLICT (id) DO UPDATE SET \
             status = excluded.status, updated_at = excluded.updated_at, doc = excluded.doc",
        )
        .bind(approval.id.as_str())
        .bind(task.0)
        .bind(&tenant.0)
        .bind(approval.status.as_str())
        .bind(&approval.requested_by)
        .bind(now)
        .bind(shared::encode_approval(approval)?)
        .execute(&mut **tx)
        .await?;
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM approvals WHERE task_id = $1 AND status = 'pending'",
    )
    .bind(task.0)
    .fetch_one(&mut **tx)
    .await?;
    let corrected = status.with_pending_approvals(usize::try_from(pending).unwrap_or(usize::MAX));
    if corrected != status {
        sqlx::query("UPDATE tasks SET status = $2 WHERE id = $1")
            .bind(task.0)
            .bind(corrected.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn approvals_from_rows(rows: &[PgRow]) -> Result<Vec<Approval>, StoreError> {
    rows.iter()
        .map(|row| shared::decode_approval(row.try_get("doc")?))
        .collect()
}

#[async_trait]
impl TaskJournal for PostgresStore {
    async fn append(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
    ) -> Result<Vec<JournalRecord>, StoreError> {
        self.append_fenced(task, expected_last_seq, events, None)
            .await
    }

    async fn append_fenced(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
        fence: Option<crate::Fence>,
    ) -> Result<Vec<JournalRecord>, StoreError> {
        match self
            .try_append(task, expected_last_seq, events, fence)
            .await
        {
            Ok(records) => Ok(records),
            Err(Failed::Store(e)) => Err(e),
            Err(Failed::Raced) => Err(StoreError::Conflict {
                task,
                expected: expected_last_seq,
                actual: self.last_seq(task).await?,
            }),
        }
    }

    async fn read(&self, task: TaskId, after_seq: u64) -> Result<Vec<JournalRecord>, StoreError> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        // `event::text` hands back the JSON exactly as appended.
        let rows = sqlx::query(
            "SELECT seq, recorded_at, event::text AS event FROM journal \
             WHERE task_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(task.0)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let seq = shared::from_db_seq(row.try_get("seq")?)?;
                Ok(JournalRecord {
                    task_id: task,
                    seq,
                    recorded_at: row.try_get("recorded_at")?,
                    event: shared::decode_event(task, seq, row.try_get("event")?)?,
                })
            })
            .collect()
    }

    async fn summary(&self, task: TaskId) -> Result<Option<TaskSummary>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, task_type, title, priority, status, created_at, updated_at, \
             last_seq FROM tasks WHERE id = $1",
        )
        .bind(task.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(summary_from_row).transpose()
    }

    async fn list(&self, filter: &TaskFilter) -> Result<TaskPage, StoreError> {
        let limit = filter.limit.max(1);
        let mut query = QueryBuilder::<Postgres>::new("SELECT ");
        query.push(SUMMARY_COLUMNS).push(" FROM tasks WHERE TRUE");
        if let Some(tenant) = &filter.tenant {
            query.push(" AND tenant = ").push_bind(tenant.0.clone());
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(task_type) = &filter.task_type {
            query.push(" AND task_type = ").push_bind(task_type.clone());
        }
        if let Some(cursor) = filter.cursor {
            query.push(" AND id < ").push_bind(cursor.0);
        }
        // One row more than asked tells whether a next page exists without a count query.
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = query.build().fetch_all(&self.pool).await?;
        let mut tasks = rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = shared::page_cursor(&mut tasks, limit, |t| t.id);
        Ok(TaskPage { tasks, next_cursor })
    }

    async fn unfinished(&self) -> Result<Vec<TaskId>, StoreError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE status IN ('queued', 'running', 'waiting_approval') \
             ORDER BY id ASC",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(TaskId).collect())
    }

    async fn approval(&self, id: &ApprovalId) -> Result<Option<Approval>, StoreError> {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc::text FROM approvals WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        doc.as_deref().map(shared::decode_approval).transpose()
    }

    async fn approvals(&self, filter: &ApprovalFilter) -> Result<ApprovalPage, StoreError> {
        let limit = filter.limit.max(1);
        let mut query =
            QueryBuilder::<Postgres>::new("SELECT doc::text AS doc FROM approvals WHERE 1 = 1");
        if let Some(tenant) = &filter.tenant {
            query.push(" AND tenant = ").push_bind(tenant.0.clone());
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(who) = &filter.not_requested_by {
            // The issuer lives in the approval's document (absent in rows written before it
            // was recorded: the empty issuer).
            query
                .push(" AND NOT (requested_by = ")
                .push_bind(who.subject.clone())
                .push(" AND COALESCE(doc->>'requested_by_issuer', '') = ")
                .push_bind(who.issuer.clone())
                .push(")");
        }
        if let Some(cursor) = &filter.cursor {
            query.push(" AND id < ").push_bind(cursor.clone());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows = query.build().fetch_all(&self.pool).await?;
        let mut approvals = approvals_from_rows(&rows)?;
        let next_cursor = shared::page_cursor(&mut approvals, limit, |a| a.id.to_string());
        Ok(ApprovalPage {
            approvals,
            next_cursor,
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn ended_before(
        &self,
        ended_before: DateTime<Utc>,
        after: Option<TaskId>,
        limit: u32,
    ) -> Result<Vec<TaskSummary>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new("SELECT ");
        query
            .push(SUMMARY_COLUMNS)
            .push(
                " FROM tasks WHERE status IN ('succeeded', 'failed', 'cancelled') \
                 AND updated_at < ",
            )
            .push_bind(ended_before);
        if let Some(after) = after {
            query.push(" AND id > ").push_bind(after.0);
        }
        query
            .push(" ORDER BY id ASC LIMIT ")
            .push_bind(i64::from(limit.max(1)));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(summary_from_row).collect()
    }

    async fn purge_payloads(
        &self,
        task: TaskId,
        seqs: &[u64],
        at: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The row lock keeps an appender (a resumed task, a cancel) out until the purge commits.
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1 FOR UPDATE")
                .bind(task.0)
                .fetch_optional(&mut *tx)
                .await?;
        shared::check_purgeable(task, status.as_deref())?;
        let mut purged = Vec::new();
        for &seq in seqs {
            let Ok(db_seq) = i64::try_from(seq) else {
                continue;
            };
            let event: Option<String> = sqlx::query_scalar(
                "SELECT event::text FROM journal \
                 WHERE task_id = $1 AND seq = $2 AND purged_at IS NULL",
            )
            .bind(task.0)
            .bind(db_seq)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(event) = event else { continue };
            let Some(row) = shared::purge_row(task, seq, &event, at)? else {
                continue;
            };
            sqlx::query(
                "UPDATE journal SET event = $3::json, purged_at = $4 \
                 WHERE task_id = $1 AND seq = $2",
            )
            .bind(task.0)
            .bind(db_seq)
            .bind(&row.event)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            if let Some(title) = &row.title {
                sqlx::query("UPDATE tasks SET title = $2 WHERE id = $1")
                    .bind(task.0)
                    .bind(title)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((approval_id, arguments)) = &row.approval {
                let doc: Option<String> =
                    sqlx::query_scalar("SELECT doc::text FROM approvals WHERE id = $1")
                        .bind(approval_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some(doc) = doc {
                    sqlx::query("UPDATE approvals SET doc = $2::json WHERE id = $1")
                        .bind(approval_id.as_str())
                        .bind(shared::approval_with_arguments(&doc, arguments)?)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            purged.push(seq);
        }
        tx.commit().await?;
        Ok(purged)
    }
}

/// One transaction per batch (`group.rs`).
#[async_trait]
impl crate::GroupCommit for PostgresStore {
    async fn group_commit(
        &self,
        appends: &[crate::Append],
        audit: &[crate::AuditRecord],
    ) -> Result<crate::Committed, StoreError> {
        match self.try_group(appends, audit).await {
            Ok(committed) => Ok(committed),
            Err(Failed::Store(e)) => Err(e),
            // Nothing was committed; the caller retries the appends one by one, which names
            // the conflict.
            Err(Failed::Raced) => Err(StoreError::Backend(
                "a concurrent writer took a journal seq of this batch".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema name is spliced into DDL, so anything that could break out of the quotes
    /// must be refused.
    #[test]
    fn schema_names_outside_the_safe_alphabet_are_refused() {
        assert!(validate_schema_name("amas_test_01").is_ok());
        for bad in ["", "1abc", "a\"; DROP", "Upper", "a-b", &"a".repeat(64)] {
            assert!(validate_schema_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unparsable_urls_do_not_echo_the_password() {
        let err = parse_url("postgres://u:hunter2@host:notaport/db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("does not parse"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    /// A session whose transaction sits idle past the limit (a worker paused between two
    /// statements) is ended by the server, so the row locks it held are free again; the
    /// schema's search path still applies beside the limit.
    #[tokio::test]
    async fn a_transaction_left_idle_past_the_limit_is_ended_by_the_server() {
        let url = std::env::var("AMAS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let schema = format!("amas_idle_{}", uuid::Uuid::now_v7().simple());
        let store = PostgresStore::unmigrated(
            &url,
            2,
            Some(&schema),
            Some(std::time::Duration::from_millis(300)),
        )
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"));
        let path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(store.pool())
            .await
            .unwrap_or_else(|e| panic!("show: {e}"));
        assert_eq!(path, schema);
        let mut tx = store.pool().begin().await.unwrap_or_else(|e| panic!("{e}"));
        sqlx::query("SELECT 1")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let after = sqlx::query("SELECT 1").execute(&mut *tx).await;
        assert!(after.is_err(), "the idle transaction was ended");
        drop(tx);
        // The pool itself goes on (a new session).
        sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("drop: {e}"));
    }
}
