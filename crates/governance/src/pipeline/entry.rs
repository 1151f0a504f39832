//! The pipeline's entry points, one per action kind. Each runs its stages in order (the
//! functions of `stages/`) and returns what it decided together with the journal events and
//! audit records it made; the caller journals and writes them, nothing else.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

use amas_config::AgentConfig;
use amas_dataprotect::{Classification, ContentSafety, DataProtector, TenantKey};
use amas_policy::PolicyEngine;
use amas_store::AuditRecord;
use amas_store::audit::{AuditDecision, hash_payload};
use amas_telemetry::Metrics;
use amas_tools::ToolSpec;
use amas_types::governance::model_call_id;
use amas_types::{
    ActionKind, DataLabels, Decision, JournalEvent, Outcome, Principal, RequestedTool, Stage,
    StepId, TaskSpec, TenantId,
};

use super::audit::{self, ActionContext};
use super::stages::{self, safety};
use super::{ModelCallRequest, Pipeline, ToolVerdict, obligations};

/// What an entry point made besides its answer: every decision, the journal events to append
/// with the action, the audit records to write.
#[derive(Debug, Default)]
pub struct Governed {
    pub decisions: Vec<Decision>,
    pub events: Vec<JournalEvent>,
    pub audit: Vec<AuditRecord>,
}

/// An action the pipeline refused: the deciding stage, a message for the caller's error, and
/// the audit records of the refusal (already counted).
#[derive(Debug)]
pub struct SubmissionRefused {
    pub decision: Decision,
    /// The content-safety categories (`content_safety`) or the policy's reasons (`policy`).
    pub message: String,
    pub audit: Vec<AuditRecord>,
}

/// The object an API operation targets: its tenant and owner (the owner's `sub` at
/// `owner_issuer`: the same `sub` from another issuer is another person).
#[derive(Clone, Copy, Debug)]
pub struct ApiResource<'a> {
    pub tenant: &'a TenantId,
    pub owner: &'a str,
    pub owner_issuer: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Task submission: content safety on the input, then Rego `task_submit`.

/// Governs a submission: content safety on its text, then policy (`task_submit`). On success,
/// the audit records to write once the submission is journaled. `safety_engine` is the
/// runtime's engine (the classifier `content_safety` selects).
///
/// # Errors
/// [`SubmissionRefused`] with stage `content_safety` (`AMAS-SAFE-0001`) or `policy`.
pub async fn submission(
    pipeline: &Pipeline,
    metrics: &Metrics,
    safety_engine: &ContentSafety,
    ctx: &ActionContext<'_>,
    spec: &TaskSpec,
) -> Result<Governed, SubmissionRefused> {
    let mut governed = screen_submission(metrics, safety_engine, ctx, spec).await?;
    let decision = pipeline.authorize_submission(ctx.principal, &spec.task_type);
    let record = ctx.decided(ActionKind::Submission.as_str(), &spec.task_type, &decision);
    governed.audit.push(record);
    if decision.outcome != Outcome::Allow {
        return Err(SubmissionRefused {
            message: decision.reasons.join("; "),
            decision,
            audit: governed.audit,
        });
    }
    governed.decisions.push(decision);
    Ok(governed)
}

