//! Stage: content safety on text (a submission, a model's answer, a tool's result), with the
//! configured classifier and the per-category actions of `dataprotect.yaml`. `block` refuses,
//! `flag` goes on (journaled, audited, counted), `allow` does nothing. Only categories are
//! reported, never the words that matched.

use serde_json::{Value, json};

use amas_dataprotect::{Action, Category, ContentSafety, Screening, Verdict};
use amas_types::{Decision, Outcome, Stage, TaskSpec};

/// The reason added when the configured classifier could not answer and the lexicon decided.
pub const UNAVAILABLE: &str = "classifier_unavailable";

/// A content-safety verdict worth acting on (anything but a plain allow by the classifier).
#[derive(Clone, Debug)]
pub struct ContentVerdict {
    /// Stage `content_safety`; outcome `flag` or `deny` (or `allow` after a classifier
    /// fallback); reasons are the category names (+ `classifier_unavailable`), so a replay can
    /// apply the configured actions again.
    pub decision: Decision,
    /// Categories hit, the action, the classifier (for the audit record).
    pub details: Value,
    /// What a refusal names: the categories, or the unavailable classifier.
    pub blocked_because: String,
}

/// Screens `text`; `None` when the classifier allowed it. `code` is the refusal's code.
pub async fn screen(
    safety: &ContentSafety,
    text: &str,
    code: &'static str,
) -> Option<ContentVerdict> {
    let screening = safety.screen(text).await;
    judge(&screening, code)
}

/// The verdict of one screening.
#[must_use]
pub fn judge(screening: &Screening, code: &'static str) -> Option<ContentVerdict> {
    let verdict = &screening.verdict;
    if verdict.action == Action::Allow && !screening.classifier_unavailable {
        return None;
    }
    let mut reasons = category_names(verdict);
    if screening.classifier_unavailable {
        reasons.push(UNAVAILABLE.to_owned());
    }
    let outcome = outcome_of(verdict.action);
    Some(ContentVerdict {
        decision: Decision {
            stage: Stage::ContentSafety,
            outcome,
            reasons,
            code: (outcome == Outcome::Deny).then_some(code),
            obligations: Vec::new(),
            policy: None,
        },
        details: json!({
            "categories": category_names(verdict),
            "action": action_name(verdict.action),
            "classifier": screening.classifier,
            "classifier_unavailable": screening.classifier_unavailable,
        }),
        blocked_because: blocked_because(verdict, screening.classifier_unavailable),
    })
}

/// The text of a submission as one document (title, description, string parameters).
#[must_use]
pub fn submission_text(spec: &TaskSpec) -> String {
    let mut text = format!("{}\n{}", spec.title, spec.description);
    for value in spec.parameters.values() {
        strings(value, &mut text);
    }
    text
}

/// Appends every string inside `value` to `out`, one per line.
pub fn strings(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => {
            out.push('\n');
            out.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Category names of a verdict's hits.
#[must_use]
pub fn category_names(verdict: &Verdict) -> Vec<String> {
    verdict
        .categories()
        .iter()
        .map(|c| c.name().to_owned())
        .collect()
}

/// The configured action's name (`allow`, `flag`, `block`), the metric label of old.
#[must_use]
pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Flag => "flag",
        Action::Block => "block",
    }
}

/// The journaled outcome of an action: `block` is a `deny`.
#[must_use]
pub fn outcome_of(action: Action) -> Outcome {
    match action {
        Action::Allow => Outcome::Allow,
        Action::Flag => Outcome::Flag,
        Action::Block => Outcome::Deny,
    }
}

/// What a block names: the categories hit, or, when there were none and the configured
/// classifier could not answer (`on_unavailable: block`), that.
#[must_use]
pub fn blocked_because(verdict: &Verdict, unavailable: bool) -> String {
    let categories = category_names(verdict);
    if categories.is_empty() && unavailable {
        "none found; the content classifier is unavailable and `on_unavailable` is `block`"
            .to_owned()
    } else {
        categories.join(", ")
    }
}

/// A journaled verdict asked again: the configured actions applied to its recorded categories.
#[must_use]
pub fn rejudge(safety: &ContentSafety, reasons: &[String]) -> Outcome {
    let categories: Vec<Category> = reasons
        .iter()
        .filter_map(|r| Category::from_name(r))
        .collect();
    let unavailable = reasons.iter().any(|r| r == UNAVAILABLE);
    outcome_of(safety.action_for(&categories, unavailable))
}
