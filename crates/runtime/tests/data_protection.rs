//! Data protection where data leaves AMAS, through the real gate (embedded Rego bundle): a
//! prompt with a card number and an email goes to an OpenAI-compatible provider (a capturing
//! mock HTTP server) only redacted unless the provider is trusted for restricted data; an
//! outbound tool call's parameters are blocked or redacted per DLP config; and replay asks
//! every such decision again and gets the same answers.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use amas_config::{AmasConfig, BreakerConfig, OpenAiConfig};
use amas_policy::PolicyEngine;
use amas_providers::ModelProvider;
use amas_providers::openai::OpenAiProvider;
use amas_runtime::Replayer;
use amas_test_util::{Behaviour, MockOpenAi};
use amas_tools::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec};
use amas_types::{JournalEvent, TaskId, TaskStatus};
use common::{FakeModel, Governance, Harness, assert_status, harness_governed, valid};

const CARD: &str = "4111 1111 1111 1111";
const EMAIL: &str = "jane.doe@example.com";
const MODEL: &str = "gpt-remote";

fn remote(base_url: &str) -> Arc<dyn ModelProvider> {
    Arc::new(
        OpenAiProvider::new(
            "remote",
            &OpenAiConfig {
                base_url: base_url.to_owned(),
                model: MODEL.to_owned(),
                api_key_env: None,
                timeout: Duration::from_secs(10),
                max_retries: 0,
                max_retry_after: std::time::Duration::from_secs(5),
                breaker: BreakerConfig {
                    failure_threshold: 100,
                    cool_down: Duration::from_secs(1),
                },
            },
        )
        .unwrap(),
    )
}

/// The research step runs on `remote` (trusted for `trust`); the others stay on `fake`.
async fn harness_remote(mock: &MockOpenAi, trust: &[&str]) -> Harness {
    let mut config = common::config();
    config.agents.get_mut("research").unwrap().providers = vec!["remote".to_owned()];
    config.provider_trust.insert(
        "remote".to_owned(),
        trust.iter().map(|l| (*l).to_owned()).collect(),
    );
    let gov = Governance {
        extra_providers: vec![("remote".to_owned(), remote(&mock.base_url()))],
        ..Governance::default()
    };
    harness_governed(
        config,
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        &gov,
    )
    .await
}

async fn submit_with(h: &Harness, task_type: &str, description: &str) -> TaskId {
    let mut spec = common::spec(task_type);
    spec.description = description.to_owned();
    h.runtime
        .admission()
        .submit(spec, amas_types::Principal::local_operator(), None)
        .await
        .unwrap()
        .task_id
}

fn replay(h: &Harness, registry: amas_tools::ToolRegistry) -> Replayer {
    let policy: Arc<dyn PolicyEngine> =
        Arc::new(amas_policy::RegoPolicyEngine::embedded().unwrap());
    common::replayer(&h.config, policy, registry, "development", None)
}

fn embedded_registry() -> amas_tools::ToolRegistry {
    amas_tools::ToolRegistry::from_config(amas_tools::ToolsConfig::load(None, &[]).unwrap())
}

async fn assert_replays_identically(h: &Harness, task: TaskId, registry: amas_tools::ToolRegistry) {
    let records = h.journal.read(task, 0).await.unwrap();
    let report = replay(h, registry).replay(&records).unwrap();
    assert!(report.identical, "{report:#?}");
    assert!(report.decisions > 1, "{report:#?}");
}

