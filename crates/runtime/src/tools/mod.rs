//! Running the tool calls a model asked for: each through the governance pipeline, journaled
//! before and after it runs, and never silently re-run after a restart when it is not
//! idempotent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use amas_governance::pipeline::{
    ActionContext, ModelCallDecisions, ModelCallSite, ModelUsage, Outcome, Pipeline, Stage,
    TaskToolUsage, ToolAction, ToolCallRequest, ToolCallSite, ToolVerdict, codes,
};
use amas_store::StoreError;
use amas_store::audit::AuditDecision;
use amas_store::{AuditRecord, AuditWriter};
use amas_telemetry::Metrics;
use amas_telemetry::metrics::ToolLabels;
use amas_tools::ToolSpec;
use amas_types::{
    AgentId, Approval, ApprovalId, ApprovalStatus, ErrorInfo, JournalEvent, Principal,
    RequestedTool, StepId, TaskId, ToolOutcome,
};

use crate::approvals::{self, Inbox, Vote, Waited, resolved, votes_text};
use crate::error::RuntimeError;
use crate::writer::TaskWriter;

mod execute;

use execute::Start;

/// A tool call whose start is journaled but whose result is not, for a non-idempotent tool:
/// it may have happened, so it is not run again.
pub(crate) const UNCERTAIN_SIDE_EFFECT: &str = amas_types::codes::STEP_UNCERTAIN_SIDE_EFFECT;

/// What a step needs to run tools: the pipeline, the task's identity, and its shared usage.
pub(crate) struct ToolRunner {
    pub pipeline: Arc<Pipeline>,
    pub principal: Principal,
    pub task_id: String,
    pub task_type: String,
    pub workspace: PathBuf,
    /// Tool usage of the whole task (all steps), for quotas.
    pub usage: Arc<Mutex<TaskToolUsage>>,
    pub metrics: Metrics,
    /// Where approvers' votes wait for the step they are for.
    pub inbox: Arc<Inbox>,
    /// How long an approval request waits before it expires.
    pub approval_timeout: Duration,
    /// Per provider, the classification levels it may receive.
    pub provider_trust: BTreeMap<String, Vec<String>>,
    /// The audit log.
    pub audit: Arc<AuditWriter>,
    pub task: TaskId,
    pub trace_id: Option<String>,
}

/// The result of one call as the model will see it, or a reason to stop the step.
pub(crate) enum CallResult {
    /// The text of the tool message (a result or an error the model can react to).
    Message(String),
    /// The step must stop (uncertain side effect).
    Stop(ErrorInfo),
    /// The task was cancelled while the call waited for approval.
    Abandoned,
    /// The call waits for approval with no vote to act on: the step stops here and the task
    /// parks (it holds no slot) until a vote or the deadline.
    Parked(Parked),
}

/// A step stopped on an approval nobody has decided yet, or on providers that asked to be
/// called again later.
#[derive(Clone, Debug)]
pub(crate) struct Parked {
    /// `None`: a deferred model call (no vote wakes it, only `until`).
    pub approval: Option<ApprovalId>,
    pub step: StepId,
    /// The approval's deadline, or when the providers may answer: the task runs again then at
    /// the latest.
    pub until: chrono::DateTime<Utc>,
}

/// The answer owed to a voter once their vote is journaled: the approval as it now stands.
pub(crate) struct Ack {
    reply: oneshot::Sender<Result<Approval, RuntimeError>>,
    approval: Approval,
}

impl Ack {
    pub(crate) fn send(self) {
        let _ = self.reply.send(Ok(self.approval));
    }

    /// Tells the voter their vote was not journaled, and why: the task ended first (the
    /// cancellation's fence), or the approval is out of reach for now.
    pub(crate) fn fail(self, error: &StoreError) {
        let answer = match error {
            StoreError::TaskEnded { task, status } => RuntimeError::Store(StoreError::TaskEnded {
                task: *task,
                status: *status,
            }),
            _ => RuntimeError::ApprovalUnavailable {
                id: self.approval.id.into(),
            },
        };
        let _ = self.reply.send(Err(answer));
    }
}

