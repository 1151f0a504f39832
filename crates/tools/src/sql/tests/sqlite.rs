//! SQLite: the authorizer, the value limit and the progress handler of `amas_sqlite_sandbox`,
//! alone (the backend called with the lexer skipped) and behind the lexer (the tool).

use std::path::{Path, PathBuf};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, SqliteConnection};

use super::*;
use crate::sql::sqlite;

async fn make_db(dir: &Path) -> PathBuf {
    let path = dir.join("data.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let Ok(mut conn) = SqliteConnection::connect(&url).await else {
        panic!("create {url}")
    };
    for stmt in fixture_sql() {
        if let Err(e) = sqlx::query(AssertSqlSafe(stmt)).execute(&mut conn).await {
            panic!("fixture: {e}")
        }
    }
    let _ = conn.close().await;
    path
}

#[tokio::test]
async fn sqlite_a_permitted_join_and_aggregate_returns_the_right_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_db(dir.path()).await;
    let (_, settings) = entry(Database::Sqlite(path.clone()), Duration::from_secs(5));
    let rows = sqlite::run(&path, ALLOWED, &settings).await.unwrap();
    assert_eq!(Value::Array(rows.rows), allowed_rows());
    let reg = registry(Database::Sqlite(path), Duration::from_secs(5));
    let out = call(&reg, ALLOWED).await.unwrap();
    assert_eq!(out["rows"], allowed_rows());
    assert_eq!(out["truncated"], false);
}

/// H2: the authorizer refuses the bracket, string-literal and pragma tricks by itself, and
/// the PostgreSQL tricks find nothing secret here.
#[tokio::test]
async fn sqlite_the_engine_alone_refuses_every_bypass() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_db(dir.path()).await;
    let (_, settings) = entry(Database::Sqlite(path.clone()), Duration::from_secs(5));
    let mut results = Vec::new();
    for (query, on_sqlite, _) in bypasses() {
        results.push((query, on_sqlite, sqlite::run(&path, query, &settings).await));
    }
    judge(&results);
    // The `\r` comment is a comment to SQLite to the end of the line: it reads nothing more
    // (the one column is named after its text, comment included).
    let Ok(first) = &results[0].2 else {
        panic!("{:?}", results[0])
    };
    let values: Vec<&Value> = first
        .rows
        .iter()
        .flat_map(|r| r.as_object().unwrap().values())
        .collect();
    assert_eq!(values, [&json!(1)]);
    let err = sqlite::run(&path, "SELECT 1 AS [--], * FROM secrets", &settings)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "refused by the database: reading table `secrets` is not permitted"
    );
}

#[tokio::test]
async fn sqlite_the_tool_refuses_every_bypass() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_db(dir.path()).await;
    assert_tool_refuses_every_bypass(&registry(Database::Sqlite(path), Duration::from_secs(5)))
        .await;
}

/// M2: the runaway CTE is interrupted at the statement budget (1s) by the progress handler,
/// not abandoned at the tool's 15s timeout (that would be `AMAS-TOOL-0003`); the size bombs
/// fail before their memory is allocated; a statement hoarding memory within the value limit
/// is stopped at the heap budget. Each error is the engine's own, by code.
#[tokio::test]
async fn sqlite_budgets_stop_the_runaway_cte_and_the_bombs() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_db(dir.path()).await;
    let reg = registry(Database::Sqlite(path.clone()), Duration::from_secs(1));
    let err = call(&reg, RUNAWAY).await.unwrap_err();
    assert_eq!(err.code(), codes::SQL_TIME_BUDGET, "{err}");
    assert_eq!(
        err.to_string(),
        "the database stopped the statement at its time budget of 1000ms"
    );

    let err = call(&reg, "SELECT length(zeroblob(1000000000)) AS n")
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::SQL_DENIED, "{err}");
    assert!(err.to_string().contains("function `zeroblob`"), "{err}");

    // printf gives up past the value limit and answers NULL: the 1 GB string is never made.
    let out = call(&reg, "SELECT length(printf('%.*c', 1000000000, 'x')) AS n")
        .await
        .unwrap();
    assert_eq!(out["rows"], json!([{ "n": null }]));
    for bomb in [
        "SELECT length(replace(printf('%.*c', 1000, 'x'), 'x', printf('%.*c', 1000000, 'y'))) AS n",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) \
         SELECT length(group_concat(printf('%.*c', 100000, 'x'))) AS n FROM c",
    ] {
        let err = call(&reg, bomb).await.unwrap_err();
        assert_eq!(err.code(), codes::SQL_LIMIT, "{bomb}: {err}");
        assert!(err.to_string().contains("passed 4 MiB"), "{err}");
    }

    let reg = registry(Database::Sqlite(path), Duration::from_secs(60));
    let hoard = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                 SELECT count(DISTINCT printf('%.*c', 1000000, 'x') || x) AS n FROM c";
    let err = call(&reg, hoard).await.unwrap_err();
    assert_eq!(err.code(), codes::SQL_LIMIT, "{err}");
    assert!(err.to_string().contains("256 MiB of memory"), "{err}");
}

/// M2's other half: when the tool's own timeout gives up on a call (here 300ms, under a
/// statement budget of 60s), the statement must not run on in sqlx's worker thread. It holds
/// the file's shared lock while it runs, so a writer can take the exclusive lock only once the
/// statement has stopped; the writer's busy timeout (30s) is far longer than that needs.
#[tokio::test]
async fn sqlite_a_call_dropped_at_the_tool_timeout_stops_its_statement() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_db(dir.path()).await;
    let (mut spec, settings) = entry(Database::Sqlite(path.clone()), Duration::from_secs(60));
    spec.timeout = Duration::from_millis(300);
    let mut reg = ToolRegistry::default();
    reg.insert(Arc::new(SqlQuery::new(spec, settings)));
    let reads_items = "WITH RECURSIVE c(x) AS (SELECT id FROM items WHERE id = 1 \
                       UNION ALL SELECT x + 1 FROM c) SELECT max(x) AS m FROM c";
    let err = call(&reg, reads_items).await.unwrap_err();
    assert_eq!(err.code(), codes::TIMEOUT, "{err}");
    let mut writer = SqliteConnectOptions::new()
        .filename(&path)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut writer)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
}

/// `allowed_tables` narrows what is readable; `blocked_columns` removes one column.
#[tokio::test]
async fn sqlite_allowed_tables_and_blocked_columns_are_enforced_by_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_db(dir.path()).await;
    let (_, mut settings) = entry(Database::Sqlite(path.clone()), Duration::from_secs(5));
    settings.allowed_tables = vec!["items".into()];
    settings.blocked_columns = vec!["items.price".into()];
    let rows = sqlite::run(&path, "SELECT name FROM items WHERE id = 1", &settings)
        .await
        .unwrap();
    assert_eq!(Value::Array(rows.rows), json!([{ "name": "hammer" }]));
    for (query, reason) in [
        (
            "SELECT name FROM depts",
            "reading table `depts` is not permitted",
        ),
        (
            "SELECT count(*) AS n FROM depts",
            "reading table `depts` is not permitted",
        ),
        (
            "SELECT sum(price) AS s FROM items",
            "reading column `items.price` is not permitted",
        ),
        (
            "SELECT * FROM items",
            "reading column `items.price` is not permitted",
        ),
    ] {
        let err = sqlite::run(&path, query, &settings).await.unwrap_err();
        assert_eq!(
            err,
            ToolError::SqlDenied {
                reason: reason.into()
            },
            "{query}"
        );
    }
}
