//! Runs the real `amas` binary: `serve` on 127.0.0.1:0 (the bound address is read from its
//! stdout), and one-shot commands.

#![allow(
    dead_code,
    reason = "compiled into several test binaries, each using a subset: an expect would be \
              unfulfilled in those using all (allow_attributes checks outer attributes only)"
)]

pub mod otlp;
pub mod pg;
pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const AMAS: &str = env!("CARGO_BIN_EXE_amas");

pub fn amas(data_dir: &Path, config_dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(AMAS);
    cmd.arg("--data-dir").arg(data_dir);
    if let Some(c) = config_dir {
        cmd.arg("--config").arg(c);
    }
    cmd.args(args)
        .env_remove("AMAS_CONFIG_DIR")
        .output()
        .expect("amas runs")
}

pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub config_dir: Option<PathBuf>,
}

impl Server {
    pub fn start(data_dir: &Path, config_dir: Option<&Path>) -> Self {
        Self::start_in(data_dir, config_dir, "development")
    }

    /// Starts the server in the deployment `environment` policies see.
    pub fn start_in(data_dir: &Path, config_dir: Option<&Path>, environment: &str) -> Self {
        Self::spawn(data_dir, config_dir, environment, &[])
    }

    /// Starts the server in `environment` with extra environment variables.
    pub fn spawn(
        data_dir: &Path,
        config_dir: Option<&Path>,
        environment: &str,
        env: &[(&str, String)],
    ) -> Self {
        Self::spawn_serving(data_dir, config_dir, environment, env, &[], "server.log")
    }

    /// [`Server::spawn`] with more `serve` arguments (`--role worker`), logging to `log` in
    /// the data directory (several processes may share one).
    pub fn spawn_serving(
        data_dir: &Path,
        config_dir: Option<&Path>,
        environment: &str,
        env: &[(&str, String)],
        serve_args: &[&str],
        log: &str,
    ) -> Self {
        let mut cmd = Command::new(AMAS);
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--environment")
            .arg(environment);
        if let Some(c) = config_dir {
            cmd.arg("--config").arg(c);
        }
        let log = std::fs::File::create(data_dir.join(log)).expect("log file");
        let mut child = cmd
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(serve_args)
            .env_remove("AMAS_CONFIG_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("amas serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads the listen line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log: {}",
                    read_log(data_dir)
                )
            })
            .to_owned();
        Self {
            child,
            base: format!("http://{addr}"),
            data_dir: data_dir.to_owned(),
            config_dir: config_dir.map(Path::to_owned),
        }
    }

    /// SIGTERM, then waits (bounded) for a clean exit: shutdown code runs.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM could not be sent");
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the server did not stop within 20 s of SIGTERM; log: {}",
            read_log(&self.data_dir)
        );
    }

    /// The process id (to tell which process holds a lease).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }

    pub fn token(&self, sub: &str, roles: &[&str]) -> String {
        self.token_in(sub, roles, None)
    }

    /// A token of `tenant` (`amas token create --tenant`), or of the default tenant.
    pub fn token_in(&self, sub: &str, roles: &[&str], tenant: Option<&str>) -> String {
        let mut args = vec!["token", "create", "--sub", sub];
        for r in roles {
            args.extend(["--role", r]);
        }
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        let out = amas(&self.data_dir, self.config_dir.as_deref(), &args);
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls the task until `done` says so (bounded), returning the last view.
    pub async fn wait_task(&self, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let (_, task) = self.get(token, &format!("/api/v1/tasks/{id}")).await;
            if done(&task) {
                return task;
            }
            last = task;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "task did not reach the expected state; last: {last}; log: {}",
            read_log(&self.data_dir)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temp root with `data` and `config` directories: `config` holds `script.yaml` (`script`),
/// `providers.yaml` naming it as the scripted `local` provider (`provider_extra`: more YAML
/// lines of the provider, e.g. its `prices`), and `settings.yaml` when `settings` is given.
pub fn scripted_dirs(
    script: &str,
    provider_extra: &str,
    settings: Option<&str>,
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    let config = root.path().join("config");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(config.join("script.yaml"), script).expect("script.yaml");
    std::fs::write(
        config.join("providers.yaml"),
        format!(
            "providers:\n  local:\n    kind: scripted\n    file: script.yaml\n{provider_extra}"
        ),
    )
    .expect("providers.yaml");
    if let Some(settings) = settings {
        std::fs::write(config.join("settings.yaml"), settings).expect("settings.yaml");
    }
    (root, data, config)
}

/// Stdout parsed as JSON, whatever the exit status.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Stdout parsed as JSON, after asserting the command exited 0.
pub fn ok_json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_json(out)
}

pub fn read_log(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default()
}

/// Every audit record `amas audit export` prints, as JSON lines, once `ready` holds for them
/// (the writer batches, so records land a moment after what they record; bounded wait).
pub fn audit_lines_until(data_dir: &Path, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..200 {
        let out = amas(data_dir, None, &["audit", "export", "--format", "jsonl"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines = String::from_utf8(out.stdout)
            .expect("UTF-8 export")
            .lines()
            .map(str::to_owned)
            .collect();
        if ready(&lines) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    lines
}

/// The witness file of a data directory under the default configuration.
pub fn default_witness(data_dir: &Path) -> PathBuf {
    data_dir.join("audit-witness.jsonl")
}

/// Writes audit records the way the server does: through the writer, checkpoints signed with
/// the data directory's audit key (created if missing) and written to the default witness
/// file, shut down cleanly so the end is signed. Each `(task, n)` gets `n` records, the tasks
/// interleaved; record `i` of a task has resource `tool:t{i}` and is an allow for even `i`, a
/// deny for odd.
pub async fn write_audit_records(data_dir: &Path, tasks: &[(amas_types::TaskId, u64)]) {
    use amas_store::audit::witness::FileWitness;
    use amas_store::audit::{AuditDecision, AuditRecord, AuditWriter, AuditWriterConfig};
    use std::sync::Arc;

    let store = Arc::new(
        amas_store::SqliteStore::open(data_dir)
            .await
            .expect("store"),
    );
    let key = amas_governance::AuditKey::load_or_create(data_dir).expect("audit key");
    let witness = FileWitness::open(&default_witness(data_dir)).expect("witness");
    let config = AuditWriterConfig {
        checkpoint_every: 4,
        witnesses: vec![Arc::new(witness)],
        ..AuditWriterConfig::default()
    };
    let writer = AuditWriter::start(store.clone(), Arc::new(key.signer()), config);
    let rounds = tasks.iter().map(|(_, n)| *n).max().unwrap_or(0);
    for i in 0..rounds {
        for (task, n) in tasks {
            if i >= *n {
                continue;
            }
            let decision = if i % 2 == 0 {
                AuditDecision::Allow
            } else {
                AuditDecision::Deny
            };
            let record = AuditRecord::new(
                &amas_types::Principal::local_operator(),
                "authorize",
                "tool_call",
                decision,
            )
            .with_task(*task)
            .with_resource(format!("tool:t{i}"))
            .with_bundle(&"ab".repeat(32));
            writer.record(record).await.expect("record");
        }
    }
    writer.shutdown().await.expect("shutdown");
    store.close().await;
}
