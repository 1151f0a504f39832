//! Content safety on what users submit and on what models answer. The task's title,
//! description and every string in its parameters, and every model answer (its text and the
//! string arguments of the tool calls it asks for), are screened with the configured classifier
//! (`content_safety.classifier`: the lexicon, or a moderation endpoint falling back to the
//! lexicon) and the per-category actions of `config/dataprotect.yaml`
//! (`content_safety.actions`). `block` refuses the submission (`AMAS-SAFE-0001`) or fails the
//! step (`AMAS-SAFE-0002`); `flag` goes on, audited and counted; `allow` does nothing. Only
//! categories are reported, never the words that matched.

use std::sync::Arc;

use amas_dataprotect::{Action, Category, ContentSafety, Screening, Verdict};
use amas_store::AuditRecord;
use amas_store::AuditWriter;
use amas_store::audit::AuditDecision;
use amas_telemetry::Metrics;
use amas_types::{ErrorInfo, JournalEvent, JournaledAnswer, Principal, TaskId, TaskSpec};
use tracing::warn;

use crate::error::codes;

/// The text of a submission as one document (title, description, string parameters).
pub(crate) fn submission_text(spec: &TaskSpec) -> String {
    let mut text = format!("{}\n{}", spec.title, spec.description);
    for value in spec.parameters.values() {
        strings(value, &mut text);
    }
    text
}

fn strings(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::String(s) => {
            out.push('\n');
            out.push_str(s);
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
    }
}

/// The verdict on a submission, from the configured classifier.
pub(crate) async fn screen(safety: &ContentSafety, spec: &TaskSpec) -> Screening {
    safety.screen(&submission_text(spec)).await
}

/// Category names of a verdict's hits, for reasons, audit records and errors.
pub(crate) fn category_names(verdict: &Verdict) -> Vec<String> {
    verdict
        .categories()
        .iter()
        .map(|c| c.name().to_owned())
        .collect()
}

/// The bounded metric label of an action.
pub(crate) fn outcome(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Flag => "flag",
        Action::Block => "block",
    }
}

/// The journaled action of a model-output verdict (`ActionDecided.action`).
pub(crate) const MODEL_OUTPUT: &str = "model_output";
/// The deciding stage of every content-safety verdict.
pub(crate) const STAGE: &str = "content_safety";
/// The reason added when the configured classifier could not answer and the lexicon decided.
pub(crate) const UNAVAILABLE: &str = "classifier_unavailable";

/// Screens the model outputs of one task: every answer's text and the string arguments of the
/// tool calls it asks for, before the answer is journaled as used.
pub(crate) struct OutputScreen {
    pub safety: Arc<ContentSafety>,
    pub metrics: Metrics,
    pub audit: Option<Arc<AuditWriter>>,
    pub principal: Principal,
    pub task: TaskId,
    pub trace_id: Option<String>,
}

/// A verdict worth journaling (anything but a plain allow), and the step's error when it blocks.
pub(crate) struct Screened {
    pub event: JournalEvent,
    pub blocked: Option<ErrorInfo>,
}

impl OutputScreen {
    /// Screens `answer` (turn `turn` of `step`, from `provider`). `None` when the classifier
    /// allowed it: nothing to journal. Otherwise the `ActionDecided` to journal with the answer
    /// (its reasons are the category names, plus `classifier_unavailable` after a fallback, so
    /// a replay can apply the actions again), after auditing and counting the verdict.
    pub(crate) async fn model_output(
        &self,
        step: &str,
        agent: &str,
        turn: u32,
        provider: &str,
        answer: &JournaledAnswer,
    ) -> Option<Screened> {
        let mut text = answer.content.clone();
        for call in &answer.tool_calls {
            strings(&call.arguments, &mut text);
        }
        let screening = self.safety.screen(&text).await;
        let verdict = &screening.verdict;
        if verdict.action == Action::Allow && !screening.classifier_unavailable {
            return None;
        }
        let outcome = outcome(verdict.action);
        let mut reasons = category_names(verdict);
        if screening.classifier_unavailable {
            reasons.push(UNAVAILABLE.to_owned());
            warn!(
                step,
                safety.classifier = self.safety.classifier_name(),
                "The content classifier is unavailable; the lexicon screened the model output."
            );
        }
        if verdict.action != Action::Allow {
            self.metrics
                .governance_decisions
                .get_or_create(&amas_telemetry::metrics::DecisionLabels {
                    stage: STAGE.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .inc();
            warn!(
                step,
                safety.action = outcome,
                safety.categories = %category_names(verdict).join(","),
                "A model output hit the content-safety filter."
            );
        }
        let blocked = verdict.action == Action::Block;
        self.audit(step, agent, provider, &screening, &reasons)
            .await;
        let error = blocked.then(|| ErrorInfo {
            code: codes::OUTPUT_UNSAFE.to_owned(),
            message: format!(
                "the model's output was refused by the content-safety filter (categories: {})",
                blocked_because(verdict, screening.classifier_unavailable)
            ),
        });
        let event = JournalEvent::ActionDecided {
            step: step.to_owned(),
            call_id: format!("{turn}:{provider}"),
            action: MODEL_OUTPUT.to_owned(),
            stage: STAGE.to_owned(),
            outcome: journal_outcome(verdict.action).to_owned(),
            reasons,
            code: error.as_ref().map(|e| e.code.clone()),
            data: None,
            obligations: Vec::new(),
        };
        Some(Screened {
            event,
            blocked: error,
        })
    }

    async fn audit(
        &self,
        step: &str,
        agent: &str,
        provider: &str,
        screening: &Screening,
        reasons: &[String],
    ) {
        let Some(audit) = &self.audit else {
            return;
        };
        let decision = if screening.verdict.action == Action::Block {
            AuditDecision::Deny
        } else {
            AuditDecision::Allow
        };
        let mut record = AuditRecord::new(&self.principal, STAGE, MODEL_OUTPUT, decision)
            .with_task(self.task)
            .with_step(step)
            .with_agent(agent)
            .with_resource(provider)
            .with_reasons(reasons)
            .with_details(serde_json::json!({
                "categories": category_names(&screening.verdict),
                "action": outcome(screening.verdict.action),
                "classifier": screening.classifier,
                "classifier_unavailable": screening.classifier_unavailable,
            }));
        if let Some(trace) = &self.trace_id {
            record = record.with_trace_id(trace.clone());
        }
        if let Err(e) = audit.record(record).await {
            warn!(error = %e, "An audit record was refused.");
        }
    }
}

/// What a block names: the categories hit, or, when there were none and the configured
/// classifier could not answer (`on_unavailable: block`), that.
pub(crate) fn blocked_because(verdict: &amas_dataprotect::Verdict, unavailable: bool) -> String {
    let categories = category_names(verdict);
    if categories.is_empty() && unavailable {
        "none found; the content classifier is unavailable and `on_unavailable` is `block`"
            .to_owned()
    } else {
        categories.join(", ")
    }
}

/// `ActionDecided.outcome` of a verdict: `allow` (only journaled after a classifier fallback),
/// `flag`, or `deny`.
pub(crate) fn journal_outcome(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Flag => "flag",
        Action::Block => "deny",
    }
}

/// A journaled verdict asked again: the configured actions applied to its recorded categories.
pub(crate) fn rejudge(safety: &ContentSafety, reasons: &[String]) -> &'static str {
    let categories: Vec<Category> = reasons
        .iter()
        .filter_map(|r| Category::from_name(r))
        .collect();
    let unavailable = reasons.iter().any(|r| r == UNAVAILABLE);
    journal_outcome(safety.action_for(&categories, unavailable))
}
