//! `amas replay` through the real binary: a code review run by `amas run` on the scripted model
//! (one analyzer call, then the verdict) replays as identical under the embedded policies (exit
//! 0); under a `--policy-dir` bundle that retires the analyzer, the tool-call decision is listed
//! with what it was and what it would be now (exit 3); a bad or unknown id is a usage error.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::path::Path;

use serde_json::Value;

use common::{amas, scripted_dirs};

const SCRIPT: &str = r#"
code_reviewer:
  - tool_calls:
      - {name: code_analyzer, arguments: {code: "fn main() {}", language: rs}}
  - json: {issues: [], verdict: approve}
"#;

/// The embedded bundle, copied to `dir`, with the analyzer retired in `tool.rego`.
fn bundle_retiring_the_analyzer(dir: &Path) {
    let embedded = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for entry in std::fs::read_dir(&embedded).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let tool = dir.join("tool.rego");
    let mut text = std::fs::read_to_string(&tool).unwrap();
    text.push_str(
        r#"
deny contains {"rule": "tool.analyzer_retired", "reason": "code_analyzer is retired"} if {
	input.tool.name == "code_analyzer"
}
"#,
    );
    std::fs::write(tool, text).unwrap();
}

#[test]
fn replay_is_identical_then_lists_what_a_new_policy_would_deny() {
    let (root, data, config) = scripted_dirs(SCRIPT, "", None);
    let policies = root.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    bundle_retiring_the_analyzer(&policies);

    let out = amas(
        &data,
        Some(&config),
        &[
            "run",
            "--task-type",
            "code_review",
            "--title",
            "Review main",
            "--description",
            "One file",
            "--json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = task["id"].as_str().unwrap();

    let out = amas(&data, Some(&config), &["replay", id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("identical"), "{text}");

    let policy_dir = policies.to_str().unwrap();
    let out = amas(
        &data,
        Some(&config),
        &["--policy-dir", policy_dir, "replay", id, "--format", "json"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["identical"], false);
    let differences = report["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{report}");
    let d = &differences[0];
    assert_eq!(d["action"], "tool_call");
    assert_eq!(d["resource"], "code_analyzer");
    assert_eq!(d["step"], "review");
    assert_eq!(d["before"]["outcome"], "allow");
    assert_eq!(d["after"]["outcome"], "deny");
    assert_eq!(d["after"]["stage"], "policy");
    assert!(
        d["after"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("code_analyzer is retired")),
        "{d}"
    );
    // The text form names it too.
    let out = amas(
        &data,
        Some(&config),
        &["--policy-dir", policy_dir, "replay", id],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tool_call code_analyzer: allow (quota) -> deny (policy)"),
        "{text}"
    );

    for bad in ["not-a-uuid", "0192f0c4-0000-7000-8000-000000000000"] {
        let out = amas(&data, Some(&config), &["replay", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
}