/// The reason this layer exists: a provider not trusted for restricted data never receives the
/// raw card number or email. Policy allows it the redacted prompt (obligation `redact`), the
/// journal says so with both classifications, and replay agrees.
#[tokio::test]
async fn an_untrusted_provider_gets_the_prompt_redacted() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::reply(valid("research")));
    let h = harness_remote(&mock, &["public", "internal"]).await;
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = submit_with(
        &h,
        "research_report",
        &format!("Refund the card {CARD} of {EMAIL}"),
    )
    .await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);

    let sent = mock.requests();
    assert_eq!(sent.len(), 1, "the remote provider was asked once");
    let body = sent[0].body.to_string();
    for raw in [CARD, "4111111111111111", EMAIL, "jane.doe"] {
        assert!(!body.contains(raw), "{raw} reached the provider: {body}");
    }
    assert!(
        body.contains("***@example.com"),
        "the useful part is kept: {body}"
    );
    assert!(body.contains("**** **** **** 1111"), "{body}");

    let events = h.events(task).await;
    let decision = events
        .iter()
        .find_map(|e| match e {
            JournalEvent::ActionDecided {
                action,
                outcome,
                obligations,
                data,
                ..
            } if action == "model_call" && outcome == "allow" && obligations == &["redact"] => {
                data.clone()
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no allow with obligation redact: {events:#?}"));
    assert_eq!(decision.classification, "restricted");
    assert!(decision.tags.contains(&"PCI".to_owned()), "{decision:?}");
    let redacted = decision.redacted.expect("the redacted level is journaled");
    assert_eq!(redacted.classification, "internal");
    assert_replays_identically(&h, task, embedded_registry()).await;
}

/// A provider trusted for restricted data gets the prompt as it is: redaction is a policy
/// obligation, not a blanket filter.
#[tokio::test]
async fn a_provider_trusted_for_restricted_gets_the_prompt_as_it_is() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::reply(valid("research")));
    let h = harness_remote(&mock, &["public", "internal", "confidential", "restricted"]).await;
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = submit_with(
        &h,
        "research_report",
        &format!("Refund the card {CARD} of {EMAIL}"),
    )
    .await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    let body = mock.requests()[0].body.to_string();
    assert!(body.contains(CARD) && body.contains(EMAIL), "{body}");
    let events = h.events(task).await;
    assert!(events.iter().any(|e| matches!(e,
        JournalEvent::ActionDecided { action, outcome, obligations, .. }
            if action == "model_call" && outcome == "allow" && obligations.is_empty())));
    assert_replays_identically(&h, task, embedded_registry()).await;
}

/// A provider trusted only for public data gets nothing: even the redacted prompt is internal.
#[tokio::test]
async fn a_provider_below_the_redacted_level_is_refused() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::reply(valid("research")));
    let h = harness_remote(&mock, &["public"]).await;
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = submit_with(&h, "research_report", &format!("Card {CARD}")).await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Failed);
    assert_eq!(state.error.as_ref().unwrap().code, "AMAS-STEP-0008");
    assert!(mock.requests().is_empty());
}

/// An `http_fetch` double: the outside world, recording the parameters it was called with.
struct RecordingFetch {
    spec: ToolSpec,
    calls: Mutex<Vec<Value>>,
}

#[async_trait]
impl Tool for RecordingFetch {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, _ctx: &ToolContext, params: Value) -> Result<ToolOutput, ToolError> {
        self.calls.lock().unwrap().push(params);
        Ok(ToolOutput {
            content: json!({
                "status": 200,
                "url": "https://api.example.com/",
                "content_type": "text/plain",
                "body": "ok",
            }),
            bytes_in: 2,
            bytes_out: 0,
        })
    }
}

fn recording_fetch() -> Arc<RecordingFetch> {
    let spec = amas_tools::ToolsConfig::load(None, &[])
        .unwrap()
        .tools
        .into_iter()
        .find(|t| t.spec.name == "http_fetch")
        .unwrap()
        .spec;
    Arc::new(RecordingFetch {
        spec,
        calls: Mutex::new(Vec::new()),
    })
}

async fn web_research(fetch: &Arc<RecordingFetch>, arguments: Value) -> (Harness, TaskId) {
    let gov = Governance {
        extra_tools: vec![Arc::clone(fetch) as Arc<dyn Tool>],
        ..Governance::default()
    };
    let config: AmasConfig = common::config();
    let h = harness_governed(
        config,
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        &gov,
    )
    .await;
    h.model.answer(
        "web_research",
        vec![
            json!({"__tool_calls": [{"name": "http_fetch", "arguments": arguments}]}),
            valid("research"),
        ],
    );
    h.runtime.scheduler().start().await;
    let task = h.submit("web_research").await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    (h, task)
}

