//! Per-request middleware, in the order a request meets it: request id and span, timeout,
//! security headers and RED metrics (`observe`); then, on `/api/` routes, authentication and
//! the principal's rate limit, and on public routes the client address's rate limit.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use amas_governance::pipeline::SecurityEvent;
use amas_telemetry::metrics::{ClassLabels, HttpLabels, ReasonLabels, RouteLabels};
use amas_types::Principal;

use crate::AppState;
use crate::error::{ApiError, REQUEST_ID};
use crate::ratelimit::{RateLimiter, RouteClass, Verdict};

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
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if app.config.server.tls.is_some() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
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

/// What the security middleware needs besides the app state: the rate limiter.
#[derive(Clone)]
pub struct Guard {
    pub app: AppState,
    pub limiter: Arc<RateLimiter>,
}

impl Guard {
    pub fn new(app: AppState) -> Self {
        let limiter = Arc::new(RateLimiter::new(app.config.server.rate_limits.clone()));
        Self { app, limiter }
    }
}

/// Verifies the bearer token, charges the principal's bucket for the route's class and
/// attaches the `Principal`; nothing unauthenticated reaches a handler behind this layer.
///
/// A token verified before is recognised without a signature check. Any other token costs
/// its client address one request of the (stricter) unauthenticated limit *before* its
/// signature is checked, given back if it verifies: a client sending garbage or forged tokens
/// pays for each, and once its bucket is empty it is refused without any verification work.
pub async fn authenticate(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let app = &guard.app;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let ip = peer_ip(&req);
    let mut charged = false;
    let result = match token {
        None => Err(amas_governance::AuthError::Missing),
        Some(t) => match app.verifier.recall(t).await {
            Ok(Some(principal)) => Ok(principal),
            Err(e) => Err(e),
            Ok(None) => {
                if guard.limiter.enabled() {
                    let v = guard.limiter.check_address(ip);
                    if !v.allowed {
                        return refuse(app, &anonymous(), v, req.uri().path()).await;
                    }
                    charged = true;
                }
                let verified = app.verifier.verify(t).await;
                if charged && verified.is_ok() {
                    guard.limiter.refund_address(ip);
                }
                verified
            }
        },
    };
    match result {
        Ok(principal) => {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str);
            let class = RouteClass::of(req.method(), route);
            let verdict = guard
                .limiter
                .enabled()
                .then(|| guard.limiter.check_principal(&principal, class));
            if let Some(v) = verdict
                && !v.allowed
            {
                return refuse(app, &principal, v, req.uri().path()).await;
            }
            req.extensions_mut().insert(principal);
            let mut response = next.run(req).await;
            if let Some(v) = verdict {
                rate_limit_headers(response.headers_mut(), &v);
            }
            response
        }
        Err(e) => {
            app.metrics
                .auth_failures
                .get_or_create(&ReasonLabels {
                    reason: e.reason_label().to_owned(),
                })
                .inc();
            let nobody = anonymous();
            if guard.limiter.enabled() && !charged {
                let v = guard.limiter.check_address(ip);
                if !v.allowed {
                    return refuse(app, &nobody, v, req.uri().path()).await;
                }
            }
            // A security event: who is unknown, so the record names nobody (and never the
            // token); the code and the path say what was tried.
            app.runtime
                .access()
                .security_event(
                    &nobody,
                    SecurityEvent::AuthenticationFailed {
                        code: e.code(),
                        reason: e.reason_label(),
                        path: req.uri().path(),
                    },
                )
                .await;
            ApiError::Unauthenticated(e).into_response()
        }
    }
}

/// Policy for `/metrics` when it needs a token (`metrics.read`), in front of a handler that
/// knows nothing about principals.
pub async fn authorize_metrics(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let Some(principal) = req.extensions().get::<Principal>() else {
        return ApiError::Unauthenticated(amas_governance::AuthError::Missing).into_response();
    };
    if let Err(e) = app
        .runtime
        .access()
        .authorize_api(principal, "metrics.read", None)
        .await
    {
        return ApiError::from(e).into_response();
    }
    next.run(req).await
}

/// Charges requests to public routes (health, readiness, OpenAPI, JWKS, public metrics) to the
/// client's address.
pub async fn limit_unauthenticated(
    State(guard): State<Guard>,
    req: Request,
    next: Next,
) -> Response {
    if !guard.limiter.enabled() {
        return next.run(req).await;
    }
    let v = guard.limiter.check_address(peer_ip(&req));
    if !v.allowed {
        return refuse(&guard.app, &anonymous(), v, req.uri().path()).await;
    }
    let mut response = next.run(req).await;
    rate_limit_headers(response.headers_mut(), &v);
    response
}

/// A 429: counted every time, audited once per flood (the first refusal after an allowed
/// request), never with the token.
async fn refuse(app: &AppState, who: &Principal, v: Verdict, path: &str) -> Response {
    app.metrics
        .rate_limited
        .get_or_create(&ClassLabels {
            class: v.class.as_str().to_owned(),
        })
        .inc();
    if v.first_refusal {
        app.runtime
            .access()
            .security_event(
                who,
                SecurityEvent::RateLimited {
                    class: v.class.as_str(),
                    path,
                },
            )
            .await;
    }
    ApiError::RateLimited(v).into_response()
}

/// The `RateLimit-*` headers (IETF httpapi draft): bucket size, requests left, seconds until
/// the bucket is full again, and the policy (`limit;w=seconds one full bucket lasts`).
pub fn rate_limit_headers(headers: &mut HeaderMap, v: &Verdict) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(v.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(v.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(v.reset_secs));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w={}", v.limit, v.window_secs)) {
        headers.insert(RATELIMIT_POLICY, policy);
    }
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The peer's address (not a forwarded header, which the client controls). Without one (a test
/// calling the router directly) every request counts as the same unknown client.
fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Who an unauthenticated request is, for the audit log.
fn anonymous() -> Principal {
    Principal {
        sub: "anonymous".to_owned(),
        roles: Vec::new(),
        tenant: amas_types::TenantId::default_tenant(),
        auth_method: "none".to_owned(),
        issuer: "none".to_owned(),
    }
}
