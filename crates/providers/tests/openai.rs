//! The OpenAI backend against a real HTTP server (the mock): wire format, key handling,
//! retries, timeouts.

use std::time::Duration;

use amas_config::{BreakerConfig, OpenAiConfig};
use amas_providers::openai::OpenAiProvider;
use amas_providers::{
    ChatMessage, ChatRequest, ModelProvider, OutputSchema, ProviderError, ToolCall, ToolDefinition,
};
use amas_test_util::{Behaviour, MockOpenAi, free_port};
use serde_json::json;

const MODEL: &str = "gpt-test";

fn config(base_url: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: base_url.to_owned(),
        model: MODEL.to_owned(),
        api_key_env: None,
        timeout: Duration::from_secs(10),
        max_retries: 2,
        max_retry_after: std::time::Duration::from_secs(5),
        breaker: BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        },
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        agent: "research".into(),
        step: "gather".into(),
        messages: vec![
            ChatMessage::system("You research."),
            ChatMessage::user("Find three facts"),
        ],
        output_schema: None,
        max_output_tokens: 256,
        tools: Vec::new(),
    }
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here is a test failure"
)]
fn provider(cfg: &OpenAiConfig) -> OpenAiProvider {
    OpenAiProvider::new("primary", cfg).unwrap()
}

#[tokio::test]
async fn sends_the_output_contract_as_strict_json_schema_and_parses_the_answer() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(MODEL, [Behaviour::reply(json!({"facts": ["a", "b"]}))]);
    let schema = json!({"type": "object", "properties": {"facts": {"type": "array"}}, "required": ["facts"]});
    let mut req = request();
    req.output_schema = Some(OutputSchema {
        name: "research.output v1".into(),
        schema: schema.clone(),
    });

    let answer = provider(&config(&mock.base_url()))
        .chat(&req)
        .await
        .unwrap();

    let sent = &mock.requests()[0];
    assert_eq!(
        sent.body["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "research_output_v1", "schema": schema, "strict": true}})
    );
    assert_eq!(sent.body["model"], MODEL);
    assert_eq!(sent.body["max_tokens"], 256);
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "system", "content": "You research."}, {"role": "user", "content": "Find three facts"}])
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer.content).unwrap(),
        json!({"facts": ["a", "b"]})
    );
    assert_eq!(answer.provider, "primary");
    assert_eq!(answer.model, MODEL);
    // The mock counts words: 2 + 3 in, one serialized token out.
    assert_eq!(answer.usage.input_tokens, 5);
    assert_eq!(answer.usage.output_tokens, 1);
}

#[tokio::test]
async fn without_a_contract_no_response_format_is_sent() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(MODEL, [Behaviour::reply("plain text answer")]);
    let answer = provider(&config(&mock.base_url()))
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(answer.content, "plain text answer");
    assert!(mock.requests()[0].body.get("response_format").is_none());
}

#[tokio::test]
async fn sends_the_key_from_the_named_environment_variable() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::reply("ok"));
    // Tests cannot set variables (unsafe in edition 2024, forbidden here); cargo and nextest
    // export CARGO_PKG_NAME to every test process, so it stands in for an API key variable.
    let mut cfg = config(&mock.base_url());
    cfg.api_key_env = Some("CARGO_PKG_NAME".into());
    provider(&cfg).chat(&request()).await.unwrap();
    let sent = &mock.requests()[0];
    assert_eq!(
        sent.authorization.as_deref(),
        Some(concat!("Bearer ", env!("CARGO_PKG_NAME")))
    );
    assert!(!sent.headers.contains_key("authorization"));

    // No variable configured: no header at all (local servers).
    provider(&config(&mock.base_url()))
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(mock.requests()[1].authorization, None);
}

#[tokio::test]
async fn an_unset_key_variable_is_a_config_error_naming_the_variable() {
    let mut cfg = config("http://127.0.0.1:9/v1");
    cfg.api_key_env = Some("AMAS_TEST_KEY_THAT_IS_NEVER_SET".into());
    let err = OpenAiProvider::new("primary", &cfg).unwrap_err();
    assert_eq!(err.code(), "AMAS-PROV-0007");
    assert!(
        err.to_string().contains("AMAS_TEST_KEY_THAT_IS_NEVER_SET"),
        "{err}"
    );
}

#[tokio::test]
async fn rate_limit_is_retried_after_retry_after() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(
        MODEL,
        [Behaviour::retry_after(429, 1), Behaviour::reply("ok")],
    );
    let answer = provider(&config(&mock.base_url()))
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(answer.content, "ok");
    assert_eq!(mock.request_count(MODEL), 2);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(
        MODEL,
        [
            Behaviour::status(500),
            Behaviour::status(502),
            Behaviour::reply("ok"),
        ],
    );
    let answer = provider(&config(&mock.base_url()))
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(answer.content, "ok");
    assert_eq!(mock.request_count(MODEL), 3);
}

