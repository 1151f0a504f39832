//! Tombstones for retention purges: what a payload-bearing journal event looks like once its
//! payloads are deleted. Each payload is replaced by its SHA-256, so a copy kept elsewhere can
//! still be matched against the journal, and the event keeps its seq, kind and every field
//! that is not a payload (ids, step names, tokens, timings), so history still folds.
//!
//! A JSON payload becomes `{"$tombstone": {"sha256": "<hex>", "purged_at": "<RFC 3339>"}}`;
//! a text payload becomes `[purged sha256:<hex>]`. The hash is over the payload's compact JSON
//! text (as `serde_json` writes it) for JSON, over its UTF-8 bytes for text.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use amas_types::JournalEvent;

use crate::audit::hash_payload;

/// The key of a tombstone object.
pub const TOMBSTONE_KEY: &str = "$tombstone";

/// The tombstone of a JSON payload.
#[must_use]
pub fn tombstone_value(value: &Value, at: DateTime<Utc>) -> Value {
    if is_tombstone(value) {
        return value.clone();
    }
    let text = serde_json::to_string(value).unwrap_or_default();
    json!({ TOMBSTONE_KEY: {
        "sha256": hash_payload(text.as_bytes()),
        "purged_at": crate::shared::format_time(at),
    }})
}

/// The tombstone of a text payload.
#[must_use]
pub fn tombstone_text(text: &str) -> String {
    if is_tombstone_text(text) {
        return text.to_owned();
    }
    format!("[purged sha256:{}]", hash_payload(text.as_bytes()))
}

/// True for a value written by [`tombstone_value`].
#[must_use]
pub fn is_tombstone(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|o| o.len() == 1 && o.get(TOMBSTONE_KEY).is_some_and(Value::is_object))
}

fn is_tombstone_text(text: &str) -> bool {
    text.strip_prefix("[purged sha256:")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// True when `event` carries a payload a purge deletes: the task input, a step input or
/// output, a model answer, a tool result or arguments, or the final result.
#[must_use]
pub fn has_payload(event: &JournalEvent) -> bool {
    match event {
        JournalEvent::TaskSubmitted { .. }
        | JournalEvent::StepStarted { .. }
        | JournalEvent::ModelResponded { .. }
        | JournalEvent::ToolCompleted { .. }
        | JournalEvent::ApprovalRequested { .. }
        | JournalEvent::StepSucceeded { .. }
        | JournalEvent::TaskSucceeded { .. } => true,
        JournalEvent::TaskStarted
        | JournalEvent::ContractViolated { .. }
        | JournalEvent::ActionDecided { .. }
        | JournalEvent::ToolStarted { .. }
        | JournalEvent::ToolFailed { .. }
        | JournalEvent::ApprovalVoted { .. }
        | JournalEvent::ApprovalResolved { .. }
        | JournalEvent::StepFailed { .. }
        | JournalEvent::TaskFailed { .. }
        | JournalEvent::TaskCancelled { .. }
        | JournalEvent::ModelCallDeferred { .. }
        | JournalEvent::LineageRecorded { .. } => false,
    }
}

/// True when every payload of `event` is already a tombstone (what [`tombstone_event`] would
/// leave unchanged), without rebuilding or hashing anything.
#[must_use]
pub fn is_purged(event: &JournalEvent) -> bool {
    match event {
        JournalEvent::TaskSubmitted { spec, .. } => {
            is_tombstone_text(&spec.title)
                && is_tombstone_text(&spec.description)
                && spec.parameters.len() == 1
                && spec
                    .parameters
                    .get(TOMBSTONE_KEY)
                    .is_some_and(Value::is_object)
        }
        JournalEvent::StepStarted { input: v, .. }
        | JournalEvent::ToolCompleted { output: v, .. }
        | JournalEvent::ApprovalRequested { arguments: v, .. }
        | JournalEvent::StepSucceeded { output: v, .. }
        | JournalEvent::TaskSucceeded { result: v } => is_tombstone(v),
        JournalEvent::ModelResponded {
            content,
            tool_calls,
            ..
        } => is_tombstone_text(content) && tool_calls.iter().all(|c| is_tombstone(&c.arguments)),
        _ => false,
    }
}

/// `event` with every payload replaced by its tombstone; `None` for an event without payload.
/// Idempotent: a tombstone is kept as it is.
#[must_use]
pub fn tombstone_event(event: &JournalEvent, at: DateTime<Utc>) -> Option<JournalEvent> {
    let mut out = event.clone();
    match &mut out {
        JournalEvent::TaskSubmitted { spec, .. } => {
            spec.title = tombstone_text(&spec.title);
            spec.description = tombstone_text(&spec.description);
            let parameters = tombstone_value(&Value::Object(spec.parameters.clone()), at);
            spec.parameters = match parameters {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
        }
        JournalEvent::StepStarted { input, .. } => *input = tombstone_value(input, at),
        JournalEvent::ModelResponded {
            content,
            tool_calls,
            ..
        } => {
            *content = tombstone_text(content);
            for call in tool_calls {
                call.arguments = tombstone_value(&call.arguments, at);
            }
        }
        JournalEvent::ToolCompleted { output, .. } => *output = tombstone_value(output, at),
        JournalEvent::ApprovalRequested { arguments, .. } => {
            *arguments = tombstone_value(arguments, at);
        }
        JournalEvent::StepSucceeded { output, .. } => *output = tombstone_value(output, at),
        JournalEvent::TaskSucceeded { result } => *result = tombstone_value(result, at),
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tombstoning twice changes nothing more, and the hash is the payload's.
    #[test]
    fn tombstones_are_idempotent_and_carry_the_payload_hash() {
        let at = Utc::now();
        let payload = json!({"email": "a@example.com"});
        let once = tombstone_value(&payload, at);
        assert!(is_tombstone(&once));
        assert_eq!(tombstone_value(&once, at), once);
        let expected = hash_payload(
            serde_json::to_string(&payload)
                .unwrap_or_default()
                .as_bytes(),
        );
        assert_eq!(once[TOMBSTONE_KEY]["sha256"], json!(expected));
        let text = tombstone_text("secret");
        assert_eq!(tombstone_text(&text), text);
        assert!(!text.contains("secret"));
    }

    /// `is_purged` answers what comparing with `tombstone_event` would, for every payload kind.
    #[test]
    fn is_purged_agrees_with_tombstoning() {
        let at = Utc::now();
        let payloads = crate::conformance::fixtures::every_variant()
            .into_iter()
            .filter(has_payload);
        for event in payloads {
            assert!(!is_purged(&event), "{event:?}");
            let purged = tombstone_event(&event, at).unwrap();
            assert!(is_purged(&purged), "{purged:?}");
            assert_eq!(tombstone_event(&purged, at).as_ref(), Some(&purged));
        }
    }
}
