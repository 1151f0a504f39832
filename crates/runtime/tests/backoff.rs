//! Parked retry backoffs (issue 14): a step whose every provider asks to be called again later
//! (429 with a `Retry-After` longer than the provider sleeps in the call) parks its task until
//! then instead of failing or holding its slot, asks the model again when it runs again, and
//! gives up with the provider error once waiting would take it past the agent's timeout.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use amas_config::{BreakerConfig, OpenAiConfig};
use amas_providers::ModelProvider;
use amas_providers::openai::OpenAiProvider;
use amas_test_util::{Behaviour, MockOpenAi};
use amas_types::{JournalEvent, TaskId, TaskStatus};
use common::{FakeModel, Governance, Harness, assert_status, harness_governed, valid};

const MODEL: &str = "gpt-remote";

/// A provider that sleeps in the call for a `Retry-After` of at most 1 s, and retries twice.
fn remote(base_url: &str) -> Arc<dyn ModelProvider> {
    Arc::new(
        OpenAiProvider::new(
            "remote",
            &OpenAiConfig {
                base_url: base_url.to_owned(),
                model: MODEL.to_owned(),
                api_key_env: None,
                timeout: Duration::from_secs(10),
                max_retries: 2,
                max_retry_after: Duration::from_secs(1),
                breaker: BreakerConfig {
                    failure_threshold: 100,
                    cool_down: Duration::from_secs(1),
                },
            },
        )
        .unwrap(),
    )
}

/// One execution slot; the research step runs on `remote`, with `timeout` as its limit.
async fn harness(mock: &MockOpenAi, timeout: Duration) -> Harness {
    let mut config = common::config();
    config.runtime.max_concurrent_tasks = 1;
    let research = config.agents.get_mut("research").unwrap();
    research.providers = vec!["remote".to_owned()];
    research.limits.timeout = timeout;
    config.provider_trust.insert(
        "remote".to_owned(),
        ["public", "internal", "confidential", "restricted"]
            .map(str::to_owned)
            .to_vec(),
    );
    let gov = Governance {
        extra_providers: vec![("remote".to_owned(), remote(&mock.base_url()))],
        ..Governance::default()
    };
    let h = harness_governed(
        config,
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        &gov,
    )
    .await;
    h.model.answer_downstream();
    h
}

async fn submit_with(h: &Harness, description: &str) -> TaskId {
    let mut spec = common::spec("research_report");
    spec.description = description.to_owned();
    h.runtime
        .admission()
        .submit(spec, amas_types::Principal::local_operator(), None)
        .await
        .unwrap()
        .task_id
}

/// Waits (bounded) until `task` journaled a deferred model call and no run holds a slot.
async fn parked(h: &Harness, task: TaskId) {
    for _ in 0..400 {
        let deferred = h
            .events(task)
            .await
            .iter()
            .any(|e| matches!(e, JournalEvent::ModelCallDeferred { .. }));
        if deferred && h.runtime.scheduler().running().await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("task {task} never parked on its deferred model call");
}

/// With one slot: the first task's model answers 429 `Retry-After: 2` (longer than the
/// provider sleeps in the call), so the task parks; the second runs to completion in the slot
/// meanwhile; then the first runs again, asks the model again (not before the wait is over),
/// and succeeds.
#[tokio::test]
async fn a_rate_limited_step_parks_its_task_and_frees_the_slot() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(MODEL, [Behaviour::retry_after(429, 2)]);
    mock.set_default(MODEL, Behaviour::reply(valid("research")));
    let h = harness(&mock, Duration::from_secs(60)).await;
    h.runtime.scheduler().start().await;

    let first = submit_with(&h, "first-task").await;
    parked(&h, first).await;
    let second = submit_with(&h, "second-task").await;
    assert_status(&h.wait(second).await, TaskStatus::Succeeded);
    let waiting = h.runtime.reader().state(first).await.unwrap().unwrap();
    assert!(
        !waiting.status.is_terminal(),
        "still parked after the other task finished in the one slot: {waiting:#?}"
    );

    assert_status(&h.wait(first).await, TaskStatus::Succeeded);
    let asked: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.body.to_string().contains("first-task"))
        .collect();
    assert_eq!(asked.len(), 2, "refused once, asked again once");
    let waited = asked[1]
        .received_at
        .duration_since(asked[0].received_at)
        .unwrap();
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}, before the Retry-After passed"
    );
    let second_at = mock
        .requests()
        .into_iter()
        .find(|r| r.body.to_string().contains("second-task"))
        .unwrap()
        .received_at;
    assert!(
        asked[0].received_at < second_at && second_at < asked[1].received_at,
        "the second task ran while the first was parked"
    );
    let events = h.events(first).await;
    let deferred: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            JournalEvent::ModelCallDeferred { attempt, error, .. } => Some((*attempt, error)),
            _ => None,
        })
        .collect();
    assert_eq!(deferred.len(), 1, "{events:#?}");
    assert_eq!(deferred[0].0, 1);
    assert_eq!(deferred[0].1.code, amas_types::codes::PROV_ALL_FAILED);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, JournalEvent::StepFailed { .. })),
        "{events:#?}"
    );
}

/// A provider that always answers 429 `Retry-After: 2` cannot park the task forever: with the
/// agent's timeout at 3 s, the first wait fits, the second would end past it, so the step fails
/// with the provider error instead of parking again.
#[tokio::test]
async fn a_provider_that_keeps_refusing_fails_the_step_after_the_agent_timeout() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::retry_after(429, 2));
    let h = harness(&mock, Duration::from_secs(3)).await;
    h.runtime.scheduler().start().await;

    let task = submit_with(&h, "refused-task").await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Failed);
    let error = state.error.expect("a failed task has its error");
    assert_eq!(error.code, amas_types::codes::PROV_ALL_FAILED);
    assert!(
        error.message.contains("past the agent's timeout"),
        "{}",
        error.message
    );
    let deferred = h
        .events(task)
        .await
        .iter()
        .filter(|e| matches!(e, JournalEvent::ModelCallDeferred { .. }))
        .count();
    assert_eq!(deferred, 1, "parked once, then gave up");
    assert_eq!(mock.request_count(MODEL), 2, "asked, then asked once more");
}
