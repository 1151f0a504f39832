//! A deferred model call on one real PostgreSQL (issue 14), with real `amas serve` processes:
//! a worker with one slot parks the task whose provider answered 429 with a `Retry-After`
//! longer than it sleeps in the call (its lease released with `parked_until` set), runs another
//! task in that slot meanwhile, and claims the first again once the wait is over.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

use amas_test_util::{Behaviour, MockOpenAi};
use common::Server;
use common::pg::{connect, drop_schema, fresh_schema, pg_env};

/// Whether the task's lease is live, and whether it is parked (neither before its first claim).
async fn lease(schema: &str, task: &str) -> (bool, bool) {
    let mut conn = connect().await;
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT expires_at > clock_timestamp(), \
         COALESCE(parked_until > clock_timestamp(), false) \
         FROM \"{schema}\".task_leases WHERE task_id = $1::uuid"
    )))
    .bind(task)
    .fetch_optional(&mut conn)
    .await
    .expect("lease query")
    .unwrap_or((false, false))
}

async fn submit(api: &Server, token: &str, description: &str) -> String {
    let (status, created) = api
        .post(
            token,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "Report", "description": description}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    created["id"].as_str().expect("task id").to_owned()
}

fn report_script() -> [Behaviour; 3] {
    [
        Behaviour::reply(json!({"findings": ["x"], "summary": "y"})),
        Behaviour::reply(json!({"insights": ["z"], "risks": []})),
        Behaviour::reply(json!({"title": "Report", "report": "done"})),
    ]
}

fn ended(t: &Value) -> bool {
    t["status"] == "succeeded" || t["status"] == "failed"
}

/// A worker with one slot: the first report's model answers 429 `Retry-After: 4` (the provider
/// sleeps in the call for at most 1 s), so the task parks: its lease released, parked until
/// then. A second report runs to completion in the slot meanwhile, the first still parked; then
/// the first is claimed again, its research step asks the model again (after the wait), and it
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_task_parks_on_a_worker_and_frees_its_slot() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let root_dir = tempfile::tempdir().expect("tempdir");
    let data = root_dir.path().join("data");
    let config = root_dir.path().join("config");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(
        config.join("providers.yaml"),
        format!(
            "providers:\n  local:\n    kind: openai\n    base_url: {}\n    model: m\n    timeout: 60s\n    max_retries: 0\n    max_retry_after: 1s\n",
            mock.base_url()
        ),
    )
    .expect("providers.yaml");
    mock.push("m", [Behaviour::retry_after(429, 4)]);
    let schema = fresh_schema("amas_backoff");
    let mut env = pg_env(&schema, "60s");
    env.push(("AMAS__STORE__POOL_SIZE", "4".to_owned()));
    env.push(("AMAS__RUNTIME__MAX_CONCURRENT_TASKS", "1".to_owned()));
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "production", &env, args, log)
    };
    let api = serve(&["--role", "api"], "api.log");
    let worker = serve(&["--role", "worker"], "worker.log");
    let root = api.token("root", &["admin"]);

    let first = submit(&api, &root, "first-task").await;
    let mut parked = false;
    for _ in 0..400 {
        let (live, is_parked) = lease(&schema, &first).await;
        if !live && is_parked {
            parked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(parked, "the rate-limited task was never parked");

    mock.push("m", report_script());
    let second = submit(&api, &root, "second-task").await;
    let done = api.wait_task(&root, &second, ended).await;
    assert_eq!(done["status"], "succeeded", "ran in the one slot: {done}");
    let (live, still_parked) = lease(&schema, &first).await;
    assert!(
        !live && still_parked,
        "the first task is still parked after the second finished"
    );

    mock.push("m", report_script());
    let done = api.wait_task(&root, &first, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let asked: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.body.to_string().contains("first-task"))
        .collect();
    // Only the research step's prompt carries the description.
    assert_eq!(asked.len(), 2, "refused once, then asked again once");
    let waited = asked[1]
        .received_at
        .duration_since(asked[0].received_at)
        .expect("in order");
    assert!(
        waited >= Duration::from_secs(4),
        "asked again after {waited:?}, before the Retry-After passed"
    );
    drop((api, worker));
    drop_schema(&schema).await;
}
