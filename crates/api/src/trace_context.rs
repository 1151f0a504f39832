//! W3C Trace Context from API callers: a valid `traceparent` makes the request's span a child
//! of the caller's, so the request, the task it submits and its audit records all carry the
//! caller's trace id. An invalid header is ignored (a new trace starts), as the spec says.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use amas_telemetry::propagation::{RemoteParent, TRACEPARENT, TRACESTATE};

/// Runs the rest of the stack (from the request span on) inside the caller's trace context.
pub async fn accept_traceparent(req: Request, next: Next) -> Response {
    // The borrow of the request ends here, so the future stays `Send`.
    let parent = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        RemoteParent::from_headers(header(TRACEPARENT), header(TRACESTATE))
    };
    match parent {
        Some(parent) => parent.scope(next.run(req)).await,
        None => next.run(req).await,
    }
}
