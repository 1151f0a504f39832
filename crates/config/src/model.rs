//! The validated configuration: what the rest of AMAS reads. Built only by the loader
//! (`crate::load`), so every value here has passed validation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::contract::Contract;
use amas_types::{AgentId, StepId};

/// Everything AMAS is configured with.
#[derive(Clone, Debug, Serialize)]
pub struct AmasConfig {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub runtime: RuntimeConfig,
    pub scheduling: crate::SchedulingConfig,
    pub approvals: ApprovalsConfig,
    pub retention: RetentionConfig,
    pub clearance: ClearanceConfig,
    pub audit: AuditConfig,
    pub store: StoreConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Per provider, the data classification levels it may receive (`trusted_for`).
    pub provider_trust: BTreeMap<String, Vec<String>>,
    /// Per provider, what its tokens cost (`prices`), for the estimated-cost metric; providers
    /// without prices are absent.
    pub provider_prices: BTreeMap<String, TokenPrices>,
    pub agents: BTreeMap<String, AgentConfig>,
    pub workflows: BTreeMap<String, WorkflowConfig>,
}

/// The HTTP server.
#[derive(Clone, Debug, Serialize)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    #[serde(with = "humantime_secs")]
    pub request_timeout: Duration,
    /// Whether `/metrics` needs a token (false: public, for scrapers inside the network).
    pub metrics_public: bool,
    /// Largest request head (request line and headers), in bytes; larger is refused.
    pub header_limit_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Time a client has to send a complete request head, so slow clients cannot hold a
    /// connection open for free.
    #[serde(with = "humantime_secs")]
    pub header_read_timeout: Duration,
    /// Deepest nesting of arrays and objects accepted in a JSON body.
    pub json_max_depth: usize,
    /// Open connections at most; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Open connections at most from one client address (an IPv4 address, or an IPv6 /64),
    /// so one client cannot take every slot; further ones are answered 429 and closed at
    /// once (AMAS-API-0009).
    pub max_connections_per_ip: usize,
    /// Longest time a response write may make no progress (the client stopped reading)
    /// before the connection is closed.
    #[serde(with = "humantime_secs")]
    pub write_timeout: Duration,
    /// Live event streams (SSE) open at most per tenant; further ones are refused with 429
    /// (AMAS-API-0010) until one ends.
    pub max_event_streams_per_tenant: usize,
    pub cors: CorsConfig,
    pub rate_limits: RateLimitsConfig,
    /// When set, AMAS terminates TLS itself (rustls) with this certificate chain and key.
    pub tls: Option<TlsConfig>,
}

/// PEM files of the server certificate chain (leaf first) and its private key (PKCS#8, PKCS#1
/// or SEC1).
#[derive(Clone, Debug, Serialize)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Cross-origin requests from browsers: refused unless the origin is listed.
#[derive(Clone, Debug, Serialize)]
pub struct CorsConfig {
    /// Exact origins (`https://ui.example.com`); empty: CORS is off.
    pub allowed_origins: Vec<String>,
    /// How long a browser may cache a preflight answer.
    #[serde(with = "humantime_secs")]
    pub max_age: Duration,
}

/// Token buckets per principal and route class, and per client address for requests without
/// a valid token.
#[derive(Clone, Debug, Serialize)]
pub struct RateLimitsConfig {
    pub enabled: bool,
    /// Buckets kept at most (idle ones are evicted first; beyond this, new clients share one
    /// overflow bucket per class), which bounds the memory rate limiting uses.
    pub max_clients: usize,
    /// Per client IP address, for requests without a valid token (public routes, failed
    /// authentication).
    pub unauthenticated: RateLimit,
    /// Per principal: reading tasks, approvals, agents, workflows, `me`.
    pub read: RateLimit,
    /// Per principal: submitting and cancelling tasks, deciding approvals.
    pub write: RateLimit,
    /// Per principal: opening a task's event stream.
    pub stream: RateLimit,
    /// Per principal: audit data and metrics.
    pub admin: RateLimit,
}

/// One token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

