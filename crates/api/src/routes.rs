//! Thin handlers: destructure, call one function from `tasks`, map the result.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use amas_types::{Principal, TenantId};

use crate::AppState;
use crate::clients::Slots;
use crate::dto::{CancelTask, CreateTask, ListQuery, MeView, TaskView};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::tasks;

pub async fn create_task(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<CreateTask>,
) -> Result<Response, ApiError> {
    let trace_id = amas_telemetry::current_trace_id();
    let created = tasks::create_task(&app.runtime, principal, body, trace_id).await?;
    let location = format!("/api/v1/tasks/{}", created.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(created),
    )
        .into_response())
}

pub async fn get_task(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TaskView>, ApiError> {
    let task = tasks::parse_id(&id)?;
    Ok(Json(
        app.runtime
            .reader()
            .read_task(&principal, task)
            .await?
            .into(),
    ))
}

pub async fn list_tasks(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<crate::dto::TaskList>, ApiError> {
    Ok(Json(
        tasks::list_tasks(&app.runtime, &principal, query).await?,
    ))
}

pub async fn cancel_task(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<CancelTask>,
) -> Result<Json<TaskView>, ApiError> {
    let task = tasks::parse_id(&id)?;
    let reason = tasks::cancel_reason(&principal, body.reason)?;
    Ok(Json(
        app.runtime
            .reader()
            .cancel_as(&principal, task, reason)
            .await?
            .into(),
    ))
}

/// The live event streams open per tenant, capped at `server.max_event_streams_per_tenant`.
#[derive(Clone)]
pub struct EventStreams(pub std::sync::Arc<Slots<TenantId>>);

/// The journal as JSON, or live as Server-Sent Events (`Accept: text/event-stream`) until the
/// task ends or the client goes away, after the event a `Last-Event-ID` names when the client
/// resumes (on this API process or any other); a tenant has at most its cap of live streams
/// open.
pub async fn task_events(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(streams): Extension<EventStreams>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let task = tasks::parse_id(&id)?;
    if !wants_stream {
        let released = app.runtime.reader().read_events(&principal, task).await?;
        return Ok(Json(json!({
            "task_id": released.task,
            "events": released.events,
            "redacted_for_clearance": released.redacted_for_clearance,
        }))
        .into_response());
    }
    let after = tasks::resume_after(
        headers
            .get_all("last-event-id")
            .iter()
            .map(axum::http::HeaderValue::as_bytes),
    )?;
    let mut events = app
        .runtime
        .reader()
        .live_events(&principal, task, after)
        .await?;
    // Counted only once the caller may read the task: guessed ids take no slot.
    let slot = streams
        .0
        .try_take(principal.tenant.clone())
        .ok_or(ApiError::TooManyStreams {
            limit: streams.0.limit(),
        })?;
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    let mut stopping = amas_telemetry::tasks::global().stopping();
    amas_telemetry::tasks::spawn("api.sse", async move {
        // The tenant's slot is held until the stream ends, whichever way it ends.
        let _slot = slot;
        loop {
            // At shutdown, or when the client goes away, the stream ends here rather than
            // waiting for an event that may never come.
            let next = tokio::select! {
                e = events.next() => e,
                () = stopping.wait() => return,
                () = tx.closed() => return,
            };
            let Some(e) = next else { return };
            let event = Event::default()
                .event(e.kind)
                .id(e.seq.to_string())
                .data(e.data.to_string());
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

pub async fn list_agents(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let config = app.runtime.reader().read_config(&principal).await?;
    Ok(Json(json!({ "agents": tasks::agents(config) })))
}

pub async fn list_workflows(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let config = app.runtime.reader().read_config(&principal).await?;
    Ok(Json(json!({ "workflows": tasks::workflows(config) })))
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers. Each OIDC issuer's key set is reported too: an identity
/// provider outage does not make AMAS unready (cached keys keep verifying for their lifetime,
/// and the local issuer always), but shows here.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let issuers = app.verifier.health();
    match app.runtime.journal().ping().await {
        Ok(()) => {
            Json(json!({ "status": "ready", "database": "ok", "issuers": issuers })).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check failed: database unreachable.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "not_ready",
                    "database": "unreachable",
                    "issuers": issuers,
                })),
            )
                .into_response()
        }
    }
}

/// The caller as AMAS understood its token: what policy decisions are made about.
pub async fn get_me(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<MeView>, ApiError> {
    app.runtime
        .access()
        .authorize_api(&principal, "me", None)
        .await?;
    Ok(Json(principal.into()))
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic text format (0.0.4)
/// otherwise, as Prometheus client libraries negotiate: `promtool check metrics` and plain
/// `curl` read the classic format.
pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            app.metrics.render(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            app.metrics.render_text(),
        )
            .into_response()
    }
}

pub async fn jwks(State(app): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json((*app.jwks).clone()),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
