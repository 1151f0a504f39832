//! The one composition root: how a governed runtime is put together from configuration that is
//! already loaded, a store, model providers, a policy engine and the process's keys. The CLI
//! (every command that runs tasks), the API and runtime tests, the benches and replay all build
//! through here, so what they exercise is the production wiring, governance included. What
//! needs the CLI's own arguments (directories, key files) stays in the CLI and comes in as
//! values.
//!
//! It builds the runtime's services once, each with what its job needs, and wires who calls
//! whom: the API and the CLI call [`Admission`], [`Scheduler`], [`Reader`], [`Access`] and
//! [`Retention`]; admission queues through the scheduler; the scheduler hands tasks to step
//! execution; votes the approvals service checked reach their step through the scheduler
//! (the inbox here, commands across processes); the reader delegates
//! cancels to the scheduler and votes to the approvals service. All of them write through the
//! one journal and audit writer and govern through the one pipeline.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use amas_config::AmasConfig;
use amas_dataprotect::{ContentSafety, DataProtector};
use amas_governance::pipeline::Pipeline;
use amas_policy::PolicyEngine;
use amas_providers::ProviderSet;
use amas_store::audit::witness::Witness;
use amas_store::audit::{AuditWriterConfig, CheckpointSigner};
use amas_store::{AuditWriter, GroupCommit, TaskJournal};
use amas_telemetry::Metrics;
use amas_tools::ToolRegistry;

use crate::access::Access;
use crate::admission::Admission;
use crate::approvals::{Approvals, Inbox};
use crate::executor::Executor;
use crate::journal::Journal;
use crate::reader::Reader;
use crate::retention::Retention;
use crate::scheduler::Scheduler;
use crate::{Replayer, Runtime, RuntimeError, Services};

/// What the governance of a process is made of: the pipeline's inputs.
pub struct Governance {
    /// The tools agents may call (the effective `tools` section, plus any a test adds).
    pub tools: ToolRegistry,
    /// Detection, redaction, DLP and classification (the effective `dataprotect` section).
    pub protector: Arc<DataProtector>,
    pub policy: Arc<dyn PolicyEngine>,
    /// The deployment environment policy sees (`--environment`).
    pub environment: String,
    /// The secret keying hash-mode redaction tokens (with each tenant's id).
    pub redact_secret: String,
    /// The content-safety engine; `None` builds the one `content_safety.classifier` selects
    /// (the lexicon, or a moderation endpoint). A test passes a stand-in for the endpoint.
    pub content_safety: Option<ContentSafety>,
}

/// Everything [`compose`] takes.
pub struct Composition<'a> {
    pub config: Arc<AmasConfig>,
    /// The journal and the audit log, committed together.
    pub store: Arc<dyn GroupCommit>,
    pub providers: &'a ProviderSet,
    pub metrics: Metrics,
    pub governance: Governance,
    /// Signs the audit log's checkpoints (the audit key, never the token-signing key).
    pub audit_signer: Arc<dyn CheckpointSigner>,
    /// Where each checkpoint is also written, outside the database (`audit.witness`).
    pub audit_witnesses: Vec<Arc<dyn Witness>>,
    /// Each task gets a workspace directory under it.
    pub workspaces: PathBuf,
}

/// The governed runtime (not started): the pipeline built from `governance`, the store's one
/// group-committing writer for journal appends and audit records, the runtime around both.
/// Call inside the Tokio runtime that will run it (the writer's task starts here).
///
/// # Errors
/// [`RuntimeError::Setup`] when the content-safety engine cannot be built (a moderation
/// endpoint's key is missing) or an agent names a provider the set does not have.
pub fn compose(parts: Composition<'_>) -> Result<Runtime, RuntimeError> {
    let Composition {
        config,
        store,
        providers,
        metrics,
        governance,
        audit_signer,
        audit_witnesses,
        workspaces,
    } = parts;
    let protector = Arc::clone(&governance.protector);
    let pipeline = Arc::new(pipeline(&config, governance, metrics.clone())?);
    let writer_config = AuditWriterConfig {
        checkpoint_every: config.audit.checkpoint_every,
        checkpoint_interval: config.audit.checkpoint_interval,
        witnesses: audit_witnesses,
        ..AuditWriterConfig::default()
    };
    let writer = Arc::new(AuditWriter::start_group(
        Arc::clone(&store),
        audit_signer,
        writer_config,
    ));
    Runtime::new(RuntimeParts {
        config,
        store,
        providers,
        metrics,
        pipeline,
        writer,
        workspaces,
        protector,
    })
}

/// The governance pipeline alone (for commands that decide without running tasks, such as
/// `amas tools call`): policy, tools, data protection and content safety as `governance`
/// says, approver roles from `config`.
///
/// # Errors
/// [`RuntimeError::Setup`] when the content-safety engine cannot be built.
pub fn pipeline(
    config: &AmasConfig,
    governance: Governance,
    metrics: Metrics,
) -> Result<Pipeline, RuntimeError> {
    let Governance {
        tools,
        protector,
        policy,
        environment,
        redact_secret,
        content_safety,
    } = governance;
    let safety = match content_safety {
        Some(safety) => safety,
        None => amas_governance::moderation::content_safety(protector.config()).map_err(|e| {
            RuntimeError::Setup {
                agent: "*".to_owned(),
                reason: format!("content safety: {e}"),
            }
        })?,
    };
    Ok(Pipeline::new(policy, Arc::new(tools), environment, metrics)
        .with_approver_roles(config.approvals.approver_roles.clone())
        .with_data_protector(protector)
        .with_content_safety(Arc::new(safety))
        .with_redact_secret(redact_secret))
}