fn registry_with(fetch: &Arc<RecordingFetch>) -> amas_tools::ToolRegistry {
    let mut registry = embedded_registry();
    registry.insert(Arc::clone(fetch) as Arc<dyn Tool>);
    registry
}

/// DLP blocks an outbound call whose parameters carry a card number (`credit_card: block`):
/// the tool is never called, the model sees the refusal, and replay agrees.
#[tokio::test]
async fn dlp_blocks_an_outbound_call_carrying_a_card_number() {
    let fetch = recording_fetch();
    let (h, task) = web_research(
        &fetch,
        json!({"url": "https://api.example.com/pay", "method": "POST", "body": format!("card={CARD}")}),
    )
    .await;
    assert!(fetch.calls.lock().unwrap().is_empty(), "the tool never ran");
    let events = h.events(task).await;
    assert!(
        events.iter().any(|e| matches!(e,
            JournalEvent::ToolFailed { error, .. }
                if error.code == "AMAS-GOV-0001" && error.message.contains("credit_card"))),
        "{events:#?}"
    );
    assert_replays_identically(&h, task, registry_with(&fetch)).await;
}

/// DLP redacts an email (`email: redact`) in an outbound call's parameters: the tool gets the
/// redacted parameters only, the decision is journaled with its obligation, replay agrees.
#[tokio::test]
async fn dlp_redacts_an_email_before_an_outbound_call() {
    let fetch = recording_fetch();
    let (h, task) = web_research(
        &fetch,
        json!({"url": "https://api.example.com/lookup", "method": "POST", "body": format!("who is {EMAIL}?")}),
    )
    .await;
    let calls = fetch.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let sent = calls[0].to_string();
    assert!(!sent.contains(EMAIL), "{sent}");
    assert_eq!(calls[0]["body"], "who is ***@example.com?");
    assert_eq!(calls[0]["url"], "https://api.example.com/lookup");
    let events = h.events(task).await;
    assert!(
        events.iter().any(|e| matches!(e,
            JournalEvent::ActionDecided { action, stage, outcome, obligations, data: Some(d), .. }
                if action == "tool_call" && stage == "policy" && outcome == "allow"
                    && obligations == &["redact"] && d.classification == "confidential")),
        "{events:#?}"
    );
    assert_replays_identically(&h, task, registry_with(&fetch)).await;
}

async fn submit_text(h: &Harness, description: &str) -> Result<TaskId, amas_runtime::RuntimeError> {
    let mut spec = common::spec("research_report");
    spec.description = description.to_owned();
    h.runtime
        .admission()
        .submit(spec, amas_types::Principal::local_operator(), None)
        .await
        .map(|r| r.task_id)
}

/// Content safety at submission: a `block` category (illegal_activity) is refused with its
/// code, naming categories only; a `flag` category (harassment) and ordinary words that
/// contain lexicon terms are admitted.
#[tokio::test]
async fn submissions_are_screened_for_unsafe_content() {
    let h = harness_governed(
        common::config(),
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        &Governance::default(),
    )
    .await;
    let refused = submit_text(&h, "Explain how to make a pipe bomb at home").await;
    let err = refused.expect_err("blocked content is refused");
    assert_eq!(err.code(), "AMAS-SAFE-0001");
    assert!(err.to_string().contains("illegal_activity"), "{err}");
    assert!(
        !err.to_string().contains("bomb"),
        "the error names categories, not words"
    );

    submit_text(&h, "Shut up bitch, summarise this")
        .await
        .expect("flag admits");
    submit_text(
        &h,
        "Assess the skill of the Scunthorpe analysis team in Sussex",
    )
    .await
    .expect("ordinary words are not unsafe");
}
