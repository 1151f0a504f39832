//! Validating the merged `tools` section, each entry on its own, so one bad tool does not hide
//! the problems of the others.

use std::path::Path;
use std::time::Duration;

use amas_config::{
    Checker, ConfigErrors, Contract, KeyPath, LoadOptions, Section, codes, parse_duration,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use yaml_serde::{Mapping, Value};

use super::settings::{self, ToolSettings};
use crate::output::builtin_output_schema;
use crate::spec::{Risk, SideEffects, ToolKind, ToolSpec};

/// The default registry compiled into the binary.
pub const EMBEDDED_TOOLS_YAML: &str = include_str!("../../../../config/tools.yaml");

const MAX_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// One validated tool entry: its spec and the settings of its built-in implementation.
#[derive(Debug, Serialize)]
pub struct ToolConfig {
    #[serde(flatten)]
    pub spec: ToolSpec,
    pub settings: ToolSettings,
}

/// The validated tool configuration, in name order.
#[derive(Debug, Default)]
pub struct ToolsConfig {
    pub tools: Vec<ToolConfig>,
}

/// By name, as in `tools.yaml` (the shape `amas config dump` prints).
impl Serialize for ToolsConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.tools.len()))?;
        for tool in &self.tools {
            map.serialize_entry(&tool.spec.name, tool)?;
        }
        map.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    kind: ToolKind,
    description: String,
    parameters: serde_json::Value,
    risk: Risk,
    side_effects: SideEffects,
    idempotent: bool,
    #[serde(default)]
    requires_approval: bool,
    timeout: String,
    max_output_bytes: usize,
    #[serde(default)]
    settings: Option<Value>,
}

impl Section for ToolsConfig {
    const NAME: &'static str = "tools";

    fn validate(section: &Mapping, cx: &mut Checker<'_>) -> Option<Self> {
        let root = KeyPath::of(&["tools"]);
        let mut tools = Vec::new();
        let before = cx.error_count();
        for (name, entry) in section {
            let Some(name) = name.as_str() else {
                cx.invalid(&root, "tool names are strings");
                continue;
            };
            if let Some(tool) = validate_tool(name, entry, cx) {
                tools.push(tool);
            }
        }
        tools.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        (cx.error_count() == before).then_some(Self { tools })
    }
}

impl ToolsConfig {
    /// The `tools` section on its own: the embedded `tools.yaml`, merged with
    /// `<config_dir>/tools.yaml` and the `AMAS__TOOLS__...` variables of `env` (which also
    /// supplies the variables named by `postgres_url_env`). A process that loads the whole
    /// configuration uses [`amas_config::Layers`] instead, to report every file's problems
    /// together.
    ///
    /// # Errors
    /// Every problem found, each with its file and dotted key path.
    pub fn load(config_dir: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigErrors> {
        amas_config::load_section(&LoadOptions {
            config_dir: config_dir.map(Path::to_path_buf),
            env: env.to_vec(),
        })
    }

    /// Removes and returns the tool named `name` (to wrap or replace its implementation).
    pub fn take(&mut self, name: &str) -> Option<ToolConfig> {
        let at = self.tools.iter().position(|t| t.spec.name == name)?;
        Some(self.tools.remove(at))
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_tool(name: &str, value: &Value, cx: &mut Checker<'_>) -> Option<ToolConfig> {
    let path = KeyPath::of(&["tools", name]);
    let errors_before = cx.error_count();
    if !valid_name(name) {
        let msg = "a tool name is 1-64 letters, digits, `_` or `-`, starting with a letter";
        cx.invalid(&path, msg);
    }
    let raw: RawTool = cx.deserialize(value, &path)?;
    if raw.description.trim().is_empty() {
        let msg = "a description is required: models choose tools by it";
        cx.invalid(&path.child("description"), msg);
    }
    let timeout = match parse_duration(&raw.timeout) {
        Ok(t) if t.is_zero() || t > MAX_TIMEOUT => {
            let msg = "timeout must be more than 0 and at most 10m";
            cx.invalid(&path.child("timeout"), msg);
            None
        }
        Ok(t) => Some(t),
        Err(e) => {
            cx.invalid(&path.child("timeout"), e);
            None
        }
    };
    if raw.max_output_bytes == 0 || raw.max_output_bytes > MAX_OUTPUT_BYTES {
        let msg = format!("max_output_bytes must be between 1 and {MAX_OUTPUT_BYTES}");
        cx.invalid(&path.child("max_output_bytes"), msg);
    }
    let parameters = compile_parameters(name, raw.parameters, &path, cx);
    let output_schema = compile_output(name, raw.kind, &path, cx);
    let settings = settings::validate(raw.kind, raw.settings.as_ref(), &path, cx);
    if cx.error_count() != errors_before {
        return None;
    }
    Some(ToolConfig {
        spec: ToolSpec {
            name: name.to_owned(),
            kind: raw.kind,
            description: raw.description,
            parameters: parameters?,
            output_schema: output_schema?,
            risk: raw.risk,
            side_effects: raw.side_effects,
            idempotent: raw.idempotent,
            requires_approval: raw.requires_approval,
            timeout: timeout?,
            max_output_bytes: raw.max_output_bytes,
        },
        settings: settings?,
    })
}

fn compile_parameters(
    name: &str,
    schema: serde_json::Value,
    path: &KeyPath,
    cx: &mut Checker<'_>,
) -> Option<Contract> {
    let at = path.child("parameters");
    // Function-calling APIs take an object schema; anything else would be rejected upstream.
    if schema.get("type").and_then(serde_json::Value::as_str) != Some("object") {
        let msg = "parameters must be a JSON Schema with `type: object`";
        cx.error(codes::SCHEMA, &at, msg);
        return None;
    }
    match Contract::compile(format!("tool:{name}"), schema) {
        Ok(c) => Some(c),
        Err(e) => {
            cx.error(codes::SCHEMA, &at, e);
            None
        }
    }
}

/// The kind's output schema; it is ours, so a failure here is a bug in this crate, reported
/// like any other load problem rather than a panic.
fn compile_output(
    name: &str,
    kind: ToolKind,
    path: &KeyPath,
    cx: &mut Checker<'_>,
) -> Option<Contract> {
    match Contract::compile(format!("tool:{name}:output"), builtin_output_schema(kind)) {
        Ok(c) => Some(c),
        Err(e) => {
            cx.error(codes::SCHEMA, &path.child("kind"), e);
            None
        }
    }
}