impl ToolRunner {
    /// Asks policy, for each provider of the chain, whether this step's prompt may go there
    /// (the pipeline's model-call entry point).
    pub(crate) fn authorize_model_call(
        &self,
        step: &StepId,
        turn: u32,
        agent: &amas_config::AgentConfig,
        providers: &[&str],
        messages: &[amas_providers::ChatMessage],
    ) -> ModelCallDecisions {
        let ctx = self.ctx(step, &agent.id);
        self.pipeline.model_call(
            &ModelCallSite {
                ctx: &ctx,
                task_id: &self.task_id,
                task_type: &self.task_type,
                step,
                turn,
                agent,
                provider_trust: &self.provider_trust,
            },
            providers,
            messages,
        )
    }

    /// Who acts in this task's `step`, for the pipeline's records.
    pub(crate) fn ctx<'a>(&'a self, step: &'a StepId, agent: &'a AgentId) -> ActionContext<'a> {
        ActionContext {
            principal: &self.principal,
            task: Some(self.task),
            step: Some(step),
            agent: Some(agent),
            trace_id: self.trace_id.clone(),
        }
    }

    /// The audit record of a model call's answer: provider and model, tokens, estimated cost
    /// and latency. Never the prompt or the answer.
    pub(crate) fn model_usage_audit(
        &self,
        step: &StepId,
        agent: &amas_config::AgentConfig,
        provider: &str,
        model: &str,
        usage: ModelUsage,
    ) -> AuditRecord {
        self.ctx(step, &agent.id)
            .model_usage(provider, model, usage)
    }

    /// Queues records in the audit log; waits only while its queue is full (never drops).
    pub(crate) async fn audit(&self, records: Vec<AuditRecord>) {
        for record in records {
            if let Err(e) = self.audit.record(record).await {
                warn!(error = %e, "An audit record was refused.");
            }
        }
    }

    /// The audit record of a tool-call decision (the pipeline's).
    #[expect(
        clippy::too_many_arguments,
        reason = "the record's identity, the decision and the DLP facts, all named"
    )]
    fn tool_audit(
        &self,
        step: &StepId,
        agent: &amas_config::AgentConfig,
        call: &RequestedTool,
        stage: Stage,
        decision: AuditDecision,
        reasons: &[String],
        verdict: Option<&ToolVerdict>,
    ) -> AuditRecord {
        Pipeline::tool_audit(
            &self.ctx(step, &agent.id),
            call,
            stage,
            decision,
            reasons,
            verdict,
        )
    }

    /// Audits a verdict that leaves the call waiting for approval (the request, or a vote that
    /// did not settle it), with the deciding stage's reasons.
    async fn audit_waiting(
        &self,
        step: &StepId,
        agent: &amas_config::AgentConfig,
        call: &RequestedTool,
        verdict: &ToolVerdict,
    ) {
        let reasons = verdict
            .decisive()
            .map(|d| d.reasons.clone())
            .unwrap_or_default();
        let record = self.tool_audit(
            step,
            agent,
            call,
            Stage::Policy,
            AuditDecision::RequireApproval,
            &reasons,
            Some(verdict),
        );
        self.audit(vec![record]).await;
    }

    /// Counts a model call's tokens against the agent's task quota.
    pub(crate) fn count_tokens(&self, agent: &str, tokens: u64) {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count_tokens(agent, tokens);
    }

    /// Tokens `agent` used in this task so far.
    pub(crate) fn tokens_of(&self, agent: &str) -> u64 {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tokens_of(agent)
    }

    /// Decides, runs and journals one call; `prior` is what the journal already says about it
    /// and `approval` the approval request already opened for it (after a restart).
    #[expect(
        clippy::too_many_arguments,
        reason = "the step's context, the call, and what the journal knows of it"
    )]
    pub(crate) async fn run(
        &self,
        writer: &TaskWriter,
        step: &StepId,
        agent: &amas_config::AgentConfig,
        call: &RequestedTool,
        prior: Option<&ToolOutcome>,
        approval: Option<&Approval>,
        cancel: &watch::Receiver<bool>,
    ) -> Result<CallResult, StoreError> {
        match prior {
            Some(ToolOutcome::Completed(output)) => {
                // Governed when it ran; screened again (deterministic) to mark it the same way.
                return Ok(CallResult::Message(
                    self.pipeline.untrusted(&call.name, output),
                ));
            }
            Some(ToolOutcome::Failed(error)) => {
                return Ok(CallResult::Message(error_message(error)));
            }
            Some(ToolOutcome::Started) => {
                let idempotent = self.spec(&call.name).is_some_and(|s| s.idempotent);
                if !idempotent {
                    return Ok(CallResult::Stop(ErrorInfo {
                        code: UNCERTAIN_SIDE_EFFECT.to_owned(),
                        message: format!(
                            "tool `{}` (call {}) started before a restart and has side effects that may have happened; it is not run again",
                            call.name, call.id
                        ),
                    }));
                }
            }
            None => {}
        }
        let mut approval = approval.cloned();
        let mut vote: Option<Vote> = None;
        loop {
            let mut events = Vec::new();
            let mut votes = approval
                .as_ref()
                .map(Approval::policy_approvals)
                .unwrap_or_default();
            let mut ack = None;
            if let (Some(v), Some(a)) = (vote.take(), approval.as_mut()) {
                let voted = JournalEvent::ApprovalVoted {
                    approval_id: a.id.clone(),
                    step: step.clone(),
                    approver: v.approver.sub.clone(),
                    approver_issuer: v.approver.issuer.clone(),
                    roles: v.approver.roles.clone(),
                    decision: v.verdict,
                    reason: v.reason.clone(),
                };
                a.apply(&voted, Utc::now());
                votes = a.policy_approvals();
                events.push(voted);
                ack = Some(v.reply);
            }
            let pending = approval
                .as_ref()
                .filter(|a| a.status == ApprovalStatus::Pending);
            let usage = self.usage_snapshot();
            let ctx = self.ctx(step, &agent.id);
            let site = ToolCallSite {
                ctx: &ctx,
                step,
                call,
                request: self.request_of(agent, call, &usage, &votes),
                granted: pending.is_some(),
            };
            let mut took = Duration::ZERO;
            let action = self
                .pipeline
                .tool_call(&site, |cleared| {
                    self.start(
                        Start {
                            writer,
                            step,
                            agent,
                            pending,
                            prior: &mut events,
                            reply: &mut ack,
                            took: &mut took,
                        },
                        cleared,
                    )
                })
                .await;
            let verdict = match action {
                ToolAction::Ran { outcome, .. } => {
                    return self.finish(writer, step, call, outcome, took).await;
                }
                ToolAction::ObligationUnmet {
                    events: decided,
                    audit,
                    reasons,
                    ..
                } => {
                    if let Some(a) = pending {
                        events.push(resolved(step, a, ApprovalStatus::Approved, &votes_text(a)));
                    }
                    events.extend(decided);
                    let ack = self.ack(ack, approval.as_ref(), &events);
                    let code = codes::OBLIGATION_UNMET.to_owned();
                    return self
                        .refuse(writer, step, call, events, code, &reasons, ack, Some(audit))
                        .await;
                }
                ToolAction::Stopped(verdict) => verdict,
            };
            match verdict.outcome() {
                Outcome::Deny => {
                    let decisive = verdict.decisive().cloned();
                    let (code, reasons) = decisive.map_or_else(
                        || {
                            (
                                codes::POLICY_DENIED.to_owned(),
                                vec!["no decision".to_owned()],
                            )
                        },
                        |d| (d.code.unwrap_or(codes::POLICY_DENIED).to_owned(), d.reasons),
                    );
                    let code = if approval.as_ref().is_some_and(|a| {
                        a.votes
                            .iter()
                            .any(|v| v.decision == amas_types::Verdict::Deny)
                    }) {
                        codes::APPROVAL_DENIED.to_owned()
                    } else {
                        code
                    };
                    if let Some(a) = pending {
                        events.push(resolved(
                            step,
                            a,
                            ApprovalStatus::Denied,
                            &reasons.join("; "),
                        ));
                    }
                    events.extend(Pipeline::tool_decided(step, call, &verdict));
                    let ack = self.ack(ack, approval.as_ref(), &events);
                    let (stage, decision) = if pending.is_some() {
                        (Stage::Approval, AuditDecision::ApprovalDenied)
                    } else {
                        (
                            verdict.decisive().map_or(Stage::Policy, |d| d.stage),
                            AuditDecision::Deny,
                        )
                    };
                    let record = self.tool_audit(
                        step,
                        agent,
                        call,
                        stage,
                        decision,
                        &reasons,
                        Some(&verdict),
                    );
                    return self
                        .refuse(
                            writer,
                            step,
                            call,
                            events,
                            code,
                            &reasons,
                            ack,
                            Some(record),
                        )
                        .await;
                }
                // A stopped call that does not deny waits for approval (an allow ran above).
                Outcome::RequireApproval | Outcome::Allow | Outcome::Flag => {}
            }
            // Approval is needed: open the request once, then wait for votes or the timeout.
            match approval.as_ref().map(|a| a.status) {
                None => {
                    events.extend(Pipeline::tool_decided(step, call, &verdict));
                    let requested = self.request(step, agent, call, &verdict);
                    let opened = Approval::requested(
                        self.task_id.parse().unwrap_or_default(),
                        &self.principal.tenant,
                        &requested,
                        Utc::now(),
                    );
                    events.push(requested);
                    // No vote rides on this append: there was no request to vote on yet.
                    writer.append_all(&events).await?;
                    self.pipeline.count_approval("requested");
                    self.audit_waiting(step, agent, call, &verdict).await;
                    info!(tool = %call.name, call.id = %call.id, "Tool call waits for approval.");
                    approval = opened;
                }
                Some(ApprovalStatus::Pending) => {
                    if !events.is_empty() {
                        // A vote that does not settle the request (the first of two): the
                        // re-evaluation it caused is journaled and audited like any decision,
                        // so replay can ask it again.
                        events.extend(Pipeline::tool_decided(step, call, &verdict));
                        if let Err(e) = writer.append_all(&events).await {
                            if let (Some(reply), Some(a)) = (ack, approval.as_ref()) {
                                Ack {
                                    reply,
                                    approval: a.clone(),
                                }
                                .fail(&e);
                            }
                            return Err(e);
                        }
                        self.audit_waiting(step, agent, call, &verdict).await;
                    }
                    if let (Some(reply), Some(a)) = (ack, approval.as_ref()) {
                        Ack {
                            reply,
                            approval: a.clone(),
                        }
                        .send();
                    }
                }
                Some(status) => {
                    // Settled earlier, yet policy still asks for approval (e.g. it changed):
                    // fail closed.
                    let reasons = vec![format!(
                        "the approval is {} but policy still requires one",
                        status.as_str()
                    )];
                    events.extend(Pipeline::tool_decided(step, call, &verdict));
                    return self
                        .refuse(
                            writer,
                            step,
                            call,
                            events,
                            codes::APPROVAL_REQUIRED.to_owned(),
                            &reasons,
                            None,
                            None,
                        )
                        .await;
                }
            }
            let Some(current) = approval.clone() else {
                continue;
            };
            match approvals::next(&self.inbox, &current, cancel) {
                Waited::Vote(v) => {
                    // Checked again here, at the one writer of the task: the request as it
                    // stands now (earlier votes, its deadline), not as the voter read it.
                    if let Some(e) = approvals::refuse_vote(
                        &current,
                        &v.approver,
                        self.pipeline.approver_roles(),
                        Utc::now(),
                    ) {
                        let _ = v.reply.send(Err(e));
                    } else {
                        vote = Some(v);
                    }
                }
                Waited::Expired => {
                    let reason = format!("nobody decided before {}", current.expires_at);
                    let events = vec![resolved(step, &current, ApprovalStatus::Expired, &reason)];
                    self.pipeline.count_approval("expired");
                    let record = self.tool_audit(
                        step,
                        agent,
                        call,
                        Stage::Approval,
                        AuditDecision::ApprovalExpired,
                        std::slice::from_ref(&reason),
                        None,
                    );
                    return self
                        .refuse(
                            writer,
                            step,
                            call,
                            events,
                            codes::APPROVAL_EXPIRED.to_owned(),
                            std::slice::from_ref(&reason),
                            None,
                            Some(record),
                        )
                        .await;
                }
                Waited::Cancelled => return Ok(CallResult::Abandoned),
                Waited::Parked => {
                    return Ok(CallResult::Parked(Parked {
                        approval: Some(current.id.clone()),
                        step: step.clone(),
                        until: current.expires_at,
                    }));
                }
            }
        }
    }

    /// The task's tool usage so far (a copy: the policy input must not change under it).
    fn usage_snapshot(&self) -> TaskToolUsage {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The pipeline's view of a call, with the approvers' votes so far.
    fn request_of<'a>(
        &'a self,
        agent: &'a amas_config::AgentConfig,
        call: &'a RequestedTool,
        usage: &'a TaskToolUsage,
        votes: &'a [serde_json::Value],
    ) -> ToolCallRequest<'a> {
        ToolCallRequest {
            principal: &self.principal,
            agent,
            task_id: &self.task_id,
            task_type: &self.task_type,
            tool: &call.name,
            arguments: &call.arguments,
            usage,
            approvals: votes,
        }
    }

    /// The `ApprovalRequested` event for a call the pipeline wants approved.
    fn request(
        &self,
        step: &StepId,
        agent: &amas_config::AgentConfig,
        call: &RequestedTool,
        verdict: &ToolVerdict,
    ) -> JournalEvent {
        let spec = self.spec(&call.name);
        let timeout = chrono::Duration::from_std(self.approval_timeout)
            .unwrap_or_else(|_| chrono::Duration::hours(1));
        JournalEvent::ApprovalRequested {
            approval_id: ApprovalId::new(),
            step: step.clone(),
            call_id: call.id.clone(),
            agent: agent.id.clone(),
            tool: call.name.clone(),
            risk: spec.map_or_else(
                || "unknown".to_owned(),
                |s| {
                    serde_json::to_value(s.risk)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                },
            ),
            arguments: call.arguments.clone(),
            reasons: verdict
                .decisive()
                .map(|d| d.reasons.clone())
                .unwrap_or_default(),
            required_approvals: spec.map_or(1, |s| self.pipeline.required_approvals(s)),
            requested_by: self.principal.sub.clone(),
            requested_by_issuer: self.principal.issuer.clone(),
            expires_at: Utc::now() + timeout,
        }
    }

    /// The voter's answer, with `events` folded into the approval as they will be journaled.
    fn ack(
        &self,
        reply: Option<oneshot::Sender<Result<Approval, RuntimeError>>>,
        approval: Option<&Approval>,
        events: &[JournalEvent],
    ) -> Option<Ack> {
        let (reply, approval) = (reply?, approval?);
        let mut approval = approval.clone();
        let now = Utc::now();
        // The vote itself is already folded in; the resolution (if any) is not.
        for event in events
            .iter()
            .filter(|e| matches!(e, JournalEvent::ApprovalResolved { .. }))
        {
            approval.apply(event, now);
        }
        match approval.status {
            ApprovalStatus::Approved => self.pipeline.count_approval("approved"),
            ApprovalStatus::Denied => self.pipeline.count_approval("denied"),
            ApprovalStatus::Pending | ApprovalStatus::Expired => {}
        }
        Some(Ack { reply, approval })
    }

    /// Journals a refusal (with `events` before it), then audits it with `record` (only what
    /// the journal took is audited), and tells the model why.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per outcome, all named"
    )]
    async fn refuse(
        &self,
        writer: &TaskWriter,
        step: &StepId,
        call: &RequestedTool,
        mut events: Vec<JournalEvent>,
        code: String,
        reasons: &[String],
        ack: Option<Ack>,
        record: Option<AuditRecord>,
    ) -> Result<CallResult, StoreError> {
        let error = ErrorInfo {
            code,
            message: format!("tool call `{}` refused: {}", call.name, reasons.join("; ")),
        };
        self.count(&call.name, "denied");
        events.push(JournalEvent::ToolFailed {
            step: step.clone(),
            call_id: call.id.clone(),
            tool: call.name.clone(),
            error: error.clone(),
        });
        if let Err(e) = writer.append_all(&events).await {
            if let Some(ack) = ack {
                ack.fail(&e);
            }
            return Err(e);
        }
        self.audit(record.into_iter().collect()).await;
        if let Some(ack) = ack {
            ack.send();
        }
        Ok(CallResult::Message(error_message(&error)))
    }

    pub(crate) fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.pipeline.tools().get(name).map(|t| t.spec())
    }

    pub(crate) fn count(&self, tool: &str, outcome: &str) {
        self.metrics
            .tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// The tool message for a failed call: the model sees the code and reason and can adapt.
pub(crate) fn error_message(error: &ErrorInfo) -> String {
    json!({"error": {"code": error.code, "message": error.message}}).to_string()
}
