//! Crash recovery as a process: `amas serve` is killed with SIGKILL while the second step's model
//! call hangs; after a restart the task completes, and the first step's model call was made
//! exactly once (its answer came from the journal).

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use serde_json::json;

use amas_test_util::{Behaviour, MockOpenAi};
use common::Server;

fn is_research_call(body: &serde_json::Value) -> bool {
    body["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("research assistant"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_resumes_the_task_without_repeating_journaled_calls() {
    let mock = MockOpenAi::start().await.expect("mock starts");
    let dirs = tempfile::tempdir().unwrap();
    let data = dirs.path().join("data");
    let config = dirs.path().join("config");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    // Every default agent uses the provider named `local`; point it at the mock.
    std::fs::write(
        config.join("providers.yaml"),
        format!(
            "providers:\n  local:\n    kind: openai\n    base_url: {}\n    model: m\n    timeout: 60s\n    max_retries: 0\n",
            mock.base_url()
        ),
    )
    .unwrap();
    mock.push(
        "m",
        [
            Behaviour::reply(
                json!({"findings": ["SQLite is embedded"], "summary": "It is everywhere."}),
            ),
            Behaviour::Hang,
        ],
    );

    let server = Server::start(&data, Some(&config));
    let token = server.token("alice", &["submitter"]);
    let (status, created) = server
        .post(
            &token,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "SQLite", "description": "Why is it everywhere?"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // Wait until research is journaled and analysis is waiting on the hung model.
    server
        .wait_task(&token, &id, |t| {
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
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        mock.request_count("m"),
        2,
        "research answered, analysis hanging"
    );
    server.kill9();

    mock.push(
        "m",
        [
            Behaviour::reply(json!({"insights": ["Zero configuration"], "risks": []})),
            Behaviour::reply(json!({"title": "SQLite", "report": "SQLite is everywhere because it is embedded."})),
        ],
    );
    let server = Server::start(&data, Some(&config));
    let done = server
        .wait_task(&token, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["title"], "SQLite");
    let research_calls = mock
        .requests()
        .iter()
        .filter(|r| is_research_call(&r.body))
        .count();
    assert_eq!(
        research_calls, 1,
        "the first step's model call was made exactly once"
    );
    assert_eq!(
        mock.request_count("m"),
        4,
        "research once, analysis twice (hung + retry), synthesis once"
    );
}
