//! The SQLite backend: the file opened read-only (`mode=ro`) with `query_only` on as well.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Connection, Row, TypeInfo, ValueRef};

use super::{Rows, db_fail, wrap};
use crate::error::ToolError;

pub(crate) async fn run(path: &Path, select: &str, limit: usize) -> Result<Rows, ToolError> {
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
    sqlx::query("PRAGMA query_only = ON")
        .execute(&mut conn)
        .await
        .map_err(|e| db_fail(&e))?;
    let rows = // The statement passed `check_read_only`; the connection is read-only.
sqlx::query(AssertSqlSafe(wrap(select, limit, "*")))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| db_fail(&e))?;
    let _ = conn.close().await;
    let truncated = rows.len() > limit;
    Ok(Rows {
        rows: rows.iter().take(limit).map(row_json).collect(),
        truncated,
    })
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