/// The replayer of a composition: asks governance again as `governance` would decide, from a
/// pipeline of its own (no live rate windows or metrics touched).
///
/// # Errors
/// As [`pipeline`].
pub fn replayer(config: Arc<AmasConfig>, governance: Governance) -> Result<Replayer, RuntimeError> {
    let protector = Arc::clone(&governance.protector);
    let pipeline = pipeline(&config, governance, Metrics::new())?;
    Ok(Replayer::of(&config, &pipeline, &protector))
}

/// Everything a [`Runtime`] is made of. Governance is not optional: there is no runtime
/// without its pipeline and its audit writer. Built by [`compose`] (the one composition root)
/// in production, tests and benches alike.
pub struct RuntimeParts<'a> {
    pub config: Arc<AmasConfig>,
    /// The journal and the audit log, in one store that commits both at once.
    pub store: Arc<dyn GroupCommit>,
    pub providers: &'a ProviderSet,
    pub metrics: Metrics,
    /// The governance pipeline (its policy engine is the one replays ask again; its
    /// content-safety engine screens submissions and model outputs).
    pub pipeline: Arc<Pipeline>,
    /// The store's writer, started with [`AuditWriter::start_group`] on `store`.
    pub writer: Arc<AuditWriter>,
    /// Each task gets a workspace directory under it.
    pub workspaces: PathBuf,
    /// Detection, redaction and classification, as the pipeline's.
    pub protector: Arc<DataProtector>,
}

impl Runtime {
    /// Builds the runtime's services from `parts`; every agent's provider chain is resolved
    /// now, so a bad chain fails at start, not in the middle of a task.
    ///
    /// # Errors
    /// [`RuntimeError::Setup`] when an agent names a provider the set does not have, or when
    /// the writer does not commit the journal (it was not started with `start_group`).
    pub fn new(parts: RuntimeParts<'_>) -> Result<Self, RuntimeError> {
        let RuntimeParts {
            config,
            store,
            providers,
            metrics,
            pipeline,
            writer,
            workspaces,
            protector,
        } = parts;
        let mut chains = BTreeMap::new();
        for (id, agent) in &config.agents {
            let chain = providers
                .chain(&agent.providers)
                .map_err(|e| RuntimeError::Setup {
                    agent: id.clone(),
                    reason: e.to_string(),
                })?;
            chains.insert(id.clone(), chain);
        }
        if !writer.has_journal() {
            return Err(RuntimeError::Setup {
                agent: "*".to_owned(),
                reason: "the audit writer must commit the journal too (AuditWriter::start_group on the runtime's store)".to_owned(),
            });
        }
        let journal_store = Arc::clone(&store) as Arc<dyn TaskJournal>;
        let audit_log = store as Arc<dyn amas_store::AuditLog>;
        // The store's one writer commits the journal's appends too, with the audit records.
        let journal = Arc::new(Journal::new(
            Arc::clone(&journal_store),
            Arc::clone(&writer),
        ));
        let access = Arc::new(Access {
            config: Arc::clone(&config),
            pipeline: Arc::clone(&pipeline),
            metrics: metrics.clone(),
            protector: Arc::clone(&protector),
            audit: Arc::clone(&writer),
        });
        let inbox = Arc::new(Inbox::default());
        let executor = Arc::new(Executor {
            config: Arc::clone(&config),
            journal: Arc::clone(&journal),
            chains,
            metrics: metrics.clone(),
            content_safety: Arc::clone(pipeline.content_safety()),
            pipeline: Arc::clone(&pipeline),
            workspaces: workspaces.clone(),
            protector: Arc::clone(&protector),
            audit: writer,
            inbox: Arc::clone(&inbox),
        });
        let scheduler = Arc::new(Scheduler::new(
            Arc::clone(&journal),
            metrics.clone(),
            executor,
            inbox,
            config.runtime.queue_capacity,
            config.runtime.max_concurrent_tasks,
            &config.scheduling,
        ));
        let approvals = Arc::new(Approvals {
            config: Arc::clone(&config),
            store: Arc::clone(&journal_store),
            access: Arc::clone(&access),
            scheduler: Arc::clone(&scheduler),
        });
        let admission = Admission {
            config: Arc::clone(&config),
            journal: Arc::clone(&journal),
            pipeline: Arc::clone(&pipeline),
            metrics,
            protector: Arc::clone(&protector),
            access: Arc::clone(&access),
            scheduler: Arc::clone(&scheduler),
        };
        let retention = Arc::new(Retention {
            config: Arc::clone(&config),
            store: Arc::clone(&journal_store),
            protector: Arc::clone(&protector),
            audit_log: Arc::clone(&audit_log),
            access: Arc::clone(&access),
            scheduler: Arc::clone(&scheduler),
            workspaces,
        });
        let reader = Reader {
            config: Arc::clone(&config),
            journal,
            access: Arc::clone(&access),
            scheduler: Arc::clone(&scheduler),
            approvals: Arc::clone(&approvals),
            pipeline,
            protector,
            audit_log,
        };
        Ok(Self {
            services: Arc::new(Services {
                config,
                store: journal_store,
                admission,
                scheduler,
                approvals,
                reader,
                access,
                retention,
            }),
        })
    }
}
