//! Data at rest through the real binary (issue 13, review M9): the data directory `amas run`
//! creates is owner-only throughout (the database and its WAL, the keys, the workspaces), and
//! a data directory left readable by other users (an older AMAS, a copy, a loose umask) is made
//! owner-only when `amas serve` starts. Workspaces leaving with retention is tested in
//! `retention.rs`.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Server, amas, ok_json, read_log, scripted_dirs};

const SCRIPT: &str = r#"
research: [{json: {findings: ["f"], summary: "s"}}]
analysis: [{json: {insights: ["i"], risks: []}}]
synthesis: [{json: {title: "t", report: "r"}}]
"#;

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Every path under `dir`, `dir` included (symlinks not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let path = out[i].clone();
        if fs::symlink_metadata(&path).expect("metadata").is_dir() {
            for entry in fs::read_dir(&path).expect("read_dir") {
                out.push(entry.expect("entry").path());
            }
        }
        i += 1;
    }
    out
}

/// Paths under `dir` that other users could read, write or enter.
fn shared(dir: &Path) -> Vec<(PathBuf, u32)> {
    walk(dir)
        .into_iter()
        .map(|p| {
            let m = mode(&p);
            (p, m)
        })
        .filter(|(_, m)| m & 0o077 != 0)
        .collect()
}

fn run_task(data: &Path, config: &Path) -> String {
    let task = ok_json(&amas(
        data,
        Some(config),
        &[
            "run",
            "--task-type",
            "research_report",
            "--title",
            "t",
            "--description",
            "d",
            "--json",
        ],
    ));
    assert_eq!(task["status"], "succeeded", "{task}");
    task["id"].as_str().expect("id").to_owned()
}

/// A data directory `amas run` creates: the directory, the workspaces and each task's workspace
/// are 0700, the database and every other file 0600, and nothing is open to other users,
/// whatever the umask (the test process's is the usual 022).
#[test]
fn amas_run_creates_an_owner_only_data_dir() {
    let (_root, parent, config) = scripted_dirs(SCRIPT, "", None);
    let data = parent.join("fresh");
    let task = run_task(&data, &config);

    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("amas.db")), 0o600);
    assert_eq!(mode(&data.join("workspaces")), 0o700);
    assert_eq!(mode(&data.join("workspaces").join(&task)), 0o700);
    assert_eq!(mode(&data.join("keys")), 0o700);
    let files: Vec<PathBuf> = walk(&data).into_iter().filter(|p| p.is_file()).collect();
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(shared(&data), [], "nothing is open to other users");
}

/// A data directory whose modes were loosened (as an older AMAS or a copy leaves them) is
/// tightened when `amas serve` starts: directories 0700, files 0600, files in workspaces
/// included, with a warning in the log; the server then runs as usual.
#[tokio::test]
async fn serve_makes_an_existing_data_dir_owner_only() {
    let (_root, data, config) = scripted_dirs(SCRIPT, "", None);
    let task = run_task(&data, &config);
    let workspace = data.join("workspaces").join(&task);
    fs::write(workspace.join("report.txt"), "written by a tool").expect("write");
    for (path, loose) in [
        (data.clone(), 0o755),
        (data.join("amas.db"), 0o644),
        (data.join("workspaces"), 0o755),
        (workspace.clone(), 0o777),
        (workspace.join("report.txt"), 0o666),
    ] {
        fs::set_permissions(&path, fs::Permissions::from_mode(loose)).expect("chmod");
    }
    assert!(!shared(&data).is_empty());

    let server = Server::start(&data, Some(&config));
    assert_eq!(shared(&data), [], "log: {}", read_log(&data));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("amas.db")), 0o600);
    assert_eq!(mode(&workspace), 0o700);
    assert_eq!(mode(&workspace.join("report.txt")), 0o600);
    let log = read_log(&data);
    assert!(log.contains("made owner-only"), "{log}");
    let (status, _) = server
        .get(&server.token("alice", &["viewer"]), "/api/v1/tasks")
        .await;
    assert_eq!(status, 200);
}
