//! Folding a task's journal into its current state. The only place that interprets events, so
//! the API, the runtime and recovery all see the same truth.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::approval::{Approval, ApprovalStatus};
use crate::event::{DataLabels, ErrorInfo, JournalEvent, JournalRecord, RequestedTool, Usage};
use crate::ids::{AgentId, ApprovalId, CallId, StepId, TaskId};
use crate::lineage::{LineageNode, NodeKind};
use crate::task::{Principal, StepStatus, TaskSpec, TaskStatus};

/// One step as folded from the journal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepState {
    pub step: StepId,
    pub agent: AgentId,
    pub status: StepStatus,
    /// Model answers received so far (one per attempt).
    pub attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub usage: Usage,
    pub input: Option<serde_json::Value>,
    pub output: Option<serde_json::Value>,
    pub error: Option<ErrorInfo>,
    /// Journaled model answers by turn: what recovery reuses instead of calling again.
    #[serde(skip)]
    pub responses: BTreeMap<u32, JournaledAnswer>,
    /// Contract errors by attempt: the feedback the next attempt receives.
    #[serde(skip)]
    pub violations: BTreeMap<u32, Vec<String>>,
    /// Tool calls by call id: what recovery reuses instead of running a tool again.
    #[serde(skip)]
    pub tools: BTreeMap<CallId, ToolOutcome>,
}

/// A model answer as journaled: its text and any tool calls it asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct JournaledAnswer {
    pub content: String,
    pub tool_calls: Vec<RequestedTool>,
}

/// What the journal knows of one tool call.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolOutcome {
    /// Started, no result journaled: it may or may not have happened.
    Started,
    Completed(serde_json::Value),
    Failed(ErrorInfo),
}

/// A task as folded from its journal.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskState {
    pub id: TaskId,
    pub spec: TaskSpec,
    pub principal: Principal,
    pub trace_id: Option<String>,
    /// The submitting request's span, parent of the task's span (not shown: tracing plumbing).
    #[serde(skip)]
    pub parent_span_id: Option<String>,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub steps: BTreeMap<StepId, StepState>,
    pub result: Option<serde_json::Value>,
    pub error: Option<ErrorInfo>,
    /// Approval requests by id, with their votes and resolution.
    pub approvals: BTreeMap<ApprovalId, Approval>,
    /// Sequence number of the last folded event: the expected sequence for the next append.
    pub last_seq: u64,
    /// The classification of the final result (its lineage node's labels), once recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<DataLabels>,
    /// Lineage nodes by id (empty for journals written before lineage existed).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub lineage: BTreeMap<String, LineageNode>,
}

impl TaskState {
    /// Folds a whole journal. `None` when it is empty or does not start with `TaskSubmitted`.
    #[must_use]
    pub fn fold(records: &[JournalRecord]) -> Option<Self> {
        let (first, rest) = records.split_first()?;
        let JournalEvent::TaskSubmitted {
            spec,
            principal,
            trace_id,
            parent_span_id,
        } = &first.event
        else {
            return None;
        };
        let mut state = Self {
            id: first.task_id,
            spec: spec.clone(),
            principal: principal.clone(),
            trace_id: trace_id.clone(),
            parent_span_id: parent_span_id.clone(),
            status: TaskStatus::Queued,
            created_at: first.recorded_at,
            updated_at: first.recorded_at,
            steps: BTreeMap::new(),
            result: None,
            error: None,
            approvals: BTreeMap::new(),
            last_seq: first.seq,
            classification: None,
            lineage: BTreeMap::new(),
        };
        for record in rest {
            state.apply(record);
        }
        Some(state)
    }

