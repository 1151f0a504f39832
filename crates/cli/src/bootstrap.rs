//! Building the pieces every command shares, each in one named step: configuration, telemetry,
//! the store, providers, the runtime.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use amas_config::{AmasConfig, Layers, LoadOptions, ProviderConfig, StoreBackend};
use amas_dataprotect::{DataProtectConfig, DataProtector};
use amas_governance::AuditKey;
use amas_governance::pipeline::{Pipeline, SecurityEvent};
use amas_policy::{
    EngineOptions, PolicyChange, PolicyEngine, RegoPolicyEngine, ReloadingPolicyEngine, WatchHandle,
};
use amas_providers::ProviderSet;
use amas_providers::local::LocalProvider;
use amas_runtime::Runtime;
use amas_runtime::compose::{self, Composition, Governance};
use amas_store::audit::witness::{self, WitnessConfig};
use amas_store::{OpenOptions, SchemaAction, Store};
use amas_telemetry::{Metrics, TelemetryGuard};
use amas_tools::{ToolRegistry, ToolsConfig};

use crate::args::{Global, LogFormat};

/// A usage or configuration problem: the process exits with code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The effective configuration: every section of every layer (embedded < `--config` <
/// `AMAS__...` < files named on the command line), validated together so one run reports every
/// problem of every file. What commands run with, and what `amas config dump` prints.
#[derive(Debug)]
pub struct Loaded {
    pub config: AmasConfig,
    pub tools: ToolsConfig,
    pub dataprotect: DataProtectConfig,
}

impl Loaded {
    /// The whole configuration as one document, secrets redacted: the core sections, then
    /// `tools` and `dataprotect`.
    pub fn effective(&self) -> anyhow::Result<serde_json::Value> {
        let mut doc = serde_json::to_value(&self.config)?;
        if let Some(map) = doc.as_object_mut() {
            map.insert("tools".to_owned(), serde_json::to_value(&self.tools)?);
            map.insert(
                "dataprotect".to_owned(),
                serde_json::to_value(&self.dataprotect)?,
            );
        }
        Ok(doc)
    }

    /// SHA-256 of [`Loaded::effective`]: a change of any section between two starts shows in
    /// the audit log as a change of hash.
    pub fn sha256(&self) -> String {
        self.effective()
            .and_then(|doc| Ok(serde_json::to_vec(&doc)?))
            .map(|bytes| amas_store::audit::hash_payload(&bytes))
            .unwrap_or_else(|e| format!("<unserializable: {e}>"))
    }
}

/// The layers' sources: `--config` and the process environment.
pub fn load_options(global: &Global) -> LoadOptions {
    LoadOptions::from_process(global.config.clone())
}

/// Loads the effective configuration; see [`Loaded`].
pub fn load(global: &Global) -> anyhow::Result<Loaded> {
    let mut layers = Layers::load(&load_options(global));
    let config = layers.core();
    let tools = layers.section::<ToolsConfig>();
    let dataprotect = layers.section::<DataProtectConfig>();
    let all = match (config, tools, dataprotect) {
        (Some(config), Some(tools), Some(dataprotect)) => Some(Loaded {
            config,
            tools,
            dataprotect,
        }),
        _ => None,
    };
    layers
        .finish(all)
        .map_err(|errors| UsageError(format!("invalid configuration:\n{errors}")).into())
}

/// The core sections only, for commands that run no tool and scan no data (every file is
/// still validated).
pub fn load_config(global: &Global) -> anyhow::Result<AmasConfig> {
    load(global).map(|loaded| loaded.config)
}

pub fn init_telemetry(global: &Global, default_filter: &str) -> anyhow::Result<TelemetryGuard> {
    let json = matches!(global.log_format, LogFormat::Json);
    amas_telemetry::init_tracing("amas", json, default_filter)
        .map_err(|e| anyhow::anyhow!("cannot initialise telemetry: {e}"))
}

