//! Evidence packs with the real `amas` binary: `amas audit export --evidence-pack FILE --task
//! ID` writes one task's records out of a log it shares with another task; `amas audit verify
//! --pack FILE` checks it with nothing else (another, empty data directory that it does not
//! touch); any flipped byte fails it, naming the line; a tampered log is refused at export.

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

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Checks `pack` as another machine would: a data directory that does not exist (and is not
/// created), no configuration.
fn verify_elsewhere(pack: &Path, extra: &[&str]) -> std::process::Output {
    let elsewhere = tempfile::tempdir().unwrap();
    let nowhere = elsewhere.path().join("no-data-dir");
    let mut args = vec!["audit", "verify", "--pack", pack.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = amas(&nowhere, None, &args);
    assert!(!nowhere.exists(), "verify --pack touched a data directory");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_pack_verifies_offline_and_any_flipped_byte_fails_it() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (mine, other) = (amas_types::TaskId::new(), amas_types::TaskId::new());
    write_audit_records(&data, &[(mine, 6), (other, 6)]).await;

    let pack = root.path().join("task.pack.jsonl");
    let out = amas(
        &data,
        None,
        &[
            "audit",
            "export",
            "--evidence-pack",
            pack.to_str().unwrap(),
            "--task",
            &mine.to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let manifest = stdout_json(&out);
    assert_eq!(manifest["records"], 6);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&pack).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the pack is owner-only");
    }
    let text = std::fs::read_to_string(&pack).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[..4],
        ["manifest", "public_keys", "policy_bundles", "checkpoint"]
    );
    assert_eq!(kinds.last(), Some(&"end"));
    assert!(
        !text.contains(&other.to_string()),
        "the other task's records stay out"
    );
    assert_eq!(
        lines[2]["bundles"][0]["hash"],
        format!("sha256:{}", "ab".repeat(32)).as_str()
    );

    let out = verify_elsewhere(&pack, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout_json(&out);
    assert_eq!(report["valid"], true);
    assert_eq!(report["records"], 6);
    assert_eq!(report["witnessed"], true, "{report}");
    assert_eq!(report["keys_from"], "pack");
    assert!(stderr(&out).contains("compare them with the key ids you hold"));

    // Pinned keys: this installation's verify it, another's do not.
    let keys = root.path().join("keys.json");
    std::fs::write(&keys, amas(&data, None, &["audit", "public-keys"]).stdout).unwrap();
    let out = verify_elsewhere(&pack, &["--public-keys", keys.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["keys_from"], "trusted");
    let stranger = root.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    amas_governance::AuditKey::load_or_create(&stranger).unwrap();
    let foreign = amas_governance::auth::audit_key::public_keys_path(&stranger);
    let out = verify_elsewhere(&pack, &["--public-keys", foreign.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not verify"));

    // A flipped byte in each part of the pack: each fails with the code and its line.
    let bytes = std::fs::read(&pack).unwrap();
    let mut starts = vec![0];
    starts.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    starts.pop();
    for (line, start) in starts.iter().enumerate() {
        let at = start + 40;
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        let flipped = root.path().join(format!("flipped-{line}.jsonl"));
        std::fs::write(&flipped, &bad).unwrap();
        let out = verify_elsewhere(&flipped, &[]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "line {}: {}",
            line + 1,
            stderr(&out)
        );
        let report = stdout_json(&out);
        assert_eq!(report["valid"], false);
        assert_eq!(report["code"], "AMAS-AUDIT-0007");
        assert!(
            stderr(&out).contains("evidence pack invalid"),
            "{}",
            stderr(&out)
        );
    }

    // A time range works the same way.
    let range = root.path().join("range.pack.jsonl");
    let out = amas(
        &data,
        None,
        &[
            "audit",
            "export",
            "--evidence-pack",
            range.to_str().unwrap(),
            "--since",
            "2000-01-01T00:00:00Z",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = verify_elsewhere(&range, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["records"], 12);
}

/// A task with no records, or a log that does not verify (here a changed record), gets no
/// pack: each with its code, and no file left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_scope_or_a_tampered_log_gets_no_pack() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let task = amas_types::TaskId::new();
    write_audit_records(&data, &[(task, 4)]).await;
    let pack = root.path().join("pack.jsonl");
    let export = |task: &str| {
        amas(
            &data,
            None,
            &[
                "audit",
                "export",
                "--evidence-pack",
                pack.to_str().unwrap(),
                "--task",
                task,
            ],
        )
    };
    let out = export(&amas_types::TaskId::new().to_string());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("AMAS-AUDIT-0008"), "{}", stderr(&out));

    let store = SqliteStore::open(&data).await.unwrap();
    store
        .tamper("UPDATE audit_log SET decision = 'allow' WHERE seq = 2")
        .await
        .unwrap();
    store.close().await;
    let out = export(&task.to_string());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("AMAS-AUDIT-0006"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        1,
        "only the data directory: no pack, no temporary file"
    );
}
