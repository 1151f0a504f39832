//! The registry: loading `tools.yaml` (every problem at once, overrides by name), schema
//! validation of parameters, and the timeout and output limit enforced around every tool.

#![expect(clippy::expect_used, reason = "test helpers outside #[test] fns")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use amas_config::codes as cfg;
use amas_tools::{
    Risk, SideEffects, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry, ToolSpec,
    ToolsConfig, codes,
};
use async_trait::async_trait;
use common::{ctx, default_config, entry};
use serde_json::json;

fn registry() -> ToolRegistry {
    ToolRegistry::from_config(default_config())
}

async fn call(
    reg: &ToolRegistry,
    name: &str,
    params: serde_json::Value,
) -> Result<ToolOutput, ToolError> {
    let dir = tempfile::tempdir().expect("dir");
    reg.call(name, &ctx(dir.path()), params).await
}

#[test]
fn the_embedded_registry_declares_every_builtin() {
    let reg = registry();
    let names: Vec<&str> = reg.specs().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "calculator",
            "code_analyzer",
            "dangerous_tool",
            "file_read",
            "file_write",
            "http_fetch",
            "sql_query",
            "system_executor",
            "vulnerability_scanner",
        ]
    );
    let exec = reg.get("system_executor").expect("exec").spec();
    assert_eq!(
        (exec.risk, exec.side_effects, exec.requires_approval),
        (Risk::Critical, SideEffects::External, true)
    );
    let v = serde_json::to_value(reg.get("calculator").expect("calc").spec()).expect("ser");
    assert_eq!(v["timeout_ms"], 1000);
    assert_eq!(v["risk"], "low");
    assert_eq!(v["parameters"]["required"], json!(["expression"]));
    let f = reg
        .get("http_fetch")
        .expect("http")
        .spec()
        .openai_function();
    assert_eq!(f["function"]["name"], "http_fetch");
    assert_eq!(f["function"]["parameters"]["type"], "object");
}

#[test]
fn every_problem_in_an_override_is_reported_at_once_with_file_and_path() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("tools.yaml"),
        r#"
tools:
  calculator:
    kind: calculator
    description: "calc"
    parameters: { type: object }
    risk: low
    side_effects: none
    idempotent: true
    timeout: 5 seconds
    max_output_bytes: 100
  typo:
    kind: calculator
    description: x
    parameters: { type: object }
    risk: low
    side_effects: none
    idempotent: true
    timeout: 1s
    max_output_bytes: 10
    colour: red
  bad_schema:
    kind: calculator
    description: x
    parameters: { type: object, properties: { a: { type: 12 } } }
    risk: huge
    side_effects: none
    idempotent: true
    timeout: 1s
    max_output_bytes: 10
  http2:
    kind: http_fetch
    description: x
    parameters: { type: object }
    risk: low
    side_effects: external
    idempotent: true
    timeout: 1s
    max_output_bytes: 10
    settings: { max_bytes: 0, methods: [GET, DELETE], allow_domain: [] }
  db:
    kind: sql_query
    description: x
    parameters: { type: object }
    risk: low
    side_effects: read
    idempotent: true
    timeout: 1s
    max_output_bytes: 10
    settings: { database: { postgres_url_env: AMAS_TEST_NOT_SET_ANYWHERE }, row_limit: 0 }
"#,
    )
    .expect("write");
    let errs = ToolsConfig::load(Some(dir.path()), &[]).expect_err("invalid");
    let file = dir.path().join("tools.yaml").display().to_string();
    assert!(errs.0.iter().all(|e| e.file == file), "{errs}");
    assert!(
        errs.has(cfg::INVALID_VALUE, "tools.calculator.timeout"),
        "{errs}"
    );
    assert!(errs.has(cfg::UNKNOWN_KEY, "tools.typo.colour"), "{errs}");
    assert!(
        errs.has(cfg::INVALID_VALUE, "tools.bad_schema.risk"),
        "{errs}"
    );
    assert!(
        errs.has(cfg::INVALID_VALUE, "tools.http2.settings.methods.1"),
        "{errs}"
    );
    assert!(
        errs.has(cfg::INVALID_VALUE, "tools.db.settings.database"),
        "{errs}"
    );
    assert!(
        errs.has(cfg::INVALID_VALUE, "tools.db.settings.row_limit"),
        "{errs}"
    );
    assert_eq!(errs.0.len(), 6, "{errs}");
    assert!(
        errs.to_string().contains("AMAS_TEST_NOT_SET_ANYWHERE"),
        "names the variable"
    );
}

