//! What the pipeline makes of every decision besides the decision itself: the audit record,
//! the `amas_governance_decisions_total` count and the span. No other crate builds an
//! [`AuditRecord`] or counts a governance decision; they hand the pipeline what happened
//! (a [`SecurityEvent`] for events outside a governed action) and write what it returns.

use std::time::Duration;

use serde_json::{Value, json};

use amas_store::AuditRecord;
use amas_store::audit::AuditDecision;
use amas_telemetry::Metrics;
use amas_telemetry::metrics::DecisionLabels;
use amas_types::{AgentId, Decision, Outcome, Principal, Stage, StepId, TaskId, TenantId};

/// Who acts and where, for the records of one governed action.
#[derive(Clone, Debug)]
pub struct ActionContext<'a> {
    pub principal: &'a Principal,
    pub task: Option<TaskId>,
    pub step: Option<&'a StepId>,
    pub agent: Option<&'a AgentId>,
    pub trace_id: Option<String>,
}

impl<'a> ActionContext<'a> {
    /// An action of `principal` outside any task (an API operation, a security event), in
    /// the current trace.
    #[must_use]
    pub fn of(principal: &'a Principal) -> Self {
        Self {
            principal,
            task: None,
            step: None,
            agent: None,
            trace_id: amas_telemetry::current_trace_id(),
        }
    }

    /// The audit record of `stage` deciding `action`, filed under this context.
    #[must_use]
    pub fn record(&self, stage: Stage, action: &str, decision: AuditDecision) -> AuditRecord {
        let mut record = new_record(self.principal, stage, action, decision);
        if let Some(task) = self.task {
            record = record.with_task(task);
        }
        if let Some(step) = self.step {
            record = record.with_step(step.as_str());
        }
        if let Some(agent) = self.agent {
            record = record.with_agent(agent.as_str());
        }
        if let Some(trace) = &self.trace_id {
            record = record.with_trace_id(trace.clone());
        }
        record
    }

    /// The record of `decision` about `action` on `resource`, with its reasons and bundle.
    #[must_use]
    pub fn decided(&self, action: &str, resource: &str, decision: &Decision) -> AuditRecord {
        let mut record = self
            .record(decision.stage, action, audit_decision(decision.outcome))
            .with_resource(resource.to_owned())
            .with_reasons(&decision.reasons);
        if let Some(hash) = &decision.policy {
            record = record.with_bundle(hash);
        }
        record
    }

    /// The record of a model call's answer: provider and model, tokens, estimated cost
    /// (millionths of the price unit) and latency. Never the prompt or the answer.
    #[must_use]
    pub fn model_usage(&self, provider: &str, model: &str, usage: ModelUsage) -> AuditRecord {
        let mut record = self
            .record(Stage::ModelUsage, "model_response", AuditDecision::Recorded)
            .with_resource(provider.to_owned())
            .with_tokens(usage.input_tokens, usage.output_tokens)
            .with_duration(usage.latency)
            .with_details(json!({"model": model}));
        if let Some(cost) = usage.cost {
            // Rounded to whole millionths; costs are non-negative and far below u64::MAX.
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a non-negative cost in millionths fits in u64"
            )]
            let micros = (cost * 1_000_000.0).round().max(0.0) as u64;
            record = record.with_cost_micros(micros);
        }
        record
    }
}

/// What one model call used, for its audit record.
#[derive(Clone, Copy, Debug)]
pub struct ModelUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency: Duration,
    pub cost: Option<f64>,
}

/// A security event outside a governed action: who (or nobody) did what, and the verdict.
#[derive(Clone, Debug)]
pub enum SecurityEvent<'a> {
    /// A request without a valid token (`code`: the auth error's code).
    AuthenticationFailed {
        code: &'a str,
        reason: &'a str,
        path: &'a str,
    },
    /// The first refusal of a rate-limit flood (`class`: the limiter class).
    RateLimited { class: &'a str, path: &'a str },
    /// A request for another tenant's object, answered as not found.
    CrossTenant { operation: &'a str, object: &'a str },
    /// What this process runs with (configuration and policy hashes), at start.
    ConfigLoaded { details: Value },
    /// A changed policy bundle was loaded.
    PolicyApplied {
        from_hash: &'a str,
        to_hash: &'a str,
    },
    /// A changed policy bundle was rejected; the one in force stays.
    PolicyRejected {
        in_force: &'a str,
        rejected: &'a str,
        code: &'a str,
        error: &'a str,
    },
    /// Retention purged a task's expired payloads.
    RetentionPurge {
        task: TaskId,
        task_type: &'a str,
        reason: String,
    },
}

