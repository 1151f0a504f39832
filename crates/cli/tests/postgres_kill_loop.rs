//! kill -9 in a loop: one `--role api` process and two `--role worker` processes on the real
//! PostgreSQL (`common::pg`). Tasks keep arriving while, twenty times over, one worker is
//! killed with SIGKILL mid-work and a fresh one started in its place. Every task must still
//! succeed (none lost), each with exactly one journaled answer per step, and no model call
//! whose answer was journaled may ever be made again: every request the mock model received
//! for a task's step arrived before that step's answer was journaled. Calls cut off by a kill
//! (asked, never journaled) are asked again by the next worker; that is expected and counted.

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
    AGENTS, agent_env, assert_no_journaled_call_repeated, connect, drop_schema, fresh_schema,
    per_agent_dirs, pg_env,
};

const CYCLES: usize = 20;
/// Tasks submitted in each cycle, before its kill.
const TASKS_PER_CYCLE: usize = 2;
/// How long every model answer takes: long enough that kills land mid-call.
const ANSWER_MS: u64 = 300;

/// The tag that names task `i` in its title, and so in every prompt of its steps.
fn tag(i: usize) -> String {
    format!("kill-loop-task-{i:03}-end")
}

/// How many tasks were taken over by another worker at least once (epoch above 1).
async fn takeovers(schema: &str) -> i64 {
    let mut conn = connect().await;
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".task_leases WHERE epoch > 1"
    )))
    .fetch_one(&mut conn)
    .await
    .expect("lease query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_nine_cycles_lose_no_task_and_repeat_no_journaled_call() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config_dir) = per_agent_dirs(&mock, ANSWER_MS);
    let schema = fresh_schema("amas_kill_loop");
    let mut env = pg_env(&schema, "2s");
    env.extend(agent_env());
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config_dir), "development", &env, args, log)
    };
    let api = serve(&["--role", "api"], "api.log");
    let token = api.token("alice", &["submitter"]);
    let mut workers = [
        Some(serve(&["--role", "worker"], "worker-a0.log")),
        Some(serve(&["--role", "worker"], "worker-b0.log")),
    ];

    let mut ids = BTreeMap::new();
    for cycle in 0..CYCLES {
        for k in 0..TASKS_PER_CYCLE {
            let i = cycle * TASKS_PER_CYCLE + k;
            let (status, created) = api
                .post(
                    &token,
                    "/api/v1/tasks",
                    &json!({"task_type": "research_report", "title": tag(i), "description": tag(i)}),
                )
                .await;
            assert_eq!(status, 202, "{created}");
            ids.insert(tag(i), created["id"].as_str().expect("id").to_owned());
        }
        // Between 0.5 and 1.2 s of work, then a kill: varied, so kills land at every stage.
        let pause = 500 + (cycle as u64 * 373) % 700;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let slot = cycle % 2;
        workers[slot].take().expect("a worker in the slot").kill9();
        let log = format!(
            "worker-{}{}.log",
            if slot == 0 { "a" } else { "b" },
            cycle + 1
        );
        workers[slot] = Some(serve(&["--role", "worker"], &log));
    }

    // Everything submitted finishes: nothing was lost.
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
        assert_eq!(done["result"]["title"], "Kill loop", "{tag}");
    }

    // Exactly one journaled answer per step, and no request for a step after its answer was
    // journaled.
    let requests = mock.requests();
    assert_no_journaled_call_repeated(&schema, &ids, &AGENTS, &requests).await;
    let repeated_cut_calls = requests.len() - ids.len() * AGENTS.len();
    let taken_over = takeovers(&schema).await;
    eprintln!(
        "{} tasks, {CYCLES} kills: {taken_over} taken over, {repeated_cut_calls} cut-off calls asked again",
        ids.len()
    );
    // The kills really struck running work (otherwise this test proves nothing).
    assert!(taken_over >= 5, "only {taken_over} tasks were taken over");

    drop(workers);
    drop(api);
    drop_schema(&schema).await;
}
