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

/// The result against the tool's declared output schema (`AMAS-TOOL-0008`, every violation a
/// reason: a path and the rule broken, never the value, which may be file contents or rows).
pub(crate) fn output(spec: &ToolSpec, result: &Value) -> Decision {
    match spec.check_output(result) {
        Ok(()) => allow(Stage::OutputContract),
        Err(e) => Decision {
            outcome: Outcome::Deny,
            reasons: match &e {
                amas_tools::ToolError::InvalidOutput { violations } => {
                    violations.iter().map(ToString::to_string).collect()
                }
                other => vec![other.to_string()],
            },
            code: Some(e.code()),
            ..allow(Stage::OutputContract)
        },
    }
}
