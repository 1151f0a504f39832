//! The pre-execution governance pipeline for tool calls, in the one order of ARCHITECTURE.md:
//! authorize (Rego) -> allowlist -> contract (parameters) -> sandbox bounds -> quotas. Each stage
//! is one explicit call; the first stage that does not allow decides, and every stage's outcome
//! is returned so the caller can journal and count it.

mod dlp;
mod quota;

pub use dlp::{DlpFacts, RedactedParameters};
pub use quota::{QuotaWindows, TaskToolUsage};

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use amas_config::{AgentConfig, SandboxConfig};
use amas_dataprotect::{DataProtector, TenantKey};
use amas_policy::{Decision, DecisionPoint, PolicyEngine};
use amas_telemetry::Metrics;
use amas_telemetry::metrics::{DecisionLabels, PolicyDecisionLabels};
use amas_tools::{Risk, SideEffects, ToolKind, ToolSpec};
use amas_types::Principal;

/// One stage's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    RequireApproval,
}

impl Outcome {
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::RequireApproval => "require_approval",
        }
    }
}

/// What one stage decided and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageDecision {
    pub stage: &'static str,
    pub outcome: Outcome,
    pub reasons: Vec<String>,
    /// Stable code of a denial (`docs/errors/`).
    pub code: Option<&'static str>,
    /// What an allow obliges the caller to do (policy's `obligations`, e.g. `redact`).
    pub obligations: Vec<String>,
    /// SHA-256 of the policy bundle that decided, for the stages policy decides (the audit
    /// log's `policy.hash`); `None` for the fixed stages (allowlist, contract, sandbox, quota).
    pub policy: Option<String>,
}

/// Obligations the runtime knows how to carry out. An allow with any other obligation is
/// refused (`AMAS-GOV-0012`): an obligation nobody fulfils must not become a silent allow.
pub mod obligations {
    /// Send only the redacted data (the prompt or the parameters).
    pub const REDACT: &str = "redact";
    pub const KNOWN: [&str; 1] = [REDACT];
}

/// The codes of governance denials, by their short names; the codes and their summaries are
/// defined once, in the registry [`amas_types::codes`].
pub mod codes {
    pub use amas_types::codes::{
        GOV_APPROVAL_DENIED as APPROVAL_DENIED, GOV_APPROVAL_EXPIRED as APPROVAL_EXPIRED,
        GOV_APPROVAL_REQUIRED as APPROVAL_REQUIRED, GOV_INVALID_PARAMS as INVALID_PARAMS,
        GOV_NOT_ALLOWLISTED as NOT_ALLOWLISTED, GOV_NOT_AN_APPROVER as NOT_AN_APPROVER,
        GOV_OBLIGATION_UNMET as OBLIGATION_UNMET, GOV_POLICY_DENIED as POLICY_DENIED,
        GOV_QUOTA as QUOTA, GOV_SANDBOX as SANDBOX, GOV_SELF_APPROVAL as SELF_APPROVAL,
        GOV_UNKNOWN_TOOL as UNKNOWN_TOOL,
    };
}

/// Everything the pipeline needs to know about one requested tool call.
pub struct ToolCallRequest<'a> {
    pub principal: &'a Principal,
    pub agent: &'a AgentConfig,
    pub task_id: &'a str,
    pub task_type: &'a str,
    pub tool: &'a str,
    pub arguments: &'a Value,
    /// The task's tool usage so far (from its journal).
    pub usage: &'a TaskToolUsage,
    /// Approvers' votes on this call (empty until an approver decides), in the policy input's
    /// shape: `{approver, roles, decision}`.
    pub approvals: &'a [Value],
}

/// Everything policy needs to know about one model call.
pub struct ModelCallRequest<'a> {
    pub principal: &'a Principal,
    pub agent: &'a AgentConfig,
    pub task_id: &'a str,
    pub task_type: &'a str,
    pub provider: &'a str,
    /// Levels the provider may receive (`providers.<name>.trusted_for`).
    pub trusted_for: &'a [String],
    /// The prompt's classification level (`public` ..= `restricted`).
    pub classification: &'a str,
    pub tags: &'a [String],
    /// The classification of the prompt once redacted (level and tags), when it can be
    /// redacted; policy may allow an untrusted provider on condition of redaction.
    pub redacted: Option<(&'a str, &'a [String])>,
}

/// The verdict on a tool call: every stage that ran, in order; the last one decides.
#[derive(Clone, Debug)]
pub struct GateVerdict {
    pub stages: Vec<StageDecision>,
    /// How long the gate took to decide (all stages).
    pub duration: std::time::Duration,
    /// What the parameters carry (DLP); `None` when the call never reached policy.
    pub dlp: Option<DlpFacts>,
}

