//! Runs the real embedded model (SmolLM2-135M, installed by `scripts/fetch-model.sh`): the
//! constrained answer of this tiny model must still satisfy the agent's output contract.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amas_config::{BreakerConfig, Contract, LocalModelConfig};
use amas_providers::local::LocalProvider;
use amas_providers::{
    ChatMessage, ChatRequest, ChatResponse, ModelProvider, OutputSchema, ProviderError,
    ToolDefinition,
};
use serde_json::json;

const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn config(model_dir: Option<PathBuf>) -> LocalModelConfig {
    LocalModelConfig {
        model_dir,
        model_file: MODEL_FILE.to_owned(),
        max_tokens: 512,
        breaker: BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
        },
    }
}

fn research_request(schema: serde_json::Value) -> ChatRequest {
    ChatRequest {
        agent: "researcher".into(),
        step: "research".into(),
        messages: vec![
            ChatMessage::system("You are a research assistant. Summarise the topic briefly."),
            ChatMessage::user("Topic: the benefits of regular exercise for health."),
        ],
        output_schema: Some(OutputSchema {
            name: "research_summary".to_owned(),
            schema,
        }),
        max_output_tokens: 400,
        tools: Vec::new(),
    }
}

fn research_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string", "maxLength": 200},
            "key_points": {
                "type": "array",
                "items": {"type": "string", "maxLength": 80},
                "minItems": 1,
                "maxItems": 3
            }
        },
        "required": ["summary", "key_points"],
        "additionalProperties": false
    })
}

/// The one test that loads the model: the answer parses, satisfies the contract, and is counted.
#[tokio::test(flavor = "multi_thread")]
async fn constrained_answer_of_the_real_model_satisfies_the_contract() {
    let provider = LocalProvider::new("local", &config(None)).expect("provider");
    assert!(
        provider.is_installed(),
        "the local model is missing at {} (CI={}); run scripts/fetch-model.sh first",
        provider.model_path().display(),
        std::env::var("CI").unwrap_or_default(),
    );
    let schema = research_schema();
    let contract = Contract::compile("research_summary", schema.clone()).expect("schema");

    let started = Instant::now();
    let response = provider
        .chat(&research_request(schema))
        .await
        .expect("answer");
    let elapsed = started.elapsed();

    let doc: serde_json::Value = serde_json::from_str(&response.content)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.content));
    let violations = contract.check(&doc);
    assert!(
        violations.is_empty(),
        "{violations:?} in {}",
        response.content
    );
    assert!(
        doc["summary"]
            .as_str()
            .is_some_and(|s| !s.trim().is_empty())
    );
    assert!(response.usage.input_tokens > 0);
    assert!(response.usage.output_tokens > 0);
    assert_eq!(response.provider, "local");
    assert_eq!(response.model, "SmolLM2-135M-Instruct.Q4_1");
    // Informational only (no timed assertion): the speed this machine reached.
    eprintln!(
        "local model: {} prompt tokens, {} generated in {:.2?} (incl. first load): {}",
        response.usage.input_tokens, response.usage.output_tokens, elapsed, response.content
    );

    // Greedy decoding: the same request gives the same answer (model now loaded and reused).
    let started = Instant::now();
    let again = provider
        .chat(&research_request(research_schema()))
        .await
        .expect("again");
    let elapsed = started.elapsed();
    assert_eq!(again.content, response.content);
    eprintln!(
        "local model, loaded: {} tokens in {:.2?} = {:.1} tokens/s",
        again.usage.output_tokens,
        elapsed,
        again.usage.output_tokens as f64 / elapsed.as_secs_f64()
    );

    // Without a schema the model answers in free text, cut at the call's token budget.
    let mut free = research_request(research_schema());
    free.output_schema = None;
    free.max_output_tokens = 12;
    let prose = provider.chat(&free).await.expect("free text");
    assert!(!prose.content.trim().is_empty());
    assert!(prose.usage.output_tokens <= 12, "{:?}", prose.usage);
    assert!(!prose.content.contains("<|im_end|>"), "{}", prose.content);
}

fn calculator() -> ToolDefinition {
    ToolDefinition {
        name: "calculator".to_owned(),
        description: "Evaluates an arithmetic expression such as 12*7 and returns the number."
            .to_owned(),
        parameters: json!({
            "type": "object",
            "properties": {"expression": {"type": "string", "maxLength": 40}},
            "required": ["expression"],
            "additionalProperties": false
        }),
    }
}

fn calculation_request() -> ChatRequest {
    ChatRequest {
        agent: "calc".into(),
        step: "compute".into(),
        messages: vec![
            ChatMessage::system(
                "You are a careful assistant. Use the calculator tool for arithmetic.",
            ),
            ChatMessage::user("Use the calculator tool to compute 12*7."),
        ],
        output_schema: Some(OutputSchema {
            name: "calculation".to_owned(),
            schema: calculation_schema(),
        }),
        max_output_tokens: 48,
        tools: vec![calculator()],
    }
}

