//! The SQLite backend: the embedded default, one `amas.db` file under the data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use std::collections::BTreeMap;

use amas_types::{Approval, ApprovalId, JournalEvent, JournalRecord, TaskId, TaskStatus, TenantId};

use crate::audit::AuditRecord;
use crate::commit::{Append, Committed, GroupCommit};
use crate::shared::{self, Failed, NewTask};
use crate::{
    ApprovalFilter, ApprovalPage, StoreError, TaskFilter, TaskJournal, TaskPage, TaskSummary,
};

/// How long a writer waits for another writer's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite has one writer at a time; a few connections let reads run beside it.
const FILE_POOL_SIZE: u32 = 4;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A [`TaskJournal`] in a SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    data_dir: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/amas.db` and brings its schema up to date.
    ///
    /// WAL mode with `synchronous=FULL`: with `NORMAL` a commit that returned could still be
    /// lost on power failure, and an acknowledged journal event must not disappear.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the directory or file cannot be created or opened;
    /// [`StoreError::Migration`] when the schema cannot be migrated.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, true).await
    }

    /// As [`SqliteStore::open`], choosing the commit durability: `full_sync` fsyncs every commit;
    /// without it (WAL + `synchronous=NORMAL`) a commit survives a process crash but the last
    /// commits may be lost on power loss. Never corrupts either way.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_with(data_dir: &Path, full_sync: bool) -> Result<Self, StoreError> {
        let store = Self::unmigrated(data_dir, full_sync).await?;
        MIGRATOR.run(&store.pool).await?;
        Ok(store)
    }

    /// Opens (creating if needed) `data_dir/amas.db` as [`SqliteStore::open_with`] does, without
    /// touching its schema: for [`crate::Store::open`], which decides about migrations.
    pub(crate) async fn unmigrated(data_dir: &Path, full_sync: bool) -> Result<Self, StoreError> {
        // Owner-only before SQLite sees it: SQLite gives the WAL and shared-memory files the
        // database file's mode, so they are owner-only too.
        let db = data_dir.join("amas.db");
        crate::private::create_private_dir(data_dir)
            .and_then(|()| crate::private::create_private_file(&db))
            .map_err(|e| {
                StoreError::Backend(format!(
                    "cannot create the database in {}: {e}",
                    data_dir.display()
                ))
            })?;
        let options = SqliteConnectOptions::new()
            .filename(db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if full_sync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Deleted and overwritten content is zeroed on disk, not left in free space: a
            // retention purge must leave no copy of the payload in the file.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            data_dir: Some(data_dir.to_owned()),
        })
    }

    /// A private in-memory database, for tests. One connection that never closes, because each
    /// connection to `:memory:` is its own database and closing it loses the data.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool, None).await
    }

    async fn migrated(pool: SqlitePool, data_dir: Option<PathBuf>) -> Result<Self, StoreError> {
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, data_dir })
    }

    /// The directory holding `amas.db`; `None` for an in-memory store.
    #[must_use]
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// The connection pool, for other stores that share the database file.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes every connection; later calls fail. Waits for running transactions to end.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn id_text(task: TaskId) -> String {
    task.0.hyphenated().to_string()
}

fn parse_id(text: &str) -> Result<TaskId, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("bad task id {text:?}: {e}")))
}

fn summary_from_row(row: &SqliteRow) -> Result<TaskSummary, StoreError> {
    Ok(TaskSummary {
        id: parse_id(row.try_get("id")?)?,
        tenant: TenantId(row.try_get("tenant")?),
        task_type: row.try_get("task_type")?,
        title: row.try_get("title")?,
        priority: shared::parse_priority(row.try_get("priority")?)?,
        status: shared::parse_status(row.try_get("status")?)?,
        created_at: shared::parse_time(row.try_get("created_at")?)?,
        updated_at: shared::parse_time(row.try_get("updated_at")?)?,
        last_seq: shared::from_db_seq(row.try_get("last_seq")?)?,
    })
}

const SUMMARY_COLUMNS: &str =
    "id, tenant, task_type, title, priority, status, created_at, updated_at, last_seq";

/// A validated, encoded append waiting for its turn in a group commit.
struct Prepared<'a> {
    /// Its position in the caller's batch.
    index: usize,
    task: TaskId,
    id: String,
    expected_last_seq: u64,
    events: &'a [JournalEvent],
    encoded: shared::Encoded,
}

/// A task's projection row as the transaction has it so far.
#[derive(Clone)]
struct Current {
    last_seq: u64,
    status: TaskStatus,
    tenant: TenantId,
    /// Not yet in the table: inserted at the end of the round.
    new: Option<(String, String, String, i16)>,
    touched: bool,
}

/// Rows per multi-row statement: 5 parameters a journal row stays far below SQLite's limit.
const ROWS_PER_STATEMENT: usize = 500;

impl SqliteStore {
    /// The group commit: every append of `appends` and the audit `records` in one
    /// `BEGIN IMMEDIATE` transaction, with one statement per kind of row rather than one per
    /// row. An append whose expected seq is stale is refused alone. A task that appears more
    /// than once is handled in rounds (one occurrence per round), so each round reads the
    /// projection the previous one wrote.
    async fn try_group(
        &self,
        appends: &[Append],
        records: &[AuditRecord],
    ) -> Result<Committed, Failed> {
        let mut results: Vec<Option<Result<Vec<JournalRecord>, StoreError>>> =
            (0..appends.len()).map(|_| None).collect();
        let mut rounds: Vec<Vec<Prepared<'_>>> = Vec::new();
        let mut occurrences: BTreeMap<TaskId, usize> = BTreeMap::new();
        for (index, a) in appends.iter().enumerate() {
            // One process, no leases: a fenced append is refused, never silently unfenced.
            let prepared = match a.fence {
                Some(_) => Err(crate::leases::unsupported()),
                None => shared::validate(a.expected_last_seq, &a.events),
            }
            .and_then(|()| shared::encode(a.expected_last_seq, &a.events));
            match prepared {
                Ok(encoded) => {
                    let round = occurrences.entry(a.task).or_default();
                    if rounds.len() <= *round {
                        rounds.push(Vec::new());
                    }
                    rounds[*round].push(Prepared {
                        index,
                        task: a.task,
                        id: id_text(a.task),
                        expected_last_seq: a.expected_last_seq,
                        events: &a.events,
                        encoded,
                    });
                    *round += 1;
                }
                Err(e) => results[index] = Some(Err(e)),
            }
        }
        for rec in records {
            super::audit::validate(rec)?;
        }
        let now = shared::now();
        let now_text = shared::format_time(now);

        // IMMEDIATE takes the write lock up front: two appenders serialize here instead of both
        // reading the same last seq and one failing later with SQLITE_BUSY on lock upgrade.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for round in &rounds {
            let mut current = current_rows(&mut tx, round).await?;
            let mut accepted: Vec<&Prepared<'_>> = Vec::with_capacity(round.len());
            for p in round {
                let known = current.get(&p.task);
                // The fence first: an ended task takes nothing, whatever seq is expected.
                if let Some(c) = known
                    && let Err(e) = shared::refuse_if_ended(p.task, c.status)
                {
                    results[p.index] = Some(Err(e));
                    continue;
                }
                let actual = known.map_or(0, |c| c.last_seq);
                if actual != p.expected_last_seq {
                    results[p.index] = Some(Err(StoreError::Conflict {
                        task: p.task,
                        expected: p.expected_last_seq,
                        actual,
                    }));
                    continue;
                }
                let status = shared::project_status(known.map(|c| c.status), p.events);
                let last_seq =
                    shared::seq_at(p.expected_last_seq, p.events.len().saturating_sub(1))?;
                let row = if let Some(c) = known {
                    Current {
                        last_seq,
                        status,
                        touched: true,
                        ..c.clone()
                    }
                } else {
                    let new = NewTask::from_first(p.events)?;
                    Current {
                        last_seq,
                        status,
                        tenant: TenantId(new.tenant.to_owned()),
                        new: Some((
                            new.tenant.to_owned(),
                            new.task_type.to_owned(),
                            new.title.to_owned(),
                            new.priority,
                        )),
                        touched: true,
                    }
                };
                current.insert(p.task, row);
                accepted.push(p);
            }
            write_projection(&mut tx, &current, &now_text).await?;
            write_journal(&mut tx, &accepted, &now_text).await?;
            for p in &accepted {
                if let Some(c) = current.get(&p.task) {
                    project_approvals(&mut tx, p.task, &c.tenant, c.status, p.events, now).await?;
                }
                results[p.index] =
                    Some(shared::records(p.task, p.expected_last_seq, now, p.events));
            }
        }
        let audit = super::audit::sqlite::append_in(&mut tx, records).await?;
        tx.commit().await?;
        Ok(Committed {
            appends: results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(StoreError::InvalidAppend(
                            "the append was not processed".to_owned(),
                        ))
                    })
                })
                .collect(),
            audit,
        })
    }

    async fn last_seq(&self, task: TaskId) -> Result<u64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM tasks WHERE id = ?")
            .bind(id_text(task))
            .fetch_optional(&self.pool)
            .await?;
        seq.map_or(Ok(0), shared::from_db_seq)
    }
}

/// Keeps the approvals projection, and the task status that depends on how many approvals are
/// pending, in step with a batch, inside its transaction.
async fn project_approvals(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    task: TaskId,
    tenant: &TenantId,
    status: TaskStatus,
    events: &[JournalEvent],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let touched = shared::touched_approvals(events);
    if touched.is_empty() {
        return Ok(());
    }
    let mut approvals = BTreeMap::new();
    for approval_id in &touched {
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM approvals WHERE id = ?")
            .bind(approval_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(doc) = doc {
            approvals.insert(approval_id.clone(), shared::decode_approval(&doc)?);
        }
    }
    shared::apply_approvals(&mut approvals, task, tenant, events, now);
    let now_text = shared::format_time(now);
    for approval in approvals.values() {
        sqlx::query(
            "INSERT INTO approvals (id, task_id, tenant, status, requested_by, updated_at, doc) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             status = excluded.status, updated_at = excluded.updated_at, doc = excluded.doc",
        )
        .bind(approval.id.as_str())
        .bind(id_text(task))
        .bind(&tenant.0)
        .bind(approval.status.as_str())
        .bind(&approval.requested_by)
        .bind(&now_text)
        .bind(shared::encode_approval(approval)?)
        .execute(&mut **tx)
        .await?;
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM approvals WHERE task_id = ? AND status = 'pending'",
    )
    .bind(id_text(task))
    .fetch_one(&mut **tx)
    .await?;
    let corrected = status.with_pending_approvals(usize::try_from(pending).unwrap_or(usize::MAX));
    if corrected != status {
        sqlx::query("UPDATE tasks SET status = ? WHERE id = ?")
            .bind(corrected.as_str())
            .bind(id_text(task))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The projection rows of a round's tasks, in one query.
async fn current_rows(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    round: &[Prepared<'_>],
) -> Result<BTreeMap<TaskId, Current>, Failed> {
    let mut current = BTreeMap::new();
    for chunk in round.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT id, last_seq, status, tenant FROM tasks WHERE id IN (",
        );
        let mut ids = query.separated(", ");
        for p in chunk {
            ids.push_bind(p.id.clone());
        }
        query.push(")");
        for row in query.build().fetch_all(&mut **tx).await? {
            current.insert(
                parse_id(row.try_get("id")?)?,
                Current {
                    last_seq: shared::from_db_seq(row.try_get("last_seq")?)?,
                    status: shared::parse_status(row.try_get("status")?)?,
                    tenant: TenantId(row.try_get("tenant")?),
                    new: None,
                    touched: false,
                },
            );
        }
    }
    Ok(current)
}

/// Inserts the round's new tasks and moves the others' status and last seq, one statement
/// each. The projection row goes first: journal rows reference it.
async fn write_projection(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    current: &BTreeMap<TaskId, Current>,
    now: &str,
) -> Result<(), Failed> {
    let new: Vec<(String, &Current)> = current
        .iter()
        .filter(|(_, c)| c.touched && c.new.is_some())
        .map(|(id, c)| (id_text(*id), c))
        .collect();
    for chunk in new.chunks(ROWS_PER_STATEMENT / 2) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO tasks (id, tenant, task_type, title, priority, status, created_at, \
             updated_at, last_seq) ",
        );
        query.push_values(chunk, |mut b, (id, c)| {
            let (tenant, task_type, title, priority) = c.new.clone().unwrap_or_default();
            b.push_bind(id.clone())
                .push_bind(tenant)
                .push_bind(task_type)
                .push_bind(title)
                .push_bind(priority)
                .push_bind(c.status.as_str())
                .push_bind(now.to_owned())
                .push_bind(now.to_owned())
                .push_bind(i64::try_from(c.last_seq).unwrap_or(i64::MAX));
        });
        query.build().execute(&mut **tx).await?;
    }
    let moved: Vec<(String, &Current)> = current
        .iter()
        .filter(|(_, c)| c.touched && c.new.is_none())
        .map(|(id, c)| (id_text(*id), c))
        .collect();
    for chunk in moved.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "UPDATE tasks SET status = v.column2, updated_at = v.column3, last_seq = v.column4 \
             FROM (",
        );
        query.push_values(chunk, |mut b, (id, c)| {
            b.push_bind(id.clone())
                .push_bind(c.status.as_str())
                .push_bind(now.to_owned())
                .push_bind(i64::try_from(c.last_seq).unwrap_or(i64::MAX));
        });
        query.push(") AS v WHERE tasks.id = v.column1");
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The journal rows of every accepted append of a round, in as few statements as the bind
/// limit allows.
async fn write_journal(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    accepted: &[&Prepared<'_>],
    now: &str,
) -> Result<(), Failed> {
    let rows: Vec<(&str, i64, &'static str, &str)> = accepted
        .iter()
        .flat_map(|p| {
            p.encoded
                .seqs
                .iter()
                .zip(&p.encoded.kinds)
                .zip(&p.encoded.json)
                .map(|((seq, kind), json)| (p.id.as_str(), *seq, *kind, json.as_str()))
        })
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO journal (task_id, seq, recorded_at, kind, event) ",
        );
        query.push_values(chunk, |mut b, (id, seq, kind, json)| {
            b.push_bind(id.to_owned())
                .push_bind(*seq)
                .push_bind(now.to_owned())
                .push_bind(*kind)
                .push_bind(json.to_owned());
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn approvals_from_rows(rows: &[SqliteRow]) -> Result<Vec<Approval>, StoreError> {
    rows.iter()
        .map(|row| shared::decode_approval(row.try_get("doc")?))
        .collect()
}

#[async_trait]
impl TaskJournal for SqliteStore {
    async fn append(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
    ) -> Result<Vec<JournalRecord>, StoreError> {
        let append = Append {
            task,
            expected_last_seq,
            events: events.to_vec(),
            fence: None,
        };
        match self.try_group(std::slice::from_ref(&append), &[]).await {
            Ok(mut committed) => committed.appends.pop().unwrap_or_else(|| {
                Err(StoreError::InvalidAppend(
                    "no result for the append".to_owned(),
                ))
            }),
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
        let rows = sqlx::query(
            "SELECT seq, recorded_at, event FROM journal WHERE task_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(id_text(task))
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let seq = shared::from_db_seq(row.try_get("seq")?)?;
                Ok(JournalRecord {
                    task_id: task,
                    seq,
                    recorded_at: shared::parse_time(row.try_get("recorded_at")?)?,
                    event: shared::decode_event(task, seq, row.try_get("event")?)?,
                })
            })
            .collect()
    }

    async fn summary(&self, task: TaskId) -> Result<Option<TaskSummary>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, task_type, title, priority, status, created_at, updated_at, \
             last_seq FROM tasks WHERE id = ?",
        )
        .bind(id_text(task))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(summary_from_row).transpose()
    }

    async fn list(&self, filter: &TaskFilter) -> Result<TaskPage, StoreError> {
        let limit = filter.limit.max(1);
        let mut query = QueryBuilder::<Sqlite>::new("SELECT ");
        query.push(SUMMARY_COLUMNS).push(" FROM tasks WHERE 1 = 1");
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
            query.push(" AND id < ").push_bind(id_text(cursor));
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
        let rows = sqlx::query(
            "SELECT id FROM tasks WHERE status IN ('queued', 'running', 'waiting_approval') \
             ORDER BY id ASC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| parse_id(row.try_get("id")?))
            .collect()
    }

    async fn approval(&self, id: &ApprovalId) -> Result<Option<Approval>, StoreError> {
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM approvals WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        doc.as_deref().map(shared::decode_approval).transpose()
    }

    async fn approvals(&self, filter: &ApprovalFilter) -> Result<ApprovalPage, StoreError> {
        let limit = filter.limit.max(1);
        let mut query = QueryBuilder::<Sqlite>::new("SELECT doc FROM approvals WHERE 1 = 1");
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
                .push(" AND COALESCE(json_extract(doc, '$.requested_by_issuer'), '') = ")
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
        ended_before: chrono::DateTime<chrono::Utc>,
        after: Option<TaskId>,
        limit: u32,
    ) -> Result<Vec<TaskSummary>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT ");
        query
            .push(SUMMARY_COLUMNS)
            .push(
                " FROM tasks WHERE status IN ('succeeded', 'failed', 'cancelled') \
                 AND updated_at < ",
            )
            .push_bind(shared::format_time(ended_before));
        if let Some(after) = after {
            query.push(" AND id > ").push_bind(id_text(after));
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
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<u64>, StoreError> {
        let id = id_text(task);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM tasks WHERE id = ?")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await?;
        shared::check_purgeable(task, status.as_deref())?;
        let mut purged = Vec::new();
        for &seq in seqs {
            let Ok(db_seq) = i64::try_from(seq) else {
                continue;
            };
            let row = sqlx::query(
                "SELECT event FROM journal WHERE task_id = ? AND seq = ? AND purged_at IS NULL",
            )
            .bind(&id)
            .bind(db_seq)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let Some(row) = shared::purge_row(task, seq, row.try_get("event")?, at)? else {
                continue;
            };
            sqlx::query(
                "UPDATE journal SET event = ?, purged_at = ? WHERE task_id = ? AND seq = ?",
            )
            .bind(&row.event)
            .bind(shared::format_time(at))
            .bind(&id)
            .bind(db_seq)
            .execute(&mut *tx)
            .await?;
            if let Some(title) = &row.title {
                sqlx::query("UPDATE tasks SET title = ? WHERE id = ?")
                    .bind(title)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some((approval_id, arguments)) = &row.approval {
                let doc: Option<String> =
                    sqlx::query_scalar("SELECT doc FROM approvals WHERE id = ?")
                        .bind(approval_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some(doc) = doc {
                    sqlx::query("UPDATE approvals SET doc = ? WHERE id = ?")
                        .bind(shared::approval_with_arguments(&doc, arguments)?)
                        .bind(approval_id.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            purged.push(seq);
        }
        tx.commit().await?;
        if !purged.is_empty() {
            // The old page images of what was just purged sit in the write-ahead log until a
            // checkpoint copies the new ones over them; truncate it now rather than whenever.
            // Busy readers can make it partial; the next automatic checkpoint finishes the job.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
            {
                tracing::warn!(error = %e, "Checkpoint after a purge failed; the WAL keeps old pages until the next one.");
            }
        }
        Ok(purged)
    }
}

#[async_trait]
impl GroupCommit for SqliteStore {
    async fn group_commit(
        &self,
        appends: &[Append],
        audit: &[AuditRecord],
    ) -> Result<Committed, StoreError> {
        match self.try_group(appends, audit).await {
            Ok(committed) => Ok(committed),
            Err(Failed::Store(e)) => Err(e),
            // Another process took a seq this batch wanted: nothing was committed; the caller
            // retries the appends one by one, which names the conflict.
            Err(Failed::Raced) => Err(StoreError::Backend(
                "a concurrent writer took a journal seq of this batch".to_owned(),
            )),
        }
    }
}
