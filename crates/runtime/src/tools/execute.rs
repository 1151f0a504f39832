//! Running a tool call the pipeline allowed. Before the tool runs ([`ToolRunner::start`], the
//! closure the pipeline's tool-call entry executes): its decision and start journaled (where a
//! cancellation fences it off), the decision audited, the tool executed. After
//! ([`ToolRunner::finish`]): the result as the pipeline governed it journaled, then audited.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{Instrument, info_span, warn};

use amas_governance::pipeline::{Cleared, Outcome, ResultVerdict, codes};
use amas_store::StoreError;
use amas_telemetry::metrics::ToolLabels;
use amas_tools::{ToolContext, ToolError};
use amas_types::{Approval, ApprovalStatus, ErrorInfo, JournalEvent, RequestedTool, StepId};

use super::{CallResult, ToolRunner, error_message};
use crate::approvals::{resolved, votes_text};
use crate::error::RuntimeError;
use crate::writer::TaskWriter;

/// Why an allowed call produced no output.
pub(crate) enum RunFailure {
    /// The journal refused the start (the task ended first, or another writer owns it): the
    /// tool did not run.
    Journal(StoreError),
    /// The tool ran and failed.
    Tool(ToolError),
}

/// What the step hands the pipeline's execution closure: where to journal, and the state of
/// the approval loop (its events so far, a voter waiting for an answer).
pub(crate) struct Start<'a, 'b> {
    pub writer: &'a TaskWriter,
    pub step: &'a StepId,
    pub agent: &'a amas_config::AgentConfig,
    /// The approval these votes settle, when the call waited for one.
    pub pending: Option<&'a Approval>,
    /// Events of the approval loop to journal first (a vote).
    pub prior: &'b mut Vec<JournalEvent>,
    /// The voter whose vote settled the approval, owed an answer once it is journaled.
    pub reply: &'b mut Option<oneshot::Sender<Result<Approval, RuntimeError>>>,
    /// How long the tool ran.
    pub took: &'b mut Duration,
}

impl ToolRunner {
    /// Journals the decision (the approval's resolution first, when votes settled one) and the
    /// start, audits the decision, answers the voter, and runs the tool. The start's append is
    /// where a cancellation fences the call off: when the task ended first, the store refuses
    /// it, and the tool does not run and nothing of it is audited.
    pub(super) async fn start(
        &self,
        at: Start<'_, '_>,
        cleared: Cleared,
    ) -> Result<serde_json::Value, RunFailure> {
        let Cleared {
            call,
            events: decided,
            audit,
        } = cleared;
        let mut events = std::mem::take(at.prior);
        if let Some(a) = at.pending {
            events.push(resolved(
                at.step,
                a,
                ApprovalStatus::Approved,
                &votes_text(a),
            ));
        }
        events.extend(decided);
        let ack = self.ack(at.reply.take(), at.pending, &events);
        let idempotent = self.spec(&call.name).is_some_and(|s| s.idempotent);
        events.push(JournalEvent::ToolStarted {
            step: at.step.clone(),
            call_id: call.id.clone(),
            tool: call.name.clone(),
            idempotent,
        });
        if let Err(e) = at.writer.append_all(&events).await {
            if let Some(ack) = ack {
                ack.fail(&e);
            }
            return Err(RunFailure::Journal(e));
        }
        self.audit(vec![audit]).await;
        if let Some(ack) = ack {
            ack.send();
        }
        let started = Instant::now();
        let result = self.run_tool(at.step, at.agent, &call).await;
        *at.took = started.elapsed();
        result.map_err(RunFailure::Tool)
    }

    /// Runs the tool on the call's (outbound) arguments, counted.
    async fn run_tool(
        &self,
        step: &StepId,
        agent: &amas_config::AgentConfig,
        call: &RequestedTool,
    ) -> Result<serde_json::Value, ToolError> {
        let ctx = ToolContext {
            task_id: self.task_id.clone(),
            workspace: self.workspace.clone(),
            agent: agent.id.to_string(),
        };
        let started = Instant::now();
        let span = info_span!(
            "amas.tool",
            otel.name = %format_args!("execute_tool {}", call.name),
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %call.name,
            gen_ai.tool.call.id = %call.id,
            amas.step = %step,
        );
        let result = self
            .pipeline
            .tools()
            .call(&call.name, &ctx, call.arguments.clone())
            .instrument(span)
            .await;
        self.metrics
            .tool_call_duration
            .get_or_create(&ToolLabels {
                tool: call.name.clone(),
                outcome: if result.is_ok() { "ok" } else { "error" }.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        usage.count_start(self.spec(&call.name).map(|s| s.kind));
        usage.count_input(&call.arguments);
        if let Ok(out) = &result {
            usage.count_output(&out.content);
        }
        result.map(|out| out.content)
    }

    /// Journals what became of a call that ran, then audits it, and gives the model its
    /// message: the output (marked as data), or the error of a refused result or a failed
    /// tool.
    pub(super) async fn finish(
        &self,
        writer: &TaskWriter,
        step: &StepId,
        call: &RequestedTool,
        outcome: Result<(serde_json::Value, ResultVerdict), RunFailure>,
        took: Duration,
    ) -> Result<CallResult, StoreError> {
        let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let (output, verdict) = match outcome {
            Ok(done) => done,
            Err(RunFailure::Journal(e)) => return Err(e),
            Err(RunFailure::Tool(e)) => {
                warn!(tool = %call.name, code = e.code(), "Tool call failed.");
                self.count(&call.name, "error");
                let error = ErrorInfo {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                };
                writer
                    .append(JournalEvent::ToolFailed {
                        step: step.clone(),
                        call_id: call.id.clone(),
                        tool: call.name.clone(),
                        error: error.clone(),
                    })
                    .await?;
                return Ok(CallResult::Message(error_message(&error)));
            }
        };
        let mut events = verdict.governed.events;
        // Audited once journaled: a result the journal refuses (the task ended while the tool
        // ran) leaves no record either.
        let records = verdict.governed.audit;
        if let Some(refusal) = verdict
            .decisions
            .iter()
            .find(|d| d.outcome == Outcome::Deny)
        {
            warn!(tool = %call.name, stage = %refusal.stage, "A tool result was refused.");
            self.count(&call.name, "denied");
            let error = ErrorInfo {
                code: refusal.code.unwrap_or(codes::POLICY_DENIED).to_owned(),
                message: format!(
                    "the result of tool call `{}` was refused by {}: {}",
                    call.name,
                    refusal.stage,
                    refusal.reasons.join(", ")
                ),
            };
            events.push(JournalEvent::ToolFailed {
                step: step.clone(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                error: error.clone(),
            });
            writer.append_all(&events).await?;
            self.audit(records).await;
            return Ok(CallResult::Message(error_message(&error)));
        }
        self.count(&call.name, "ok");
        // The result is journaled as governed: a resumed step hands the model exactly this.
        let message =
            amas_dataprotect::untrusted_envelope(&call.name, &output, verdict.injection.as_ref());
        events.push(JournalEvent::ToolCompleted {
            step: step.clone(),
            call_id: call.id.clone(),
            tool: call.name.clone(),
            output,
            duration_ms,
        });
        writer.append_all(&events).await?;
        self.audit(records).await;
        // Marked as data, never instructions, with what the screen suspected.
        Ok(CallResult::Message(message))
    }
}
