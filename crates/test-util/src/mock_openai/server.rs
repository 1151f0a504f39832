//! The mock's HTTP routes: `/v1/chat/completions` plus `/_control/*` for tests that drive the
//! standalone binary from another process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Behaviour;

/// One request the mock received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The body's `model`.
    pub model: String,
    pub body: Value,
    /// Headers, lower-case names, without `authorization`.
    pub headers: BTreeMap<String, String>,
    /// The `authorization` header, kept apart so tests can check the key was sent.
    pub authorization: Option<String>,
    /// When the mock received it (the wall clock, to order it against journal timestamps).
    #[serde(default = "std::time::SystemTime::now")]
    pub received_at: std::time::SystemTime,
}

#[derive(Default)]
struct Data {
    queues: HashMap<String, VecDeque<Behaviour>>,
    defaults: HashMap<String, Behaviour>,
    fallback: Option<Behaviour>,
    requests: Vec<RecordedRequest>,
    /// Tool call ids handed out so far.
    tool_calls: u64,
}

/// The mock's shared state. Cheap to clone.
#[derive(Clone)]
pub struct MockState {
    data: Arc<Mutex<Data>>,
    release: Arc<watch::Sender<u64>>,
    /// Off for benchmarks: a long run would otherwise keep every request body in memory.
    record: bool,
}

impl Default for MockState {
    fn default() -> Self {
        Self {
            data: Arc::default(),
            release: Arc::new(watch::channel(0).0),
            record: true,
        }
    }
}

/// `model` value of the control API that sets the fallback for every model.
pub const ANY_MODEL: &str = "*";

impl MockState {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A mock that answers as usual but keeps no requests ([`Self::requests`] stays empty).
    #[must_use]
    pub fn without_recording() -> Self {
        Self {
            record: false,
            ..Self::default()
        }
    }

    pub fn push(&self, model: &str, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.data()
            .queues
            .entry(model.to_owned())
            .or_default()
            .extend(behaviours);
    }

    pub fn set_default(&self, model: &str, behaviour: Behaviour) {
        let mut data = self.data();
        if model == ANY_MODEL {
            data.fallback = Some(behaviour);
        } else {
            data.defaults.insert(model.to_owned(), behaviour);
        }
    }

    pub fn release_hangs(&self) {
        self.release.send_modify(|generation| *generation += 1);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.data().requests.clone()
    }

    pub fn request_count(&self, model: &str) -> usize {
        self.data()
            .requests
            .iter()
            .filter(|r| r.model == model)
            .count()
    }

    /// The next `count` tool call ids.
    fn tool_call_ids(&self, count: usize) -> Vec<String> {
        let mut data = self.data();
        (0..count)
            .map(|_| {
                data.tool_calls += 1;
                format!("call_{}", data.tool_calls)
            })
            .collect()
    }

    /// Records the request and picks its behaviour: queued first, then the model's default,
    /// then the fallback.
    fn take(&self, request: RecordedRequest) -> Option<Behaviour> {
        let mut data = self.data();
        let model = request.model.as_str();
        if let Some(next) = data.queues.get_mut(model).and_then(VecDeque::pop_front) {
            if self.record {
                data.requests.push(request);
            }
            return Some(next);
        }
        let behaviour = data.defaults.get(model).or(data.fallback.as_ref()).cloned();
        if self.record {
            data.requests.push(request);
        }
        behaviour
    }
}

/// The mock's routes.
pub fn router(state: MockState) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/_control/behaviour", post(configure))
        .route("/_control/requests", get(list_requests))
        .route("/_control/release", post(release))
        .with_state(state)
}

async fn chat_completions(
    State(state): State<MockState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let recorded = RecordedRequest {
        model: model.clone(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        headers: headers
            .iter()
            .filter(|(name, _)| *name != header::AUTHORIZATION)
            .map(|(name, v)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
        received_at: std::time::SystemTime::now(),
    };
    let prompt_tokens = body
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |ms| {
            ms.iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .map(words)
                .sum()
        });
    match state.take(recorded) {
        Some(behaviour) => respond(state, behaviour, model, prompt_tokens).await,
        None => error(
            StatusCode::NOT_FOUND,
            &format!("the mock has no behaviour for model `{model}`"),
            None,
        ),
    }
}

fn respond(
    state: MockState,
    behaviour: Behaviour,
    model: String,
    prompt_tokens: usize,
) -> Pin<Box<dyn Future<Output = Response> + Send>> {
    Box::pin(async move {
        match behaviour {
            Behaviour::Reply(value) => completion(&model, value, prompt_tokens),
            Behaviour::ToolCalls(calls) => {
                let ids = state.tool_call_ids(calls.len());
                tool_calls(&model, calls, ids, prompt_tokens)
            }
            Behaviour::Status(code, retry_after) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                error(status, &format!("mock status {code}"), retry_after)
            }
            Behaviour::Hang => {
                let mut released = state.release.subscribe();
                // Err: the sender is gone, i.e. the mock is shutting down; answer either way.
                let _ = released.changed().await;
                error(StatusCode::SERVICE_UNAVAILABLE, "released", None)
            }
            Behaviour::Delay(ms, then) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                respond(state, *then, model, prompt_tokens).await
            }
        }
    })
}

fn completion(model: &str, value: Value, prompt_tokens: usize) -> Response {
    let content = match value {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let completion_tokens = words(&content);
    Json(json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
    .into_response()
}

fn tool_calls(
    model: &str,
    calls: Vec<(String, Value)>,
    ids: Vec<String>,
    prompt_tokens: usize,
) -> Response {
    let calls: Vec<Value> = calls
        .into_iter()
        .zip(ids)
        .map(|((name, arguments), id)| {
            let arguments = match arguments {
                Value::String(text) => text,
                other => other.to_string(),
            };
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let completion_tokens = calls.len();
    Json(json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": calls},
            "finish_reason": "tool_calls",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }))
    .into_response()
}

fn error(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let body = Json(json!({"error": {"message": message, "type": "mock_error"}}));
    let mut response = (status, body).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Body of `POST /_control/behaviour`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ControlRequest {
    /// A model name, or `*` (only with `default`) for every model.
    pub model: String,
    #[serde(default)]
    pub behaviours: Vec<Behaviour>,
    #[serde(default)]
    pub default: Option<Behaviour>,
}

async fn configure(State(state): State<MockState>, Json(req): Json<ControlRequest>) -> StatusCode {
    state.push(&req.model, req.behaviours);
    if let Some(default) = req.default {
        state.set_default(&req.model, default);
    }
    StatusCode::NO_CONTENT
}

async fn list_requests(State(state): State<MockState>) -> Json<Vec<RecordedRequest>> {
    Json(state.requests())
}

async fn release(State(state): State<MockState>) -> StatusCode {
    state.release_hangs();
    StatusCode::NO_CONTENT
}
