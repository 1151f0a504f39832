//! The PostgreSQL backend: a READ ONLY transaction with a local statement timeout and standard
//! strings, the session's roles checked to be a reader's ([`super::role::verify`]), always
//! rolled back; rows converted to JSON by the server (`row_to_json`). The role's privileges
//! are what keeps blocked tables and server functions out of reach.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::{Rows, db_fail, role, wrap};
use crate::config::SqlSettings;
use crate::error::ToolError;

pub(crate) async fn run(url: &str, select: &str, s: &SqlSettings) -> Result<Rows, ToolError> {
    let mut conn = PgConnection::connect(url).await.map_err(|e| db_fail(&e))?;
    let result = query(&mut conn, select, s).await;
    let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    result
}

async fn query(conn: &mut PgConnection, select: &str, s: &SqlSettings) -> Result<Rows, ToolError> {
    let timeout_ms = s.statement_timeout.as_millis().max(1);
    let setup = [
        "BEGIN TRANSACTION READ ONLY".to_owned(),
        format!("SET LOCAL statement_timeout = {timeout_ms}"),
        // The lexer reads `'\'` as PostgreSQL does only with standard strings.
        "SET LOCAL standard_conforming_strings = on".to_owned(),
        // From PostgreSQL 14, a statement whose client has gone (the tool call timed out) is
        // cancelled within a second instead of running on to its timeout.
        "SELECT set_config('client_connection_check_interval', '1000', true) \
         WHERE current_setting('server_version_num')::int >= 140000"
            .to_owned(),
    ];
    for stmt in setup {
        // Fixed text and a number we formatted ourselves.
        sqlx::query(AssertSqlSafe(stmt))
            .execute(&mut *conn)
            .await
            .map_err(|e| db_fail(&e))?;
    }
    role::verify(conn, s).await?;
    let limit = s.row_limit;
    // The statement passed `check_read_only`; it runs as a reader in a READ ONLY transaction.
    let texts: Vec<String> = sqlx::query_scalar(AssertSqlSafe(wrap(
        select,
        limit,
        "row_to_json(amas_q)::text",
    )))
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| engine_fail(&e, s.statement_timeout))?;
    let truncated = texts.len() > limit;
    let rows = texts
        .iter()
        .take(limit)
        .map(|t| serde_json::from_str(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ToolError::Failed(format!("row conversion: {e}")))?;
    Ok(Rows { rows, truncated })
}

/// The database's refusals and stops by SQLSTATE, in our words (never the server's text,
/// which can quote values); anything else is a plain failure.
fn engine_fail(e: &sqlx::Error, budget: Duration) -> ToolError {
    let sqlstate = match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    };
    let limit = |what: &str| ToolError::SqlLimit { what: what.into() };
    match sqlstate.as_deref() {
        Some("42501") => ToolError::SqlDenied {
            reason: "the tool's database role has no privilege for what the statement reads \
                     (permission denied)"
                .into(),
        },
        Some("25006") => ToolError::SqlDenied {
            reason: "the statement tried to write in a read-only transaction".into(),
        },
        Some("57014") => ToolError::SqlTimeBudget(budget),
        Some("54000") => limit("a value passed the server's size limit"),
        Some("54001") => limit("the statement is too complex"),
        Some("53200") => limit("the server ran out of memory"),
        Some("53100") => limit("the server ran out of disk space"),
        _ => db_fail(e),
    }
}
