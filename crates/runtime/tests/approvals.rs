//! Human approval of tool calls through the real gate (embedded Rego bundle): the step pauses
//! durably (`waiting_approval`), approvers vote, the requester cannot approve their own request,
//! high-risk calls in production need two distinct approvers, a denial or a timeout reaches the
//! model as a tool error, and a restart in the middle loses nothing.

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

use amas_runtime::RuntimeError;
use amas_store::ApprovalFilter;
use amas_types::{
    Approval, ApprovalStatus, JournalEvent, Principal, TaskId, TaskStatus, TenantId, Verdict,
};
use common::{FakeModel, Governance, Harness, assert_status, harness_governed, submitter, valid};

fn person(sub: &str, roles: &[&str], tenant: &str) -> Principal {
    Principal {
        sub: sub.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        tenant: TenantId(tenant.into()),
        auth_method: "local_jwt".into(),
        issuer: "amas-local".into(),
    }
}

fn bob() -> Principal {
    person("bob", &["approver"], "acme")
}

fn carol() -> Principal {
    person("carol", &["approver"], "acme")
}

fn analyze_call() -> Value {
    json!({"__tool_calls": [{"name": "code_analyzer", "arguments": {"code": "fn main() {}", "language": "rs"}}]})
}

/// Research may use code_analyzer; approvals time out after `timeout`.
fn config(timeout: Duration) -> amas_config::AmasConfig {
    let mut config = common::config();
    config.approvals.timeout = timeout;
    config.agents.get_mut("research").unwrap().allowed_tools = vec!["code_analyzer".into()];
    config
}

async fn governed(timeout: Duration, gov: &Governance) -> Harness {
    let h = harness_governed(
        config(timeout),
        tempfile::tempdir().unwrap(),
        Arc::new(FakeModel::default()),
        gov,
    )
    .await;
    script(&h.model);
    h
}

/// Research asks for the analyzer once, then answers; the later steps answer at once.
fn script(model: &FakeModel) {
    model.answer("research", vec![analyze_call(), valid("research")]);
    model.answer_downstream();
}

fn needs_approval() -> Governance {
    Governance {
        needs_approval: vec!["code_analyzer"],
        ..Governance::default()
    }
}

