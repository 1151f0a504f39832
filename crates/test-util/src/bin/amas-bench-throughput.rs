//! `amas-bench-throughput`: the AMAS side of the throughput bench (docs/performance.md).
//!
//! Starts the real `amas serve` on 127.0.0.1:0 with a temp data dir and a config dir whose
//! providers point at a running mock (`amas-mock-openai`), mints a token, then runs the
//! `research_report` task type through the HTTP API: one task at a time, then with N
//! concurrent clients and N task slots. Each client submits (`POST /api/v1/tasks`) and waits on
//! the task's SSE stream (`GET /api/v1/tasks/{id}/events`), which the server ends at the
//! terminal event: one request per wait and no polling interval in the latency. Governance,
//! audit and the journal's durability (`journal_sync: full`) are the defaults. Prints one JSON
//! object on stdout, progress on stderr.
//!
//! With `--database-url postgres://...` the installation lives in a fresh schema of that
//! PostgreSQL instead of SQLite; with `--workers N` as well, the server is a `--role api`
//! process and N `--role worker` processes (each with `--clients` task slots) run the tasks, claiming them from the database under leases.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: amas-bench-throughput --amas PATH --mock URL [--work-dir DIR] \
[--sequential-tasks N] [--concurrent-tasks N] [--clients N] [--warmup N] \
[--modes sequential,concurrent] [--profile-cmd 'CMD with {pid}'] \
[--database-url postgres://... [--workers N]]";

/// The three agents of `research_report`, each pointed at its own mock model so the mock can
/// answer each with a reply valid under that agent's output contract.
const AGENTS: [&str; 3] = ["research", "analysis", "synthesis"];

struct Options {
    amas: PathBuf,
    /// The mock's base URL, up to and including `/v1`.
    mock: String,
    work_dir: Option<PathBuf>,
    sequential_tasks: usize,
    concurrent_tasks: usize,
    clients: usize,
    warmup: usize,
    sequential: bool,
    concurrent: bool,
    /// Run around the timed concurrent phase (`{pid}`: the server's); stopped with SIGINT.
    profile_cmd: Option<String>,
    /// PostgreSQL instead of SQLite (a fresh schema of this database).
    database_url: Option<String>,
    /// Worker processes beside a `--role api` server (PostgreSQL only); 0: one process.
    workers: usize,
}

fn parse_args() -> Result<Options, BoxError> {
    let mut args = std::env::args().skip(1);
    let mut amas = None;
    let mut mock = None;
    let mut options = Options {
        amas: PathBuf::new(),
        mock: String::new(),
        work_dir: None,
        sequential_tasks: 300,
        concurrent_tasks: 2000,
        clients: 32,
        warmup: 10,
        sequential: true,
        concurrent: true,
        profile_cmd: None,
        database_url: None,
        workers: 0,
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--amas" => amas = Some(PathBuf::from(value()?)),
            "--mock" => mock = Some(value()?.trim_end_matches('/').to_owned()),
            "--work-dir" => options.work_dir = Some(PathBuf::from(value()?)),
            "--sequential-tasks" => options.sequential_tasks = value()?.parse()?,
            "--concurrent-tasks" => options.concurrent_tasks = value()?.parse()?,
            "--clients" => options.clients = value()?.parse()?,
            "--warmup" => options.warmup = value()?.parse()?,
            "--modes" => {
                let modes = value()?;
                options.sequential = modes.split(',').any(|m| m == "sequential");
                options.concurrent = modes.split(',').any(|m| m == "concurrent");
            }
            "--profile-cmd" => options.profile_cmd = Some(value()?),
            "--database-url" => options.database_url = Some(value()?),
            "--workers" => options.workers = value()?.parse()?,
            other => return Err(format!("unknown argument: {other}\n{USAGE}").into()),
        }
    }
    options.amas = amas.ok_or(USAGE)?;
    options.mock = mock.ok_or(USAGE)?;
    if options.clients == 0 || options.concurrent_tasks == 0 || options.sequential_tasks == 0 {
        return Err("--clients and the task counts must be at least 1".into());
    }
    if options.workers > 0 && options.database_url.is_none() {
        return Err("--workers needs --database-url (SQLite runs one process)".into());
    }
    Ok(options)
}

