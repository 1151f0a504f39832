//! Approvals end to end through the real binary: `amas serve` in `production`, a security audit
//! whose high-risk scanner call needs two distinct approvers, the requester's own approval
//! refused, one vote cast with `amas approvals approve`, the server killed with SIGKILL between
//! the two votes, and the second vote after the restart letting the task finish. A second server
//! shows an unanswered request expiring as a denial.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};

use common::{AMAS, Server, ok_json, scripted_dirs};

/// The security auditor asks for the scanner once, then answers.
const SCRIPT: &str = r#"
security_auditor:
  - tool_calls:
      - {name: vulnerability_scanner, arguments: {}}
  - json: {findings: ["no secrets found"], risk: low}
"#;

fn approvals_cli(server: &Server, token: &str, args: &[&str]) -> Output {
    std::process::Command::new(AMAS)
        .arg("approvals")
        .args(args)
        .args(["--server", &server.base])
        .env("AMAS_TOKEN", token)
        .env_remove("AMAS_CONFIG_DIR")
        .output()
        .expect("amas approvals runs")
}

async fn submit_audit(server: &Server, token: &str) -> String {
    let (status, created) = server
        .post(
            token,
            "/api/v1/tasks",
            &json!({"task_type": "security_audit", "title": "Audit the workspace", "description": "Look for secrets"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn waiting(server: &Server, token: &str, id: &str) -> Value {
    server
        .wait_task(token, id, |t| t["status"] == "waiting_approval")
        .await
}

fn log_of(data: &Path) -> String {
    common::read_log(data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_approval_survives_a_restart_between_the_votes() {
    let (_root, data, config) = scripted_dirs(SCRIPT, "", Some("approvals:\n  timeout: 1h\n"));
    let server = Server::start_in(&data, Some(&config), "production");
    let root = server.token("root", &["admin"]);
    let bob = server.token("bob", &["approver"]);
    let carol = server.token("carol", &["approver"]);
    let viewer = server.token("victor", &["viewer"]);

    let id = submit_audit(&server, &root).await;
    let task = waiting(&server, &root, &id).await;
    assert_eq!(task["status"], "waiting_approval", "{task}");

    // Only approvers list; the listing is what bob may decide.
    let listed = ok_json(&approvals_cli(&server, &bob, &["list"]));
    let approvals = listed["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1, "{listed}");
    let approval = &approvals[0];
    let approval_id = approval["id"].as_str().unwrap().to_owned();
    assert_eq!(approval["tool"], "vulnerability_scanner");
    assert_eq!(approval["required_approvals"], 2);
    assert_eq!(approval["requested_by"], "root");
    // API policy refuses first (approval.list: approver, admin).
    let (status, body) = server.get(&viewer, "/api/v1/approvals").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "AMAS-GOV-0001");
    let (status, own_list) = server.get(&root, "/api/v1/approvals").await;
    assert_eq!(status, 200);
    assert!(
        own_list["approvals"].as_array().unwrap().is_empty(),
        "the requester is not offered their own request: {own_list}"
    );

    // The requester cannot approve their own request, admin or not.
    let (status, body) = server
        .post(
            &root,
            &format!("/api/v1/approvals/{approval_id}/approve"),
            &json!({"reason": "trust me"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "AMAS-GOV-0008");
    // A vote needs a reason.
    let (status, body) = server
        .post(
            &bob,
            &format!("/api/v1/approvals/{approval_id}/approve"),
            &json!({"reason": "  "}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // First approval from the CLI: still pending, one of two.
    let voted = ok_json(&approvals_cli(
        &server,
        &bob,
        &["approve", &approval_id, "--reason", "scanner is read-only"],
    ));
    assert_eq!(voted["status"], "pending", "{voted}");
    assert_eq!(voted["votes"].as_array().unwrap().len(), 1);
    let again = approvals_cli(
        &server,
        &bob,
        &["approve", &approval_id, "--reason", "twice"],
    );
    assert_eq!(
        again.status.code(),
        Some(3),
        "a second vote by bob is refused"
    );

    server.kill9();
    // The scripted model counts its answers in memory: after the restart only the final answer
    // is left to give (the tool request is replayed from the journal, not asked again).
    std::fs::write(
        config.join("script.yaml"),
        "security_auditor:\n  - json: {findings: [\"no secrets found\"], risk: low}\n",
    )
    .unwrap();
    let server = Server::start_in(&data, Some(&config), "production");
    let (status, after) = server
        .get(&bob, &format!("/api/v1/approvals/{approval_id}"))
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["status"], "pending", "{after}");
    assert_eq!(
        after["votes"][0]["approver"], "bob",
        "the first vote survived"
    );
    let (_, task) = server.get(&root, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task["status"], "waiting_approval", "{task}");

    let (status, decided) = server
        .post(
            &carol,
            &format!("/api/v1/approvals/{approval_id}/approve"),
            &json!({"reason": "agreed"}),
        )
        .await;
    assert_eq!(status, 200, "{decided}; log: {}", log_of(&data));
    assert_eq!(decided["status"], "approved", "{decided}");
    let done = server
        .wait_task(&root, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["risk"], "low");
    let (_, events) = server
        .get(&root, &format!("/api/v1/tasks/{id}/events"))
        .await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    for kind in [
        "approval_requested",
        "approval_voted",
        "approval_resolved",
        "tool_completed",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    // Every decision is in the tamper-evident audit log, under the task's id, and the chain
    // (across the SIGKILL) verifies.
    let audit = audit_of(&data, &id, |r| {
        r.iter().any(|l| l.contains("\"approval_granted\""))
    });
    for decision in ["require_approval", "approval_granted"] {
        assert!(
            audit
                .iter()
                .any(|r| r.contains(&format!("\"{decision}\""))
                    && r.contains("vulnerability_scanner")),
            "{decision} audited: {audit:#?}"
        );
    }
    assert!(
        audit.iter().any(|r| r.contains("\"model_call\"")),
        "model-call decisions audited"
    );
    // The same records through the API, for auditors only.
    let auditor = server.token("ada", &["auditor"]);
    let (status, page) = server
        .get(
            &auditor,
            &format!("/api/v1/audit?task_id={id}&decision=approval_granted"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{page}");
    assert_eq!(records[0]["resource"], "vulnerability_scanner");
    let (status, body) = server.get(&bob, "/api/v1/audit").await;
    assert_eq!(status, 403, "an approver is not an auditor: {body}");
    let (status, page) = server
        .get(
            &auditor,
            &format!("/api/v1/audit?task_id={id}&decision=allow"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "task_submit" && r["resource"] == "security_audit"),
        "the submission is audited: {page}"
    );
    // A failed login is a security event in the log, without the token.
    let (status, _) = server.get("not-a-token", "/api/v1/tasks").await;
    assert_eq!(status, 401);
    let failed_logins = audit_of(&data, "authenticate", |r| !r.is_empty());
    assert!(!failed_logins.is_empty(), "failed login audited");
    assert!(
        failed_logins.iter().all(|r| !r.contains("not-a-token")),
        "{failed_logins:#?}"
    );
    let verify = common::amas(&data, None, &["audit", "verify"]);
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let (_, metrics) = reqwest::get(format!("{}/metrics", server.base))
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("stage=\"approval\",outcome=\"approved\""),
        "approval decisions are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_expires_and_the_agent_is_told() {
    let (_root, data, config) = scripted_dirs(SCRIPT, "", Some("approvals:\n  timeout: 1s\n"));
    let server = Server::start_in(&data, Some(&config), "production");
    let root = server.token("root", &["admin"]);
    let bob = server.token("bob", &["approver"]);
    let id = submit_audit(&server, &root).await;
    let done = server
        .wait_task(&root, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let expired = ok_json(&approvals_cli(
        &server,
        &bob,
        &["list", "--status", "expired"],
    ));
    assert_eq!(
        expired["approvals"].as_array().unwrap().len(),
        1,
        "{expired}"
    );
    let (_, events) = server
        .get(&root, &format!("/api/v1/tasks/{id}/events"))
        .await;
    let failed = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["type"] == "tool_failed")
        .expect("the scanner call failed");
    assert_eq!(
        failed["event"]["error"]["code"], "AMAS-GOV-0010",
        "{failed}"
    );
    let audit = audit_of(&data, &id, |r| {
        r.iter().any(|l| l.contains("\"approval_expired\""))
    });
    assert!(
        audit.iter().any(|r| r.contains("\"approval_expired\"")),
        "{audit:#?}"
    );
}

/// The audit log's records of task `id`, as exported JSON lines, once `ready` holds for them
/// (the log is written asynchronously, a moment after the journal; bounded wait).
fn audit_of(data: &Path, id: &str, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
    let of_task = |lines: &[String]| -> Vec<String> {
        lines.iter().filter(|l| l.contains(id)).cloned().collect()
    };
    of_task(&common::audit_lines_until(data, |all| ready(&of_task(all))))
}
