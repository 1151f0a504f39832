//! Replay of real finished tasks (fake model, real gate, embedded Rego bundle): under the same
//! policies every recorded decision comes out the same; under a bundle that retires a tool the
//! task used, exactly that decision is listed, with what it was and what it would be now; only
//! auditors of the task's tenant may replay through the runtime.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use amas_policy::{PolicyEngine, RegoPolicyEngine};
use amas_runtime::{Replayer, RuntimeError};
use amas_types::Verdict;
use amas_types::{JournalEvent, Principal, TaskId, TaskStatus, TenantId};
use common::{
    FakeModel, Governance, Harness, assert_status, harness_governed, harness_with_tools, valid,
};

fn tool_call(name: &str, arguments: Value) -> Value {
    json!({"__tool_calls": [{"name": name, "arguments": arguments}]})
}

/// A finished research report whose research step used the calculator once.
async fn finished_task_with_a_tool_call() -> (Harness, TaskId) {
    let mut config = common::config();
    config.agents.get_mut("research").unwrap().allowed_tools = vec!["calculator".to_owned()];
    let h = harness_with_tools(config).await;
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
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    (h, task)
}

fn replayer(h: &Harness, policy: Arc<dyn PolicyEngine>) -> Replayer {
    let tools = amas_tools::ToolsConfig::load(None, &[]).unwrap();
    common::replayer(
        &h.config,
        policy,
        amas_tools::ToolRegistry::from_config(tools),
        "development",
        None,
    )
}

/// The embedded bundle, copied to `dir`, with `extra` appended to `file`.
fn bundle_with(dir: &Path, file: &str, extra: &str) -> Arc<dyn PolicyEngine> {
    let embedded = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for entry in std::fs::read_dir(&embedded).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let target = dir.join(file);
    let mut text = std::fs::read_to_string(&target).unwrap();
    text.push_str(extra);
    std::fs::write(&target, text).unwrap();
    Arc::new(RegoPolicyEngine::from_dir(dir).unwrap())
}

/// Under the policies the task ran with, every decision comes out the same, and the count
/// covers the submission, the tool-call evaluation and each model-call decision.
#[tokio::test]
async fn replay_under_the_same_policies_is_identical() {
    let (h, task) = finished_task_with_a_tool_call().await;
    let events = h.events(task).await;
    let model_decisions = events
        .iter()
        .filter(
            |e| matches!(e, JournalEvent::ActionDecided { action, .. } if action == "model_call"),
        )
        .count();
    assert!(model_decisions >= 4, "one per model turn: {events:#?}");

    let report = h
        .runtime
        .reader()
        .replay(&Principal::local_operator(), task)
        .await
        .unwrap();
    assert!(report.identical, "{report:#?}");
    assert!(report.differences.is_empty());
    assert_eq!(report.task_id, task);
    assert_eq!(report.task_status, TaskStatus::Succeeded);
    assert_eq!(report.decisions, 1 + 1 + model_decisions, "{report:#?}");

    let embedded: Arc<dyn PolicyEngine> = Arc::new(RegoPolicyEngine::embedded().unwrap());
    let records = h.journal.read(task, 0).await.unwrap();
    let again = replayer(&h, embedded).replay(&records).unwrap();
    assert!(again.identical, "{again:#?}");
}

