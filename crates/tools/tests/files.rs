//! The workspace sandbox of `file_read` / `file_write`: traversal, absolute paths and symlinks
//! leading outside are refused, and a refused write leaves nothing outside the workspace.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns"
)]

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use amas_tools::{ToolError, ToolRegistry, codes};
use common::{ctx, default_config};
use serde_json::json;

struct Fixture {
    ws: tempfile::TempDir,
    outside: tempfile::TempDir,
    reg: ToolRegistry,
}

fn fixture() -> Fixture {
    Fixture {
        ws: tempfile::tempdir().expect("ws"),
        outside: tempfile::tempdir().expect("outside"),
        reg: ToolRegistry::from_config(default_config()),
    }
}

impl Fixture {
    async fn read(&self, path: &str) -> Result<serde_json::Value, ToolError> {
        self.reg
            .call("file_read", &ctx(self.ws.path()), json!({ "path": path }))
            .await
            .map(|o| o.content)
    }

    async fn write(&self, path: &str, content: &str) -> Result<serde_json::Value, ToolError> {
        let params = json!({ "path": path, "content": content });
        self.reg
            .call("file_write", &ctx(self.ws.path()), params)
            .await
            .map(|o| o.content)
    }
}

fn code(r: Result<serde_json::Value, ToolError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got {v}"),
        Err(e) => e.code(),
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn write_then_read_round_trips_atomically_and_creates_parents() {
    let f = fixture();
    let out = f
        .write("notes/day1/summary.md", "first")
        .await
        .expect("write");
    assert_eq!(out["path"], "notes/day1/summary.md");
    f.write("./notes/day1/summary.md", "second")
        .await
        .expect("overwrite");
    let read = f.read("notes/day1/summary.md").await.expect("read");
    assert_eq!(read["content"], "second");
    assert_eq!(
        names_in(&f.ws.path().join("notes/day1")),
        ["summary.md"],
        "no temp file left"
    );
}

#[tokio::test]
async fn traversal_and_absolute_paths_are_refused_and_write_nothing_outside() {
    let f = fixture();
    let outside_file = f.outside.path().join("escape.txt");
    std::fs::write(f.ws.path().join("inside.txt"), "x").expect("seed");
    let rel_to_outside = format!(
        "../{}/escape.txt",
        f.outside.path().file_name().expect("n").to_string_lossy()
    );
    for path in [
        "../escape.txt",
        "a/../../escape.txt",
        "a/b/../../../escape.txt",
        rel_to_outside.as_str(),
    ] {
        assert_eq!(code(f.write(path, "pwned").await), codes::REFUSED, "{path}");
        assert_eq!(code(f.read(path).await), codes::REFUSED, "{path}");
    }
    let abs = outside_file.to_string_lossy().into_owned();
    assert_eq!(code(f.write(&abs, "pwned").await), codes::REFUSED);
    assert_eq!(code(f.read("/etc/hosts.txt").await), codes::REFUSED);
    assert!(
        !outside_file.exists(),
        "nothing was written outside the workspace"
    );
    assert!(names_in(f.outside.path()).is_empty());
    assert!(
        !f.ws
            .path()
            .parent()
            .expect("parent")
            .join("escape.txt")
            .exists()
    );
}

#[tokio::test]
async fn symlinks_leading_outside_are_refused() {
    let f = fixture();
    std::fs::write(f.outside.path().join("secret_plans.txt"), "outside").expect("seed");
    std::fs::write(f.outside.path().join("plain.txt"), "outside").expect("seed");
    symlink("/etc/passwd", f.ws.path().join("passwd.txt")).expect("link");
    symlink(
        f.outside.path().join("plain.txt"),
        f.ws.path().join("plain.txt"),
    )
    .expect("link");
    symlink(f.outside.path(), f.ws.path().join("out")).expect("dir link");

    assert_eq!(code(f.read("passwd.txt").await), codes::REFUSED);
    assert_eq!(code(f.read("plain.txt").await), codes::REFUSED);
    assert_eq!(code(f.read("out/plain.txt").await), codes::REFUSED);

    assert_eq!(code(f.write("out/new.txt", "pwned").await), codes::REFUSED);
    assert_eq!(
        code(f.write("out/deeper/new.txt", "pwned").await),
        codes::REFUSED
    );
    assert_eq!(
        code(f.write("plain.txt", "pwned").await),
        codes::REFUSED,
        "no write through a link"
    );
    assert!(!f.outside.path().join("new.txt").exists());
    assert!(!f.outside.path().join("deeper").exists());
    assert_eq!(
        std::fs::read_to_string(f.outside.path().join("plain.txt")).expect("r"),
        "outside"
    );
}

#[tokio::test]
async fn symlinks_staying_inside_the_workspace_are_followed_but_names_rechecked() {
    let f = fixture();
    std::fs::create_dir(f.ws.path().join("docs")).expect("mkdir");
    std::fs::write(f.ws.path().join("docs/real.txt"), "ok").expect("seed");
    std::fs::write(f.ws.path().join(".env"), "TOKEN=abc").expect("seed");
    symlink("docs/real.txt", f.ws.path().join("alias.txt")).expect("link");
    symlink(".env", f.ws.path().join("notes.txt")).expect("link");
    assert_eq!(
        f.read("alias.txt").await.expect("inside link")["content"],
        "ok"
    );
    let err = f.read("notes.txt").await.expect_err("link to .env");
    assert_eq!(err.code(), codes::REFUSED);
    assert!(!err.to_string().contains("abc"), "never echo the content");
}

#[tokio::test]
async fn blocked_patterns_and_extension_allowlist_are_enforced() {
    let f = fixture();
    for path in [
        ".env",
        "prod.env",
        "config/my_secrets.txt",
        "secret/notes.txt",
        "server.pem",
        "tls.key",
        "id_rsa",
        "id_rsa.pub",
        "CONFIG/Api_SECRET.md",
    ] {
        assert_eq!(code(f.write(path, "x").await), codes::REFUSED, "{path}");
        assert_eq!(code(f.read(path).await), codes::REFUSED, "{path}");
    }
    for path in ["tool.exe", "Makefile", "archive.tar.gz"] {
        let err = f.write(path, "x").await.expect_err(path);
        assert!(err.to_string().contains("extension"), "{path}: {err}");
    }
    assert!(names_in(f.ws.path()).is_empty(), "nothing was created");
}

#[tokio::test]
async fn size_limits_apply_to_reads_and_writes() {
    let f = fixture();
    let big = "a".repeat(1_048_577);
    assert_eq!(code(f.write("big.txt", &big).await), codes::TOO_LARGE);
    assert!(!f.ws.path().join("big.txt").exists());
    std::fs::write(f.ws.path().join("big.txt"), &big).expect("seed");
    assert_eq!(code(f.read("big.txt").await), codes::TOO_LARGE);
    std::fs::write(f.ws.path().join("bin.txt"), [0xff, 0xfe, 0x00]).expect("seed");
    assert_eq!(code(f.read("bin.txt").await), codes::FAILED, "not UTF-8");
}
