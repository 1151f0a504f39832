//! The OpenAI-compatible backend sends the W3C `traceparent` of the model call's span, so the
//! provider (or a gateway in front of it) can join the task's trace; outside any span, none.

use std::time::Duration;

use serde_json::json;
use tracing::Instrument;

use amas_config::{BreakerConfig, OpenAiConfig};
use amas_providers::openai::OpenAiProvider;
use amas_providers::{ChatMessage, ChatRequest, ModelProvider};
use amas_test_util::{Behaviour, MockOpenAi};

#[tokio::test]
async fn chat_requests_carry_the_model_calls_traceparent() {
    let _telemetry = amas_telemetry::init_tracing("amas-test", true, "warn").unwrap();
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default("gpt-test", Behaviour::reply(json!({"ok": true})));
    let provider = OpenAiProvider::new(
        "primary",
        &OpenAiConfig {
            base_url: mock.base_url(),
            model: "gpt-test".into(),
            api_key_env: None,
            timeout: Duration::from_secs(10),
            max_retries: 0,
            max_retry_after: std::time::Duration::from_secs(5),
            breaker: BreakerConfig {
                failure_threshold: 5,
                cool_down: Duration::from_secs(30),
            },
        },
    )
    .unwrap();
    let request = ChatRequest {
        agent: "research".into(),
        step: "gather".into(),
        messages: vec![ChatMessage::user("Find three facts")],
        output_schema: None,
        max_output_tokens: 64,
        tools: Vec::new(),
    };

    let span = tracing::info_span!("gen_ai.chat", gen_ai.operation.name = "chat");
    let (trace_id, span_id) = span.in_scope(|| {
        (
            amas_telemetry::current_trace_id().unwrap(),
            amas_telemetry::propagation::current_span_id().unwrap(),
        )
    });
    provider.chat(&request).instrument(span).await.unwrap();
    provider.chat(&request).await.unwrap();

    let sent = mock.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].headers.get("traceparent"),
        Some(&format!("00-{trace_id}-{span_id}-01"))
    );
    assert_eq!(sent[1].headers.get("traceparent"), None);
}
