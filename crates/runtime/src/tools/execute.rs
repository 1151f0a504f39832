//! Running a tool call the pipeline allowed: its start journaled (where a cancellation fences
//! it off), the tool executed, its result governed before the model sees it, and the outcome
//! journaled, then audited.

use std::sync::PoisonError;
use std::time::Instant;

use tracing::{Instrument, info_span, warn};

use amas_governance::pipeline::{Outcome, codes};
use amas_store::{AuditRecord, StoreError};
use amas_telemetry::metrics::ToolLabels;
use amas_tools::ToolContext;
use amas_types::{ErrorInfo, JournalEvent, RequestedTool, StepId};

use super::{Ack, CallResult, ToolRunner, error_message};
use crate::writer::TaskWriter;

impl ToolRunner {
    /// Journals `events` and the start, audits the decision (`decided`), runs the tool, and
    /// journals its result. The start's append is where a cancellation fences the call off:
    /// when the task ended first, the store refuses it, and the tool does not run and nothing
    /// of it is audited.
    #[expect(
        clippy::too_many_arguments,
        reason = "the step's context, the call, what its decision journals and audits"
    )]
    pub(super) async fn execute(
        &self,
        writer: &TaskWriter,
        step: &StepId,
        agent: &amas_config::AgentConfig,
        call: &RequestedTool,
        mut events: Vec<JournalEvent>,
        ack: Option<Ack>,
        decided: AuditRecord,
    ) -> Result<CallResult, StoreError> {
        let idempotent = self.spec(&call.name).is_some_and(|s| s.idempotent);
        events.push(JournalEvent::ToolStarted {
            step: step.clone(),
            call_id: call.id.clone(),
            tool: call.name.clone(),
            idempotent,
        });
        if let Err(e) = writer.append_all(&events).await {
            if let Some(ack) = ack {
                ack.fail(&e);
            }
            return Err(e);
        }
        self.audit(vec![decided]).await;
        if let Some(ack) = ack {
            ack.send();
        }

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
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.metrics
            .tool_call_duration
            .get_or_create(&ToolLabels {
                tool: call.name.clone(),
                outcome: if result.is_ok() { "ok" } else { "error" }.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        {
            let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
            usage.count_start(self.spec(&call.name).map(|s| s.kind));
            usage.count_input(&call.arguments);
            if let Ok(out) = &result {
                usage.count_output(&out.content);
            }
        }
        match result {
            Ok(output) => {
                // The result is governed before the model sees it (and before it is journaled
                // as the call's output, which a resumed step would hand the model as is).
                let verdict = self
                    .pipeline
                    .tool_result(
                        &self.ctx(step, &agent.id),
                        call,
                        self.spec(&call.name),
                        &output.content,
                    )
                    .await;
                let mut events = verdict.governed.events;
                // Audited once journaled: a result the journal refuses (the task ended while
                // the tool ran) leaves no record either.
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
                events.push(JournalEvent::ToolCompleted {
                    step: step.clone(),
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    output: output.content.clone(),
                    duration_ms,
                });
                writer.append_all(&events).await?;
                self.audit(records).await;
                // Marked as data, never instructions, with what the screen suspected.
                Ok(CallResult::Message(amas_dataprotect::untrusted_envelope(
                    &call.name,
                    &output.content,
                    verdict.injection.as_ref(),
                )))
            }
            Err(e) => {
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
                Ok(CallResult::Message(error_message(&error)))
            }
        }
    }
}
