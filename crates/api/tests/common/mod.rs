//! What every API test builds its app from: a configuration whose agents are answered by the
//! scripted model, a SQLite store in a temporary directory, the local issuer there, the
//! embedded policy bundle, composed into a runtime by the production composition root
//! (`amas_runtime::compose`). Each test adds what it needs (a real server) around it.

#![allow(
    dead_code,
    reason = "compiled into several test binaries, each using a subset: an expect would be \
              unfulfilled in those using all (allow_attributes checks outer attributes only)"
)]

pub mod server;

use std::sync::Arc;
use std::time::Duration;

use amas_api::AppState;
use amas_config::{AmasConfig, BreakerConfig, LoadOptions};
use amas_governance::{KeySource, LocalIssuer, TokenVerifier};
use amas_policy::{PolicyEngine, RegoPolicyEngine};
use amas_providers::scripted::{Script, ScriptedProvider};
use amas_providers::{ModelProvider, ProviderSet};
use amas_runtime::Runtime;
use amas_runtime::compose::{Composition, Governance, compose};
use amas_store::{AuditLog, SqliteStore, TaskJournal};
use amas_telemetry::Metrics;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The scripted answers of a research report: research, analysis, synthesis, one each.
pub const RESEARCH_SCRIPT: &str = r#"
research: [{json: {findings: ["f"], summary: "s"}}]
analysis: [{json: {insights: ["i"], risks: []}}]
synthesis: [{json: {title: "t", report: "r"}}]
"#;

/// A request to `uri`: a Bearer `token` if given, then `headers`, then `body` as JSON if given.
pub fn request(
    method: Method,
    uri: &str,
    token: Option<&str>,
    headers: &[(HeaderName, &str)],
    body: Option<Value>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    let body = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    req.body(body).expect("request")
}

/// `req` through `router` (tower `oneshot`): the status, headers and whole body (which must
/// end within 30 s).
pub async fn send(router: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = router
        .clone()
        .oneshot(req)
        .await
        .expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("the body ends")
        .expect("the body reads")
        .to_bytes();
    (status, headers, bytes)
}

/// [`request`] then [`send`].
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    headers: &[(HeaderName, &str)],
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Bytes) {
    send(router, request(method, uri, token, headers, body)).await
}

/// The embedded configuration with every agent on the scripted provider, which stands in for
/// a local model: trusted with every classification level (`providers.scripted.trusted_for`),
/// so the embedded model-call policy allows it whatever the prompt carries.
pub fn scripted_config() -> AmasConfig {
    let mut config = amas_config::load(&LoadOptions::default()).expect("embedded config");
    for agent in config.agents.values_mut() {
        agent.providers = vec!["scripted".into()];
    }
    config.provider_trust.insert(
        "scripted".into(),
        ["public", "internal", "confidential", "restricted"]
            .map(str::to_owned)
            .to_vec(),
    );
    config
}

pub struct Parts {
    pub dir: tempfile::TempDir,
    pub config: Arc<AmasConfig>,
    pub metrics: Metrics,
    pub store: Arc<SqliteStore>,
    pub journal: Arc<dyn TaskJournal>,
    pub issuer: Arc<LocalIssuer>,
    pub policy: Arc<dyn PolicyEngine>,
    pub providers: ProviderSet,
}

/// The pieces for `config`, its scripted model answering from `script`.
pub async fn parts(config: AmasConfig, script: &str) -> Parts {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let scripted: Arc<dyn ModelProvider> = Arc::new(ScriptedProvider::from_script(
        "scripted",
        Script::parse(script).expect("script"),
    ));
    let providers = ProviderSet::new(metrics.clone()).with_provider(
        "scripted",
        scripted,
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(1),
        },
    );
    let store = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
    let journal: Arc<dyn TaskJournal> = Arc::clone(&store) as Arc<dyn TaskJournal>;
    let issuer = Arc::new(
        LocalIssuer::load_or_create(dir.path(), &config.auth.issuer, &config.auth.audience)
            .expect("local issuer"),
    );
    let policy: Arc<dyn PolicyEngine> =
        Arc::new(RegoPolicyEngine::embedded().expect("embedded policies"));
    Parts {
        dir,
        config,
        metrics,
        store,
        journal,
        issuer,
        policy,
        providers,
    }
}

impl Parts {
    /// The runtime on these parts as production composes it (`amas_runtime::compose`): the
    /// embedded policy bundle, tool registry and data protection, the store's group-committing
    /// audit writer with checkpoints signed by the audit key there. Not started.
    pub fn runtime(&self) -> Runtime {
        compose(Composition {
            config: Arc::clone(&self.config),
            store: Arc::clone(&self.store) as Arc<dyn amas_store::GroupCommit>,
            providers: &self.providers,
            metrics: self.metrics.clone(),
            governance: Governance {
                tools: amas_tools::ToolRegistry::load(None).expect("embedded tools"),
                protector: amas_dataprotect::DataProtector::shared_embedded()
                    .expect("embedded data protection"),
                policy: Arc::clone(&self.policy),
                environment: "development".to_owned(),
                redact_secret: amas_governance::pipeline::DEFAULT_REDACT_SECRET.to_owned(),
                content_safety: None,
            },
            audit_signer: Arc::new(
                amas_governance::AuditKey::load_or_create(self.dir.path())
                    .expect("audit key")
                    .signer(),
            ),
            audit_witnesses: Vec::new(),
            workspaces: self.dir.path().join("workspaces"),
        })
        .expect("runtime composes")
    }

    /// The audit log behind the runtime (the store), to look behind the API.
    pub fn audit_log(&self) -> Arc<dyn AuditLog> {
        Arc::clone(&self.store) as Arc<dyn AuditLog>
    }

    /// The app state around `runtime`: tokens of the local issuer verify.
    pub fn state(&self, runtime: Runtime) -> AppState {
        let sources: Vec<Arc<dyn KeySource>> = vec![Arc::clone(&self.issuer) as Arc<dyn KeySource>];
        AppState {
            runtime,
            verifier: Arc::new(TokenVerifier::new(
                sources,
                self.config.auth.audience.clone(),
                Duration::from_secs(5),
            )),
            jwks: Arc::new(self.issuer.jwks()),
            metrics: self.metrics.clone(),
            config: Arc::clone(&self.config),
        }
    }
}
