//! Store selection through the real binary against the real PostgreSQL of this machine
//! (`AMAS_TEST_DATABASE_URL`, or `postgres://postgres@127.0.0.1:5432/test`), each test in a
//! schema of its own, dropped at the end:
//! - a task run by `amas run` with nothing but `AMAS_DATABASE_URL` set lands in PostgreSQL
//!   (no SQLite file appears), verifies and replays there, and the URL's password shows
//!   nowhere, `config dump` included;
//! - `amas db status` before and after `amas db migrate`, a start refused while migrations are
//!   pending and starts do not migrate, then every command refusing a schema a newer binary
//!   migrated;
//! - `amas db copy` of a SQLite installation that ran a task with a dual approval: the audit
//!   chain verifies on PostgreSQL against the same witness, a server on PostgreSQL shows the
//!   same task and approval and goes on appending; a second copy is a no-op, a copy of another
//!   installation into the same target is refused.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use common::{AMAS, Server, ok_json, scripted_dirs, stdout_json};

/// A password the test URL carries (trust authentication ignores it): it must never be shown.
const PASSWORD: &str = "n0t-shown-pw";

/// The review script of the run tests: one analyzer call, then the verdict.
const REVIEW: &str = r#"
code_reviewer:
  - tool_calls:
      - {name: code_analyzer, arguments: {code: "fn main() {}", language: rs}}
  - json: {issues: [], verdict: approve}
"#;

/// The security auditor asks for the scanner (two approvers in production), then answers.
const AUDIT: &str = r#"
security_auditor:
  - tool_calls:
      - {name: vulnerability_scanner, arguments: {}}
  - json: {findings: ["no secrets found"], risk: low}
"#;

fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/test"))
}

fn fresh_schema() -> String {
    format!("amas_cli_{}", uuid::Uuid::now_v7().simple())
}

async fn connect() -> PgConnection {
    PgConnection::connect(&database_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"))
}

async fn drop_schema(schema: &str) {
    let mut conn = connect().await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the test schema");
}

async fn count(schema: &str, table: &str) -> i64 {
    let mut conn = connect().await;
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".{table}"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("count")
}

/// `amas` with `env` set and `AMAS_DATABASE_URL` only where `env` sets it.
fn amas_env(data: &Path, config: Option<&Path>, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(AMAS);
    cmd.env_remove("AMAS_CONFIG_DIR")
        .env_remove("AMAS_DATABASE_URL")
        .arg("--data-dir")
        .arg(data);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.args(args).output().expect("amas runs");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!shown.contains(PASSWORD), "the password leaked: {shown}");
    out
}

/// The URL variable and the schema of `schema`.
fn pg_env(schema: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AMAS_DATABASE_URL", database_url()),
        ("AMAS__STORE__SCHEMA", schema.to_owned()),
    ]
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run_review(data: &Path, config: &Path, env: &[(&str, String)]) -> Output {
    amas_env(
        data,
        Some(config),
        env,
        &[
            "run",
            "--task-type",
            "code_review",
            "--title",
            "Review main",
            "--description",
            "One file",
            "--json",
        ],
    )
}

