//! SIGTERM loses no audit record. `amas serve` runs research reports whose model calls take a
//! while (scripted delays), so when SIGTERM arrives some tasks are mid-step, some queued, some
//! done, and audit records are still being produced. After a clean exit, `amas audit verify`
//! passes with the final checkpoint on the last record, and `amas audit export` holds a
//! submission record for every task and a record for every model-call decision any journal
//! holds. A restart then finishes the interrupted tasks, and after a second SIGTERM the same
//! holds for their whole journals.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use amas_store::{SqliteStore, TaskJournal};
use amas_types::{JournalEvent, TaskId};
use common::{Server, amas, read_log, scripted_dirs};

/// Every answer takes 150 ms, so a task spends about half a second in its three steps.
const SCRIPT: &str = r#"
research: [{json: {findings: ["f"], summary: "s"}, delay_ms: 150}]
analysis: [{json: {insights: ["i"], risks: []}, delay_ms: 150}]
synthesis: [{json: {title: "t", report: "r"}, delay_ms: 150}]
"#;

const TASKS: usize = 12;

fn stdout_lines(out: &std::process::Output) -> Vec<Value> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_no_audit_record() {
    let (_root, data, config) = scripted_dirs(SCRIPT, "", None);
    let mut server = Server::start(&data, Some(&config));
    let token = server.token("alice", &["submitter"]);

    let mut ids = Vec::new();
    for i in 0..TASKS {
        let (status, created) = server
            .post(
                &token,
                "/api/v1/tasks",
                &json!({"task_type": "research_report", "title": format!("Report {i}"), "description": "Memory safety"}),
            )
            .await;
        assert_eq!(status, 202, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    // Some work done, most still under way.
    server
        .wait_task(&token, &ids[0], |t| t["status"] == "succeeded")
        .await;
    let status = server.terminate();
    assert!(
        status.success(),
        "exit {status:?}; log: {}",
        read_log(&data)
    );
    let unfinished = check_nothing_lost(&data, &config, &ids).await;
    assert!(
        unfinished > 0,
        "SIGTERM came while tasks were still under way (else this proves little)"
    );

    // The interrupted tasks resume and finish; then a second SIGTERM.
    let mut server = Server::start(&data, Some(&config));
    for id in &ids {
        server
            .wait_task(&token, id, |t| t["status"] == "succeeded")
            .await;
    }
    assert!(server.terminate().success());
    assert_eq!(check_nothing_lost(&data, &config, &ids).await, 0);
}

/// Checks the audit log against the journals; returns how many tasks have not ended.
async fn check_nothing_lost(
    data: &std::path::Path,
    config: &std::path::Path,
    ids: &[String],
) -> usize {
    // The chain verifies, and shutdown signed a checkpoint over the very last record.
    let out = amas(data, Some(config), &["audit", "verify"]);
    let report = &stdout_lines(&out)[0];
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["last_checkpoint"], report["to_seq"], "{report}");

    let records = stdout_lines(&amas(data, Some(config), &["audit", "export"]));
    let mut audited: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for r in &records {
        let key = (
            r["task_id"].as_str().unwrap_or_default().to_owned(),
            r["action"].as_str().unwrap_or_default().to_owned(),
            r["step"].as_str().unwrap_or_default().to_owned(),
        );
        *audited.entry(key).or_default() += 1;
    }

    let store = SqliteStore::open(data).await.unwrap();
    let mut journaled_decisions = 0;
    let mut unfinished = 0;
    for id in ids {
        let submitted = audited
            .get(&(id.clone(), "task_submit".to_owned(), String::new()))
            .copied();
        assert_eq!(submitted, Some(1), "the submission of {id} is audited");
        let task: TaskId = id.parse().unwrap();
        let journal = store.read(task, 0).await.unwrap();
        let mut decided: BTreeMap<amas_types::StepId, usize> = BTreeMap::new();
        for record in &journal {
            if let JournalEvent::ActionDecided { step, action, .. } = &record.event {
                assert_eq!(action, "model_call");
                *decided.entry(step.clone()).or_default() += 1;
            }
        }
        for (step, n) in decided {
            journaled_decisions += n;
            let have = audited
                .get(&(id.clone(), "model_call".to_owned(), step.to_string()))
                .copied()
                .unwrap_or(0);
            assert!(
                have >= n,
                "task {id} step {step}: {n} decisions journaled, {have} audited"
            );
        }
        let ended = journal.last().is_some_and(|r| {
            r.event
                .status_effect()
                .is_some_and(amas_types::TaskStatus::is_terminal)
        });
        unfinished += usize::from(!ended);
    }
    store.close().await;
    assert!(journaled_decisions > 0);
    unfinished
}
