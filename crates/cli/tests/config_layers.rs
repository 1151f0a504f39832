//! `tools.yaml` and `dataprotect.yaml` through the layered configuration, seen from the real
//! binary: `AMAS__TOOLS__...` reaches the tool gate and the registry of `amas tools call`,
//! `AMAS__DATAPROTECT__...` reaches `amas redact`, a bad value in any file exits 2 naming every
//! file and key at once, `amas config dump` prints every section with no secret, and
//! `amas tools list` describes every tool.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests (and the shared helpers) fail loudly on unexpected errors"
)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// `amas ARGS` with `env` set and no inherited `AMAS_CONFIG_DIR`; `stdin` piped in.
fn amas(
    data: &Path,
    config: Option<&Path>,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut cmd = Command::new(common::AMAS);
    cmd.arg("--data-dir").arg(data);
    if let Some(dir) = config {
        cmd.arg("--config").arg(dir);
    }
    cmd.args(args)
        .env_remove("AMAS_CONFIG_DIR")
        .env_remove("AMAS_REDACT_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const CALL: [&str; 7] = [
    "tools",
    "call",
    "calculator",
    "--agent",
    "research",
    "--params",
    r#"{"expression":"1+1"}"#,
];
/// The research agent may call the calculator (the embedded allowlist is empty).
const ALLOW: (&str, &str) = ("AMAS__AGENTS__RESEARCH__ALLOWED_TOOLS", "[calculator]");

/// The allowed call first; then one variable lowers the tool's output limit (the registry
/// refuses the result, exit 1) and another marks it as needing approval (the gate stops it
/// before it runs, exit 3).
#[test]
fn tools_env_overrides_reach_the_registry_and_the_gate() {
    let data = tempfile::tempdir().unwrap();
    let ok = stdout_json(&amas(data.path(), None, &[ALLOW], &CALL, ""));
    assert_eq!(ok["result"]["result"], 2.0, "{ok}");

    let small = ("AMAS__TOOLS__CALCULATOR__MAX_OUTPUT_BYTES", "8");
    let out = amas(data.path(), None, &[ALLOW, small], &CALL, "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["decision"]["outcome"], "allow");
    assert_eq!(
        report["error"]["code"],
        amas_tools::codes::TOO_LARGE,
        "{report}"
    );

    let approval = ("AMAS__TOOLS__CALCULATOR__REQUIRES_APPROVAL", "true");
    let out = amas(data.path(), None, &[ALLOW, approval], &CALL, "");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["decision"]["outcome"], "require_approval",
        "{report}"
    );
    assert!(report.get("result").is_none(), "the tool did not run");
}

/// `amas redact` masks emails by default; `AMAS__DATAPROTECT__REDACTION__MODES__EMAIL=tag`
/// makes it tag them, and `--rules FILE` (the command-line layer) wins over the variable.
#[test]
fn dataprotect_env_override_changes_what_redact_prints() {
    let data = tempfile::tempdir().unwrap();
    let input = "write to jane.doe@example.com";
    let masked = amas(data.path(), None, &[], &["redact"], input);
    let masked = String::from_utf8(masked.stdout).unwrap();
    assert!(
        masked.contains("@example.com") && !masked.contains("jane.doe"),
        "{masked}"
    );

    let tag = ("AMAS__DATAPROTECT__REDACTION__MODES__EMAIL", "tag");
    let out = amas(data.path(), None, &[tag], &["redact"], input);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "write to [EMAIL]");

    let rules = data.path().join("rules.yaml");
    std::fs::write(&rules, "redaction:\n  modes: { email: hash }\n").unwrap();
    let out = amas(
        data.path(),
        None,
        &[tag],
        &["redact", "--rules", rules.to_str().unwrap()],
        input,
    );
    let hashed = String::from_utf8(out.stdout).unwrap();
    assert!(hashed.starts_with("write to [EMAIL:"), "{hashed}");
}

/// One bad value in each file (and one in a variable): a single run lists them all with file
/// and key path and exits 2, whatever the command.
#[test]
fn invalid_values_in_every_file_are_reported_together() {
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("tools.yaml"),
        "tools:\n  calculator:\n    timeout: forever\n",
    )
    .unwrap();
    std::fs::write(
        config.path().join("dataprotect.yaml"),
        "redaction:\n  hash_hex_len: 2\n",
    )
    .unwrap();
    std::fs::write(
        config.path().join("settings.yaml"),
        "runtime:\n  max_concurrent_tasks: 0\n",
    )
    .unwrap();
    let bad_env = ("AMAS__DATAPROTECT__MIN_CONFIDENCE", "3");
    for args in [&["config", "dump"][..], &["tools", "list"], &CALL] {
        let out = amas(data.path(), Some(config.path()), &[bad_env], args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let file = |name: &str| config.path().join(name).display().to_string();
        for (file, path) in [
            (file("tools.yaml"), "tools.calculator.timeout"),
            (
                file("dataprotect.yaml"),
                "dataprotect.redaction.hash_hex_len",
            ),
            (file("settings.yaml"), "runtime.max_concurrent_tasks"),
            (
                "env AMAS__DATAPROTECT__MIN_CONFIDENCE".to_owned(),
                "dataprotect.min_confidence",
            ),
        ] {
            assert!(
                stderr.contains(&format!("{file}: {path}: ")),
                "{args:?}: {path}: {stderr}"
            );
        }
    }
}

