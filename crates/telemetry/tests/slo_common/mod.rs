//! Runs promtool and amtool for the SLO tests. A missing tool is a failure that says how to
//! install it, never a skip: CI must prove the rendered files against the real tools.
#![allow(
    dead_code,
    reason = "compiled into several test binaries, each using a subset: an expect would be \
              unfulfilled in those using all (allow_attributes checks outer attributes only)"
)]
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure must stop the test with its message"
)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const INSTALL_HINT: &str =
    "run scripts/install-observability-tools.sh (CI installs promtool and amtool with it)";

/// What a tool printed.
pub struct ToolOutput {
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    /// stdout then stderr, for assertions and failure messages.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `tool args` (in `cwd` if given) with `stdin` piped in. Panics with the output when the
/// tool exits non-zero.
pub fn run_tool_with_input(
    tool: &str,
    args: &[&str],
    cwd: Option<&Path>,
    stdin: &str,
) -> ToolOutput {
    let mut command = Command::new(tool);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{tool}` is not installed: {INSTALL_HINT}")
        }
        Err(e) => panic!("cannot start `{tool}`: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let out = ToolOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        output.status.success(),
        "`{tool} {}` failed:\n{}",
        args.join(" "),
        out.all()
    );
    out
}

pub fn run_tool(tool: &str, args: &[&str], cwd: Option<&Path>) -> ToolOutput {
    run_tool_with_input(tool, args, cwd, "")
}

pub fn parse_yaml(text: &str) -> serde_json::Value {
    yaml_serde::from_str(text).unwrap()
}