/// A bundle that retires the calculator: the one tool-call decision is listed as allowed then,
/// denied by policy now, with the new rule's reason; nothing else differs.
#[tokio::test]
async fn a_policy_that_denies_a_used_tool_lists_that_decision() {
    let (h, task) = finished_task_with_a_tool_call().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = bundle_with(
        dir.path(),
        "tool.rego",
        r#"
deny contains {"rule": "tool.calculator_retired", "reason": "the calculator is retired"} if {
	input.tool.name == "calculator"
}
"#,
    );
    let records = h.journal.read(task, 0).await.unwrap();
    let report = replayer(&h, policy).replay(&records).unwrap();
    assert!(!report.identical);
    assert_eq!(report.differences.len(), 1, "{report:#?}");
    let diff = &report.differences[0];
    assert_eq!(diff.action, "tool_call");
    assert_eq!(diff.resource, "calculator");
    assert_eq!(diff.step.as_deref(), Some("research"));
    assert_eq!(
        (diff.before.stage.as_str(), diff.before.outcome.as_str()),
        ("quota", "allow")
    );
    assert_eq!(
        (diff.after.stage.as_str(), diff.after.outcome.as_str()),
        ("policy", "deny")
    );
    assert!(
        diff.after
            .reasons
            .iter()
            .any(|r| r.contains("the calculator is retired")),
        "{diff:#?}"
    );
    let decided = records
        .iter()
        .find(|r| matches!(&r.event, JournalEvent::ActionDecided { action, .. } if action == "tool_call"))
        .unwrap();
    assert_eq!(diff.seq, decided.seq, "points at the recorded decision");
}

/// A bundle that keeps internal data from the fake provider: every model-call decision differs,
/// evaluated on the classification the journal recorded.
#[tokio::test]
async fn a_policy_that_distrusts_the_provider_lists_every_model_call() {
    let (h, task) = finished_task_with_a_tool_call().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = bundle_with(
        dir.path(),
        "model.rego",
        r#"
deny contains {"rule": "model.fake_distrusted", "reason": "the fake provider is distrusted"} if {
	input.provider.name == "fake"
}
"#,
    );
    let records = h.journal.read(task, 0).await.unwrap();
    let report = replayer(&h, policy).replay(&records).unwrap();
    let model: Vec<_> = report
        .differences
        .iter()
        .filter(|d| d.action == "model_call")
        .collect();
    assert!(model.len() >= 4, "{report:#?}");
    assert_eq!(model.len(), report.differences.len(), "{report:#?}");
    for d in model {
        assert_eq!(d.resource, "fake");
        assert_eq!(d.before.outcome, "allow");
        assert_eq!(
            (d.after.stage.as_str(), d.after.outcome.as_str()),
            ("model_policy", "deny")
        );
    }
}

/// Replaying reads audit data: a viewer is refused, another tenant's auditor does not see the
/// task at all, and an unknown task is not found.
#[tokio::test]
async fn only_auditors_of_the_tenant_replay() {
    let (h, task) = finished_task_with_a_tool_call().await;
    let someone = |roles: &[&str], tenant: &str| Principal {
        sub: "someone".into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        tenant: TenantId(tenant.into()),
        auth_method: "local_jwt".into(),
        issuer: "amas-local".into(),
    };
    let viewer = someone(&["viewer"], "default");
    assert!(matches!(
        h.runtime.reader().replay(&viewer, task).await,
        Err(RuntimeError::Forbidden { .. })
    ));
    let foreign = someone(&["auditor"], "globex");
    assert!(matches!(
        h.runtime.reader().replay(&foreign, task).await,
        Err(RuntimeError::NotFound(_))
    ));
    let auditor = someone(&["auditor"], "default");
    assert!(
        h.runtime
            .reader()
            .replay(&auditor, task)
            .await
            .unwrap()
            .identical
    );
    assert!(matches!(
        h.runtime.reader().replay(&auditor, TaskId::new()).await,
        Err(RuntimeError::NotFound(_))
    ));
}

/// A journal written before model-call decisions recorded the prompt's classification cannot
/// be asked again: replay says so instead of claiming it is identical (fail closed).
#[tokio::test]
async fn decisions_without_their_inputs_are_not_called_identical() {
    let (h, task) = finished_task_with_a_tool_call().await;
    let mut records = h.journal.read(task, 0).await.unwrap();
    for r in &mut records {
        if let JournalEvent::ActionDecided { data, .. } = &mut r.event {
            *data = None;
        }
    }
    let embedded: Arc<dyn PolicyEngine> = Arc::new(RegoPolicyEngine::embedded().unwrap());
    let report = replayer(&h, embedded).replay(&records).unwrap();
    assert!(!report.identical);
    assert!(report.differences.iter().all(|d| d.action == "model_call"
        && d.after.outcome == "unknown"
        && d.before.outcome == "allow"));
}

