//! The governance pipeline: the one object every governed action goes through. One entry
//! point per action kind (tool call, model call, model output, task submission, API
//! operation, release of data to a reader, security events outside an action), each running
//! a short ordered list of named stage functions (`stages/`) and returning the typed
//! decisions, the journal events and the audit records it made. The pipeline owns the
//! `amas_governance_decisions_total` count, the audit record and the span of every stage
//! (`audit`); callers journal and write what it returns.
//!
//! A tool call, in order: registry -> DLP facts (the parameters, as policy input) ->
//! authorize (Rego) -> allowlist -> input contract -> sandbox -> quota -> [approval wait, in
//! the runtime] -> DLP out (`outbound_arguments`) -> EXECUTE (the caller's closure) -> output
//! contract -> content safety -> prompt-injection screening -> DLP in / classification.

pub mod audit;
pub mod entry;
pub mod stages;
pub mod tool;

pub use amas_types::{ActionKind, Decision, Outcome, Stage};
pub use audit::{ActionContext, ModelUsage, SecurityEvent};
pub use entry::{
    ApiResource, Governed, ModelCallDecisions, ModelCallSite, ModelOutputVerdict, PromptLabels,
    ResultVerdict, SubmissionRefused,
};
pub use stages::authorize::counted_decision;
pub use stages::dlp::{DlpFacts, RedactedParameters};
pub use stages::quota::{QuotaWindows, TaskToolUsage};
pub use tool::{Cleared, ToolAction, ToolCallSite};

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use amas_config::AgentConfig;
use amas_dataprotect::{ContentSafety, DataProtector, TenantKey};
use amas_policy::PolicyEngine;
use amas_telemetry::Metrics;
use amas_tools::{Risk, ToolSpec};
use amas_types::Principal;

/// One stage's verdict (the shared vocabulary's [`Decision`]).
pub type StageDecision = Decision;

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
pub struct ToolVerdict {
    pub stages: Vec<StageDecision>,
    /// How long the gate took to decide (all stages).
    pub duration: std::time::Duration,
    /// What the parameters carry (DLP); `None` when the call never reached policy.
    pub dlp: Option<DlpFacts>,
}

impl ToolVerdict {
    /// The deciding stage: the first that denied, else the one that asked for approval, else
    /// the last.
    #[must_use]
    pub fn decisive(&self) -> Option<&StageDecision> {
        amas_types::governance::decisive(&self.stages, |s| s.outcome)
    }

    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.decisive().map_or(Outcome::Deny, |s| s.outcome)
    }

    /// SHA-256 of the policy bundle that decided the policy stage, when it was reached.
    #[must_use]
    pub fn policy_hash(&self) -> Option<&str> {
        self.stages.iter().find_map(|s| s.policy.as_deref())
    }
}

/// The governance pipeline. Cheap to share (`Arc`).
pub struct Pipeline {
    policy: Arc<dyn PolicyEngine>,
    tools: Arc<amas_tools::ToolRegistry>,
    windows: QuotaWindows,
    environment: String,
    approver_roles: Vec<String>,
    metrics: Metrics,
    /// Scans tool parameters and results for DLP; `None` only if the embedded configuration
    /// is broken, and then every parameter counts as unscannable (fail closed).
    protector: Option<Arc<DataProtector>>,
    /// Screens submissions, model answers and tool results.
    safety: Arc<ContentSafety>,
    /// Screens tool results for instructions aimed at the agent.
    injection: Arc<amas_dataprotect::InjectionScreen>,
    /// Secret keying hash-mode redaction tokens, combined with the tenant.
    redact_secret: String,
}

/// The redaction key secret when none is configured: tokens are stable, but anyone can confirm
/// a guessed value. `AMAS_REDACT_KEY` (read by the CLI) replaces it.
pub const DEFAULT_REDACT_SECRET: &str = "amas-redact";