/// Checks that every local model the agents use is installed, before any task is admitted.
pub fn preflight_local_models(config: &AmasConfig) -> anyhow::Result<()> {
    let used: std::collections::BTreeSet<&String> = config
        .agents
        .values()
        .flat_map(|a| a.providers.iter())
        .collect();
    for name in used {
        if let Some(ProviderConfig::Local(local)) = config.providers.get(name) {
            let provider = LocalProvider::new(name, local)?;
            if !provider.is_installed() {
                return Err(UsageError(format!(
                    "the local model is not installed: {} is missing; run `scripts/fetch-model.sh` to fetch it (or set AMAS_MODEL_DIR)",
                    provider.model_path().display()
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// The policy engine: the embedded bundle, or `--policy-dir` hot-reloaded (a broken edit is
/// rejected and the previous bundle stays in force). The watch must be kept alive.
pub fn build_policy(global: &Global) -> anyhow::Result<(Arc<dyn PolicyEngine>, PolicyWatch)> {
    match &global.policy_dir {
        None => {
            let engine = RegoPolicyEngine::embedded()
                .map_err(|e| UsageError(format!("embedded policies: {e}")))?;
            let hash = engine.bundle_hash().to_owned();
            Ok((
                Arc::new(engine),
                PolicyWatch {
                    hash,
                    reloading: None,
                },
            ))
        }
        Some(dir) => {
            let engine = ReloadingPolicyEngine::new(dir, EngineOptions::default())
                .map_err(|e| UsageError(format!("policies in {}: {e}", dir.display())))?;
            let engine = Arc::new(engine);
            let handle = engine.watch(Duration::from_secs(2));
            Ok((
                Arc::clone(&engine) as Arc<dyn PolicyEngine>,
                PolicyWatch {
                    hash: engine.bundle_hash(),
                    reloading: Some((engine, handle)),
                },
            ))
        }
    }
}

/// The bundle a command started with, and, for `--policy-dir`, its watcher (stopped on drop).
pub struct PolicyWatch {
    /// The starting bundle's SHA-256.
    hash: String,
    reloading: Option<(Arc<ReloadingPolicyEngine>, WatchHandle)>,
}

impl PolicyWatch {
    /// Records in the audit log what this process runs with (configuration and policy bundle
    /// hashes: a change between two starts shows as a change of hash), and every later policy
    /// reload or rejected bundle. Call inside the Tokio runtime.
    pub async fn audit_to(&self, runtime: &Runtime, config_hash: &str) {
        let details = serde_json::json!({
            "config_sha256": config_hash,
            "policy_bundle_sha256": self.hash,
            "policy_source": if self.reloading.is_some() { "policy_dir" } else { "embedded" },
            "version": env!("CARGO_PKG_VERSION"),
        });
        runtime
            .access()
            .security_event(&system_principal(), SecurityEvent::ConfigLoaded { details })
            .await;
        let Some((engine, _)) = &self.reloading else {
            return;
        };
        let tokio = tokio::runtime::Handle::current();
        let runtime = runtime.clone();
        engine.on_change(move |change| {
            let record = policy_change_record(&runtime, change);
            let runtime = runtime.clone();
            amas_telemetry::tasks::global().spawn_on(&tokio, "policy.reload_audit", async move {
                runtime.access().audit(record).await;
            });
        });
    }
}

/// The audit record of a hot reload (the pipeline's): the bundle hashes before and after, or
/// why a bundle was rejected (a compile error names files and lines, never data).
fn policy_change_record(runtime: &Runtime, change: &PolicyChange) -> amas_store::AuditRecord {
    let event = match change {
        PolicyChange::Applied { from_hash, to_hash } => {
            SecurityEvent::PolicyApplied { from_hash, to_hash }
        }
        PolicyChange::Rejected {
            in_force,
            rejected,
            code,
            error,
        } => SecurityEvent::PolicyRejected {
            in_force,
            rejected,
            code,
            error,
        },
    };
    runtime.access().security_record(&system_principal(), event)
}

/// AMAS itself, as the principal of the events it records (starts, policy reloads).
fn system_principal() -> amas_types::Principal {
    amas_types::Principal {
        sub: "amas".to_owned(),
        roles: Vec::new(),
        tenant: amas_types::TenantId::default_tenant(),
        auth_method: "system".to_owned(),
        issuer: "system".to_owned(),
    }
}

/// What governance is made of in this process: policy, the tool registry and data protection
/// of the effective configuration, the environment and the redaction key of the data directory.
pub fn governance(
    global: &Global,
    tools: ToolsConfig,
    protector: Arc<DataProtector>,
    policy: Arc<dyn PolicyEngine>,
) -> anyhow::Result<Governance> {
    let redact_secret = amas_governance::auth::redaction_secret(&global.data_dir)
        .map_err(|e| UsageError(format!("the redaction key: {e}")))?;
    Ok(Governance {
        tools: ToolRegistry::from_config(tools),
        protector,
        policy,
        environment: global.environment.clone(),
        redact_secret,
        content_safety: None,
    })
}

/// The governance pipeline alone, for commands that decide without running tasks.
pub fn build_gate(
    global: &Global,
    config: &AmasConfig,
    tools: ToolsConfig,
    protector: Arc<DataProtector>,
    policy: Arc<dyn PolicyEngine>,
    metrics: Metrics,
) -> anyhow::Result<Arc<Pipeline>> {
    let governance = governance(global, tools, protector, policy)?;
    Ok(Arc::new(compose::pipeline(config, governance, metrics)?))
}

/// Detection, redaction, DLP, classification and content safety as the effective
/// `dataprotect` section says.
pub fn data_protector(config: DataProtectConfig) -> anyhow::Result<Arc<DataProtector>> {
    Ok(Arc::new(DataProtector::new(config)?))
}

/// What a command needs of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreNeed {
    /// Runs tasks: an empty database is created (SQLite) or migrated (PostgreSQL).
    Create,
    /// Reads, verifies or purges: a SQLite database must already exist, reading commands
    /// never create an empty one.
    Existing,
}

/// The one way commands open the store: the backend the `store` section selects (SQLite in
/// the data directory, or PostgreSQL when `AMAS_DATABASE_URL` is set), its schema checked and
/// migrated as `store.migrate_on_start` says. Errors name the store by
/// [`amas_store::location`], never by its URL's password.
pub async fn open_store(
    global: &Global,
    config: &AmasConfig,
    need: StoreNeed,
) -> anyhow::Result<Store> {
    let schema = if config.store.migrate_on_start {
        SchemaAction::Migrate
    } else {
        SchemaAction::RequireCurrent
    };
    open_store_with(global, config, need, schema).await
}

/// [`open_store`] with the schema handled as `schema` says (`amas db` decides itself).
pub async fn open_store_with(
    global: &Global,
    config: &AmasConfig,
    need: StoreNeed,
    schema: SchemaAction,
) -> anyhow::Result<Store> {
    let location = amas_store::location(&config.store, &global.data_dir);
    if let StoreBackend::Sqlite { dir } = &config.store.backend {
        let dir = amas_store::sqlite_dir(dir.as_deref(), &global.data_dir);
        if need == StoreNeed::Existing && !dir.join("amas.db").is_file() {
            return Err(UsageError(format!(
                "no AMAS database in {} (set --data-dir, or AMAS_DATABASE_URL for PostgreSQL)",
                dir.display()
            ))
            .into());
        }
    }
    let options = OpenOptions {
        data_dir: &global.data_dir,
        full_sync: config.runtime.journal_sync == amas_config::JournalSync::Full,
        schema,
    };
    Store::open(&config.store, options)
        .await
        .map_err(|e| store_error(&e, &location))
}

/// A store error as the command reports it: with its code and where the store is; an
/// operator's problem (the schema, the configuration, a copy target) is a usage error.
pub fn store_error(e: &amas_store::StoreError, location: &str) -> anyhow::Error {
    use amas_store::StoreError as E;
    let message = format!("{}: {e} (store {location})", e.code());
    match e {
        E::SchemaNewer { .. }
        | E::SchemaBehind { .. }
        | E::TargetNotEmpty(_)
        | E::InvalidConfig(_)
        | E::NotPrivate(_) => UsageError(message).into(),
        E::Conflict { .. }
        | E::InvalidAppend(_)
        | E::Backend(_)
        | E::Corrupt(_)
        | E::Migration(_)
        | E::NotPurgeable { .. }
        | E::TaskEnded { .. }
        | E::LeaseLost { .. }
        | E::Closed => anyhow::anyhow!(message),
    }
}

/// Makes the data directory and everything in it owner-only (creating it if missing), or
/// refuses to go on (AMAS-STORE-0009) when a path cannot be tightened; see
/// [`amas_store::private::secure_data_dir`]. What was tightened is logged once.
pub fn secure_data_dir(global: &Global) -> anyhow::Result<()> {
    let tightened = amas_store::private::secure_data_dir(&global.data_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
    if let Some(first) = tightened.first() {
        tracing::warn!(
            data_dir = %global.data_dir.display(),
            paths = tightened.len(),
            first = %first.display(),
            "Data directory was readable by other users; made owner-only."
        );
    }
    Ok(())
}

/// The runtime on the store the configuration selects ([`open_store`]), governed by
/// `governance`, built by the composition root ([`compose::compose`]).
pub async fn build_runtime(
    global: &Global,
    config: Arc<AmasConfig>,
    metrics: Metrics,
    governance: Governance,
) -> anyhow::Result<Runtime> {
    Ok(build_runtime_on_store(global, config, metrics, governance)
        .await?
        .0)
}

/// [`build_runtime`], and the store it runs on (`amas serve` asks it for task leases).
pub async fn build_runtime_on_store(
    global: &Global,
    config: Arc<AmasConfig>,
    metrics: Metrics,
    governance: Governance,
) -> anyhow::Result<(Runtime, Store)> {
    secure_data_dir(global)?;
    let store = open_store(global, &config, StoreNeed::Create).await?;
    let providers = ProviderSet::from_config(&config.providers, metrics.clone())
        .context("building model providers")?;
    // Every governance decision goes to the hash-chained audit log in the same database; its
    // checkpoints are signed with the audit key (never the token key) and witnessed outside it.
    let audit_key = AuditKey::load_or_create(&global.data_dir)
        .map_err(|e| UsageError(format!("{}: {e}", e.code())))?;
    let audit_witnesses = audit_witnesses(global, &config)?;
    let runtime = compose::compose(Composition {
        config,
        store: store.shared(),
        providers: &providers,
        metrics,
        governance,
        audit_signer: Arc::new(audit_key.signer()),
        audit_witnesses,
        workspaces: global.data_dir.join("workspaces"),
    })?;
    Ok((runtime, store))
}

/// The witness file `audit.witness.file` names (relative to the data directory); `None` when
/// it is `off`.
pub fn witness_file(global: &Global, config: &AmasConfig) -> Option<PathBuf> {
    config
        .audit
        .witness
        .file
        .as_ref()
        .map(|path| global.data_dir.join(path))
}

/// The witnesses `audit.witness` configures, opened now (a file that cannot be created fails
/// the start, not the first checkpoint).
fn audit_witnesses(
    global: &Global,
    config: &AmasConfig,
) -> anyhow::Result<Vec<Arc<dyn witness::Witness>>> {
    let mut configs = Vec::new();
    if let Some(path) = witness_file(global, config) {
        configs.push(WitnessConfig::File { path });
    }
    if let Some(http) = &config.audit.witness.http {
        configs.push(WitnessConfig::Http {
            url: http.url.clone(),
            timeout: http.timeout,
        });
    }
    configs
        .iter()
        .map(|c| witness::open(c).map_err(|e| UsageError(format!("{}: {e}", e.code())).into()))
        .collect()
}
