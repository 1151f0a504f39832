//! What each built-in tool returns: the exact JSON Schema of its result `content`, by kind.
//! The schema is part of the tool's contract ([`crate::ToolSpec::output_schema`]) and a result
//! is checked against it before a model sees it (`AMAS-TOOL-0008`). It lives beside the code
//! that builds the result, not in `tools.yaml`: configuration cannot change what an
//! implementation returns.

use serde_json::{Value, json};

use crate::spec::ToolKind;

/// A non-negative integer (counts, sizes).
fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

/// The output schema of the built-in implementation `kind`. Every object is closed
/// (`additionalProperties: false`) and every field required, so a renamed or extra field is a
/// violation, not a silent change of what the model reads.
#[must_use]
pub fn builtin_output_schema(kind: ToolKind) -> Value {
    match kind {
        ToolKind::HttpFetch => json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["status", "url", "content_type", "body"],
            "properties": {
                "status": { "type": "integer", "minimum": 100, "maximum": 599 },
                "url": { "type": "string", "minLength": 1, "description": "final URL after redirects" },
                "content_type": { "type": ["string", "null"] },
                "body": { "type": "string", "description": "response body, UTF-8 (lossy)" }
            }
        }),
        ToolKind::FileRead => json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["path", "bytes", "content"],
            "properties": {
                "path": { "type": "string", "minLength": 1, "description": "relative to the workspace" },
                "bytes": count(),
                "content": { "type": "string" }
            }
        }),
        ToolKind::FileWrite => json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["path", "bytes"],
            "properties": {
                "path": { "type": "string", "minLength": 1, "description": "relative to the workspace" },
                "bytes": count()
            }
        }),
        ToolKind::SqlQuery => json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["rows", "row_count", "truncated"],
            "properties": {
                "rows": {
                    "type": "array",
                    "items": { "type": "object", "description": "one row: column name to value" }
                },
                "row_count": count(),
                "truncated": { "type": "boolean", "description": "more rows existed than row_limit" }
            }
        }),
        ToolKind::Calculator => json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["expression", "result"],
            "properties": {
                "expression": { "type": "string" },
                "result": { "type": "number" }
            }
        }),
        ToolKind::CodeAnalyzer => json!({
            "type": "object",
            "additionalProperties": false,
            "required": [
                "source", "language", "lines", "blank_lines", "comment_lines", "functions",
                "todo_markers", "long_lines", "max_nesting", "smells"
            ],
            "properties": {
                "source": { "type": "string", "description": "the relative path, or <inline>" },
                "language": { "type": "string" },
                "lines": count(),
                "blank_lines": count(),
                "comment_lines": count(),
                "functions": count(),
                "todo_markers": count(),
                "long_lines": { "type": "array", "items": { "type": "integer", "minimum": 1 } },
                "max_nesting": count(),
                "smells": { "type": "array", "items": { "type": "string" } }
            }
        }),
        ToolKind::VulnerabilityScanner => json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["files_scanned", "files_skipped", "findings"],
            "properties": {
                "files_scanned": count(),
                "files_skipped": count(),
                "findings": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["file", "line", "rule", "severity"],
                        "properties": {
                            "file": { "type": "string", "minLength": 1 },
                            "line": { "type": "integer", "minimum": 1 },
                            "rule": {
                                "type": "string",
                                "enum": [
                                    "hardcoded_secret", "aws_access_key", "private_key",
                                    "eval_call", "sql_concatenation", "sql_format_string"
                                ]
                            },
                            "severity": { "type": "string", "enum": ["medium", "high", "critical"] }
                        }
                    }
                }
            }
        }),
        // Policy targets never execute: no result is valid.
        ToolKind::SystemExecutor | ToolKind::DangerousTool => json!({
            "description": "never returns a result: a policy target only",
            "not": {}
        }),
    }
}
