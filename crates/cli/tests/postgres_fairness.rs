//! Scheduling across tenants with real `amas serve` processes on one real PostgreSQL
//! (`AMAS_TEST_DATABASE_URL`, or `postgres://postgres@127.0.0.1:5432/test`), each test in a
//! schema of its own: tenant a queues 10,000 tasks and tenant b's single task still runs after
//! only a few of a's; a per-tenant cap holds across two worker processes; a tenant at its queue
//! limit gets 429 with Retry-After (AMAS-TASK-0007) while another tenant is admitted; and the
//! queue metrics move on `/metrics`.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use common::{Server, scripted_dirs};

fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn connect(schema: &str) -> PgConnection {
    let mut conn = PgConnection::connect(&database_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"));
    sqlx::query(AssertSqlSafe(format!("SET search_path TO \"{schema}\"")))
        .execute(&mut conn)
        .await
        .expect("search path");
    conn
}

async fn drop_schema(schema: &str) {
    let mut conn = connect(schema).await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the test schema");
}

/// Each model answer of the research report, after `delay_ms`.
fn script(delay_ms: u64) -> String {
    format!(
        r#"
research: [{{json: {{findings: ["f"], summary: "s"}}, delay_ms: {delay_ms}}}]
analysis: [{{json: {{insights: ["i"], risks: []}}, delay_ms: {delay_ms}}}]
synthesis: [{{json: {{title: "t", report: "r"}}, delay_ms: {delay_ms}}}]
"#
    )
}

struct Cluster {
    _root: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    env: Vec<(&'static str, String)>,
    schema: String,
}

impl Cluster {
    fn new(delay_ms: u64, settings: &str) -> Self {
        let (root, data, config) = scripted_dirs(&script(delay_ms), "", Some(settings));
        let schema = format!("amas_fair_{}", uuid::Uuid::now_v7().simple());
        let env = vec![
            ("AMAS_DATABASE_URL", database_url()),
            ("AMAS__STORE__SCHEMA", schema.clone()),
            ("AMAS__STORE__CLAIM_INTERVAL", "100ms".to_owned()),
            ("AMAS__STORE__POOL_SIZE", "20".to_owned()),
        ];
        Self {
            _root: root,
            data,
            config,
            env,
            schema,
        }
    }

    fn serve(&self, role: &str, log: &str) -> Server {
        Server::spawn_serving(
            &self.data,
            Some(&self.config),
            "development",
            &self.env,
            &["--role", role],
            log,
        )
    }
}

/// Settings: no rate limits (the test submits thousands), metrics refreshed often.
fn settings(runtime: &str, scheduling: &str) -> String {
    format!(
        "server:\n  rate_limits: {{ enabled: false }}\nruntime:\n{runtime}\
         scheduling:\n  metrics_interval: 200ms\n{scheduling}"
    )
}

fn task(title: &str) -> Value {
    json!({"task_type": "research_report", "title": title, "description": "fairness"})
}

/// POSTs `n` tasks with `token`, 64 at a time; returns the ids.
async fn submit_many(api: &Server, token: &str, n: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let next = AtomicUsize::new(0);
    let url = format!("{}/api/v1/tasks", api.base);
    let body = task("load");
    let lanes = (0..64).map(|_| async {
        let mut ids = Vec::new();
        while next.fetch_add(1, Ordering::SeqCst) < n {
            let response = client
                .post(&url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let created: Value = response.json().await.expect("json");
            assert_eq!(status, 202, "{created}");
            ids.push(created["id"].as_str().expect("id").to_owned());
        }
        ids
    });
    futures::future::join_all(lanes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The value of the series `name` (exactly, labels included) on `server`'s `/metrics`.
async fn metric(server: &Server, name: &str) -> Option<f64> {
    series(&scrape(server).await, name)
}

/// `server`'s `/metrics` text.
async fn scrape(server: &Server) -> String {
    reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

/// The value of the series `name` in a scrape's `text`.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `/metrics` until the series satisfies `ok` (bounded); returns its last value.
async fn metric_until(server: &Server, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let mut last = None;
    for _ in 0..100 {
        last = metric(server, name).await;
        if last.is_some_and(&ok) {
            return last.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never got there: last {last:?}");
}

/// Tenant a submits 10,000 tasks through the API process while two workers (two slots each)
/// run them; b then submits one. b's task starts after at most a few more of a's, and ends
/// after only the handful of a's that were running: thousands of a's are still waiting. The
/// queue metrics show the backlog (on the API process, read from the database) and the claims
/// (on a worker).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_tasks_of_one_tenant_do_not_starve_another_s_single_task() {
    let cluster = Cluster::new(
        0,
        &settings(
            "  queue_capacity: 20000\n  max_concurrent_tasks: 2\n",
            "  tenants:\n    a: {}\n    b: {}\n",
        ),
    );
    let api = cluster.serve("api", "api.log");
    let first = cluster.serve("worker", "worker-1.log");
    let second = cluster.serve("worker", "worker-2.log");
    let a = api.token_in("alice", &["submitter"], Some("a"));
    let b = api.token_in("bob", &["submitter"], Some("b"));
    assert_eq!(metric(&api, "amas_queue_depth").await, Some(0.0));

    let started = Instant::now();
    let a_ids = submit_many(&api, &a, 10_000).await;
    let submitting = started.elapsed();
    assert_eq!(a_ids.len(), 10_000);
    // The backlog, read from the database by the API process (which runs no task).
    metric_until(&api, "amas_queue_depth", |v| v > 1000.0).await;
    metric_until(&api, "amas_tenant_queue_depth{tenant=\"a\"}", |v| {
        v > 1000.0
    })
    .await;
    // Both from one scrape: a gauge is as of the last refresh, which may have run while the
    // submissions were still arriving, so two scrapes may see two refreshes.
    let text = scrape(&api).await;
    let depth = series(&text, "amas_queue_depth").expect("queue depth");
    let of_a = series(&text, "amas_tenant_queue_depth{tenant=\"a\"}").expect("a's depth");
    assert!(of_a <= depth, "{of_a} > {depth}");
    metric_until(&api, "amas_queue_oldest_age_seconds", |v| v > 0.0).await;

    let (status, created) = api.post(&b, "/api/v1/tasks", &task("single")).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let done = api
        .wait_task(&b, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let mut conn = connect(&cluster.schema).await;
    let (started_between, ended_between, still_waiting): (i64, i64, i64) = sqlx::query_as(
        "WITH b AS (
           SELECT max(recorded_at) FILTER (WHERE kind = 'task_submitted') AS submitted,
                  max(recorded_at) FILTER (WHERE kind = 'task_started') AS started,
                  max(recorded_at) FILTER (WHERE kind = 'task_succeeded') AS ended
           FROM journal WHERE task_id = $1::uuid),
         a AS (SELECT j.kind, j.recorded_at FROM journal j JOIN tasks t ON t.id = j.task_id
               WHERE t.tenant = 'a')
         SELECT
           (SELECT count(*) FROM a, b WHERE a.kind = 'task_started'
              AND a.recorded_at > b.submitted AND a.recorded_at < b.started),
           (SELECT count(*) FROM a, b WHERE a.kind = 'task_succeeded'
              AND a.recorded_at > b.submitted AND a.recorded_at < b.ended),
           (SELECT count(*) FROM tasks WHERE tenant = 'a' AND status = 'queued')",
    )
    .bind(&id)
    .fetch_one(&mut conn)
    .await
    .expect("journal timings");
    eprintln!(
        "10,000 submissions in {submitting:?}; while b's task waited {started_between} of a's \
         started; {ended_between} of a's ended before it; {still_waiting} of a's still queued"
    );
    assert!(
        still_waiting > 1000,
        "the test means something only while a's backlog is large: {still_waiting}"
    );
    // At most those already claimed when b's task was committed (one per slot, four) and
    // those another worker claimed while b's start was being journaled.
    assert!(
        started_between <= 6,
        "{started_between} of a's tasks started while b's waited"
    );
    assert!(
        ended_between <= 12,
        "{ended_between} of a's tasks ended before b's single one"
    );
    // The workers' claims are timed.
    let claims = metric(&first, "amas_claim_duration_seconds_count")
        .await
        .unwrap_or(0.0)
        + metric(&second, "amas_claim_duration_seconds_count")
            .await
            .unwrap_or(0.0);
    assert!(claims > 0.0, "no claim timed");

    let mut api = api;
    let mut first = first;
    let mut second = second;
    for server in [&mut first, &mut second, &mut api] {
        assert!(server.terminate().success());
    }
    drop((api, first, second));
    drop_schema(&cluster.schema).await;
}

/// Tenant a may run 2 tasks at once across all workers. Two workers with four slots each run
/// a's and b's tasks (each model answer takes 150 ms); sampled throughout, a never holds more
/// than 2 live leases, reaches 2, and b runs beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_s_cap_holds_across_two_worker_processes() {
    let cluster = Cluster::new(
        150,
        &settings(
            "  queue_capacity: 1000\n  max_concurrent_tasks: 4\n",
            "  tenants:\n    a: { max_running: 2 }\n",
        ),
    );
    let api = cluster.serve("api", "api.log");
    let first = cluster.serve("worker", "worker-1.log");
    let second = cluster.serve("worker", "worker-2.log");
    let a = api.token_in("alice", &["submitter"], Some("a"));
    let b = api.token_in("bob", &["submitter"], Some("b"));
    let mut ids = submit_many(&api, &a, 10).await;
    ids.extend(submit_many(&api, &b, 10).await);

    let mut conn = connect(&cluster.schema).await;
    let (mut most_a, mut most_b, mut workers_of_a) = (0_i64, 0_i64, 0_i64);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (a_now, b_now, a_workers, unfinished): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT
               count(*) FILTER (WHERE t.tenant = 'a' AND l.expires_at > clock_timestamp()),
               count(*) FILTER (WHERE t.tenant = 'b' AND l.expires_at > clock_timestamp()),
               count(DISTINCT l.worker) FILTER (WHERE t.tenant = 'a'),
               (SELECT count(*) FROM tasks
                WHERE status NOT IN ('succeeded', 'failed', 'cancelled'))
             FROM task_leases l JOIN tasks t ON t.id = l.task_id",
        )
        .fetch_one(&mut conn)
        .await
        .expect("leases");
        assert!(a_now <= 2, "a holds {a_now} leases at once");
        most_a = most_a.max(a_now);
        most_b = most_b.max(b_now);
        workers_of_a = workers_of_a.max(a_workers);
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} tasks never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most_a, 2, "a reached its cap");
    assert!(most_b >= 3, "b ran beside a: at most {most_b} at once");
    eprintln!("a's tasks ran on {workers_of_a} worker(s)");
    for id in &ids {
        let (_, t) = api.get(&a, &format!("/api/v1/tasks/{id}")).await;
        let (_, u) = api.get(&b, &format!("/api/v1/tasks/{id}")).await;
        let status = if t["status"].is_null() {
            &u["status"]
        } else {
            &t["status"]
        };
        assert_eq!(status, "succeeded", "{id}: {t} {u}");
    }
    let mut api = api;
    let mut first = first;
    let mut second = second;
    for server in [&mut first, &mut second, &mut api] {
        assert!(server.terminate().success());
    }
    drop((api, first, second));
    drop_schema(&cluster.schema).await;
}

/// POSTs one task; returns the status, the Retry-After header and the body's code.
async fn try_submit(api: &Server, token: &str) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/tasks", api.base))
        .bearer_auth(token)
        .json(&task("limited"))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, response.json().await.unwrap_or(Value::Null))
}

/// No worker runs: tasks stay queued in the database. Tenant a may have 3 waiting: its 4th
/// submission gets 429 AMAS-TASK-0007 with Retry-After while b is still admitted; the global
/// limit (8) then refuses b too, with AMAS-TASK-0003. Once a worker starts the queued tasks, a
/// is admitted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_queue_limit_gets_429_while_another_is_admitted() {
    let cluster = Cluster::new(
        0,
        &settings(
            "  queue_capacity: 8\n  max_concurrent_tasks: 4\n",
            "  tenants:\n    a: { max_queued: 3 }\n",
        ),
    );
    let api = cluster.serve("api", "api.log");
    let a = api.token_in("alice", &["submitter"], Some("a"));
    let b = api.token_in("bob", &["submitter"], Some("b"));
    for _ in 0..3 {
        assert_eq!(try_submit(&api, &a).await.0, 202);
    }
    let (status, retry, body) = try_submit(&api, &a).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "AMAS-TASK-0007", "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    for _ in 0..5 {
        let (status, _, body) = try_submit(&api, &b).await;
        assert_eq!(status, 202, "b is admitted while a is refused: {body}");
    }
    let (status, retry, body) = try_submit(&api, &b).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("AMAS-TASK-0003")),
        "{body}"
    );
    assert!(retry.is_some());
    let mut conn = connect(&cluster.schema).await;
    let (tasks,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(tasks, 8, "refused submissions left no trace");

    let worker = cluster.serve("worker", "worker.log");
    let mut admitted = false;
    for _ in 0..100 {
        if try_submit(&api, &a).await.0 == 202 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "a is admitted again once its tasks started");
    let mut api = api;
    let mut worker = worker;
    for server in [&mut worker, &mut api] {
        assert!(server.terminate().success());
    }
    drop((api, worker));
    drop_schema(&cluster.schema).await;
}