/// Writes the config dir: every provider (the embedded `local` too, so no model file is
/// needed) is the mock; rate limits raised far above the load but still enforced.
fn write_config(dir: &Path, mock: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut providers =
        format!("providers:\n  local:\n    kind: openai\n    base_url: {mock}\n    model: local\n");
    for agent in AGENTS {
        providers.push_str(&format!(
            "  bench_{agent}:\n    kind: openai\n    base_url: {mock}\n    model: {agent}\n"
        ));
    }
    std::fs::write(dir.join("providers.yaml"), providers)?;
    let bucket = "{ per_minute: 1000000, burst: 100000 }";
    std::fs::write(
        dir.join("settings.yaml"),
        format!(
            "server:\n  rate_limits:\n    read: {bucket}\n    write: {bucket}\n    stream: {bucket}\n"
        ),
    )
}

struct Server {
    child: Child,
    /// `--role worker` processes (PostgreSQL with `--workers`).
    workers: Vec<Child>,
    base: String,
    data_dir: PathBuf,
    config_dir: PathBuf,
    amas: PathBuf,
    /// The store's environment (PostgreSQL URL and schema), for every `amas` command.
    env: Vec<(String, String)>,
}

/// Starts `amas serve` with `args`, logging to `log`; returns it and its address.
fn serve(
    options: &Options,
    root: &Path,
    env: &[(String, String)],
    args: &[&str],
    log: &str,
) -> Result<(Child, String), BoxError> {
    let log_path = root.join(log);
    let mut cmd = Command::new(&options.amas);
    cmd.arg("--data-dir")
        .arg(root.join("data"))
        .arg("--config")
        .arg(root.join("config"))
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("AMAS_CONFIG_DIR")
        .env(
            "AMAS__RUNTIME__MAX_CONCURRENT_TASKS",
            options.clients.to_string(),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log_path)?));
    for agent in AGENTS {
        cmd.env(
            format!("AMAS__AGENTS__{}__PROVIDERS", agent.to_uppercase()),
            format!("[bench_{agent}]"),
        );
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        return Err(format!(
            "amas serve did not start (first line {line:?}); see {}",
            log_path.display()
        )
        .into());
    };
    Ok((child, format!("http://{addr}")))
}

impl Server {
    fn start(options: &Options, root: &Path) -> Result<Self, BoxError> {
        let data_dir = root.join("data");
        let config_dir = root.join("config");
        std::fs::create_dir_all(&data_dir)?;
        write_config(&config_dir, &options.mock)?;
        let mut env = Vec::new();
        if let Some(url) = &options.database_url {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos();
            env.push(("AMAS_DATABASE_URL".to_owned(), url.clone()));
            env.push((
                "AMAS__STORE__SCHEMA".to_owned(),
                format!("amas_bench_{}_{nanos}", std::process::id()),
            ));
        }
        let role: &[&str] = if options.workers > 0 {
            &["--role", "api"]
        } else {
            &[]
        };
        // The server first: it migrates the schema the workers then find current.
        let (child, base) = serve(options, root, &env, role, "server.log")?;
        let mut workers = Vec::new();
        for w in 0..options.workers {
            let log = format!("worker-{w}.log");
            match serve(options, root, &env, &["--role", "worker"], &log) {
                Ok((worker, _)) => workers.push(worker),
                Err(e) => {
                    for mut started in workers.into_iter().chain([child]) {
                        let _ = started.kill();
                        let _ = started.wait();
                    }
                    return Err(e);
                }
            }
        }
        Ok(Self {
            base,
            child,
            workers,
            data_dir,
            config_dir,
            amas: options.amas.clone(),
            env,
        })
    }

