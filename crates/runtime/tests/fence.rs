//! Cancel is a fence (security review M1): a cancellation racing an approver's vote on a
//! pending tool approval. Whichever is journaled first wins; once the cancellation is in the
//! journal the store refuses every later append of the task, so the tool never runs after it,
//! nothing follows it in the journal, and the audit log agrees with the journal about what
//! was approved and what ran.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use amas_providers::{ChatRequest, ChatResponse, ModelProvider, ProviderError};
use amas_runtime::RuntimeError;
use amas_store::StoreError;
use amas_store::audit::{AuditDecision, AuditQuery};
use amas_tools::{Tool, ToolContext, ToolError, ToolOutput, ToolSpec};
use amas_types::{
    ApprovalStatus, JournalEvent, Principal, TaskId, TaskStatus, TenantId, Usage, Verdict,
};
use common::{FakeModel, Governance, Harness, harness_governed, valid};

/// Tasks raced at once, and how many rounds of them.
const TASKS_PER_ROUND: usize = 25;
const ROUNDS: usize = 8;

/// The real `code_analyzer`, with a side effect the test can see: every call is recorded (by
/// task) before it runs, and it takes a moment, so a cancellation can land while it runs.
struct Recording {
    inner: Arc<dyn Tool>,
    runs: Mutex<BTreeMap<String, usize>>,
}

#[async_trait]
impl Tool for Recording {
    fn spec(&self) -> &ToolSpec {
        self.inner.spec()
    }

    async fn call(&self, ctx: &ToolContext, params: Value) -> Result<ToolOutput, ToolError> {
        *self
            .runs
            .lock()
            .unwrap()
            .entry(ctx.task_id.clone())
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.inner.call(ctx, params).await
    }
}

/// The research agent's model: asks for the analyzer once, answers once it has its result.
/// Scripted per request rather than per call order, so concurrent tasks do not share a script.
struct AnalyzeThenAnswer;

#[async_trait]
impl ModelProvider for AnalyzeThenAnswer {
    fn name(&self) -> &str {
        "analyst"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let has_result = request.messages.iter().any(|m| m.tool_call_id.is_some());
        let (content, tool_calls) = if has_result {
            (valid("research").to_string(), Vec::new())
        } else {
            (
                String::new(),
                vec![amas_providers::ToolCall {
                    id: "call_analyze".to_owned(),
                    name: "code_analyzer".to_owned(),
                    arguments: json!({"code": "fn main() {}", "language": "rs"}),
                }],
            )
        };
        Ok(ChatResponse {
            content,
            tool_calls,
            provider: "analyst".into(),
            model: "analyst-1".into(),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
            },
        })
    }
}

fn bob() -> Principal {
    Principal {
        sub: "bob".into(),
        roles: vec!["approver".into()],
        tenant: TenantId::default_tenant(),
        auth_method: "local_jwt".into(),
        issuer: "amas-local".into(),
    }
}

