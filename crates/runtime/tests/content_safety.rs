//! Content safety on model outputs, through the real runtime with a scripted model: an answer
//! in a `block` category (hate) fails its step with AMAS-SAFE-0002 naming categories only, an
//! answer in a `flag` category (violence) goes on with the verdict journaled, ordinary words
//! that contain lexicon terms pass untouched, and replay asks each journaled verdict again.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;

use serde_json::json;

use amas_policy::PolicyEngine;
use amas_types::{JournalEvent, TaskId, TaskStatus};
use common::{FakeModel, Governance, Harness, assert_status, harness_governed, valid};

async fn harness() -> Harness {
    harness_governed(
        common::config(),
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        &Governance::default(),
    )
    .await
}

/// Runs one research_report task whose research agent answers `research`.
async fn run(h: &Harness, research: serde_json::Value) -> TaskId {
    h.model.answer("research", vec![research]);
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    h.wait(task).await;
    task
}

/// The content-safety verdicts journaled for model outputs: (outcome, reasons, code).
fn verdicts(events: &[JournalEvent]) -> Vec<(String, Vec<String>, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            JournalEvent::ActionDecided {
                action,
                stage,
                outcome,
                reasons,
                code,
                ..
            } if action == "model_output" => {
                assert_eq!(stage, "content_safety");
                Some((outcome.clone(), reasons.clone(), code.clone()))
            }
            _ => None,
        })
        .collect()
}

async fn assert_replays_identically(h: &Harness, task: TaskId) {
    let policy: Arc<dyn PolicyEngine> =
        Arc::new(amas_policy::RegoPolicyEngine::embedded().unwrap());
    let registry =
        amas_tools::ToolRegistry::from_config(amas_tools::ToolsConfig::load(None, &[]).unwrap());
    let replayer = common::replayer(&h.config, policy, registry, "development", None);
    let records = h.journal.read(task, 0).await.unwrap();
    let report = replayer.replay(&records).unwrap();
    assert!(report.identical, "{report:#?}");
}

/// `hate` is `block` in the embedded config: the step fails with the stable code, the journal
/// and the error name the category but never the words, the model is not asked again, and the
/// research output is never recorded as the step's result.
#[tokio::test]
async fn a_hateful_model_output_fails_the_step() {
    let h = harness().await;
    let answer = json!({"findings": ["Heil Hitler, they said"], "summary": "A master race."});
    let task = run(&h, answer).await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Failed);
    let events = h.events(task).await;
    let failure = events
        .iter()
        .find_map(|e| match e {
            JournalEvent::StepFailed { step, error } if step == "research" => Some(error.clone()),
            _ => None,
        })
        .expect("the research step failed");
    assert_eq!(failure.code, "AMAS-SAFE-0002");
    assert!(failure.message.contains("hate"), "{failure:?}");
    for word in ["Hitler", "hitler", "master race"] {
        assert!(!failure.message.contains(word), "{failure:?}");
    }
    assert_eq!(
        verdicts(&events),
        vec![(
            "deny".to_owned(),
            vec!["hate".to_owned()],
            Some("AMAS-SAFE-0002".to_owned())
        )]
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, JournalEvent::StepSucceeded { step, .. } if step == "research")),
        "a blocked answer is never the step's output"
    );
    assert_eq!(h.model.requests_for("research").len(), 1, "not asked again");
    assert!(h.model.requests_for("analysis").is_empty());
    assert_replays_identically(&h, task).await;
}

/// `violence` is `flag`: the task goes on and succeeds, with the verdict journaled next to the
/// answer (and replay agreeing with it).
#[tokio::test]
async fn a_violent_model_output_is_flagged_and_used() {
    let h = harness().await;
    let answer = json!({"findings": ["The letter said: I will kill you"], "summary": "A threat."});
    let task = run(&h, answer.clone()).await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    let events = h.events(task).await;
    assert_eq!(
        verdicts(&events),
        vec![("flag".to_owned(), vec!["violence".to_owned()], None)]
    );
    let output = events.iter().find_map(|e| match e {
        JournalEvent::StepSucceeded { step, output } if step == "research" => Some(output.clone()),
        _ => None,
    });
    assert_eq!(output, Some(answer));
    assert_replays_identically(&h, task).await;
}

/// Ordinary words that contain lexicon terms are not unsafe: no verdict is journaled and the
/// task succeeds.
#[tokio::test]
async fn ordinary_words_in_model_outputs_pass() {
    let h = harness().await;
    let answer = json!({
        "findings": ["The Scunthorpe team will assess the skill of each therapist"],
        "summary": "A cocktail of classic analysis from Sussex."
    });
    let task = run(&h, answer).await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    assert_eq!(verdicts(&h.events(task).await), vec![]);
}

/// When the operator relaxes `hate` to `allow`, replay reports the journaled block as a
/// decision that would now differ: verdicts are asked again with the current actions.
#[tokio::test]
async fn replay_applies_the_current_actions_to_journaled_categories() {
    let h = harness().await;
    let task = run(
        &h,
        json!({"findings": ["subhuman"], "summary": valid("research")["summary"]}),
    )
    .await;
    let relaxed = amas_dataprotect::EMBEDDED_CONFIG.replace("hate: block", "hate: allow");
    let config = amas_dataprotect::DataProtectConfig::parse(&relaxed, "test").unwrap();
    let policy: Arc<dyn PolicyEngine> =
        Arc::new(amas_policy::RegoPolicyEngine::embedded().unwrap());
    let registry =
        amas_tools::ToolRegistry::from_config(amas_tools::ToolsConfig::load(None, &[]).unwrap());
    let replayer = common::replayer(
        &h.config,
        policy,
        registry,
        "development",
        Some(amas_dataprotect::ContentSafety::from_config(&config)),
    );
    let records = h.journal.read(task, 0).await.unwrap();
    let report = replayer.replay(&records).unwrap();
    assert!(!report.identical, "{report:#?}");
    let diff = &report.differences[0];
    assert_eq!(diff.action, "model_output");
    assert_eq!(diff.before.outcome, "deny");
    assert_eq!(diff.after.outcome, "allow");
}

