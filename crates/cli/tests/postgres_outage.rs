//! The database goes away under a worker (a failover, a partition): the worker reaches
//! PostgreSQL through a proxy (`common::proxy`) that cuts every connection and refuses new
//! ones for longer than the lease, while tasks are mid-step. Nothing fails: the worker's
//! appends and renewals error, its runs stop without writing (their leases lapse), and once
//! the database is back the tasks are claimed again under new epochs and finish, with no
//! journaled model call made twice.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sqlx::AssertSqlSafe;

use amas_test_util::MockOpenAi;
use common::Server;
use common::pg::{
    AGENTS, agent_env, assert_no_journaled_call_repeated, connect, database_url, drop_schema,
    fresh_schema, per_agent_dirs, pg_env,
};
use common::proxy::Proxy;

const TASKS: usize = 6;
const ANSWER_MS: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_survive_a_database_outage_longer_than_their_leases() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config_dir) = per_agent_dirs(&mock, ANSWER_MS);
    let schema = fresh_schema("amas_outage");
    let mut env = pg_env(&schema, "1s");
    env.extend(agent_env());
    let api = Server::spawn_serving(
        &data,
        Some(&config_dir),
        "development",
        &env,
        &["--role", "api"],
        "api.log",
    );
    let token = api.token("alice", &["submitter"]);
    // The worker's database is behind the proxy.
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let url = database_url();
    let upstream = url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    assert_ne!(url, upstream, "the test URL points at 127.0.0.1:5432");
    let mut worker_env = env.clone();
    worker_env.retain(|(k, _)| *k != "AMAS_DATABASE_URL");
    worker_env.push(("AMAS_DATABASE_URL", upstream));
    let worker = Server::spawn_serving(
        &data,
        Some(&config_dir),
        "development",
        &worker_env,
        &["--role", "worker"],
        "worker.log",
    );

    let mut ids = BTreeMap::new();
    for i in 0..TASKS {
        let tag = format!("outage-task-{i:02}-end");
        let (status, created) = api
            .post(
                &token,
                "/api/v1/tasks",
                &json!({"task_type": "research_report", "title": tag, "description": tag}),
            )
            .await;
        assert_eq!(status, 202, "{created}");
        ids.insert(tag, created["id"].as_str().expect("id").to_owned());
    }
    // Mid-step: research answered for some, calls in flight for the rest.
    tokio::time::sleep(Duration::from_millis(ANSWER_MS + 300)).await;
    proxy.cut();
    // Down for three lease lifetimes: every lease lapses meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut conn = connect().await;
    let lapsed: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".task_leases WHERE expires_at > clock_timestamp()"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("lease query");
    assert_eq!(lapsed, 0, "no live lease while the worker is cut off");
    proxy.restore();

    for (tag, id) in &ids {
        let done = api
            .wait_task(&token, id, |t| {
                matches!(
                    t["status"].as_str(),
                    Some("succeeded" | "failed" | "cancelled")
                )
            })
            .await;
        assert_eq!(done["status"], "succeeded", "{tag}: {done}");
    }
    let requests = mock.requests();
    assert_no_journaled_call_repeated(&schema, &ids, &AGENTS, &requests).await;
    let retaken: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".task_leases WHERE epoch > 1"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("lease query");
    assert!(retaken > 0, "the outage struck running tasks");
    drop((api, worker));
    drop_schema(&schema).await;
}