/// The task's lease: its worker and epoch.
async fn lease_of(conn: &mut PgConnection, task: &str) -> Option<(String, i64)> {
    sqlx::query_as("SELECT worker, epoch FROM task_leases WHERE task_id = $1::uuid")
        .bind(task)
        .fetch_optional(conn)
        .await
        .expect("lease")
}

fn signal(server: &Server, sig: &str) {
    let sent = std::process::Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill {sig}");
}

/// A worker paused past its lease (SIGSTOP) loses it to the other worker, which finishes the
/// task; once resumed, the paused worker's renewal finds the lease gone and its
/// `amas_lease_losses_total` moves, which is what an operator alerts on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_its_lease_counts_the_loss() {
    let mut cluster = Cluster::new(
        2500,
        &settings("  queue_capacity: 100\n  max_concurrent_tasks: 2\n", ""),
    );
    cluster
        .env
        .push(("AMAS__STORE__LEASE_TTL", "2s".to_owned()));
    let api = cluster.serve("api", "api.log");
    let first = cluster.serve("worker", "worker-1.log");
    let second = cluster.serve("worker", "worker-2.log");
    let token = api.token_in("alice", &["submitter"], Some("a"));
    let (status, created) = api.post(&token, "/api/v1/tasks", &task("paused")).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    let mut conn = connect(&cluster.schema).await;
    let mut holder = None;
    for _ in 0..100 {
        holder = lease_of(&mut conn, &id).await;
        if holder.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (worker, epoch) = holder.expect("the task is leased");
    assert_eq!(epoch, 1);
    let pid: u32 = worker
        .split('/')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("a pid in the worker name");
    let (paused, other) = if pid == first.pid() {
        (&first, &second)
    } else {
        (&second, &first)
    };
    signal(paused, "-STOP");
    let mut taken = false;
    for _ in 0..100 {
        if lease_of(&mut conn, &id).await.is_some_and(|(_, e)| e >= 2) {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(paused, "-CONT");
    assert!(taken, "the other worker took the task over");
    metric_until(
        paused,
        "amas_lease_losses_total{detected=\"renewal\"}",
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(
        metric(other, "amas_lease_losses_total{detected=\"renewal\"}").await,
        None,
        "the worker that kept its leases lost none"
    );
    let done = api
        .wait_task(&token, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let mut api = api;
    let mut first = first;
    let mut second = second;
    for server in [&mut first, &mut second, &mut api] {
        assert!(server.terminate().success());
    }
    drop((api, first, second));
    drop_schema(&cluster.schema).await;
}
