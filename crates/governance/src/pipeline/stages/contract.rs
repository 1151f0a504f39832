//! Stages: the input contract (parameters against the tool's JSON Schema) before a call, and
//! the output contract (the result against the tool's declared output schema) after it.

use serde_json::Value;

use amas_tools::ToolSpec;
use amas_types::{Decision, Outcome, Stage};

use super::allow;
use crate::pipeline::codes;

/// The parameters against the tool's JSON Schema (`AMAS-GOV-0003`, every violation a reason).
pub(crate) fn input(spec: &ToolSpec, arguments: &Value) -> Decision {
    let violations = spec.parameters.check(arguments);
    if violations.is_empty() {
        allow(Stage::Contract)
    } else {
        Decision {
            outcome: Outcome::Deny,
            reasons: violations.iter().map(ToString::to_string).collect(),
            code: Some(codes::INVALID_PARAMS),
            ..allow(Stage::Contract)
        }
    }
}

/// The result against the tool's output schema. A tool that declares none is not checked
/// (the slot where `ToolSpec` output schemas plug in).
pub(crate) fn output(_spec: &ToolSpec, _result: &Value) -> Option<Decision> {
    None
}
