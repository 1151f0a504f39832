//! PostgreSQL: the reader role's privileges, the READ ONLY transaction and `statement_timeout`,
//! alone (the backend called with the lexer skipped) and behind the lexer (the tool); and the
//! role check that refuses to run anything as a role that is more than a reader.

use std::future::Future;

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use super::*;
use crate::sql::{postgres, reader_role_statements};

fn admin_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn parse(url: &str) -> url::Url {
    let Ok(u) = url::Url::parse(url) else {
        panic!("AMAS_TEST_DATABASE_URL is a URL")
    };
    u
}

/// `url` as another user (no password: the test server trusts 127.0.0.1).
fn url_as(url: &str, user: &str) -> String {
    let mut u = parse(url);
    let _ = u.set_username(user);
    let _ = u.set_password(None);
    u.to_string()
}

/// `url` on another database.
fn with_database(url: &str, database: &str) -> String {
    let mut u = parse(url);
    u.set_path(database);
    u.to_string()
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}_{}_{nanos}", std::process::id())
}

async fn exec(conn: &mut PgConnection, stmts: &[String]) {
    for stmt in stmts {
        if let Err(e) = conn.execute(AssertSqlSafe(stmt.clone())).await {
            panic!("{stmt}: {e}")
        }
    }
}

async fn admin(url: &str) -> PgConnection {
    match PgConnection::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!("PostgreSQL at 127.0.0.1:5432 (or AMAS_TEST_DATABASE_URL): {e}"),
    }
}

/// A schema with the fixture tables and a reader role (made with [`reader_role_statements`])
/// that may read `items` and `depts` and whose search path is that schema.
#[derive(Clone)]
struct Pg {
    schema: String,
    role: String,
    reader_url: String,
}

impl Pg {
    fn db(&self) -> Database {
        Database::Postgres(self.reader_url.clone().into())
    }
}

/// Runs `body` against a fresh [`Pg`], then drops the schema and the role even if it failed.
async fn with_pg<F, Fut>(body: F)
where
    F: FnOnce(Pg) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = admin_url();
    let mut conn = admin(&url).await;
    let (schema, role) = (unique("amas_sqlsafe"), unique("amas_sqlsafe_r"));
    exec(
        &mut conn,
        &[
            format!("CREATE SCHEMA {schema}"),
            format!("SET search_path = {schema}"),
        ],
    )
    .await;
    exec(&mut conn, &fixture_sql()).await;
    let tables = [format!("{schema}.items"), format!("{schema}.depts")];
    let tables: Vec<&str> = tables.iter().map(String::as_str).collect();
    exec(&mut conn, &reader_role_statements(&role, &tables)).await;
    exec(
        &mut conn,
        &[format!("ALTER ROLE {role} SET search_path = {schema}")],
    )
    .await;
    let pg = Pg {
        reader_url: url_as(&url, &role),
        schema: schema.clone(),
        role: role.clone(),
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "test scaffolding: the body runs apart so that a failed assertion still cleans up"
    )]
    let outcome = tokio::spawn(body(pg)).await;
    exec(
        &mut conn,
        &[
            format!("DROP SCHEMA {schema} CASCADE"),
            format!("DROP OWNED BY {role}"),
            format!("DROP ROLE {role}"),
        ],
    )
    .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn postgres_a_permitted_join_and_aggregate_returns_the_right_rows() {
    with_pg(|pg| async move {
        let (_, settings) = entry(pg.db(), Duration::from_secs(5));
        let rows = postgres::run(&pg.reader_url, ALLOWED, &settings)
            .await
            .unwrap();
        assert_eq!(Value::Array(rows.rows), allowed_rows());
        let out = call(&registry(pg.db(), Duration::from_secs(5)), ALLOWED)
            .await
            .unwrap();
        assert_eq!(out["rows"], allowed_rows());
    })
    .await;
}

/// H1: the `\r` comment, `U&"..."`, quoted function names and the functions that run SQL from
/// a string all reach a table the role may not read, and PostgreSQL refuses; the XML dump
/// of the schema holds only what the role may read; the role cannot switch to another.
#[tokio::test]
async fn postgres_the_engine_alone_refuses_every_bypass() {
    with_pg(|pg| async move {
        let (_, settings) = entry(pg.db(), Duration::from_secs(5));
        let mut results = Vec::new();
        for (query, _, on_postgres) in bypasses() {
            results.push((
                query,
                on_postgres,
                postgres::run(&pg.reader_url, query, &settings).await,
            ));
        }
        judge(&results);
        let err = results[0].2.as_ref().map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused by the database: the tool's database role has no privilege for what the \
             statement reads (permission denied)"
        );
    })
    .await;
}

#[tokio::test]
async fn postgres_the_tool_refuses_every_bypass() {
    with_pg(|pg| async move {
        assert_tool_refuses_every_bypass(&registry(pg.db(), Duration::from_secs(5))).await;
    })
    .await;
}

/// M2 on PostgreSQL: `statement_timeout` cancels the runaway CTE at the statement budget (1s),
/// long before the tool's 15s timeout; a value past the server's limit fails by its code.
#[tokio::test]
async fn postgres_budgets_stop_the_runaway_cte_and_the_size_bomb() {
    with_pg(|pg| async move {
        let reg = registry(pg.db(), Duration::from_secs(1));
        let err = call(&reg, RUNAWAY).await.unwrap_err();
        assert_eq!(err.code(), codes::SQL_TIME_BUDGET, "{err}");
        let err = call(&reg, "SELECT length(repeat('x', 1073741824)) AS n")
            .await
            .unwrap_err();
        assert_eq!(err.code(), codes::SQL_LIMIT, "{err}");
    })
    .await;
}