/// The audit record of `event` by `principal`, in the current trace; a denial among them is
/// also counted as a governance decision of its stage.
#[must_use]
pub fn security_record(
    metrics: &Metrics,
    principal: &Principal,
    event: SecurityEvent<'_>,
) -> AuditRecord {
    let ctx = ActionContext::of(principal);
    match event {
        SecurityEvent::AuthenticationFailed { code, reason, path } => ctx
            .record(Stage::Authentication, "authenticate", AuditDecision::Deny)
            .with_reason(format!("{code}: {reason}"))
            .with_resource(path.to_owned()),
        SecurityEvent::RateLimited { class, path } => ctx
            .record(Stage::RateLimit, "http_request", AuditDecision::Deny)
            .with_reason(format!(
                "AMAS-API-0007: the `{class}` rate limit is exhausted"
            ))
            .with_resource(path.to_owned()),
        SecurityEvent::CrossTenant { operation, object } => {
            count(metrics, Stage::TenantIsolation, Outcome::Deny);
            ctx.record(Stage::TenantIsolation, operation, AuditDecision::Deny)
                .with_resource(object.to_owned())
                .with_reason(
                    "the object belongs to another tenant; answered as not found (AMAS-API-0002)",
                )
        }
        SecurityEvent::ConfigLoaded { details } => ctx
            .record(Stage::ConfigChange, "config.load", AuditDecision::Recorded)
            .with_details(details),
        SecurityEvent::PolicyApplied { from_hash, to_hash } => ctx
            .record(Stage::PolicyChange, "policy.reload", AuditDecision::Allow)
            .with_bundle(to_hash)
            .with_reason("a changed policy bundle was loaded")
            .with_details(json!({"from_sha256": from_hash, "to_sha256": to_hash})),
        SecurityEvent::PolicyRejected {
            in_force,
            rejected,
            code,
            error,
        } => ctx
            .record(Stage::PolicyChange, "policy.reload", AuditDecision::Deny)
            .with_bundle(in_force)
            .with_reason(format!("{code}: {error}"))
            .with_details(json!({"rejected_sha256": rejected, "in_force_sha256": in_force})),
        SecurityEvent::RetentionPurge {
            task,
            task_type,
            reason,
        } => ctx
            .record(Stage::Retention, "purge", AuditDecision::Recorded)
            .with_task(task)
            .with_resource(format!("task_type:{task_type}"))
            .with_reason(reason)
            .with_details(Value::Null),
    }
}

/// AMAS itself, as the principal of the events it records (starts, policy reloads, purges).
#[must_use]
pub fn system_principal(tenant: TenantId) -> Principal {
    Principal {
        sub: "amas".to_owned(),
        roles: Vec::new(),
        tenant,
        auth_method: "system".to_owned(),
        issuer: "system".to_owned(),
    }
}

/// The audit verdict of a stage outcome (a flag is an allow worth a record).
#[must_use]
pub fn audit_decision(outcome: Outcome) -> AuditDecision {
    match outcome {
        Outcome::Allow | Outcome::Flag => AuditDecision::Allow,
        Outcome::Deny => AuditDecision::Deny,
        Outcome::RequireApproval => AuditDecision::RequireApproval,
    }
}

/// Counts one decision in `amas_governance_decisions_total{stage, outcome}`: the only place
/// that counter moves.
pub fn count(metrics: &Metrics, stage: Stage, outcome: Outcome) {
    count_label(metrics, stage, outcome.as_str());
}

/// As [`count`], for the approval states (`requested`, `approved`, `denied`, `expired`).
pub fn count_label(metrics: &Metrics, stage: Stage, outcome: &str) {
    metrics
        .governance_decisions
        .get_or_create(&DecisionLabels {
            stage: stage.as_str().to_owned(),
            outcome: outcome.to_owned(),
        })
        .inc();
}

/// The span of one governance evaluation: what was asked about, then which stage decided what.
#[must_use]
pub fn span(action: amas_types::ActionKind, resource: &str) -> tracing::Span {
    tracing::info_span!(
        "amas.governance",
        otel.name = %format_args!("governance {action}"),
        amas.action = %action,
        amas.resource = %resource,
        amas.stage = tracing::field::Empty,
        amas.outcome = tracing::field::Empty,
    )
}

/// Records the deciding stage on a governance span.
pub fn record_on(span: &tracing::Span, decision: &Decision) {
    span.record("amas.stage", decision.stage.as_str());
    span.record("amas.outcome", decision.outcome.as_str());
}

fn new_record(
    principal: &Principal,
    stage: Stage,
    action: &str,
    decision: AuditDecision,
) -> AuditRecord {
    AuditRecord::new(principal, stage.as_str(), action, decision)
}
