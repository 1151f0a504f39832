//! Reading and merging the tool files, then validating each entry on its own.

use std::path::Path;
use std::time::Duration;

use amas_config::{ConfigError, Contract, codes, parse_duration};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use yaml_serde::Value;

use super::ToolConfigErrors;
use super::settings::{self, ToolSettings};
use crate::output::builtin_output_schema;
use crate::spec::{Risk, SideEffects, ToolKind, ToolSpec};

/// The default registry compiled into the binary.
pub const EMBEDDED_TOOLS_YAML: &str = include_str!("../../../../config/tools.yaml");

const MAX_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// One validated tool entry: its spec and the settings of its built-in implementation.
#[derive(Debug)]
pub struct ToolConfig {
    pub spec: ToolSpec,
    pub settings: ToolSettings,
}

/// The validated tool configuration, in name order.
#[derive(Debug, Default)]
pub struct ToolsConfig {
    pub tools: Vec<ToolConfig>,
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

/// Problems found so far; validation keeps going after each one.
#[derive(Default)]
pub(crate) struct Diag {
    pub(crate) errors: Vec<ConfigError>,
}

impl Diag {
    pub(crate) fn push(
        &mut self,
        code: &'static str,
        file: &str,
        path: &str,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            code,
            file: file.to_owned(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Deserializes `value`, recording a problem at the precise key path on failure.
    pub(crate) fn deserialize<T: DeserializeOwned>(
        &mut self,
        value: Value,
        file: &str,
        path: &str,
    ) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let mut at = path.to_owned();
                for segment in e.path().iter() {
                    let key = match segment {
                        Segment::Seq { index } => index.to_string(),
                        Segment::Map { key } => key.clone(),
                        Segment::Enum { variant } => variant.clone(),
                        Segment::Unknown => continue,
                    };
                    at = format!("{at}.{key}");
                }
                let message = e.inner().to_string();
                let code = if message.starts_with("unknown field") {
                    codes::UNKNOWN_KEY
                } else {
                    codes::INVALID_VALUE
                };
                self.push(code, file, &at, message);
                None
            }
        }
    }
}

