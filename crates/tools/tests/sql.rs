//! `sql_query` against real databases: a SQLite file made here, and the local PostgreSQL
//! (`AMAS_TEST_DATABASE_URL` or `postgres://postgres@127.0.0.1:5432/test`) in a schema of
//! its own. Reads work, writes and blocked tables are refused, the row limit holds.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns"
)]

mod common;

use amas_tools::config::{Database, ToolSettings};
use amas_tools::{SqlQuery, Tool, ToolConfig, ToolError, codes};
use common::{ctx, entry};
use secrecy::SecretString;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};

fn tool(db: Option<Database>) -> SqlQuery {
    let ToolConfig { spec, settings } = entry("sql_query");
    let ToolSettings::SqlQuery(mut s) = settings else {
        panic!("sql settings")
    };
    s.database = db;
    s.blocked_tables.push("payroll".into());
    SqlQuery::new(spec, s)
}

async fn run(t: &SqlQuery, q: &str) -> Result<serde_json::Value, ToolError> {
    let dir = tempfile::tempdir().expect("dir");
    t.call(&ctx(dir.path()), json!({ "query": q }))
        .await
        .map(|o| o.content)
}

/// Write attempts in the shapes attackers use; `{t}` is the data table.
fn write_attempts(t: &str) -> Vec<String> {
    vec![
        format!("INSERT INTO {t} (id, name) VALUES (999, 'x')"),
        format!("SELECT 1; DROP TABLE {t}"),
        format!("SELECT 1; DELETE FROM {t}"),
        format!("WITH x AS (DELETE FROM {t} RETURNING *) SELECT * FROM x"),
        format!("SELECT 1 /* harmless */; UPDATE {t} SET name = 'p'"),
        format!("SELECT 1 -- comment\n; DELETE FROM {t}"),
        format!("SELECT 1 /* /* */ DELETE FROM {t} */"),
        format!("/* SELECT */ DELETE FROM {t}"),
        format!("SELECT * INTO stolen FROM {t}"),
        format!("UPDATE {t} SET name = 'p'"),
        format!("select 1;\n\nDrOp TaBlE {t}"),
        format!("SELECT * FROM {t} FOR UPDATE"),
    ]
}

#[tokio::test]
async fn unconfigured_database_is_disabled_with_a_clear_error() {
    let err = run(&tool(None), "SELECT 1").await.expect_err("no db");
    assert_eq!(err.code(), codes::DISABLED);
    assert!(err.to_string().contains("no database configured"), "{err}");
}

#[tokio::test]
async fn sqlite_reads_refuses_writes_and_honours_the_row_limit() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("data.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url).await.expect("sqlite");
    sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, raw BLOB)")
        .execute(&mut conn)
        .await
        .expect("create");
    sqlx::query("CREATE TABLE payroll (salary INTEGER)")
        .execute(&mut conn)
        .await
        .expect("create");
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) \
         INSERT INTO items SELECT i, 'item' || i, i * 1.5, NULL FROM n",
    )
    .execute(&mut conn)
    .await
    .expect("seed");
    conn.close().await.expect("close");

    let t = tool(Some(Database::Sqlite(path.clone())));
    let out = run(
        &t,
        "SELECT id, name, price, raw FROM items WHERE id <= 2 ORDER BY id;",
    )
    .await
    .expect("select");
    assert_eq!(
        out["rows"],
        json!([
            { "id": 1, "name": "item1", "price": 1.5, "raw": null },
            { "id": 2, "name": "item2", "price": 3.0, "raw": null },
        ])
    );
    assert_eq!(out["truncated"], false);

    let all = run(
        &t,
        "WITH x AS (SELECT * FROM items) SELECT id FROM x ORDER BY id",
    )
    .await
    .expect("with");
    assert_eq!(all["row_count"], 200, "row_limit from tools.yaml");
    assert_eq!(all["truncated"], true);
    assert_eq!(all["rows"][199]["id"], 200);

    for q in write_attempts("items") {
        let err = run(&t, &q).await.expect_err(&q);
        assert_eq!(err.code(), codes::REFUSED, "{q}: {err}");
    }
    for q in [
        "SELECT * FROM payroll",
        "SELECT * FROM main.\"PAYROLL\"",
        "SELECT name FROM sqlite_master",
    ] {
        let err = run(&t, q).await.expect_err(q);
        assert!(err.to_string().contains("blocked"), "{q}: {err}");
    }
    let count = run(&t, "SELECT count(*) AS n FROM items")
        .await
        .expect("count");
    assert_eq!(count["rows"][0]["n"], 300, "nothing was deleted");
}