/// `AMAS_DATABASE_URL` alone (its search path in the URL) moves `amas run` onto PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_end_to_end_on_postgres_selected_by_the_url_alone() {
    let schema = fresh_schema();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut connect().await)
        .await
        .expect("create schema");
    let (_root, data, config) = scripted_dirs(REVIEW, "", None);
    let base = database_url();
    let joiner = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{joiner}options[search_path]={schema}");
    let env = [("AMAS_DATABASE_URL", url)];

    let out = run_review(&data, &config, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task["status"], "succeeded", "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    assert!(
        !data.join("amas.db").exists(),
        "no SQLite database when PostgreSQL is selected"
    );
    assert_eq!(count(&schema, "tasks").await, 1);
    assert!(count(&schema, "journal").await >= 4);
    assert!(count(&schema, "audit_log").await >= 3);

    let status = ok_json(&amas_env(
        &data,
        Some(&config),
        &env,
        &["db", "status", "--format", "json"],
    ));
    assert_eq!(status["backend"], "postgres", "{status}");
    assert_eq!(status["state"], "current", "{status}");
    assert!(
        status["location"].as_str().unwrap().contains("<redacted>")
            || !database_url().contains(PASSWORD),
        "{status}"
    );
    let verified = ok_json(&amas_env(&data, Some(&config), &env, &["audit", "verify"]));
    assert_eq!(verified["intact"], true, "{verified}");
    assert!(
        verified["checkpoints_checked"].as_u64().unwrap() >= 1,
        "{verified}"
    );
    let replay = amas_env(&data, Some(&config), &env, &["replay", &id]);
    assert_eq!(replay.status.code(), Some(0), "{}", stderr(&replay));

    // The dump names the backend and the server, never the password.
    let dump = ok_json(&amas_env(&data, Some(&config), &env, &["config", "dump"]));
    assert_eq!(dump["store"]["backend"], "postgres", "{}", dump["store"]);
    assert_eq!(dump["store"]["url_env"], "AMAS_DATABASE_URL");
    let shown = dump["store"]["url"].as_str().unwrap();
    assert!(shown.contains("127.0.0.1:5432/test"), "{shown}");
    if database_url().contains(PASSWORD) {
        assert!(shown.contains("postgres:<redacted>@"), "{shown}");
    }
    // Without the variable, the same installation is SQLite again (and empty).
    let dump = ok_json(&amas_env(&data, Some(&config), &[], &["config", "dump"]));
    assert_eq!(dump["store"]["backend"], "sqlite", "{}", dump["store"]);
    drop_schema(&schema).await;
}

