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
use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::AssertSqlSafe;

use amas_test_util::{Behaviour, MockOpenAi};
use common::Server;
use common::pg::{connect, drop_schema, fresh_schema, pg_env};

const CYCLES: usize = 20;
/// Tasks submitted in each cycle, before its kill.
const TASKS_PER_CYCLE: usize = 2;
/// How long every model answer takes: long enough that kills land mid-call.
const ANSWER_MS: u64 = 300;
const AGENTS: [&str; 3] = ["research", "analysis", "synthesis"];

/// Providers: one mock model per agent (so each reply fits its agent's output contract).
fn config(dir: &Path, mock: &MockOpenAi) {
    let base = mock.base_url();
    let mut providers =
        format!("providers:\n  local:\n    kind: openai\n    base_url: {base}\n    model: local\n");
    for agent in AGENTS {
        providers.push_str(&format!(
            "  p_{agent}:\n    kind: openai\n    base_url: {base}\n    model: {agent}\n    timeout: 60s\n    max_retries: 0\n"
        ));
    }
    std::fs::write(dir.join("providers.yaml"), providers).expect("providers.yaml");
    let replies = [
        json!({"findings": ["Leases expire."], "summary": "Workers come and go."}),
        json!({"insights": ["Epochs fence stale workers."], "risks": ["Slow takeovers."]}),
        json!({"title": "Kill loop", "report": "Nothing lost, nothing repeated."}),
    ];
    for (agent, reply) in AGENTS.iter().zip(replies) {
        mock.set_default(
            agent,
            Behaviour::delayed(ANSWER_MS, Behaviour::reply(reply)),
        );
    }
}

/// The tag that names task `i` in its title, and so in every prompt of its steps.
fn tag(i: usize) -> String {
    format!("kill-loop-task-{i:03}-end")
}

/// A step's journaled model answers: (task tag, model) -> when each was journaled.
async fn journaled_answers(
    schema: &str,
    ids: &BTreeMap<String, String>,
) -> BTreeMap<(String, String), Vec<DateTime<Utc>>> {
    let mut conn = connect().await;
    let mut out: BTreeMap<(String, String), Vec<DateTime<Utc>>> = BTreeMap::new();
    for (tag, id) in ids {
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT event::text, recorded_at FROM \"{schema}\".journal \
             WHERE task_id = $1::uuid AND kind = 'model_responded' ORDER BY seq"
        )))
        .bind(id)
        .fetch_all(&mut conn)
        .await
        .expect("journal query");
        for (event, at) in rows {
            let event: Value = serde_json::from_str(&event).expect("event json");
            let model = event["model"].as_str().expect("model").to_owned();
            out.entry((tag.clone(), model)).or_default().push(at);
        }
    }
    out
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
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let config_dir = root.path().join("config");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    config(&config_dir, &mock);
    let schema = fresh_schema("amas_kill_loop");
    let mut env = pg_env(&schema, "2s");
    for agent in AGENTS {
        let name = match agent {
            "research" => "AMAS__AGENTS__RESEARCH__PROVIDERS",
            "analysis" => "AMAS__AGENTS__ANALYSIS__PROVIDERS",
            _ => "AMAS__AGENTS__SYNTHESIS__PROVIDERS",
        };
        env.push((name, format!("[p_{agent}]")));
    }
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
    let answers = journaled_answers(&schema, &ids).await;
    let requests = mock.requests();
    let mut asked: BTreeMap<(String, String), Vec<SystemTime>> = BTreeMap::new();
    for r in &requests {
        let text = r.body.to_string();
        let tags: Vec<&String> = ids.keys().filter(|t| text.contains(t.as_str())).collect();
        assert_eq!(tags.len(), 1, "each prompt names one task: {text}");
        asked
            .entry((tags[0].clone(), r.model.clone()))
            .or_default()
            .push(r.received_at);
    }
    for tag in ids.keys() {
        for agent in AGENTS {
            let key = (tag.clone(), agent.to_owned());
            let journaled = answers.get(&key).map_or(&[][..], Vec::as_slice);
            assert_eq!(journaled.len(), 1, "{key:?}: one journaled answer");
            let at = SystemTime::from(journaled[0]);
            for received in asked.get(&key).map_or(&[][..], Vec::as_slice) {
                assert!(
                    *received < at,
                    "{key:?}: a request arrived after its answer was journaled"
                );
            }
        }
    }
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
