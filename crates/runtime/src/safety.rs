//! Content safety on what users submit: the task's title, description and every string in its
//! parameters are screened with the built-in lexicon and the per-category actions of
//! `config/dataprotect.yaml` (`content_safety.actions`). `block` refuses the submission
//! (`AMAS-SAFE-0001`); `flag` admits it, audited and counted; `allow` does nothing. Only
//! categories are reported, never the words that matched.

use amas_dataprotect::{Action, ContentSafety, Verdict};
use amas_types::TaskSpec;

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

/// The verdict on a submission.
pub(crate) fn screen(safety: &ContentSafety, spec: &TaskSpec) -> Verdict {
    safety.check(&submission_text(spec))
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