/// Waits (bounded) until the task waits for approval and returns its pending approval.
async fn pending_approval(h: &Harness, task: TaskId) -> Approval {
    for _ in 0..400 {
        let state = h.runtime.reader().state(task).await.unwrap().unwrap();
        assert!(
            !state.status.is_terminal(),
            "the task ended instead of waiting: {state:#?}"
        );
        if state.status == TaskStatus::WaitingApproval {
            let pending: Vec<&Approval> = state
                .approvals
                .values()
                .filter(|a| a.status == ApprovalStatus::Pending)
                .collect();
            assert_eq!(pending.len(), 1, "one pending approval");
            let summary = h.journal.summary(task).await.unwrap().unwrap();
            assert_eq!(
                summary.status,
                TaskStatus::WaitingApproval,
                "the listing agrees"
            );
            return pending[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("task {task} never waited for approval");
}

fn tool_error_seen_by_model(h: &Harness) -> Value {
    let second = &h.model.requests_for("research")[1];
    let tool_message = second
        .messages
        .iter()
        .find(|m| m.tool_call_id.is_some())
        .expect("the tool result reached the model");
    serde_json::from_str(&tool_message.content).unwrap()
}

/// The whole round trip with one approver: the step pauses, only approvers of the tenant see
/// the request, the requester's own vote is refused, another approver's vote lets the call run.
#[tokio::test]
async fn one_approval_lets_the_paused_call_run() {
    let h = governed(Duration::from_secs(3600), &needs_approval()).await;
    h.runtime.scheduler().start().await;
    let requester = person("alice", &["submitter", "approver"], "acme");
    let task = h.submit_as("research_report", requester.clone()).await;
    let approval = pending_approval(&h, task).await;
    assert_eq!(approval.tool, "code_analyzer");
    assert_eq!(approval.requested_by, "alice");
    assert_eq!(approval.required_approvals, 1);
    assert_eq!(
        approval.arguments["language"], "rs",
        "approvers see the call"
    );
    assert!(
        approval
            .reasons
            .iter()
            .any(|r| r.contains("requiring approval")),
        "{:?}",
        approval.reasons
    );
    assert_eq!(
        h.model.requests_for("research").len(),
        1,
        "nothing runs while waiting"
    );

    // Listing: bob sees it; alice (the requester) does not; another tenant does not.
    let pending = |who: &Principal| {
        let runtime = h.runtime.clone();
        let who = who.clone();
        async move {
            runtime
                .approvals()
                .list(
                    &who,
                    ApprovalFilter {
                        status: Some(ApprovalStatus::Pending),
                        not_requested_by: Some(who.identity()),
                        limit: 10,
                        ..ApprovalFilter::default()
                    },
                )
                .await
                .unwrap()
                .approvals
        }
    };
    assert_eq!(pending(&bob()).await.len(), 1);
    assert!(pending(&requester).await.is_empty(), "not your own request");
    let outsider = person("mallory", &["approver"], "globex");
    assert!(pending(&outsider).await.is_empty(), "not another tenant's");
    assert!(matches!(
        h.runtime
            .approvals()
            .decide(&approval.id, outsider, Verdict::Approve, "x".into())
            .await,
        Err(RuntimeError::ApprovalNotFound(_))
    ));

    // The requester cannot approve, even holding the approver role; a viewer cannot either.
    let own = h
        .runtime
        .approvals()
        .decide(&approval.id, requester, Verdict::Approve, "mine".into())
        .await;
    assert!(
        matches!(own, Err(RuntimeError::SelfApproval { .. })),
        "{own:?}"
    );
    let viewer = person("victor", &["viewer"], "acme");
    let not_approver = h
        .runtime
        .approvals()
        .decide(&approval.id, viewer, Verdict::Approve, "me".into())
        .await;
    assert!(
        matches!(not_approver, Err(RuntimeError::NotAnApprover { .. })),
        "{not_approver:?}"
    );

    let decided = h
        .runtime
        .approvals()
        .decide(&approval.id, bob(), Verdict::Approve, "looks fine".into())
        .await
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.votes.len(), 1);
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    let again = h
        .runtime
        .approvals()
        .decide(&approval.id, carol(), Verdict::Approve, "late".into())
        .await;
    assert!(
        matches!(again, Err(RuntimeError::ApprovalSettled { .. })),
        "{again:?}"
    );

    let events = h.events(task).await;
    let kinds: Vec<&str> = events.iter().map(JournalEvent::kind).collect();
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(at("approval_requested") < at("approval_voted"));
    assert!(at("approval_voted") < at("approval_resolved"));
    assert!(at("approval_resolved") < at("tool_started"));
    assert!(kinds.contains(&"tool_completed"));
    assert!(events.iter().any(|e| matches!(e,
        JournalEvent::ActionDecided { stage, outcome, .. } if stage == "policy" && outcome == "require_approval")));
    let stored = h.journal.approval(&approval.id).await.unwrap().unwrap();
    assert_eq!(stored, state.approvals[&approval.id], "projection = fold");
}

/// A high-risk call in production needs two distinct approvers: one vote leaves it pending, the
/// same approver cannot vote twice, a second approver lets it run.
#[tokio::test]
async fn high_risk_in_production_needs_two_distinct_approvers() {
    let gov = Governance {
        environment: "production",
        high_risk: vec!["code_analyzer"],
        ..Governance::default()
    };
    let h = governed(Duration::from_secs(3600), &gov).await;
    h.runtime.scheduler().start().await;
    // Research may not use a high-risk tool by itself: an admin's grant makes it allowed-with-
    // approval, the case the dual-approval rule is for.
    let admin = person("root", &["admin"], "acme");
    let task = h.submit_as("research_report", admin).await;
    let approval = pending_approval(&h, task).await;
    assert_eq!(approval.required_approvals, 2);

    let first = h
        .runtime
        .approvals()
        .decide(&approval.id, bob(), Verdict::Approve, "ok".into())
        .await
        .unwrap();
    assert_eq!(first.status, ApprovalStatus::Pending, "one of two");
    assert_eq!(first.votes.len(), 1);
    let twice = h
        .runtime
        .approvals()
        .decide(&approval.id, bob(), Verdict::Approve, "again".into())
        .await;
    assert!(
        matches!(twice, Err(RuntimeError::AlreadyVoted { .. })),
        "{twice:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.runtime
            .reader()
            .state(task)
            .await
            .unwrap()
            .unwrap()
            .status,
        TaskStatus::WaitingApproval,
        "still waiting after one approval"
    );
    let second = h
        .runtime
        .approvals()
        .decide(&approval.id, carol(), Verdict::Approve, "ok too".into())
        .await
        .unwrap();
    assert_eq!(second.status, ApprovalStatus::Approved);
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    assert!(
        h.events(task)
            .await
            .iter()
            .any(|e| matches!(e, JournalEvent::ToolCompleted { .. }))
    );
}

/// A denial ends the request; the model gets a typed tool error and can still finish the step.
#[tokio::test]
async fn a_denial_reaches_the_model_as_a_tool_error() {
    let h = governed(Duration::from_secs(3600), &needs_approval()).await;
    h.runtime.scheduler().start().await;
    let task = h.submit_as("research_report", submitter()).await;
    let approval = pending_approval(&h, task).await;
    let decided = h
        .runtime
        .approvals()
        .decide(&approval.id, bob(), Verdict::Deny, "not today".into())
        .await
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Denied);
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    let error = tool_error_seen_by_model(&h);
    assert_eq!(error["error"]["code"], "AMAS-GOV-0009", "{error}");
    assert!(
        !h.events(task)
            .await
            .iter()
            .any(|e| matches!(e, JournalEvent::ToolStarted { .. })),
        "a denied call never starts"
    );
}

/// Nobody decides in time: the request expires, which is a denial.
#[tokio::test]
async fn an_unanswered_request_expires_as_a_denial() {
    let h = governed(Duration::from_millis(300), &needs_approval()).await;
    h.runtime.scheduler().start().await;
    let task = h.submit_as("research_report", submitter()).await;
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    let approval = state
        .approvals
        .values()
        .next()
        .expect("an approval was requested");
    assert_eq!(approval.status, ApprovalStatus::Expired);
    assert_eq!(
        tool_error_seen_by_model(&h)["error"]["code"],
        "AMAS-GOV-0010"
    );
    let late = h
        .runtime
        .approvals()
        .decide(&approval.id, bob(), Verdict::Approve, "too late".into())
        .await;
    assert!(
        matches!(late, Err(RuntimeError::ApprovalSettled { .. })),
        "{late:?}"
    );
}

/// Cancelling a waiting task resolves its approval, so it leaves every approver's list.
#[tokio::test]
async fn cancelling_a_waiting_task_settles_its_approval() {
    let h = governed(Duration::from_secs(3600), &needs_approval()).await;
    h.runtime.scheduler().start().await;
    let task = h.submit_as("research_report", submitter()).await;
    let approval = pending_approval(&h, task).await;
    let state = h
        .runtime
        .scheduler()
        .cancel(task, "changed my mind".into())
        .await
        .unwrap();
    assert_status(&state, TaskStatus::Cancelled);
    let stored = h.journal.approval(&approval.id).await.unwrap().unwrap();
    assert_eq!(stored.status, ApprovalStatus::Denied);
}

/// The process dies while a call waits for its second approval; after a restart the request,
/// its first vote and the waiting status are all still there, and the second vote finishes it.
#[test]
fn a_restart_in_the_middle_of_an_approval_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let gov = Governance {
        environment: "production",
        high_risk: vec!["code_analyzer"],
        ..Governance::default()
    };
    // First life: its own tokio runtime, dropped mid-wait like a killed process.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (task, approval_id, kept) = rt.block_on(async {
        let h = harness_governed(
            config(Duration::from_secs(3600)),
            tempfile::TempDir::new_in(root.path()).unwrap(),
            Arc::new(FakeModel::default()),
            &gov,
        )
        .await;
        script(&h.model);
        h.runtime.scheduler().start().await;
        let task = h
            .submit_as("research_report", person("root", &["admin"], "acme"))
            .await;
        let approval = pending_approval(&h, task).await;
        let first = h
            .runtime
            .approvals()
            .decide(&approval.id, bob(), Verdict::Approve, "ok".into())
            .await
            .unwrap();
        assert_eq!(first.status, ApprovalStatus::Pending);
        // Keep the database directory: the second life opens it again.
        (task, approval.id, h._dir.keep())
    });
    drop(rt);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::TempDir::new_in(root.path()).unwrap();
        std::fs::remove_dir(dir.path()).unwrap();
        std::fs::rename(&kept, dir.path()).unwrap();
        let model = Arc::new(FakeModel::default());
        let h = harness_governed(
            config(Duration::from_secs(3600)),
            dir,
            Arc::clone(&model),
            &gov,
        )
        .await;
        // The model already asked for the tool before the crash: only the final answer is left.
        model.answer("research", vec![valid("research")]);
        model.answer_downstream();
        let summary = h.journal.summary(task).await.unwrap().unwrap();
        assert_eq!(
            summary.status,
            TaskStatus::WaitingApproval,
            "durable status"
        );
        let stored = h.journal.approval(&approval_id).await.unwrap().unwrap();
        assert_eq!(stored.votes.len(), 1, "the first vote survived");
        assert_eq!(h.runtime.scheduler().recover().await.unwrap(), 1);
        h.runtime.scheduler().start().await;
        let repeat = h
            .runtime
            .approvals()
            .decide(&approval_id, bob(), Verdict::Approve, "again".into())
            .await;
        assert!(
            matches!(repeat, Err(RuntimeError::AlreadyVoted { .. })),
            "{repeat:?}"
        );
        let second = h
            .runtime
            .approvals()
            .decide(&approval_id, carol(), Verdict::Approve, "ok".into())
            .await
            .unwrap();
        assert_eq!(second.status, ApprovalStatus::Approved);
        let state = h.wait(task).await;
        assert_status(&state, TaskStatus::Succeeded);
        assert_eq!(
            model.requests_for("research").len(),
            1,
            "the journaled tool request was not asked again"
        );
    });
}

