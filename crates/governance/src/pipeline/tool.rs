//! The tool-call entry point: every stage of a governed tool call in order, the execution
//! being the closure the caller passes in.
//!
//! registry -> DLP facts -> authorize (Rego) -> allowlist -> input contract -> sandbox ->
//! quota -> DLP out -> EXECUTE (the caller's closure) -> output contract -> content safety ->
//! prompt-injection screening -> DLP in / classification.
//!
//! A call that needs approval stops before DLP out ([`ToolAction::Stopped`]): waiting for
//! votes is the runtime's (it journals the request and parks the step); once approved it
//! calls this entry again with the votes, and `granted` set.

use std::future::Future;

use serde_json::Value;

use amas_store::AuditRecord;
use amas_store::audit::AuditDecision;
use amas_types::{JournalEvent, Outcome, RequestedTool, Stage, StepId};

use super::audit::ActionContext;
use super::entry::ResultVerdict;
use super::{Pipeline, ToolCallRequest, ToolVerdict};

/// One tool call as the pipeline needs it: who acts, the call, and the policy input.
pub struct ToolCallSite<'a> {
    pub ctx: &'a ActionContext<'a>,
    /// The step the call belongs to, for its journal events.
    pub step: &'a StepId,
    pub call: &'a RequestedTool,
    pub request: ToolCallRequest<'a>,
    /// The call was waiting for approval and the votes (in `request.approvals`) settle it:
    /// an allow is then audited as the approval granted.
    pub granted: bool,
}

/// What the caller's execution closure gets once every pre-execution stage allowed.
#[derive(Debug)]
pub struct Cleared {
    /// The call as the tool may see it: its parameters after DLP out (redacted when policy
    /// obliged redaction).
    pub call: RequestedTool,
    /// The `ActionDecided` event of every pre-execution stage: journal them before the tool
    /// runs.
    pub events: Vec<JournalEvent>,
    /// The audit record of the decision: write it once those events are journaled.
    pub audit: AuditRecord,
}

/// How a governed tool call ended.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per call and taken apart at once; boxing would add an allocation to every action"
)]
pub enum ToolAction<E> {
    /// A pre-execution stage denied, or policy asks for approval: nothing ran. The caller
    /// journals the verdict ([`Pipeline::tool_decided`]) and refuses the call or waits.
    Stopped(ToolVerdict),
    /// Policy obliged redaction but DLP has no redacted copy of the parameters
    /// (`AMAS-GOV-0012`): nothing ran. `events` and `audit` record the refusal.
    ObligationUnmet {
        verdict: ToolVerdict,
        events: Vec<JournalEvent>,
        audit: AuditRecord,
        reasons: Vec<String>,
    },
    /// The closure ran: its error, or the tool's output with the verdict of the
    /// post-execution stages on it (which replace a refused output by an error).
    Ran {
        verdict: ToolVerdict,
        outcome: Result<(Value, ResultVerdict), E>,
    },
}

impl Pipeline {
    /// Governs one tool call end to end; `execute` runs the tool (and whatever the caller
    /// must do first, such as journaling the start) and is called only when every
    /// pre-execution stage allowed.
    pub async fn tool_call<E, F, Fut>(&self, site: &ToolCallSite<'_>, execute: F) -> ToolAction<E>
    where
        F: FnOnce(Cleared) -> Fut,
        Fut: Future<Output = Result<Value, E>>,
    {
        let verdict = self.check(&site.request);
        if !matches!(verdict.outcome(), Outcome::Allow | Outcome::Flag) {
            return ToolAction::Stopped(verdict);
        }
        let events = Self::tool_decided(site.step, site.call, &verdict);
        let Some(arguments) = Self::outbound_arguments(site.call, &verdict) else {
            let reasons =
                vec!["policy obliged redaction but there is nothing DLP may redact".to_owned()];
            let audit = Self::tool_audit(
                site.ctx,
                site.call,
                Stage::Policy,
                AuditDecision::Deny,
                &reasons,
                Some(&verdict),
            );
            return ToolAction::ObligationUnmet {
                verdict,
                events,
                audit,
                reasons,
            };
        };
        let (stage, decision) = if site.granted {
            (Stage::Approval, AuditDecision::ApprovalGranted)
        } else {
            (
                verdict.decisive().map_or(Stage::Policy, |d| d.stage),
                AuditDecision::Allow,
            )
        };
        let reasons = verdict
            .stages
            .first()
            .map(|d| d.reasons.clone())
            .unwrap_or_default();
        let audit = Self::tool_audit(
            site.ctx,
            site.call,
            stage,
            decision,
            &reasons,
            Some(&verdict),
        );
        let cleared = Cleared {
            call: RequestedTool {
                arguments,
                ..site.call.clone()
            },
            events,
            audit,
        };
        let outcome = match execute(cleared).await {
            Ok(output) => {
                let spec = self.tools().get(&site.call.name).map(|t| t.spec());
                let result = self.tool_result(site.ctx, site.call, spec, &output).await;
                Ok((output, result))
            }
            Err(e) => Err(e),
        };
        ToolAction::Ran { verdict, outcome }
    }
}
