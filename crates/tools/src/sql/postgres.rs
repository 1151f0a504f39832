//! The PostgreSQL backend: a READ ONLY transaction with a local statement timeout, always
//! rolled back; rows converted to JSON by the server (`row_to_json`).

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::{Rows, db_fail, wrap};
use crate::error::ToolError;

pub(crate) async fn run(
    url: &str,
    select: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Rows, ToolError> {
    let mut conn = PgConnection::connect(url).await.map_err(|e| db_fail(&e))?;
    let result = query(&mut conn, select, limit, timeout).await;
    let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    result
}

async fn query(
    conn: &mut PgConnection,
    select: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Rows, ToolError> {
    sqlx::query("BEGIN TRANSACTION READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(|e| db_fail(&e))?;
    let set_timeout = format!(
        "SET LOCAL statement_timeout = {}",
        timeout.as_millis().max(1)
    );
    // A number we formatted ourselves.
    sqlx::query(AssertSqlSafe(set_timeout))
        .execute(&mut *conn)
        .await
        .map_err(|e| db_fail(&e))?;
    let texts: Vec<String> = // The statement passed `check_read_only` and runs in a READ ONLY transaction.
    sqlx::query_scalar(AssertSqlSafe(wrap(select, limit, "row_to_json(amas_q)::text")))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| db_fail(&e))?;
    let truncated = texts.len() > limit;
    let rows = texts
        .iter()
        .take(limit)
        .map(|t| serde_json::from_str(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ToolError::Failed(format!("row conversion: {e}")))?;
    Ok(Rows { rows, truncated })
}
