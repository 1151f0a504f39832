//! Live events across processes on one real PostgreSQL (`AMAS_TEST_DATABASE_URL`, or
//! `postgres://postgres@127.0.0.1:5432/test`), in a schema of its own: an SSE client of a
//! `--role api` process sees the steps a `--role worker` process runs while the task is still
//! running (the API process hears the worker's commits through LISTEN/NOTIFY and reads them
//! from the journal); and a client whose API process dies reconnects to another one with
//! `Last-Event-ID` and gets exactly the events it had not seen, through to the task's end.

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
use common::pg::{connect, database_url, drop_schema, mock_dirs};

/// How long analysis's model call takes: the task is still running for that long after
/// research succeeded.
const ANALYSIS_MS: u64 = 4000;
/// Longer than any event takes to arrive on a quiet machine.
const PATIENCE: Duration = Duration::from_secs(30);
fn pg_env(schema: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AMAS_DATABASE_URL", database_url()),
        ("AMAS__STORE__SCHEMA", schema.to_owned()),
        ("AMAS__STORE__CLAIM_INTERVAL", "100ms".to_owned()),
    ]
}

/// Research answers at once, analysis late, synthesis at once.
fn script(mock: &MockOpenAi) {
    mock.push(
        "m",
        [
            Behaviour::reply(
                json!({"findings": ["NOTIFY carries commits"], "summary": "Live across processes."}),
            ),
            Behaviour::delayed(
                ANALYSIS_MS,
                Behaviour::reply(json!({"insights": ["Catch up by seq"], "risks": []})),
            ),
            Behaviour::reply(json!({"title": "Events", "report": "Streams cross processes."})),
        ],
    );
}
/// Whether the task's end is in the journal (read from the database itself).
async fn ended_in_journal(schema: &str, task: &str) -> bool {
    let mut conn = connect().await;
    let ends: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".journal WHERE task_id = $1::uuid \
         AND kind IN ('task_succeeded', 'task_failed', 'task_cancelled')"
    )))
    .bind(task)
    .fetch_one(&mut conn)
    .await
    .expect("journal query");
    ends > 0
}
/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    kind: String,
    seq: u64,
    data: Value,
}

/// A client reading one task's live event stream.
struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    /// Opens the stream of `task` on `server`, resuming after `last_event_id` if given.
    async fn open(server: &Server, token: &str, task: &str, last_event_id: Option<&str>) -> Self {
        let response = open_stream(server, token, task, last_event_id).await;
        assert_eq!(response.status(), 200, "the stream opens");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event; `None` when the server ended the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        // One deadline for the event, whatever keep-alive comments arrive meanwhile.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                if let Some(event) = parse_event(&block) {
                    return Some(event);
                }
                // A keep-alive comment.
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {PATIENCE:?}"))
                .expect("the stream reads");
            let chunk = chunk?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn open_stream(
    server: &Server,
    token: &str,
    task: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .get(format!("{}/api/v1/tasks/{task}/events", server.base))
        .bearer_auth(token)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.expect("request")
}