/// A vote after the request's deadline is refused (security review L5), even while the request
/// is still pending in the journal: here the task stopped (a shutdown) before its request
/// expired, so nothing marked it expired when the vote comes. The vote is not journaled; after
/// a restart the step expires the request and the model is told the call was not approved.
#[test]
fn a_vote_after_the_deadline_is_refused_while_the_request_is_still_pending() {
    let root = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (task, approval, kept) = rt.block_on(async {
        let h = harness_governed(
            config(timeout),
            tempfile::TempDir::new_in(root.path()).unwrap(),
            Arc::new(FakeModel::default()),
            &needs_approval(),
        )
        .await;
        script(&h.model);
        h.runtime.scheduler().start().await;
        let task = h.submit_as("research_report", submitter()).await;
        let approval = pending_approval(&h, task).await;
        // Stopped while it waits: the request stays pending in the journal.
        assert_eq!(h.runtime.scheduler().drain(timeout).await, 0);
        while chrono::Utc::now() <= approval.expires_at {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stored = h.journal.approval(&approval.id).await.unwrap().unwrap();
        assert_eq!(stored.status, ApprovalStatus::Pending, "nothing expired it");
        let late = h
            .runtime
            .approvals()
            .decide(&approval.id, bob(), Verdict::Approve, "sorry, late".into())
            .await;
        match late {
            Err(e @ RuntimeError::VoteTooLate { .. }) => {
                assert_eq!(e.code(), "AMAS-APPR-0005");
            }
            other => panic!("a late vote must be refused: {other:?}"),
        }
        assert!(
            !h.events(task)
                .await
                .iter()
                .any(|e| matches!(e, JournalEvent::ApprovalVoted { .. })),
            "the late vote is not journaled"
        );
        (task, approval.id, h._dir.keep())
    });
    drop(rt);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::TempDir::new_in(root.path()).unwrap();
        std::fs::remove_dir(dir.path()).unwrap();
        std::fs::rename(&kept, dir.path()).unwrap();
        let model = Arc::new(FakeModel::default());
        let h = harness_governed(config(timeout), dir, Arc::clone(&model), &needs_approval()).await;
        model.answer("research", vec![valid("research")]);
        model.answer_downstream();
        assert_eq!(h.runtime.scheduler().recover().await.unwrap(), 1);
        h.runtime.scheduler().start().await;
        let state = h.wait(task).await;
        assert_status(&state, TaskStatus::Succeeded);
        let approval = &state.approvals[&approval];
        assert_eq!(approval.status, ApprovalStatus::Expired);
        assert!(approval.votes.is_empty(), "no vote counted");
        let tool_message = model.requests_for("research")[0]
            .messages
            .iter()
            .find(|m| m.tool_call_id.is_some())
            .map(|m| serde_json::from_str::<Value>(&m.content).unwrap())
            .expect("the tool result reached the model");
        assert_eq!(tool_message["error"]["code"], "AMAS-GOV-0010");
    });
}

