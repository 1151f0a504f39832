//! `vulnerability_scanner`: a simple static scan of the workspace's text files for hard-coded
//! secrets, `eval(` and SQL built by string concatenation. Findings name file, line and rule,
//! never the matched text (it may be the secret itself).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use async_trait::async_trait;
use regex::Regex;
use serde::Deserialize;

use crate::config::FileSettings;
use crate::error::ToolError;
use crate::fs::{check_names, read_limited, resolve_existing, workspace_root};
use crate::params::parse_params;
use crate::spec::{Tool, ToolContext, ToolOutput, ToolSpec};

pub struct VulnerabilityScanner {
    spec: ToolSpec,
    settings: FileSettings,
}

impl VulnerabilityScanner {
    #[must_use]
    pub fn new(spec: ToolSpec, settings: FileSettings) -> Self {
        Self { spec, settings }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// A file or directory inside the workspace; the whole workspace when absent.
    #[serde(default)]
    path: Option<String>,
}

static RULES: LazyLock<Vec<(&'static str, &'static str, Regex)>> = LazyLock::new(|| {
    [
        ("hardcoded_secret", "high", r#"(?i)\b(api[_-]?key|secret|passw(or)?d|token|access[_-]?key)\b\s*[:=]\s*["'][^"'\s]{8,}["']"#),
        ("aws_access_key", "high", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("private_key", "critical", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        ("eval_call", "medium", r"\beval\s*\("),
        ("sql_concatenation", "high", r#"(?i)["'][^"']*\b(select|insert|update|delete)\b[^"']*["']\s*(\+|\|\||\.\s|%\s)"#),
        ("sql_format_string", "high", r#"(?i)\bf["'][^"']*\b(select|insert|update|delete)\b[^"']*\{"#),
    ]
    .into_iter()
    .filter_map(|(id, sev, p)| Regex::new(p).ok().map(|r| (id, sev, r)))
    .collect()
});

/// The findings of one file's text, in line order.
#[must_use]
pub fn scan_text(file: &str, text: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (id, severity, re) in RULES.iter() {
            if re.is_match(line) {
                out.push(serde_json::json!({ "file": file, "line": n + 1, "rule": id, "severity": severity }));
            }
        }
    }
    out
}

/// Regular files under `dir`, sorted, not following symlinks, at most `max` of them.
fn walk(dir: &Path, max: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if out.len() >= max {
            return;
        }
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, max, out),
            Ok(m) if m.is_file() => out.push(p),
            _ => {}
        }
    }
}

fn scan(
    ctx: &ToolContext,
    path: Option<&str>,
    settings: &FileSettings,
) -> Result<(serde_json::Value, u64), ToolError> {
    let root = workspace_root(&ctx.workspace)?;
    let start = match path {
        Some(raw) => {
            // Directories have no extension: check only the blocked patterns for them.
            let dir_settings = FileSettings {
                allowed_extensions: vec![String::new()],
                ..settings.clone()
            };
            let s = if root.join(raw).is_dir() {
                &dir_settings
            } else {
                settings
            };
            resolve_existing(&root, raw, s)?.0
        }
        None => root.clone(),
    };
    let mut files = Vec::new();
    if start.is_file() {
        files.push(start);
    } else {
        walk(&start, settings.max_files, &mut files);
    }
    let (mut findings, mut scanned, mut skipped, mut bytes) = (Vec::new(), 0usize, 0usize, 0u64);
    for f in files {
        let Ok(rel) = f.strip_prefix(&root) else {
            continue;
        };
        let comps: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let rel = comps.join("/");
        let text = check_names(&comps, settings)
            .and_then(|()| read_limited(&f, &rel, settings.max_bytes))
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let Some(text) = text else {
            skipped += 1;
            continue;
        };
        scanned += 1;
        bytes += text.len() as u64;
        findings.extend(scan_text(&rel, &text));
    }
    let content = serde_json::json!({
        "files_scanned": scanned,
        "files_skipped": skipped,
        "findings": findings,
    });
    Ok((content, bytes))
}

#[async_trait]
impl Tool for VulnerabilityScanner {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let p: Params = parse_params(params)?;
        let (ctx, settings) = (ctx.clone(), self.settings.clone());
        let (content, bytes_in) =
            tokio::task::spawn_blocking(move || scan(&ctx, p.path.as_deref(), &settings))
                .await
                .map_err(|e| ToolError::Failed(format!("scan task: {e}")))??;
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
    fn finds_each_rule_and_never_echoes_the_secret() {
        let text = "api_key = \"sk-abcdefghijklmnop\"\nx = eval(input)\nq = \"SELECT * FROM u WHERE id=\" + uid\nok = 1\nq2 = f\"DELETE FROM t WHERE id={i}\"\n";
        let f = scan_text("a.py", text);
        let rules: Vec<&str> = f.iter().filter_map(|x| x["rule"].as_str()).collect();
        assert_eq!(
            rules,
            [
                "hardcoded_secret",
                "eval_call",
                "sql_concatenation",
                "sql_format_string"
            ]
        );
        assert!(!serde_json::Value::Array(f).to_string().contains("sk-abc"));
    }
}
