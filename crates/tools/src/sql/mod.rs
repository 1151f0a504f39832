//! `sql_query`: one read-only SELECT against the configured database (a SQLite file opened
//! read-only, or PostgreSQL inside a READ ONLY transaction with a statement timeout), checked
//! by [`check_read_only`] first, at most `row_limit` rows returned as JSON objects.

mod guard;
mod postgres;
mod sqlite;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde::Deserialize;

pub use guard::check_read_only;

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
        let limit = self.settings.row_limit;
        let fetched = match db {
            Database::Sqlite(path) => sqlite::run(path, select, limit).await?,
            Database::Postgres(url) => {
                let timeout = self.settings.statement_timeout;
                postgres::run(url.expose_secret(), select, limit, timeout).await?
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
