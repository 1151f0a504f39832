//! The standalone `amas-mock-openai` process: crash tests drive it only through its control
//! API, so that API must queue behaviours and report requests like the in-process mock.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use amas_test_util::{Behaviour, MockControl, MockOpenAi};
use serde_json::{Value, json};

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here is a test failure"
)]
async fn chat(base_url: &str, model: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/chat/completions"))
        .bearer_auth("sk-test")
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "say hi"}]}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Starts the binary with `args` and returns its guard and `/v1` base URL.
#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here is a test failure"
)]
fn start_binary(args: &[&str]) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_amas-mock-openai"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base_url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    (guard, base_url)
}

#[tokio::test]
async fn the_binary_is_driven_through_its_control_api() {
    let (_guard, base_url) = start_binary(&["--port", "0"]);

    let control = MockControl::new(&base_url);
    control
        .configure(
            "m",
            vec![Behaviour::status(500)],
            Some(Behaviour::reply(json!({"a": 1}))),
        )
        .await
        .unwrap();

    assert_eq!(chat(&base_url, "m").await.0, 500);
    let (status, body) = chat(&base_url, "m").await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["message"]["content"], r#"{"a":1}"#);
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(
        chat(&base_url, "other").await.0,
        404,
        "no behaviour: explicit error"
    );

    // Tool calls survive the control API's JSON and come back in OpenAI's wire form.
    control
        .configure(
            "tools",
            vec![Behaviour::tool_call(
                "calculator",
                json!({"expression": "1+1"}),
            )],
            None,
        )
        .await
        .unwrap();
    let (status, body) = chat(&base_url, "tools").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "calculator", "arguments": "{\"expression\":\"1+1\"}"},
        }]})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");

    let requests = control.requests().await.unwrap();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(control.request_count("m").await.unwrap(), 2);
}

#[tokio::test]
async fn a_hang_answers_once_released() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default("m", Behaviour::Hang);
    let base_url = mock.base_url();
    let pending = tokio::spawn(async move { chat(&base_url, "m").await.0 });
    while mock.request_count("m") == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(!pending.is_finished());
    mock.release_hangs();
    assert_eq!(pending.await.unwrap(), 503);
}

/// The bench runs the mock for many thousands of calls: `--no-record` must still answer every
/// request by its configured behaviour, and keep none of them.
#[tokio::test]
async fn without_recording_the_binary_answers_and_keeps_nothing() {
    let (_guard, base_url) = start_binary(&["--port", "0", "--no-record"]);
    let control = MockControl::new(&base_url);
    control
        .configure(
            "m",
            vec![Behaviour::status(500)],
            Some(Behaviour::reply(json!({"a": 1}))),
        )
        .await
        .unwrap();

    assert_eq!(chat(&base_url, "m").await.0, 500, "the queue comes first");
    for _ in 0..3 {
        let (status, body) = chat(&base_url, "m").await;
        assert_eq!(status, 200);
        assert_eq!(body["choices"][0]["message"]["content"], r#"{"a":1}"#);
    }
    assert!(control.requests().await.unwrap().is_empty());
}