/// The role check refuses to run anything as a superuser, or as a reader that was granted a
/// blocked table or column; it names the problem, never data.
#[tokio::test]
async fn postgres_a_role_that_is_more_than_a_reader_runs_nothing() {
    with_pg(|pg| async move {
        let superuser = Database::Postgres(admin_url().into());
        let err = call(
            &registry(superuser, Duration::from_secs(5)),
            "SELECT 1 AS one",
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), codes::SQL_ROLE, "{err}");
        assert!(err.to_string().contains("is a superuser"), "{err}");

        let mut conn = admin(&admin_url()).await;
        let (schema, role) = (&pg.schema, &pg.role);
        for (grant, problem) in [
            (
                format!("GRANT SELECT ON {schema}.secrets TO {role}"),
                format!("role {role} can read blocked table {schema}.secrets"),
            ),
            (
                format!("GRANT SELECT (password) ON {schema}.credentials TO {role}"),
                format!("role {role} can read blocked table {schema}.credentials"),
            ),
        ] {
            exec(&mut conn, &[grant]).await;
            let err = call(
                &registry(pg.db(), Duration::from_secs(5)),
                "SELECT 1 AS one",
            )
            .await
            .unwrap_err();
            assert_eq!(err.code(), codes::SQL_ROLE, "{err}");
            assert!(err.to_string().contains(&problem), "{err}");
            assert!(!err.to_string().contains(SECRET), "{err}");
            exec(
                &mut conn,
                &[format!(
                    "REVOKE ALL ON {schema}.secrets, {schema}.credentials FROM {role}"
                )],
            )
            .await;
        }

        let (spec, mut settings) = entry(pg.db(), Duration::from_secs(5));
        settings.blocked_columns = vec!["items.price".into()];
        let mut reg = ToolRegistry::default();
        reg.insert(Arc::new(SqlQuery::new(spec, settings)));
        let err = call(&reg, "SELECT name FROM items").await.unwrap_err();
        assert_eq!(err.code(), codes::SQL_ROLE, "{err}");
        assert!(
            err.to_string()
                .contains(&format!("can read blocked column {schema}.items.price")),
            "{err}"
        );
        let _ = conn.close().await;
    })
    .await;
}

/// `dblink` opens a connection of its own, outside the READ ONLY transaction. Installed with
/// its default grants (EXECUTE to PUBLIC), the role check refuses to run anything; once an
/// operator revokes them, PostgreSQL refuses the call itself. `allowed_tables` is checked
/// against the role's grants too. In a database of its own: an extension is per database.
#[tokio::test]
async fn postgres_dblink_and_allowed_tables_are_held_by_the_role() {
    let url = admin_url();
    let mut conn = admin(&url).await;
    let (db, role) = (unique("amas_sqlsafe_db"), unique("amas_sqlsafe_r"));
    exec(&mut conn, &[format!("CREATE DATABASE {db}")]).await;
    let scratch_url = with_database(&url, &db);
    #[expect(
        clippy::disallowed_methods,
        reason = "test scaffolding: the body runs apart so that a failed assertion still cleans up"
    )]
    let outcome = tokio::spawn(dblink_body(scratch_url.clone(), db.clone(), role.clone())).await;
    if let Ok(mut scratch) = PgConnection::connect(&scratch_url).await {
        let _ = scratch
            .execute(AssertSqlSafe(format!("DROP OWNED BY {role}")))
            .await;
        let _ = scratch.close().await;
    }
    for stmt in [
        format!("DROP DATABASE {db} WITH (FORCE)"),
        format!("DROP ROLE {role}"),
    ] {
        let _ = conn.execute(AssertSqlSafe(stmt)).await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

async fn dblink_body(scratch_url: String, db: String, role: String) {
    let mut scratch = admin(&scratch_url).await;
    let mut stmts = fixture_sql();
    stmts.push("CREATE TABLE orders (id integer)".into());
    stmts.push("CREATE EXTENSION dblink".into());
    stmts.extend(reader_role_statements(&role, &["items", "depts"]));
    exec(&mut scratch, &stmts).await;
    let reader_url = url_as(&scratch_url, &role);
    let (spec, mut settings) = entry(
        Database::Postgres(reader_url.clone().into()),
        Duration::from_secs(5),
    );
    settings.allowed_tables = vec!["items".into(), "depts".into()];
    let mut reg = ToolRegistry::default();
    reg.insert(Arc::new(SqlQuery::new(spec, settings)));

    let err = call(&reg, ALLOWED).await.unwrap_err();
    assert_eq!(err.code(), codes::SQL_ROLE, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("role {role} can execute public.dblink,")),
        "{err}"
    );
    assert!(err.to_string().contains("public.dblink_exec"), "{err}");

    exec(
        &mut scratch,
        &["REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC".into()],
    )
    .await;
    let out = call(&reg, ALLOWED).await.unwrap();
    assert_eq!(out["rows"], allowed_rows());
    let (_, settings) = entry(
        Database::Postgres(reader_url.clone().into()),
        Duration::from_secs(5),
    );
    let attack =
        format!("SELECT dblink_exec('dbname={db} user=postgres', 'DELETE FROM items') AS x");
    let err = postgres::run(&reader_url, &attack, &settings)
        .await
        .unwrap_err();
    assert_eq!(err.code(), codes::SQL_DENIED, "{err}");

    exec(&mut scratch, &[format!("GRANT SELECT ON orders TO {role}")]).await;
    let err = call(&reg, ALLOWED).await.unwrap_err();
    assert_eq!(err.code(), codes::SQL_ROLE, "{err}");
    assert!(
        err.to_string()
            .contains("public.orders, which is not in allowed_tables"),
        "{err}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&mut scratch)
        .await
        .unwrap();
    assert_eq!(count, 3, "dblink deleted nothing");
    let _ = scratch.close().await;
}