/// Status before and after migrating; a start refused while migrations are pending and starts
/// do not migrate; then a schema a newer binary migrated is refused by every command that
/// would use it, and reported by `db status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_status_and_migrate_then_a_newer_schema_is_refused() {
    let schema = fresh_schema();
    let (_root, data, config) = scripted_dirs(REVIEW, "", None);
    let mut env = pg_env(&schema);
    env.push(("AMAS__STORE__MIGRATE_ON_START", "false".to_owned()));
    let db = |args: &[&str]| amas_env(&data, Some(&config), &env, args);

    let before = ok_json(&db(&["db", "status", "--format", "json"]));
    assert_eq!(before["state"], "pending", "{before}");
    assert_eq!(before["version"], Value::Null, "{before}");
    let binary = before["binary_version"].as_i64().unwrap();
    // Every migration the binary ships is pending, the newest last (numbers may have gaps
    // while branches that each add one are merged).
    let pending: Vec<i64> = before["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect();
    assert_eq!(pending.last(), Some(&binary), "{before}");
    assert!(before["applied"].as_array().unwrap().is_empty());

    // Starts do not migrate here: refused with the remedy, nothing written.
    let refused = run_review(&data, &config, &env);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("AMAS-STORE-0012"),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("amas db migrate"),
        "{}",
        stderr(&refused)
    );

    let migrated = ok_json(&db(&["db", "migrate", "--format", "json"]));
    assert_eq!(migrated["state"], "current", "{migrated}");
    let applied_now: Vec<i64> = serde_json::from_value(migrated["applied_now"].clone()).unwrap();
    assert_eq!(applied_now, pending);
    let after = ok_json(&db(&["db", "status", "--format", "json"]));
    assert_eq!(after["version"], binary, "{after}");
    assert!(after["pending"].as_array().unwrap().is_empty(), "{after}");
    let text = db(&["db", "status"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("state: current"));
    // Migrating again does nothing.
    let again = ok_json(&db(&["db", "migrate", "--format", "json"]));
    assert_eq!(again["applied_now"], json!([]), "{again}");
    // And now the start goes through.
    let ran = run_review(&data, &config, &env);
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    let tasks = count(&schema, "tasks").await;
    assert_eq!(tasks, 1);

    // A newer AMAS migrated the database.
    let mut conn = connect().await;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{schema}\"._sqlx_migrations \
         (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer amas', TRUE, '\\x00'::bytea, 0)"
    )))
    .execute(&mut conn)
    .await
    .expect("record a future migration");
    let status = ok_json(&db(&["db", "status", "--format", "json"]));
    assert_eq!(status["state"], "newer", "{status}");
    assert_eq!(status["unknown"], json!([9999]), "{status}");

    let mut migrating = pg_env(&schema);
    migrating.push(("AMAS__STORE__MIGRATE_ON_START", "true".to_owned()));
    for args in [
        vec!["db", "migrate"],
        vec!["audit", "verify"],
        vec!["retention", "run", "--dry-run"],
        vec!["serve", "--listen", "127.0.0.1:0"],
    ] {
        let out = amas_env(&data, Some(&config), &migrating, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("AMAS-STORE-0011") && stderr(&out).contains("newer"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let refused = run_review(&data, &config, &migrating);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("AMAS-STORE-0011"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(count(&schema, "tasks").await, tasks, "nothing was written");
    drop_schema(&schema).await;
}

async fn submit_audit(server: &Server, token: &str) -> String {
    let (status, created) = server
        .post(
            token,
            "/api/v1/tasks",
            &json!({"task_type": "security_audit", "title": "Audit the workspace", "description": "Look for secrets"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// A SQLite installation that ran a task through a dual approval moves to PostgreSQL intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_moves_a_sqlite_installation_that_verifies_on_postgres() {
    let schema = fresh_schema();
    let (_root, data, config) = scripted_dirs(AUDIT, "", None);

    // On SQLite: the audit waits for two approvers, then finishes.
    let server = Server::start_in(&data, Some(&config), "production");
    let root = server.token("root", &["admin"]);
    let bob = server.token("bob", &["approver"]);
    let carol = server.token("carol", &["approver"]);
    let id = submit_audit(&server, &root).await;
    server
        .wait_task(&root, &id, |t| t["status"] == "waiting_approval")
        .await;
    let (_, listed) = server.get(&bob, "/api/v1/approvals").await;
    let approval = listed["approvals"][0]["id"].as_str().unwrap().to_owned();
    for approver in [&bob, &carol] {
        let (status, body) = server
            .post(
                approver,
                &format!("/api/v1/approvals/{approval}/approve"),
                &json!({"reason": "scanner is read-only"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    server
        .wait_task(&root, &id, |t| t["status"] == "succeeded")
        .await;
    // The views as SQLite serves them once everything is committed.
    let (_, task) = server.get(&root, &format!("/api/v1/tasks/{id}")).await;
    let (_, approval_view) = server
        .get(&root, &format!("/api/v1/approvals/{approval}"))
        .await;
    assert_eq!(approval_view["status"], "approved", "{approval_view}");
    let mut server = server;
    assert!(server.terminate().success());
    drop(server);
    let sqlite_verify = ok_json(&amas_env(&data, Some(&config), &[], &["audit", "verify"]));
    assert_eq!(sqlite_verify["intact"], true, "{sqlite_verify}");

    // The copy: the URL from the variable, the schema from config.
    let env = pg_env(&schema);
    let from = format!("sqlite:{}", data.display());
    let copy = |data: &Path, from: &str| {
        amas_env(
            data,
            Some(&config),
            &env,
            &[
                "db", "copy", "--from", from, "--to", "postgres", "--format", "json",
            ],
        )
    };
    let report = ok_json(&copy(&data, &from));
    assert_eq!(report["already_copied"], false, "{report}");
    assert_eq!(report["tasks"], 1, "{report}");
    assert_eq!(report["approvals"], 1, "{report}");
    assert_eq!(
        report["audit_records"], sqlite_verify["records_checked"],
        "{report} {sqlite_verify}"
    );
    assert!(report["checkpoints"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        count(&schema, "audit_log").await,
        report["audit_records"].as_i64().unwrap()
    );

    // The chain verifies on PostgreSQL with the same keys and witness.
    let pg_verify = ok_json(&amas_env(&data, Some(&config), &env, &["audit", "verify"]));
    assert_eq!(pg_verify["intact"], true, "{pg_verify}");
    assert_eq!(
        pg_verify["records_checked"],
        sqlite_verify["records_checked"]
    );
    assert_eq!(
        pg_verify["checkpoints_checked"],
        sqlite_verify["checkpoints_checked"]
    );

    // A server on PostgreSQL shows the same task and approval, and appends after them.
    let server = Server::spawn(&data, Some(&config), "production", &env);
    let (status, pg_task) = server.get(&root, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(status, 200, "{pg_task}");
    assert_eq!(pg_task, task);
    let (_, pg_approval) = server
        .get(&root, &format!("/api/v1/approvals/{approval}"))
        .await;
    assert_eq!(pg_approval, approval_view);
    let mut server = server;
    assert!(server.terminate().success());
    drop(server);
    let log = common::read_log(&data);
    assert!(
        log.contains("\"store\":\"postgres://"),
        "the start names the store: {log}"
    );
    assert!(
        !log.contains(PASSWORD),
        "the password leaked into the log: {log}"
    );
    let grown = ok_json(&amas_env(&data, Some(&config), &env, &["audit", "verify"]));
    assert_eq!(grown["intact"], true, "{grown}");
    assert!(
        grown["records_checked"].as_u64() > pg_verify["records_checked"].as_u64(),
        "the server's start is audited after the copied chain: {grown}"
    );

    // Refusals. The same copy again: the target is no longer what the source holds (the
    // server appended), so it is refused, and nothing changes.
    let audit_rows = count(&schema, "audit_log").await;
    let again = copy(&data, &from);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("AMAS-STORE-0013"),
        "{}",
        stderr(&again)
    );
    assert_eq!(count(&schema, "audit_log").await, audit_rows);
    // Another installation into the same target: refused.
    let (_other_root, other, other_config) = scripted_dirs(REVIEW, "", None);
    let ran = run_review(&other, &other_config, &[]);
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    let other_from = format!("sqlite:{}", other.display());
    let refused = copy(&other, &other_from);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("AMAS-STORE-0013"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(count(&schema, "tasks").await, 1);
    // A source that is not there, a target that is not PostgreSQL.
    let missing = copy(&data, "sqlite:/nonexistent/amas");
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    let bad = amas_env(
        &data,
        Some(&config),
        &[],
        &["db", "copy", "--from", &from, "--to", "postgres"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("AMAS_DATABASE_URL"),
        "{}",
        stderr(&bad)
    );
    drop_schema(&schema).await;
}

/// A second copy of an unchanged source into its own copy is a no-op that succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_twice_is_a_no_op() {
    let schema = fresh_schema();
    let (_root, data, config) = scripted_dirs(REVIEW, "", None);
    let ran = run_review(&data, &config, &[]);
    assert_eq!(ran.status.code(), Some(0), "{}", stderr(&ran));
    let env = pg_env(&schema);
    let from = format!("sqlite:{}", data.display());
    let args = [
        "db", "copy", "--from", &from, "--to", "postgres", "--format", "json",
    ];
    let first = ok_json(&amas_env(&data, Some(&config), &env, &args));
    assert_eq!(first["already_copied"], false, "{first}");
    let second = ok_json(&amas_env(&data, Some(&config), &env, &args));
    assert_eq!(second["already_copied"], true, "{second}");
    assert_eq!(second["tasks"], first["tasks"]);
    assert_eq!(count(&schema, "tasks").await, 1);
    let out = stdout_json(&amas_env(&data, Some(&config), &env, &["audit", "verify"]));
    assert_eq!(out["intact"], true, "{out}");
    drop_schema(&schema).await;
}
