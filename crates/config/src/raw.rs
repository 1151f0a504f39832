//! The configuration as written: every struct rejects unknown keys. Durations are kept as
//! text here and parsed during validation, so a bad one does not hide other problems.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: String,
    pub body_limit_bytes: u64,
    pub request_timeout: String,
    pub metrics_public: bool,
    pub header_limit_bytes: u64,
    pub max_headers: u64,
    pub header_read_timeout: String,
    pub json_max_depth: u64,
    pub max_connections: u64,
    /// Absent in a user file: the default in code (`validate/settings.rs`).
    #[serde(default)]
    pub max_connections_per_ip: Option<u64>,
    #[serde(default)]
    pub write_timeout: Option<String>,
    #[serde(default)]
    pub max_event_streams_per_tenant: Option<u64>,
    /// Nested sections replace the whole mapping below them when a user file sets them, so
    /// every field inside is optional and defaults in code (`validate/settings.rs`).
    #[serde(default)]
    pub cors: RawCors,
    #[serde(default)]
    pub rate_limits: RawRateLimits,
    /// TLS termination by AMAS itself; absent (or null): plain HTTP.
    #[serde(default)]
    pub tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCors {
    pub allowed_origins: Option<Vec<String>>,
    pub max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    pub enabled: Option<bool>,
    pub max_clients: Option<u64>,
    #[serde(default)]
    pub unauthenticated: RawBucket,
    #[serde(default)]
    pub read: RawBucket,
    #[serde(default)]
    pub write: RawBucket,
    #[serde(default)]
    pub stream: RawBucket,
    #[serde(default)]
    pub admin: RawBucket,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBucket {
    pub per_minute: Option<u64>,
    pub burst: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub issuer: String,
    pub audience: String,
    pub default_token_ttl: String,
    pub clock_leeway: String,
    /// Trusted OpenID Connect issuers by name; each entry is deserialized on its own
    /// (`RawOidcIssuer`) so one bad entry does not hide the problems of the others.
    #[serde(default)]
    pub oidc_issuers: Option<yaml_serde::Mapping>,
}

/// One trusted OpenID Connect issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOidcIssuer {
    pub issuer: String,
    pub discovery: Option<bool>,
    pub jwks_url: Option<String>,
    pub audiences: Vec<String>,
    pub algorithms: Option<Vec<String>>,
    pub clock_leeway: Option<String>,
    pub max_token_age: Option<String>,
    #[serde(default)]
    pub jwks_cache: RawJwksCache,
    pub roles_claim: Option<RawClaimPath>,
    pub tenant_claim: Option<RawClaimPath>,
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwksCache {
    pub min_refresh: Option<String>,
    pub max_refresh: Option<String>,
    pub unknown_kid_refetch_interval: Option<String>,
    pub http_timeout: Option<String>,
}

/// A claim path: dotted text (`realm_access.roles`), or a list of segments for claim names
/// that contain dots themselves (`["https://example.com/roles"]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawClaimPath {
    Dotted(String),
    Segments(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuntime {
    pub queue_capacity: u64,
    pub max_concurrent_tasks: u64,
    pub journal_sync: String,
}

/// The audit log's checkpoints and witness.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub checkpoint_every: u64,
    pub checkpoint_interval: String,
    #[serde(default)]
    pub witness: RawWitness,
}

/// Every field optional: a user file that sets `witness` replaces the embedded mapping.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWitness {
    pub file: Option<String>,
    pub http: Option<RawHttpWitness>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpWitness {
    pub url: String,
    pub timeout: Option<String>,
}

/// Retention periods by classification level (`30d`, `12h`, `never`) and the purge interval.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    pub purge_interval: String,
    pub restricted: String,
    pub confidential: String,
    pub internal: String,
    pub public: String,
}

/// Clearance levels by role: the most sensitive data a role may read unredacted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClearance {
    pub roles: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApprovals {
    pub approver_roles: Vec<String>,
    pub timeout: String,
}

/// A provider without its `kind` key (dispatched on before deserializing).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOpenAi {
    pub base_url: String,
    pub model: String,
    pub api_key_env: Option<String>,
    pub timeout: Option<String>,
    pub max_retries: Option<u64>,
    pub max_retry_after: Option<String>,
    pub breaker: Option<RawBreaker>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocal {
    pub model_dir: Option<PathBuf>,
    pub model_file: String,
    pub max_tokens: Option<u64>,
    pub breaker: Option<RawBreaker>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScripted {
    pub file: PathBuf,
    pub breaker: Option<RawBreaker>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaker {
    pub failure_threshold: Option<u64>,
    pub cool_down: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub role: String,
    #[serde(default)]
    pub description: String,
    pub providers: Vec<String>,
    pub system_prompt: String,
    pub input_contract: serde_json::Value,
    pub output_contract: serde_json::Value,
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub sandbox: RawSandbox,
    #[serde(default)]
    pub quotas: RawQuotas,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSandbox {
    pub read_only: Option<bool>,
    pub network: Option<bool>,
    pub max_file_reads: Option<u64>,
    pub max_file_writes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuotas {
    pub tool_calls_per_task: Option<u64>,
    pub bytes_out_per_task: Option<u64>,
    pub bytes_in_per_task: Option<u64>,
    pub tokens_per_task: Option<u64>,
    pub wall_time_per_task: Option<String>,
    pub calls_per_minute: Option<u64>,
    pub scope: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_attempts: Option<u64>,
    pub timeout: Option<String>,
    pub token_budget: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub max_tool_calls: Option<u64>,
}

/// A workflow file; its steps are deserialized one by one so one bad step does not hide
/// the problems of the others (or a cycle).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkflow {
    pub task_type: Option<String>,
    #[serde(default)]
    pub description: String,
    pub result_step: Option<String>,
    pub steps: yaml_serde::Mapping,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub agent: String,
    #[serde(default)]
    pub depends_on: Vec<String>,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
}

/// The store: every key optional, the defaults live in code (`validate/store.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub backend: Option<String>,
    pub dir: Option<PathBuf>,
    pub url_env: Option<String>,
    pub pool_size: Option<u64>,
    pub schema: Option<String>,
    pub migrate_on_start: Option<bool>,
    pub lease_ttl: Option<String>,
    pub claim_interval: Option<String>,
}

/// Scheduling across tenants: every key optional, the defaults live in code
/// (`validate/scheduling.rs`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScheduling {
    pub default_weight: Option<u64>,
    pub default_max_running: Option<u64>,
    pub default_max_queued: Option<u64>,
    /// By tenant id; each entry is deserialized on its own (`RawTenantSchedule`) so one bad
    /// entry does not hide the problems of the others.
    pub tenants: Option<yaml_serde::Mapping>,
    pub metrics_interval: Option<String>,
}

/// One tenant's weight and limits; what it leaves out is the default's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenantSchedule {
    pub weight: Option<u64>,
    pub max_running: Option<u64>,
    pub max_queued: Option<u64>,
}
