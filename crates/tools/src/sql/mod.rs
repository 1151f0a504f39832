//! `sql_query`: one read-only SELECT against the configured database, at most `row_limit` rows
//! returned as JSON objects. Two guards: [`check_read_only`] first (a lexer: one SELECT, no
//! blocked table or forbidden function by name), then the database engine itself, which is what
//! the safety rests on: SQLite read-only with an authorizer, value limits and a progress handler
//! (`amas_sqlite_sandbox`); PostgreSQL as a reader role ([`reader_role_statements`], checked
//! before every query) in a READ ONLY transaction with a statement timeout.

mod guard;
mod postgres;
mod role;
mod sqlite;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde::Deserialize;

pub use guard::check_read_only;
pub use role::reader_role_statements;

use crate::config::{Database, SqlSettings};
use crate::error::ToolError;
use crate::params::parse_params;
use crate::spec::{Tool, ToolContext, ToolOutput, ToolSpec};

pub struct SqlQuery {
    spec: ToolSpec,
    settings: SqlSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    query: String,
}

/// Rows fetched, at most `row_limit`, and whether more existed.
#[derive(Debug)]
pub(crate) struct Rows {
    pub rows: Vec<serde_json::Value>,
    pub truncated: bool,
}

impl SqlQuery {
    #[must_use]
    pub fn new(spec: ToolSpec, settings: SqlSettings) -> Self {
        Self { spec, settings }
    }
}

/// The statement wrapped so the database itself stops after `limit + 1` rows; the newline
/// ends any trailing `--` comment, and the guard has already balanced the parentheses.
pub(crate) fn wrap(select: &str, limit: usize, projection: &str) -> String {
    format!(
        "SELECT {projection} FROM (\n{select}\n) AS amas_q LIMIT {}",
        limit + 1
    )
}

/// Database errors may quote the query but never the URL; keep only the first line.
pub(crate) fn db_fail(e: &sqlx::Error) -> ToolError {
    let text = match e {
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
    };
    ToolError::Failed(format!(
        "database error: {}",
        text.lines().next().unwrap_or_default()
    ))
}

#[async_trait]
impl Tool for SqlQuery {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        _ctx: &ToolContext,
        params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let p: Params = parse_params(params)?;
        let Some(db) = &self.settings.database else {
            return Err(ToolError::Disabled {
                reason: format!(
                    "no database configured: set tools.{}.settings.database in tools.yaml",
                    self.spec.name
                ),
            });
        };
        let select = check_read_only(&p.query, &self.settings.blocked_tables)?;
        let fetched = match db {
            Database::Sqlite(path) => sqlite::run(path, select, &self.settings).await?,
            Database::Postgres(url) => {
                postgres::run(url.expose_secret(), select, &self.settings).await?
            }
        };
        let content = serde_json::json!({
            "rows": fetched.rows,
            "row_count": fetched.rows.len(),
            "truncated": fetched.truncated,
        });
        Ok(ToolOutput {
            bytes_in: content.to_string().len() as u64,
            bytes_out: p.query.len() as u64,
            content,
        })
    }
}