/// `who` as another issuer vouches for them: the same `sub`, another person.
fn at_issuer(issuer: &str, who: Principal) -> Principal {
    Principal {
        issuer: issuer.to_owned(),
        auth_method: format!("oidc:{issuer}"),
        ..who
    }
}

/// Identity is (issuer, subject) everywhere (security review M6). Two issuers trusted for tenant
/// `acme` both have an `alice`: they are two people. On a high-risk call in production (dual
/// control), the other issuer's alice may approve the first alice's request and counts as one
/// approver; her second vote counts once (refused); the requester herself is refused; the
/// approvals listing hides the request from the requester only; a second approver lets the
/// call run. The journal keeps every voter's issuer, and ownership follows the issuer too: the
/// namesake (a submitter) may not cancel the requester's task.
#[tokio::test]
async fn the_same_sub_at_two_issuers_is_two_people() {
    let gov = Governance {
        environment: "production",
        high_risk: vec!["code_analyzer"],
        ..Governance::default()
    };
    let h = governed(Duration::from_secs(3600), &gov).await;
    h.runtime.scheduler().start().await;
    // An admin's request: research may use a high-risk tool only by an admin's grant, the
    // case dual control is for.
    let requester = at_issuer("https://idp-a.example", person("alice", &["admin"], "acme"));
    let namesake = at_issuer(
        "https://idp-b.example",
        person("alice", &["submitter", "approver"], "acme"),
    );
    let task = h.submit_as("research_report", requester.clone()).await;
    let approval = pending_approval(&h, task).await;
    assert_eq!(approval.required_approvals, 2);
    assert_eq!(
        approval.requester(),
        requester.identity(),
        "the request names its requester with her issuer"
    );

    let listed = |who: &Principal| {
        let runtime = h.runtime.clone();
        let who = who.clone();
        async move {
            runtime
                .reader()
                .read_approvals(
                    &who,
                    ApprovalFilter {
                        status: Some(ApprovalStatus::Pending),
                        not_requested_by: Some(who.identity()),
                        limit: 10,
                        ..ApprovalFilter::default()
                    },
                )
                .await
                .unwrap()
                .approvals
                .len()
        }
    };
    assert_eq!(listed(&namesake).await, 1, "another person's request");
    assert_eq!(listed(&requester).await, 0, "not her own request");

    // The namesake approves: another person, one of the two approvers.
    let first = h
        .runtime
        .reader()
        .vote(
            namesake.clone(),
            &approval.id,
            Verdict::Approve,
            "ok".into(),
        )
        .await
        .unwrap();
    assert_eq!(first.status, ApprovalStatus::Pending, "one of two");
    // Her second vote (even with another role) is the same person's: refused, counted once.
    let twice = h
        .runtime
        .approvals()
        .decide(
            &approval.id,
            Principal {
                roles: vec!["admin".into()],
                ..namesake.clone()
            },
            Verdict::Approve,
            "again".into(),
        )
        .await;
    assert!(
        matches!(twice, Err(RuntimeError::AlreadyVoted { .. })),
        "{twice:?}"
    );
    // The requester herself is refused.
    let own = h
        .runtime
        .approvals()
        .decide(
            &approval.id,
            requester.clone(),
            Verdict::Approve,
            "mine".into(),
        )
        .await;
    assert!(
        matches!(own, Err(RuntimeError::SelfApproval { .. })),
        "{own:?}"
    );

    // A second person lets it run.
    let second = h
        .runtime
        .approvals()
        .decide(
            &approval.id,
            at_issuer("https://idp-b.example", bob()),
            Verdict::Approve,
            "ok".into(),
        )
        .await
        .unwrap();
    assert_eq!(second.status, ApprovalStatus::Approved);
    let state = h.wait(task).await;
    assert_status(&state, TaskStatus::Succeeded);
    let voters: Vec<(String, String)> = h
        .events(task)
        .await
        .into_iter()
        .filter_map(|e| match e {
            JournalEvent::ApprovalVoted {
                approver,
                approver_issuer,
                ..
            } => Some((approver_issuer, approver)),
            _ => None,
        })
        .collect();
    assert_eq!(
        voters,
        vec![
            ("https://idp-b.example".to_owned(), "alice".to_owned()),
            ("https://idp-b.example".to_owned(), "bob".to_owned()),
        ],
        "each vote is journaled with its voter's issuer"
    );

    // Ownership: the namesake may not cancel the requester's task; the requester may.
    h.model
        .answer("research", vec![analyze_call(), valid("research")]);
    let other = h.submit_as("research_report", requester.clone()).await;
    pending_approval(&h, other).await;
    let refused = h
        .runtime
        .reader()
        .cancel_as(&namesake, other, "not mine".into())
        .await;
    assert!(
        matches!(refused, Err(RuntimeError::Forbidden { ref reasons, .. }) if reasons.contains("only their own tasks")),
        "{refused:?}"
    );
    let own_task = at_issuer(
        "https://idp-b.example",
        person("alice", &["submitter"], "acme"),
    );
    let cancelled = h
        .runtime
        .reader()
        .cancel_as(&requester, other, "mine".into())
        .await
        .unwrap();
    assert_eq!(cancelled.state.status, TaskStatus::Cancelled);
    // And a submitter's own task is hers to cancel, at her issuer.
    let hers = h.submit_as("research_report", own_task.clone()).await;
    let cancelled = h
        .runtime
        .reader()
        .cancel_as(&own_task, hers, "mine".into())
        .await
        .unwrap();
    assert_eq!(cancelled.state.status, TaskStatus::Cancelled);
}