    fn amas(&self, args: &[&str]) -> Result<String, BoxError> {
        let out = Command::new(&self.amas)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--config")
            .arg(&self.config_dir)
            .args(args)
            .env_remove("AMAS_CONFIG_DIR")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "amas {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// SIGTERM and a bounded wait, so the server drains and checkpoints as in production
    /// (the workers first).
    fn stop(&mut self) -> Result<(), BoxError> {
        for child in self.workers.iter_mut().chain([&mut self.child]) {
            stop(child)?;
        }
        Ok(())
    }
}

fn stop(child: &mut Child) -> Result<(), BoxError> {
    signal(child.id(), "TERM")?;
    for _ in 0..600 {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    Err("amas serve did not stop within 30 s of SIGTERM".into())
}

impl Server {
    /// The PostgreSQL schema this run used, if any.
    fn schema(&self) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == "AMAS__STORE__SCHEMA")
            .map(|(_, v)| v.as_str())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for child in self.workers.iter_mut().chain([&mut self.child]) {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn signal(pid: u32, name: &str) -> Result<(), BoxError> {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    if sent.success() {
        Ok(())
    } else {
        Err(format!("kill -{name} {pid} failed").into())
    }
}

/// One API client: submit, then wait on the event stream for the terminal event.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
}

impl Client {
    /// Runs task `i` to its end; the terminal event's kind (`task_succeeded`, ...).
    async fn run_task(&self, i: usize) -> Result<String, BoxError> {
        let created = self
            .http
            .post(format!("{}/api/v1/tasks", self.base))
            .bearer_auth(&*self.token)
            .json(&json!({
                "task_type": "research_report",
                "title": format!("Topic {i}: tidal energy"),
                "description": "A short overview.",
            }))
            .send()
            .await?;
        let status = created.status();
        let body: Value = created.json().await?;
        if status != reqwest::StatusCode::ACCEPTED {
            return Err(format!("submit answered {status}: {body}").into());
        }
        let id = body["id"].as_str().ok_or("no task id")?;
        let mut stream = self
            .http
            .get(format!("{}/api/v1/tasks/{id}/events", self.base))
            .bearer_auth(&*self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await?;
        if !stream.status().is_success() {
            return Err(format!("events answered {}", stream.status()).into());
        }
        let mut text = Vec::new();
        while let Some(chunk) = stream.chunk().await? {
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&text);
        let last = text
            .lines()
            .filter_map(|l| l.strip_prefix("event:"))
            .map(str::trim)
            .next_back()
            .unwrap_or("");
        Ok(last.to_owned())
    }
}

#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    failures: Vec<String>,
    wall: Duration,
}

impl Phase {
    fn record(&mut self, took: Duration, outcome: Result<String, BoxError>) {
        match outcome {
            Ok(kind) if kind == "task_succeeded" => self.latencies.push(took),
            Ok(kind) => self.failures.push(format!("ended with {kind:?}")),
            Err(e) => self.failures.push(e.to_string()),
        }
    }

    fn summary(mut self) -> Value {
        self.latencies.sort();
        let n = self.latencies.len();
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        let at = |q: f64| {
            self.latencies
                .get(((n as f64 * q) as usize).min(n.saturating_sub(1)))
                .copied()
                .map_or(Value::Null, |d| json!(ms(d)))
        };
        let secs = self.wall.as_secs_f64();
        json!({
            "tasks": n,
            "failed": self.failures.len(),
            "first_failures": self.failures.iter().take(3).collect::<Vec<_>>(),
            "seconds": (secs * 1000.0).round() / 1000.0,
            "tps": ((n as f64 / secs) * 100.0).round() / 100.0,
            "p50_ms": at(0.5),
            "p99_ms": at(0.99),
        })
    }
}

async fn sequential(client: &Client, tasks: usize, warmup: usize) -> Phase {
    let mut warm = Phase::default();
    for i in 0..warmup {
        let outcome = client.run_task(i).await;
        warm.record(Duration::ZERO, outcome);
    }
    let mut phase = Phase {
        failures: warm.failures,
        ..Phase::default()
    };
    let started = Instant::now();
    for i in 0..tasks {
        let t0 = Instant::now();
        let outcome = client.run_task(i).await;
        phase.record(t0.elapsed(), outcome);
    }
    phase.wall = started.elapsed();
    phase
}

/// `clients` loops sharing one connection pool, each taking the next task number until
/// `tasks` are done; one untimed task per client first.
async fn concurrent(
    client: &Client,
    tasks: usize,
    clients: usize,
    profiler: impl FnOnce() -> Result<Option<Profiler>, BoxError>,
) -> Result<Phase, BoxError> {
    let mut warm = tokio::task::JoinSet::new();
    for i in 0..clients {
        let c = client.clone();
        warm.spawn(async move { c.run_task(i).await });
    }
    let mut phase = Phase::default();
    while let Some(joined) = warm.join_next().await {
        if let Err(e) = joined? {
            phase.failures.push(format!("warm-up: {e}"));
        }
    }
    let profiler = profiler()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let c = client.clone();
        let next = next.clone();
        set.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tasks {
                    return done;
                }
                let t0 = Instant::now();
                let outcome = c.run_task(i).await;
                done.push((t0.elapsed(), outcome));
            }
        });
    }
    while let Some(joined) = set.join_next().await {
        for (took, outcome) in joined? {
            phase.record(took, outcome);
        }
    }
    phase.wall = started.elapsed();
    if let Some(p) = profiler {
        p.stop()?;
    }
    Ok(phase)
}