/// The local token issuer and the verification rules.
#[derive(Clone, Debug, Serialize)]
pub struct AuthConfig {
    /// `iss` of tokens minted by the local issuer, and the accepted issuer.
    pub issuer: String,
    /// Accepted `aud`.
    pub audience: String,
    #[serde(with = "humantime_secs")]
    pub default_token_ttl: Duration,
    #[serde(with = "humantime_secs")]
    pub clock_leeway: Duration,
    /// Trusted OpenID Connect identity providers, sorted by name; tokens are matched to one
    /// by their `iss`.
    pub oidc_issuers: Vec<OidcIssuerConfig>,
}

/// A trusted OpenID Connect identity provider: where its keys are, and how its tokens are
/// checked and mapped onto a principal.
#[derive(Clone, Debug, Serialize)]
pub struct OidcIssuerConfig {
    /// The entry's name in config; principals carry `auth_method: oidc:<name>`.
    pub name: String,
    /// The exact `iss` of its tokens (an `https://` URL; `http://` only on loopback).
    pub issuer: String,
    pub jwks: JwksLocation,
    /// Accepted `aud` values: a token must name at least one.
    pub audiences: Vec<String>,
    /// Signature algorithms its keys may be used with (never `none` or HMAC).
    pub algorithms: Vec<SigningAlgorithm>,
    #[serde(with = "humantime_secs")]
    pub clock_leeway: Duration,
    /// Oldest accepted token by its `iat`; `None`: no limit (and `iat` is optional).
    #[serde(with = "humantime_opt")]
    pub max_token_age: Option<Duration>,
    pub jwks_cache: JwksCacheConfig,
    /// Where the roles are: a JSON array of strings at this path; anything else grants none.
    pub roles_claim: ClaimPath,
    pub tenant: TenantMapping,
}

/// Where an issuer's JWKS is fetched from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JwksLocation {
    /// `jwks_uri` of the discovery document at this URL
    /// (`{issuer}/.well-known/openid-configuration`).
    Discovery { url: String },
    /// A JWKS URL given in config.
    Url { url: String },
}

/// An asymmetric signature algorithm AMAS verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum SigningAlgorithm {
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlgorithm {
    /// The JOSE name (`alg`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }
}

/// Bounds of an issuer's JWKS cache.
#[derive(Clone, Debug, Serialize)]
pub struct JwksCacheConfig {
    /// The shortest lifetime of a key set, whatever `Cache-Control` says (the background
    /// refresh never comes sooner); also the retry interval while the identity provider is
    /// down.
    #[serde(with = "humantime_secs")]
    pub min_refresh: Duration,
    /// The longest lifetime of a key set (also used when the response has no `max-age`):
    /// past its lifetime, none of its keys is used before the JWKS is fetched again.
    #[serde(with = "humantime_secs")]
    pub max_refresh: Duration,
    /// A token naming an unknown `kid`, or arriving after the key set's lifetime ended,
    /// triggers a refetch at most once per this interval.
    #[serde(with = "humantime_secs")]
    pub unknown_kid_refetch_interval: Duration,
    /// Timeout of one discovery or JWKS request.
    #[serde(with = "humantime_secs")]
    pub http_timeout: Duration,
}

/// A path into the token's claims, one segment per nested object key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimPath(pub Vec<String>);

impl ClaimPath {
    /// A path of one top-level claim.
    #[must_use]
    pub fn top(name: &str) -> Self {
        Self(vec![name.to_owned()])
    }
}

impl std::fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl Serialize for ClaimPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Where a token's tenant comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantMapping {
    /// A string claim at this path; a token without it is refused.
    Claim(ClaimPath),
    /// Every token of the issuer belongs to this tenant; tenant claims are ignored.
    Fixed(String),
}

/// Task execution limits.
#[derive(Clone, Debug, Serialize)]
pub struct RuntimeConfig {
    /// Tasks waiting to run; a submission beyond this gets 429 with `Retry-After`.
    pub queue_capacity: usize,
    /// Tasks executed at once.
    pub max_concurrent_tasks: usize,
    /// How hard the embedded SQLite journal syncs each commit.
    pub journal_sync: JournalSync,
}