/// A moderation service that never answers (the outside world, down).
struct Down;

#[async_trait::async_trait]
impl amas_dataprotect::ContentClassifier for Down {
    async fn classify(
        &self,
        _text: &str,
    ) -> Result<Vec<amas_dataprotect::safety::SafetyHit>, amas_dataprotect::safety::ClassifierError>
    {
        Err(amas_dataprotect::safety::ClassifierError::Unavailable(
            "connection refused".to_owned(),
        ))
    }
}

/// With the configured classifier down, `on_unavailable: lexicon` lets ordinary content through
/// (each answer's verdict journaled as an allow with `classifier_unavailable`, the task
/// succeeding), while `on_unavailable: block` refuses even the submission, saying why without
/// any category.
#[tokio::test]
async fn an_unavailable_classifier_falls_back_or_blocks_as_configured() {
    let with = |choice| {
        let config = amas_dataprotect::DataProtectConfig::embedded().unwrap();
        amas_dataprotect::ContentSafety::from_config(&config)
            .with_classifier("moderation", Arc::new(Down))
            .on_unavailable(choice)
    };
    let h = common::harness_with_safety(with(amas_dataprotect::OnUnavailable::Lexicon)).await;
    let ordinary = json!({"findings": ["The quarterly figures are in"], "summary": "Fine."});
    let task = run(&h, ordinary).await;
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    let events = h.events(task).await;
    let journaled = verdicts(&events);
    let answers = events
        .iter()
        .filter(|e| matches!(e, JournalEvent::ModelResponded { .. }))
        .count();
    assert_eq!(journaled.len(), answers, "one per answer: {journaled:?}");
    for (outcome, reasons, code) in &journaled {
        assert_eq!(outcome, "allow");
        assert_eq!(reasons, &["classifier_unavailable"]);
        assert_eq!(code, &None);
    }
    assert_replays_identically(&h, task).await;

    let h = common::harness_with_safety(with(amas_dataprotect::OnUnavailable::Block)).await;
    let refused = h
        .runtime
        .admission()
        .submit(
            common::spec("research_report"),
            amas_types::Principal::local_operator(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "AMAS-SAFE-0001");
    assert!(refused.to_string().contains("unavailable"), "{refused}");
}

/// A moderation service that answers (nothing found) the first `n` times, then is down.
struct DownAfter(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl amas_dataprotect::ContentClassifier for DownAfter {
    async fn classify(
        &self,
        text: &str,
    ) -> Result<Vec<amas_dataprotect::safety::SafetyHit>, amas_dataprotect::safety::ClassifierError>
    {
        let left = self.0.load(std::sync::atomic::Ordering::SeqCst);
        if left == 0 {
            return Down.classify(text).await;
        }
        self.0.store(left - 1, std::sync::atomic::Ordering::SeqCst);
        Ok(Vec::new())
    }
}

/// Under `on_unavailable: block`, a classifier that goes down after the submission was screened
/// fails the step at the model's answer (AMAS-SAFE-0002, no category, the outage named), and
/// replay, asking the journaled verdict again under the same configuration, agrees.
#[tokio::test]
async fn an_outage_after_submission_blocks_the_model_output() {
    let config = amas_dataprotect::DataProtectConfig::embedded().unwrap();
    let safety = amas_dataprotect::ContentSafety::from_config(&config)
        .with_classifier(
            "moderation",
            Arc::new(DownAfter(std::sync::atomic::AtomicUsize::new(1))),
        )
        .on_unavailable(amas_dataprotect::OnUnavailable::Block);
    let h = common::harness_with_safety(safety).await;
    let task = run(&h, json!({"findings": ["fine"], "summary": "Fine."})).await;
    assert_status(&h.wait(task).await, TaskStatus::Failed);
    let events = h.events(task).await;
    assert_eq!(
        verdicts(&events),
        vec![(
            "deny".to_owned(),
            vec!["classifier_unavailable".to_owned()],
            Some("AMAS-SAFE-0002".to_owned())
        )]
    );
    let failure = events
        .iter()
        .find_map(|e| match e {
            JournalEvent::StepFailed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .unwrap();
    assert!(failure.message.contains("unavailable"), "{failure:?}");
    let policy: Arc<dyn PolicyEngine> =
        Arc::new(amas_policy::RegoPolicyEngine::embedded().unwrap());
    let registry =
        amas_tools::ToolRegistry::from_config(amas_tools::ToolsConfig::load(None, &[]).unwrap());
    let strict = amas_dataprotect::ContentSafety::from_config(&config)
        .with_classifier("moderation", Arc::new(Down))
        .on_unavailable(amas_dataprotect::OnUnavailable::Block);
    let replayer = common::replayer(&h.config, policy, registry, "development", Some(strict));
    let report = replayer
        .replay(&h.journal.read(task, 0).await.unwrap())
        .unwrap();
    assert!(report.identical, "{report:#?}");
}
