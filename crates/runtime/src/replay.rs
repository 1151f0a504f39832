//! Replay: walks a task's journal with no model or tool calls and asks governance again every
//! question the journal records an answer to (the submission, each tool-call gate evaluation,
//! each model-call policy decision, each content-safety verdict on a model output, each
//! approver's vote), under the current or a candidate
//! policy bundle, and lists every answer that would now differ. The way to test a policy change
//! against real history before deploying it, and the proof for audits that history is
//! reproducible.
//!
//! Every input is rebuilt from the journal exactly as the live run built it: the principal from
//! `TaskSubmitted`, each call's arguments from the model's answer, usage so far with the same
//! fold recovery uses, approvers' votes from the approval events, the prompt's classification
//! from the model-call decision. Configuration (agents, tool specs, trust levels, approver
//! roles, environment) is the current one. Per-minute rate windows count this task's own calls
//! only: other tasks' traffic at the time is not in its journal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;

use amas_config::{AgentConfig, AmasConfig};
use amas_dataprotect::{ContentSafety, DataProtectConfig};
use amas_governance::pipeline::stages::safety;
use amas_governance::pipeline::{
    ActionKind, ModelCallRequest, Outcome, Pipeline, Stage, StageDecision, ToolCallRequest,
};
use amas_policy::PolicyEngine;
use amas_telemetry::Metrics;
use amas_tools::ToolRegistry;
use amas_types::{
    Approval, CallId, Identity, JournalEvent, JournalRecord, Principal, RequestedTool, StepId,
    TaskId, TaskState, TaskStatus,
};

use crate::approvals::refuse_vote;
use crate::usage::usage_from_journal;

/// What a replay found.
#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub task_id: TaskId,
    /// Where the task stands; a task still running is replayed up to its last event.
    pub task_status: TaskStatus,
    /// Decisions asked again.
    pub decisions: usize,
    /// True when every decision came out the same.
    pub identical: bool,
    pub differences: Vec<DecisionDiff>,
}

/// One recorded decision that would now come out differently (or could not be asked again).
#[derive(Clone, Debug, Serialize)]
pub struct DecisionDiff {
    /// The journal position of the recorded decision.
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
    /// `task_submit`, `tool_call`, `model_call`, `model_output` or `approval_vote`.
    pub action: String,
    /// What the decision was about: the task type, tool, provider or approver.
    pub resource: String,
    pub before: Ruling,
    pub after: Ruling,
}

/// One answer of the pipeline: the deciding stage, its outcome, what the allow obliged (e.g.
/// `redact`) and why. `outcome` is `unknown` when the journal lacks what the question needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ruling {
    pub stage: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub obligations: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl Ruling {
    fn of(stage: &str, outcome: &str, reasons: &[String]) -> Self {
        Self {
            stage: stage.to_owned(),
            outcome: outcome.to_owned(),
            obligations: Vec::new(),
            reasons: reasons.to_vec(),
        }
    }

    fn with_obligations(mut self, obligations: &[String]) -> Self {
        self.obligations = obligations.to_vec();
        self
    }

    fn unknown(why: impl Into<String>) -> Self {
        Self::of("replay", "unknown", &[why.into()])
    }
}

impl From<&StageDecision> for Ruling {
    fn from(d: &StageDecision) -> Self {
        Self::of(d.stage.as_str(), d.outcome.as_str(), &d.reasons).with_obligations(&d.obligations)
    }
}

/// Asks governance again. Holds what a gate is built from, never a live gate: a replay must
/// not take slots of live rate quotas nor count in live decision metrics.
pub struct Replayer {
    config: Arc<AmasConfig>,
    policy: Arc<dyn PolicyEngine>,
    tools: Arc<ToolRegistry>,
    environment: String,
    /// Content-safety actions; the embedded configuration's unless set.
    safety: Option<Arc<ContentSafety>>,
    /// The scanner behind DLP facts; the embedded configuration's unless set.
    protector: Option<Arc<amas_dataprotect::DataProtector>>,
}

