//! What a tool is: its declared contract ([`ToolSpec`]), what it runs with ([`ToolContext`]),
//! what it returns ([`ToolOutput`]), and the [`Tool`] trait every implementation fulfils.

use std::path::PathBuf;
use std::time::Duration;

use amas_config::Contract;
use async_trait::async_trait;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::ToolError;

/// How much harm a misused call can do; policy decides on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

/// What a call touches beyond computing its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SideEffects {
    None,
    Read,
    Write,
    External,
}

/// The built-in implementation a configured tool maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    HttpFetch,
    FileRead,
    FileWrite,
    SqlQuery,
    Calculator,
    CodeAnalyzer,
    VulnerabilityScanner,
    SystemExecutor,
    DangerousTool,
}

/// A tool's declared contract: the input of policy, the `tools` list given to models, and the
/// limits the registry enforces around every call.
#[derive(Debug, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub kind: ToolKind,
    pub description: String,
    /// JSON Schema of the parameters, compiled once.
    pub parameters: Contract,
    /// JSON Schema of the result's `content` (the built-in kind's, see
    /// [`crate::builtin_output_schema`]), compiled once; checked by [`ToolSpec::check_output`].
    pub output_schema: Contract,
    pub risk: Risk,
    pub side_effects: SideEffects,
    pub idempotent: bool,
    pub requires_approval: bool,
    #[serde(rename = "timeout_ms", serialize_with = "millis")]
    pub timeout: Duration,
    /// Limit on the serialized JSON `content` of the result.
    pub max_output_bytes: usize,
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

impl ToolSpec {
    /// The OpenAI `tools[]` entry for this tool (native function calling).
    #[must_use]
    pub fn openai_function(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters.schema,
            }
        })
    }

    /// Checks a result's `content` against [`ToolSpec::output_schema`]. The violations name the
    /// JSON pointer and the broken rule but never quote the value (it may be a secret read
    /// from a file or a row).
    ///
    /// # Errors
    /// `InvalidOutput` (`AMAS-TOOL-0008`) with every violation.
    pub fn check_output(&self, content: &serde_json::Value) -> Result<(), ToolError> {
        let violations = self.output_schema.check_masked(content);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ToolError::InvalidOutput { violations })
        }
    }
}

/// Who calls and where: the per-task workspace is created by the caller and is the only
/// directory file tools may touch.
#[derive(Clone, Debug)]
pub struct ToolContext {
    pub task_id: String,
    pub workspace: PathBuf,
    pub agent: String,
}

/// A tool's result, with the bytes it moved (for quotas).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolOutput {
    pub content: serde_json::Value,
    /// Bytes read from the outside (response body, file, rows).
    pub bytes_in: u64,
    /// Bytes sent to the outside (request body, file written).
    pub bytes_out: u64,
}

impl ToolOutput {
    /// A pure result that moved no bytes.
    #[must_use]
    pub fn pure(content: serde_json::Value) -> Self {
        Self {
            content,
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

/// One callable tool. Implementations do their own sandboxing; parameter validation, the
/// timeout and the output limit are enforced by [`crate::ToolRegistry::call`] around them.
#[async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    async fn call(
        &self,
        ctx: &ToolContext,
        params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError>;
}