impl ToolsConfig {
    /// Loads the embedded `tools.yaml`, overridden entry by entry by `<config_dir>/tools.yaml`
    /// when present; `env` supplies the variables named by `postgres_url_env`.
    ///
    /// # Errors
    /// Every problem found, each with its file and dotted key path.
    pub fn load(
        config_dir: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, ToolConfigErrors> {
        let mut diag = Diag::default();
        let mut entries: Vec<(String, String, Value)> = Vec::new();
        merge(
            &mut entries,
            "<embedded>/tools.yaml",
            EMBEDDED_TOOLS_YAML,
            &mut diag,
        );
        if let Some(dir) = config_dir {
            let path = dir.join("tools.yaml");
            if path.exists() {
                let label = path.display().to_string();
                match std::fs::read_to_string(&path) {
                    Ok(text) => merge(&mut entries, &label, &text, &mut diag),
                    Err(e) => diag.push(codes::PARSE, &label, "", format!("cannot read: {e}")),
                }
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tools = Vec::new();
        for (name, file, value) in entries {
            if let Some(tool) = validate_tool(&name, &file, value, env, &mut diag) {
                tools.push(tool);
            }
        }
        if diag.errors.is_empty() {
            Ok(Self { tools })
        } else {
            Err(ToolConfigErrors(diag.errors))
        }
    }

    /// Removes and returns the tool named `name` (to wrap or replace its implementation).
    pub fn take(&mut self, name: &str) -> Option<ToolConfig> {
        let at = self.tools.iter().position(|t| t.spec.name == name)?;
        Some(self.tools.remove(at))
    }
}

/// Parses one file; its entries replace earlier ones of the same name.
fn merge(entries: &mut Vec<(String, String, Value)>, file: &str, text: &str, diag: &mut Diag) {
    let doc = match yaml_serde::from_str::<Value>(text) {
        Ok(Value::Null) => return,
        Ok(Value::Mapping(m)) => m,
        Ok(_) => {
            diag.push(
                codes::INVALID_VALUE,
                file,
                "",
                "expected a mapping with `tools`",
            );
            return;
        }
        Err(e) => {
            diag.push(codes::PARSE, file, "", e.to_string());
            return;
        }
    };
    for (key, value) in doc {
        match (key.as_str(), value) {
            (Some("tools"), Value::Mapping(tools)) => {
                for (name, entry) in tools {
                    let Some(name) = name.as_str().map(str::to_owned) else {
                        diag.push(
                            codes::INVALID_VALUE,
                            file,
                            "tools",
                            "tool names are strings",
                        );
                        continue;
                    };
                    entries.retain(|(n, _, _)| *n != name);
                    entries.push((name, file.to_owned(), entry));
                }
            }
            (Some("tools"), Value::Null) => {}
            (Some("tools"), _) => {
                diag.push(
                    codes::INVALID_VALUE,
                    file,
                    "tools",
                    "expected a mapping of tools",
                );
            }
            (other, _) => {
                let key = other.unwrap_or("?");
                let msg = format!("unknown field `{key}`, expected `tools`");
                diag.push(codes::UNKNOWN_KEY, file, key, msg);
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_tool(
    name: &str,
    file: &str,
    value: Value,
    env: &[(String, String)],
    diag: &mut Diag,
) -> Option<ToolConfig> {
    let path = format!("tools.{name}");
    let errors_before = diag.errors.len();
    if !valid_name(name) {
        let msg = "a tool name is 1-64 letters, digits, `_` or `-`, starting with a letter";
        diag.push(codes::INVALID_VALUE, file, &path, msg);
    }
    let raw: RawTool = diag.deserialize(value, file, &path)?;
    if raw.description.trim().is_empty() {
        let msg = "a description is required: models choose tools by it";
        diag.push(
            codes::INVALID_VALUE,
            file,
            &format!("{path}.description"),
            msg,
        );
    }
    let timeout = match parse_duration(&raw.timeout) {
        Ok(t) if t.is_zero() || t > MAX_TIMEOUT => {
            let msg = "timeout must be more than 0 and at most 10m";
            diag.push(codes::INVALID_VALUE, file, &format!("{path}.timeout"), msg);
            None
        }
        Ok(t) => Some(t),
        Err(e) => {
            diag.push(codes::INVALID_VALUE, file, &format!("{path}.timeout"), e);
            None
        }
    };
    if raw.max_output_bytes == 0 || raw.max_output_bytes > MAX_OUTPUT_BYTES {
        let msg = format!("max_output_bytes must be between 1 and {MAX_OUTPUT_BYTES}");
        diag.push(
            codes::INVALID_VALUE,
            file,
            &format!("{path}.max_output_bytes"),
            msg,
        );
    }
    let parameters = compile_parameters(name, raw.parameters, file, &path, diag);
    let output_schema = compile_output(name, raw.kind, file, &path, diag);
    let settings = settings::validate(raw.kind, raw.settings, file, &path, env, diag);
    if diag.errors.len() != errors_before {
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
    file: &str,
    path: &str,
    diag: &mut Diag,
) -> Option<Contract> {
    let at = format!("{path}.parameters");
    // Function-calling APIs take an object schema; anything else would be rejected upstream.
    if schema.get("type").and_then(serde_json::Value::as_str) != Some("object") {
        let msg = "parameters must be a JSON Schema with `type: object`";
        diag.push(codes::SCHEMA, file, &at, msg);
        return None;
    }
    match Contract::compile(format!("tool:{name}"), schema) {
        Ok(c) => Some(c),
        Err(e) => {
            diag.push(codes::SCHEMA, file, &at, e);
            None
        }
    }
}

/// The kind's output schema; it is ours, so a failure here is a bug in this crate, reported
/// like any other load problem rather than a panic.
fn compile_output(
    name: &str,
    kind: ToolKind,
    file: &str,
    path: &str,
    diag: &mut Diag,
) -> Option<Contract> {
    match Contract::compile(format!("tool:{name}:output"), builtin_output_schema(kind)) {
        Ok(c) => Some(c),
        Err(e) => {
            diag.push(codes::SCHEMA, file, &format!("{path}.kind"), e);
            None
        }
    }
}