#[test]
fn schema_and_settings_values_are_checked() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("tools.yaml"),
        r#"
tools:
  bad_schema:
    kind: calculator
    description: x
    parameters: { type: object, properties: { a: { type: 12 } } }
    risk: low
    side_effects: none
    idempotent: true
    timeout: 0s
    max_output_bytes: 0
  http2:
    kind: http_fetch
    description: " "
    parameters: { type: string }
    risk: low
    side_effects: external
    idempotent: true
    timeout: 1s
    max_output_bytes: 10
    settings: { max_bytes: 0, methods: [], deny_domains: ["http://x/"] }
"#,
    )
    .expect("write");
    let errs = ToolsConfig::load(Some(dir.path()), &[]).expect_err("invalid");
    for (code, path) in [
        (cfg::SCHEMA, "tools.bad_schema.parameters"),
        (cfg::INVALID_VALUE, "tools.bad_schema.timeout"),
        (cfg::INVALID_VALUE, "tools.bad_schema.max_output_bytes"),
        (cfg::SCHEMA, "tools.http2.parameters"),
        (cfg::INVALID_VALUE, "tools.http2.description"),
        (cfg::INVALID_VALUE, "tools.http2.settings.max_bytes"),
        (cfg::INVALID_VALUE, "tools.http2.settings.methods"),
        (cfg::INVALID_VALUE, "tools.http2.settings.deny_domains.0"),
    ] {
        assert!(errs.has(code, path), "{code} {path}: {errs}");
    }
}

#[tokio::test]
async fn an_override_replaces_one_entry_adds_others_and_reads_the_env() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("tools.yaml"), r#"
tools:
  calculator:
    kind: calculator
    description: tiny calculator
    parameters: { type: object, required: [expression], properties: { expression: { type: string } } }
    risk: low
    side_effects: none
    idempotent: true
    timeout: 1s
    max_output_bytes: 8
  reports_db:
    kind: sql_query
    description: reports
    parameters: { type: object, required: [query], properties: { query: { type: string } } }
    risk: medium
    side_effects: read
    idempotent: true
    timeout: 5s
    max_output_bytes: 1000
    settings: { database: { postgres_url_env: REPORTS_URL }, row_limit: 10 }
"#).expect("write");
    let env = [("REPORTS_URL".to_owned(), "postgres://u:pw@db/x".to_owned())];
    let reg = ToolRegistry::from_config(ToolsConfig::load(Some(dir.path()), &env).expect("valid"));
    assert_eq!(reg.specs().count(), 10);
    assert_eq!(
        reg.get("calculator").expect("calc").spec().description,
        "tiny calculator"
    );
    assert!(!format!("{reg:?}").contains("pw"), "secrets never in Debug");
    // `{"expression":"1+1","result":2.0}` is longer than 8 bytes: the registry refuses it.
    let err = call(&reg, "calculator", json!({ "expression": "1+1" }))
        .await
        .expect_err("limit");
    assert_eq!(err.code(), codes::TOO_LARGE);
}

#[tokio::test]
async fn parameters_are_validated_against_the_schema_before_the_tool_runs() {
    let reg = registry();
    let err = call(&reg, "calculator", json!({ "expr": "1+1" }))
        .await
        .expect_err("bad");
    let ToolError::InvalidParams { violations } = &err else {
        panic!("{err}")
    };
    assert!(
        violations.iter().any(|v| v.message.contains("expression")),
        "{violations:?}"
    );
    let err = call(&reg, "http_fetch", json!({ "url": 42 }))
        .await
        .expect_err("bad");
    assert_eq!(err.code(), codes::INVALID_PARAMS);
    let err = call(
        &reg,
        "http_fetch",
        json!({ "url": "http://x/", "method": "DELETE" }),
    )
    .await
    .expect_err("bad");
    assert_eq!(err.code(), codes::INVALID_PARAMS);
    let err = call(&reg, "nope", json!({})).await.expect_err("missing");
    assert_eq!(err.code(), codes::NOT_FOUND);
}

