//! Secrets never leak: after an end-to-end run of the real binary that used every kind of
//! secret (bearer tokens, a rejected token, an OpenAI-compatible provider's API key sent to a
//! mock server, a provider failure), none of them appears in the server's logs (debug level),
//! its stdout, the database files (journal, approvals, audit log, WAL), the audit export, or
//! any response body the API gave.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::path::Path;

use serde_json::{Value, json};

use amas_test_util::{Behaviour, MockOpenAi};
use common::{Server, amas, read_log};

/// Every file under `dir`, as bytes, with its path.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_journal_audit_or_error_bodies() {
    let mock = MockOpenAi::start().await.unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let data = dirs.path().join("data");
    let config = dirs.path().join("config");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    let provider_key = format!("sk-amas-secret-{}", uuid_like());
    std::fs::write(
        config.join("providers.yaml"),
        format!(
            "providers:\n  local:\n    kind: openai\n    base_url: {}\n    model: m\n    api_key_env: AMAS_TEST_PROVIDER_KEY\n    timeout: 60s\n    max_retries: 0\n",
            mock.base_url()
        ),
    )
    .unwrap();
    mock.push(
        "m",
        [
            Behaviour::reply(json!({"findings": ["f"], "summary": "s"})),
            Behaviour::reply(json!({"insights": ["i"], "risks": []})),
            Behaviour::reply(json!({"title": "t", "report": "r"})),
            // The second task's first call fails: the error path must not leak either.
            Behaviour::status(401),
        ],
    );
    // At debug level with the provider key in its environment, as an operator would run it.
    let server = Server::spawn(
        &data,
        Some(&config),
        "development",
        &[
            ("AMAS_TEST_PROVIDER_KEY", provider_key.clone()),
            ("RUST_LOG", "debug".to_owned()),
        ],
    );
    let token = server.token("alice", &["submitter", "auditor"]);
    let rejected = format!("eyJhbGciOiJFZERTQSJ9.{}.c2VjcmV0", uuid_like());
    let mut bodies: Vec<String> = Vec::new();
    let http = reqwest::Client::new();
    let mut call = async |req: reqwest::RequestBuilder| -> (u16, Value) {
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        bodies.push(text.clone());
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let task_body =
        json!({"task_type": "research_report", "title": "SQLite", "description": "Why?"});
    let (status, created) = call(
        http.post(format!("{}/api/v1/tasks", server.base))
            .bearer_auth(&token)
            .json(&task_body),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let first = created["id"].as_str().unwrap().to_owned();
    let done = server.wait_task(&token, &first, ended).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, created) = call(
        http.post(format!("{}/api/v1/tasks", server.base))
            .bearer_auth(&token)
            .json(&task_body),
    )
    .await;
    let second = created["id"].as_str().unwrap().to_owned();
    let failed = server.wait_task(&token, &second, ended).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    // The key was really used: the provider sent it to the mock.
    let sent = mock.requests();
    assert!(
        sent.iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {provider_key}"))),
        "the provider did not send its key"
    );
    // Every kind of answer the API gives, with secrets in play.
    let reads = [
        format!("/api/v1/tasks/{first}"),
        format!("/api/v1/tasks/{first}/events"),
        format!("/api/v1/tasks/{second}/events"),
        "/api/v1/tasks".to_owned(),
        "/api/v1/me".to_owned(),
        "/api/v1/audit?limit=500".to_owned(),
        "/api/v1/agents".to_owned(),
        "/api/v1/nothing".to_owned(),
    ];
    for path in &reads {
        call(
            http.get(format!("{}{path}", server.base))
                .bearer_auth(&token),
        )
        .await;
    }
    let (status, _) = call(
        http.get(format!("{}/api/v1/tasks", server.base))
            .bearer_auth(&rejected),
    )
    .await;
    assert_eq!(status, 401);
    call(
        http.get(format!("{}/api/v1/tasks", server.base))
            .header("authorization", format!("Basic {rejected}")),
    )
    .await;
    call(http.get(format!("{}/metrics", server.base))).await;
    let export = amas(
        &data,
        Some(&config),
        &["audit", "export", "--format", "jsonl"],
    );
    assert!(export.status.success());
    drop(server);

    let log = read_log(&data);
    assert!(log.contains("AMAS is serving"), "no log captured");
    assert!(
        log.lines().count() > 20,
        "the debug log is suspiciously short"
    );
    let secrets = [
        ("bearer token", token.clone()),
        (
            "bearer token signature",
            token.rsplit('.').next().unwrap().to_owned(),
        ),
        ("rejected token", rejected.clone()),
        ("provider API key", provider_key.clone()),
    ];
    let mut places: Vec<(String, Vec<u8>)> = files_under(&data);
    places.push(("audit export".to_owned(), export.stdout.clone()));
    places.push(("audit export stderr".to_owned(), export.stderr.clone()));
    for (i, body) in bodies.iter().enumerate() {
        places.push((format!("response body {i}"), body.clone().into_bytes()));
    }
    assert!(
        places.iter().any(|(p, _)| p.ends_with("amas.db")),
        "the database was not searched"
    );
    for (what, secret) in &secrets {
        for (place, bytes) in &places {
            assert!(!contains(bytes, secret), "the {what} appears in {place}");
        }
    }
}

fn ended(task: &Value) -> bool {
    task["status"] == "succeeded" || task["status"] == "failed"
}

/// Unique enough for a test secret, without a UUID dependency.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}{:x}", std::process::id())
}
