//! `tools.yaml` through the layered loader: a config directory's partial entry changes one key
//! and keeps the rest of the embedded entry (and the other tools), an `AMAS__TOOLS__...`
//! variable changes one limit that the registry then enforces, and a bad value names its file
//! (or variable) and key path.

use std::path::Path;

use amas_config::codes as cfg;
use amas_tools::{Risk, ToolContext, ToolRegistry, ToolsConfig, codes};
use serde_json::json;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ctx(dir: &Path) -> ToolContext {
    ToolContext {
        task_id: "t".to_owned(),
        workspace: dir.to_path_buf(),
        agent: "a".to_owned(),
    }
}

#[test]
fn a_partial_entry_keeps_the_other_embedded_keys_and_tools() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("tools.yaml"),
        "tools:\n  http_fetch:\n    risk: high\n    settings: { max_redirects: 1 }\n",
    )
    .expect("write");
    let tools = ToolsConfig::load(Some(dir.path()), &[]).expect("a partial entry is valid");
    assert_eq!(tools.tools.len(), 9, "every embedded tool is still there");
    let fetch = tools
        .tools
        .iter()
        .find(|t| t.spec.name == "http_fetch")
        .expect("http_fetch");
    assert_eq!(fetch.spec.risk, Risk::High);
    assert!(fetch.spec.description.contains("Fetch a public web page"));
    let amas_tools::config::ToolSettings::HttpFetch(settings) = &fetch.settings else {
        panic!("http_fetch keeps its kind's settings: {:?}", fetch.settings);
    };
    assert_eq!(settings.max_redirects, 1);
    assert!(
        settings
            .deny_domains
            .iter()
            .any(|d| d == "metadata.google.internal")
    );
}

#[tokio::test]
async fn an_env_override_changes_the_limit_the_registry_enforces() {
    let dir = tempfile::tempdir().expect("dir");
    let params = json!({ "expression": "1+1" });
    let plain = ToolRegistry::from_config(ToolsConfig::load(None, &[]).expect("embedded"));
    let out = plain
        .call("calculator", &ctx(dir.path()), params.clone())
        .await
        .expect("the embedded limit lets a small result through");
    assert_eq!(out.content["result"], json!(2.0));

    let vars = env(&[("AMAS__TOOLS__CALCULATOR__MAX_OUTPUT_BYTES", "8")]);
    let tight = ToolRegistry::from_config(ToolsConfig::load(None, &vars).expect("valid"));
    let err = tight
        .call("calculator", &ctx(dir.path()), params)
        .await
        .expect_err("8 bytes is too small for the result");
    assert_eq!(err.code(), codes::TOO_LARGE);
}

#[test]
fn bad_values_name_their_file_or_variable_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("tools.yaml"),
        "tools:\n  calculator:\n    timeout: forever\n",
    )
    .expect("write");
    let vars = env(&[("AMAS__TOOLS__FILE_READ__SETTINGS__MAX_BYTES", "0")]);
    let errors = ToolsConfig::load(Some(dir.path()), &vars).expect_err("invalid");
    let file = dir.path().join("tools.yaml").display().to_string();
    let timeout = errors
        .0
        .iter()
        .find(|e| e.path == "tools.calculator.timeout")
        .expect("the file's problem");
    assert_eq!(
        (timeout.code, timeout.file.as_str()),
        (cfg::INVALID_VALUE, file.as_str())
    );
    let bytes = errors
        .0
        .iter()
        .find(|e| e.path == "tools.file_read.settings.max_bytes")
        .expect("the variable's problem");
    assert_eq!(
        bytes.file,
        "env AMAS__TOOLS__FILE_READ__SETTINGS__MAX_BYTES"
    );
}