/// Content safety on a submission: a flag is audited and counted; a block refuses.
///
/// # Errors
/// [`SubmissionRefused`] of stage `content_safety` when a category blocks.
pub async fn screen_submission(
    metrics: &Metrics,
    safety_engine: &ContentSafety,
    ctx: &ActionContext<'_>,
    spec: &TaskSpec,
) -> Result<Governed, SubmissionRefused> {
    let mut governed = Governed::default();
    let text = safety::submission_text(spec);
    let screening = safety_engine.screen(&text).await;
    let Some(verdict) = safety::judge(&screening, codes_safe::INPUT_UNSAFE) else {
        return Ok(governed);
    };
    let action = safety::action_name(screening.verdict.action);
    audit::count_label(metrics, Stage::ContentSafety, action);
    let categories = safety::category_names(&screening.verdict);
    let mut reasons = vec![format!(
        "content safety {action}: {}",
        categories.join(", ")
    )];
    if screening.classifier_unavailable {
        reasons.push(safety::UNAVAILABLE.to_owned());
    }
    let record = ctx
        .record(
            Stage::ContentSafety,
            ActionKind::Submission.as_str(),
            audit::audit_decision(verdict.decision.outcome),
        )
        .with_resource(spec.task_type.clone())
        .with_reasons(&reasons)
        .with_details(verdict.details.clone());
    governed.audit.push(record);
    tracing::warn!(
        task.r#type = %spec.task_type,
        safety.action = action,
        safety.categories = %categories.join(","),
        "Submitted content hit the content-safety filter."
    );
    if verdict.decision.outcome == Outcome::Deny {
        return Err(SubmissionRefused {
            decision: verdict.decision,
            message: verdict.blocked_because,
            audit: governed.audit,
        });
    }
    governed.decisions.push(verdict.decision);
    Ok(governed)
}

/// Codes of content-safety refusals (stable, `docs/errors/`).
pub mod codes_safe {
    pub use amas_types::codes::{
        SAFE_OUTPUT_BLOCKED as OUTPUT_UNSAFE, SAFE_RESULT_BLOCKED as RESULT_UNSAFE,
        SAFE_SUBMISSION_BLOCKED as INPUT_UNSAFE,
    };
}

// ---------------------------------------------------------------------------------------------
// API operation: Rego `api`.

/// Whether `principal` may perform API `operation` on `resource`. Fails closed: a policy
/// error or an undefined decision is a no. A refusal is a security event, audited (the
/// policy's reasons, never the request's token or body). `environment` is the pipeline's.
///
/// # Errors
/// The refusal's decision and its audit record.
pub fn api_operation(
    policy: &dyn PolicyEngine,
    environment: &str,
    metrics: &Metrics,
    principal: &Principal,
    operation: &str,
    resource: Option<ApiResource<'_>>,
) -> Result<Decision, Box<(Decision, AuditRecord)>> {
    let refuse = |decision: Decision| {
        let ctx = ActionContext::of(principal);
        let mut record = ctx
            .record(Stage::ApiPolicy, operation, AuditDecision::Deny)
            .with_reason(decision.reasons.join("; "));
        if let Some(hash) = &decision.policy {
            record = record.with_bundle(hash);
        }
        if let Some(r) = resource {
            record = record.with_details(json!({"owner": r.owner, "owner_iss": r.owner_issuer}));
        }
        Box::new((decision, record))
    };
    let started = Instant::now();
    let decision = stages::authorize::api(
        policy,
        metrics,
        Some(environment),
        principal,
        operation,
        resource,
    );
    audit::count(metrics, decision.stage, decision.outcome);
    metrics
        .governance_duration
        .observe(started.elapsed().as_secs_f64());
    if decision.outcome == Outcome::Allow {
        Ok(decision)
    } else {
        Err(refuse(decision))
    }
}

// ---------------------------------------------------------------------------------------------
// Model call: prompt classification and redaction (DLP out), then model policy per provider.
// The provider call itself, the usage record and content safety on the answer follow.

/// The model-call decision for every provider of a chain, journaled with the answer.
#[derive(Debug, Default)]
pub struct ModelCallDecisions {
    pub events: Vec<JournalEvent>,
    pub allowed: Vec<String>,
    /// Allowed providers that may only get the redacted prompt (obligation `redact`).
    pub redact_for: Vec<String>,
    /// The redacted messages, when some provider must get them.
    pub redacted: Option<Vec<amas_providers::ChatMessage>>,
    /// Why the refused providers were refused.
    pub refusals: Vec<String>,
    /// One audit record per decision.
    pub audit: Vec<AuditRecord>,
}