impl GateVerdict {
    /// The deciding stage: the first that denied, else the one that asked for approval, else
    /// the last.
    #[must_use]
    pub fn decisive(&self) -> Option<&StageDecision> {
        self.stages
            .iter()
            .find(|s| s.outcome == Outcome::Deny)
            .or_else(|| {
                self.stages
                    .iter()
                    .find(|s| s.outcome == Outcome::RequireApproval)
            })
            .or_else(|| self.stages.last())
    }

    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.decisive().map_or(Outcome::Deny, |s| s.outcome.clone())
    }

    /// SHA-256 of the policy bundle that decided the policy stage, when it was reached.
    #[must_use]
    pub fn policy_hash(&self) -> Option<&str> {
        self.stages.iter().find_map(|s| s.policy.as_deref())
    }
}

/// The tool-call gate. Cheap to share.
pub struct ToolGate {
    policy: Arc<dyn PolicyEngine>,
    tools: Arc<amas_tools::ToolRegistry>,
    windows: QuotaWindows,
    environment: String,
    approver_roles: Vec<String>,
    metrics: Metrics,
    /// Scans tool parameters for DLP; `None` only if the embedded configuration is broken,
    /// and then every parameter counts as unscannable (fail closed).
    protector: Option<Arc<DataProtector>>,
    /// Secret keying hash-mode redaction tokens, combined with the tenant.
    redact_secret: String,
}

/// The redaction key secret when none is configured: tokens are stable, but anyone can confirm
/// a guessed value. `AMAS_REDACT_KEY` (read by the CLI) replaces it.
pub const DEFAULT_REDACT_SECRET: &str = "amas-redact";

impl ToolGate {
    #[must_use]
    pub fn new(
        policy: Arc<dyn PolicyEngine>,
        tools: Arc<amas_tools::ToolRegistry>,
        environment: impl Into<String>,
        metrics: Metrics,
    ) -> Self {
        Self {
            policy,
            tools,
            windows: QuotaWindows::default(),
            environment: environment.into(),
            approver_roles: vec!["approver".to_owned(), "admin".to_owned()],
            metrics,
            protector: DataProtector::shared_embedded(),
            redact_secret: DEFAULT_REDACT_SECRET.to_owned(),
        }
    }

    /// The data protector that scans tool parameters (and its configuration's DLP actions).
    #[must_use]
    pub fn with_data_protector(mut self, protector: Arc<DataProtector>) -> Self {
        self.protector = Some(protector);
        self
    }

    /// The data protector that scans tool parameters, for components that must classify the
    /// same way (the runtime).
    #[must_use]
    pub fn data_protector(&self) -> Option<&Arc<DataProtector>> {
        self.protector.as_ref()
    }

    /// The secret keying hash-mode redaction tokens (with the tenant id).
    #[must_use]
    pub fn with_redact_secret(mut self, secret: impl Into<String>) -> Self {
        self.redact_secret = secret.into();
        self
    }

    /// The redaction key of `tenant`: the same value gives the same token within a tenant.
    #[must_use]
    pub fn tenant_key(&self, tenant: &str) -> TenantKey {
        TenantKey::new(format!("{}\u{0}{tenant}", self.redact_secret))
    }

    /// The DLP facts of `arguments` sent by `principal`.
    #[must_use]
    pub fn dlp_facts(&self, principal: &Principal, arguments: &Value) -> DlpFacts {
        match &self.protector {
            Some(p) => DlpFacts::of(p, &self.tenant_key(&principal.tenant.0), arguments),
            None => DlpFacts::unavailable(),
        }
    }

    /// The roles whose approvals count (config `approvals.approver_roles`); passed to policy.
    #[must_use]
    pub fn with_approver_roles(mut self, roles: Vec<String>) -> Self {
        self.approver_roles = roles;
        self
    }

    #[must_use]
    pub fn approver_roles(&self) -> &[String] {
        &self.approver_roles
    }

    #[must_use]
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Distinct approvers a call of `spec` needs: two for high-risk tools in `production`. The
    /// policy makes the actual decision (`policies/tool.rego`, `required_approvers`); this count is
    /// what approvers are shown.
    #[must_use]
    pub fn required_approvals(&self, spec: &ToolSpec) -> u32 {
        let high = matches!(spec.risk, Risk::High | Risk::Critical);
        if high && self.environment == "production" {
            2
        } else {
            1
        }
    }

    #[must_use]
    pub fn tools(&self) -> &Arc<amas_tools::ToolRegistry> {
        &self.tools
    }

