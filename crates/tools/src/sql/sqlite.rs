//! The SQLite backend: the file opened read-only, with the engine's own guard installed before
//! the statement (`amas_sqlite_sandbox`: the authorizer, value limits, and the progress handler
//! that stops it at the time or heap budget or when this call is dropped).

use std::path::Path;
use std::time::Duration;

use amas_sqlite_sandbox::{Budget, Rules, Sandbox, Stop, Verdict};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Connection, Row, TypeInfo, ValueRef};

use super::{Rows, db_fail, wrap};
use crate::config::SqlSettings;
use crate::error::ToolError;

/// How much SQLite's heap may grow while one statement runs.
pub(crate) const HEAP_BUDGET_BYTES: u64 = 256 << 20;

pub(crate) async fn run(
    path: &Path,
    select: &str,
    settings: &SqlSettings,
) -> Result<Rows, ToolError> {
    if !path.is_file() {
        return Err(ToolError::Failed(
            "the configured SQLite database file does not exist".into(),
        ));
    }
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .connect()
        .await
        .map_err(|e| db_fail(&e))?;
    let rules = Rules {
        allowed_tables: settings.allowed_tables.clone(),
        blocked_tables: settings.blocked_tables.clone(),
        blocked_columns: settings.blocked_columns.clone(),
    };
    let budget = Budget {
        time: settings.statement_timeout,
        heap_bytes: HEAP_BUDGET_BYTES,
    };
    let sandbox = amas_sqlite_sandbox::install(&mut conn, &rules, budget)
        .await
        .map_err(|e| ToolError::Failed(format!("setting up the SQLite sandbox: {e}")))?;
    let limit = settings.row_limit;
    // The statement passed `check_read_only`; the engine checks it again as it is prepared.
    let fetched = sqlx::query(AssertSqlSafe(wrap(select, limit, "*")))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| engine_fail(&e, &sandbox, settings.statement_timeout));
    drop(sandbox);
    let _ = conn.close().await;
    let rows = fetched?;
    let truncated = rows.len() > limit;
    Ok(Rows {
        rows: rows.iter().take(limit).map(row_json).collect(),
        truncated,
    })
}

/// The engine's refusals and stops get their own codes and our words (SQLite's own message
/// for a refused read names the column, and is not needed); anything else is a plain failure.
fn engine_fail(e: &sqlx::Error, sandbox: &Sandbox, budget: Duration) -> ToolError {
    match sandbox.explain(e) {
        Some(Verdict::Denied(denial)) => ToolError::SqlDenied {
            reason: denial.to_string(),
        },
        Some(Verdict::Stopped(Stop::Heap)) => ToolError::SqlLimit {
            what: format!(
                "it needed more than {} MiB of memory",
                HEAP_BUDGET_BYTES >> 20
            ),
        },
        Some(Verdict::Stopped(Stop::Time | Stop::Cancelled)) => ToolError::SqlTimeBudget(budget),
        Some(Verdict::TooBig) => ToolError::SqlLimit {
            what: format!(
                "a string or blob passed {} MiB",
                amas_sqlite_sandbox::MAX_VALUE_BYTES >> 20
            ),
        },
        Some(Verdict::OutOfMemory) => ToolError::SqlLimit {
            what: "SQLite ran out of memory".into(),
        },
        None => db_fail(e),
    }
}

fn row_json(row: &SqliteRow) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        obj.insert(col.name().to_owned(), cell(row, i));
    }
    serde_json::Value::Object(obj)
}

/// SQLite is dynamically typed: decode by the value's own storage class.
fn cell(row: &SqliteRow, i: usize) -> serde_json::Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return serde_json::Value::Null;
    };
    if raw.is_null() {
        return serde_json::Value::Null;
    }
    let kind = raw.type_info().name().to_ascii_uppercase();
    let int = kind.contains("INT") || kind == "BOOLEAN";
    let real = ["REAL", "FLOA", "DOUB", "NUMERIC"]
        .iter()
        .any(|k| kind.contains(k));
    if int && let Ok(v) = row.try_get::<i64, _>(i) {
        return v.into();
    }
    if real && let Ok(v) = row.try_get::<f64, _>(i) {
        return v.into();
    }
    if kind == "BLOB"
        && let Ok(v) = row.try_get::<Vec<u8>, _>(i)
    {
        return serde_json::json!({ "blob_bytes": v.len() });
    }
    row.try_get::<String, _>(i)
        .map_or(serde_json::Value::Null, serde_json::Value::String)
}