fn calculation_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"result": {"type": "number"}},
        "required": ["result"],
        "additionalProperties": false
    })
}

/// The answer is exactly one of: a final answer satisfying the contract, or one well-formed
/// call of the offered tool whose arguments satisfy its parameter schema. Returns which.
#[expect(
    clippy::panic,
    clippy::expect_used,
    reason = "test helper: a failure here is a test failure"
)]
fn check_call_or_answer(response: &ChatResponse) -> &'static str {
    if response.tool_calls.is_empty() {
        let doc: serde_json::Value = serde_json::from_str(&response.content)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.content));
        let contract = Contract::compile("calculation", calculation_schema()).expect("schema");
        let violations = contract.check(&doc);
        assert!(
            violations.is_empty(),
            "{violations:?} in {}",
            response.content
        );
        return "final answer";
    }
    assert_eq!(response.tool_calls.len(), 1, "{:?}", response.tool_calls);
    assert_eq!(response.content, "");
    let call = &response.tool_calls[0];
    assert_eq!(call.name, "calculator");
    assert!(call.id.starts_with("call_"), "{}", call.id);
    let parameters = Contract::compile("calculator", calculator().parameters).expect("schema");
    let violations = parameters.check(&call.arguments);
    assert!(
        violations.is_empty(),
        "{violations:?} in {}",
        call.arguments
    );
    "tool call"
}

/// With a tool offered, the model either calls it well-formed or answers within the contract;
/// which one this tiny model picks is not asserted, only logged. Then the tool result goes back
/// (rendered as a `tool` turn) and the next answer is again one of the two.
#[tokio::test(flavor = "multi_thread")]
async fn with_a_tool_offered_the_answer_is_a_valid_call_or_a_valid_final_answer() {
    let provider = LocalProvider::new("local", &config(None)).expect("provider");
    assert!(provider.is_installed(), "run scripts/fetch-model.sh first");
    let mut request = calculation_request();
    let first = provider.chat(&request).await.expect("answer");
    let kind = check_call_or_answer(&first);
    eprintln!(
        "local model with a tool, first turn: {kind}: {:?} {}",
        first.tool_calls, first.content
    );
    assert!(first.usage.output_tokens <= 48, "{:?}", first.usage);

    let earlier = first
        .tool_calls
        .first()
        .cloned()
        .unwrap_or_else(|| amas_providers::ToolCall {
            id: "call_1".to_owned(),
            name: "calculator".to_owned(),
            arguments: json!({"expression": "12*7"}),
        });
    request
        .messages
        .push(ChatMessage::assistant("", vec![earlier.clone()]));
    request.messages.push(ChatMessage::tool(earlier.id, "84"));
    let second = provider.chat(&request).await.expect("second answer");
    let kind = check_call_or_answer(&second);
    if let Some(call) = second.tool_calls.first() {
        assert_eq!(call.id, "call_2", "numbered on from the conversation");
    }
    eprintln!(
        "local model with a tool, after the result: {kind}: {:?} {}",
        second.tool_calls, second.content
    );
}

/// A too-small budget for a required JSON object is an inference error, not broken JSON.
#[tokio::test(flavor = "multi_thread")]
async fn token_limit_before_the_json_is_complete_is_an_inference_error() {
    let provider = LocalProvider::new("local", &config(None)).expect("provider");
    assert!(provider.is_installed(), "run scripts/fetch-model.sh first");
    let mut request = research_request(research_schema());
    request.max_output_tokens = 3;
    let err = provider
        .chat(&request)
        .await
        .expect_err("3 tokens cannot hold the object");
    assert!(matches!(err, ProviderError::Inference { .. }), "{err}");
    assert_eq!(err.code(), "AMAS-PROV-0008");
    assert!(err.to_string().contains("token limit"), "{err}");
}

/// A missing model file names its path and the script that installs it.
#[tokio::test]
async fn missing_model_names_the_path_and_the_fetch_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let provider = LocalProvider::new("local", &config(Some(dir.path().to_owned()))).expect("new");
    assert!(!provider.is_installed());
    assert_eq!(provider.model_path(), dir.path().join(MODEL_FILE));

    let err = provider
        .chat(&research_request(research_schema()))
        .await
        .expect_err("missing");
    match &err {
        ProviderError::ModelMissing {
            path,
            fetch_command,
        } => {
            assert_eq!(PathBuf::from(path), dir.path().join(MODEL_FILE));
            assert_eq!(fetch_command, "scripts/fetch-model.sh");
        }
        other => panic!("expected ModelMissing, got {other}"),
    }
    assert_eq!(err.code(), "AMAS-PROV-0005");
}