/// Where a model call is made: the task's identity and the providers' trust.
pub struct ModelCallSite<'a> {
    pub ctx: &'a ActionContext<'a>,
    pub task_id: &'a str,
    pub task_type: &'a str,
    pub step: &'a StepId,
    pub turn: u32,
    pub agent: &'a AgentConfig,
    /// Per provider, the classification levels it may receive.
    pub provider_trust: &'a BTreeMap<String, Vec<String>>,
}

impl Pipeline {
    /// Asks policy, for each provider of the chain, whether this prompt may go there, given its
    /// classification and that of the redacted prompt. A prompt that cannot be classified
    /// counts as restricted (and is not offered redacted). A provider allowed under the
    /// obligation `redact` gets the redacted messages only.
    #[must_use]
    pub fn model_call(
        &self,
        site: &ModelCallSite<'_>,
        providers: &[&str],
        messages: &[amas_providers::ChatMessage],
    ) -> ModelCallDecisions {
        let prompt = match &self.protector {
            Some(p) => {
                PromptLabels::of(p, &self.tenant_key(&site.ctx.principal.tenant.0), messages)
            }
            None => PromptLabels::unscannable(),
        };
        let labels = prompt.labels.clone();
        let mut out = ModelCallDecisions::default();
        let none: Vec<String> = Vec::new();
        let redacted = labels
            .redacted
            .as_deref()
            .map(|r| (r.classification.as_str(), r.tags.as_slice()));
        for provider in providers {
            let span = audit::span(ActionKind::ModelCall, provider);
            let started = Instant::now();
            let d = span.in_scope(|| {
                self.authorize_model_stage(&ModelCallRequest {
                    principal: site.ctx.principal,
                    agent: site.agent,
                    task_id: site.task_id,
                    task_type: site.task_type,
                    provider,
                    trusted_for: site.provider_trust.get(*provider).unwrap_or(&none),
                    classification: &labels.classification,
                    tags: &labels.tags,
                    redacted,
                })
            });
            audit::record_on(&span, &d);
            audit::count(&self.metrics, d.stage, d.outcome);
            self.observe(started.elapsed());
            let redact = d.outcome == Outcome::Allow
                && d.obligations.iter().any(|o| o == obligations::REDACT);
            out.events.push(JournalEvent::ActionDecided {
                step: site.step.clone(),
                call_id: model_call_id(site.turn, provider),
                action: ActionKind::ModelCall.as_str().to_owned(),
                stage: d.stage.as_str().to_owned(),
                outcome: d.outcome.as_str().to_owned(),
                reasons: d.reasons.clone(),
                code: d.code.map(str::to_owned),
                data: Some(labels.clone()),
                obligations: d.obligations.clone(),
            });
            let mut record = site
                .ctx
                .decided(ActionKind::ModelCall.as_str(), provider, &d)
                .with_classification(&labels.classification)
                .with_duration(started.elapsed());
            if redact {
                // Types and counts only: the audit log never holds the values.
                record = record.with_details(json!({
                    "obligations": d.obligations,
                    "redacted": {"findings": prompt.counts, "classification": redacted.map(|r| r.0)},
                }));
            }
            out.audit.push(record);
            if d.outcome == Outcome::Allow {
                if redact {
                    tracing::info!(
                        amas.step = %site.step,
                        gen_ai.provider = %provider,
                        amas.findings = prompt.counts.values().sum::<usize>(),
                        "The prompt goes to this provider redacted."
                    );
                    out.redact_for.push((*provider).to_owned());
                }
                out.allowed.push((*provider).to_owned());
            } else {
                out.refusals
                    .push(format!("{provider}: {}", d.reasons.join("; ")));
            }
        }
        if !out.redact_for.is_empty() {
            out.redacted = prompt.redacted;
        }
        out
    }
}

/// A prompt's classification, and the redacted prompt with its own, for the model-call policy.
pub struct PromptLabels {
    pub labels: DataLabels,
    /// Findings per type (for the audit record; never values).
    pub counts: BTreeMap<String, usize>,
    pub redacted: Option<Vec<amas_providers::ChatMessage>>,
}

