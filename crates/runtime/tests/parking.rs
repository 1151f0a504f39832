//! Parking (issue 14): a task waiting for approval holds no execution slot. Its run ends at
//! the approval request; a vote for it (or the request's deadline) queues it again, and it
//! resumes from its journal, gets back to the approval and takes the vote.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use amas_types::{ApprovalStatus, JournalEvent, Principal, TaskId, TaskStatus, TenantId, Verdict};
use common::{FakeModel, Governance, Harness, assert_status, harness_governed, submitter, valid};

fn bob() -> Principal {
    Principal {
        sub: "bob".into(),
        roles: vec!["approver".into()],
        tenant: TenantId("acme".into()),
        auth_method: "local_jwt".into(),
        issuer: "amas-local".into(),
    }
}

fn analyze_call() -> Value {
    json!({"__tool_calls": [{"name": "code_analyzer", "arguments": {"code": "fn main() {}", "language": "rs"}}]})
}

/// One execution slot; research may use the analyzer, which needs approval.
async fn one_slot(timeout: Duration) -> Harness {
    let mut config = common::config();
    config.approvals.timeout = timeout;
    config.runtime.max_concurrent_tasks = 1;
    config.agents.get_mut("research").unwrap().allowed_tools = vec!["code_analyzer".into()];
    let gov = Governance {
        needs_approval: vec!["code_analyzer"],
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

/// Waits (bounded) until `task` waits for approval and no run holds a slot; its approval.
async fn parked(h: &Harness, task: TaskId) -> amas_types::Approval {
    for _ in 0..400 {
        let state = h.runtime.reader().state(task).await.unwrap().unwrap();
        assert!(!state.status.is_terminal(), "ended early: {state:#?}");
        let pending = state
            .approvals
            .values()
            .find(|a| a.status == ApprovalStatus::Pending);
        if let Some(approval) = pending
            && h.runtime.scheduler().running().await == 0
        {
            return approval.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("task {task} never parked on its approval");
}

/// With one slot, the first task waits for approval while the second runs to completion in
/// that slot; then the first is approved, resumes and completes, its journaled model call not
/// asked again. Without parking the second task would wait behind the first for the hour its
/// approval may take.
#[tokio::test]
async fn a_task_waiting_for_approval_holds_no_slot() {
    let h = one_slot(Duration::from_secs(3600)).await;
    // The first research call asks for the analyzer; every later one answers.
    h.model
        .answer("research", vec![analyze_call(), valid("research")]);
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;

    let first = h.submit_as("research_report", submitter()).await;
    let approval = parked(&h, first).await;
    let second = h.submit_as("research_report", submitter()).await;
    let done = h.wait(second).await;
    assert_status(&done, TaskStatus::Succeeded);
    let waiting = h.runtime.reader().state(first).await.unwrap().unwrap();
    assert_eq!(
        waiting.status,
        TaskStatus::WaitingApproval,
        "still parked after the other task finished in the one slot"
    );

    let decided = h
        .runtime
        .approvals()
        .decide(&approval.id, bob(), Verdict::Approve, "fine".into())
        .await
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    let state = h.wait(first).await;
    assert_status(&state, TaskStatus::Succeeded);
    let kinds: Vec<&str> = h
        .events(first)
        .await
        .iter()
        .map(JournalEvent::kind)
        .collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(at("approval_requested") < at("approval_voted"));
    assert!(at("approval_resolved") < at("tool_started"));
    // Task 1 asked research twice (the tool call, the answer after the result), task 2 once:
    // the resumed task did not ask its journaled tool call again.
    assert_eq!(h.model.requests_for("research").len(), 3);
}

/// A parked task runs again at its deadline, in a free slot, and expires the request; a vote
/// after that is refused as settled.
#[tokio::test]
async fn a_parked_task_is_woken_by_its_deadline() {
    let h = one_slot(Duration::from_millis(400)).await;
    h.model
        .answer("research", vec![analyze_call(), valid("research")]);
    h.model.answer_downstream();
    h.runtime.scheduler().start().await;
    let task = h.submit_as("research_report", submitter()).await;
    let approval = parked(&h, task).await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    assert_eq!(
        state.approvals[&approval.id].status,
        ApprovalStatus::Expired
    );
    let late = h
        .runtime
        .approvals()
        .decide(&approval.id, bob(), Verdict::Approve, "late".into())
        .await;
    assert!(
        matches!(
            late,
            Err(amas_runtime::RuntimeError::ApprovalSettled { .. })
        ),
        "{late:?}"
    );
}