impl Replayer {
    #[must_use]
    pub fn new(
        config: Arc<AmasConfig>,
        policy: Arc<dyn PolicyEngine>,
        tools: Arc<ToolRegistry>,
        environment: impl Into<String>,
    ) -> Self {
        Self {
            config,
            policy,
            tools,
            environment: environment.into(),
            safety: None,
            protector: None,
        }
    }

    /// The replayer of the live runtime's composition: `pipeline`'s policy engine, tools,
    /// environment and content-safety engine, and `protector` (built by [`crate::compose`]),
    /// asked from a fresh pipeline of its own.
    #[must_use]
    pub fn of(
        config: &Arc<AmasConfig>,
        pipeline: &Pipeline,
        protector: &Arc<amas_dataprotect::DataProtector>,
    ) -> Self {
        Self::new(
            Arc::clone(config),
            Arc::clone(pipeline.policy()),
            Arc::clone(pipeline.tools()),
            pipeline.environment(),
        )
        .with_content_safety(Arc::clone(pipeline.content_safety()))
        .with_data_protector(Arc::clone(protector))
    }

    /// Scans tool parameters with `protector` (the live run's data-protection configuration),
    /// so DLP facts come out as they did.
    #[must_use]
    pub fn with_data_protector(mut self, protector: Arc<amas_dataprotect::DataProtector>) -> Self {
        self.protector = Some(protector);
        self
    }

    /// Applies `safety`'s actions when content-safety verdicts are asked again.
    #[must_use]
    pub fn with_content_safety(mut self, safety: Arc<ContentSafety>) -> Self {
        self.safety = Some(safety);
        self
    }

    /// Replays one task's journal (all of it, in order). `None` when the journal is empty or
    /// does not start with `TaskSubmitted`.
    #[must_use]
    pub fn replay(&self, records: &[JournalRecord]) -> Option<ReplayReport> {
        let state = TaskState::fold(records)?;
        let mut gate = Pipeline::new(
            Arc::clone(&self.policy),
            Arc::clone(&self.tools),
            self.environment.clone(),
            Metrics::new(),
        )
        .with_approver_roles(self.config.approvals.approver_roles.clone());
        if let Some(protector) = &self.protector {
            gate = gate.with_data_protector(Arc::clone(protector));
        }
        let safety = self.safety.clone().or_else(|| {
            DataProtectConfig::embedded()
                .ok()
                .map(|c| Arc::new(ContentSafety::from_config(&c)))
        });
        let mut walk = Walk {
            replayer: self,
            safety: safety.as_deref(),
            gate: &gate,
            task: &state,
            records,
            agents: BTreeMap::new(),
            calls: BTreeMap::new(),
            approvals: BTreeMap::new(),
            decisions: 0,
            differences: Vec::new(),
        };
        walk.submission();
        let mut i = 1;
        while i < records.len() {
            i = walk.event(i);
        }
        let differences = walk.differences;
        Some(ReplayReport {
            task_id: state.id,
            task_status: state.status,
            decisions: walk.decisions,
            identical: differences.is_empty(),
            differences,
        })
    }
}

/// One pass over a journal, with what the events so far have told.
struct Walk<'a> {
    replayer: &'a Replayer,
    gate: &'a Pipeline,
    safety: Option<&'a ContentSafety>,
    task: &'a TaskState,
    records: &'a [JournalRecord],
    /// Agent of each step.
    agents: BTreeMap<&'a str, &'a str>,
    /// Tool calls the model asked for, by step and call id.
    calls: BTreeMap<(&'a str, &'a str), &'a RequestedTool>,
    /// Approval requests by id.
    approvals: BTreeMap<&'a str, Approval>,
    decisions: usize,
    differences: Vec<DecisionDiff>,
}

