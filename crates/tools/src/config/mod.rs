//! `config/tools.yaml`: the embedded registry, overridden entry by entry by
//! `<config-dir>/tools.yaml`; raw entries with unknown keys rejected, validated into
//! [`ToolsConfig`], every problem reported at once with its file and key path.

mod load;
mod settings;

use std::fmt;

use amas_config::ConfigError;

pub use load::{EMBEDDED_TOOLS_YAML, ToolConfig, ToolsConfig};
pub use settings::{
    Database, FileSettings, HttpFetchSettings, HttpMethod, SqlSettings, ToolSettings,
};

/// Every problem found in the tool configuration (codes are the `AMAS-CFG-*` ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolConfigErrors(pub Vec<ConfigError>);

impl ToolConfigErrors {
    /// Whether some problem has `code` at exactly `path` (dotted, e.g. `tools.x.timeout`).
    #[must_use]
    pub fn has(&self, code: &str, path: &str) -> bool {
        self.0.iter().any(|e| e.code == code && e.path == path)
    }
}

impl fmt::Display for ToolConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        let noun = if n == 1 { "problem" } else { "problems" };
        write!(f, "invalid tool configuration ({n} {noun}):")?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ToolConfigErrors {}