/// The dump has every section, tools and dataprotect included, with the values in force; the
/// moderation key's variable and the SQL tool's database URL (with its password) never appear,
/// in JSON or YAML.
#[test]
fn config_dump_shows_tools_and_dataprotect_and_no_secret() {
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("dataprotect.yaml"),
        "content_safety:\n  classifier: moderation\n  moderation:\n    base_url: http://127.0.0.1:9\n    \
         model: omni-moderation-latest\n    api_key_env: AMAS_TEST_MOD_KEY_VAR\n    timeout: 2s\n",
    )
    .unwrap();
    std::fs::write(
        config.path().join("tools.yaml"),
        "tools:\n  sql_query:\n    settings:\n      database: { postgres_url_env: AMAS_TEST_SQL_URL_VAR }\n",
    )
    .unwrap();
    let env = [
        (
            "AMAS_TEST_SQL_URL_VAR",
            "postgres://amas:hunter2-db-pw@db/reports",
        ),
        ("AMAS_TEST_MOD_KEY_VAR", "sk-mod-secret-123"),
        ("AMAS__TOOLS__HTTP_FETCH__TIMEOUT", "7s"),
    ];
    let out = amas(
        data.path(),
        Some(config.path()),
        &env,
        &["config", "dump"],
        "",
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let dump = stdout_json(&out);
    for section in [
        "server",
        "auth",
        "runtime",
        "providers",
        "agents",
        "workflows",
        "tools",
        "dataprotect",
    ] {
        assert!(dump.get(section).is_some(), "{section} missing");
    }
    assert_eq!(dump["tools"]["http_fetch"]["timeout_ms"], 7000);
    assert_eq!(dump["tools"]["calculator"]["risk"], "low");
    assert_eq!(dump["dataprotect"]["modes"]["email"], "mask");
    assert_eq!(
        dump["dataprotect"]["safety_classifier"]["classifier"],
        "moderation"
    );
    assert_eq!(
        dump["dataprotect"]["safety_classifier"]["api_key_env"],
        "<redacted>"
    );
    assert_eq!(
        dump["tools"]["sql_query"]["settings"]["database"]["postgres"],
        "<redacted>"
    );

    let yaml = amas(
        data.path(),
        Some(config.path()),
        &env,
        &["config", "dump", "--format", "yaml"],
        "",
    );
    assert_eq!(yaml.status.code(), Some(0));
    let yaml = String::from_utf8(yaml.stdout).unwrap();
    assert!(
        yaml.contains("dataprotect:") && yaml.contains("http_fetch:"),
        "{yaml}"
    );
    for leak in [
        "AMAS_TEST_MOD_KEY_VAR",
        "sk-mod-secret-123",
        "AMAS_TEST_SQL_URL_VAR",
        "hunter2-db-pw",
    ] {
        assert!(!text.contains(leak), "{leak} in the JSON dump");
        assert!(!yaml.contains(leak), "{leak} in the YAML dump");
    }
}

/// Every embedded tool, with its risk, approval rule and parameter schema.
#[test]
fn tools_list_describes_every_embedded_tool() {
    let data = tempfile::tempdir().unwrap();
    let list = stdout_json(&amas(
        data.path(),
        None,
        &[],
        &["tools", "list", "--format", "json"],
        "",
    ));
    let tools = list.as_array().unwrap();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    let embedded = amas_tools::ToolsConfig::load(None, &[]).unwrap();
    let expected: Vec<&str> = embedded
        .tools
        .iter()
        .map(|t| t.spec.name.as_str())
        .collect();
    assert_eq!(names, expected);
    for tool in tools {
        for key in ["kind", "risk", "side_effects", "idempotent", "approval"] {
            assert!(tool.get(key).is_some(), "{key}: {tool}");
        }
        assert_eq!(tool["parameters"]["type"], "object", "{tool}");
    }
    let by = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap();
    assert_eq!(by("system_executor")["risk"], "critical");
    assert_eq!(
        by("system_executor")["approval"],
        "always (requires_approval)"
    );
    assert_eq!(by("calculator")["approval"], "none");

    let text = amas(data.path(), None, &[], &["tools", "list"], "");
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("http_fetch\n  kind: http_fetch  risk: medium"),
        "{text}"
    );
    assert!(text.contains("  parameters: {"), "{text}");
}
