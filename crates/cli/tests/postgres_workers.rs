//! Several `amas serve` processes on one real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), in a schema of its own: one `--role api`
//! process takes the submission, two `--role worker` processes claim tasks under leases. The
//! worker running the task is killed with SIGKILL while its second step's model call hangs;
//! the other worker claims the task once the lease expires (under the next fencing epoch) and
//! finishes it, and the first step's model call, journaled before the kill, is never made
//! again. A worker stopped with SIGTERM releases its leases: another takes the task over at
//! once, long before the lease would expire. On SQLite the split roles are refused.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::time::Duration;

use serde_json::json;
use sqlx::AssertSqlSafe;

use amas_test_util::{Behaviour, MockOpenAi};
use common::Server;
use common::pg::{connect, drop_schema, mock_dirs, pg_env, pid_of};

fn is_research_call(body: &serde_json::Value) -> bool {
    body["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("research assistant"))
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

/// Submits the research report through `api` and waits until a worker has journaled research
/// and hangs in analysis's model call; returns the task id.
async fn submit_and_hang(api: &Server, token: &str, mock: &MockOpenAi) -> String {
    let (status, created) = api
        .post(
            token,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "Workers", "description": "How do leases work?"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("task id").to_owned();
    api.wait_task(token, &id, |t| {
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
    id
}

/// What the research report's model is asked first, then again after a takeover.
fn script(mock: &MockOpenAi) {
    mock.push(
        "m",
        [
            Behaviour::reply(
                json!({"findings": ["PostgreSQL scales out"], "summary": "Leases and fences."}),
            ),
            Behaviour::Hang,
        ],
    );
}

fn script_rest(mock: &MockOpenAi) {
    mock.push(
        "m",
        [
            Behaviour::reply(json!({"insights": ["Fencing epochs"], "risks": []})),
            Behaviour::reply(json!({"title": "Workers", "report": "Leases expire; epochs fence."})),
        ],
    );
}

/// The task succeeded without its journaled research call made again.
async fn finished_once(api: &Server, token: &str, id: &str, mock: &MockOpenAi) {
    let done = api
        .wait_task(token, id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["title"], "Workers");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_task_is_finished_by_another_without_repeating_journaled_calls() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config) = mock_dirs(&mock);
    script(&mock);
    let schema = format!("amas_workers_{}", uuid::Uuid::now_v7().simple());
    let env = pg_env(&schema, "2s");
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

    let id = submit_and_hang(&api, &token, &mock).await;
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
    script_rest(&mock);
    finished_once(&api, &token, &id, &mock).await;
    let (holder, epoch) = lease(&schema, &id).await.expect("still leased");
    assert_eq!(
        pid_of(&holder),
        survivor.pid(),
        "the surviving worker took over"
    );
    assert_eq!(epoch, 2, "the takeover raised the epoch");

    let mut survivor = survivor;
    assert!(survivor.terminate().success(), "a worker stops cleanly");
    let mut api = api;
    assert!(api.terminate().success());
    drop((api, survivor));
    drop_schema(&schema).await;
}

/// SIGTERM: the worker's running task stops and its lease is released, so a second worker
/// finishes the task at once although the lease (60 s) is far from expiring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_releases_its_leases_to_another_at_once() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config) = mock_dirs(&mock);
    script(&mock);
    let schema = format!("amas_workers_{}", uuid::Uuid::now_v7().simple());
    let env = pg_env(&schema, "60s");
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "development", &env, args, log)
    };
    let api = serve(&["--role", "api"], "api.log");
    let mut first = serve(&["--role", "worker"], "worker-1.log");
    let token = api.token("alice", &["submitter"]);
    let id = submit_and_hang(&api, &token, &mock).await;
    let (holder, _) = lease(&schema, &id).await.expect("the task is leased");
    assert_eq!(pid_of(&holder), first.pid());

    let second = serve(&["--role", "worker"], "worker-2.log");
    script_rest(&mock);
    let stopping = std::time::Instant::now();
    assert!(first.terminate().success(), "the worker stops cleanly");
    finished_once(&api, &token, &id, &mock).await;
    assert!(
        stopping.elapsed() < Duration::from_secs(40),
        "taken over at once, not at the lease's expiry: {:?}",
        stopping.elapsed()
    );
    let (holder, epoch) = lease(&schema, &id).await.expect("still leased");
    assert_eq!((pid_of(&holder), epoch), (second.pid(), 2));
    drop((api, first, second));
    drop_schema(&schema).await;
}

/// SQLite runs one process: the split roles are refused with the reason.
#[test]
fn sqlite_refuses_the_split_roles() {
    let root = tempfile::tempdir().expect("tempdir");
    for role in ["api", "worker"] {
        let out = std::process::Command::new(common::AMAS)
            .env_remove("AMAS_DATABASE_URL")
            .env_remove("AMAS_CONFIG_DIR")
            .arg("--data-dir")
            .arg(root.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--role", role])
            .output()
            .expect("amas runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{role}: {stderr}");
        assert!(
            stderr.contains(&format!("--role {role} needs PostgreSQL")),
            "{role}: {stderr}"
        );
    }
}

/// How late analysis answers in the pause test: longer than the lease (2 s) plus a takeover.
const STALE_ANSWER_MS: u64 = 4000;

/// `kill -STOP` / `kill -CONT` on a server.
fn signal(server: &Server, sig: &str) {
    let sent = std::process::Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill {sig}");
}

/// A worker paused past its lease (SIGSTOP), resumed (SIGCONT) while another worker runs the
/// task, gets its model's answer and loses its append to the fence: nothing it produced is in
/// the journal, it asks the model nothing more, logs AMAS-STORE-0014 and stops the task
/// cleanly, and the other worker finishes the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_loses_its_append_to_the_fence() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config) = mock_dirs(&mock);
    // Analysis answers the first worker late, while it is paused.
    mock.push(
        "m",
        [
            Behaviour::reply(
                json!({"findings": ["PostgreSQL scales out"], "summary": "Leases and fences."}),
            ),
            Behaviour::delayed(
                STALE_ANSWER_MS,
                Behaviour::reply(json!({"insights": ["STALE-WORKER"], "risks": []})),
            ),
        ],
    );
    let schema = format!("amas_workers_{}", uuid::Uuid::now_v7().simple());
    let env = pg_env(&schema, "2s");
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "development", &env, args, log)
    };
    let api = serve(&["--role", "api"], "api.log");
    let mut paused = serve(&["--role", "worker"], "worker-1.log");
    let token = api.token("alice", &["submitter"]);
    let id = submit_and_hang(&api, &token, &mock).await;
    // Its late answer is on the wire from here on.
    let asked = std::time::Instant::now();
    signal(&paused, "-STOP");

    // The second worker takes over once the lease expired; its analysis answers late too, so
    // the task is still running under it when the first one wakes up.
    mock.push(
        "m",
        [
            Behaviour::delayed(
                STALE_ANSWER_MS,
                Behaviour::reply(json!({"insights": ["Fencing epochs"], "risks": []})),
            ),
            Behaviour::reply(json!({"title": "Workers", "report": "Leases expire; epochs fence."})),
        ],
    );
    let second = serve(&["--role", "worker"], "worker-2.log");
    for _ in 0..200 {
        if mock.request_count("m") >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        mock.request_count("m"),
        3,
        "the second worker asks analysis again"
    );
    let (holder, epoch) = lease(&schema, &id).await.expect("leased");
    assert_eq!((pid_of(&holder), epoch), (second.pid(), 2));
    // Woken once its late answer is waiting for it (and before the second worker's, asked
    // later with the same delay, arrives): it tries to journal it.
    let answered = Duration::from_millis(STALE_ANSWER_MS + 500);
    tokio::time::sleep(answered.saturating_sub(asked.elapsed())).await;
    signal(&paused, "-CONT");

    let done = api
        .wait_task(&token, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let analysis = done["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == "analysis"))
        .expect("analysis step");
    assert_eq!(analysis["output"]["insights"][0], "Fencing epochs");
    let mut conn = connect().await;
    let stale: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".journal WHERE task_id = $1::uuid \
         AND event::text LIKE '%STALE-WORKER%'"
    )))
    .bind(&id)
    .fetch_one(&mut conn)
    .await
    .expect("journal query");
    assert_eq!(
        stale, 0,
        "nothing of the paused worker's answer was journaled"
    );
    // It noticed, said so with the code, and still stops cleanly.
    let log = (0..100)
        .find_map(|_| {
            let log = std::fs::read_to_string(data.join("worker-1.log")).unwrap_or_default();
            if log.contains("AMAS-STORE-0014") {
                Some(log)
            } else {
                std::thread::sleep(Duration::from_millis(50));
                None
            }
        })
        .unwrap_or_else(|| panic!("the paused worker never reported its lost lease"));
    assert!(log.contains("lease"), "{log}");
    assert!(
        paused.terminate().success(),
        "the paused worker stops cleanly"
    );
    let research_calls = mock
        .requests()
        .iter()
        .filter(|r| is_research_call(&r.body))
        .count();
    assert_eq!(
        research_calls, 1,
        "the journaled model call was not repeated"
    );
    // The woken worker knew its lease had run out (its own clock says so before the store
    // does): it asked the model nothing more, synthesis was asked once, by the second worker.
    assert_eq!(
        mock.request_count("m"),
        4,
        "research, analysis by each worker, synthesis by the second only"
    );
    drop((api, paused, second));
    drop_schema(&schema).await;
}
