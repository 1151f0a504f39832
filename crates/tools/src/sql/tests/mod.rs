//! The database engine as the guard. Every bypass of the 2026-12 security review (H1, H2, M2)
//! runs twice on each engine: straight at the backend with the lexer skipped (the engine alone
//! must refuse it, or return nothing secret where the trick does not apply to that engine),
//! and through the tool, where the lexer refuses it first. On a SQLite file made here, and on
//! the local PostgreSQL (`AMAS_TEST_DATABASE_URL` or `postgres://postgres@127.0.0.1:5432/test`)
//! as a reader role made here, whose search path is a schema of its own, so that the same SQL
//! text runs on both.

mod postgres;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Database, SqlSettings, ToolSettings};
use crate::error::{ToolError, codes};
use crate::registry::ToolRegistry;
use crate::spec::{ToolContext, ToolSpec};
use crate::sql::{Rows, SqlQuery};
use crate::{ToolConfig, ToolsConfig};

/// In the blocked tables; never in a result or a message.
const SECRET: &str = "hunter2-7f3a";

/// The tables both engines get: two permitted (`depts`, `items`), two blocked by the default
/// `blocked_tables` (`secrets`, `credentials`). Integer prices, so both engines sum to the
/// same JSON numbers.
fn fixture_sql() -> Vec<String> {
    vec![
        "CREATE TABLE depts (id integer PRIMARY KEY, name text)".into(),
        "CREATE TABLE items (id integer PRIMARY KEY, name text, dept_id integer, price integer)"
            .into(),
        "CREATE TABLE secrets (id integer, password text)".into(),
        "CREATE TABLE credentials (username text, password text)".into(),
        "INSERT INTO depts VALUES (1, 'tools'), (2, 'toys')".into(),
        "INSERT INTO items VALUES (1, 'hammer', 1, 10), (2, 'saw', 1, 25), (3, 'ball', 2, 5)"
            .into(),
        format!("INSERT INTO secrets VALUES (1, '{SECRET}')"),
        format!("INSERT INTO credentials VALUES ('admin', '{SECRET}')"),
    ]
}

/// A permitted SELECT with a join and an aggregate, and what it must return on both engines.
const ALLOWED: &str = "SELECT d.name AS dept, count(*) AS n, sum(i.price) AS total \
                       FROM items i JOIN depts d ON d.id = i.dept_id \
                       GROUP BY d.name ORDER BY d.name";

fn allowed_rows() -> Value {
    json!([
        { "dept": "tools", "n": 2, "total": 35 },
        { "dept": "toys", "n": 1, "total": 5 },
    ])
}

/// What the engine alone must do with a bypass.
#[derive(Clone, Copy, Debug)]
enum Engine {
    /// Refuse it: `AMAS-TOOL-0009`.
    Denies,
    /// The trick does not apply to this engine (a syntax error, an unknown function, a comment
    /// that really is one): whatever the answer, no secret in it.
    NothingSecret,
}