/// A profiler attached to the server for the timed concurrent phase only.
struct Profiler(Child);

impl Profiler {
    fn start(cmd: &str, pid: u32) -> Result<Self, BoxError> {
        let cmd = cmd.replace("{pid}", &pid.to_string());
        eprintln!("profiling: {cmd}");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .spawn()?;
        // perf and strace need a moment to attach to every thread of the server.
        std::thread::sleep(Duration::from_secs(2));
        Ok(Self(child))
    }

    fn stop(mut self) -> Result<(), BoxError> {
        signal(self.0.id(), "INT")?;
        let status = self.0.wait()?;
        eprintln!("profiler exited: {status}");
        Ok(())
    }
}

async fn drive(options: &Options, server: &Server, token: String) -> Result<Value, BoxError> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients * 2)
        .timeout(Duration::from_secs(120))
        .build()?;
    let client = Client {
        http,
        base: server.base.as_str().into(),
        token: token.into(),
    };
    let mut out = serde_json::Map::new();
    if options.sequential {
        let phase = sequential(&client, options.sequential_tasks, options.warmup)
            .await
            .summary();
        eprintln!("amas sequential: {phase}");
        out.insert("sequential_tps".into(), phase["tps"].clone());
        out.insert("sequential".into(), phase);
    }
    if options.concurrent {
        let pid = server.child.id();
        let profile = options.profile_cmd.as_deref();
        let phase = concurrent(
            &client,
            options.concurrent_tasks,
            options.clients,
            move || profile.map(|cmd| Profiler::start(cmd, pid)).transpose(),
        )
        .await?
        .summary();
        eprintln!("amas concurrent: {phase}");
        out.insert("concurrent_tps".into(), phase["tps"].clone());
        out.insert("concurrent".into(), phase);
    }
    Ok(Value::Object(out))
}

fn run(options: &Options, root: &Path) -> Result<Value, BoxError> {
    let mut server = Server::start(options, root)?;
    eprintln!("amas serve pid {} at {}", server.child.id(), server.base);
    let token = server.amas(&[
        "token",
        "create",
        "--sub",
        "bench",
        "--role",
        "submitter",
        "--ttl",
        "12h",
    ])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut results = runtime.block_on(drive(options, &server, token))?;
    server.stop()?;
    let audit: Value = serde_json::from_str(&server.amas(&["audit", "verify"])?)?;
    results["clients"] = json!(options.clients);
    results["max_concurrent_tasks"] = json!(options.clients);
    results["wait"] = json!("sse");
    results["audit_records"] = audit["records_checked"].clone();
    results["audit_intact"] = audit["intact"].clone();
    let submitted = if options.sequential {
        options.warmup + options.sequential_tasks
    } else {
        0
    } + if options.concurrent {
        options.clients + options.concurrent_tasks
    } else {
        0
    };
    results["tasks_submitted"] = json!(submitted);
    results["store"] = json!(if options.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    });
    results["worker_processes"] = json!(options.workers);
    if let (Some(url), Some(schema)) = (&options.database_url, server.schema()) {
        // The run's schema is scratch: drop it (psql, as the operator would).
        let dropped = Command::new("psql")
            .args([
                url.as_str(),
                "-q",
                "-c",
                "SET client_min_messages TO warning",
                "-c",
            ])
            .arg(format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .status();
        if !matches!(dropped, Ok(s) if s.success()) {
            eprintln!("could not drop the bench schema {schema}; drop it by hand");
        }
    }
    Ok(results)
}

fn main() -> Result<(), BoxError> {
    let options = parse_args()?;
    let temp;
    let root = match &options.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_owned()
        }
    };
    let results = run(&options, &root)?;
    let failed = ["sequential", "concurrent"]
        .iter()
        .filter_map(|k| results.get(k)?.get("failed")?.as_u64())
        .sum::<u64>();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{results}")?;
    stdout.flush()?;
    if failed > 0 {
        return Err(format!("{failed} task(s) did not succeed (see the JSON above)").into());
    }
    Ok(())
}
