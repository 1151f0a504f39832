//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "amas", version, about = "AMAS: a governed multi-agent runtime")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Directory of configuration files overriding the embedded defaults.
    #[arg(long, global = true, env = "AMAS_CONFIG_DIR")]
    pub config: Option<PathBuf>,
    /// Where AMAS keeps its state (database, keys).
    #[arg(long, global = true, env = "AMAS_DATA_DIR", default_value = ".amas")]
    pub data_dir: PathBuf,
    /// A directory of Rego policies replacing the embedded bundle (hot-reloaded).
    #[arg(long, global = true, env = "AMAS_POLICY_DIR")]
    pub policy_dir: Option<PathBuf>,
    /// The deployment environment policies see (`development`, `production`, ...).
    #[arg(
        long,
        global = true,
        env = "AMAS_ENVIRONMENT",
        default_value = "development"
    )]
    pub environment: String,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "AMAS_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, for humans (also `pretty`).
    #[value(alias = "pretty")]
    Text,
    /// JSON lines with trace and span ids, for log pipelines.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and run tasks.
    Serve(ServeArgs),
    /// Run one task in this process and print its result.
    Run(RunArgs),
    /// Mint tokens from the local issuer.
    Token(TokenArgs),
    /// Inspect the effective configuration.
    Config(ConfigArgs),
    /// Validate agents, contracts and workflows (for CI).
    Contracts(ContractsArgs),
    /// Call tools through the governance pipeline, as an agent would.
    Tools(ToolsArgs),
    /// Test and debug Rego policies.
    Policy(PolicyArgs),
    /// Render SLOs into Prometheus rules, a Grafana dashboard and an Alertmanager config.
    Slo(SloArgs),
    /// Detect and redact personal data, card numbers and secrets in stdin.
    Redact(RedactArgs),
    /// Verify the tamper-evident audit log, or export it for a SIEM.
    Audit(AuditArgs),
    /// List and decide approval requests on a running server.
    Approvals(ApprovalsArgs),
    /// Re-drive a task from its journal with no model or tool calls, asking governance again
    /// every decision it records, under the current policies or `--policy-dir DIR`. Exit 0
    /// identical, 3 some decision would now differ.
    Replay(ReplayArgs),
    /// Delete expired task payloads by their classification's retention (tombstones keep each
    /// payload's SHA-256) and erase the matching audit details.
    Retention(RetentionArgs),
    /// The store's schema (status, migrate) and moving an installation from SQLite to
    /// PostgreSQL (copy).
    Db(DbArgs),
}

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// The selected store's backend, schema version, applied and pending migrations. Changes
    /// nothing (and creates no database). Exit 0.
    Status {
        #[arg(long, value_enum, default_value = "text")]
        format: DbFormat,
    },
    /// Apply the pending migrations to the selected store (what a start does unless
    /// `store.migrate_on_start: false`). Exit 0; 2 when a newer AMAS migrated the database.
    Migrate {
        #[arg(long, value_enum, default_value = "text")]
        format: DbFormat,
    },
    /// Copy an installation's journal, approvals, audit log and checkpoints from SQLite into
    /// an empty PostgreSQL database, row for row, in one transaction. Exit 0 (also when the
    /// target already holds exactly this copy); 2 when the target holds other data.
    Copy {
        /// `sqlite:DIR` (the directory of amas.db), or `sqlite` for the data directory.
        #[arg(long)]
        from: String,
        /// `postgres` (the URL from the variable `store.url_env` names, AMAS_DATABASE_URL by
        /// default: keeps the password out of the process list), or `postgres:URL`.
        #[arg(long)]
        to: String,
        /// The target schema [default: `store.schema`, else the connection's].
        #[arg(long)]
        schema: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: DbFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DbFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RetentionArgs {
    #[command(subcommand)]
    pub command: RetentionCommand,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Purge now what `retention:` in the configuration says has expired. Exit 0.
    Run {
        /// List what would be purged and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: RetentionFormat,
        /// Purge as of this RFC 3339 time instead of now (for tests and what-if runs; a time
        /// in the future purges what will have expired by then).
        #[arg(long, hide = true)]
        now: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RetentionFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The task's id.
    pub task_id: String,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReplayFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReplayFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: ApprovalsCommand,
}

/// Where the server is and who is asking.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the AMAS server.
    #[arg(long, env = "AMAS_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token of the caller (`amas token create ...`).
    #[arg(long, env = "AMAS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds to wait for the server's answer.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Approvals you may decide (never your own requests).
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// pending, approved, denied, expired or all.
        #[arg(long, default_value = "pending")]
        status: String,
    },
    /// One approval request with its votes.
    Show {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
    },
    /// Approve a request (a second approver may still be needed).
    Approve {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        /// Why: kept in the journal.
        #[arg(long)]
        reason: String,
    },
    /// Deny a request: the tool call is refused and the agent is told why.
    Deny {
        #[command(flatten)]
        server: ServerArgs,
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain, the signed checkpoints and the Merkle roots of the data
    /// directory's audit log against the witness, with public keys only, and print the report
    /// as JSON. Exit 0 intact, 1 broken (the report names the first broken record), 2 a
    /// missing public key or another usage problem. With `--pack FILE`, check an evidence
    /// pack instead: offline, reading nothing but the file (and `--public-keys`).
    Verify {
        /// The first seq to check.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// The last seq to check (default: the newest record).
        #[arg(long)]
        to: Option<u64>,
        /// The audit public key set (JWKS) to verify with [default:
        /// <data-dir>/keys/audit-public.jwks.json; for a pack: the keys inside it].
        #[arg(long, value_name = "FILE")]
        public_keys: Option<PathBuf>,
        /// The witness file to check against [default: `audit.witness.file`].
        #[arg(long, value_name = "FILE", conflicts_with = "no_witness")]
        witness: Option<PathBuf>,
        /// Check the database alone, without a witness.
        #[arg(long)]
        no_witness: bool,
        /// An evidence pack (`amas audit export --evidence-pack`) to check instead.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to", "witness", "no_witness"])]
        pack: Option<PathBuf>,
    },
    /// Print audit records on stdout, oldest first, one JSON object per line; or, with
    /// `--evidence-pack FILE`, write an evidence pack of a task's or a time range's records
    /// that `amas audit verify --pack FILE` checks on another machine.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: AuditFormat,
        /// Only records at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only records before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Write an evidence pack to FILE (docs/audit.md#evidence-packs).
        #[arg(long, value_name = "FILE")]
        evidence_pack: Option<PathBuf>,
        /// The pack holds this task's records (with `--evidence-pack`).
        #[arg(long, value_name = "ID", requires = "evidence_pack", conflicts_with_all = ["since", "until"])]
        task: Option<String>,
    },
    /// Print the audit public key set (a JWKS): what verifying the audit log or an evidence
    /// pack needs, and all it needs. Never creates a key.
    PublicKeys,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuditFormat {
    Jsonl,
}

#[derive(Debug, Args)]
pub struct RedactArgs {
    /// Print `{redacted, findings, classification}` as JSON instead of only the redacted input.
    #[arg(long)]
    pub json: bool,
    /// `text`: redact the input as text; `json`: the input is a JSON document, every string
    /// leaf is redacted and the document is printed back.
    #[arg(long, value_enum, default_value = "text")]
    pub format: RedactFormat,
    /// A `dataprotect.yaml` merged key by key above the effective configuration (embedded <
    /// `--config` < `AMAS__DATAPROTECT__...` < this file).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RedactFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ToolsArgs {
    #[command(subcommand)]
    pub command: ToolsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Every configured tool: kind, risk, side effects, idempotence, approval rule and
    /// parameter schema.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: ToolsFormat,
    },
    /// Run one tool call through policy, contract, sandbox and quotas, then the tool; print the
    /// decision and the result as JSON. Exit 0 executed, 1 the tool failed, 3 denied or
    /// awaiting approval.
    Call(CallArgs),
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool's name (config/tools.yaml).
    pub name: String,
    /// The agent whose allowlist, sandbox and quotas apply.
    #[arg(long)]
    pub agent: String,
    /// The call's parameters as a JSON object.
    #[arg(long)]
    pub params: String,
    /// The task type the call is made for (policy input).
    #[arg(long, default_value = "adhoc")]
    pub task_type: String,
    /// Who asks (policy input).
    #[arg(long, default_value = "local-operator")]
    pub sub: String,
    /// A role of the caller; repeatable.
    #[arg(long = "role", default_values_t = vec!["admin".to_owned()])]
    pub roles: Vec<String>,
    #[arg(long, default_value = "default")]
    pub tenant: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ToolsFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `server.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// What this process does: `api` accepts and reads tasks but runs none, `worker` runs tasks
    /// claimed from the database and serves only /healthz, /readyz and /metrics, `all` both.
    /// `api` and `worker` need PostgreSQL (any number of each on one database).
    #[arg(long, value_enum, default_value_t = Role::All)]
    pub role: Role,
}

/// The role of an `amas serve` process (docs/deployment.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Api,
    Worker,
    All,
}

impl Role {
    /// Whether this process runs tasks.
    #[must_use]
    pub fn runs_tasks(self) -> bool {
        matches!(self, Self::Worker | Self::All)
    }

    /// Whether this process serves the API.
    #[must_use]
    pub fn serves_api(self) -> bool {
        matches!(self, Self::Api | Self::All)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Worker => "worker",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long)]
    pub task_type: String,
    #[arg(long)]
    pub title: String,
    #[arg(long)]
    pub description: String,
    /// A task parameter, `key=value` (value parsed as JSON when it is JSON); repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// 1 (lowest) to 10 (highest).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=10))]
    pub priority: i64,
    /// Print the whole task (steps, tokens, result) as JSON instead of just the result.
    #[arg(long)]
    pub json: bool,
    /// Declare the input at least this sensitive: public, internal, confidential, restricted.
    #[arg(long, value_name = "LEVEL")]
    pub classification: Option<String>,
    /// A data tag the input carries (PII, PHI, PCI, SECRET); repeatable. Needs
    /// `--classification`.
    #[arg(long = "tag", value_name = "TAG", requires = "classification")]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed token.
    Create {
        #[arg(long)]
        sub: String,
        /// A role; repeatable, or comma-separated (`--roles viewer,submitter`).
        #[arg(
            long = "role",
            visible_alias = "roles",
            value_delimiter = ',',
            required = true
        )]
        roles: Vec<String>,
        /// The tenant the token's principal belongs to (default: `default`).
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the whole effective configuration (every section, tools and dataprotect
    /// included; secrets and the names of variables holding them redacted).
    Dump {
        #[arg(long, value_enum, default_value = "json")]
        format: DumpFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DumpFormat {
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct ContractsArgs {
    #[command(subcommand)]
    pub command: ContractsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// Load and validate the whole configuration; exit 2 listing every problem.
    Check,
}

#[derive(Debug, Args)]
pub struct SloArgs {
    #[command(subcommand)]
    pub command: SloCommand,
}

#[derive(Debug, Subcommand)]
pub enum SloCommand {
    /// Write prometheus/rules.yml, grafana/amas-overview.json and alertmanager/alertmanager.yml
    /// from slo.yaml (the --config directory's, else the embedded one).
    Render {
        /// Output directory (created if missing; files in it are replaced).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the YAML cases of a bundle (DIR/*.rego with DIR/tests/*.yaml; default: the embedded
    /// bundle and cases). Exit 1 on a failing case, 2 on a bad file.
    Test { dir: Option<PathBuf> },
    /// Print the decision for one input document, with the rules that fired.
    Eval {
        /// JSON input document (docs/policies.md).
        #[arg(long)]
        input: PathBuf,
        /// tool_call, model_call, task_submit or api (default: the input's action.kind).
        #[arg(long)]
        point: Option<String>,
        /// A policy directory replacing the embedded bundle.
        #[arg(long)]
        policy_dir: Option<PathBuf>,
    },
}
