//! The binary's commands as a user runs them: exit codes, configuration errors, tokens, and a
//! real `research_report` task on the embedded defaults (SQLite + the local model).

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use common::amas;

/// The README's promise: a real task on the embedded defaults, contract-valid output, exit 0.
/// Needs the local model (`scripts/fetch-model.sh`, run by `scripts/test.sh`).
#[test]
fn run_research_report_on_the_local_model() {
    let data = tempfile::tempdir().unwrap();
    let out = amas(
        data.path(),
        None,
        &[
            "run",
            "--task-type",
            "research_report",
            "--title",
            "SQLite",
            "--description",
            "Why is SQLite used in so many applications?",
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let task: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(task["status"], "succeeded");
    let result = &task["result"];
    let title = result["title"].as_str().expect("title");
    let report = result["report"].as_str().expect("report");
    assert!(!title.is_empty() && title.chars().count() <= 80);
    assert!(!report.is_empty() && report.chars().count() <= 300);
    for step in ["research", "analysis", "synthesis"] {
        assert_eq!(task["steps"][step]["status"], "succeeded", "{step}: {task}");
        assert!(
            task["steps"][step]["usage"]["output_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
    }
}

/// A broken configuration directory: every problem reported at once, exit code 2.
#[test]
fn broken_config_reports_every_problem_and_exits_2() {
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(config.path().join("workflows")).unwrap();
    std::fs::write(
        config.path().join("workflows/loop.yaml"),
        "task_type: loop\ndescription: d\nsteps:\n  a: {agent: research, depends_on: [b], inputs: {topic: task.title}}\n  b: {agent: ghost, depends_on: [a], inputs: {topic: task.title}}\n",
    )
    .unwrap();
    let out = amas(data.path(), Some(config.path()), &["contracts", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cycle"), "{stderr}");
    assert!(stderr.contains("ghost"), "{stderr}");
    assert!(stderr.contains("loop.yaml"), "{stderr}");
    let ok = amas(data.path(), None, &["contracts", "check"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// Usage errors exit 2; an unknown task type is a usage error too.
#[test]
fn usage_errors_exit_2() {
    let data = tempfile::tempdir().unwrap();
    let out = amas(
        data.path(),
        None,
        &[
            "run",
            "--task-type",
            "nope",
            "--title",
            "t",
            "--description",
            "d",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = amas(data.path(), None, &["run", "--title", "t"]);
    assert_eq!(out.status.code(), Some(2));
    let out = amas(
        data.path(),
        None,
        &[
            "token", "create", "--sub", "a", "--role", "viewer", "--ttl", "soon",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// `config dump` prints the effective configuration, with environment overrides applied.
#[test]
fn config_dump_shows_env_overrides() {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::AMAS)
        .args(["--data-dir"])
        .arg(data.path())
        .args(["config", "dump"])
        .env("AMAS__SERVER__LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success());
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["server"]["listen"], "127.0.0.1:9999");
    assert!(config["workflows"]["research_report"].is_object());
}

/// `--log-format pretty` (also `text`) for humans and `json` for pipelines are accepted; an
/// unknown format is a usage error.
#[test]
fn log_formats() {
    let data = tempfile::tempdir().unwrap();
    for format in ["pretty", "text", "json"] {
        let out = amas(
            data.path(),
            None,
            &["--log-format", format, "config", "dump"],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = amas(
        data.path(),
        None,
        &["--log-format", "xml", "config", "dump"],
    );
    assert_eq!(out.status.code(), Some(2));
}
