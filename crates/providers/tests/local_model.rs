//! Runs the real embedded model (SmolLM2-135M, installed by `scripts/fetch-model.sh`): the
//! constrained answer of this tiny model must still satisfy the agent's output contract.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amas_config::{BreakerConfig, Contract, LocalModelConfig};
use amas_providers::local::LocalProvider;
use amas_providers::{ChatMessage, ChatRequest, ModelProvider, OutputSchema, ProviderError, Role};
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
        agent: "researcher".to_owned(),
        step: "research".to_owned(),
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: "You are a research assistant. Summarise the topic briefly.".to_owned(),
            },
            ChatMessage {
                role: Role::User,
                content: "Topic: the benefits of regular exercise for health.".to_owned(),
            },
        ],
        output_schema: Some(OutputSchema {
            name: "research_summary".to_owned(),
            schema,
        }),
        max_output_tokens: 400,
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
