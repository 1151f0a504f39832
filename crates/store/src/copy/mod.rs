//! `amas db copy`: moves an installation from SQLite to PostgreSQL row for row. Tasks, the
//! journal (purge marks included), approvals, the audit log and its checkpoints arrive with
//! the same ids, seqs, times and hashes, so the audit chain verifies on the target against the
//! same keys and witness. The source is read in one snapshot, the target written in one
//! transaction: a failed copy leaves nothing behind.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder, Row, SqliteConnection};

use crate::{PostgresStore, SqliteStore, StoreError, shared};

/// Rows per page read and per INSERT (26 parameters a row stays far below PostgreSQL's bind
/// limit).
const PAGE: i64 = 500;

/// What a copy moved, or found already there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    pub tasks: u64,
    pub journal_events: u64,
    pub approvals: u64,
    pub audit_records: u64,
    pub checkpoints: u64,
    /// The target already held exactly the source's rows: nothing was written.
    pub already_copied: bool,
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    SmallInt,
    Uuid,
    Time,
    Json,
}

/// A column: its name, its kind, whether it may be NULL.
type Col = (&'static str, Kind, bool);

struct Table {
    name: &'static str,
    cols: &'static [Col],
    /// The primary key's columns (among `cols`), in order; `true` for an integer.
    key: &'static [(&'static str, bool)],
}

const TABLES: [Table; 5] = [
    Table {
        name: "tasks",
        cols: &[
            ("id", Kind::Uuid, false),
            ("tenant", Kind::Text, false),
            ("task_type", Kind::Text, false),
            ("title", Kind::Text, false),
            ("priority", Kind::SmallInt, false),
            ("status", Kind::Text, false),
            ("created_at", Kind::Time, false),
            ("updated_at", Kind::Time, false),
            ("last_seq", Kind::Int, false),
        ],
        key: &[("id", false)],
    },
    Table {
        name: "journal",
        cols: &[
            ("task_id", Kind::Uuid, false),
            ("seq", Kind::Int, false),
            ("recorded_at", Kind::Time, false),
            ("kind", Kind::Text, false),
            ("event", Kind::Json, false),
            ("purged_at", Kind::Time, true),
        ],
        key: &[("task_id", false), ("seq", true)],
    },
    Table {
        name: "approvals",
        cols: &[
            ("id", Kind::Text, false),
            ("task_id", Kind::Uuid, false),
            ("tenant", Kind::Text, false),
            ("status", Kind::Text, false),
            ("requested_by", Kind::Text, false),
            ("updated_at", Kind::Time, false),
            ("doc", Kind::Json, false),
        ],
        key: &[("id", false)],
    },
    Table {
        name: "audit_log",
        cols: &[
            ("seq", Kind::Int, false),
            ("recorded_at", Kind::Time, false),
            ("tenant", Kind::Text, false),
            ("principal_sub", Kind::Text, false),
            ("principal_roles", Kind::Text, false),
            ("auth_method", Kind::Text, false),
            ("stage", Kind::Text, false),
            ("action", Kind::Text, false),
            ("decision", Kind::Text, false),
            ("reasons", Kind::Text, false),
            ("agent", Kind::Text, true),
            ("task_id", Kind::Uuid, true),
            ("step", Kind::Text, true),
            ("trace_id", Kind::Text, true),
            ("resource", Kind::Text, true),
            ("policy_version", Kind::Text, true),
            ("policy_hash", Kind::Text, true),
            ("classification", Kind::Text, true),
            ("duration_us", Kind::Int, true),
            ("input_tokens", Kind::Int, true),
            ("output_tokens", Kind::Int, true),
            ("cost_micros", Kind::Int, true),
            ("details", Kind::Text, true),
            ("details_hash", Kind::Text, false),
            ("prev_hash", Kind::Text, false),
            ("hash", Kind::Text, false),
        ],
        key: &[("seq", true)],
    },
    Table {
        name: "audit_checkpoints",
        cols: &[
            ("up_to_seq", Kind::Int, false),
            ("key_id", Kind::Text, false),
            ("hash", Kind::Text, false),
            ("signed_at", Kind::Time, false),
            ("signature", Kind::Text, false),
            ("tree_root", Kind::Text, true),
        ],
        key: &[("up_to_seq", true), ("key_id", false)],
    },
];