impl PromptLabels {
    /// Scans and redacts every message. When any message cannot be scanned the prompt counts
    /// as restricted and no redacted version is offered (fail closed).
    #[must_use]
    pub fn of(
        protector: &DataProtector,
        key: &TenantKey,
        messages: &[amas_providers::ChatMessage],
    ) -> Self {
        let mut class = Classification::default();
        let mut after = Classification::default();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut redacted = Vec::with_capacity(messages.len());
        for m in messages {
            let Ok(r) = protector.redact_text(&m.content, key) else {
                return Self::unscannable();
            };
            class = class.max(r.classification);
            for f in &r.findings {
                *counts.entry(f.kind.name().to_owned()).or_default() += 1;
            }
            if r.findings.is_empty() {
                after = after.max(r.classification);
            } else {
                let Ok(rescan) = protector.scan(&r.redacted) else {
                    return Self::unscannable();
                };
                after = after.max(rescan.classification);
            }
            let mut copy = m.clone();
            copy.content = r.redacted;
            for call in &mut copy.tool_calls {
                let Ok(r) = protector.redact_json(&call.arguments, key) else {
                    return Self::unscannable();
                };
                class = class.max(r.classification);
                for f in &r.findings {
                    *counts.entry(f.finding.kind.name().to_owned()).or_default() += 1;
                }
                if r.findings.is_empty() {
                    // Nothing was redacted: the copy is the original, already classified.
                    after = after.max(r.classification);
                } else {
                    let Ok(rescan) = protector.redact_json(&r.redacted, key) else {
                        return Self::unscannable();
                    };
                    after = after.max(rescan.classification);
                }
                call.arguments = r.redacted;
            }
            redacted.push(copy);
        }
        let any = !counts.is_empty();
        Self {
            labels: DataLabels {
                redacted: any.then(|| Box::new(stages::lineage::labels(after))),
                ..stages::lineage::labels(class)
            },
            counts,
            redacted: any.then_some(redacted),
        }
    }

