//! What authentication and API policy add to a request: an authenticated
//! `GET /api/v1/tasks/{id}` through the real router (token verification, rate limit, Rego
//! `task.read` with the task as resource), against the same read through a router without them,
//! in the same run, interleaved so both see the same machine. Prints requests per second and
//! per-request latency percentiles of each, the added p50, and verification + API policy alone
//! for a token seen before (remembered) and a new one (target: under 50 us p50).
//!
//! Run: `cargo bench -p amas-api --bench api_auth` (`AMAS_BENCH_REQUESTS=N` per round).

#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary reports on stdout and fails loudly"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;

use amas_api::AppState;
use amas_config::{BreakerConfig, LoadOptions, RateLimit};
use amas_governance::{KeySource, LocalIssuer, TokenVerifier};
use amas_providers::scripted::{Script, ScriptedProvider};
use amas_providers::{ModelProvider, ProviderSet};
use amas_runtime::Runtime;
use amas_runtime::compose::{Composition, Governance, compose};
use amas_store::SqliteStore;
use amas_telemetry::Metrics;
use amas_types::{Principal, TaskId, TaskSpec, TenantId};

const ROUNDS: usize = 5;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let per_round: usize = std::env::var("AMAS_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = amas_config::load(&LoadOptions::default()).unwrap();
    for agent in config.agents.values_mut() {
        agent.providers = vec!["scripted".into()];
    }
    // Limits far above what the benchmark sends: the limiter runs, never refuses.
    let wide = RateLimit {
        per_minute: 1_000_000,
        burst: 100_000,
    };
    let limits = &mut config.server.rate_limits;
    (limits.read, limits.write, limits.stream, limits.admin) = (wide, wide, wide, wide);
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let scripted: Arc<dyn ModelProvider> = Arc::new(ScriptedProvider::from_script(
        "scripted",
        Script::parse("research: [{json: {findings: [\"f\"], summary: \"s\"}}]").unwrap(),
    ));
    let providers = ProviderSet::new(metrics.clone()).with_provider(
        "scripted",
        scripted,
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(1),
        },
    );
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let policy: Arc<dyn amas_policy::PolicyEngine> =
        Arc::new(amas_policy::RegoPolicyEngine::embedded().unwrap());
    let issuer = Arc::new(
        LocalIssuer::load_or_create(dir.path(), &config.auth.issuer, &config.auth.audience)
            .unwrap(),
    );
    // The production composition: governance and the audit writer are part of the runtime.
    let runtime = compose(Composition {
        config: Arc::clone(&config),
        store,
        providers: &providers,
        metrics: metrics.clone(),
        governance: Governance {
            tools: amas_tools::ToolRegistry::load(None).unwrap(),
            protector: amas_dataprotect::DataProtector::shared_embedded().unwrap(),
            policy,
            environment: "development".to_owned(),
            redact_secret: amas_governance::pipeline::DEFAULT_REDACT_SECRET.to_owned(),
            content_safety: None,
        },
        audit_signer: Arc::new(amas_store::audit::conformance::test_signer()),
        audit_witnesses: Vec::new(),
        workspaces: dir.path().join("workspaces"),
    })
    .unwrap();
    let sources: Vec<Arc<dyn KeySource>> = vec![Arc::clone(&issuer) as Arc<dyn KeySource>];
    let verifier = Arc::new(TokenVerifier::new(
        sources,
        config.auth.audience.clone(),
        Duration::from_secs(5),
    ));
    let principal = Principal {
        sub: "alice".to_owned(),
        roles: vec!["submitter".to_owned()],
        tenant: TenantId("acme".to_owned()),
        auth_method: "local_jwt".to_owned(),
        issuer: "amas-local".to_owned(),
    };
    let spec: TaskSpec = serde_json::from_value(
        serde_json::json!({"task_type": "research_report", "title": "t", "description": "d"}),
    )
    .unwrap();
    let submitted = runtime
        .admission()
        .submit(spec, principal.clone(), None)
        .await
        .unwrap();
    let id = submitted.task_id;
    let token = issuer
        .mint(
            "alice",
            &principal.roles,
            Some("acme"),
            Duration::from_secs(3600),
        )
        .unwrap();
    let state = AppState {
        runtime: runtime.clone(),
        verifier: Arc::clone(&verifier),
        jwks: Arc::new(issuer.jwks()),
        metrics,
        config,
    };
    let secured = amas_api::router(state);
    let bare = Router::new()
        .route("/api/v1/tasks/{id}", get(bare_get_task))
        .with_state(runtime.clone());
    let uri = format!("/api/v1/tasks/{id}");

    // Warm up both paths (and check they answer the same thing).
    for _ in 0..500 {
        one(&secured, &uri, Some(&token)).await;
        one(&bare, &uri, None).await;
    }
    let mut with = Vec::with_capacity(per_round * ROUNDS);
    let mut without = Vec::with_capacity(per_round * ROUNDS);
    let (mut with_total, mut without_total) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..per_round {
            without.push(one(&bare, &uri, None).await);
        }
        without_total += started.elapsed();
        let started = Instant::now();
        for _ in 0..per_round {
            with.push(one(&secured, &uri, Some(&token)).await);
        }
        with_total += started.elapsed();
    }
    // The two stages alone, for the record.
    let mut verify = Vec::with_capacity(per_round);
    let mut decide = Vec::with_capacity(per_round);
    let resource = amas_runtime::ApiResource {
        tenant: &principal.tenant,
        owner: &principal.sub,
        owner_issuer: &principal.issuer,
    };
    for _ in 0..per_round {
        let t = Instant::now();
        let p = verifier.verify(&token).await.unwrap();
        verify.push(t.elapsed());
        let t = Instant::now();
        runtime
            .access()
            .authorize_api(&p, "task.read", Some(resource))
            .await
            .unwrap();
        decide.push(t.elapsed());
    }
    // A token seen for the first time: the full check (signature, claims), no remembered
    // verification to lean on.
    let fresh: Vec<String> = (0..per_round)
        .map(|i| {
            issuer
                .mint(
                    &format!("user-{i}"),
                    &principal.roles,
                    Some("acme"),
                    Duration::from_secs(3600),
                )
                .unwrap()
        })
        .collect();
    let mut first_sight = Vec::with_capacity(per_round);
    for t in &fresh {
        let started = Instant::now();
        verifier.verify(t).await.unwrap();
        first_sight.push(started.elapsed());
    }
    let n = with.len();
    let rps = |total: Duration| n as f64 / total.as_secs_f64();
    println!("GET /api/v1/tasks/{{id}} via tower oneshot, {n} requests each, interleaved rounds");
    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10}",
        "variant", "req/s", "p50 us", "p90 us", "p99 us"
    );
    report("without auth + policy", rps(without_total), &mut without);
    report("with auth + policy", rps(with_total), &mut with);
    report("  token verification (seen)", 0.0, &mut verify);
    report("  token verification (new)", 0.0, &mut first_sight);
    report("  api policy (task.read)", 0.0, &mut decide);
    let added = micros(pct(&with, 50)) - micros(pct(&without, 50));
    println!(
        "added latency p50: {added:.1} us (the whole middleware stack: request span, rate limit, \
         security headers, verification and policy)"
    );
    let stages = micros(pct(&verify, 50)) + micros(pct(&decide, 50));
    let stages_new = micros(pct(&first_sight, 50)) + micros(pct(&decide, 50));
    println!(
        "verification + API policy p50: {stages:.1} us for a token seen before, \
         {stages_new:.1} us for a new one (target < 50 us)"
    );
}

async fn one(router: &Router, uri: &str, token: Option<&str>) -> Duration {
    let mut req = Request::builder().uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Body::empty()).unwrap();
    let started = Instant::now();
    let response = router.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    took
}

/// The same read without authentication, rate limiting or policy.
async fn bare_get_task(
    State(runtime): State<Runtime>,
    Path(id): Path<String>,
) -> Result<axum::Json<amas_types::TaskState>, StatusCode> {
    let id: TaskId = id.parse().map_err(|_| StatusCode::NOT_FOUND)?;
    match runtime.reader().state(id).await {
        Ok(Some(state)) => Ok(axum::Json(state)),
        Ok(None) => Err(StatusCode::NOT_FOUND),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(name: &str, rps: f64, samples: &mut [Duration]) {
    samples.sort_unstable();
    let rps = if rps > 0.0 {
        format!("{rps:.0}")
    } else {
        "-".to_owned()
    };
    println!(
        "{:<28} {:>10} {:>10.1} {:>10.1} {:>10.1}",
        name,
        rps,
        micros(pct(samples, 50)),
        micros(pct(samples, 90)),
        micros(pct(samples, 99))
    );
}
