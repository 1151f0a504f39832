//! The orchestrator end to end on a real SQLite journal: DAG order and parallelism, contract
//! retries with feedback, failure after the limit, cancellation, and recovery from a journal that
//! stopped mid-step.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;

use amas_providers::Role;
use amas_types::{JournalEvent, Principal, StepStatus, TaskStatus};
use common::{FakeModel, assert_status, harness, harness_with, spec, valid};

/// research -> analysis -> synthesis run in dependency order, each seeing upstream outputs.
#[tokio::test]
async fn research_report_runs_steps_in_dependency_order() {
    let h = harness().await;
    for agent in ["research", "analysis", "synthesis"] {
        h.model.answer(agent, vec![valid(agent)]);
    }
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    assert_eq!(
        h.model.steps_in_call_order(),
        ["research", "analysis", "synthesis"]
    );
    assert_eq!(state.result, Some(valid("synthesis")));
    let analysis_input = &h.model.requests_for("analysis")[0].messages[1].content;
    assert!(
        analysis_input.contains("Rust has no GC"),
        "analysis must receive research's output: {analysis_input}"
    );
    assert_eq!(
        h.model.max_in_flight.load(Ordering::SeqCst),
        1,
        "a chain never overlaps"
    );
}

/// Independent steps (research_a, research_b) are in flight at the same time.
#[tokio::test]
async fn independent_steps_run_in_parallel() {
    let h = harness().await;
    for agent in ["research", "synthesis"] {
        h.model.answer(agent, vec![valid(agent)]);
    }
    *h.model.rendezvous.lock().unwrap() = Some(("research".to_owned(), 2));
    h.runtime.scheduler().start().await;
    let task = h.submit("comparative_analysis").await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    assert_eq!(h.model.max_in_flight.load(Ordering::SeqCst), 2);
    let order = h.model.steps_in_call_order();
    assert_eq!(order.last().map(String::as_str), Some("synthesis"));
}

/// A contract violation is fed back to the model, and the corrected answer is accepted.
#[tokio::test]
async fn contract_violation_is_retried_with_feedback_then_succeeds() {
    let h = harness().await;
    h.model.answer(
        "research",
        vec![
            json!({"findings": "not a list", "summary": "x"}),
            valid("research"),
        ],
    );
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    assert_eq!(state.steps["research"].attempts, 2);
    let second = &h.model.requests_for("research")[1];
    let feedback = second.messages.last().unwrap();
    assert_eq!(feedback.role, Role::User);
    assert!(
        feedback.content.contains("/findings"),
        "the validator's path reaches the model: {}",
        feedback.content
    );
    assert_eq!(
        second.messages[second.messages.len() - 2].role,
        Role::Assistant
    );
    let events = h.journal.read(task, 0).await.unwrap();
    assert!(
        events.iter().any(|r| matches!(
            &r.event,
            JournalEvent::ContractViolated { step, attempt: 1, contract, .. }
                if step == "research" && contract == "research.output"
        )),
        "violation journaled: {events:#?}"
    );
}

/// After max_attempts bad answers the step fails with a clear error and nothing downstream runs.
#[tokio::test]
async fn contract_violation_fails_the_step_after_the_limit() {
    let h = harness().await;
    h.model.answer("research", vec![json!({"summary": 42})]);
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Failed);
    let max = h.config.agents["research"].limits.max_attempts as usize;
    assert_eq!(h.model.requests_for("research").len(), max);
    assert!(h.model.requests_for("analysis").is_empty());
    let step = &state.steps["research"];
    assert_eq!(step.status, StepStatus::Failed);
    let error = step.error.as_ref().unwrap();
    assert_eq!(error.code, "AMAS-STEP-0002");
    assert!(
        error.message.contains("research.output"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("/findings") || error.message.contains("findings"),
        "{}",
        error.message
    );
    assert!(error.message.contains("/summary"), "{}", error.message);
    assert_eq!(state.error.as_ref().unwrap().code, "AMAS-STEP-0002");
}

/// A non-JSON answer is a contract violation too, not a crash.
#[tokio::test]
async fn non_json_answer_is_a_violation() {
    let h = harness().await;
    h.model.answer(
        "research",
        vec![json!("I think the answer is 42"), valid("research")],
    );
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let state = h.wait(h.submit("research_report").await).await;
    assert_status(&state, TaskStatus::Succeeded);
    assert_eq!(state.steps["research"].attempts, 2);
}

