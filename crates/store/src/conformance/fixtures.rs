//! Events and tasks the checks build on.

use std::sync::Arc;

use serde_json::json;

use amas_types::{
    ApprovalStatus, ErrorInfo, JournalEvent, Principal, Priority, TaskId, TaskSpec, TenantId,
    Usage, Verdict,
};

use crate::{StoreError, TaskJournal};

pub(crate) fn submission(tenant: &str, task_type: &str, title: &str) -> JournalEvent {
    JournalEvent::TaskSubmitted {
        spec: TaskSpec {
            task_type: task_type.to_owned(),
            title: title.to_owned(),
            description: format!("{title}, described"),
            parameters: serde_json::Map::new(),
            priority: Priority::DEFAULT,
        },
        principal: Principal {
            sub: "tester".to_owned(),
            roles: vec!["submitter".to_owned()],
            tenant: TenantId(tenant.to_owned()),
            auth_method: "local_jwt".to_owned(),
            issuer: "amas-local".to_owned(),
        },
        trace_id: None,
        parent_span_id: None,
    }
}

/// Submits a new task and returns its id.
pub(crate) async fn submit(
    store: &Arc<dyn TaskJournal>,
    tenant: &str,
    task_type: &str,
    title: &str,
) -> Result<TaskId, StoreError> {
    let id = TaskId::new();
    store
        .append(id, 0, &[submission(tenant, task_type, title)])
        .await?;
    Ok(id)
}

pub(crate) fn step_started(step: &str) -> JournalEvent {
    JournalEvent::StepStarted {
        step: step.into(),
        agent: "research".into(),
        input: json!({ "step": step }),
    }
}

pub(crate) fn succeeded() -> JournalEvent {
    JournalEvent::TaskSucceeded {
        result: json!({ "ok": true }),
    }
}

pub(crate) fn failed() -> JournalEvent {
    JournalEvent::TaskFailed {
        error: error_info(),
    }
}

pub(crate) fn cancelled() -> JournalEvent {
    JournalEvent::TaskCancelled {
        reason: "operator".to_owned(),
    }
}

/// A step asks for approval of call `call_id` (requested by "tester", the submitter).
pub(crate) fn approval_requested(approval_id: &str, call_id: &str) -> JournalEvent {
    JournalEvent::ApprovalRequested {
        approval_id: approval_id.into(),
        step: "review".into(),
        call_id: call_id.into(),
        agent: "security_auditor".into(),
        tool: "system_executor".to_owned(),
        risk: "high".to_owned(),
        arguments: json!({ "command": AWKWARD }),
        reasons: vec!["system_executor requires an approval".to_owned()],
        required_approvals: 2,
        requested_by: "tester".to_owned(),
        expires_at: chrono::DateTime::from_timestamp(4_102_444_800, 0).unwrap_or_default(),
        requested_by_issuer: "https://idp.example".to_owned(),
    }
}

pub(crate) fn approval_voted(approval_id: &str, approver: &str, decision: Verdict) -> JournalEvent {
    JournalEvent::ApprovalVoted {
        approval_id: approval_id.into(),
        step: "review".into(),
        approver: approver.to_owned(),
        roles: vec!["approver".to_owned()],
        decision,
        reason: format!("{approver} looked: {AWKWARD}"),
        approver_issuer: "https://idp.example".to_owned(),
    }
}

pub(crate) fn approval_resolved(approval_id: &str, status: ApprovalStatus) -> JournalEvent {
    JournalEvent::ApprovalResolved {
        approval_id: approval_id.into(),
        step: "review".into(),
        status,
        reason: "settled".to_owned(),
    }
}

fn error_info() -> ErrorInfo {
    ErrorInfo {
        code: "AMAS-TEST-0001".to_owned(),
        message: "boom".to_owned(),
    }
}

/// Awkward text: several scripts, an emoji, a combining accent, bidi override, quotes,
/// backslashes and control characters.
pub(crate) const AWKWARD: &str =
    "héllo 世界 مرحبا 🚀 e\u{301} \u{202e}rtl\u{202c} \t\n\r\u{1b}[0m \"q\" \\";

/// Awkward text with NUL, which event payloads may hold (model output) but some JSON column
/// types refuse.
pub(crate) fn awkward_with_nul() -> String {
    format!("{AWKWARD}\u{0}end")
}