    /// Runs every pre-execution stage in order, stopping at the first that denies. When policy
    /// asks for approval the later stages still run, so a call that would be refused anyway is
    /// refused now instead of bothering an approver. Only a call that passes outright is counted
    /// against the per-minute quota.
    #[must_use]
    pub fn check(&self, req: &ToolCallRequest<'_>) -> GateVerdict {
        let started = Instant::now();
        let mut stages = Vec::with_capacity(5);
        let Some(spec) = self.tools.get(req.tool).map(|t| t.spec()) else {
            stages.push(deny(
                "registry",
                codes::UNKNOWN_TOOL,
                format!("no tool named `{}` is configured", req.tool),
            ));
            return self.finish(stages, None, started);
        };
        let dlp = self.dlp_facts(req.principal, req.arguments);
        let policy = self.authorize(req, spec, &dlp);
        let needs_approval = policy.outcome == Outcome::RequireApproval;
        let denied = policy.outcome == Outcome::Deny;
        stages.push(policy);
        if denied {
            return self.finish(stages, Some(dlp), started);
        }
        let checks: [&dyn Fn() -> StageDecision; 4] = [
            &|| allowlist(req),
            &|| contract(req, spec),
            &|| sandbox(&req.agent.sandbox, spec, req.usage),
            &|| self.windows.check(req, spec, !needs_approval),
        ];
        for check in checks {
            let decision = check();
            let stop = decision.outcome == Outcome::Deny;
            stages.push(decision);
            if stop {
                break;
            }
        }
        self.finish(stages, Some(dlp), started)
    }

    fn finish(
        &self,
        stages: Vec<StageDecision>,
        dlp: Option<DlpFacts>,
        started: Instant,
    ) -> GateVerdict {
        for s in &stages {
            self.metrics
                .governance_decisions
                .get_or_create(&DecisionLabels {
                    stage: s.stage.to_owned(),
                    outcome: s.outcome.as_str().to_owned(),
                })
                .inc();
        }
        let duration = started.elapsed();
        self.metrics
            .governance_duration
            .observe(duration.as_secs_f64());
        GateVerdict {
            stages,
            duration,
            dlp,
        }
    }

    /// Asks the policy, counting whether the memo answered.
    fn decide(&self, point: DecisionPoint, input: &Value) -> Decision {
        counted_decision(self.policy.as_ref(), &self.metrics, point, input)
    }

    /// Stage 1: Rego. An error, timeout or undefined result is already a deny from the engine.
    fn authorize(
        &self,
        req: &ToolCallRequest<'_>,
        spec: &ToolSpec,
        dlp: &DlpFacts,
    ) -> StageDecision {
        let input = self.policy_input(req, spec, dlp);
        let d = self.decide(DecisionPoint::ToolCall, &input);
        if let Some(refusal) = unknown_obligation("policy", &d) {
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
            Outcome::Allow => None,
            Outcome::Deny => Some(codes::POLICY_DENIED),
            Outcome::RequireApproval => Some(codes::APPROVAL_REQUIRED),
        };
        StageDecision {
            stage: "policy",
            outcome,
            reasons: d.reasons,
            code,
            obligations: d.obligations,
            policy: Some(d.bundle_hash.clone()),
        }
    }

    /// Whether `principal` may submit a task of `task_type` (Rego, `data.amas.task.decision`).
    /// Fails closed: anything but a clean allow is a denial with its reasons.
    #[must_use]
    pub fn authorize_submission(&self, principal: &Principal, task_type: &str) -> StageDecision {
        let started = Instant::now();
        let input = json!({
            "principal": principal_doc(principal),
            "action": {"kind": "task_submit", "name": task_type},
            "task": {"type": task_type},
            "environment": self.environment,
        });
        let d = self.decide(DecisionPoint::TaskSubmit, &input);
        let decision = if d.allow {
            StageDecision {
                policy: Some(d.bundle_hash),
                ..allow("policy")
            }
        } else {
            StageDecision {
                stage: "policy",
                outcome: Outcome::Deny,
                reasons: d.reasons,
                code: Some(codes::POLICY_DENIED),
                obligations: Vec::new(),
                policy: Some(d.bundle_hash),
            }
        };
        self.finish(vec![decision.clone()], None, started);
        decision
    }