fn person(sub: &str, roles: &[&str]) -> Principal {
    Principal {
        sub: sub.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        tenant: TenantId("acme".into()),
        auth_method: "local_jwt".into(),
        issuer: "amas-local".into(),
    }
}

/// A production task whose high-risk analyzer call two approvers let through.
async fn dually_approved_task() -> (Harness, TaskId) {
    let mut config = common::config();
    config.agents.get_mut("research").unwrap().allowed_tools = vec!["code_analyzer".into()];
    let gov = Governance {
        environment: "production",
        high_risk: vec!["code_analyzer"],
        ..Governance::default()
    };
    let h = harness_governed(
        config,
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        &gov,
    )
    .await;
    h.model.answer(
        "research",
        vec![
            tool_call(
                "code_analyzer",
                json!({"code": "fn main() {}", "language": "rs"}),
            ),
            valid("research"),
        ],
    );
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h
        .submit_as("research_report", person("root", &["admin"]))
        .await;
    let approval = loop {
        let state = h.runtime.reader().state(task).await.unwrap().unwrap();
        if let Some(a) = state.approvals.values().next() {
            break a.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for approver in ["bob", "carol"] {
        h.runtime
            .approvals()
            .decide(
                &approval.id,
                person(approver, &["approver"]),
                Verdict::Approve,
                "ok".into(),
            )
            .await
            .unwrap();
    }
    assert_status(&h.wait(task).await, TaskStatus::Succeeded);
    (h, task)
}

/// Approvals replay too: the request for approval, both votes and the final decision come out
/// the same; with `approver` no longer an approver role, both votes would now be refused and the
/// call would still wait for approval.
#[tokio::test]
async fn approvals_replay_and_a_role_change_shows_in_votes_and_decision() {
    let (h, task) = dually_approved_task().await;
    let root = person("root", &["admin"]);
    let report = h.runtime.reader().replay(&root, task).await.unwrap();
    assert!(report.identical, "{report:#?}");
    let model_decisions = h
        .events(task)
        .await
        .iter()
        .filter(
            |e| matches!(e, JournalEvent::ActionDecided { action, .. } if action == "model_call"),
        )
        .count();
    assert_eq!(
        report.decisions,
        1 + 3 + 2 + model_decisions,
        "submission, three tool evaluations (the request, then after each vote), two votes, model calls: {report:#?}"
    );

    let mut config = (*h.config).clone();
    config.approvals.approver_roles = vec!["admin".into()];
    let mut tools = amas_tools::ToolsConfig::load(None, &[]).unwrap();
    for tool in &mut tools.tools {
        if tool.spec.name == "code_analyzer" {
            tool.spec.risk = amas_tools::Risk::High;
        }
    }
    let replayer = common::replayer(
        &Arc::new(config),
        Arc::new(RegoPolicyEngine::embedded().unwrap()),
        amas_tools::ToolRegistry::from_config(tools),
        "production",
        None,
    );
    let records = h.journal.read(task, 0).await.unwrap();
    let report = replayer.replay(&records).unwrap();
    let votes: Vec<_> = report
        .differences
        .iter()
        .filter(|d| d.action == "approval_vote")
        .map(|d| (d.resource.as_str(), d.after.outcome.as_str()))
        .collect();
    assert_eq!(votes, [("bob", "deny"), ("carol", "deny")], "{report:#?}");
    let tool: Vec<_> = report
        .differences
        .iter()
        .filter(|d| d.action == "tool_call")
        .collect();
    assert_eq!(
        tool.len(),
        1,
        "only the decision that counted the votes: {report:#?}"
    );
    assert_eq!(tool[0].before.outcome, "allow");
    assert_eq!(tool[0].after.outcome, "require_approval");
}