/// One event of every variant, first the submission, with awkward text and a large payload.
pub(crate) fn every_variant() -> Vec<JournalEvent> {
    let nul = awkward_with_nul();
    let mut parameters = serde_json::Map::new();
    parameters.insert(nul.clone(), json!([nul, 1, -2.5, null, true]));
    parameters.insert("big".to_owned(), json!(u64::MAX));
    parameters.insert("small".to_owned(), json!(i64::MIN));
    parameters.insert("tiny".to_owned(), json!(0.1));
    parameters.insert("huge".to_owned(), json!(1.5e300));
    let large = "x".repeat(1 << 20) + &nul;
    vec![
        JournalEvent::TaskSubmitted {
            spec: TaskSpec {
                task_type: "research".to_owned(),
                title: AWKWARD.to_owned(),
                description: nul.clone(),
                parameters,
                priority: Priority::new(10).unwrap_or_default(),
            },
            principal: Principal::local_operator(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
            parent_span_id: Some("00f067aa0ba902b7".to_owned()),
        },
        JournalEvent::TaskStarted,
        JournalEvent::StepStarted {
            step: "research".into(),
            agent: "research".into(),
            input: json!({ "nested": { "deep": [[[{ "k": nul }]]] }, "empty": {} }),
        },
        JournalEvent::ModelResponded {
            step: "research".into(),
            attempt: u32::MAX,
            provider: "openai".into(),
            model: "gpt".to_owned(),
            content: large,
            tool_calls: vec![amas_types::RequestedTool {
                id: "call_1".into(),
                name: "calculator".to_owned(),
                arguments: json!({ "expression": nul }),
            }],
            usage: Usage {
                input_tokens: u64::MAX,
                output_tokens: 0,
            },
            latency_ms: 42,
        },
        JournalEvent::ContractViolated {
            step: "research".into(),
            attempt: 1,
            contract: "research.v1".to_owned(),
            errors: vec![nul.clone(), String::new()],
        },
        JournalEvent::ActionDecided {
            step: "research".into(),
            call_id: "call_1".into(),
            action: "tool_call".to_owned(),
            stage: "policy".to_owned(),
            outcome: "deny".to_owned(),
            reasons: vec![nul.clone()],
            code: Some("AMAS-GOV-0001".to_owned()),
            data: Some(amas_types::DataLabels {
                classification: "restricted".to_owned(),
                tags: vec![nul.clone()],
                redacted: Some(Box::new(amas_types::DataLabels {
                    classification: "internal".to_owned(),
                    tags: Vec::new(),
                    redacted: None,
                })),
            }),
            obligations: vec!["redact".to_owned()],
        },
        JournalEvent::ToolStarted {
            step: "research".into(),
            call_id: "call_1".into(),
            tool: "calculator".to_owned(),
            idempotent: false,
        },
        JournalEvent::ToolCompleted {
            step: "research".into(),
            call_id: "call_1".into(),
            tool: "calculator".to_owned(),
            output: json!({ "value": 1.5e300 }),
            duration_ms: u64::MAX,
        },
        JournalEvent::ToolFailed {
            step: "research".into(),
            call_id: "call_2".into(),
            tool: "http_fetch".to_owned(),
            error: error_info(),
        },
        JournalEvent::StepSucceeded {
            step: "research".into(),
            output: json!(nul),
        },
        JournalEvent::StepFailed {
            step: "review".into(),
            error: error_info(),
        },
        JournalEvent::ModelCallDeferred {
            step: "review".into(),
            attempt: 2,
            until: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            error: error_info(),
        },
        JournalEvent::TaskSucceeded {
            result: json!([1, 2.25, "three"]),
        },
        approval_requested("0190a1b2-0000-7000-8000-000000000001", "call_3"),
        approval_voted(
            "0190a1b2-0000-7000-8000-000000000001",
            "bob",
            Verdict::Approve,
        ),
        approval_resolved(
            "0190a1b2-0000-7000-8000-000000000001",
            ApprovalStatus::Approved,
        ),
        failed(),
        cancelled(),
        lineage_recorded("step:research"),
    ]
}

/// A lineage node for `id` (a step node with one finding type, derived from the input).
pub(crate) fn lineage_recorded(id: &str) -> JournalEvent {
    JournalEvent::LineageRecorded {
        node: amas_types::LineageNode {
            id: id.to_owned(),
            kind: amas_types::NodeKind::Step,
            step: Some("research".into()),
            call_id: None,
            labels: amas_types::DataLabels {
                classification: "confidential".to_owned(),
                tags: vec!["PII".to_owned()],
                redacted: None,
            },
            findings: std::collections::BTreeMap::from([("email".to_owned(), 2)]),
            declared: None,
            inputs: vec!["input".to_owned()],
        },
    }
}

/// Numbers each variant; no wildcard arm, so adding a variant breaks the build here until
/// [`every_variant`] covers it.
pub(crate) fn variant_number(event: &JournalEvent) -> usize {
    match event {
        JournalEvent::TaskSubmitted { .. } => 0,
        JournalEvent::TaskStarted => 1,
        JournalEvent::StepStarted { .. } => 2,
        JournalEvent::ModelResponded { .. } => 3,
        JournalEvent::ContractViolated { .. } => 4,
        JournalEvent::StepSucceeded { .. } => 5,
        JournalEvent::StepFailed { .. } => 6,
        JournalEvent::TaskSucceeded { .. } => 7,
        JournalEvent::TaskFailed { .. } => 8,
        JournalEvent::TaskCancelled { .. } => 9,
        JournalEvent::ActionDecided { .. } => 10,
        JournalEvent::ToolStarted { .. } => 11,
        JournalEvent::ToolCompleted { .. } => 12,
        JournalEvent::ToolFailed { .. } => 13,
        JournalEvent::ApprovalRequested { .. } => 14,
        JournalEvent::ApprovalVoted { .. } => 15,
        JournalEvent::ApprovalResolved { .. } => 16,
        JournalEvent::LineageRecorded { .. } => 17,
        JournalEvent::ModelCallDeferred { .. } => 18,
    }
}

pub(crate) const VARIANT_COUNT: usize = 19;