impl Pipeline {
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
            safety: Arc::new(DataProtector::shared_embedded().map_or_else(
                // The embedded configuration is broken: every category blocks (fail closed).
                || {
                    let actions = amas_dataprotect::Category::ALL
                        .into_iter()
                        .map(|c| (c, amas_dataprotect::Action::Block))
                        .collect();
                    ContentSafety::new(
                        actions,
                        amas_dataprotect::safety::LexiconClassifier::builtin(),
                    )
                },
                |p| ContentSafety::from_config(p.config()),
            )),
            injection: Arc::new(
                DataProtector::shared_embedded()
                    .map(|p| amas_dataprotect::InjectionScreen::from_config(p.config()))
                    .unwrap_or_default(),
            ),
            protector: DataProtector::shared_embedded(),
            redact_secret: DEFAULT_REDACT_SECRET.to_owned(),
        }
    }

    /// The data protector that scans tool parameters and results (and its configuration's
    /// DLP actions); content safety follows its configuration until
    /// [`Pipeline::with_content_safety`] says otherwise.
    #[must_use]
    pub fn with_data_protector(mut self, protector: Arc<DataProtector>) -> Self {
        self.safety = Arc::new(ContentSafety::from_config(protector.config()));
        self.injection = Arc::new(amas_dataprotect::InjectionScreen::from_config(
            protector.config(),
        ));
        self.protector = Some(protector);
        self
    }

    /// A tool result as the model gets it: wrapped as untrusted data, with the signals the
    /// prompt-injection screen finds in it.
    #[must_use]
    pub fn untrusted(&self, tool: &str, result: &Value) -> String {
        let verdict = self.injection.screen_json(result);
        amas_dataprotect::untrusted_envelope(tool, result, Some(&verdict))
    }

    /// Screens with `safety` (the classifier `content_safety.classifier` selects).
    #[must_use]
    pub fn with_content_safety(mut self, safety: Arc<ContentSafety>) -> Self {
        self.safety = safety;
        self
    }

    /// The content-safety engine, for replays that apply its actions again.
    #[must_use]
    pub fn content_safety(&self) -> &Arc<ContentSafety> {
        &self.safety
    }

    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
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

    /// The pre-execution stages of a tool call, in order, stopping at the first that denies.
    /// When policy asks for approval the later stages still run, so a call that would be
    /// refused anyway is refused now instead of bothering an approver. Only a call that passes
    /// outright is counted against the per-minute quota. Every stage is counted; the span
    /// names the deciding one.
    #[must_use]
    pub fn check(&self, req: &ToolCallRequest<'_>) -> ToolVerdict {
        let span = audit::span(ActionKind::ToolCall, req.tool);
        let verdict = span.in_scope(|| self.check_stages(req));
        if let Some(d) = verdict.decisive() {
            audit::record_on(&span, d);
        }
        verdict
    }

    fn check_stages(&self, req: &ToolCallRequest<'_>) -> ToolVerdict {
        let started = Instant::now();
        let mut stages = Vec::with_capacity(5);
        let Some(spec) = self.tools.get(req.tool).map(|t| t.spec()) else {
            stages.push(stages::deny(
                Stage::Registry,
                codes::UNKNOWN_TOOL,
                format!("no tool named `{}` is configured", req.tool),
            ));
            return self.finish(stages, None, started);
        };
        let dlp = self.dlp_facts(req.principal, req.arguments);
        let policy = self.authorize_tool(req, spec, &dlp);
        let needs_approval = policy.outcome == Outcome::RequireApproval;
        let denied = policy.outcome == Outcome::Deny;
        stages.push(policy);
        if denied {
            return self.finish(stages, Some(dlp), started);
        }
        let checks: [&dyn Fn() -> StageDecision; 4] = [
            &|| stages::allowlist::allowlist(req),
            &|| stages::contract::input(spec, req.arguments),
            &|| stages::sandbox::sandbox(&req.agent.sandbox, spec, req.usage),
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
    ) -> ToolVerdict {
        for s in &stages {
            audit::count(&self.metrics, s.stage, s.outcome);
        }
        let duration = started.elapsed();
        self.observe(duration);
        ToolVerdict {
            stages,
            duration,
            dlp,
        }
    }

    /// Whether `principal` may submit a task of `task_type` (Rego `task_submit`), counted.
    /// Fails closed: anything but a clean allow is a denial with its reasons.
    #[must_use]
    pub fn authorize_submission(&self, principal: &Principal, task_type: &str) -> StageDecision {
        let started = Instant::now();
        let d = self.authorize_submission_stage(principal, task_type);
        audit::count(&self.metrics, d.stage, d.outcome);
        self.observe(started.elapsed());
        d
    }

    /// Whether `agent` may send data of `classification` to `provider` (Rego `model_call`),
    /// counted. An allow may carry the obligation `redact`. Fails closed.
    #[must_use]
    pub fn authorize_model_call(&self, call: &ModelCallRequest<'_>) -> StageDecision {
        let started = Instant::now();
        let d = self.authorize_model_stage(call);
        audit::count(&self.metrics, d.stage, d.outcome);
        self.observe(started.elapsed());
        d
    }

    /// The policy engine, for replays that build their own pipeline (fresh rate windows).
    #[must_use]
    pub fn policy(&self) -> &Arc<dyn PolicyEngine> {
        &self.policy
    }

    fn observe(&self, duration: std::time::Duration) {
        self.metrics
            .governance_duration
            .observe(duration.as_secs_f64());
    }
}
