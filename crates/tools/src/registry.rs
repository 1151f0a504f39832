//! The tool registry: names to implementations, and the one entry point ([`ToolRegistry::call`])
//! that validates parameters against the spec's schema and enforces the timeout and the output
//! size limit around every tool, so no implementation can skip them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::analyzer::CodeAnalyzer;
use crate::calculator::Calculator;
use amas_config::ConfigErrors;

use crate::config::{ToolConfig, ToolSettings, ToolsConfig};
use crate::disabled::Disabled;
use crate::error::ToolError;
use crate::fs::{FileRead, FileWrite};
use crate::http::HttpFetch;
use crate::scanner::VulnerabilityScanner;
use crate::spec::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use crate::sql::SqlQuery;

#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.tools.keys())
            .finish()
    }
}

/// The built-in implementation for one validated entry. Kind and settings are validated
/// together, so a mismatch cannot happen; it would fall back to a disabled tool.
fn build(cfg: ToolConfig) -> Arc<dyn Tool> {
    let ToolConfig { spec, settings } = cfg;
    match (spec.kind, settings) {
        (ToolKind::HttpFetch, ToolSettings::HttpFetch(s)) => Arc::new(HttpFetch::new(spec, s)),
        (ToolKind::FileRead, ToolSettings::Files(s)) => Arc::new(FileRead::new(spec, s)),
        (ToolKind::FileWrite, ToolSettings::Files(s)) => Arc::new(FileWrite::new(spec, s)),
        (ToolKind::CodeAnalyzer, ToolSettings::Files(s)) => Arc::new(CodeAnalyzer::new(spec, s)),
        (ToolKind::VulnerabilityScanner, ToolSettings::Files(s)) => {
            Arc::new(VulnerabilityScanner::new(spec, s))
        }
        (ToolKind::SqlQuery, ToolSettings::SqlQuery(s)) => Arc::new(SqlQuery::new(spec, s)),
        (ToolKind::Calculator, _) => Arc::new(Calculator::new(spec)),
        _ => Arc::new(Disabled::new(spec)),
    }
}

impl ToolRegistry {
    /// The registry from the embedded `tools.yaml` overridden by `<config_dir>/tools.yaml`,
    /// reading `postgres_url_env` variables from the process environment.
    ///
    /// # Errors
    /// Every configuration problem at once, each with file and key path.
    pub fn load(config_dir: Option<&Path>) -> Result<Self, ConfigErrors> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Ok(Self::from_config(ToolsConfig::load(config_dir, &env)?))
    }

    #[must_use]
    pub fn from_config(cfg: ToolsConfig) -> Self {
        let mut reg = Self::default();
        for tool in cfg.tools {
            reg.insert(build(tool));
        }
        reg
    }

    /// Adds or replaces a tool under its spec's name (custom implementations, later MCP).
    pub fn insert(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name.clone(), tool);
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// Every spec, in name order.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.values().map(|t| t.spec())
    }

    /// Checks `content`, a result of the tool `name`, against that tool's output schema: the
    /// output-contract stage, run on every result before a model sees it.
    ///
    /// # Errors
    /// `NotFound` for an unknown tool (fail closed: no schema, no pass), `InvalidOutput`
    /// (`AMAS-TOOL-0008`) with every violation's JSON pointer and rule, never the value.
    pub fn check_output(&self, name: &str, content: &serde_json::Value) -> Result<(), ToolError> {
        self.get(name)
            .ok_or_else(|| ToolError::NotFound(name.to_owned()))?
            .spec()
            .check_output(content)
    }

    /// Calls `name`: parameters checked against its schema, then the tool run under its
    /// timeout, then its serialized output checked against `max_output_bytes`.
    ///
    /// # Errors
    /// `NotFound`, `InvalidParams`, `Timeout`, `TooLarge`, or the tool's own error.
    pub async fn call(
        &self,
        name: &str,
        ctx: &ToolContext,
        params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let tool = self
            .get(name)
            .ok_or_else(|| ToolError::NotFound(name.to_owned()))?;
        let spec = tool.spec();
        let violations = spec.parameters.check(&params);
        if !violations.is_empty() {
            return Err(ToolError::InvalidParams { violations });
        }
        let out = tokio::time::timeout(spec.timeout, tool.call(ctx, params))
            .await
            .map_err(|_| ToolError::Timeout(spec.timeout))??;
        let size = serde_json::to_vec(&out.content).map_or(usize::MAX, |v| v.len());
        if size > spec.max_output_bytes {
            return Err(ToolError::TooLarge {
                what: "tool output".into(),
                limit: spec.max_output_bytes as u64,
            });
        }
        Ok(out)
    }
}
