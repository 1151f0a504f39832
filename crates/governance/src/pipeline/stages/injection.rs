//! Stage: prompt-injection screening of a tool result (a fetched page, a file, query rows)
//! before the model reads it. `block` refuses the result (`AMAS-SAFE-0004`); `flag` lets it
//! through, journaled, audited and counted, and the result reaches the model wrapped as
//! untrusted data with the signals named; `allow` does nothing. Only signal names and the
//! score are reported, never the text that matched.

use serde_json::{Value, json};

use amas_dataprotect::{Action, InjectionScreen, InjectionVerdict};
use amas_types::{Decision, Outcome, Stage};

use super::allow;

/// The decision on `result` and the verdict behind it (for the envelope and the audit record).
pub(crate) fn screen(screen: &InjectionScreen, result: &Value) -> (Decision, InjectionVerdict) {
    let verdict = screen.screen_json(result);
    let reasons: Vec<String> = verdict
        .signal_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let decision = match verdict.action {
        Action::Allow => allow(Stage::PromptInjection),
        Action::Flag => Decision {
            outcome: Outcome::Flag,
            reasons,
            ..allow(Stage::PromptInjection)
        },
        Action::Block => Decision {
            outcome: Outcome::Deny,
            reasons: if reasons.is_empty() {
                // Only when the screen could not run (its patterns did not build): fail closed.
                vec!["screen_unavailable".to_owned()]
            } else {
                reasons
            },
            code: Some(amas_types::codes::SAFE_INJECTION_BLOCKED),
            ..allow(Stage::PromptInjection)
        },
    };
    (decision, verdict)
}

/// What the audit record says of a verdict: score and signals, never matched text.
pub(crate) fn details(verdict: &InjectionVerdict) -> Value {
    json!({
        "score": verdict.score,
        "signals": verdict.signal_names(),
        "action": verdict.action,
        "unavailable": verdict.unavailable,
    })
}
