//! No seeded personal data reaches the logs or the traces: `amas serve` runs with
//! `RUST_LOG=debug`, exporting spans over OTLP/gRPC to a collector inside this test, with the
//! mock OpenAI server as its model. A task carries an email, a Luhn-valid card number, an SSN
//! and an API key in its title, description and parameters; the model echoes them in a tool
//! call's arguments, in an answer that breaks the output contract and in its final answer. The
//! server's whole log file and every exported span (names, attributes, events, serialized) are
//! searched for the raw values; so are the error bodies of requests that fail on them.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use serde_json::{Value, json};

use amas_test_util::{Behaviour, MockOpenAi};
use common::otlp::start_collector;
use common::read_log;

const MODEL: &str = "gpt-test";
const EMAIL: &str = "jane.roe@example.com";
const CARD: &str = "4111111111111111";
const SSN: &str = "123-45-6789";
const API_KEY: &str = "sk-proj-Zq8vR2mT5xW9kL3nB7cY4dF6gH1jK0pQ";
const SEEDS: [&str; 4] = [EMAIL, CARD, SSN, API_KEY];

/// The seeded values found in `text`.
fn leaked(text: &str) -> Vec<&'static str> {
    SEEDS.into_iter().filter(|s| text.contains(s)).collect()
}

fn pii() -> String {
    format!("mail {EMAIL}, card {CARD}, SSN {SSN}, api_key={API_KEY}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_pii_never_reaches_logs_spans_or_error_bodies() {
    let (collector_addr, collector) = start_collector().await;
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(
        MODEL,
        [
            Behaviour::tool_call(
                "code_analyzer",
                json!({"code": format!("// {}\nfn main() {{}}\n", pii()), "language": "rs"}),
            ),
            // Breaks the contract (verdict not in the enum): the violation quotes the value.
            Behaviour::reply(json!({"issues": [pii()], "verdict": EMAIL})),
            Behaviour::reply(
                json!({"issues": [format!("leaks {SSN}")], "verdict": "request_changes"}),
            ),
        ],
    );
    let mut setup = common::otlp::serve_exporting(
        collector_addr,
        &mock.base_url(),
        MODEL,
        "    trusted_for: [public, internal, confidential, restricted]\n",
        "development",
        &[("RUST_LOG", "debug".to_owned())],
    );
    let server = &mut setup.server;
    let data = server.data_dir.clone();
    let token = server.token("alice", &["submitter"]);
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/api/v1/tasks", server.base))
        .bearer_auth(&token)
        .json(&json!({
            "task_type": "code_review",
            "title": format!("Review for {EMAIL} {SSN}"),
            "description": pii(),
            "parameters": {"contact": EMAIL, "card": CARD, "ssn": SSN, "key": API_KEY},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = server
        .wait_task(&token, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");
    // The model really was given the values (a trusted provider) and echoed them: what follows
    // tests redaction, not their absence.
    let sent = mock.requests();
    assert_eq!(
        sent.len(),
        3,
        "tool request, the violating answer, the good one"
    );
    assert!(
        leaked(
            &serde_json::to_string(&sent.iter().map(|r| r.body.clone()).collect::<Vec<_>>())
                .unwrap()
        )
        .len()
            == SEEDS.len()
    );

    // Requests that fail on the values answer with codes, not the values.
    let bad = [
        json!({"task_type": format!("type {EMAIL}"), "title": pii(), "description": pii()}),
        json!({"task_type": "code_review", "title": pii(), "description": pii(), "priority": 99}),
        json!({"task_type": "code_review", "title": pii(), "description": "x", "classification": {"level": format!("top {SSN}")}}),
        json!({"task_type": "code_review", "title": "x", "description": "x", "parameters": {"card": CARD}, "extra": API_KEY}),
    ];
    for body in bad {
        let response = client
            .post(format!("{}/api/v1/tasks", server.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_client_error(), "{status}: {text}");
        assert!(
            leaked(&text).is_empty(),
            "error body leaks {:?}: {text}",
            leaked(&text)
        );
    }
    let response = client
        .get(format!("{}/api/v1/tasks/{}", server.base, EMAIL))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(leaked(&text).is_empty(), "{text}");

    // SIGTERM flushes the batch exporter on the way out.
    server.terminate();
    let spans = collector
        .spans_until(|spans| spans.iter().any(|s| s.name == "invoke_agent code_reviewer"))
        .await;
    assert!(
        spans.iter().any(|s| s.name.starts_with("execute_tool")),
        "the tool call was traced"
    );
    assert!(spans.iter().any(|s| s.name.starts_with("chat ")));
    let exported = format!("{spans:?}");
    assert!(
        leaked(&exported).is_empty(),
        "exported spans leak {:?}",
        leaked(&exported)
    );
    let log = read_log(&data);
    assert!(log.lines().count() > 20, "debug logging was on: {log}");
    assert!(log.contains("Output broke the contract."), "{log}");
    let lines: Vec<&str> = log.lines().filter(|l| !leaked(l).is_empty()).collect();
    assert!(lines.is_empty(), "log lines leak: {lines:#?}");
}
