//! Per-request middleware, in the order a request meets it: request id and span, timeout,
//! security headers and RED metrics (`observe`); then, on `/api/` routes, authentication.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use amas_telemetry::metrics::{HttpLabels, ReasonLabels, RouteLabels};
use amas_types::Principal;

use crate::AppState;
use crate::error::{ApiError, REQUEST_ID};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn observe(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), ToOwned::to_owned);
    let slot = RouteSlot::default();
    req.extensions_mut().insert(slot.clone());
    // Bounded label: the standard methods, anything else as "other".
    let method = match *req.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS => req.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let span = tracing::info_span!(
        "http.request",
        http.request.method = %method,
        request.id = %request_id,
    );
    let timeout = app.config.server.request_timeout;
    let fut = REQUEST_ID.scope(request_id.clone(), async move {
        match tokio::time::timeout(timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => ApiError::Timeout.into_response(),
        }
    });
    let mut response = fut.instrument(span).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID, v);
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    let status = response.status().as_u16();
    // Bounded label: a matched route template, or "unmatched" for anything else.
    let route = slot
        .0
        .get()
        .cloned()
        .unwrap_or_else(|| "unmatched".to_owned());
    app.metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    app.metrics
        .http_request_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Carries the matched route template from inside the router out to `observe`, which runs
/// before routing and so cannot see `MatchedPath` itself.
#[derive(Clone, Default)]
pub struct RouteSlot(Arc<OnceLock<String>>);

pub async fn mark_route(req: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (
        req.extensions().get::<RouteSlot>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.set(path.as_str().to_owned());
    }
    next.run(req).await
}

/// Verifies the bearer token and attaches the `Principal`; nothing unauthenticated reaches a
/// handler behind this layer.
pub async fn authenticate(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let result = match token {
        Some(t) if !t.is_empty() => app.verifier.verify(t).await,
        _ => Err(amas_governance::AuthError::Missing),
    };
    match result {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => {
            app.metrics
                .auth_failures
                .get_or_create(&ReasonLabels {
                    reason: e.reason_label().to_owned(),
                })
                .inc();
            // A security event: who is unknown, so the record names nobody (and never the
            // token); the code and the path say what was tried.
            let nobody = Principal {
                sub: "anonymous".to_owned(),
                roles: Vec::new(),
                tenant: amas_types::TenantId::default_tenant(),
                auth_method: "none".to_owned(),
            };
            let mut record = amas_store::AuditRecord::new(
                &nobody,
                "authentication",
                "authenticate",
                amas_store::audit::AuditDecision::Deny,
            )
            .with_reason(format!("{}: {}", e.code(), e.reason_label()))
            .with_resource(req.uri().path().to_owned());
            if let Some(trace) = amas_telemetry::current_trace_id() {
                record = record.with_trace_id(trace);
            }
            app.runtime.audit(record).await;
            ApiError::Unauthenticated(e).into_response()
        }
    }
}
