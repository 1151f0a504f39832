//! Votes and cancels across processes on one real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a schema of its own, with real
//! `amas serve` processes: two `--role api` processes and a `--role worker`. A task waiting for
//! approval is parked (its lease released, no slot held); the votes go through the API
//! process the task was not submitted to and reach the worker, a vote recorded twice counts
//! once, and a cancel through the other API process stops a task the worker is running (well
//! before its lease would expire) or, for a parked task, is journaled by the API process under
//! a short lease of its own.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

use amas_test_util::{Behaviour, MockOpenAi};
use common::Server;
use common::pg::{connect, database_url, drop_schema, mock_dirs, pid_of};

/// A lease of 60 s: nothing in these tests may wait for one to expire.
fn pg_env(schema: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AMAS_DATABASE_URL", database_url()),
        ("AMAS__STORE__SCHEMA", schema.to_owned()),
        ("AMAS__STORE__LEASE_TTL", "60s".to_owned()),
        ("AMAS__STORE__CLAIM_INTERVAL", "100ms".to_owned()),
        // Three processes per test, tests in parallel: a small pool each.
        ("AMAS__STORE__POOL_SIZE", "4".to_owned()),
    ]
}
/// The task's lease: holder, epoch, whether it is live, whether it is parked.
async fn lease(schema: &str, task: &str) -> (String, i64, bool, bool) {
    let mut conn = connect().await;
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT worker, epoch, expires_at > clock_timestamp(), \
         COALESCE(parked_until > clock_timestamp(), false) \
         FROM \"{schema}\".task_leases WHERE task_id = $1::uuid"
    )))
    .bind(task)
    .fetch_one(&mut conn)
    .await
    .expect("lease query")
}

