//! The HTTP API (axum only): the route table, thin handlers, DTOs, error mapping, OpenAPI.

mod approvals;
mod audit;
mod clients;
mod cors;
mod dto;
mod error;
mod extract;
mod lineage;
mod middleware;
mod ratelimit;
mod replay;
mod routes;
mod server;
mod tasks;
mod timed_io;
mod trace_context;

pub use error::ApiError;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use amas_config::AmasConfig;
use amas_governance::TokenVerifier;
use amas_runtime::Runtime;
use amas_telemetry::Metrics;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub verifier: Arc<TokenVerifier>,
    /// The local issuer's public keys, served at `/.well-known/jwks.json`.
    pub jwks: Arc<serde_json::Value>,
    pub metrics: Metrics,
    pub config: Arc<AmasConfig>,
}

/// The route table.
pub fn router(state: AppState) -> Router {
    let guard = middleware::Guard::new(state.clone());
    let streams = routes::EventStreams(clients::Slots::new(
        state.config.server.max_event_streams_per_tenant,
    ));
    let mut api = Router::new()
        .route(
            "/api/v1/tasks",
            post(routes::create_task).get(routes::list_tasks),
        )
        .route("/api/v1/tasks/{id}", get(routes::get_task))
        .route(
            "/api/v1/tasks/{id}/events",
            get(routes::task_events).layer(axum::Extension(streams)),
        )
        .route("/api/v1/tasks/{id}/lineage", get(lineage::get_lineage))
        .route("/api/v1/tasks/{id}/cancel", post(routes::cancel_task))
        .route("/api/v1/tasks/{id}/replay", post(replay::replay_task))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/approvals", get(approvals::list))
        .route("/api/v1/approvals/{id}", get(approvals::get))
        .route("/api/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/api/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/api/v1/me", get(routes::get_me))
        .route("/api/v1/agents", get(routes::list_agents))
        .route("/api/v1/workflows", get(routes::list_workflows));
    let mut public = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/openapi.json", get(routes::openapi))
        .route("/.well-known/jwks.json", get(routes::jwks));
    if state.config.server.metrics_public {
        public = public.route("/metrics", get(routes::metrics));
    } else {
        api = api.route(
            "/metrics",
            get(routes::metrics).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                middleware::authorize_metrics,
            )),
        );
    }
    let api = api.route_layer(axum::middleware::from_fn_with_state(
        guard.clone(),
        middleware::authenticate,
    ));
    let public = public.route_layer(axum::middleware::from_fn_with_state(
        guard,
        middleware::limit_unauthenticated,
    ));
    let routes = Router::new()
        .merge(api)
        .merge(public)
        .route_layer(axum::middleware::from_fn(middleware::mark_route))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.server.body_limit_bytes));
    let routes = match cors::layer(&state.config.server.cors) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(axum::middleware::from_fn(trace_context::accept_traceparent))
        .with_state(state)
}

/// The probes alone, for a process that serves no API (`amas serve --role worker`):
/// `/healthz`, `/readyz` and, when `server.metrics_public`, `/metrics`; everything else 404.
pub fn probes(state: AppState) -> Router {
    let guard = middleware::Guard::new(state.clone());
    let mut public = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz));
    if state.config.server.metrics_public {
        public = public.route("/metrics", get(routes::metrics));
    }
    public
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            middleware::limit_unauthenticated,
        ))
        .route_layer(axum::middleware::from_fn(middleware::mark_route))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state)
}

/// [`serve`] with the [`probes`] only.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve_probes(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = state.config.server.clone();
    let metrics = state.metrics.clone();
    server::serve(listener, probes(state), &config, &metrics, shutdown).await
}

/// Serves until `shutdown` resolves, then drains in-flight requests (bounded by
/// `server.request_timeout`). Connections get the header size, header count and header read
/// time limits of `server`, the write timeout, and at most `server.max_connections` are open at
/// once, `server.max_connections_per_ip` per client address.
///
/// # Errors
/// An I/O error of the listener.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = state.config.server.clone();
    let metrics = state.metrics.clone();
    server::serve(listener, router(state), &config, &metrics, shutdown).await
}
