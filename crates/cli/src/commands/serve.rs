//! `amas serve`: load config, init telemetry, build state, resume unfinished tasks, serve until
//! a signal, drain. `--role` splits the work between processes on PostgreSQL: `api` processes
//! accept and read, `worker` processes claim and run tasks under leases, `all` does both.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{info, warn};

use amas_api::AppState;
use amas_governance::LocalIssuer;
use amas_governance::auth::verifier_from_config;
use amas_telemetry::Metrics;

use amas_runtime::{LeaseSettings, Runtime};
use amas_store::Store;

use crate::args::{Global, Role, ServeArgs};
use crate::bootstrap::{
    Loaded, UsageError, build_policy, build_runtime_on_store, data_protector, governance,
    init_telemetry, load,
};

/// How long running tasks get to reach a pause at shutdown.
const DRAIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the other background tasks (SSE streams, the retention job, JWKS refresh,
/// policy-reload audits) get to finish once told to stop; the ones left are aborted and named.
const TASKS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(global: &Global, args: ServeArgs) -> anyhow::Result<u8> {
    let mut loaded = load(global)?;
    if let Some(listen) = args.listen {
        loaded.config.server.listen = listen;
    }
    let config_hash = loaded.sha256();
    let Loaded {
        config,
        tools,
        dataprotect,
    } = loaded;
    let config = Arc::new(config);
    let _telemetry = init_telemetry(global, "info")?;
    let metrics = Metrics::new();
    let (policy, policy_watch) = build_policy(global)?;
    let protector = data_protector(dataprotect)?;
    let governance = governance(global, tools, protector, Arc::clone(&policy))?;
    let (runtime, store) =
        build_runtime_on_store(global, Arc::clone(&config), metrics.clone(), governance).await?;
    let worker = assign_role(&runtime, &store, args.role, &config.store.leases)?;
    // Its SSE clients see the steps of tasks that workers run, as they commit.
    if args.role.serves_api()
        && let Some(listener) = store.commit_listener()
    {
        runtime.follow_commits(listener);
    }
    policy_watch.audit_to(&runtime, &config_hash).await;
    let issuer = Arc::new(LocalIssuer::load_or_create(
        &global.data_dir,
        &config.auth.issuer,
        &config.auth.audience,
    )?);
    let jwks = Arc::new(issuer.jwks());
    // OIDC issuers' key sets start loading in the background; until then their tokens get
    // 503 AMAS-AUTH-0015 and /readyz shows why.
    let verifier = Arc::new(verifier_from_config(&config.auth, issuer)?);
    runtime.scheduler().start().await;
    runtime.scheduler().recover().await?;
    // Tracked: it stops with the other background tasks at shutdown.
    let _retention = runtime.retention().spawn();
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let local = listener.local_addr()?;
    info!(
        listen = %local,
        role = args.role.as_str(),
        worker = worker.as_deref().unwrap_or("-"),
        data_dir = %global.data_dir.display(),
        store = %amas_store::location(&config.store, &global.data_dir),
        "AMAS is serving."
    );
    // Tests and scripts read the bound address (the port may be 0 in config) from stdout.
    println!("listening on {local}");
    let state = AppState {
        runtime: runtime.clone(),
        verifier,
        jwks,
        metrics,
        config,
    };
    if args.role.serves_api() {
        amas_api::serve(listener, state, shutdown_signal()).await?;
    } else {
        amas_api::serve_probes(listener, state, shutdown_signal()).await?;
    }
    // Running tasks stop (they resume at the next start), then every other tracked background
    // task, before the audit log closes: the records they queued are committed, not lost.
    runtime.scheduler().drain(DRAIN_PATIENCE).await;
    let tasks = amas_telemetry::tasks::global()
        .shutdown(TASKS_PATIENCE)
        .await;
    if !tasks.abandoned.is_empty() {
        warn!(
            tasks = ?tasks.abandoned,
            finished = tasks.finished,
            "Background tasks did not finish in time; abandoned."
        );
    }
    runtime.access().close_audit().await;
    info!("AMAS stopped serving; unfinished tasks resume at the next start.");
    Ok(0)
}

/// Where this process's tasks come from, by `role`: its own queue (`all` on SQLite), leases
/// claimed from PostgreSQL (`worker`, `all`), or nowhere (`api`); on PostgreSQL, votes and
/// cancels are relayed through the database. Returns the worker's name when it claims.
fn assign_role(
    runtime: &Runtime,
    store: &Store,
    role: Role,
    leases: &amas_config::LeaseConfig,
) -> anyhow::Result<Option<String>> {
    let Some(claims) = store.leases() else {
        if role != Role::All {
            return Err(UsageError(format!(
                "--role {} needs PostgreSQL (set AMAS_DATABASE_URL): the embedded SQLite store \
                 runs API and tasks in one process (--role all)",
                role.as_str()
            ))
            .into());
        }
        return Ok(None);
    };
    // The database is the queue: admission counts there and every role reports its metrics.
    if let Some(queue) = store.queue() {
        runtime.scheduler().queue_in(queue);
    }
    // Votes and cancels reach the worker running the task, whichever process receives them.
    if let Some(commands) = store.commands() {
        runtime
            .scheduler()
            .relay_commands(commands, Arc::clone(&claims), leases.ttl);
    }
    if role.runs_tasks() {
        Ok(Some(
            runtime
                .scheduler()
                .claim_from(claims, LeaseSettings::from(leases)),
        ))
    } else {
        runtime.scheduler().run_elsewhere();
        Ok(None)
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