/// Waits (bounded) until the task's lease is released and parked.
async fn parked(schema: &str, task: &str) {
    for _ in 0..200 {
        let (_, _, live, parked) = lease(schema, task).await;
        if !live && parked {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task} was never parked");
}

/// The security audit: its scanner call is high risk, so in production it needs two approvers.
async fn submit_audit(api: &Server, token: &str) -> String {
    let (status, created) = api
        .post(
            token,
            "/api/v1/tasks",
            &json!({"task_type": "security_audit", "title": "Audit", "description": "Look for secrets"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    created["id"].as_str().expect("task id").to_owned()
}

fn audit_script() -> [Behaviour; 2] {
    [
        Behaviour::tool_call("vulnerability_scanner", json!({})),
        Behaviour::reply(json!({"findings": ["no secrets found"], "risk": "low"})),
    ]
}

async fn vote(api: &Server, token: &str, approval: &str, verdict: &str) -> (u16, Value) {
    api.post(
        token,
        &format!("/api/v1/approvals/{approval}/{verdict}"),
        &json!({"reason": "scanner is read-only"}),
    )
    .await
}

async fn the_approval(api: &Server, token: &str) -> String {
    let (status, listed) = api.get(token, "/api/v1/approvals").await;
    assert_eq!(status, 200, "{listed}");
    listed["approvals"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("one pending approval: {listed}"))
        .to_owned()
}

/// Two API processes and a worker. The audit is submitted through A and parks on its
/// approval (lease released, parked until the deadline). Bob votes through B: the worker
/// takes the vote and B answers with the approval as it then stands (one of two). Bob's second
/// vote is refused, through A as the API checks it, and as a command recorded twice (a copy
/// inserted in the database): the worker refuses the copy, whose outcome says so, and the
/// approval keeps one vote from bob. Carol's vote through B lets the task finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_through_another_api_process_reach_the_worker_and_count_once() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config) = mock_dirs(&mock);
    mock.push("m", audit_script());
    let schema = format!("amas_cmds_{}", uuid::Uuid::now_v7().simple());
    let env = pg_env(&schema);
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "production", &env, args, log)
    };
    let a = serve(&["--role", "api"], "api-a.log");
    let b = serve(&["--role", "api"], "api-b.log");
    let worker = serve(&["--role", "worker"], "worker.log");
    let root = a.token("root", &["admin"]);
    let bob = a.token("bob", &["approver"]);
    let carol = a.token("carol", &["approver"]);

    let id = submit_audit(&a, &root).await;
    a.wait_task(&root, &id, |t| t["status"] == "waiting_approval")
        .await;
    parked(&schema, &id).await;
    let approval = the_approval(&b, &bob).await;

    let asked = Instant::now();
    let (status, first) = vote(&b, &bob, &approval, "approve").await;
    // Recorded, signalled, claimed, resumed from the journal, journaled, answered.
    eprintln!(
        "a vote through B on a parked task answered in {:?}",
        asked.elapsed()
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "pending", "one of two: {first}");
    assert_eq!(first["votes"].as_array().map(Vec::len), Some(1), "{first}");
    let (status, again) = vote(&a, &bob, &approval, "approve").await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "AMAS-APPR-0003");

    // Bob's vote recorded a second time, as a retry or a redelivery would: the worker takes
    // it to the step, which refuses it against the journal.
    let mut conn = connect().await;
    let copy: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "WITH c AS (INSERT INTO \"{schema}\".task_commands (task_id, kind, body) \
           VALUES ($1::uuid, 'vote', $2::jsonb) RETURNING id) \
         SELECT id FROM c"
    )))
    .bind(&id)
    .bind(json!({
        "approval": approval,
        "approver": {"sub": "bob", "roles": ["approver"], "tenant": "default", "auth_method": "local_jwt", "issuer": first["votes"][0]["approver_issuer"]},
        "verdict": "approve",
        "reason": "again, by redelivery",
    }))
    .fetch_one(&mut conn)
    .await
    .expect("insert the copy");
    let mut outcome: Option<Value> = None;
    for _ in 0..200 {
        outcome = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT outcome FROM \"{schema}\".task_commands WHERE id = $1"
        )))
        .bind(copy)
        .fetch_one(&mut conn)
        .await
        .expect("outcome query");
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcome = outcome.expect(
        "the worker answered the copy (its pending command made the parked task claimable)",
    );
    assert_eq!(outcome["outcome"], "already_voted", "{outcome}");
    let (_, stored) = a.get(&root, &format!("/api/v1/approvals/{approval}")).await;
    assert_eq!(
        stored["votes"].as_array().map(Vec::len),
        Some(1),
        "{stored}"
    );
    parked(&schema, &id).await;

    let (status, second) = vote(&b, &carol, &approval, "approve").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["status"], "approved", "{second}");
    let done = a
        .wait_task(&root, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let voted: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".journal WHERE task_id = $1::uuid AND kind = 'approval_voted'"
    )))
    .bind(&id)
    .fetch_one(&mut conn)
    .await
    .expect("journal query");
    assert_eq!(voted, 2, "bob and carol, once each");
    let (holder, _, _, _) = lease(&schema, &id).await;
    assert_eq!(pid_of(&holder), worker.pid(), "only the worker ran it");
    assert_eq!(
        mock.request_count("m"),
        2,
        "the scanner request, the answer"
    );
    drop((a, b, worker));
    drop_schema(&schema).await;
}