    /// Applies one more event (in sequence order).
    pub fn apply(&mut self, record: &JournalRecord) {
        self.last_seq = record.seq;
        self.updated_at = record.recorded_at;
        if let Some(status) = record.event.status_effect() {
            // A terminal status is final; a late event cannot resurrect the task.
            if !self.status.is_terminal() {
                self.status = status;
            }
        }
        let at = record.recorded_at;
        match &record.event {
            JournalEvent::TaskSubmitted { .. }
            | JournalEvent::TaskStarted
            | JournalEvent::ActionDecided { .. }
            | JournalEvent::ModelCallDeferred { .. } => {}
            JournalEvent::ApprovalRequested { .. } => {
                if let Some(a) =
                    Approval::requested(self.id, &self.principal.tenant, &record.event, at)
                {
                    self.approvals.insert(a.id.clone(), a);
                }
                self.status = self.status.with_pending_approvals(self.pending_approvals());
            }
            JournalEvent::ApprovalVoted { approval_id, .. }
            | JournalEvent::ApprovalResolved { approval_id, .. } => {
                if let Some(a) = self.approvals.get_mut(approval_id) {
                    a.apply(&record.event, at);
                }
                self.status = self.status.with_pending_approvals(self.pending_approvals());
            }
            JournalEvent::ToolStarted { step, call_id, .. } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.tools
                        .entry(call_id.clone())
                        .or_insert(ToolOutcome::Started);
                }
            }
            JournalEvent::ToolCompleted {
                step,
                call_id,
                output,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.tools
                        .insert(call_id.clone(), ToolOutcome::Completed(output.clone()));
                }
            }
            JournalEvent::ToolFailed {
                step,
                call_id,
                error,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.tools
                        .insert(call_id.clone(), ToolOutcome::Failed(error.clone()));
                }
            }
            JournalEvent::StepStarted { step, agent, input } => {
                let entry = self.steps.entry(step.clone()).or_insert_with(|| StepState {
                    step: step.clone(),
                    agent: agent.clone(),
                    status: StepStatus::Pending,
                    attempts: 0,
                    started_at: None,
                    finished_at: None,
                    usage: Usage::default(),
                    input: None,
                    output: None,
                    error: None,
                    responses: BTreeMap::new(),
                    violations: BTreeMap::new(),
                    tools: BTreeMap::new(),
                });
                entry.status = StepStatus::Running;
                entry.started_at.get_or_insert(at);
                entry.input = Some(input.clone());
            }
            JournalEvent::ModelResponded {
                step,
                attempt,
                content,
                tool_calls,
                usage,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.attempts = s.attempts.max(*attempt);
                    s.usage.input_tokens += usage.input_tokens;
                    s.usage.output_tokens += usage.output_tokens;
                    s.responses.insert(
                        *attempt,
                        JournaledAnswer {
                            content: content.clone(),
                            tool_calls: tool_calls.clone(),
                        },
                    );
                }
            }
            JournalEvent::ContractViolated {
                step,
                attempt,
                errors,
                ..
            } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.violations.insert(*attempt, errors.clone());
                }
            }
            JournalEvent::StepSucceeded { step, output } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.status = StepStatus::Succeeded;
                    s.output = Some(output.clone());
                    s.finished_at = Some(at);
                }
            }
            JournalEvent::StepFailed { step, error } => {
                if let Some(s) = self.steps.get_mut(step) {
                    s.status = StepStatus::Failed;
                    s.error = Some(error.clone());
                    s.finished_at = Some(at);
                }
            }
            JournalEvent::TaskSucceeded { result } => self.result = Some(result.clone()),
            JournalEvent::TaskFailed { error } => self.error = Some(error.clone()),
            JournalEvent::TaskCancelled { reason } => {
                self.error = Some(ErrorInfo {
                    code: crate::codes::TASK_CANCELLED.to_owned(),
                    message: format!("cancelled: {reason}"),
                });
            }
            JournalEvent::LineageRecorded { node } => {
                if node.kind == NodeKind::Result {
                    self.classification = Some(node.labels.clone());
                }
                self.lineage.insert(node.id.clone(), node.clone());
            }
        }
    }

    /// Approvals not yet resolved.
    #[must_use]
    pub fn pending_approvals(&self) -> usize {
        self.approvals
            .values()
            .filter(|a| a.status == ApprovalStatus::Pending)
            .count()
    }

    /// The approval opened for a tool call, if any.
    #[must_use]
    pub fn approval_for(&self, step: &StepId, call_id: &CallId) -> Option<&Approval> {
        self.approvals
            .values()
            .find(|a| a.step == *step && a.call_id == *call_id)
    }

    /// Total tokens over all steps.
    #[must_use]
    pub fn usage(&self) -> Usage {
        self.steps.values().fold(Usage::default(), |acc, s| Usage {
            input_tokens: acc.input_tokens + s.usage.input_tokens,
            output_tokens: acc.output_tokens + s.usage.output_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Priority;
    use serde_json::json;

    fn rec(seq: u64, event: JournalEvent) -> JournalRecord {
        JournalRecord {
            task_id: TaskId(uuid::Uuid::nil()),
            seq,
            recorded_at: Utc::now(),
            event,
        }
    }

    fn submitted() -> JournalEvent {
        JournalEvent::TaskSubmitted {
            spec: TaskSpec {
                task_type: "t".into(),
                title: "a".into(),
                description: "b".into(),
                parameters: serde_json::Map::new(),
                priority: Priority::DEFAULT,
            },
            principal: Principal::local_operator(),
            trace_id: None,
            parent_span_id: None,
        }
    }

    /// The fold must keep journaled answers and violations, since recovery depends on them.
    #[test]
    fn fold_tracks_steps_answers_and_terminal_status() {
        let events = vec![
            rec(1, submitted()),
            rec(2, JournalEvent::TaskStarted),
            rec(
                3,
                JournalEvent::StepStarted {
                    step: "research".into(),
                    agent: "research".into(),
                    input: json!({}),
                },
            ),
            rec(
                4,
                JournalEvent::ModelResponded {
                    step: "research".into(),
                    attempt: 1,
                    provider: "p".into(),
                    model: "m".into(),
                    content: "{}".into(),
                    tool_calls: Vec::new(),
                    usage: Usage {
                        input_tokens: 3,
                        output_tokens: 4,
                    },
                    latency_ms: 1,
                },
            ),
            rec(
                5,
                JournalEvent::ContractViolated {
                    step: "research".into(),
                    attempt: 1,
                    contract: "c".into(),
                    errors: vec!["/x: missing".into()],
                },
            ),
            rec(6, JournalEvent::TaskCancelled { reason: "r".into() }),
            rec(7, JournalEvent::TaskSucceeded { result: json!(1) }),
        ];
        let state = TaskState::fold(&events).expect("folds");
        assert_eq!(
            state.status,
            TaskStatus::Cancelled,
            "terminal status is final"
        );
        assert_eq!(state.last_seq, 7);
        let step = &state.steps["research"];
        assert_eq!(step.attempts, 1);
        assert_eq!(
            step.responses.get(&1).map(|a| a.content.as_str()),
            Some("{}")
        );
        assert_eq!(step.violations[&1], vec!["/x: missing".to_owned()]);
        assert_eq!(state.usage().output_tokens, 4);
    }

    #[test]
    fn fold_rejects_a_journal_not_starting_with_submission() {
        assert!(TaskState::fold(&[rec(1, JournalEvent::TaskStarted)]).is_none());
        assert!(TaskState::fold(&[]).is_none());
    }

    #[test]
    fn priority_bounds() {
        assert!(Priority::new(0).is_err());
        assert!(Priority::new(11).is_err());
        assert_eq!(Priority::new(10).map(Priority::get), Ok(10));
        assert!(serde_json::from_value::<Priority>(json!(0)).is_err());
    }
}
