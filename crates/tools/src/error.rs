//! Why a tool call did not produce a result: one typed error per cause, each with a stable code
//! documented under `docs/errors/AMAS-TOOL-*.md`.

use std::time::Duration;

use amas_config::Violation;

/// The tool codes, by their short names; the codes and their summaries are defined once, in
/// the registry [`amas_types::codes`].
pub mod codes {
    pub use amas_types::codes::{
        TOOL_DISABLED as DISABLED, TOOL_FAILED as FAILED, TOOL_INVALID_OUTPUT as INVALID_OUTPUT,
        TOOL_INVALID_PARAMS as INVALID_PARAMS, TOOL_NOT_FOUND as NOT_FOUND,
        TOOL_REFUSED as REFUSED, TOOL_SQL_DENIED as SQL_DENIED, TOOL_SQL_LIMIT as SQL_LIMIT,
        TOOL_SQL_ROLE as SQL_ROLE, TOOL_SQL_TIME_BUDGET as SQL_TIME_BUDGET,
        TOOL_TIMEOUT as TIMEOUT, TOOL_TOO_LARGE as TOO_LARGE,
    };
}

/// A tool call that produced no result. Messages never contain secrets (database URLs,
/// file contents); they name the rule that refused and the offending value when it is safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("invalid parameters: {}", join(.violations))]
    InvalidParams { violations: Vec<Violation> },
    #[error("refused by the sandbox: {reason}")]
    Refused { reason: String },
    #[error("timed out after {}ms", .0.as_millis())]
    Timeout(Duration),
    #[error("too large: {what} exceeds the limit of {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("tool failed: {0}")]
    Failed(String),
    #[error("unknown tool `{0}`")]
    NotFound(String),
    #[error("tool disabled: {reason}")]
    Disabled { reason: String },
    /// The result breaks the tool's output schema; the violations never quote the value.
    #[error("result breaks the tool's output schema: {}", join(.violations))]
    InvalidOutput { violations: Vec<Violation> },
    /// The database itself refused the statement (the SQLite authorizer, PostgreSQL's
    /// privileges or its read-only transaction); `reason` names the rule, never a value.
    #[error("refused by the database: {reason}")]
    SqlDenied { reason: String },
    /// The database stopped the statement when its time budget (`statement_timeout`) ran out.
    #[error("the database stopped the statement at its time budget of {}ms", .0.as_millis())]
    SqlTimeBudget(Duration),
    /// The database stopped the statement at a size or memory limit (`what`).
    #[error("the database stopped the statement: {what}")]
    SqlLimit { what: String },
    /// The PostgreSQL role the tool connects as can do more than read the permitted tables;
    /// the tool runs nothing until an operator fixes the role.
    #[error("the database role is not least-privilege, so nothing was run: {reason}")]
    SqlRole { reason: String },
}

fn join(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ToolError {
    /// The stable public code of this error.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidParams { .. } => codes::INVALID_PARAMS,
            Self::Refused { .. } => codes::REFUSED,
            Self::Timeout(_) => codes::TIMEOUT,
            Self::TooLarge { .. } => codes::TOO_LARGE,
            Self::Failed(_) => codes::FAILED,
            Self::NotFound(_) => codes::NOT_FOUND,
            Self::Disabled { .. } => codes::DISABLED,
            Self::InvalidOutput { .. } => codes::INVALID_OUTPUT,
            Self::SqlDenied { .. } => codes::SQL_DENIED,
            Self::SqlTimeBudget(_) => codes::SQL_TIME_BUDGET,
            Self::SqlLimit { .. } => codes::SQL_LIMIT,
            Self::SqlRole { .. } => codes::SQL_ROLE,
        }
    }

    /// A refusal with `reason`.
    pub fn refused(reason: impl Into<String>) -> Self {
        Self::Refused {
            reason: reason.into(),
        }
    }

    /// One invalid parameter at JSON pointer `path`.
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        Self::InvalidParams {
            violations: vec![Violation {
                path: path.to_owned(),
                message: message.into(),
            }],
        }
    }

    /// `{code, message}`: what goes back to the model as the tool's error result.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code(), "message": self.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes are public API (docs pages, dashboards): a change here must be deliberate.
    #[test]
    fn every_variant_has_its_own_code() {
        let all = [
            ToolError::invalid("/x", "bad"),
            ToolError::refused("no"),
            ToolError::Timeout(Duration::from_millis(5)),
            ToolError::TooLarge {
                what: "body".into(),
                limit: 1,
            },
            ToolError::Failed("x".into()),
            ToolError::NotFound("x".into()),
            ToolError::Disabled { reason: "x".into() },
            ToolError::InvalidOutput {
                violations: Vec::new(),
            },
            ToolError::SqlDenied { reason: "x".into() },
            ToolError::SqlTimeBudget(Duration::from_millis(5)),
            ToolError::SqlLimit { what: "x".into() },
            ToolError::SqlRole { reason: "x".into() },
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(ToolError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(
            all[0].to_string(),
            "invalid parameters: /x: bad",
            "violations are listed with their path"
        );
        assert_eq!(all[2].to_json()["code"], "AMAS-TOOL-0003");
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/errors");
        for code in codes {
            assert!(
                docs.join(format!("{code}.md")).is_file(),
                "{code} has no doc page"
            );
        }
    }
}
