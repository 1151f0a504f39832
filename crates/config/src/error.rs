//! Configuration problems: each with a stable code (documented under `docs/errors/`), the file
//! it came from and the key path inside the effective configuration.

use std::fmt;

/// The configuration codes, by their short names; the codes and their summaries are defined
/// once, in the registry [`amas_types::codes`].
pub mod codes {
    pub use amas_types::codes::{
        CFG_CYCLE as CYCLE, CFG_INVALID_VALUE as INVALID_VALUE, CFG_PARSE as PARSE,
        CFG_SCHEMA as SCHEMA, CFG_UNKNOWN_KEY as UNKNOWN_KEY,
        CFG_UNKNOWN_REFERENCE as UNKNOWN_REFERENCE,
    };
}

/// One problem in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// One of [`codes`].
    pub code: &'static str,
    /// The file (or `env AMAS__...` variable) the offending value came from.
    pub file: String,
    /// Dotted key path in the effective configuration, e.g. `agents.research.limits.timeout`
    /// (the same path an `AMAS__...` variable uses); empty for a whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        write!(f, "{}: {path}: {} [{}]", self.file, self.message, self.code)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found, in the order found (files first, then cross-references).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Whether some problem has `code` at exactly `path`.
    #[must_use]
    pub fn has(&self, code: &str, path: &str) -> bool {
        self.0.iter().any(|e| e.code == code && e.path == path)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        let noun = if n == 1 { "problem" } else { "problems" };
        write!(f, "invalid configuration ({n} {noun}):")?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI prints this Display as is; users grep it for the file and the code.
    #[test]
    fn display_lists_every_problem_with_file_path_and_code() {
        let errs = ConfigErrors(vec![
            ConfigError {
                code: codes::UNKNOWN_KEY,
                file: "cfg/agents.yaml".into(),
                path: "agents.research.limit".into(),
                message: "unknown field `limit`".into(),
            },
            ConfigError {
                code: codes::PARSE,
                file: "cfg/settings.yaml".into(),
                path: String::new(),
                message: "bad YAML".into(),
            },
        ]);
        assert_eq!(
            errs.to_string(),
            "invalid configuration (2 problems):\n  \
             cfg/agents.yaml: agents.research.limit: unknown field `limit` [AMAS-CFG-0002]\n  \
             cfg/settings.yaml: (root): bad YAML [AMAS-CFG-0001]"
        );
    }
}
