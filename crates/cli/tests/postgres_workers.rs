//! Several `amas serve` processes on one real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), in a schema of its own: one `--role api`
//! process takes the submission, two `--role worker` processes claim tasks under leases. The
//! worker running the task is killed with SIGKILL while its second step's model call hangs;
//! the other worker claims the task once the lease expires (under the next fencing epoch) and
//! finishes it, and the first step's model call, journaled before the kill, is never made
//! again.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::time::Duration;

use serde_json::json;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use amas_test_util::{Behaviour, MockOpenAi};
use common::Server;

fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn is_research_call(body: &serde_json::Value) -> bool {
    body["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("research assistant"))
}

async fn connect() -> PgConnection {
    PgConnection::connect(&database_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"))
}

/// The task's lease: the worker holding it and its epoch.
async fn lease(schema: &str, task: &str) -> Option<(String, i64)> {
    let mut conn = connect().await;
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT worker, epoch FROM \"{schema}\".task_leases WHERE task_id = $1::uuid"
    )))
    .bind(task)
    .fetch_optional(&mut conn)
    .await
    .expect("lease query")
}

/// The pid in a worker's name (`host/pid/nonce`).
fn pid_of(worker: &str) -> u32 {
    worker
        .split('/')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a worker name with a pid: {worker}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_task_is_finished_by_another_without_repeating_journaled_calls() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let dirs = tempfile::tempdir().expect("tempdir");
    let data = dirs.path().join("data");
    let config = dirs.path().join("config");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(
        config.join("providers.yaml"),
        format!(
            "providers:\n  local:\n    kind: openai\n    base_url: {}\n    model: m\n    timeout: 60s\n    max_retries: 0\n",
            mock.base_url()
        ),
    )
    .expect("providers.yaml");
    mock.push(
        "m",
        [
            Behaviour::reply(
                json!({"findings": ["PostgreSQL scales out"], "summary": "Leases and fences."}),
            ),
            Behaviour::Hang,
        ],
    );
    let schema = format!("amas_workers_{}", uuid::Uuid::now_v7().simple());
    let env = vec![
        ("AMAS_DATABASE_URL", database_url()),
        ("AMAS__STORE__SCHEMA", schema.clone()),
        ("AMAS__STORE__LEASE_TTL", "2s".to_owned()),
        ("AMAS__STORE__CLAIM_INTERVAL", "100ms".to_owned()),
    ];
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "development", &env, args, log)
    };
    // The API process first: it migrates the schema the workers then find current.
    let api = serve(&["--role", "api"], "api.log");
    let first = serve(&["--role", "worker"], "worker-1.log");
    let second = serve(&["--role", "worker"], "worker-2.log");
    // A worker serves its probes but no API.
    let token = api.token("alice", &["submitter"]);
    let (status, _) = first.get(&token, "/healthz").await;
    assert_eq!(status, 200);
    let (status, _) = first.get(&token, "/api/v1/tasks").await;
    assert_eq!(status, 404, "a worker serves no API");

    let (status, created) = api
        .post(
            &token,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "Workers", "description": "How do leases work?"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("task id").to_owned();
    // A worker runs it: research journaled, analysis waiting on the hung model.
    api.wait_task(&token, &id, |t| {
        t["steps"].as_array().is_some_and(|steps| {
            steps
                .iter()
                .any(|s| s["name"] == "research" && s["status"] == "succeeded")
                && steps
                    .iter()
                    .any(|s| s["name"] == "analysis" && s["status"] == "running")
        })
    })
    .await;
    for _ in 0..100 {
        if mock.request_count("m") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        mock.request_count("m"),
        2,
        "research answered, analysis hanging"
    );
    let (holder, epoch) = lease(&schema, &id).await.expect("the task is leased");
    assert_eq!(epoch, 1);
    let (victim, survivor) = if pid_of(&holder) == first.pid() {
        (first, second)
    } else {
        assert_eq!(
            pid_of(&holder),
            second.pid(),
            "a worker of this test holds it"
        );
        (second, first)
    };
    victim.kill9();

    mock.push(
        "m",
        [
            Behaviour::reply(json!({"insights": ["Fencing epochs"], "risks": []})),
            Behaviour::reply(json!({"title": "Workers", "report": "Leases expire; epochs fence."})),
        ],
    );
    let done = api
        .wait_task(&token, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["title"], "Workers");
    let (holder, epoch) = lease(&schema, &id).await.expect("still leased");
    assert_eq!(
        pid_of(&holder),
        survivor.pid(),
        "the surviving worker took over"
    );
    assert_eq!(epoch, 2, "the takeover raised the epoch");
    let research_calls = mock
        .requests()
        .iter()
        .filter(|r| is_research_call(&r.body))
        .count();
    assert_eq!(
        research_calls, 1,
        "the journaled model call was not repeated"
    );
    assert_eq!(
        mock.request_count("m"),
        4,
        "research once, analysis twice (hung + after the takeover), synthesis once"
    );

    let mut survivor = survivor;
    assert!(survivor.terminate().success(), "a worker stops cleanly");
    let mut api = api;
    assert!(api.terminate().success());
    drop((api, survivor));
    let mut conn = connect().await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the test schema");
}
