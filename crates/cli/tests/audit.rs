//! `amas audit verify` and `amas audit export` on a real data directory: records written by the
//! `AuditWriter` with the data directory's audit key verify; a record changed in the SQLite file
//! makes `verify` exit 1 naming it. Keys and witness: `audit_keys.rs`; evidence packs:
//! `evidence_pack.rs`.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;

use amas_store::SqliteStore;
use amas_store::audit::conformance::Tamper;
use serde_json::Value;

use common::{amas, stdout_json, write_audit_records};

async fn write_records(data: &Path, n: u64) -> amas_types::TaskId {
    let task = amas_types::TaskId::new();
    write_audit_records(data, &[(task, n)]).await;
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_then_names_the_tampered_record() {
    let data = tempfile::tempdir().unwrap();
    let task = write_records(data.path(), 5).await;

    let out = amas(data.path(), None, &["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout_json(&out);
    assert_eq!(report["intact"], true);
    assert_eq!(report["records_checked"], 5);
    assert_eq!(
        report["last_checkpoint"], 5,
        "shutdown signed the end: {report}"
    );

    let out = amas(data.path(), None, &["audit", "export", "--format", "jsonl"]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], i + 1);
        assert_eq!(line["task_id"], task.to_string());
        assert_eq!(line["resource"], format!("tool:t{i}"));
        assert!(line["hash"].as_str().is_some_and(|h| h.len() == 64));
    }
    let out = amas(
        data.path(),
        None,
        &["audit", "export", "--since", "2999-01-01T00:00:00Z"],
    );
    assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 0));

    // Someone with the file changes a denial into an allowance.
    {
        let store = SqliteStore::open(data.path()).await.unwrap();
        store
            .tamper("UPDATE audit_log SET decision = 'allow' WHERE seq = 4")
            .await
            .unwrap();
        store.close().await;
    }
    let out = amas(data.path(), None, &["audit", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout_json(&out);
    assert_eq!(report["intact"], false);
    assert_eq!(report["broken"]["seq"], 4, "{report}");
    assert_eq!(report["broken"]["reason"], "altered");
    assert_eq!(report["broken"]["record"]["decision"], "allow");
    assert!(String::from_utf8_lossy(&out.stderr).contains("record 4"));

    // A range that ends before it is intact; one that holds it is not.
    let out = amas(
        data.path(),
        None,
        &["audit", "verify", "--from", "1", "--to", "3"],
    );
    assert_eq!(out.status.code(), Some(0));
    let out = amas(
        data.path(),
        None,
        &["audit", "verify", "--from", "4", "--to", "5"],
    );
    assert_eq!(out.status.code(), Some(1));
}

/// No database in the data directory is a usage error, and nothing is created.
#[test]
fn verify_without_a_database_is_a_usage_error() {
    let data = tempfile::tempdir().unwrap();
    let out = amas(data.path(), None, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!data.path().join("amas.db").exists());
}

/// The audit log's exported records, as JSON, once `ready` holds for them.
fn exported_until(data: &Path, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let parse = |lines: &[String]| -> Vec<Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    parse(&common::audit_lines_until(data, |lines| {
        ready(&parse(lines))
    }))
}

fn of_stage<'a>(records: &'a [Value], stage: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["stage"] == stage).collect()
}

/// A start records the configuration and bundle it runs with; a hot reload of `--policy-dir`
/// records the change (old and new hash), a broken edit its rejection; the chain verifies.
#[test]
fn starts_and_policy_reloads_are_audited() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let policies = root.path().join("policies");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&policies).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            std::fs::copy(&path, policies.join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut server = common::Server::spawn(
        &data,
        None,
        "development",
        &[("AMAS_POLICY_DIR", policies.display().to_string())],
    );
    let started = exported_until(&data, |r| !of_stage(r, "config_change").is_empty());
    let start = of_stage(&started, "config_change");
    assert_eq!(start.len(), 1, "{started:#?}");
    assert_eq!(start[0]["action"], "config.load");
    assert_eq!(start[0]["decision"], "recorded");
    assert_eq!(start[0]["principal"]["sub"], "amas");
    assert_eq!(start[0]["details"]["policy_source"], "policy_dir");
    let first_hash = start[0]["details"]["policy_bundle_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        start[0]["details"]["config_sha256"].as_str().unwrap().len(),
        64
    );

    let api = policies.join("api.rego");
    let mut text = std::fs::read_to_string(&api).unwrap();
    text.push_str("\n# reviewed\n");
    std::fs::write(&api, text).unwrap();
    let reloaded = exported_until(&data, |r| !of_stage(r, "policy_change").is_empty());
    let change = of_stage(&reloaded, "policy_change");
    assert_eq!(change.len(), 1, "{reloaded:#?}");
    assert_eq!(change[0]["action"], "policy.reload");
    assert_eq!(change[0]["decision"], "allow");
    assert_eq!(change[0]["details"]["from_sha256"], first_hash.as_str());
    let second_hash = change[0]["details"]["to_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_hash, first_hash);
    assert_eq!(
        change[0]["policy"]["hash"],
        format!("sha256:{second_hash}").as_str()
    );
    assert_eq!(change[0]["policy"]["version"], &second_hash[..12]);

    std::fs::write(
        policies.join("tool.rego"),
        "package amas.tool\n\ndecision := {\n",
    )
    .unwrap();
    let rejected = exported_until(&data, |r| of_stage(r, "policy_change").len() >= 2);
    let change = of_stage(&rejected, "policy_change");
    assert_eq!(change.len(), 2, "{rejected:#?}");
    assert_eq!(change[1]["decision"], "deny");
    assert_eq!(
        change[1]["details"]["in_force_sha256"],
        second_hash.as_str()
    );
    assert!(
        change[1]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("AMAS-POL-"),
        "{:?}",
        change[1]
    );
    server.terminate();
    let verify = amas(&data, None, &["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