/// One value read from SQLite, typed as PostgreSQL stores it.
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    SmallInt(Option<i16>),
    Uuid(Option<uuid::Uuid>),
    Time(Option<DateTime<Utc>>),
    Json(Option<String>),
}

/// A key column's value, as SQLite compares it.
#[derive(Clone)]
enum Key {
    Text(String),
    Int(i64),
}

/// Row counts and the audit chain's head: equal on both sides means the target is a copy of
/// the source.
#[derive(Debug, PartialEq, Eq)]
struct Census {
    counts: [i64; 5],
    audit_head: Option<String>,
}

/// Copies everything of `from` into `to`, which must be empty (or already hold exactly the
/// same rows, reported as `already_copied`). Both schemas must be current.
///
/// # Errors
/// [`StoreError::TargetNotEmpty`] when the target holds other data; [`StoreError::Corrupt`]
/// for a source row that does not convert; backend errors. Nothing is written on error.
pub async fn sqlite_to_postgres(
    from: &SqliteStore,
    to: &PostgresStore,
) -> Result<CopyReport, StoreError> {
    // One read transaction: a snapshot of the source, even if something still writes to it.
    let mut src = from.pool().begin().await?;
    let mut dst = to.pool().begin().await?;
    // Writers of this installation on the target wait until the copy commits or fails.
    sqlx::query(
        "LOCK TABLE tasks, journal, approvals, audit_log, audit_checkpoints IN EXCLUSIVE MODE",
    )
    .execute(&mut *dst)
    .await?;
    let source = census_sqlite(&mut src).await?;
    let target = census_postgres(&mut dst).await?;
    let counts = |c: &Census| c.counts.map(|n| u64::try_from(n).unwrap_or_default());
    let [tasks, journal_events, approvals, audit_records, checkpoints] = counts(&source);
    let mut report = CopyReport {
        tasks,
        journal_events,
        approvals,
        audit_records,
        checkpoints,
        already_copied: false,
    };
    if target.counts.iter().any(|n| *n > 0) {
        if target == source {
            report.already_copied = true;
            return Ok(report);
        }
        let [tasks, _, _, audit, _] = counts(&target);
        return Err(StoreError::TargetNotEmpty(format!(
            "it holds {tasks} tasks and {audit} audit records that are not a copy of the \
             source's {} tasks and {} audit records",
            report.tasks, report.audit_records
        )));
    }
    for table in &TABLES {
        copy_table(table, &mut src, &mut dst).await?;
    }
    dst.commit().await?;
    src.rollback().await?;
    Ok(report)
}

async fn census_sqlite(conn: &mut SqliteConnection) -> Result<Census, StoreError> {
    let mut counts = [0; 5];
    for (count, table) in counts.iter_mut().zip(&TABLES) {
        *count = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            table.name
        )))
        .fetch_one(&mut *conn)
        .await?;
    }
    let audit_head = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(Census { counts, audit_head })
}

async fn census_postgres(conn: &mut PgConnection) -> Result<Census, StoreError> {
    let mut counts = [0; 5];
    for (count, table) in counts.iter_mut().zip(&TABLES) {
        *count = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            table.name
        )))
        .fetch_one(&mut *conn)
        .await?;
    }
    let audit_head = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    Ok(Census { counts, audit_head })
}