/// Who may approve governed actions, and how long a request waits.
#[derive(Clone, Debug, Serialize)]
pub struct ApprovalsConfig {
    /// Roles whose votes count.
    pub approver_roles: Vec<String>,
    /// A request still pending after this long is denied as expired.
    #[serde(with = "humantime_secs")]
    pub timeout: Duration,
}

/// The audit log's checkpoints: how often they are signed, and where each is also written
/// outside the database (docs/audit.md).
#[derive(Clone, Debug, Serialize)]
pub struct AuditConfig {
    /// A checkpoint after this many records.
    pub checkpoint_every: u64,
    /// ... and at the latest this long after the last one, when records came since.
    #[serde(with = "humantime_secs")]
    pub checkpoint_interval: Duration,
    pub witness: WitnessSettings,
}

/// Where checkpoints are witnessed.
#[derive(Clone, Debug, Serialize)]
pub struct WitnessSettings {
    /// The append-only witness file; relative to the data directory; `None`: off.
    pub file: Option<std::path::PathBuf>,
    /// A remote sink each checkpoint is also posted to.
    pub http: Option<HttpWitnessConfig>,
}

/// A remote witness: each checkpoint `POST`ed as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct HttpWitnessConfig {
    pub url: String,
    #[serde(with = "humantime_secs")]
    pub timeout: Duration,
}

/// Where the journal, the approvals and the audit log live (`store:`, docs/deployment.md).
#[derive(Clone, Debug, Serialize)]
pub struct StoreConfig {
    #[serde(flatten)]
    pub backend: StoreBackend,
    /// Whether a start brings the schema up to date; when false, a start refuses a schema
    /// behind the binary (AMAS-STORE-0012) until `amas db migrate` ran.
    pub migrate_on_start: bool,
    /// How worker processes hold their tasks on PostgreSQL (unused on SQLite).
    pub leases: LeaseConfig,
}

/// Task leases of worker processes on PostgreSQL (`store.lease_ttl`, `store.claim_interval`;
/// docs/deployment.md).
#[derive(Clone, Debug, Serialize)]
pub struct LeaseConfig {
    /// How long a claimed task stays a worker's without a renewal (renewed every third of
    /// it): after a crash, another worker resumes the task this long after the last renewal.
    #[serde(with = "humantime_secs")]
    pub ttl: std::time::Duration,
    /// How often an idle worker looks for runnable tasks (a submission to the same process
    /// and a freed slot look at once).
    #[serde(with = "humantime_secs")]
    pub claim_interval: std::time::Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl: std::time::Duration::from_secs(15),
            claim_interval: std::time::Duration::from_millis(500),
        }
    }
}

/// The database backend, chosen in config or by the URL variable being set.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
pub enum StoreBackend {
    /// The embedded default: `amas.db` in `dir`, or in the data directory when `None`.
    Sqlite { dir: Option<PathBuf> },
    /// A PostgreSQL server shared by every process of an installation.
    Postgres(PostgresStoreConfig),
}

/// A PostgreSQL store.
#[derive(Clone, Debug, Serialize)]
pub struct PostgresStoreConfig {
    /// The environment variable the URL was read from.
    pub url_env: String,
    /// The URL, read from `url_env`; shown with its password redacted, never whole.
    #[serde(serialize_with = "crate::redacted::url")]
    pub url: secrecy::SecretString,
    /// Connections this process keeps at most.
    pub pool_size: u32,
    /// The schema holding AMAS's tables (created when missing); `None`: the connection's
    /// default (usually `public`).
    pub schema: Option<String>,
}

/// How long task payloads are kept, by classification level, and how often the purge runs.
/// `None` keeps a level's payloads forever (`never`).
#[derive(Clone, Debug, Serialize)]
pub struct RetentionConfig {
    #[serde(with = "humantime_secs")]
    pub purge_interval: Duration,
    #[serde(with = "humantime_opt")]
    pub restricted: Option<Duration>,
    #[serde(with = "humantime_opt")]
    pub confidential: Option<Duration>,
    #[serde(with = "humantime_opt")]
    pub internal: Option<Duration>,
    #[serde(with = "humantime_opt")]
    pub public: Option<Duration>,
}

