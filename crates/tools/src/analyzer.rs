//! `code_analyzer`: deterministic metrics and simple smells for one source file of the
//! workspace (or inline code): lines, functions (per-language heuristics), long lines,
//! TODO/FIXME markers, nesting depth.

use std::sync::LazyLock;

use async_trait::async_trait;
use regex::Regex;
use serde::Deserialize;

use crate::config::FileSettings;
use crate::error::ToolError;
use crate::fs::read_text;
use crate::params::parse_params;
use crate::spec::{Tool, ToolContext, ToolOutput, ToolSpec};

const LONG_LINE: usize = 120;
const DEEP_NESTING: usize = 5;
const LONG_FILE: usize = 1000;

pub struct CodeAnalyzer {
    spec: ToolSpec,
    settings: FileSettings,
}

impl CodeAnalyzer {
    #[must_use]
    pub fn new(spec: ToolSpec, settings: FileSettings) -> Self {
        Self { spec, settings }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    code: Option<String>,
    /// The language of inline `code`, as a file extension (`rs`, `py`, ...).
    #[serde(default)]
    language: Option<String>,
}

fn re(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static FUNCTIONS: LazyLock<Vec<(&'static [&'static str], Option<Regex>)>> = LazyLock::new(|| {
    vec![
        (
            &["rs"][..],
            re(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+\w+"),
        ),
        (&["py"][..], re(r"^\s*(async\s+)?def\s+\w+")),
        (
            &["js", "ts", "jsx", "tsx", "mjs"][..],
            re(r"\bfunction\b|=>"),
        ),
        (&["go"][..], re(r"^\s*func\b")),
        (&["rb"][..], re(r"^\s*def\s+\w+")),
        (
            &["java", "kt", "cs", "c", "cc", "cpp", "h", "hpp"][..],
            re(r"^\s*[\w<>\[\],\s\*&:]+\s+\**\w+\s*\([^;]*\)\s*(const\s*)?\{?\s*$"),
        ),
    ]
});

fn comment_prefix(lang: &str) -> &'static str {
    match lang {
        "py" | "rb" | "sh" | "yaml" | "yml" | "toml" => "#",
        "sql" | "lua" => "--",
        _ => "//",
    }
}

/// The metrics of `code` written in `lang` (a lower-case extension).
#[must_use]
pub fn analyze(code: &str, lang: &str) -> serde_json::Value {
    let func_re = FUNCTIONS
        .iter()
        .find(|(exts, _)| exts.contains(&lang))
        .and_then(|(_, r)| r.as_ref());
    let prefix = comment_prefix(lang);
    let (mut blank, mut comments, mut functions, mut todos) = (0usize, 0usize, 0usize, 0usize);
    let mut long_lines = Vec::new();
    let (mut depth, mut max_depth) = (0usize, 0usize);
    let lines: Vec<&str> = code.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            blank += 1;
        } else if t.starts_with(prefix) || t.starts_with("/*") || t.starts_with('*') {
            comments += 1;
        }
        if func_re.is_some_and(|r| r.is_match(line)) {
            functions += 1;
        }
        if t.contains("TODO") || t.contains("FIXME") || t.contains("XXX") {
            todos += 1;
        }
        if line.chars().count() > LONG_LINE {
            long_lines.push(i + 1);
        }
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    max_depth = max_depth.max(depth);
                }
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if lang == "py" {
            let indent = line.len() - line.trim_start().len();
            if !t.is_empty() {
                max_depth = max_depth.max(indent / 4);
            }
        }
    }
    let mut smells = Vec::new();
    if !long_lines.is_empty() {
        smells.push(format!(
            "{} lines longer than {LONG_LINE} characters",
            long_lines.len()
        ));
    }
    if max_depth >= DEEP_NESTING {
        smells.push(format!("nesting depth {max_depth} (>= {DEEP_NESTING})"));
    }
    if lines.len() > LONG_FILE {
        smells.push(format!(
            "{} lines (> {LONG_FILE}): consider splitting",
            lines.len()
        ));
    }
    if todos > 0 {
        smells.push(format!("{todos} TODO/FIXME markers"));
    }
    if lang == "rs" && code.contains(".unwrap()") {
        smells.push("`.unwrap()` calls".to_owned());
    }
    serde_json::json!({
        "language": lang,
        "lines": lines.len(),
        "blank_lines": blank,
        "comment_lines": comments,
        "functions": functions,
        "todo_markers": todos,
        "long_lines": long_lines,
        "max_nesting": max_depth,
        "smells": smells,
    })
}

#[async_trait]
impl Tool for CodeAnalyzer {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let p: Params = parse_params(params)?;
        let (label, code, lang, bytes_in) = match (p.path, p.code) {
            (Some(path), None) => {
                let (ctx, settings) = (ctx.clone(), self.settings.clone());
                let (rel, text) =
                    tokio::task::spawn_blocking(move || read_text(&ctx, &path, &settings))
                        .await
                        .map_err(|e| ToolError::Failed(format!("file task: {e}")))??;
                let lang = std::path::Path::new(&rel)
                    .extension()
                    .map(|e| e.to_string_lossy().to_lowercase())
                    .unwrap_or_default();
                let n = text.len() as u64;
                (rel, text, lang, n)
            }
            (None, Some(code)) => {
                if code.len() as u64 > self.settings.max_bytes {
                    return Err(ToolError::TooLarge {
                        what: "code".into(),
                        limit: self.settings.max_bytes,
                    });
                }
                let lang = p
                    .language
                    .unwrap_or_default()
                    .trim_start_matches('.')
                    .to_lowercase();
                ("<inline>".to_owned(), code, lang, 0)
            }
            _ => {
                return Err(ToolError::invalid(
                    "",
                    "give exactly one of `path` and `code`",
                ));
            }
        };
        let mut content = analyze(&code, &lang);
        content["source"] = serde_json::Value::String(label);
        Ok(ToolOutput {
            content,
            bytes_in,
            bytes_out: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rust_functions_todos_and_nesting() {
        let code = "pub fn a() {\n    // TODO: x\n    if x { if y { if z { if w { } } } }\n}\n\nasync fn b() {}\n";
        let m = analyze(code, "rs");
        assert_eq!(m["lines"], 6);
        assert_eq!(m["functions"], 2);
        assert_eq!(m["todo_markers"], 1);
        assert_eq!(m["blank_lines"], 1);
        assert_eq!(m["comment_lines"], 1);
        assert_eq!(m["max_nesting"], 5);
        assert_eq!(analyze(code, "rs"), m, "deterministic");
    }

    #[test]
    fn counts_python_defs() {
        let m = analyze("def a():\n    pass\n\nasync def b():\n    return 1\n", "py");
        assert_eq!(m["functions"], 2);
    }
}