fn pg_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[tokio::test]
async fn postgres_reads_in_a_read_only_transaction_and_refuses_writes() {
    let url = pg_url();
    let mut admin = PgConnection::connect(&url)
        .await
        .expect("postgres on 127.0.0.1:5432");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("t")
        .as_nanos();
    let schema = format!("amas_tools_{}_{nanos}", std::process::id());
    let role = format!("amas_tools_r_{}_{nanos}", std::process::id());
    let mut setup = vec![
        format!("CREATE SCHEMA {schema}"),
        format!("CREATE TABLE {schema}.items (id int PRIMARY KEY, name text, tags jsonb)"),
        format!(
            "INSERT INTO {schema}.items SELECT g, 'item' || g, '[\"a\"]' FROM generate_series(1, 300) g"
        ),
        format!("CREATE TABLE {schema}.payroll (salary int)"),
    ];
    // The tool connects as a reader of `items` only (a superuser would be refused).
    setup.extend(amas_tools::sql::reader_role_statements(
        &role,
        &[&format!("{schema}.items")],
    ));
    for stmt in setup {
        sqlx::query(AssertSqlSafe(stmt))
            .execute(&mut admin)
            .await
            .expect("setup");
    }
    let mut reader = url::Url::parse(&url).expect("url");
    reader.set_username(&role).expect("user");
    reader.set_password(None).expect("password");

    let t = tool(Some(Database::Postgres(SecretString::from(
        reader.to_string(),
    ))));
    let items = format!("{schema}.items");
    let (items2, schema2) = (items.clone(), schema.clone());
    // Spawned so that a failed assertion still lets the schema be dropped below.
    #[expect(
        clippy::disallowed_methods,
        reason = "test scaffolding: a server or a race that ends with the test"
    )]
    let result = tokio::spawn(async move {
        let (items, schema) = (items2, schema2);
        let out = run(
            &t,
            &format!("SELECT id, name, tags FROM {items} WHERE id <= 2 ORDER BY id"),
        )
        .await
        .expect("select");
        assert_eq!(
            out["rows"],
            json!([
                { "id": 1, "name": "item1", "tags": ["a"] },
                { "id": 2, "name": "item2", "tags": ["a"] },
            ])
        );
        let many = run(&t, &format!("SELECT id FROM {items} ORDER BY id"))
            .await
            .expect("many");
        assert_eq!(many["row_count"], 200);
        assert_eq!(many["truncated"], true);
        for q in write_attempts(&items) {
            let err = run(&t, &q).await.expect_err(&q);
            assert_eq!(err.code(), codes::REFUSED, "{q}: {err}");
        }
        let err = run(&t, &format!("SELECT * FROM {schema}.payroll"))
            .await
            .expect_err("blocked");
        assert!(
            err.to_string().contains("table `payroll` is blocked"),
            "{err}"
        );
        let err = run(&t, "SELECT pg_read_file('/etc/passwd')")
            .await
            .expect_err("file read");
        assert_eq!(err.code(), codes::REFUSED);
        let err = run(&t, "SELECT no_such_column FROM pg_class")
            .await
            .expect_err("db error");
        assert_eq!(err.code(), codes::FAILED);
        assert!(
            !err.to_string().contains("postgres://"),
            "the URL never leaks: {err}"
        );
    })
    .await;
    let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {items}")))
        .fetch_one(&mut admin)
        .await
        .expect("count");
    for stmt in [
        format!("DROP SCHEMA {schema} CASCADE"),
        format!("DROP OWNED BY {role}"),
        format!("DROP ROLE {role}"),
    ] {
        sqlx::query(AssertSqlSafe(stmt))
            .execute(&mut admin)
            .await
            .expect("drop");
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
    assert_eq!(count, 300, "no write went through");
}