impl<'a> Walk<'a> {
    fn principal(&self) -> &'a Principal {
        &self.task.principal
    }

    fn agent(&self, step: &str) -> Result<&'a AgentConfig, String> {
        let replayer: &'a Replayer = self.replayer;
        let id = self
            .agents
            .get(step)
            .ok_or_else(|| format!("no StepStarted for step `{step}` precedes the decision"))?;
        replayer
            .config
            .agents
            .get(*id)
            .ok_or_else(|| format!("agent `{id}` is no longer configured"))
    }

    fn record(&mut self, seq: u64, diff: Option<DecisionDiff>) {
        self.decisions += 1;
        if let Some(mut d) = diff {
            d.seq = seq;
            self.differences.push(d);
        }
    }

    /// The task was admitted, so its submission was allowed.
    fn submission(&mut self) {
        let task: &'a TaskState = self.task;
        let task_type = &task.spec.task_type;
        let now = self.gate.authorize_submission(self.principal(), task_type);
        let before = Ruling::of("policy", "allow", &[]);
        let after = Ruling::from(&now);
        let diff = (now.outcome != Outcome::Allow).then(|| DecisionDiff {
            seq: 0,
            step: None,
            call_id: None,
            action: "task_submit".to_owned(),
            resource: task_type.clone(),
            before,
            after,
        });
        let seq = self.records.first().map_or(1, |r| r.seq);
        self.record(seq, diff);
    }

    /// Takes in the event at `i`; returns the index of the next event to look at.
    fn event(&mut self, i: usize) -> usize {
        let records: &'a [JournalRecord] = self.records;
        let record = &records[i];
        let at = record.recorded_at;
        match &record.event {
            JournalEvent::StepStarted { step, agent, .. } => {
                self.agents.insert(step, agent);
            }
            JournalEvent::ModelResponded {
                step, tool_calls, ..
            } => {
                for call in tool_calls {
                    self.calls.insert((step.as_str(), call.id.as_str()), call);
                }
            }
            JournalEvent::ApprovalRequested { approval_id, .. } => {
                if let Some(a) =
                    Approval::requested(self.task.id, &self.principal().tenant, &record.event, at)
                {
                    self.approvals.insert(approval_id, a);
                }
            }
            JournalEvent::ApprovalVoted {
                approval_id,
                approver,
                approver_issuer,
                roles,
                ..
            } => {
                let voter = Identity::new(approver_issuer, approver);
                self.vote(record.seq, approval_id, &voter, roles, at);
                if let Some(a) = self.approvals.get_mut(approval_id.as_str()) {
                    a.apply(&record.event, at);
                }
            }
            JournalEvent::ApprovalResolved { approval_id, .. } => {
                if let Some(a) = self.approvals.get_mut(approval_id.as_str()) {
                    a.apply(&record.event, at);
                }
            }
            JournalEvent::ActionDecided {
                step,
                call_id,
                action,
                ..
            } if action == "tool_call" => {
                // One gate evaluation is journaled as consecutive events, one per stage.
                let end = records[i..]
                    .iter()
                    .position(|r| {
                        !matches!(&r.event, JournalEvent::ActionDecided {
                            step: s, call_id: c, action: a, ..
                        } if s == step && c == call_id && a == action)
                    })
                    .map_or(records.len(), |n| i + n);
                self.tool_call(i, end, step, call_id);
                return end;
            }
            JournalEvent::ActionDecided {
                step,
                call_id,
                action,
                stage,
                outcome,
                reasons,
                data,
                obligations,
                ..
            } if action == "model_call" => {
                let before = Ruling::of(stage, outcome, reasons).with_obligations(obligations);
                let provider = amas_types::governance::model_call_provider(call_id);
                let after = match (self.agent(step), data) {
                    (Err(why), _) => Ruling::unknown(why),
                    (Ok(_), None) => Ruling::unknown(
                        "the journal does not record the prompt's classification (written before replay support)",
                    ),
                    (Ok(agent), Some(labels)) => {
                        let none = Vec::new();
                        let trusted = self
                            .replayer
                            .config
                            .provider_trust
                            .get(provider)
                            .unwrap_or(&none);
                        let task_id = self.task.id.to_string();
                        Ruling::from(
                            &self.gate.authorize_model_call(&ModelCallRequest {
                                principal: self.principal(),
                                agent,
                                task_id: &task_id,
                                task_type: &self.task.spec.task_type,
                                provider,
                                trusted_for: trusted,
                                classification: &labels.classification,
                                tags: &labels.tags,
                                redacted: labels
                                    .redacted
                                    .as_deref()
                                    .map(|r| (r.classification.as_str(), r.tags.as_slice())),
                            }),
                        )
                    }
                };
                let diff = differs(&before, &after).then(|| DecisionDiff {
                    seq: 0,
                    step: Some(step.clone()),
                    call_id: Some(call_id.clone()),
                    action: action.clone(),
                    resource: provider.to_owned(),
                    before,
                    after,
                });
                self.record(record.seq, diff);
            }
            JournalEvent::ActionDecided {
                step,
                call_id,
                action,
                stage,
                outcome,
                reasons,
                ..
            } if action == ActionKind::ModelOutput.as_str() => {
                // The classifier's categories are facts of the journal (a moderation endpoint is
                // not asked again); the decision is the configured actions applied to them.
                let before = Ruling::of(stage, outcome, reasons);
                let after = match self.safety {
                    Some(s) => Ruling::of(
                        Stage::ContentSafety.as_str(),
                        safety::rejudge(s, reasons).as_str(),
                        reasons,
                    ),
                    None => Ruling::unknown("the content-safety configuration is invalid"),
                };
                let provider = amas_types::governance::model_call_provider(call_id);
                let diff = differs(&before, &after).then(|| DecisionDiff {
                    seq: 0,
                    step: Some(step.clone()),
                    call_id: Some(call_id.clone()),
                    action: action.clone(),
                    resource: provider.to_owned(),
                    before,
                    after,
                });
                self.record(record.seq, diff);
            }
            _ => {}
        }
        i + 1
    }

    /// A recorded vote was accepted; would it be now (approver roles, self-approval, cast
    /// within the deadline at the time it was recorded)?
    fn vote(
        &mut self,
        seq: u64,
        approval_id: &str,
        approver: &Identity,
        roles: &[String],
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let Some(approval) = self.approvals.get(approval_id) else {
            return;
        };
        let voter = Principal {
            sub: approver.subject.clone(),
            roles: roles.to_vec(),
            tenant: self.principal().tenant.clone(),
            auth_method: String::new(),
            issuer: approver.issuer.clone(),
        };
        let refused = refuse_vote(
            approval,
            &voter,
            &self.replayer.config.approvals.approver_roles,
            at,
        );
        let diff = refused.map(|e| DecisionDiff {
            seq: 0,
            step: Some(approval.step.clone()),
            call_id: Some(approval.call_id.clone()),
            action: "approval_vote".to_owned(),
            resource: approver.subject.clone(),
            before: Ruling::of("approval", "allow", &[]),
            after: Ruling::of("approval", "deny", &[e.to_string()]),
        });
        self.record(seq, diff);
    }

    /// The gate evaluation journaled as `records[start..end]`, run again on the inputs the live
    /// run had: usage as folded from the journal before it, the votes cast by then.
    fn tool_call(&mut self, start: usize, end: usize, step: &'a str, call_id: &'a str) {
        let records: &'a [JournalRecord] = self.records;
        let first = &records[start];
        let before: Vec<Ruling> = records[start..end]
            .iter()
            .filter_map(|r| match &r.event {
                JournalEvent::ActionDecided {
                    stage,
                    outcome,
                    reasons,
                    obligations,
                    ..
                } => Some(Ruling::of(stage, outcome, reasons).with_obligations(obligations)),
                _ => None,
            })
            .collect();
        let call = self.calls.get(&(step, call_id)).copied();
        let resource = call.map_or_else(|| "?".to_owned(), |c| c.name.clone());
        let after: Result<Vec<Ruling>, String> = match (self.agent(step), call) {
            (Err(why), _) => Err(why),
            (Ok(_), None) => Err(format!(
                "the model's request for call `{call_id}` is not in the journal"
            )),
            (Ok(agent), Some(call)) => {
                let votes = self
                    .approvals
                    .values()
                    .find(|a| a.step == step && a.call_id == call_id)
                    .map(Approval::policy_approvals)
                    .unwrap_or_default();
                let mut usage = usage_from_journal(&records[..start], self.gate.tools());
                usage.started_at = usage
                    .started_at
                    .and_then(|s| as_elapsed_then(s, first.recorded_at));
                let task_id = self.task.id.to_string();
                let verdict = self.gate.check(&ToolCallRequest {
                    principal: self.principal(),
                    agent,
                    task_id: &task_id,
                    task_type: &self.task.spec.task_type,
                    tool: &call.name,
                    arguments: &call.arguments,
                    usage: &usage,
                    approvals: &votes,
                });
                Ok(verdict.stages.iter().map(Ruling::from).collect())
            }
        };
        let before_decisive = decisive(&before);
        let diff = match after {
            Err(why) => Some((before_decisive, Ruling::unknown(why))),
            Ok(after) => {
                let same = before.len() == after.len()
                    && before.iter().zip(&after).all(|(b, a)| !differs(b, a));
                (!same).then(|| (before_decisive, decisive(&after)))
            }
        };
        let diff = diff.map(|(before, after)| DecisionDiff {
            seq: 0,
            step: Some(StepId::from(step)),
            call_id: Some(CallId::from(call_id)),
            action: "tool_call".to_owned(),
            resource,
            before,
            after,
        });
        self.record(first.seq, diff);
    }
}