#[tokio::test]
async fn retries_run_out_as_unavailable() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::status(500));
    let err = provider(&config(&mock.base_url()))
        .chat(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err}");
    assert_eq!(
        mock.request_count(MODEL),
        3,
        "one try and max_retries = 2 retries"
    );
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::status(400));
    let err = provider(&config(&mock.base_url()))
        .chat(&request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AMAS-PROV-0004");
    assert!(
        err.to_string().contains("HTTP 400: mock status 400"),
        "{err}"
    );
    assert_eq!(mock.request_count(MODEL), 1);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_fast_as_rate_limited() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::retry_after(429, 3600));
    let err = provider(&config(&mock.base_url()))
        .chat(&request())
        .await
        .unwrap_err();
    match err {
        ProviderError::RateLimited { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)));
        }
        other => panic!("expected RateLimited, got {other}"),
    }
    assert_eq!(mock.request_count(MODEL), 1);
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::Hang);
    let mut cfg = config(&mock.base_url());
    cfg.timeout = Duration::from_millis(200);
    cfg.max_retries = 1;
    let err = provider(&cfg).chat(&request()).await.unwrap_err();
    match err {
        ProviderError::Timeout { after, .. } => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("expected Timeout, got {other}"),
    }
    assert_eq!(mock.request_count(MODEL), 2, "timeouts are retried");
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let port = free_port().unwrap();
    let mut cfg = config(&format!("http://127.0.0.1:{port}/v1"));
    cfg.max_retries = 0;
    let err = provider(&cfg).chat(&request()).await.unwrap_err();
    assert_eq!(err.code(), "AMAS-PROV-0001", "{err}");
}

#[tokio::test]
async fn a_non_completion_body_is_a_bad_response() {
    let mock = MockOpenAi::start().await.unwrap();
    // The mock answers 404 with an error body for a model it has no behaviour for.
    let mut cfg = config(&mock.base_url());
    cfg.model = "unknown-model".into();
    let err = provider(&cfg).chat(&request()).await.unwrap_err();
    assert_eq!(err.code(), "AMAS-PROV-0004");
    assert!(err.to_string().contains("no behaviour for model"), "{err}");
}

fn calculator() -> ToolDefinition {
    ToolDefinition {
        name: "calculator".into(),
        description: "Evaluates an arithmetic expression.".into(),
        parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
    }
}

#[tokio::test]
async fn offers_tools_and_parses_the_tool_calls_of_the_answer() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(
        MODEL,
        [Behaviour::ToolCalls(vec![
            ("calculator".into(), json!({"expression": "6*7"})),
            ("calculator".into(), json!("{not json")),
        ])],
    );
    let schema = json!({"type": "object", "properties": {"value": {"type": "number"}}});
    let mut req = request();
    req.tools = vec![calculator()];
    req.output_schema = Some(OutputSchema {
        name: "calc".into(),
        schema: schema.clone(),
    });

    let answer = provider(&config(&mock.base_url()))
        .chat(&req)
        .await
        .unwrap();

    let sent = &mock.requests()[0].body;
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {
            "name": "calculator",
            "description": "Evaluates an arithmetic expression.",
            "parameters": calculator().parameters,
        }}])
    );
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(
        sent["response_format"]["json_schema"]["schema"], schema,
        "the final answer stays contract-bound while tools are offered"
    );
    assert_eq!(answer.content, "", "null content next to tool calls");
    assert_eq!(
        answer.tool_calls,
        vec![
            ToolCall {
                id: "call_1".into(),
                name: "calculator".into(),
                arguments: json!({"expression": "6*7"}),
            },
            // Not JSON: handed on as the raw string for the runtime's validation to reject.
            ToolCall {
                id: "call_2".into(),
                name: "calculator".into(),
                arguments: json!("{not json"),
            },
        ]
    );
}

#[tokio::test]
async fn without_tools_no_tools_are_sent() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(MODEL, [Behaviour::reply("ok")]);
    let answer = provider(&config(&mock.base_url()))
        .chat(&request())
        .await
        .unwrap();
    assert!(answer.tool_calls.is_empty());
    let sent = &mock.requests()[0].body;
    assert!(sent.get("tools").is_none() && sent.get("tool_choice").is_none());
}

#[tokio::test]
async fn tool_calls_and_results_round_trip_into_the_next_request() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(
        MODEL,
        [
            Behaviour::tool_call("calculator", json!({"expression": "6*7"})),
            Behaviour::reply("42"),
        ],
    );
    let openai = provider(&config(&mock.base_url()));
    let mut req = request();
    req.tools = vec![calculator()];
    let first = openai.chat(&req).await.unwrap();

    req.messages
        .push(ChatMessage::assistant("", first.tool_calls.clone()));
    req.messages
        .push(ChatMessage::tool(first.tool_calls[0].id.clone(), "42"));
    req.messages.push(ChatMessage::assistant(
        "Checking twice.",
        vec![ToolCall {
            id: "call_x".into(),
            name: "calculator".into(),
            arguments: json!({"expression": "40+2"}),
        }],
    ));
    req.messages.push(ChatMessage::tool("call_x", "42"));
    let second = openai.chat(&req).await.unwrap();
    assert_eq!(second.content, "42");
    assert!(second.tool_calls.is_empty());

    assert_eq!(
        mock.requests()[1].body["messages"],
        json!([
            {"role": "system", "content": "You research."},
            {"role": "user", "content": "Find three facts"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "calculator", "arguments": "{\"expression\":\"6*7\"}"},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            {"role": "assistant", "content": "Checking twice.", "tool_calls": [{
                "id": "call_x", "type": "function",
                "function": {"name": "calculator", "arguments": "{\"expression\":\"40+2\"}"},
            }]},
            {"role": "tool", "tool_call_id": "call_x", "content": "42"},
        ])
    );
}