/// Pages through `table` in key order (keyset paging: each page starts after the last key of
/// the one before) and inserts each page with one statement.
async fn copy_table(
    table: &Table,
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
) -> Result<(), StoreError> {
    let names: Vec<&str> = table.cols.iter().map(|(name, _, _)| *name).collect();
    let key_names: Vec<&str> = table.key.iter().map(|(name, _)| *name).collect();
    let placeholders = vec!["?"; table.key.len()].join(", ");
    let select = format!(
        "SELECT {} FROM {} WHERE ({}) > ({placeholders}) ORDER BY {} LIMIT {PAGE}",
        names.join(", "),
        table.name,
        key_names.join(", "),
        key_names.join(", "),
    );
    // Below every real key: ids are non-empty text, seqs start at 1.
    let mut after: Vec<Key> = table
        .key
        .iter()
        .map(|(_, int)| {
            if *int {
                Key::Int(0)
            } else {
                Key::Text(String::new())
            }
        })
        .collect();
    loop {
        let mut query = sqlx::query(AssertSqlSafe(select.clone()));
        for key in &after {
            query = match key {
                Key::Text(text) => query.bind(text.clone()),
                Key::Int(n) => query.bind(*n),
            };
        }
        let rows = query.fetch_all(&mut *src).await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = table
            .key
            .iter()
            .map(|(name, int)| {
                Ok(if *int {
                    Key::Int(last.try_get(*name)?)
                } else {
                    Key::Text(last.try_get(*name)?)
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let values = rows
            .iter()
            .map(|row| read_row(table, row))
            .collect::<Result<Vec<_>, _>>()?;
        let mut insert = QueryBuilder::<Postgres>::new(format!(
            "INSERT INTO {} ({}) ",
            table.name,
            names.join(", ")
        ));
        insert.push_values(values, |mut b, row| {
            for value in row {
                match value {
                    Value::Text(v) => b.push_bind(v),
                    Value::Int(v) => b.push_bind(v),
                    Value::SmallInt(v) => b.push_bind(v),
                    Value::Uuid(v) => b.push_bind(v),
                    Value::Time(v) => b.push_bind(v),
                    Value::Json(v) => b.push_bind(v).push_unseparated("::json"),
                };
            }
        });
        insert.build().execute(&mut *dst).await?;
        if i64::try_from(rows.len()).unwrap_or(PAGE) < PAGE {
            return Ok(());
        }
    }
}

fn read_row(table: &Table, row: &SqliteRow) -> Result<Vec<Value>, StoreError> {
    table
        .cols
        .iter()
        .map(|&(name, kind, nullable)| {
            let value = match kind {
                Kind::Int => Value::Int(row.try_get(name)?),
                Kind::SmallInt => {
                    let n: Option<i64> = row.try_get(name)?;
                    Value::SmallInt(n.map(i16::try_from).transpose().map_err(|_| {
                        StoreError::Corrupt(format!("{}.{name} is out of range", table.name))
                    })?)
                }
                Kind::Text => Value::Text(row.try_get(name)?),
                Kind::Json => Value::Json(row.try_get(name)?),
                Kind::Uuid => {
                    let text: Option<String> = row.try_get(name)?;
                    Value::Uuid(text.as_deref().map(parse_uuid).transpose()?)
                }
                Kind::Time => {
                    let text: Option<String> = row.try_get(name)?;
                    Value::Time(text.as_deref().map(shared::parse_time).transpose()?)
                }
            };
            if !nullable && is_null(&value) {
                return Err(StoreError::Corrupt(format!(
                    "{}.{name} is NULL in the source",
                    table.name
                )));
            }
            Ok(value)
        })
        .collect()
}

fn is_null(value: &Value) -> bool {
    match value {
        Value::Text(v) | Value::Json(v) => v.is_none(),
        Value::Int(v) => v.is_none(),
        Value::SmallInt(v) => v.is_none(),
        Value::Uuid(v) => v.is_none(),
        Value::Time(v) => v.is_none(),
    }
}

fn parse_uuid(text: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("bad id {text:?}: {e}")))
}

#[cfg(test)]
mod tests;
