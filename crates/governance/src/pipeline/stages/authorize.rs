//! Stage: authorize by Rego, one decision point per action kind (tool call, model call, task
//! submission, API operation). The engine already fails closed (an error, a timeout or an
//! undefined result is a deny); this stage also refuses an allow under an obligation AMAS
//! cannot carry out.

use serde_json::{Value, json};

use amas_policy::{Decision as PolicyDecision, DecisionPoint, PolicyEngine};
use amas_telemetry::Metrics;
use amas_telemetry::metrics::PolicyDecisionLabels;
use amas_tools::ToolSpec;
use amas_types::{Decision, Outcome, Principal, Stage};

use super::deny;
use super::dlp::DlpFacts;
use crate::pipeline::{
    ApiResource, ModelCallRequest, Pipeline, ToolCallRequest, codes, obligations,
};

impl Pipeline {
    /// Asks the policy, counting whether the memo answered.
    fn decide(&self, point: DecisionPoint, input: &Value) -> PolicyDecision {
        counted_decision(self.policy.as_ref(), &self.metrics, point, input)
    }

    /// A tool call (`data.amas.tool.decision`), with the parameters' DLP facts.
    pub(crate) fn authorize_tool(
        &self,
        req: &ToolCallRequest<'_>,
        spec: &ToolSpec,
        dlp: &DlpFacts,
    ) -> Decision {
        let input = self.policy_input(req, spec, dlp);
        let d = self.decide(DecisionPoint::ToolCall, &input);
        if let Some(refusal) = unknown_obligation(Stage::Policy, &d) {
            return refusal;
        }
        let outcome = if !d.allow && !d.require_approval {
            Outcome::Deny
        } else if d.require_approval {
            Outcome::RequireApproval
        } else {
            Outcome::Allow
        };
        let code = match outcome {
            Outcome::Allow | Outcome::Flag => None,
            Outcome::Deny => Some(codes::POLICY_DENIED),
            Outcome::RequireApproval => Some(codes::APPROVAL_REQUIRED),
        };
        Decision {
            stage: Stage::Policy,
            outcome,
            reasons: d.reasons,
            code,
            obligations: d.obligations,
            policy: Some(d.bundle_hash),
        }
    }

    /// A task submission (`data.amas.task.decision`): anything but a clean allow is a denial.
    pub(crate) fn authorize_submission_stage(
        &self,
        principal: &Principal,
        task_type: &str,
    ) -> Decision {
        let input = json!({
            "principal": principal_doc(principal),
            "action": {"kind": "task_submit", "name": task_type},
            "task": {"type": task_type},
            "environment": self.environment,
        });
        let d = self.decide(DecisionPoint::TaskSubmit, &input);
        Decision {
            stage: Stage::Policy,
            outcome: if d.allow {
                Outcome::Allow
            } else {
                Outcome::Deny
            },
            reasons: if d.allow { Vec::new() } else { d.reasons },
            code: (!d.allow).then_some(codes::POLICY_DENIED),
            obligations: Vec::new(),
            policy: Some(d.bundle_hash),
        }
    }

    /// A model call (`data.amas.model.decision`): may the prompt, as classified, go to this
    /// provider. An allow may oblige `redact`.
    pub(crate) fn authorize_model_stage(&self, call: &ModelCallRequest<'_>) -> Decision {
        let mut data = json!({"classification": call.classification, "tags": call.tags});
        if let Some((level, tags)) = call.redacted {
            data["redacted"] = json!({"classification": level, "tags": tags});
        }
        let input = json!({
            "principal": principal_doc(call.principal),
            "agent": {"id": call.agent.id, "role": call.agent.role},
            "action": {"kind": "model_call", "name": call.provider},
            "provider": {"name": call.provider, "trusted_for": call.trusted_for},
            "data": data,
            "task": {"id": call.task_id, "type": call.task_type},
            "environment": self.environment,
        });
        let d = self.decide(DecisionPoint::ModelCall, &input);
        unknown_obligation(Stage::ModelPolicy, &d).unwrap_or_else(|| Decision {
            stage: Stage::ModelPolicy,
            outcome: if d.allow {
                Outcome::Allow
            } else {
                Outcome::Deny
            },
            code: (!d.allow).then_some(codes::POLICY_DENIED),
            reasons: d.reasons,
            obligations: d.obligations,
            policy: Some(d.bundle_hash),
        })
    }