/// A journal that ends right after a model answer (a crash before the verdict) resumes without
/// asking the model again for that step.
#[tokio::test]
async fn recovery_reuses_journaled_answers() {
    let model = Arc::new(FakeModel::default());
    let h = harness_with(
        common::config(),
        tempfile::tempdir().unwrap(),
        Arc::clone(&model),
    )
    .await;
    let task = amas_types::TaskId::new();
    let mut events = common::research_started();
    events.extend([JournalEvent::ModelResponded {
        step: "research".into(),
        attempt: 1,
        provider: "fake".into(),
        model: "fake-1".into(),
        content: valid("research").to_string(),
        tool_calls: Vec::new(),
        usage: amas_types::Usage {
            input_tokens: 1,
            output_tokens: 1,
        },
        latency_ms: 1,
    }]);
    h.journal.append(task, 0, &events).await.unwrap();
    model.answer("analysis", vec![valid("analysis")]);
    model.answer("synthesis", vec![valid("synthesis")]);
    h.runtime.scheduler().start().await;
    assert_eq!(h.runtime.scheduler().recover().await.unwrap(), 1);
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    assert!(
        model.requests_for("research").is_empty(),
        "research was answered before the crash"
    );
    assert_eq!(model.steps_in_call_order(), ["analysis", "synthesis"]);
}

/// Cancelling a queued task ends it; the dispatcher then skips it.
#[tokio::test]
async fn cancel_before_start_ends_the_task() {
    let h = harness().await;
    let task = h.submit("research_report").await;
    let state = h
        .runtime
        .scheduler()
        .cancel(task, "not needed".into())
        .await
        .unwrap();
    assert_status(&state, TaskStatus::Cancelled);
    h.runtime.scheduler().start().await;
    tokio::task::yield_now().await;
    let state = h.runtime.reader().state(task).await.unwrap().unwrap();
    assert_status(&state, TaskStatus::Cancelled);
    assert!(h.model.requests.lock().unwrap().is_empty());
}