/// A cancel through B stops a task the worker is running (its model call hangs), at once
/// rather than at the lease's expiry (60 s): the worker applies it under its lease and B
/// answers with the cancelled task. A parked task's cancel through B is journaled by B under
/// a short lease of its own (the epoch goes up, B is the holder): nobody runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_another_api_process_stops_the_task_where_it_runs() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config) = mock_dirs(&mock);
    mock.push(
        "m",
        [
            Behaviour::reply(json!({"findings": ["x"], "summary": "y"})),
            Behaviour::Hang,
        ],
    );
    let schema = format!("amas_cmds_{}", uuid::Uuid::now_v7().simple());
    let env = pg_env(&schema);
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "production", &env, args, log)
    };
    let a = serve(&["--role", "api"], "api-a.log");
    let b = serve(&["--role", "api"], "api-b.log");
    let worker = serve(&["--role", "worker"], "worker.log");
    let root = a.token("root", &["admin"]);

    let (status, created) = a
        .post(
            &root,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "Cancel me", "description": "d"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let running = created["id"].as_str().expect("id").to_owned();
    for _ in 0..200 {
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
    let (holder, epoch, live, _) = lease(&schema, &running).await;
    assert_eq!((pid_of(&holder), epoch, live), (worker.pid(), 1, true));

    let asked = Instant::now();
    let (status, cancelled) = b
        .post(
            &root,
            &format!("/api/v1/tasks/{running}/cancel"),
            &json!({"reason": "no longer needed"}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "applied by the worker, not after the lease: {:?}",
        asked.elapsed()
    );
    let events: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT kind FROM \"{schema}\".journal WHERE task_id = $1::uuid ORDER BY seq"
    )))
    .bind(&running)
    .fetch_all(&mut connect().await)
    .await
    .expect("journal");
    assert_eq!(
        events.last().map(String::as_str),
        Some("task_cancelled"),
        "{events:?}"
    );
    let (holder, epoch, _, _) = lease(&schema, &running).await;
    assert_eq!(
        (pid_of(&holder), epoch),
        (worker.pid(), 1),
        "the worker holding the lease wrote the cancel"
    );
    // Its run stopped (the model call it hung in was abandoned) and its lease is released,
    // long before the 60 s it would otherwise have been renewed for.
    let mut released = false;
    for _ in 0..100 {
        let (_, _, live, _) = lease(&schema, &running).await;
        if !live {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(released, "the worker's run stopped and released the lease");
    assert_eq!(mock.request_count("m"), 2, "nothing more was asked");

    // A parked task: nobody runs it, so B journals the cancel under a lease of its own.
    mock.push("m", audit_script());
    let audit = submit_audit(&a, &root).await;
    a.wait_task(&root, &audit, |t| t["status"] == "waiting_approval")
        .await;
    parked(&schema, &audit).await;
    let (_, epoch_before, _, _) = lease(&schema, &audit).await;
    let (status, cancelled) = b
        .post(
            &root,
            &format!("/api/v1/tasks/{audit}/cancel"),
            &json!({"reason": "not today"}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let (holder, epoch, live, _) = lease(&schema, &audit).await;
    assert_eq!(
        pid_of(&holder),
        b.pid(),
        "B held the task's lease for the cancel"
    );
    assert_eq!(epoch, epoch_before + 1);
    assert!(!live, "and released it");
    let bob = a.token("bob", &["approver"]);
    let (_, listed) = a.get(&bob, "/api/v1/approvals?status=pending").await;
    assert_eq!(
        listed["approvals"].as_array().map(Vec::len),
        Some(0),
        "the cancel settled the approval: {listed}"
    );
    mock.release_hangs();
    drop((a, b, worker));
    drop_schema(&schema).await;
}

/// A worker with one slot: the audit waits for approval while a research report runs to
/// completion in that slot; then two votes let the audit finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_task_holds_no_slot_on_a_worker() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config) = mock_dirs(&mock);
    mock.push(
        "m",
        [Behaviour::tool_call("vulnerability_scanner", json!({}))],
    );
    let schema = format!("amas_cmds_{}", uuid::Uuid::now_v7().simple());
    let mut env = pg_env(&schema);
    env.push(("AMAS__RUNTIME__MAX_CONCURRENT_TASKS", "1".to_owned()));
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "production", &env, args, log)
    };
    let api = serve(&["--role", "api"], "api.log");
    let worker = serve(&["--role", "worker"], "worker.log");
    let root = api.token("root", &["admin"]);
    let bob = api.token("bob", &["approver"]);
    let carol = api.token("carol", &["approver"]);

    let audit = submit_audit(&api, &root).await;
    api.wait_task(&root, &audit, |t| t["status"] == "waiting_approval")
        .await;
    parked(&schema, &audit).await;

    mock.push(
        "m",
        [
            Behaviour::reply(json!({"findings": ["x"], "summary": "y"})),
            Behaviour::reply(json!({"insights": ["z"], "risks": []})),
            Behaviour::reply(json!({"title": "Report", "report": "done"})),
        ],
    );
    let (status, created) = api
        .post(
            &root,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "Report", "description": "d"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let report = created["id"].as_str().expect("id").to_owned();
    let done = api
        .wait_task(&root, &report, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "ran in the one slot: {done}");
    let (_, waiting) = api.get(&root, &format!("/api/v1/tasks/{audit}")).await;
    assert_eq!(waiting["status"], "waiting_approval", "{waiting}");

    mock.push(
        "m",
        [Behaviour::reply(
            json!({"findings": ["no secrets found"], "risk": "low"}),
        )],
    );
    let approval = the_approval(&api, &bob).await;
    for (who, expected) in [(&bob, "pending"), (&carol, "approved")] {
        let (status, body) = vote(&api, who, &approval, "approve").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], expected, "{body}");
    }
    let done = api
        .wait_task(&root, &audit, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (holder, _, _, _) = lease(&schema, &audit).await;
    assert_eq!(pid_of(&holder), worker.pid());
    assert_eq!(mock.request_count("m"), 5);
    drop((api, worker));
    drop_schema(&schema).await;
}
