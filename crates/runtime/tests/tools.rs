//! Tool calls inside steps, through the real governance gate (embedded Rego bundle, embedded
//! tool registry): results fed back to the model, denials journaled and shown to the model,
//! quotas hit exactly at their limit, and no silent re-run of a non-idempotent tool after a
//! restart.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use serde_json::{Value, json};

use amas_types::{JournalEvent, TaskStatus};
use common::{assert_status, harness_with_tools, valid};

fn tool_call(name: &str, arguments: Value) -> Value {
    json!({"__tool_calls": [{"name": name, "arguments": arguments}]})
}

fn config_with_research_tools(tools: &[&str]) -> amas_config::AmasConfig {
    let mut config = common::config();
    let research = config.agents.get_mut("research").unwrap();
    research.allowed_tools = tools.iter().map(|t| (*t).to_owned()).collect();
    config
}

/// The model asks for the calculator, the gate allows it, the result reaches the model, and the
/// decision and result are journaled.
#[tokio::test]
async fn allowed_tool_call_runs_and_its_result_reaches_the_model() {
    let h = harness_with_tools(config_with_research_tools(&["calculator"])).await;
    h.model.answer(
        "research",
        vec![
            tool_call("calculator", json!({"expression": "6*7"})),
            valid("research"),
        ],
    );
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    let second = &h.model.requests_for("research")[1];
    assert_eq!(second.tools.len(), 1, "the allowed tool is offered");
    let tool_message = second.messages.last().unwrap();
    assert_eq!(tool_message.role, amas_providers::Role::Tool);
    assert!(
        tool_message.content.contains("42"),
        "{}",
        tool_message.content
    );
    let events = h.events(task).await;
    let decided: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            JournalEvent::ActionDecided {
                action,
                stage,
                outcome,
                ..
            } if action == "tool_call" => Some((stage.as_str(), outcome.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        decided,
        [
            ("policy", "allow"),
            ("allowlist", "allow"),
            ("contract", "allow"),
            ("sandbox", "allow"),
            ("quota", "allow")
        ]
    );
    assert!(events.iter().any(|e| matches!(e, JournalEvent::ToolCompleted { tool, output, .. } if tool == "calculator" && output.to_string().contains("42"))));
}

/// A tool the agent's allowlist does not name is refused even though policy would allow it;
/// the model sees the refusal and can still answer.
#[tokio::test]
async fn tool_outside_the_allowlist_is_refused_even_if_policy_allows() {
    let h = harness_with_tools(config_with_research_tools(&[])).await;
    h.model.answer(
        "research",
        vec![
            tool_call("calculator", json!({"expression": "1+1"})),
            valid("research"),
        ],
    );
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    let events = h.events(task).await;
    assert!(events.iter().any(|e| matches!(e, JournalEvent::ActionDecided { stage, outcome, .. } if stage == "policy" && outcome == "allow")));
    assert!(events.iter().any(
        |e| matches!(e, JournalEvent::ToolFailed { error, .. } if error.code == "AMAS-GOV-0002")
    ));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, JournalEvent::ToolStarted { .. })),
        "never ran"
    );
    let feedback = h.model.requests_for("research")[1]
        .messages
        .last()
        .unwrap()
        .content
        .clone();
    assert!(feedback.contains("AMAS-GOV-0002"), "{feedback}");
}

/// Policy denies system_executor to a non-admin: denied at the policy stage, never run.
#[tokio::test]
async fn policy_denial_stops_the_call() {
    let h = harness_with_tools(config_with_research_tools(&["system_executor"])).await;
    h.model.answer(
        "research",
        vec![
            tool_call("system_executor", json!({"command": "id"})),
            valid("research"),
        ],
    );
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let alice = common::submitter();
    let task = h.submit_as("research_report", alice).await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    let events = h.events(task).await;
    assert!(events.iter().any(|e| matches!(e, JournalEvent::ActionDecided { stage, outcome, code, .. } if stage == "policy" && outcome == "deny" && code.as_deref() == Some("AMAS-GOV-0001"))), "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, JournalEvent::ToolStarted { .. }))
    );
}