/// Two rulings differ when their stage, outcome or obligations do (reasons are explanations,
/// free to change wording). A journal written before obligations existed records none.
/// Stages and outcomes compare as the vocabulary's enums (a name outside it, such as replay's
/// own `unknown`, compares as itself).
fn differs(a: &Ruling, b: &Ruling) -> bool {
    a.stage.parse::<Stage>() != b.stage.parse::<Stage>()
        || a.outcome.parse::<Outcome>() != b.outcome.parse::<Outcome>()
        || a.obligations != b.obligations
}

/// The deciding stage of an evaluation, by the pipeline's one rule
/// (`amas_types::governance::decisive`).
fn decisive(stages: &[Ruling]) -> Ruling {
    amas_types::governance::decisive(stages, |s| s.outcome.parse().unwrap_or(Outcome::Allow))
        .cloned()
        .unwrap_or_else(|| Ruling::unknown("no stage was recorded"))
}

/// A start time that is as long before now as `started` was before `decided_at`, so the
/// wall-time quota sees the task as old as it was when the decision was made.
fn as_elapsed_then(started: SystemTime, decided_at: DateTime<Utc>) -> Option<SystemTime> {
    let elapsed = SystemTime::from(decided_at)
        .duration_since(started)
        .unwrap_or_default();
    SystemTime::now().checked_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decisive_stage_is_picked_like_the_gate_picks_it() {
        let r = |stage: &str, outcome: &str| Ruling::of(stage, outcome, &[]);
        assert_eq!(
            decisive(&[r("policy", "require_approval"), r("quota", "deny")]).stage,
            "quota"
        );
        assert_eq!(
            decisive(&[r("policy", "require_approval"), r("quota", "allow")]).outcome,
            "require_approval"
        );
        assert_eq!(
            decisive(&[r("policy", "allow"), r("quota", "allow")]).stage,
            "quota"
        );
        assert_eq!(decisive(&[]).outcome, "unknown");
    }

    #[test]
    fn reasons_alone_do_not_make_a_difference() {
        let a = Ruling::of("policy", "deny", &["old wording".to_owned()]);
        let b = Ruling::of("policy", "deny", &["new wording".to_owned()]);
        assert!(!differs(&a, &b));
        assert!(differs(&a, &Ruling::of("policy", "allow", &[])));
    }
}
