//! API errors: one enum, mapped once to status, public code and log level. 5xx bodies hide
//! internals; the detail is logged here, once.

use amas_types::codes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::{error, warn};

use amas_governance::AuthError;
use amas_runtime::RuntimeError;

tokio::task_local! {
    /// The id of the request being handled, for error bodies.
    pub static REQUEST_ID: String;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or a parameter is invalid; `field` names it.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("authentication failed: {0}")]
    Unauthenticated(#[from] AuthError),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    TooLarge,
    #[error("unsupported media type: send Content-Type: application/json")]
    UnsupportedMediaType,
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("request timed out")]
    Timeout,
    /// A token bucket of the caller is empty.
    #[error("too many requests")]
    RateLimited(crate::ratelimit::Verdict),
    /// The JSON body nests arrays and objects deeper than `server.json_max_depth`.
    #[error("body: JSON nesting is deeper than {max} levels")]
    TooDeep { max: usize },
    /// The tenant already has `server.max_event_streams_per_tenant` live event streams open.
    #[error("too many live event streams for the tenant")]
    TooManyStreams { limit: usize },
    /// A live stream's `Last-Event-ID` is not an event id (a seq).
    #[error("Last-Event-ID: {reason}")]
    BadLastEventId { reason: &'static str },
}

impl ApiError {
    /// Whether the message can carry text from the request or a task (so it must be scrubbed).
    fn may_quote_input(&self) -> bool {
        matches!(
            self,
            Self::Invalid { .. } | Self::Unauthenticated(_) | Self::Runtime(_)
        )
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Status, public code and public message: decided here, exhaustively.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Invalid { field, message } => (
                StatusCode::BAD_REQUEST,
                codes::API_INVALID_REQUEST,
                format!("{field}: {message}"),
            ),
            // AMAS could not check the token (identity provider keys never fetched, local
            // key store broken): not the caller's fault, and the detail stays in the log.
            Self::Unauthenticated(e) if !e.is_client_error() => (
                StatusCode::SERVICE_UNAVAILABLE,
                e.code(),
                "authentication is temporarily unavailable; retry later".to_owned(),
            ),
            Self::Unauthenticated(e) => (StatusCode::UNAUTHORIZED, e.code(), e.to_string()),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                codes::API_NOT_FOUND,
                "no such resource".to_owned(),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                codes::API_METHOD_NOT_ALLOWED,
                "method not allowed on this resource".to_owned(),
            ),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::API_BODY_TOO_LARGE,
                "request body is larger than the server accepts".to_owned(),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::API_UNSUPPORTED_MEDIA_TYPE,
                self.to_string(),
            ),
            Self::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                codes::API_REQUEST_TIMEOUT,
                "the request took too long; retry later".to_owned(),
            ),
            Self::RateLimited(v) => (
                StatusCode::TOO_MANY_REQUESTS,
                codes::API_RATE_LIMITED,
                format!(
                    "too many requests: the `{}` rate limit allows {} at once; retry after {}s",
                    v.class.as_str(),
                    v.limit,
                    v.retry_after_secs
                ),
            ),
            Self::TooDeep { max } => (
                StatusCode::BAD_REQUEST,
                codes::API_JSON_TOO_DEEP,
                format!("body: JSON nesting is deeper than {max} levels (server.json_max_depth)"),
            ),
            Self::TooManyStreams { limit } => (
                StatusCode::TOO_MANY_REQUESTS,
                codes::API_TOO_MANY_STREAMS,
                format!(
                    "your tenant has {limit} live event streams open \
                     (server.max_event_streams_per_tenant); close one, or read the events as \
                     JSON, and retry"
                ),
            ),
            Self::BadLastEventId { .. } => (
                StatusCode::BAD_REQUEST,
                codes::API_BAD_LAST_EVENT_ID,
                self.to_string(),
            ),
            Self::Runtime(e) => match e {
                RuntimeError::UnknownTaskType { .. } => {
                    (StatusCode::BAD_REQUEST, e.code(), format!("task_type: {e}"))
                }
                RuntimeError::ContentBlocked { .. } => {
                    (StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string())
                }
                RuntimeError::QueueFull { .. } | RuntimeError::TenantQueueFull { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, e.code(), e.to_string())
                }
                RuntimeError::NotFound(_) => (
                    StatusCode::NOT_FOUND,
                    codes::API_NOT_FOUND,
                    "no such resource".to_owned(),
                ),
                RuntimeError::ShuttingDown => {
                    (StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
                }
                RuntimeError::Denied { .. }
                | RuntimeError::Forbidden { .. }
                | RuntimeError::SelfApproval { .. }
                | RuntimeError::NotAnApprover { .. } => {
                    (StatusCode::FORBIDDEN, e.code(), e.to_string())
                }
                RuntimeError::ApprovalNotFound(_) => (
                    StatusCode::NOT_FOUND,
                    codes::API_NOT_FOUND,
                    "no such resource".to_owned(),
                ),
                RuntimeError::EventBeyondJournal { .. } => (
                    StatusCode::BAD_REQUEST,
                    e.code(),
                    format!("Last-Event-ID: {e}"),
                ),
                RuntimeError::ApprovalSettled { .. }
                | RuntimeError::AlreadyVoted { .. }
                | RuntimeError::VoteTooLate { .. } => {
                    (StatusCode::CONFLICT, e.code(), e.to_string())
                }
                RuntimeError::ApprovalUnavailable { .. } | RuntimeError::CancelPending { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
                }
                // A vote or a write that lost to the task's end (a cancellation): the client's
                // request came too late, nothing failed.
                RuntimeError::Store(amas_store::StoreError::TaskEnded { .. }) => {
                    (StatusCode::CONFLICT, e.code(), e.to_string())
                }
                RuntimeError::Setup { .. } | RuntimeError::Store(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::API_INTERNAL,
                    "internal error; the request id identifies it in the server log".to_owned(),
                ),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        // Messages can quote what the client sent (a task type, a field value) or what a model
        // answered: detected personal data and secrets never go back out in a body or into the
        // log. The other errors are fixed texts, not scanned (a flood of 401s/429s stays cheap).
        let message = if self.may_quote_input() {
            amas_dataprotect::scrub(&message)
        } else {
            message
        };
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        if status.is_server_error() {
            let error = amas_dataprotect::scrub(&self.to_string());
            error!(request.id = %request_id, error = %error, code, "Request failed.");
        } else {
            warn!(request.id = %request_id, code, status = status.as_u16(), "Request rejected.");
        }
        let body = json!({"error": {"code": code, "message": message, "request_id": request_id}});
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthenticated(e) if !e.is_client_error() => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(5_u64));
            }
            Self::Unauthenticated(e) => {
                let value = format!(
                    "Bearer realm=\"amas\", error=\"invalid_token\", error_description=\"{}\"",
                    e.code()
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Self::Runtime(
                RuntimeError::QueueFull {
                    retry_after_secs, ..
                }
                | RuntimeError::TenantQueueFull {
                    retry_after_secs, ..
                },
            ) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Runtime(
                RuntimeError::ShuttingDown
                | RuntimeError::ApprovalUnavailable { .. }
                | RuntimeError::CancelPending { .. },
            )
            | Self::Timeout
            | Self::TooManyStreams { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(5_u64));
            }
            Self::RateLimited(v) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(v.retry_after_secs));
                crate::middleware::rate_limit_headers(headers, v);
            }
            Self::TooDeep { .. }
            | Self::BadLastEventId { .. }
            | Self::Invalid { .. }
            | Self::NotFound
            | Self::MethodNotAllowed
            | Self::TooLarge
            | Self::UnsupportedMediaType
            | Self::Runtime(_) => {}
        }
        response
    }
}