    fn unscannable() -> Self {
        Self {
            labels: DataLabels {
                classification: "restricted".to_owned(),
                tags: Vec::new(),
                redacted: None,
            },
            counts: BTreeMap::new(),
            redacted: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model output: content safety on the answer (its text and the string arguments of the tool
// calls it asks for), before the answer is used.

/// A verdict on a model's answer worth journaling, and the step's error when it blocks.
#[derive(Debug)]
pub struct ModelOutputVerdict {
    pub event: JournalEvent,
    pub blocked: Option<amas_types::ErrorInfo>,
    pub audit: AuditRecord,
}

/// Screens a model's answer (turn `turn` of `ctx`'s step, from `provider`). `None` when the
/// classifier allowed it. Otherwise the `ActionDecided` to journal with the answer (reasons:
/// the category names, plus `classifier_unavailable` after a fallback, so a replay can apply
/// the actions again) and its audit record; a non-allow is counted.
pub async fn model_output(
    metrics: &Metrics,
    safety_engine: &ContentSafety,
    ctx: &ActionContext<'_>,
    turn: u32,
    provider: &str,
    answer: &amas_types::JournaledAnswer,
) -> Option<ModelOutputVerdict> {
    let mut text = answer.content.clone();
    for call in &answer.tool_calls {
        safety::strings(&call.arguments, &mut text);
    }
    let screening = safety_engine.screen(&text).await;
    let verdict = safety::judge(&screening, codes_safe::OUTPUT_UNSAFE)?;
    let step = ctx.step.cloned().unwrap_or_else(|| StepId::from(""));
    let action = safety::action_name(screening.verdict.action);
    if screening.classifier_unavailable {
        tracing::warn!(
            step = %step,
            safety.classifier = safety_engine.classifier_name(),
            "The content classifier is unavailable; the lexicon screened the model output."
        );
    }
    if verdict.decision.outcome != Outcome::Allow {
        audit::count_label(metrics, Stage::ContentSafety, action);
        tracing::warn!(
            step = %step,
            safety.action = action,
            safety.categories = %safety::category_names(&screening.verdict).join(","),
            "A model output hit the content-safety filter."
        );
    }
    let record = ctx
        .record(
            Stage::ContentSafety,
            ActionKind::ModelOutput.as_str(),
            audit::audit_decision(verdict.decision.outcome),
        )
        .with_resource(provider.to_owned())
        .with_reasons(&verdict.decision.reasons)
        .with_details(verdict.details.clone());
    let blocked = (verdict.decision.outcome == Outcome::Deny).then(|| amas_types::ErrorInfo {
        code: codes_safe::OUTPUT_UNSAFE.to_owned(),
        message: format!(
            "the model's output was refused by the content-safety filter (categories: {})",
            verdict.blocked_because
        ),
    });
    let event = JournalEvent::ActionDecided {
        step,
        call_id: model_call_id(turn, provider),
        action: ActionKind::ModelOutput.as_str().to_owned(),
        stage: Stage::ContentSafety.as_str().to_owned(),
        outcome: verdict.decision.outcome.as_str().to_owned(),
        reasons: verdict.decision.reasons,
        code: blocked.as_ref().map(|e| e.code.clone()),
        data: None,
        obligations: Vec::new(),
    };
    Some(ModelOutputVerdict {
        event,
        blocked,
        audit: record,
    })
}

// ---------------------------------------------------------------------------------------------
// Tool call: the pre-execution stages are `Pipeline::check`; what follows a verdict (its
// journal events, its audit record, the DLP-out obligation) and the post-execution stages on
// the result are here. The approval wait between them stays with the runtime.

impl Pipeline {
    /// The journaled verdict of every stage that ran. The parameters' classification (from
    /// DLP) is journaled with the policy stage.
    #[must_use]
    pub fn tool_decided(
        step: &StepId,
        call: &RequestedTool,
        verdict: &ToolVerdict,
    ) -> Vec<JournalEvent> {
        let labels = verdict.dlp.as_ref().map(|f| DataLabels {
            classification: f.classification.clone(),
            tags: f.tags.clone(),
            redacted: f.redacted.as_ref().map(|r| {
                Box::new(DataLabels {
                    classification: r.classification.clone(),
                    tags: r.tags.clone(),
                    redacted: None,
                })
            }),
        });
        verdict
            .stages
            .iter()
            .map(|s| JournalEvent::ActionDecided {
                step: step.clone(),
                call_id: call.id.clone(),
                action: ActionKind::ToolCall.as_str().to_owned(),
                stage: s.stage.as_str().to_owned(),
                outcome: s.outcome.as_str().to_owned(),
                reasons: s.reasons.clone(),
                code: s.code.map(str::to_owned),
                data: if s.stage == Stage::Policy {
                    labels.clone()
                } else {
                    None
                },
                obligations: s.obligations.clone(),
            })
            .collect()
    }

    /// The audit record of a tool-call decision: the deciding stage, its reasons, the tool,
    /// and a hash of the parameters (never the parameters themselves).
    #[must_use]
    pub fn tool_audit(
        ctx: &ActionContext<'_>,
        call: &RequestedTool,
        stage: Stage,
        decision: AuditDecision,
        reasons: &[String],
        verdict: Option<&ToolVerdict>,
    ) -> AuditRecord {
        let mut details = json!({
            "call_id": call.id,
            "parameters_sha256": hash_payload(call.arguments.to_string().as_bytes()),
        });
        // What DLP found (types and counts, never values) and the obligations carried out.
        if let Some(v) = verdict {
            if let Some(dlp) = v
                .dlp
                .as_ref()
                .filter(|f| !f.counts.is_empty() || f.error.is_some())
            {
                details["dlp"] = dlp.summary();
            }
            let obligations: Vec<&String> =
                v.stages.iter().flat_map(|s| s.obligations.iter()).collect();
            if !obligations.is_empty() {
                details["obligations"] = json!(obligations);
            }
        }
        let mut record = ctx
            .record(stage, ActionKind::ToolCall.as_str(), decision)
            .with_resource(call.name.clone())
            .with_reasons(reasons)
            .with_details(details);
        if let Some(v) = verdict {
            record = record.with_duration(v.duration);
            if let Some(hash) = v.policy_hash() {
                record = record.with_bundle(hash);
            }
            if let Some(dlp) = &v.dlp {
                record = record.with_classification(&dlp.classification);
            }
        }
        record
    }

    /// Stage DLP out: the parameters the tool gets, the DLP-redacted copy when policy obliged
    /// redaction. `None` when redaction was obliged but no redacted copy exists (the call is
    /// then refused, `AMAS-GOV-0012`).
    #[must_use]
    pub fn outbound_arguments(call: &RequestedTool, verdict: &ToolVerdict) -> Option<Value> {
        let redact = verdict
            .stages
            .iter()
            .any(|s| s.obligations.iter().any(|o| o == obligations::REDACT));
        if !redact {
            return Some(call.arguments.clone());
        }
        verdict
            .dlp
            .as_ref()
            .and_then(|f| f.redacted.as_ref())
            .map(|r| r.parameters.clone())
    }

    /// Counts an approval state change (`requested`, `approved`, `denied`, `expired`).
    pub fn count_approval(&self, outcome: &str) {
        audit::count_label(&self.metrics, Stage::Approval, outcome);
    }

    /// The post-execution stages of a tool call, on its result, before the model sees it:
    /// output contract -> content safety -> prompt-injection screening -> DLP in /
    /// classification. Every stage is counted; a stage that does not plainly allow is
    /// journaled (`ActionDecided`, action `tool_result`) and audited. A refusal replaces the
    /// result by an error the model can react to.
    pub async fn tool_result(
        &self,
        ctx: &ActionContext<'_>,
        call: &RequestedTool,
        spec: Option<&ToolSpec>,
        result: &Value,
    ) -> ResultVerdict {
        let span = audit::span(ActionKind::ToolResult, &call.name);
        let started = Instant::now();
        let mut decisions = Vec::with_capacity(4);
        let mut details = BTreeMap::new();
        let mut injection = None;
        let mut labels = None;
        // An unknown tool has no declared output: its result is refused (fail closed).
        decisions.push(match spec {
            Some(spec) => stages::contract::output(spec, result),
            None => stages::deny(
                Stage::OutputContract,
                amas_types::codes::TOOL_NOT_FOUND,
                format!("tool `{}` has no declared output schema", call.name),
            ),
        });
        if !decisions.iter().any(|d| d.outcome == Outcome::Deny) {
            let mut text = String::new();
            safety::strings(result, &mut text);
            if let Some(v) = safety::screen(&self.safety, &text, codes_safe::RESULT_UNSAFE).await {
                details.insert(Stage::ContentSafety, v.details);
                decisions.push(v.decision);
            }
        }
        if !decisions.iter().any(|d| d.outcome == Outcome::Deny) {
            let (decision, verdict) = stages::injection::screen(&self.injection, result);
            details.insert(Stage::PromptInjection, stages::injection::details(&verdict));
            decisions.push(decision);
            injection = Some(verdict);
        }
        if !decisions.iter().any(|d| d.outcome == Outcome::Deny) {
            let (dlp_in, l) = stages::lineage::classify(self.protector.as_deref(), result);
            decisions.push(dlp_in);
            labels = Some(l);
        }
        let mut verdict = self.result_verdict(ctx, call, decisions, &details, labels, started);
        verdict.injection = injection;
        if let Some(d) = verdict.decisive() {
            audit::record_on(&span, d);
        }
        verdict
    }

    fn result_verdict(
        &self,
        ctx: &ActionContext<'_>,
        call: &RequestedTool,
        decisions: Vec<Decision>,
        stage_details: &BTreeMap<Stage, Value>,
        labels: Option<stages::lineage::ResultLabels>,
        started: Instant,
    ) -> ResultVerdict {
        let step = ctx.step.cloned().unwrap_or_else(|| StepId::from(""));
        let mut events = Vec::new();
        let mut records = Vec::new();
        for d in &decisions {
            audit::count(&self.metrics, d.stage, d.outcome);
            if d.outcome == Outcome::Allow && d.reasons.is_empty() {
                continue;
            }
            events.push(JournalEvent::ActionDecided {
                step: step.clone(),
                call_id: call.id.clone(),
                action: ActionKind::ToolResult.as_str().to_owned(),
                stage: d.stage.as_str().to_owned(),
                outcome: d.outcome.as_str().to_owned(),
                reasons: d.reasons.clone(),
                code: d.code.map(str::to_owned),
                data: labels.as_ref().map(|l| l.labels.clone()),
                obligations: Vec::new(),
            });
            let mut record = ctx
                .record(
                    d.stage,
                    ActionKind::ToolResult.as_str(),
                    audit::audit_decision(d.outcome),
                )
                .with_resource(call.name.clone())
                .with_reasons(&d.reasons)
                .with_duration(started.elapsed());
            if let Some(l) = &labels {
                record = record.with_classification(&l.labels.classification);
            }
            let mut details = json!({"call_id": call.id});
            if let Some(s) = stage_details.get(&d.stage) {
                details[d.stage.as_str()] = s.clone();
            }
            if let Some(l) = &labels {
                details["findings"] = l.findings.clone();
            }
            records.push(record.with_details(details));
        }
        self.observe(started.elapsed());
        ResultVerdict {
            decisions,
            labels: labels.map(|l| l.labels),
            injection: None,
            governed: Governed {
                decisions: Vec::new(),
                events,
                audit: records,
            },
        }
    }
}

/// What the post-execution stages made of a tool result.
#[derive(Debug)]
pub struct ResultVerdict {
    /// Every stage that ran, in order.
    pub decisions: Vec<Decision>,
    /// The result's classification (DLP in), when it was scanned.
    pub labels: Option<DataLabels>,
    /// The prompt-injection screen's verdict, when it ran (the envelope names its signals).
    pub injection: Option<amas_dataprotect::InjectionVerdict>,
    /// The `ActionDecided` events and audit records of the stages that did not plainly allow.
    pub governed: Governed,
}

impl ResultVerdict {
    /// The deciding stage (the first refusal, else the last).
    #[must_use]
    pub fn decisive(&self) -> Option<&Decision> {
        amas_types::governance::decisive(&self.decisions, |d| d.outcome)
    }

    /// The refusal, when a stage refused the result.
    #[must_use]
    pub fn refusal(&self) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.outcome == Outcome::Deny)
    }
}

// ---------------------------------------------------------------------------------------------
// Release of task data to a reader: what was redacted above the reader's clearance.

/// What one release redacted (the reader's view of a task), for its audit record.
#[derive(Clone, Debug)]
pub struct Release<'a> {
    pub task: amas_types::TaskId,
    /// The highest level of a payload above clearance.
    pub level: &'a str,
    /// The reader's clearance.
    pub clearance: &'a str,
    /// Payloads above clearance, by name (sorted, deduplicated here).
    pub fields: Vec<String>,
    /// Finding types redacted, with counts.
    pub findings: &'a BTreeMap<String, u32>,
}

/// The audit record of a release that redacted something (stage `data_protection_out`,
/// obligation `redact`): the fields, the finding types with counts, the levels; never values.
#[must_use]
pub fn release(principal: &Principal, action: &str, release: Release<'_>) -> AuditRecord {
    let Release {
        task,
        level,
        clearance,
        mut fields,
        findings,
    } = release;
    fields.sort();
    fields.dedup();
    ActionContext::of(principal)
        .record(Stage::DataProtectionOut, action, AuditDecision::Allow)
        .with_task(task)
        .with_resource(format!("task:{task}"))
        .with_classification(level)
        .with_reason(format!(
            "payloads above the reader's clearance ({clearance}) were redacted"
        ))
        .with_details(json!({
            "obligations": [obligations::REDACT],
            "clearance": clearance,
            "fields": fields,
            "findings": findings,
        }))
}
