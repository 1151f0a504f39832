//! Lineage and retention on a real SQLite journal: classifications flow from the task input
//! and from step outputs to every downstream step and to the result; a declared floor raises
//! them; a purge as of a later time tombstones expired payloads, keeps the graph, and is
//! idempotent; a dry run changes nothing.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use serde_json::json;

use amas_runtime::{RetentionRun, declared_floor};
use amas_types::{JournalEvent, NodeKind, Principal, TaskStatus};
use common::{assert_status, harness, spec, valid};

fn labels_of(state: &amas_types::TaskState, id: &str) -> (String, Vec<String>) {
    let node = state
        .lineage
        .get(id)
        .unwrap_or_else(|| panic!("no lineage node {id}: {:?}", state.lineage.keys()));
    (node.labels.classification.clone(), node.labels.tags.clone())
}

fn confidential_pii() -> (String, Vec<String>) {
    ("confidential".to_owned(), vec!["PII".to_owned()])
}

/// An email in the task input makes the input confidential+PII; every step that reads it
/// (directly or through an upstream output) and the result inherit that, though no step output
/// itself contains personal data.
#[tokio::test]
async fn an_email_in_the_input_flows_to_every_step_and_the_result() {
    let h = harness().await;
    for agent in ["research", "analysis", "synthesis"] {
        h.model.answer(agent, vec![valid(agent)]);
    }
    h.runtime.scheduler().start().await;
    let mut input = spec("research_report");
    input.description = "Ask jane.doe@example.com about memory safety".to_owned();
    let task = h
        .runtime
        .admission()
        .submit(input, Principal::local_operator(), None)
        .await
        .unwrap()
        .task_id;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);

    let input_node = &state.lineage["input"];
    assert_eq!(input_node.kind, NodeKind::Input);
    assert_eq!(input_node.findings.get("email"), Some(&1));
    assert_eq!(labels_of(&state, "input"), confidential_pii());
    for step in ["step:research", "step:analysis", "step:synthesis", "result"] {
        assert_eq!(labels_of(&state, step), confidential_pii(), "{step}");
    }
    let research = &state.lineage["step:research"];
    assert!(research.findings.is_empty(), "its own output is clean");
    assert_eq!(research.inputs, ["input"]);
    let synthesis = &state.lineage["step:synthesis"];
    assert_eq!(
        synthesis.inputs,
        ["input", "step:analysis", "step:research"]
    );
    assert_eq!(state.lineage["result"].inputs, ["step:synthesis"]);
    assert_eq!(
        state
            .classification
            .as_ref()
            .map(|c| c.classification.as_str()),
        Some("confidential")
    );
    // The lineage is journaled before the task's end, and never holds the value.
    let events = h.events(task).await;
    assert!(matches!(
        events.last(),
        Some(JournalEvent::TaskSucceeded { .. })
    ));
    let text = serde_json::to_string(&state.lineage).unwrap();
    assert!(!text.contains("jane.doe"), "{text}");
}

/// With a clean input, an email in the research step's own output makes it confidential+PII,
/// and the steps downstream of it and the result inherit that; the input stays below.
#[tokio::test]
async fn a_finding_in_a_step_output_flows_downstream_only() {
    let h = harness().await;
    h.model.answer(
        "research",
        vec![json!({"findings": ["contact: bob@example.org"], "summary": "Rust is memory safe."})],
    );
    for agent in ["analysis", "synthesis"] {
        h.model.answer(agent, vec![valid(agent)]);
    }
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    assert_ne!(labels_of(&state, "input").0, "confidential");
    assert_eq!(
        state.lineage["step:research"].findings.get("email"),
        Some(&1)
    );
    for node in ["step:research", "step:analysis", "step:synthesis", "result"] {
        assert_eq!(labels_of(&state, node), confidential_pii(), "{node}");
    }
    assert!(state.lineage["step:analysis"].findings.is_empty());
}

/// A declared floor raises the input and everything derived from it, tags included; an
/// unknown level or tag is refused naming the field.
#[tokio::test]
async fn a_declared_floor_raises_the_whole_lineage() {
    let h = harness().await;
    for agent in ["research", "analysis", "synthesis"] {
        h.model.answer(agent, vec![valid(agent)]);
    }
    h.runtime.scheduler().start().await;
    let floor = declared_floor("restricted", &["PHI".to_owned()]).unwrap();
    let task = h
        .runtime
        .admission()
        .submit_classified(
            spec("research_report"),
            Principal::local_operator(),
            None,
            Some(floor),
        )
        .await
        .unwrap()
        .task_id;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    let restricted_phi = ("restricted".to_owned(), vec!["PHI".to_owned()]);
    assert_eq!(labels_of(&state, "result"), restricted_phi);
    assert_eq!(
        state.lineage["input"]
            .declared
            .as_ref()
            .map(|d| d.classification.as_str()),
        Some("restricted")
    );
    let bad_level = declared_floor("secret", &[]).unwrap_err();
    assert_eq!(bad_level.field, "classification.level");
    let bad_tag = declared_floor("public", &["GDPR".to_owned()]).unwrap_err();
    assert_eq!(bad_tag.field, "classification.tags");
}

/// Default retention: confidential 90 days. As of 91 days after the task ended every payload
/// is tombstoned (the dry run before changes nothing), the lineage and status survive, and a
/// second run purges nothing. As of 30 days nothing is due.
#[tokio::test]
async fn expired_payloads_are_tombstoned_once_and_the_graph_survives() {
    let h = harness().await;
    for agent in ["research", "analysis", "synthesis"] {
        h.model.answer(agent, vec![valid(agent)]);
    }
    h.runtime.scheduler().start().await;
    let mut input = spec("research_report");
    input.description = "Ask jane.doe@example.com".to_owned();
    let task = h
        .runtime
        .admission()
        .submit(input, Principal::local_operator(), None)
        .await
        .unwrap()
        .task_id;
    let ended = h.wait(task).await;
    let before = h.events(task).await;

    let early = RetentionRun {
        now: ended.updated_at + chrono::Duration::days(30),
        dry_run: false,
    };
    assert_eq!(
        h.runtime
            .retention()
            .purge_expired(early)
            .await
            .unwrap()
            .payloads,
        0
    );

    let later = ended.updated_at + chrono::Duration::days(91);
    let dry = h
        .runtime
        .retention()
        .purge_expired(RetentionRun {
            now: later,
            dry_run: true,
        })
        .await
        .unwrap();
    assert!(
        dry.payloads >= 5,
        "input, 3 step starts, answers, outputs, result: {dry:?}"
    );
    assert_eq!(h.events(task).await, before, "a dry run changes nothing");

    let real = h
        .runtime
        .retention()
        .purge_expired(RetentionRun {
            now: later,
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(
        real.payloads, dry.payloads,
        "the run purges what the dry run listed"
    );
    let after = h.runtime.reader().state(task).await.unwrap().unwrap();
    let text = serde_json::to_string(&h.events(task).await).unwrap();
    assert!(!text.contains("jane.doe"), "no payload survives: {text}");
    assert!(!text.contains("Rust is safe and fast"), "{text}");
    assert!(text.contains("$tombstone"));
    assert_eq!(after.status, TaskStatus::Succeeded);
    assert_eq!(after.lineage, ended.lineage, "the lineage graph is kept");
    assert_eq!(after.classification, ended.classification);

    let again = h
        .runtime
        .retention()
        .purge_expired(RetentionRun {
            now: later,
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(again.payloads, 0, "a purge is idempotent");
}