/// An admin's system_executor call needs approval, but the read-only agent's sandbox refuses it
/// anyway: it is denied at once, without bothering an approver.
#[tokio::test]
async fn call_needing_approval_that_breaks_the_sandbox_is_refused_without_asking() {
    let h = harness_with_tools(config_with_research_tools(&["system_executor"])).await;
    h.model.answer(
        "research",
        vec![
            tool_call("system_executor", json!({"command": "id"})),
            valid("research"),
        ],
    );
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    let events = h.events(task).await;
    assert!(events.iter().any(|e| matches!(e, JournalEvent::ActionDecided { outcome, .. } if outcome == "require_approval")), "{events:#?}");
    assert!(events.iter().any(
        |e| matches!(e, JournalEvent::ActionDecided { stage, outcome, .. } if stage == "sandbox" && outcome == "deny")
    ));
    assert!(events.iter().any(
        |e| matches!(e, JournalEvent::ToolFailed { error, .. } if error.code == "AMAS-GOV-0004")
    ));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, JournalEvent::ApprovalRequested { .. })),
        "no approver is asked about a call that would be refused anyway"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, JournalEvent::ToolStarted { .. }))
    );
}

/// With a quota of 2 tool calls per task, exactly 2 run and the third is refused.
#[tokio::test]
async fn tool_call_quota_is_hit_exactly_at_its_limit() {
    let (completed, refused) = three_calls_under(|q| q.tool_calls_per_task = 2).await;
    assert_eq!((completed, refused), (2, 1));
}

/// A non-idempotent tool whose start was journaled but whose result was not (a crash in
/// between) is not run again: the step fails with a clear reason.
#[tokio::test]
async fn uncertain_side_effect_is_not_rerun_after_a_restart() {
    let h = harness_with_tools(config_with_research_tools(&["http_fetch"])).await;
    let task = amas_types::TaskId::new();
    let call = amas_types::RequestedTool {
        id: "call_1".into(),
        name: "http_fetch".into(),
        arguments: json!({"url": "https://example.com/orders", "method": "POST"}),
    };
    let mut journal = common::research_started();
    journal.extend([
        JournalEvent::ModelResponded {
            step: "research".into(),
            attempt: 1,
            provider: "fake".into(),
            model: "fake-1".into(),
            content: String::new(),
            tool_calls: vec![call],
            usage: amas_types::Usage::default(),
            latency_ms: 1,
        },
        JournalEvent::ToolStarted {
            step: "research".into(),
            call_id: "call_1".into(),
            tool: "http_fetch".into(),
            idempotent: false,
        },
    ]);
    h.journal.append(task, 0, &journal).await.unwrap();
    h.runtime.scheduler().start().await;
    h.runtime.scheduler().recover().await.unwrap();
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Failed);
    assert_eq!(
        state.steps["research"].error.as_ref().unwrap().code,
        "AMAS-STEP-0007"
    );
    assert!(
        h.model.requests.lock().unwrap().is_empty(),
        "the model was not asked again"
    );
    let events = h.events(task).await;
    let starts = events
        .iter()
        .filter(|e| matches!(e, JournalEvent::ToolStarted { .. }))
        .count();
    assert_eq!(starts, 1, "the call was not started again");
}

