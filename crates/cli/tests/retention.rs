//! `amas retention run` through the real binary: a task run by `amas run` on the scripted model
//! with an email in its input is listed by a dry run (which changes nothing), purged by a real
//! run as of a time past its retention (`--now`), not purged again, and the audit log still
//! verifies, with the purge itself audited and the task's audit details erased. The task's
//! workspace, with the file a tool wrote there, is deleted with it.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use serde_json::Value;

use common::{amas, ok_json, scripted_dirs};

const SCRIPT: &str = r#"
research: [{json: {findings: ["f"], summary: "s"}}]
analysis: [{json: {insights: ["i"], risks: []}}]
synthesis: [{json: {title: "t", report: "r"}}]
"#;

#[test]
fn dry_run_lists_then_run_purges_once_and_the_audit_log_verifies() {
    let (_root, data, config) = scripted_dirs(SCRIPT, "", None);
    let task = ok_json(&amas(
        &data,
        Some(&config),
        &[
            "run",
            "--task-type",
            "research_report",
            "--title",
            "Follow-up",
            "--description",
            "Write to jane.doe@example.com",
            "--classification",
            "restricted",
            "--tag",
            "PHI",
            "--json",
        ],
    ));
    assert_eq!(task["status"], "succeeded");
    assert_eq!(task["classification"]["classification"], "restricted");
    let id = task["id"].as_str().unwrap().to_owned();
    // What a file tool would have written for the task (from its restricted data).
    let workspace = data.join("workspaces").join(&id);
    std::fs::write(workspace.join("notes.txt"), "jane.doe@example.com").expect("workspace file");
    // Restricted data is kept 30 days by default: 31 days on, everything of the task expired.
    let later = (chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339();
    let retention = |dry: bool| {
        let mut args = vec!["retention", "run", "--format", "json", "--now", &later];
        if dry {
            args.push("--dry-run");
        }
        ok_json(&amas(&data, Some(&config), &args))
    };

    let dry = retention(true);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["tasks"][0]["task_id"], id.as_str());
    assert_eq!(dry["tasks"][0]["workspace_deleted"], true, "{dry}");
    assert_eq!(dry["workspaces"], 1);
    assert!(
        workspace.join("notes.txt").is_file(),
        "a dry run deletes nothing"
    );
    let listed = dry["payloads"].as_u64().unwrap();
    assert!(listed >= 5, "{dry}");
    assert_eq!(
        retention(true)["payloads"],
        listed,
        "a dry run changes nothing"
    );

    let real = retention(false);
    assert_eq!(real["payloads"], listed, "{real}");
    assert!(
        real["tasks"][0]["audit_details_erased"].as_u64().unwrap() > 0,
        "{real}"
    );
    assert_eq!(real["workspaces"], 1, "{real}");
    assert!(!workspace.exists(), "the task's workspace is deleted");
    let again = retention(false);
    assert_eq!(again["payloads"], 0, "a purge is idempotent");
    assert_eq!(again["workspaces"], 0);

    let verify = ok_json(&amas(&data, Some(&config), &["audit", "verify"]));
    assert_eq!(verify["intact"], true, "{verify}");

    let export = amas(&data, Some(&config), &["audit", "export"]);
    let lines = String::from_utf8_lossy(&export.stdout).into_owned();
    assert!(!lines.contains("jane.doe"), "{lines}");
    let records: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        records.iter().any(|r| r["stage"] == "retention"
            && r["task_id"] == id.as_str()
            && r["reasons"].to_string().contains("workspace")),
        "the purge is audited, the workspace's deletion with it"
    );
    assert!(
        records
            .iter()
            .filter(|r| r["task_id"] == id.as_str() && r["stage"] != "retention")
            .all(|r| r["details"].is_null()),
        "the task's audit details are erased"
    );

    // The text report of a run with nothing left to purge.
    let text = amas(
        &data,
        Some(&config),
        &["retention", "run", "--format", "text", "--now", &later],
    );
    assert_eq!(text.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&text.stdout).starts_with("purged 0 payloads and 0 workspaces")
    );
}

/// The purge job inside `amas serve`: with one-second periods and a one-second interval, a
/// finished task's payloads become tombstones without anyone running `amas retention run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_purges_expired_payloads_on_its_interval() {
    let (_root, data, config) = scripted_dirs(
        SCRIPT,
        "",
        Some(
            "retention:\n  purge_interval: 1s\n  restricted: 1s\n  confidential: 1s\n  internal: 1s\n  public: 1s\n",
        ),
    );
    let server = common::Server::start(&data, Some(&config));
    let admin = server.token("root", &["admin"]);
    let (status, created) = server
        .post(
            &admin,
            "/api/v1/tasks",
            &serde_json::json!({"task_type": "research_report", "title": "Follow-up", "description": "Write to jane.doe@example.com"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let done = server
        .wait_task(&admin, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let mut events = Value::Null;
    for _ in 0..100 {
        events = server
            .get(&admin, &format!("/api/v1/tasks/{id}/events"))
            .await
            .1;
        if events.to_string().contains("$tombstone") && !events.to_string().contains("jane.doe") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = events.to_string();
    assert!(text.contains("$tombstone"), "{text}");
    assert!(!text.contains("jane.doe"), "{text}");
}
