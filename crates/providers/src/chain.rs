//! The provider router: tries an agent's providers in order behind their circuit breakers,
//! falls back on provider failures, and measures and traces every model call.

use std::sync::Arc;
use std::time::Instant;

use amas_telemetry::Metrics;
use amas_telemetry::metrics::{ProviderLabels, ProviderNameLabels};
use tracing::Instrument;

use crate::{ChatRequest, ChatResponse, CircuitBreaker, ModelProvider, ProviderError};

/// One provider and its breaker.
#[derive(Clone)]
struct Link {
    provider: Arc<dyn ModelProvider>,
    breaker: Arc<CircuitBreaker>,
}

/// An ordered fallback chain of providers. Cheap to clone.
#[derive(Clone)]
pub struct ProviderChain {
    links: Vec<Link>,
    metrics: Metrics,
}

impl std::fmt::Debug for ProviderChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.links.iter().map(|l| l.provider.name()))
            .finish()
    }
}

impl ProviderChain {
    #[must_use]
    pub fn new(
        links: Vec<(Arc<dyn ModelProvider>, Arc<CircuitBreaker>)>,
        metrics: Metrics,
    ) -> Self {
        let links = links
            .into_iter()
            .map(|(provider, breaker)| Link { provider, breaker })
            .collect();
        Self { links, metrics }
    }

    /// The provider names, in the order they are tried.
    #[must_use]
    pub fn provider_names(&self) -> Vec<&str> {
        self.links.iter().map(|l| l.provider.name()).collect()
    }

    /// Asks each provider in turn until one answers.
    ///
    /// # Errors
    /// [`ProviderError::AllFailed`] with every provider's error in chain order, or a
    /// [`ProviderError::Config`] from a provider as soon as it happens (falling back would hide
    /// a misconfiguration).
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.chat_each(|_| Some(request)).await
    }

    /// As [`ProviderChain::chat`], with the request each provider gets: `request_for`
    /// answers the request to send to a provider (e.g. a redacted one for a provider that may
    /// only see redacted data), or `None` to skip it.
    ///
    /// # Errors
    /// As [`ProviderChain::chat`]; `AllFailed` with no errors when no provider is permitted.
    pub async fn chat_each<'r>(
        &self,
        request_for: impl Fn(&str) -> Option<&'r ChatRequest>,
    ) -> Result<ChatResponse, ProviderError> {
        let mut errors = Vec::with_capacity(self.links.len());
        for link in &self.links {
            let Some(request) = request_for(link.provider.name()) else {
                continue;
            };
            match self.call(link, request).await {
                Ok(response) => return Ok(response),
                Err(error) if falls_back(&error) => {
                    // The message can quote the provider's body, so only the code is logged
                    // here (providers has no scrubber: dataprotect is a sibling); the whole
                    // error still reaches the caller inside `AllFailed`.
                    tracing::warn!(
                        gen_ai.provider = %link.provider.name(),
                        amas.agent = %request.agent,
                        error.code = error.code(),
                        "Model call failed; falling back to the next provider."
                    );
                    errors.push(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(ProviderError::AllFailed(errors))
    }

    /// One provider call: breaker, span, metrics.
    async fn call(
        &self,
        link: &Link,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        let name = link.provider.name();
        let permit = match link.breaker.acquire() {
            Ok(permit) => permit,
            Err(error) => {
                self.count(name, &error);
                return Err(error);
            }
        };
        let span = tracing::info_span!(
            "gen_ai.chat",
            otel.name = %format_args!("chat {}", link.provider.model()),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.system = %link.provider.system(),
            gen_ai.request.model = %link.provider.model(),
            // Integers as i64: tracing-opentelemetry exports u64 fields as strings.
            gen_ai.request.max_tokens = i64::from(request.max_output_tokens),
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            error.type = tracing::field::Empty,
            amas.provider = %name,
            amas.agent = %request.agent,
            amas.step = %request.step,
        );
        let started = Instant::now();
        let result = link.provider.chat(request).instrument(span.clone()).await;
        self.metrics
            .provider_call_duration
            .get_or_create(&ProviderNameLabels {
                provider: name.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(response) => {
                permit.success();
                span.record("gen_ai.response.model", response.model.as_str());
                span.record(
                    "gen_ai.usage.input_tokens",
                    as_i64(response.usage.input_tokens),
                );
                span.record(
                    "gen_ai.usage.output_tokens",
                    as_i64(response.usage.output_tokens),
                );
                self.count_ok(name);
            }
            Err(error) => {
                if counts_against_breaker(error) {
                    permit.failure();
                }
                span.record("error.type", outcome(error));
                self.count(name, error);
            }
        }
        result
    }

    /// A call that answered. Its tokens and cost are counted by the caller, who knows whose
    /// task it was (the tenant label).
    fn count_ok(&self, provider: &str) {
        self.bump(provider, "ok");
    }

    fn count(&self, provider: &str, error: &ProviderError) {
        self.bump(provider, outcome(error));
    }

    fn bump(&self, provider: &str, outcome: &str) {
        self.metrics
            .provider_calls
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// A count as an OpenTelemetry integer attribute (u64 fields would be exported as strings).
fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `outcome` label (a bounded set) of a failed call.
fn outcome(error: &ProviderError) -> &'static str {
    match error {
        ProviderError::Unavailable { .. } => "unavailable",
        ProviderError::RateLimited { .. } => "rate_limited",
        ProviderError::Timeout { .. } => "timeout",
        ProviderError::BadResponse { .. } => "bad_response",
        ProviderError::ModelMissing { .. } => "model_missing",
        ProviderError::CircuitOpen { .. } => "circuit_open",
        ProviderError::Config { .. } => "config",
        ProviderError::Inference { .. } => "inference",
        ProviderError::AllFailed(_) => "all_failed",
    }
}

/// Whether the next provider should be tried after this error.
fn falls_back(error: &ProviderError) -> bool {
    match error {
        ProviderError::Unavailable { .. }
        | ProviderError::RateLimited { .. }
        | ProviderError::Timeout { .. }
        | ProviderError::BadResponse { .. }
        | ProviderError::ModelMissing { .. }
        | ProviderError::CircuitOpen { .. }
        | ProviderError::Inference { .. } => true,
        ProviderError::Config { .. } | ProviderError::AllFailed(_) => false,
    }
}

/// Whether this error says the provider is unhealthy. A misconfiguration is ours, not the
/// provider's, so it does not open the breaker.
fn counts_against_breaker(error: &ProviderError) -> bool {
    match error {
        ProviderError::Unavailable { .. }
        | ProviderError::RateLimited { .. }
        | ProviderError::Timeout { .. }
        | ProviderError::BadResponse { .. }
        | ProviderError::ModelMissing { .. }
        | ProviderError::Inference { .. } => true,
        ProviderError::CircuitOpen { .. }
        | ProviderError::Config { .. }
        | ProviderError::AllFailed(_) => false,
    }
}
