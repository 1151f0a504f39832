//! The pipeline's entry points and what they make besides the decision: journal events, audit
//! records and the `amas_governance_decisions_total` count. Tool results (post-execution
//! stages), API operations and security events; tool-call pre-execution stages are covered by
//! `gate_memo.rs` and the runtime's suites.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails loudly"
)]

use std::sync::Arc;

use serde_json::json;

use amas_governance::pipeline::entry::{self, ApiResource};
use amas_governance::pipeline::{ActionContext, Outcome, Pipeline, SecurityEvent, Stage, audit};
use amas_policy::{PolicyEngine, RegoPolicyEngine};
use amas_store::audit::AuditDecision;
use amas_telemetry::Metrics;
use amas_types::{JournalEvent, Principal, RequestedTool, TaskId, TenantId};

fn principal() -> Principal {
    Principal {
        sub: "alice".to_owned(),
        roles: vec!["submitter".to_owned()],
        tenant: TenantId("acme".to_owned()),
        auth_method: "local_jwt".to_owned(),
    }
}

fn pipeline(metrics: &Metrics) -> Pipeline {
    let policy: Arc<dyn PolicyEngine> = Arc::new(RegoPolicyEngine::embedded().unwrap());
    Pipeline::new(
        policy,
        Arc::new(amas_tools::ToolRegistry::load(None).unwrap()),
        "development",
        metrics.clone(),
    )
}

fn call() -> RequestedTool {
    RequestedTool {
        id: "call-1".to_owned(),
        name: "http_fetch".to_owned(),
        arguments: json!({"url": "https://example.org"}),
    }
}