impl RetentionConfig {
    /// The retention of a level by name (`public`, `internal`, `confidential`, `restricted`).
    /// An unknown name gets the shortest configured period, so data of a level this build
    /// does not know is never kept longer than the most sensitive data.
    #[must_use]
    pub fn period(&self, level: &str) -> Option<Duration> {
        match level {
            "public" => self.public,
            "internal" => self.internal,
            "confidential" => self.confidential,
            "restricted" => self.restricted,
            _ => [
                self.restricted,
                self.confidential,
                self.internal,
                self.public,
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }
}

/// Clearance by role: the most sensitive classification level (`public`, `internal`,
/// `confidential`, `restricted`) a principal with that role may read unredacted. A principal's
/// clearance is the highest of its roles'; a principal without a listed role has `public`.
#[derive(Clone, Debug, Serialize)]
pub struct ClearanceConfig {
    pub roles: BTreeMap<String, String>,
}

impl ClearanceConfig {
    /// The classification levels, least sensitive first.
    pub const LEVELS: [&'static str; 4] = ["public", "internal", "confidential", "restricted"];

    /// The clearance of a principal holding `roles`: the highest level of any listed role,
    /// `public` when none is listed.
    #[must_use]
    pub fn of(&self, roles: &[String]) -> &'static str {
        let rank = |level: &str| Self::LEVELS.iter().position(|l| *l == level).unwrap_or(0);
        let best = roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .map(|l| rank(l))
            .max()
            .unwrap_or(0);
        // `best` is a position in LEVELS (or 0), so always in range.
        Self::LEVELS[best]
    }
}

/// Durability of a SQLite journal commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalSync {
    /// fsync on every commit: an acknowledged event survives power loss.
    Full,
    /// WAL without fsync per commit: an acknowledged event survives a crash of the process
    /// (`kill -9`), and the database is never corrupted, but the last commits can be lost on
    /// power loss or an OS crash.
    Normal,
}

/// What a provider's tokens cost, in US dollars per 1000 tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TokenPrices {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
}

impl TokenPrices {
    /// The estimated cost of a call that used these tokens, in US dollars.
    #[must_use]
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        // Token counts are far below 2^52: the conversion is exact in practice.
        let (input, output) = (input_tokens as f64, output_tokens as f64);
        (input * self.input_per_1k + output * self.output_per_1k) / 1000.0
    }
}

/// One model provider backend (a closed set).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderConfig {
    /// Any OpenAI-compatible chat-completions server.
    Openai(OpenAiConfig),
    /// The embedded local model.
    Local(LocalModelConfig),
    /// Canned responses from a file, for tests.
    Scripted(ScriptedConfig),
}

#[derive(Clone, Debug, Serialize)]
pub struct OpenAiConfig {
    /// Base URL up to and including `/v1`, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub model: String,
    /// Name of the environment variable holding the API key (the key itself is never in config;
    /// `config dump` shows neither).
    #[serde(serialize_with = "crate::redacted::optional")]
    pub api_key_env: Option<String>,
    #[serde(with = "humantime_secs")]
    pub timeout: Duration,
    /// Retries on 429/5xx/connection errors, after the first try.
    pub max_retries: u32,
    /// Longest `Retry-After` slept inside the call; a longer one fails the call at once, and a
    /// step whose every provider asks to wait parks its task until then (ADR 16).
    #[serde(with = "humantime_secs")]
    pub max_retry_after: Duration,
    pub breaker: BreakerConfig,
}