/// An unknown task type is refused before anything is journaled.
#[tokio::test]
async fn unknown_task_type_is_refused() {
    let h = harness().await;
    let err = h
        .runtime
        .admission()
        .submit(spec("nope"), Principal::local_operator(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AMAS-TASK-0001");
    assert!(h.journal.unfinished().await.unwrap().is_empty());
}

/// A full queue refuses with backpressure instead of growing without bound.
#[tokio::test]
async fn full_queue_refuses_submissions() {
    let mut config = common::config();
    config.runtime.queue_capacity = 2;
    let h = harness_with(
        config,
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
    )
    .await;
    // Not started: nothing drains the queue.
    h.submit("research_report").await;
    h.submit("research_report").await;
    let err = h
        .runtime
        .admission()
        .submit(spec("research_report"), Principal::local_operator(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AMAS-TASK-0003");
    assert_eq!(
        h.journal.unfinished().await.unwrap().len(),
        2,
        "the refused task left no trace"
    );
}

/// Governance is not optional: the plain harness is the production composition, so a task's
/// every model call is decided by the embedded policy bundle (allowed here because the
/// configuration trusts the fake model with every level, `provider_trust`), journaled before
/// the answer, and audited with the submission in the store's audit log.
#[tokio::test]
async fn every_model_call_is_decided_by_policy_and_audited() {
    let h = harness().await;
    for agent in ["research", "analysis", "synthesis"] {
        h.model.answer(agent, vec![valid(agent)]);
    }
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    let events = h.events(task).await;
    let mut decided = 0;
    for (i, event) in events.iter().enumerate() {
        if let JournalEvent::ModelResponded { step, .. } = event {
            let before = events[..i].iter().rev().find_map(|e| match e {
                JournalEvent::ActionDecided {
                    step: s,
                    action,
                    outcome,
                    ..
                } if s == step && action == "model_call" => Some(outcome.clone()),
                _ => None,
            });
            assert_eq!(before.as_deref(), Some("allow"), "{step}: {events:#?}");
            decided += 1;
        }
    }
    assert_eq!(decided, 3);
    h.runtime.access().flush_audit().await.unwrap();
    let records = h
        .runtime
        .reader()
        .audit_records(
            &Principal::local_operator(),
            amas_store::audit::AuditQuery {
                task_id: Some(task),
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let count = |action: &str| records.iter().filter(|r| r.record.action == action).count();
    assert_eq!(count("task_submit"), 1, "{records:#?}");
    assert_eq!(count("model_call"), 3, "{records:#?}");
    assert_eq!(count("model_response"), 3, "{records:#?}");
}

/// The runtime refuses a writer that does not commit its journal (an audit-only writer): the
/// journal and the audit records of one decision must commit together.
#[tokio::test]
async fn a_writer_that_does_not_commit_the_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(common::config());
    let store = Arc::new(amas_store::SqliteStore::open(dir.path()).await.unwrap());
    let audit_key = amas_governance::AuditKey::load_or_create(dir.path()).unwrap();
    let metrics = amas_telemetry::Metrics::new();
    let protector = amas_dataprotect::DataProtector::shared_embedded().unwrap();
    let pipeline = amas_runtime::compose::pipeline(
        &config,
        amas_runtime::compose::Governance {
            tools: amas_tools::ToolRegistry::load(None).unwrap(),
            protector: Arc::clone(&protector),
            policy: Arc::new(amas_policy::RegoPolicyEngine::embedded().unwrap()),
            environment: "development".to_owned(),
            redact_secret: "test".to_owned(),
            content_safety: None,
        },
        metrics.clone(),
    )
    .unwrap();
    let audit_only = amas_store::AuditWriter::start(
        Arc::clone(&store) as Arc<dyn amas_store::AuditLog>,
        Arc::new(audit_key.signer()),
        amas_store::audit::AuditWriterConfig::default(),
    );
    let providers = amas_providers::ProviderSet::new(metrics.clone()).with_provider(
        "fake",
        Arc::new(FakeModel::default()),
        amas_config::BreakerConfig {
            failure_threshold: 5,
            cool_down: std::time::Duration::from_secs(1),
        },
    );
    let refused = amas_runtime::Runtime::new(amas_runtime::RuntimeParts {
        config,
        store,
        providers: &providers,
        metrics,
        pipeline: Arc::new(pipeline),
        writer: Arc::new(audit_only),
        workspaces: dir.path().join("workspaces"),
        protector,
    });
    match refused {
        Err(amas_runtime::RuntimeError::Setup { reason, .. }) => {
            assert!(reason.contains("start_group"), "{reason}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a writer without the journal was accepted"),
    }
}

/// A task's live stream carries only that task's records, every one after the subscription
/// in seq order without gaps, up to its end; another task running beside it never shows up.
#[tokio::test]
async fn a_task_subscription_gets_only_its_task_in_order_up_to_its_end() {
    let h = harness().await;
    for agent in ["research", "analysis", "synthesis"] {
        h.model.answer(agent, vec![valid(agent), valid(agent)]);
    }
    // Queued before the runtime starts: nothing of their runs is published yet.
    let mine = h.submit("research_report").await;
    let other = h.submit("research_report").await;
    let mut live = h.runtime.reader().subscribe_task(mine);
    let submitted = h.journal.read(mine, 0).await.unwrap().len() as u64;
    h.runtime.scheduler().start().await;
    let mut seqs = Vec::new();
    loop {
        let record = tokio::time::timeout(std::time::Duration::from_secs(10), live.recv())
            .await
            .expect("the task's records arrive")
            .expect("no lag, not closed before the end");
        assert_eq!(record.task_id, mine, "only this task's records");
        seqs.push(record.seq);
        if record
            .event
            .status_effect()
            .is_some_and(TaskStatus::is_terminal)
        {
            assert!(matches!(record.event, JournalEvent::TaskSucceeded { .. }));
            break;
        }
    }
    let expected: Vec<u64> = (submitted + 1..=submitted + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "consecutive seqs after the subscription");
    assert_eq!(
        h.journal.read(mine, 0).await.unwrap().last().map(|r| r.seq),
        seqs.last().copied(),
        "the stream ends at the journal's last record"
    );
    assert_status(&h.wait(other).await, TaskStatus::Succeeded);
}