/// The review's bypasses (H1 on PostgreSQL, H2 on SQLite) and a few more of each kind, with
/// what each engine alone must do.
fn bypasses() -> Vec<(&'static str, Engine, Engine)> {
    use Engine::{Denies, NothingSecret};
    vec![
        // (query, SQLite, PostgreSQL)
        ("SELECT 1 --\r, * FROM secrets", NothingSecret, Denies),
        (
            "SELECT 1 --\r, password FROM credentials",
            NothingSecret,
            Denies,
        ),
        (r#"SELECT * FROM U&"\0073ecrets""#, NothingSecret, Denies),
        (
            r#"SELECT "pg_read_file"('/etc/passwd')"#,
            NothingSecret,
            Denies,
        ),
        (
            r#"SELECT "query_to_xml"('select * from secrets', true, false, '')"#,
            NothingSecret,
            Denies,
        ),
        (
            "SELECT * FROM ts_stat('SELECT to_tsvector(''simple'', password) FROM credentials')",
            NothingSecret,
            Denies,
        ),
        (
            "SELECT schema_to_xml_and_xmlschema(current_schema(), true, false, '')::text AS x",
            NothingSecret,
            NothingSecret,
        ),
        (
            "SELECT set_config('role', 'postgres', true)",
            NothingSecret,
            Denies,
        ),
        (
            r#"SELECT "load_extension"('/tmp/evil.so')"#,
            Denies,
            NothingSecret,
        ),
        (
            r#"SELECT "fts3_tokenizer"('simple')"#,
            Denies,
            NothingSecret,
        ),
        ("SELECT 1 AS [--], * FROM secrets", Denies, NothingSecret),
        ("SELECT [--].* FROM secrets AS [--]", Denies, NothingSecret),
        (
            "SELECT [--].* FROM sqlite_master AS [--]",
            Denies,
            NothingSecret,
        ),
        ("SELECT * FROM 'secrets'", Denies, NothingSecret),
        ("SELECT * FROM [secrets]", Denies, NothingSecret),
        (
            "SELECT name FROM pragma_table_info('secrets')",
            Denies,
            NothingSecret,
        ),
        ("SELECT count(*) AS n FROM secrets", Denies, Denies),
        (
            "SELECT i.name, c.password FROM items i, credentials c",
            Denies,
            Denies,
        ),
    ]
}

/// The runaway recursive CTE of M2: never ends on its own.
const RUNAWAY: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) AS m FROM c";

/// The embedded `sql_query` entry on `db`, with a statement budget of `budget`.
fn entry(db: Database, budget: Duration) -> (ToolSpec, SqlSettings) {
    let Ok(mut cfg) = ToolsConfig::load(None, &[]) else {
        panic!("the embedded tools.yaml loads")
    };
    let Some(ToolConfig {
        spec,
        settings: ToolSettings::SqlQuery(mut s),
    }) = cfg.take("sql_query")
    else {
        panic!("sql_query is configured")
    };
    s.database = Some(db);
    s.statement_timeout = budget;
    (spec, s)
}

/// A registry holding only `sql_query` on `db`: calls get the parameter check and the tool's
/// own timeout (15s in `tools.yaml`), as in production.
fn registry(db: Database, budget: Duration) -> ToolRegistry {
    let (spec, s) = entry(db, budget);
    let mut reg = ToolRegistry::default();
    reg.insert(Arc::new(SqlQuery::new(spec, s)));
    reg
}

async fn call(reg: &ToolRegistry, query: &str) -> Result<Value, ToolError> {
    let ctx = ToolContext {
        task_id: "task-1".into(),
        workspace: std::env::temp_dir(),
        agent: "tester".into(),
    };
    reg.call("sql_query", &ctx, json!({ "query": query }))
        .await
        .map(|o| o.content)
}

/// Neither the rows nor the message of `result` holds the secret.
fn assert_nothing_secret(result: &Result<Value, ToolError>, what: &str) {
    let text = match result {
        Ok(v) => v.to_string(),
        Err(e) => e.to_string(),
    };
    assert!(!text.contains(SECRET), "{what}: {text}");
}

/// Checks what one engine alone did with each bypass; `run` calls the backend directly.
fn judge(results: &[(&str, Engine, Result<Rows, ToolError>)]) {
    for (query, expect, result) in results {
        let as_value = result
            .as_ref()
            .map(|r| Value::Array(r.rows.clone()))
            .map_err(Clone::clone);
        assert_nothing_secret(&as_value, query);
        if let Engine::Denies = expect {
            let Err(err) = result else {
                panic!("{query:?}: the engine ran it: {as_value:?}")
            };
            assert_eq!(err.code(), codes::SQL_DENIED, "{query:?}: {err}");
        }
    }
}

/// Through the tool, the lexer refuses every bypass before a database sees it.
async fn assert_tool_refuses_every_bypass(reg: &ToolRegistry) {
    for (query, _, _) in bypasses() {
        let result = call(reg, query).await;
        assert_nothing_secret(&result, query);
        let Err(err) = result else {
            panic!("{query:?} ran through the tool")
        };
        assert_eq!(err.code(), codes::REFUSED, "{query:?}: {err}");
    }
}