    /// Whether `agent` may send data of `classification` to `provider` (Rego,
    /// `data.amas.model.decision`), given the levels the provider is trusted with. An allow may
    /// carry the obligation `redact` (send the redacted prompt). Fails closed.
    #[must_use]
    pub fn authorize_model_call(&self, call: &ModelCallRequest<'_>) -> StageDecision {
        let started = Instant::now();
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
        let decision = unknown_obligation("model_policy", &d).unwrap_or_else(|| StageDecision {
            stage: "model_policy",
            outcome: if d.allow {
                Outcome::Allow
            } else {
                Outcome::Deny
            },
            reasons: d.reasons,
            code: (!d.allow).then_some(codes::POLICY_DENIED),
            obligations: d.obligations,
            policy: Some(d.bundle_hash.clone()),
        });
        self.finish(vec![decision.clone()], None, started);
        decision
    }

    /// The policy input document (docs/policies.md), with the parameters' DLP facts.
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
/// the memo answered. Every decision AMAS asks for goes through here (tool calls, model calls,
/// API operations), so the hit rate covers them all.
#[must_use]
pub fn counted_decision(
    policy: &dyn PolicyEngine,
    metrics: &Metrics,
    point: DecisionPoint,
    input: &Value,
) -> Decision {
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

/// The principal as every policy input shows it.
fn principal_doc(principal: &Principal) -> Value {
    json!({
        "sub": principal.sub,
        "roles": principal.roles,
        "tenant": principal.tenant.0,
    })
}

fn deny(stage: &'static str, code: &'static str, reason: String) -> StageDecision {
    StageDecision {
        stage,
        outcome: Outcome::Deny,
        reasons: vec![reason],
        code: Some(code),
        obligations: Vec::new(),
        policy: None,
    }
}

fn allow(stage: &'static str) -> StageDecision {
    StageDecision {
        stage,
        outcome: Outcome::Allow,
        reasons: Vec::new(),
        code: None,
        obligations: Vec::new(),
        policy: None,
    }
}

/// A deny when policy allowed under an obligation AMAS does not know (fail closed).
fn unknown_obligation(stage: &'static str, d: &Decision) -> Option<StageDecision> {
    let unknown: Vec<&String> = d
        .obligations
        .iter()
        .filter(|o| !obligations::KNOWN.contains(&o.as_str()))
        .collect();
    (!unknown.is_empty()).then(|| StageDecision {
        policy: Some(d.bundle_hash.clone()),
        ..deny(
            stage,
            codes::OBLIGATION_UNMET,
            format!(
                "policy allowed on obligations this AMAS cannot carry out: {}",
                unknown
                    .iter()
                    .map(|o| o.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// Stage 2: the agent's configured allowlist, enforced whatever policy said.
fn allowlist(req: &ToolCallRequest<'_>) -> StageDecision {
    if req.agent.allowed_tools.iter().any(|t| t == req.tool) {
        allow("allowlist")
    } else {
        deny(
            "allowlist",
            codes::NOT_ALLOWLISTED,
            format!(
                "tool `{}` is not in agent `{}`'s allowed_tools",
                req.tool, req.agent.id
            ),
        )
    }
}

/// Stage 3: the parameters against the tool's JSON Schema.
fn contract(req: &ToolCallRequest<'_>, spec: &ToolSpec) -> StageDecision {
    let violations = spec.parameters.check(req.arguments);
    if violations.is_empty() {
        allow("contract")
    } else {
        let reasons = violations.iter().map(ToString::to_string).collect();
        StageDecision {
            stage: "contract",
            outcome: Outcome::Deny,
            reasons,
            code: Some(codes::INVALID_PARAMS),
            obligations: Vec::new(),
            policy: None,
        }
    }
}

/// Stage 4: side-effect bounds of the agent.
fn sandbox(bounds: &SandboxConfig, spec: &ToolSpec, usage: &TaskToolUsage) -> StageDecision {
    let refuse = |why: String| deny("sandbox", codes::SANDBOX, why);
    match spec.side_effects {
        SideEffects::Write | SideEffects::External if bounds.read_only => {
            return refuse(format!(
                "the agent is read-only and `{}` has {:?} side effects",
                spec.name, spec.side_effects
            ));
        }
        SideEffects::External if !bounds.network => {
            return refuse(format!(
                "the agent has no network access and `{}` reaches outside",
                spec.name
            ));
        }
        SideEffects::None | SideEffects::Read | SideEffects::Write | SideEffects::External => {}
    }
    match spec.kind {
        ToolKind::FileRead if usage.file_reads >= bounds.max_file_reads => refuse(format!(
            "file read limit reached ({} per task)",
            bounds.max_file_reads
        )),
        ToolKind::FileWrite if usage.file_writes >= bounds.max_file_writes => refuse(format!(
            "file write limit reached ({} per task)",
            bounds.max_file_writes
        )),
        _ => allow("sandbox"),
    }
}