    /// The policy input document of a tool call (docs/policies.md), with the parameters' DLP
    /// facts.
    #[must_use]
    pub fn policy_input(
        &self,
        req: &ToolCallRequest<'_>,
        spec: &ToolSpec,
        dlp: &DlpFacts,
    ) -> Value {
        json!({
            "principal": principal_doc(req.principal),
            "agent": {"id": req.agent.id, "role": req.agent.role},
            "action": {"kind": "tool_call", "name": spec.name},
            "tool": {
                "name": spec.name,
                "risk": spec.risk,
                "side_effects": spec.side_effects,
                "idempotent": spec.idempotent,
                "requires_approval": spec.requires_approval,
            },
            "data": dlp.data_doc(),
            "dlp": dlp.dlp_doc(),
            "task": {"id": req.task_id, "type": req.task_type},
            "environment": self.environment,
            "parameters": req.arguments,
            "usage": {
                "tool_calls": req.usage.tool_calls,
                "bytes_out": req.usage.bytes_out,
            },
            "approvals": req.approvals,
            "approver_roles": self.approver_roles,
        })
    }
}

/// Asks `policy` at `point`, counting the decision in `amas_policy_decisions_total` by whether
/// the memo answered. Every decision AMAS asks for goes through here, so the hit rate covers
/// them all.
#[must_use]
pub fn counted_decision(
    policy: &dyn PolicyEngine,
    metrics: &Metrics,
    point: DecisionPoint,
    input: &Value,
) -> PolicyDecision {
    let d = policy.decide(point, input);
    metrics
        .policy_decisions
        .get_or_create(&PolicyDecisionLabels {
            point: point.as_str().to_owned(),
            source: if d.memoized { "memo" } else { "evaluated" }.to_owned(),
        })
        .inc();
    d
}

/// An API operation (`data.amas.api.decision`) on an object of `resource`'s tenant and owner.
#[must_use]
pub fn api(
    policy: &dyn PolicyEngine,
    metrics: &Metrics,
    environment: Option<&str>,
    principal: &Principal,
    operation: &str,
    resource: Option<ApiResource<'_>>,
) -> Decision {
    let mut input = json!({
        "principal": principal_doc(principal),
        "action": {"kind": "api", "name": operation},
    });
    if let Some(env) = environment {
        input["environment"] = Value::from(env);
    }
    if let Some(r) = resource {
        input["resource"] =
            json!({"tenant": r.tenant.0, "owner": r.owner, "owner_iss": r.owner_issuer});
    }
    let d = counted_decision(policy, metrics, DecisionPoint::Api, &input);
    Decision {
        stage: Stage::ApiPolicy,
        outcome: if d.allow {
            Outcome::Allow
        } else {
            Outcome::Deny
        },
        code: (!d.allow).then_some(codes::POLICY_DENIED),
        reasons: d.reasons,
        obligations: Vec::new(),
        policy: Some(d.bundle_hash),
    }
}

/// The principal as every policy input shows it: who (`sub` at `iss`), roles, tenant.
fn principal_doc(principal: &Principal) -> Value {
    json!({
        "sub": principal.sub,
        "iss": principal.issuer,
        "roles": principal.roles,
        "tenant": principal.tenant.0,
    })
}

/// A deny when policy allowed under an obligation AMAS does not know (fail closed).
fn unknown_obligation(stage: Stage, d: &PolicyDecision) -> Option<Decision> {
    let unknown: Vec<&str> = d
        .obligations
        .iter()
        .map(String::as_str)
        .filter(|o| !obligations::KNOWN.contains(o))
        .collect();
    (!unknown.is_empty()).then(|| Decision {
        policy: Some(d.bundle_hash.clone()),
        ..deny(
            stage,
            codes::OBLIGATION_UNMET,
            format!(
                "policy allowed on obligations this AMAS cannot carry out: {}",
                unknown.join(", ")
            ),
        )
    })
}