fn parse_event(block: &str) -> Option<SseEvent> {
    let (mut kind, mut seq, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("id:") {
            seq = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("data:") {
            data = serde_json::from_str(v.trim()).ok();
        }
    }
    Some(SseEvent {
        kind: kind?,
        seq: seq?,
        data: data?,
    })
}

/// The task's journal as the API returns it (JSON), each record with its seq.
async fn journal(server: &Server, token: &str, task: &str) -> Vec<Value> {
    let (status, body) = server
        .get(token, &format!("/api/v1/tasks/{task}/events"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().expect("events").clone()
}

async fn submit(api: &Server, token: &str) -> String {
    let (status, created) = api
        .post(
            token,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "Events", "description": "Do they cross processes?"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    created["id"].as_str().expect("task id").to_owned()
}

fn is_end(event: &SseEvent) -> bool {
    matches!(
        event.kind.as_str(),
        "task_succeeded" | "task_failed" | "task_cancelled"
    )
}

/// Every event the stream sends up to and including the task's end, then the stream's end.
async fn to_the_end(client: &mut SseClient, seen: &mut Vec<SseEvent>) {
    loop {
        let event = client
            .next()
            .await
            .unwrap_or_else(|| panic!("the stream ended before the task did: {seen:?}"));
        let end = is_end(&event);
        seen.push(event);
        if end {
            break;
        }
    }
    assert_eq!(client.next().await, None, "the stream ends with the task");
}

/// The events are the journal: each record once, in seq order, the same data.
fn assert_is_the_journal(seen: &[SseEvent], journal: &[Value]) {
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=journal.len() as u64).collect();
    assert_eq!(seqs, expected, "no gap, no duplicate, in order");
    for (event, record) in seen.iter().zip(journal) {
        assert_eq!(&event.data, record, "event {} is the journal's", event.seq);
    }
}

/// An SSE client of the API process sees the worker's steps as they commit: research's
/// success arrives while analysis's model call is still under way, before the task's end is
/// in the journal; then the rest, through the end, exactly the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_process_streams_a_worker_s_steps_as_they_happen() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config) = mock_dirs(&mock);
    script(&mock);
    let schema = format!("amas_events_{}", uuid::Uuid::now_v7().simple());
    let env = pg_env(&schema);
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "development", &env, args, log)
    };
    let api = serve(&["--role", "api"], "api.log");
    let token = api.token("alice", &["submitter"]);
    // The task is submitted and its stream opened before any worker runs: everything after
    // the submission comes from the worker's process.
    let id = submit(&api, &token).await;
    let mut client = SseClient::open(&api, &token, &id, None).await;
    let first = client.next().await.expect("the submission");
    assert_eq!((first.kind.as_str(), first.seq), ("task_submitted", 1));
    let worker = serve(&["--role", "worker"], "worker.log");

    let mut seen = vec![first];
    loop {
        let event = client.next().await.expect("events while the task runs");
        let research_done =
            event.kind == "step_succeeded" && event.data["event"]["step"] == "research";
        seen.push(event);
        if research_done {
            break;
        }
    }
    assert!(
        !ended_in_journal(&schema, &id).await,
        "research's success arrived while the task was still running (analysis answers after \
         {ANALYSIS_MS} ms)"
    );
    assert!(
        seen.iter()
            .any(|e| e.kind == "step_started" && e.data["event"]["step"] == "research")
    );
    to_the_end(&mut client, &mut seen).await;
    assert_eq!(seen.last().map(|e| e.kind.as_str()), Some("task_succeeded"));
    assert_is_the_journal(&seen, &journal(&api, &token, &id).await);
    drop((api, worker));
    drop_schema(&schema).await;
}

/// The client's API process is killed mid-stream; it reconnects to another API process with
/// `Last-Event-ID` and gets exactly the events after it (those committed meanwhile, then the
/// rest live), no gap, no duplicate, through the end. A `Last-Event-ID` that is not a seq
/// of the journal is refused with AMAS-API-0011.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_api_process_with_last_event_id() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let (_root, data, config) = mock_dirs(&mock);
    script(&mock);
    let schema = format!("amas_events_{}", uuid::Uuid::now_v7().simple());
    let env = pg_env(&schema);
    let serve = |args: &[&str], log: &str| {
        Server::spawn_serving(&data, Some(&config), "development", &env, args, log)
    };
    let first_api = serve(&["--role", "api"], "api-1.log");
    let other_api = serve(&["--role", "api"], "api-2.log");
    let token = first_api.token("alice", &["submitter"]);
    let id = submit(&first_api, &token).await;
    let worker = serve(&["--role", "worker"], "worker.log");

    let mut client = SseClient::open(&first_api, &token, &id, None).await;
    let mut seen = Vec::new();
    loop {
        let event = client.next().await.expect("events while the task runs");
        let analysis_started =
            event.kind == "step_started" && event.data["event"]["step"] == "analysis";
        seen.push(event);
        if analysis_started {
            break;
        }
    }
    first_api.kill9();
    drop(client);
    assert!(!ended_in_journal(&schema, &id).await, "still running");
    let last = seen.last().map(|e| e.seq).expect("some events");

    // Refused before anything is streamed: not a seq, and past the journal's end.
    for bad in ["abc", "-1", "", &(last + 1000).to_string()] {
        let response = open_stream(&other_api, &token, &id, Some(bad)).await;
        assert_eq!(response.status(), 400, "Last-Event-ID {bad:?}");
        let body: Value = response.json().await.expect("error body");
        assert_eq!(body["error"]["code"], "AMAS-API-0011", "{body}");
    }

    let mut resumed = SseClient::open(&other_api, &token, &id, Some(&last.to_string())).await;
    to_the_end(&mut resumed, &mut seen).await;
    assert_eq!(seen.last().map(|e| e.kind.as_str()), Some("task_succeeded"));
    assert_is_the_journal(&seen, &journal(&other_api, &token, &id).await);

    // Resuming at the end: nothing more, and the stream ends at once.
    let mut at_end = SseClient::open(&other_api, &token, &id, Some(&seen.len().to_string())).await;
    assert_eq!(at_end.next().await, None);
    drop((other_api, worker));
    drop_schema(&schema).await;
}