/// Task submission is authorized by Rego: `security_audit` is admin-only.
#[tokio::test]
async fn submission_is_authorized_by_policy() {
    let h = harness_with_tools(common::config()).await;
    let submitter = common::submitter();
    let err = h
        .runtime
        .admission()
        .submit(common::spec("security_audit"), submitter.clone(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AMAS-GOV-0001");
    assert!(err.to_string().contains("only an admin"), "{err}");
    assert!(
        h.journal.unfinished().await.unwrap().is_empty(),
        "nothing journaled"
    );
    h.runtime
        .admission()
        .submit(common::spec("research_report"), submitter, None)
        .await
        .expect("a submitter may submit research_report");
    h.submit("security_audit").await;
}

/// Runs research with three identical calculator calls under `quotas` and returns how many
/// completed and how many were refused by a quota.
async fn three_calls_under(edit: impl FnOnce(&mut amas_config::QuotaConfig)) -> (usize, usize) {
    let mut config = config_with_research_tools(&["calculator"]);
    edit(&mut config.agents.get_mut("research").unwrap().quotas);
    let h = harness_with_tools(config).await;
    let call = tool_call("calculator", json!({"expression": "2+2"}));
    h.model.answer(
        "research",
        vec![call.clone(), call.clone(), call, valid("research")],
    );
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    let events = h.events(task).await;
    let completed = events
        .iter()
        .filter(|e| matches!(e, JournalEvent::ToolCompleted { .. }))
        .count();
    let refused = events
        .iter()
        .filter(|e| matches!(e, JournalEvent::ToolFailed { error, .. } if error.code == "AMAS-GOV-0005"))
        .count();
    (completed, refused)
}

/// Parameter bytes: a budget of exactly two calls' parameters lets two run, refuses the third.
#[tokio::test]
async fn parameter_bytes_quota_is_hit_exactly_at_its_limit() {
    let one = json!({"expression": "2+2"}).to_string().len() as u64;
    let (completed, refused) = three_calls_under(|q| q.bytes_in_per_task = 2 * one).await;
    assert_eq!((completed, refused), (2, 1));
    let (completed, refused) = three_calls_under(|q| q.bytes_in_per_task = 2 * one - 1).await;
    assert_eq!((completed, refused), (1, 2), "one byte less: only one fits");
}

/// Wall time: once the task has run longer than the quota, tool calls are refused.
#[tokio::test]
async fn wall_time_quota_refuses_calls_after_the_deadline() {
    let (completed, refused) =
        three_calls_under(|q| q.wall_time_per_task = std::time::Duration::from_nanos(1)).await;
    assert_eq!((completed, refused), (0, 3));
    let (completed, refused) =
        three_calls_under(|q| q.wall_time_per_task = std::time::Duration::from_secs(3600)).await;
    assert_eq!((completed, refused), (3, 0));
}

/// Tokens: every fake model call uses 15 tokens; with a quota of 30 per task the agent gets
/// exactly two calls, and the step fails before a third.
#[tokio::test]
async fn token_quota_stops_the_agent_exactly_at_its_limit() {
    let mut config = config_with_research_tools(&["calculator"]);
    config
        .agents
        .get_mut("research")
        .unwrap()
        .quotas
        .tokens_per_task = 30;
    let h = harness_with_tools(config).await;
    let call = tool_call("calculator", json!({"expression": "2+2"}));
    h.model
        .answer("research", vec![call.clone(), call, valid("research")]);
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Failed);
    assert_eq!(
        state.error.as_ref().unwrap().code,
        "AMAS-GOV-0005",
        "{state:#?}"
    );
    assert_eq!(
        h.model.requests_for("research").len(),
        2,
        "no third model call"
    );
}

/// Model calls are authorized per provider with the prompt's classification: a provider not
/// trusted with restricted data never sees a card number; policy lets it have the redacted
/// prompt (obligation `redact`), and the decision is journaled with both classifications.
#[tokio::test]
async fn restricted_prompt_reaches_an_untrusted_provider_only_redacted() {
    let mut config = common::config();
    config
        .provider_trust
        .insert("fake".into(), vec!["public".into(), "internal".into()]);
    let h = harness_with_tools(config).await;
    h.model.answer("research", vec![valid("research")]);
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let mut spec = common::spec("research_report");
    spec.description = "Refund the card 4111 1111 1111 1111 of the customer".into();
    let task = h
        .runtime
        .admission()
        .submit(spec, amas_types::Principal::local_operator(), None)
        .await
        .unwrap()
        .task_id;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    let sent = format!("{:?}", h.model.requests_for("research"));
    assert!(!sent.contains("4111 1111 1111 1111"), "{sent}");
    assert!(sent.contains("**** **** **** 1111"), "{sent}");
    let decided = h.events(task).await;
    assert!(
        decided.iter().any(|e| matches!(e,
        JournalEvent::ActionDecided { action, outcome, obligations, data: Some(d), .. }
            if action == "model_call" && outcome == "allow" && obligations == &["redact"]
                && d.classification == "restricted")),
        "{decided:#?}"
    );

    // The same provider takes an ordinary prompt, and the allow is journaled with the answer.
    let ordinary = h.submit("research_report").await;
    assert_status(&h.wait(ordinary).await, TaskStatus::Succeeded);
    let allowed = h.events(ordinary).await;
    assert!(allowed.iter().any(|e| matches!(e,
        JournalEvent::ActionDecided { action, outcome, .. } if action == "model_call" && outcome == "allow")));
}
