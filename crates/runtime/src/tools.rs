//! Running the tool calls a model asked for: each through the governance gate, journaled
//! before and after it runs, and never silently re-run after a restart when it is not
//! idempotent.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::json;
use tracing::{Instrument, info_span, warn};

use amas_governance::gate::{Outcome, TaskToolUsage, ToolCallRequest, ToolGate};
use amas_store::StoreError;
use amas_telemetry::Metrics;
use amas_telemetry::metrics::ToolLabels;
use amas_tools::{ToolContext, ToolRegistry, ToolSpec};
use amas_types::{ErrorInfo, JournalEvent, Principal, RequestedTool, ToolOutcome};

use crate::writer::TaskWriter;

/// A tool call whose start is journaled but whose result is not, for a non-idempotent tool:
/// it may have happened, so it is not run again.
pub(crate) const UNCERTAIN_SIDE_EFFECT: &str = "AMAS-STEP-0007";

/// What a step needs to run tools: the gate, the task's identity, and its shared usage.
pub(crate) struct ToolRunner {
    pub gate: Arc<ToolGate>,
    pub principal: Principal,
    pub task_id: String,
    pub task_type: String,
    pub workspace: PathBuf,
    /// Tool usage of the whole task (all steps), for quotas.
    pub usage: Arc<Mutex<TaskToolUsage>>,
    pub metrics: Metrics,
}

/// The result of one call as the model will see it, or a reason to stop the step.
pub(crate) enum CallResult {
    /// The text of the tool message (a result or an error the model can react to).
    Message(String),
    /// The step must stop (uncertain side effect).
    Stop(ErrorInfo),
}

impl ToolRunner {
    /// Decides, runs and journals one call; `prior` is what the journal already says about it.
    pub(crate) async fn run(
        &self,
        writer: &TaskWriter,
        step: &str,
        agent: &amas_config::AgentConfig,
        call: &RequestedTool,
        prior: Option<&ToolOutcome>,
    ) -> Result<CallResult, StoreError> {
        match prior {
            Some(ToolOutcome::Completed(output)) => {
                return Ok(CallResult::Message(output.to_string()));
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
        let usage = self
            .usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let verdict = self.gate.check(&ToolCallRequest {
            principal: &self.principal,
            agent,
            task_id: &self.task_id,
            task_type: &self.task_type,
            tool: &call.name,
            arguments: &call.arguments,
            usage: &usage,
            approvals: &[],
        });
        let mut events: Vec<JournalEvent> = verdict
            .stages
            .iter()
            .map(|s| JournalEvent::ActionDecided {
                step: step.to_owned(),
                call_id: call.id.clone(),
                action: "tool_call".to_owned(),
                stage: s.stage.to_owned(),
                outcome: s.outcome.as_str().to_owned(),
                reasons: s.reasons.clone(),
                code: s.code.map(str::to_owned),
            })
            .collect();
        let decisive = verdict.decisive().cloned();
        if verdict.outcome() != Outcome::Allow {
            // No approval workflow yet: a call that needs approval is denied (fail closed).
            let (code, reasons) = decisive.map_or_else(
                || ("AMAS-GOV-0001".to_owned(), vec!["no decision".to_owned()]),
                |d| (d.code.unwrap_or("AMAS-GOV-0001").to_owned(), d.reasons),
            );
            let error = ErrorInfo {
                code,
                message: format!("tool call `{}` refused: {}", call.name, reasons.join("; ")),
            };
            self.count(&call.name, "denied");
            events.push(JournalEvent::ToolFailed {
                step: step.to_owned(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                error: error.clone(),
            });
            writer.append_all(&events).await?;
            return Ok(CallResult::Message(error_message(&error)));
        }
        let idempotent = self.spec(&call.name).is_some_and(|s| s.idempotent);
        events.push(JournalEvent::ToolStarted {
            step: step.to_owned(),
            call_id: call.id.clone(),
            tool: call.name.clone(),
            idempotent,
        });
        writer.append_all(&events).await?;

        let ctx = ToolContext {
            task_id: self.task_id.clone(),
            workspace: self.workspace.clone(),
            agent: agent.id.clone(),
        };
        let started = Instant::now();
        let span = info_span!("amas.tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = %call.name, amas.step = %step);
        let result = self
            .gate
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
            if let Ok(out) = &result {
                usage.count_output(&out.content);
            }
        }
        match result {
            Ok(output) => {
                self.count(&call.name, "ok");
                writer
                    .append(JournalEvent::ToolCompleted {
                        step: step.to_owned(),
                        call_id: call.id.clone(),
                        tool: call.name.clone(),
                        output: output.content.clone(),
                        duration_ms,
                    })
                    .await?;
                Ok(CallResult::Message(output.content.to_string()))
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
                        step: step.to_owned(),
                        call_id: call.id.clone(),
                        tool: call.name.clone(),
                        error: error.clone(),
                    })
                    .await?;
                Ok(CallResult::Message(error_message(&error)))
            }
        }
    }

    fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.gate.tools().get(name).map(|t| t.spec())
    }

    fn count(&self, tool: &str, outcome: &str) {
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
fn error_message(error: &ErrorInfo) -> String {
    json!({"error": {"code": error.code, "message": error.message}}).to_string()
}

/// Tool usage already recorded in a task's journal (for quotas after a restart): calls that
/// started count, denied ones do not; counted exactly as `ToolRunner::run` counts live calls.
pub(crate) fn usage_from_journal(
    records: &[amas_types::JournalRecord],
    registry: &ToolRegistry,
) -> TaskToolUsage {
    let mut usage = TaskToolUsage::default();
    for record in records {
        match &record.event {
            JournalEvent::ToolStarted { tool, .. } => {
                usage.count_start(registry.get(tool).map(|t| t.spec().kind));
            }
            JournalEvent::ToolCompleted { output, .. } => usage.count_output(output),
            _ => {}
        }
    }
    usage
}