#[derive(Clone, Debug, Serialize)]
pub struct LocalModelConfig {
    /// Directory holding the model files; `None`: `$AMAS_MODEL_DIR`, else `~/.cache/amas/models`.
    pub model_dir: Option<PathBuf>,
    /// GGUF file name inside the model directory.
    pub model_file: String,
    /// Upper bound on generated tokens per call.
    pub max_tokens: u32,
    pub breaker: BreakerConfig,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScriptedConfig {
    /// A YAML/JSON file of canned responses (see `amas_providers::scripted`).
    pub file: PathBuf,
    pub breaker: BreakerConfig,
}

/// Circuit breaker of one provider.
#[derive(Clone, Debug, Serialize)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one half-open probe is let through.
    #[serde(with = "humantime_secs")]
    pub cool_down: Duration,
}

/// A configured agent role.
#[derive(Clone, Debug, Serialize)]
pub struct AgentConfig {
    pub id: AgentId,
    pub role: String,
    pub description: String,
    /// Provider names, tried in order (fallback chain).
    pub providers: Vec<String>,
    pub system_prompt: String,
    pub input_contract: Arc<Contract>,
    pub output_contract: Arc<Contract>,
    /// Tools the agent may call; enforced independently of policy (both must allow).
    pub allowed_tools: Vec<String>,
    pub limits: AgentLimits,
    pub sandbox: SandboxConfig,
    pub quotas: QuotaConfig,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentLimits {
    /// Model answers per step before the step fails on contract violations or provider errors.
    pub max_attempts: u32,
    #[serde(with = "humantime_secs")]
    pub timeout: Duration,
    /// Tokens (in + out) a step may use.
    pub token_budget: u64,
    /// Tokens the model may generate per call.
    pub max_output_tokens: u32,
    /// Tool calls per step: bounds the model <-> tool loop.
    pub max_tool_calls: u32,
}

/// Side-effect bounds of an agent's tool use, enforced whatever policy says.
#[derive(Clone, Debug, Serialize)]
pub struct SandboxConfig {
    /// No tool with `write` or `external` side effects.
    pub read_only: bool,
    /// Whether tools that reach the network (`external` side effects) may run.
    pub network: bool,
    /// File reads per task.
    pub max_file_reads: u32,
    /// File writes per task.
    pub max_file_writes: u32,
}

/// Tool quotas of an agent.
#[derive(Clone, Debug, Serialize)]
pub struct QuotaConfig {
    /// Tool calls per task (all tools together).
    pub tool_calls_per_task: u32,
    /// Bytes tools may return per task.
    pub bytes_out_per_task: u64,
    /// Bytes of tool parameters the agent may send per task.
    pub bytes_in_per_task: u64,
    /// Model tokens (input + output) the agent may use per task, over all its steps.
    pub tokens_per_task: u64,
    /// After this long since the task started, the agent's tool calls are refused.
    #[serde(with = "humantime_secs")]
    pub wall_time_per_task: Duration,
    /// Tool calls per minute per agent and tool, counted per `scope`.
    pub calls_per_minute: u32,
    pub scope: QuotaScope,
}

/// Who shares a per-minute quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaScope {
    /// Each task has its own window.
    Task,
    /// All tasks of the same principal (tenant + subject) share the window.
    Principal,
}

/// The plan of one task type: a DAG of steps.
#[derive(Clone, Debug, Serialize)]
pub struct WorkflowConfig {
    pub task_type: String,
    pub description: String,
    /// Steps in a topological order (dependencies first).
    pub steps: Vec<StepConfig>,
    /// Which step's output is the task's result.
    pub result_step: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepConfig {
    pub name: StepId,
    pub agent: AgentId,
    pub depends_on: Vec<String>,
    /// Input field name -> where its value comes from.
    pub inputs: BTreeMap<String, InputSource>,
}

/// Where a step input comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum InputSource {
    TaskTitle,
    TaskDescription,
    /// The whole `parameters` object.
    TaskParameters,
    /// One parameter; `null` when absent.
    TaskParameter {
        name: String,
    },
    /// An upstream step's output, or one top-level field of it.
    StepOutput {
        step: String,
        field: Option<String>,
    },
}

pub(crate) mod humantime_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }
}

mod humantime_opt {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::humantime_secs::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}
