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
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text", env = "AMAS_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
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
    /// Test and debug Rego policies.
    Policy(PolicyArgs),
    /// Detect and redact personal data, card numbers and secrets in stdin.
    Redact(RedactArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `server.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
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
        /// A role; repeatable.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
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
    /// Print the effective configuration as JSON.
    Dump,
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

#[derive(Debug, Args)]
pub struct RedactArgs {
    /// Print `{redacted, findings, classification}` as JSON instead of only the redacted input.
    #[arg(long)]
    pub json: bool,
    /// `text`: redact the input as text; `json`: the input is a JSON document, every string
    /// leaf is redacted and the document is printed back.
    #[arg(long, value_enum, default_value = "text")]
    pub format: RedactFormat,
    /// A data-protection config file (default: the embedded config/dataprotect.yaml).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RedactFormat {
    Text,
    Json,
}