struct Sleeper(ToolSpec);

#[async_trait]
impl Tool for Sleeper {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    async fn call(&self, _: &ToolContext, _: serde_json::Value) -> Result<ToolOutput, ToolError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(ToolOutput::pure(json!(null)))
    }
}

/// A tool that ignores its own deadline is still cut off by the registry.
#[tokio::test]
async fn the_registry_enforces_the_timeout_of_every_tool() {
    let mut spec = entry("calculator").spec;
    spec.name = "sleeper".into();
    spec.timeout = Duration::from_millis(50);
    let mut reg = registry();
    reg.insert(Arc::new(Sleeper(spec)));
    let err = call(&reg, "sleeper", json!({ "expression": "1" }))
        .await
        .expect_err("timeout");
    assert_eq!(err, ToolError::Timeout(Duration::from_millis(50)));
}

#[tokio::test]
async fn policy_target_tools_never_execute() {
    let reg = registry();
    for (name, params) in [
        (
            "system_executor",
            json!({ "command": "touch /tmp/amas-pwned" }),
        ),
        ("dangerous_tool", json!({})),
    ] {
        let err = call(&reg, name, params).await.expect_err(name);
        assert_eq!(err.code(), codes::DISABLED);
        assert!(err.to_string().contains("disabled in this build"), "{err}");
    }
    assert!(!std::path::Path::new("/tmp/amas-pwned").exists());
}

#[tokio::test]
async fn calculator_evaluates_and_rejects() {
    let reg = registry();
    for (expr, want) in [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("-2 ^ 2", -4.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("7 % 4", 3.0),
        ("1.5 * -2", -3.0),
        ("--3", 3.0),
    ] {
        let out = call(&reg, "calculator", json!({ "expression": expr }))
            .await
            .expect(expr);
        assert_eq!(out.content["result"], want, "{expr}");
    }
    for (expr, code) in [
        ("1 / 0", codes::FAILED),
        ("5 % 0", codes::FAILED),
        ("1 +", codes::INVALID_PARAMS),
        ("2 * (3", codes::INVALID_PARAMS),
        ("system('ls')", codes::INVALID_PARAMS),
        ("10 ^ 400", codes::FAILED),
    ] {
        let err = call(&reg, "calculator", json!({ "expression": expr }))
            .await
            .expect_err(expr);
        assert_eq!(err.code(), code, "{expr}: {err}");
    }
    let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(
        call(&reg, "calculator", json!({ "expression": deep }))
            .await
            .expect_err("deep")
            .code(),
        codes::INVALID_PARAMS
    );
}

#[tokio::test]
async fn analyzer_and_scanner_read_only_the_workspace() {
    let reg = registry();
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("src")).expect("mkdir");
    std::fs::write(
        dir.path().join("src/app.py"),
        "def a():\n    return eval(x)  # TODO\n\npassword = \"hunter2hunter2\"\n",
    )
    .expect("seed");
    std::fs::write(dir.path().join(".env"), "API_KEY=\"abcdefghijkl\"\n").expect("seed");
    let c = ctx(dir.path());
    let m = reg
        .call("code_analyzer", &c, json!({ "path": "src/app.py" }))
        .await
        .expect("analyze");
    assert_eq!(
        (
            m.content["functions"].clone(),
            m.content["todo_markers"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(m.content["source"], "src/app.py");
    let err = reg
        .call("code_analyzer", &c, json!({ "path": "../app.py" }))
        .await
        .expect_err("escape");
    assert_eq!(err.code(), codes::REFUSED);
    let s = reg
        .call("vulnerability_scanner", &c, json!({}))
        .await
        .expect("scan");
    assert_eq!(
        s.content["findings"],
        json!([
            { "file": "src/app.py", "line": 2, "rule": "eval_call", "severity": "medium" },
            { "file": "src/app.py", "line": 4, "rule": "hardcoded_secret", "severity": "high" },
        ])
    );
    assert_eq!(s.content["files_skipped"], 1, ".env is blocked");
    assert!(!s.content.to_string().contains("hunter2"));
}