/// `amas_governance_decisions_total{stage, outcome}` as rendered.
fn decisions(metrics: &Metrics, stage: &str, outcome: &str) -> u64 {
    let needle =
        format!("amas_governance_decisions_total{{stage=\"{stage}\",outcome=\"{outcome}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn result_of(body: &str) -> (amas_governance::pipeline::ResultVerdict, Metrics) {
    let metrics = Metrics::new();
    let p = pipeline(&metrics);
    let who = principal();
    let ctx = ActionContext {
        principal: &who,
        task: Some(TaskId::new()),
        step: Some("research"),
        agent: Some("web_researcher"),
        trace_id: None,
    };
    let spec = p.tools().get("http_fetch").map(|t| t.spec());
    let verdict = p
        .tool_result(&ctx, &call(), spec, &json!({"body": body}))
        .await;
    (verdict, metrics)
}

#[tokio::test]
async fn a_clean_result_passes_every_post_stage_with_nothing_to_journal() {
    let (verdict, metrics) = result_of("Rust keeps memory safe.").await;
    assert!(verdict.refusal().is_none());
    assert!(
        verdict
            .decisions
            .iter()
            .all(|d| d.outcome == Outcome::Allow)
    );
    assert!(verdict.governed.events.is_empty());
    assert!(verdict.governed.audit.is_empty());
    // Any non-blank text is at least `internal` (the base level); no findings, no tags.
    let labels = verdict.labels.unwrap();
    assert_eq!(labels.classification, "internal");
    assert!(labels.tags.is_empty());
    assert_eq!(decisions(&metrics, "data_protection_in", "allow"), 1);
}

#[tokio::test]
async fn a_flagged_result_is_journaled_audited_and_counted() {
    let (verdict, metrics) = result_of("The letter said: I will kill you").await;
    assert!(verdict.refusal().is_none(), "a flag does not refuse");
    let [event] = verdict.governed.events.as_slice() else {
        panic!("one verdict to journal: {:?}", verdict.governed.events);
    };
    let JournalEvent::ActionDecided {
        action,
        stage,
        outcome,
        call_id,
        ..
    } = event
    else {
        panic!("{event:?}");
    };
    assert_eq!(
        (
            action.as_str(),
            stage.as_str(),
            outcome.as_str(),
            call_id.as_str()
        ),
        ("tool_result", "content_safety", "flag", "call-1")
    );
    let [record] = verdict.governed.audit.as_slice() else {
        panic!("one audit record");
    };
    assert_eq!(record.stage, "content_safety");
    assert_eq!(record.action, "tool_result");
    assert_eq!(record.decision, AuditDecision::Allow);
    assert_eq!(record.resource.as_deref(), Some("http_fetch"));
    assert_eq!(
        record.details["content_safety"]["categories"],
        json!(["violence"])
    );
    assert!(
        !record.details.to_string().contains("kill"),
        "never the words"
    );
    assert_eq!(decisions(&metrics, "content_safety", "flag"), 1);
}

#[tokio::test]
async fn a_blocked_result_is_refused_with_its_code_and_audited_as_a_denial() {
    let (verdict, metrics) = result_of("They preach about the master race.").await;
    let refusal = verdict.refusal().expect("refused");
    assert_eq!(refusal.stage, Stage::ContentSafety);
    assert_eq!(refusal.code, Some("AMAS-SAFE-0003"));
    assert_eq!(refusal.reasons, vec!["hate".to_owned()]);
    let record = &verdict.governed.audit[0];
    assert_eq!(record.decision, AuditDecision::Deny);
    assert_eq!(decisions(&metrics, "content_safety", "deny"), 1);
}

#[tokio::test]
async fn api_operations_fail_closed_without_a_policy_and_the_refusal_is_audited() {
    let metrics = Metrics::new();
    let who = principal();
    let tenant = TenantId("acme".to_owned());
    let refused = entry::api_operation(
        None,
        None,
        &metrics,
        &who,
        "task.read",
        Some(ApiResource {
            tenant: &tenant,
            owner: "bob",
        }),
    )
    .unwrap_err();
    let (decision, record) = *refused;
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(record.stage, "api_policy");
    assert_eq!(record.action, "task.read");
    assert_eq!(record.decision, AuditDecision::Deny);
    assert_eq!(record.details["owner"], "bob");

    // The allowed path: the embedded bundle lets a submitter read their own task.
    let policy = RegoPolicyEngine::embedded().unwrap();
    let allowed = entry::api_operation(
        Some(&policy),
        Some("development"),
        &metrics,
        &who,
        "task.read",
        Some(ApiResource {
            tenant: &tenant,
            owner: "alice",
        }),
    );
    assert!(allowed.is_ok(), "{allowed:?}");
    assert_eq!(decisions(&metrics, "api_policy", "allow"), 1);
}

#[test]
fn security_events_keep_their_audited_stage_and_action_strings() {
    let metrics = Metrics::new();
    let nobody = principal();
    let cases = [
        (
            SecurityEvent::AuthenticationFailed {
                code: "AMAS-AUTH-0001",
                reason: "missing",
                path: "/api/v1/tasks",
            },
            ("authentication", "authenticate", AuditDecision::Deny),
        ),
        (
            SecurityEvent::RateLimited {
                class: "read",
                path: "/api/v1/tasks",
            },
            ("rate_limit", "http_request", AuditDecision::Deny),
        ),
        (
            SecurityEvent::PolicyApplied {
                from_hash: "a",
                to_hash: "b",
            },
            ("policy_change", "policy.reload", AuditDecision::Allow),
        ),
        (
            SecurityEvent::ConfigLoaded {
                details: json!({"config_sha256": "c"}),
            },
            ("config_change", "config.load", AuditDecision::Recorded),
        ),
        (
            SecurityEvent::CrossTenant {
                operation: "task.read",
                object: "task:1",
            },
            ("tenant_isolation", "task.read", AuditDecision::Deny),
        ),
    ];
    for (event, (stage, action, decision)) in cases {
        let record = audit::security_record(&metrics, &nobody, event);
        assert_eq!(
            (
                record.stage.as_str(),
                record.action.as_str(),
                record.decision
            ),
            (stage, action, decision)
        );
    }
    assert_eq!(decisions(&metrics, "tenant_isolation", "deny"), 1);
}
