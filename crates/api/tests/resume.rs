//! Resuming a live event stream with `Last-Event-ID` on the real server (`amas_api::serve` on
//! loopback, SQLite): the stream sends exactly the events after the one named, history then
//! live, through the task's end; a value that is not a seq of the task's journal is refused
//! with 400 AMAS-API-0011 before anything is streamed. (Across API processes on PostgreSQL:
//! `crates/cli/tests/postgres_events.rs`.)

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use reqwest::StatusCode;
use serde_json::json;

use common::server::{Server, start};

async fn open(
    s: &Server,
    token: &str,
    task: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = s
        .http
        .get(format!("{}/api/v1/tasks/{task}/events", s.base))
        .bearer_auth(token)
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.unwrap()
}

/// The seqs (SSE ids) of a stream read to its end.
async fn ids(mut response: reqwest::Response) -> Vec<u64> {
    assert_eq!(response.status(), StatusCode::OK);
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_stream_resumes_after_the_last_event_id_and_bad_ones_are_refused() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let task = s.submit(&alice).await;
    let journal = s.get(&alice, &format!("/api/v1/tasks/{task}/events")).await;
    let before = journal.body["events"].as_array().unwrap().len() as u64;
    assert!(before >= 1, "{}", journal.body);

    // Resumed while the task runs: nothing of what the client had, the rest live.
    let live = open(&s, &alice, &task, Some(&before.to_string())).await;
    assert_eq!(live.status(), StatusCode::OK);
    let r = s
        .post(&alice, &format!("/api/v1/tasks/{task}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let journal = s.get(&alice, &format!("/api/v1/tasks/{task}/events")).await;
    let end = journal.body["events"].as_array().unwrap().len() as u64;
    assert!(end > before);
    assert_eq!(ids(live).await, ((before + 1)..=end).collect::<Vec<_>>());

    // On the ended task: from the start, from the middle, at the end (ends at once).
    assert_eq!(
        ids(open(&s, &alice, &task, None).await).await,
        (1..=end).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(open(&s, &alice, &task, Some("1")).await).await,
        (2..=end).collect::<Vec<_>>()
    );
    assert!(
        ids(open(&s, &alice, &task, Some(&end.to_string())).await)
            .await
            .is_empty()
    );

    for bad in [
        "x",
        "-1",
        "1e3",
        "",
        &(end + 1).to_string(),
        "99999999999999999999999",
    ] {
        let response = open(&s, &alice, &task, Some(bad)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "AMAS-API-0011", "{bad:?}: {body}");
    }
    // Another tenant's task is not found, whatever the header says.
    let bob = s.token("bob", &["submitter"], "globex");
    let response = open(&s, &bob, &task, Some("1")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