async fn harness(recording: &Arc<Recording>) -> Harness {
    let mut config = common::config();
    config.approvals.timeout = Duration::from_secs(3600);
    config.runtime.max_concurrent_tasks = TASKS_PER_ROUND * 2;
    config.runtime.queue_capacity = TASKS_PER_ROUND * 4;
    let research = config.agents.get_mut("research").unwrap();
    research.allowed_tools = vec!["code_analyzer".into()];
    research.providers = vec!["analyst".into()];
    config.provider_trust.insert(
        "analyst".to_owned(),
        ["public", "internal", "confidential", "restricted"]
            .map(str::to_owned)
            .to_vec(),
    );
    let gov = Governance {
        needs_approval: vec!["code_analyzer"],
        extra_tools: vec![Arc::clone(recording) as Arc<dyn Tool>],
        extra_providers: vec![(
            "analyst".to_owned(),
            Arc::new(AnalyzeThenAnswer) as Arc<dyn ModelProvider>,
        )],
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

/// Waits (bounded) until `task` waits for approval; its pending approval's id.
async fn pending(h: &Harness, task: TaskId) -> amas_types::ApprovalId {
    for _ in 0..800 {
        let state = h.runtime.reader().state(task).await.unwrap().unwrap();
        if let Some(a) = state
            .approvals
            .values()
            .find(|a| a.status == ApprovalStatus::Pending)
        {
            return a.id.clone();
        }
        assert!(!state.status.is_terminal(), "ended early: {state:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("task {task} never waited for approval");
}

/// Waits (bounded) until no task runs in the runtime: every step has stopped, so no tool
/// can run any more.
async fn quiet(h: &Harness) {
    for _ in 0..2000 {
        if h.runtime.scheduler().running().await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("tasks still running");
}

/// What one race left behind, for the assertions.
struct Race {
    task: TaskId,
    vote: Result<amas_types::Approval, RuntimeError>,
    cancelled: TaskStatus,
}

/// The race of the review's M1, many times over: for tasks paused on a tool approval, an
/// approver's vote and a cancellation are sent at the same moment. Either may win, but:
/// nothing is journaled after a task's end; the tool ran exactly for the tasks whose journal
/// has its start, always before the cancellation; the vote reported approved only when the
/// tool was started; and the audit log records a granted approval and a tool result exactly
/// for those tasks, never for one the cancellation fenced off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_racing_approve_never_lets_the_tool_run_after_the_cancel() {
    let mut tools = amas_tools::ToolsConfig::load(None, &[]).expect("embedded tools load");
    for tool in &mut tools.tools {
        if tool.spec.name == "code_analyzer" {
            tool.spec.requires_approval = true;
        }
    }
    let registry = amas_tools::ToolRegistry::from_config(tools);
    let recording = Arc::new(Recording {
        inner: Arc::clone(registry.get("code_analyzer").unwrap()),
        runs: Mutex::new(BTreeMap::new()),
    });
    let h = harness(&recording).await;
    h.runtime.scheduler().start().await;
    let mut races = Vec::new();
    for _ in 0..ROUNDS {
        let mut tasks = Vec::new();
        for _ in 0..TASKS_PER_ROUND {
            tasks.push(h.submit("research_report").await);
        }
        let mut approvals = Vec::new();
        for task in &tasks {
            approvals.push(pending(&h, *task).await);
        }
        let mut contenders = Vec::new();
        for (n, (task, approval)) in tasks.into_iter().zip(approvals).enumerate() {
            let voter = h.runtime.clone();
            let vote = async move {
                voter
                    .approvals()
                    .decide(&approval, bob(), Verdict::Approve, "looks fine".into())
                    .await
            };
            let canceller = h.runtime.clone();
            let cancel = async move {
                canceller
                    .scheduler()
                    .cancel(task, "changed my mind".into())
                    .await
            };
            // Each side gets the head start every other time.
            let (vote, cancel) = if n % 2 == 0 {
                let vote = amas_telemetry::tasks::spawn("test.vote", vote);
                (vote, amas_telemetry::tasks::spawn("test.cancel", cancel))
            } else {
                let cancel = amas_telemetry::tasks::spawn("test.cancel", cancel);
                (amas_telemetry::tasks::spawn("test.vote", vote), cancel)
            };
            contenders.push((task, vote, cancel));
        }
        for (task, vote, cancel) in contenders {
            let vote = vote.await.unwrap();
            let cancelled = cancel
                .await
                .unwrap()
                .expect("the cancel is answered")
                .status;
            races.push(Race {
                task,
                vote,
                cancelled,
            });
        }
        quiet(&h).await;
    }
    h.runtime.access().flush_audit().await.unwrap();

    let runs = recording.runs.lock().unwrap().clone();
    let (mut approved_first, mut cancelled_first, mut fenced_votes, mut fenced_results) =
        (0, 0, 0, 0);
    for race in &races {
        let task = race.task;
        let events = h.events(task).await;
        let kinds: Vec<&str> = events.iter().map(JournalEvent::kind).collect();
        let end = events
            .iter()
            .position(|e| e.status_effect().is_some_and(TaskStatus::is_terminal))
            .unwrap_or_else(|| panic!("task {task} has no end: {kinds:?}"));
        assert_eq!(end + 1, events.len(), "nothing follows the end: {kinds:?}");
        let started = events
            .iter()
            .position(|e| matches!(e, JournalEvent::ToolStarted { .. }));
        let ran = runs.get(&task.to_string()).copied().unwrap_or(0);
        assert_eq!(
            ran,
            usize::from(started.is_some()),
            "the tool ran exactly when its start was journaled: {kinds:?}"
        );
        let state = h.runtime.reader().state(task).await.unwrap().unwrap();
        let approval = state.approvals.values().next().unwrap();
        if let Some(started) = started {
            approved_first += 1;
            assert!(started < end, "the start precedes the end: {kinds:?}");
            assert_eq!(approval.status, ApprovalStatus::Approved, "{kinds:?}");
            let finished = kinds.contains(&"tool_completed") || kinds.contains(&"tool_failed");
            if state.status == TaskStatus::Cancelled && !finished {
                // Cancelled while the tool ran: its result came after the end, refused.
                fenced_results += 1;
            }
        } else {
            cancelled_first += 1;
            assert_eq!(state.status, TaskStatus::Cancelled, "{kinds:?}");
            assert_eq!(approval.status, ApprovalStatus::Denied, "{kinds:?}");
        }
        match &race.vote {
            Ok(a) => assert_eq!(
                a.status == ApprovalStatus::Approved,
                started.is_some(),
                "the voter is told approved only when the tool was started: {kinds:?}"
            ),
            Err(RuntimeError::Store(e @ StoreError::TaskEnded { .. })) => {
                // The vote reached the step, but the cancellation was journaled first.
                fenced_votes += 1;
                assert_eq!(e.code(), "AMAS-STORE-0010");
                assert!(started.is_none(), "{kinds:?}");
            }
            Err(
                RuntimeError::ApprovalSettled { .. } | RuntimeError::ApprovalUnavailable { .. },
            ) => assert!(started.is_none(), "{kinds:?}"),
            Err(other) => panic!("unexpected vote error: {other}"),
        }
        assert!(
            matches!(
                race.cancelled,
                TaskStatus::Cancelled | TaskStatus::Succeeded
            ),
            "the cancel leaves the task ended: {:?}",
            race.cancelled
        );

        // The audit log agrees with the journal.
        let records = h
            .runtime
            .reader()
            .audit_records(
                &Principal::local_operator(),
                AuditQuery {
                    task_id: Some(task),
                    limit: 1000,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        let granted = records
            .iter()
            .filter(|r| {
                r.record.action == "tool_call"
                    && r.record.decision == AuditDecision::ApprovalGranted
            })
            .count();
        let results = records
            .iter()
            .filter(|r| r.record.action == "tool_result")
            .count();
        assert_eq!(
            granted,
            usize::from(started.is_some()),
            "a granted approval is audited exactly when the journal has the tool's start"
        );
        if started.is_none() {
            assert_eq!(
                results, 0,
                "no tool result is audited for a fenced-off call"
            );
        }
    }
    assert_eq!(races.len(), TASKS_PER_ROUND * ROUNDS);
    eprintln!(
        "{approved_first} races won by the vote, {cancelled_first} by the cancel \
         ({fenced_votes} of them refused at the journal's fence); {fenced_results} tool \
         results refused after the end"
    );
}

/// The fence alone, without a race: the task is cancelled by another writer (another AMAS
/// process on the same database appends `task_cancelled`; this process's step, paused on the
/// approval, gets no signal and the request is still pending in the store). The approver's
/// vote reaches the step, whose append of the vote and the tool's start is refused by the
/// store (`AMAS-STORE-0010`): the voter is told so, the tool never runs, nothing follows the
/// cancellation, and no approval or tool result is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_after_a_cancellation_by_another_writer_is_refused_at_the_journal() {
    let mut tools = amas_tools::ToolsConfig::load(None, &[]).expect("embedded tools load");
    for tool in &mut tools.tools {
        if tool.spec.name == "code_analyzer" {
            tool.spec.requires_approval = true;
        }
    }
    let registry = amas_tools::ToolRegistry::from_config(tools);
    let recording = Arc::new(Recording {
        inner: Arc::clone(registry.get("code_analyzer").unwrap()),
        runs: Mutex::new(BTreeMap::new()),
    });
    let h = harness(&recording).await;
    h.runtime.scheduler().start().await;
    let task = h.submit("research_report").await;
    let approval = pending(&h, task).await;

    let last_seq = h.journal.summary(task).await.unwrap().unwrap().last_seq;
    h.journal
        .append(
            task,
            last_seq,
            &[JournalEvent::TaskCancelled {
                reason: "cancelled by another process".into(),
            }],
        )
        .await
        .unwrap();
    let stored = h.journal.approval(&approval).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        ApprovalStatus::Pending,
        "the vote is not refused early"
    );

    let vote = h
        .runtime
        .approvals()
        .decide(&approval, bob(), Verdict::Approve, "looks fine".into())
        .await;
    match vote {
        Err(RuntimeError::Store(e @ StoreError::TaskEnded { .. })) => {
            assert_eq!(e.code(), "AMAS-STORE-0010");
        }
        other => panic!("the vote must be refused at the fence: {other:?}"),
    }
    quiet(&h).await;
    assert!(
        recording.runs.lock().unwrap().is_empty(),
        "the tool never ran"
    );
    let events = h.events(task).await;
    assert!(
        matches!(events.last(), Some(JournalEvent::TaskCancelled { .. })),
        "nothing follows the cancellation: {:?}",
        events.iter().map(JournalEvent::kind).collect::<Vec<_>>()
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            JournalEvent::ApprovalVoted { .. } | JournalEvent::ToolStarted { .. }
        )),
        "the refused vote left nothing in the journal"
    );
    h.runtime.access().flush_audit().await.unwrap();
    let records = h
        .runtime
        .reader()
        .audit_records(
            &Principal::local_operator(),
            AuditQuery {
                task_id: Some(task),
                limit: 1000,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.record.decision == AuditDecision::RequireApproval),
        "the request itself was audited"
    );
    assert!(
        !records.iter().any(|r| {
            r.record.decision == AuditDecision::ApprovalGranted || r.record.action == "tool_result"
        }),
        "no approval or tool result is audited after the cancellation"
    );
}
