//! The OpenAI-compatible backend: `POST {base_url}/chat/completions` with structured output,
//! per-attempt timeouts and retries (backoff with jitter, `Retry-After`) on transient failures.

mod retry;
mod wire;

use std::time::{Duration, SystemTime};

use amas_config::OpenAiConfig;
use amas_types::Usage;
use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use crate::{ChatRequest, ChatResponse, ModelProvider, ProviderError, ToolCall};

/// A chat-completions server (OpenAI, vLLM, llama.cpp server, Ollama, ...).
pub struct OpenAiProvider {
    name: String,
    model: String,
    endpoint: String,
    /// `None`: the server needs no key (a local server).
    api_key: Option<SecretString>,
    client: reqwest::Client,
    timeout: Duration,
    max_retries: u32,
    /// Longest `Retry-After` slept in the call; beyond it the call fails at once as rate
    /// limited (with the wait), and the step parks its task rather than hold its slot.
    max_retry_after: Duration,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("name", &self.name)
            .field("model", &self.model)
            .field("endpoint", &self.endpoint)
            .field("has_api_key", &self.api_key.is_some())
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
enum Attempt {
    Done(ChatResponse),
    /// Worth another try, after the server's `Retry-After` if it sent one.
    Retryable {
        error: ProviderError,
        retry_after: Option<Duration>,
    },
    Fatal(ProviderError),
}

impl OpenAiProvider {
    /// Reads the API key from the environment variable the config names.
    ///
    /// # Errors
    /// [`ProviderError::Config`] when that variable is unset or empty, or the HTTP client
    /// cannot be built.
    pub fn new(name: &str, config: &OpenAiConfig) -> Result<Self, ProviderError> {
        let api_key = match &config.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.is_empty() => Some(SecretString::from(key)),
                _ => {
                    return Err(ProviderError::Config {
                        provider: name.to_owned(),
                        reason: format!("the API key variable {var} is not set"),
                    });
                }
            },
        };
        Self::with_api_key(name, config, api_key)
    }

    /// Like [`Self::new`] with the key given directly (`api_key_env` is ignored).
    ///
    /// # Errors
    /// [`ProviderError::Config`] when the HTTP client cannot be built.
    pub fn with_api_key(
        name: &str,
        config: &OpenAiConfig,
        api_key: Option<SecretString>,
    ) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| ProviderError::Config {
                provider: name.to_owned(),
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            name: name.to_owned(),
            model: config.model.clone(),
            endpoint: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            api_key,
            client,
            timeout: config.timeout,
            max_retries: config.max_retries,
            max_retry_after: config.max_retry_after,
        })
    }

    async fn attempt(&self, body: &serde_json::Value, request: &ChatRequest) -> Attempt {
        let mut builder = self.client.post(&self.endpoint).json(body);
        // The model call's span, so the provider (or a gateway before it) joins the trace.
        for (name, value) in amas_telemetry::propagation::outbound_headers() {
            builder = builder.header(name, value);
        }
        if let Some(key) = &self.api_key {
            // bearer_auth marks the header sensitive, so it is redacted from reqwest's Debug output.
            builder = builder.bearer_auth(key.expose_secret());
        }
        let exchange = async {
            let response = builder.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Attempt::Retryable {
                error: self.timed_out(),
                retry_after: None,
            },
            Ok(Err(e)) if e.is_timeout() => Attempt::Retryable {
                error: self.timed_out(),
                retry_after: None,
            },
            Ok(Err(e)) => Attempt::Retryable {
                error: ProviderError::Unavailable {
                    provider: self.name.clone(),
                    reason: error_chain(&e.without_url()),
                },
                retry_after: None,
            },
            Ok(Ok((status, headers, bytes))) => self.classify(status, &headers, &bytes, request),
        }
    }

    fn classify(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        request: &ChatRequest,
    ) -> Attempt {
        let provider = self.name.clone();
        if status.is_success() {
            return match self.parse(body, request) {
                Ok(response) => Attempt::Done(response),
                Err(reason) => Attempt::Fatal(ProviderError::BadResponse { provider, reason }),
            };
        }
        let message =
            wire::error_message(body, self.api_key.as_ref().map(ExposeSecret::expose_secret));
        let reason = format!("HTTP {}: {message}", status.as_u16());
        let retry_after = retry::retry_after(headers, SystemTime::now());
        if status == StatusCode::TOO_MANY_REQUESTS {
            Attempt::Retryable {
                error: ProviderError::RateLimited {
                    provider,
                    retry_after,
                },
                retry_after,
            }
        } else if status.is_server_error() {
            Attempt::Retryable {
                error: ProviderError::Unavailable { provider, reason },
                // Only 503 carries a meaningful Retry-After among the 5xx.
                retry_after: retry_after.filter(|_| status == StatusCode::SERVICE_UNAVAILABLE),
            }
        } else {
            Attempt::Fatal(ProviderError::BadResponse { provider, reason })
        }
    }

    fn parse(&self, body: &[u8], request: &ChatRequest) -> Result<ChatResponse, String> {
        let completion: wire::Completion = serde_json::from_slice(body)
            .map_err(|e| format!("the answer is not a chat completion: {e}"))?;
        let message = completion
            .choices
            .into_iter()
            .next()
            .map(|c| c.message)
            .ok_or("the answer has no choices")?;
        let tool_calls: Vec<ToolCall> = message
            .tool_calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| call.into_tool_call(crate::tool_call_id(&request.messages, i)))
            .collect();
        let content = match (message.content, message.refusal) {
            (Some(content), _) => content,
            // Only tool calls: the text part is legitimately absent.
            (None, _) if !tool_calls.is_empty() => String::new(),
            (None, Some(refusal)) => return Err(format!("the model refused: {refusal}")),
            (None, None) => return Err("the answer has no content".into()),
        };
        let usage = completion.usage.map_or(Usage::default(), |u| Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
        });
        Ok(ChatResponse {
            provider: self.name.as_str().into(),
            model: completion.model.unwrap_or_else(|| self.model.clone()),
            content,
            usage,
            tool_calls,
        })
    }

    fn timed_out(&self) -> ProviderError {
        ProviderError::Timeout {
            provider: self.name.clone(),
            after: self.timeout,
        }
    }
}

/// An error with its causes ("error sending request: connection refused"), since reqwest's
/// top-level message alone says little.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl ModelProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = wire::request_body(&self.model, request);
        let mut retries = 0;
        loop {
            let (error, retry_after) = match self.attempt(&body, request).await {
                Attempt::Done(response) => return Ok(response),
                Attempt::Fatal(error) => return Err(error),
                Attempt::Retryable { error, retry_after } => (error, retry_after),
            };
            if retries >= self.max_retries {
                return Err(error);
            }
            let delay = match retry_after {
                Some(wait) if wait > self.max_retry_after => {
                    return Err(ProviderError::RateLimited {
                        provider: self.name.clone(),
                        retry_after: Some(wait),
                    });
                }
                Some(wait) => wait,
                None => retry::backoff(retries),
            };
            tracing::debug!(
                gen_ai.provider = %self.name,
                retry = retries + 1,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error.code = error.code(),
                "Retrying model call."
            );
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }
}
