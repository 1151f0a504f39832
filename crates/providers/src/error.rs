//! Provider errors. Each variant says whether the chain may fall back to the next provider.

use amas_types::codes;
use std::time::Duration;

/// Why a model call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Connection refused, reset, DNS, or 5xx after the retries ran out.
    #[error("provider {provider} is unavailable: {reason}")]
    Unavailable { provider: String, reason: String },
    /// 429 after the retries ran out.
    #[error("provider {provider} is rate limiting")]
    RateLimited {
        provider: String,
        retry_after: Option<Duration>,
    },
    #[error("provider {provider} did not answer within {after:?}")]
    Timeout { provider: String, after: Duration },
    /// The provider answered, but not with something usable (4xx other than 429, bad JSON).
    #[error("provider {provider} answered badly: {reason}")]
    BadResponse { provider: String, reason: String },
    /// The local model's files are not installed.
    #[error(
        "the local model is not installed: {path} is missing; run `{fetch_command}` to fetch it"
    )]
    ModelMissing { path: String, fetch_command: String },
    /// The breaker is open: the provider failed repeatedly and is cooling down.
    #[error("provider {provider} is cooling down after repeated failures (circuit open)")]
    CircuitOpen {
        provider: String,
        /// How long until the breaker lets a probe through, when it is known (open, not
        /// probing).
        retry_in: Option<Duration>,
    },
    /// The provider could not be set up from its configuration.
    #[error("provider {provider} is misconfigured: {reason}")]
    Config { provider: String, reason: String },
    /// Local inference failed.
    #[error("local model {provider} failed: {reason}")]
    Inference { provider: String, reason: String },
    /// Every provider of a chain failed; the errors in chain order.
    #[error("all providers failed: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    AllFailed(Vec<ProviderError>),
}

impl ProviderError {
    /// How long until the call may succeed, when the failure is only "ask again later" with a
    /// known wait: rate limited with a `Retry-After`, a circuit cooling down, or a chain whose
    /// every provider failed that way (then the shortest wait: one of them may answer by then).
    /// `None` for anything else, including a chain that tried no provider.
    #[must_use]
    pub fn retry_later(&self) -> Option<Duration> {
        match self {
            Self::RateLimited {
                retry_after: Some(wait),
                ..
            }
            | Self::CircuitOpen {
                retry_in: Some(wait),
                ..
            } => Some(*wait),
            Self::AllFailed(errors) => errors
                .iter()
                .map(Self::retry_later)
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .min(),
            _ => None,
        }
    }

    /// The stable public code of this error (see `docs/errors/`).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => codes::PROV_UNAVAILABLE,
            Self::RateLimited { .. } => codes::PROV_RATE_LIMITED,
            Self::Timeout { .. } => codes::PROV_TIMEOUT,
            Self::BadResponse { .. } => codes::PROV_BAD_RESPONSE,
            Self::ModelMissing { .. } => codes::PROV_MODEL_MISSING,
            Self::CircuitOpen { .. } => codes::PROV_CIRCUIT_OPEN,
            Self::Config { .. } => codes::PROV_CONFIG,
            Self::Inference { .. } => codes::PROV_INFERENCE,
            Self::AllFailed(_) => codes::PROV_ALL_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(secs: Option<u64>) -> ProviderError {
        ProviderError::RateLimited {
            provider: "p".to_owned(),
            retry_after: secs.map(Duration::from_secs),
        }
    }

    /// Only a known wait is "retry later"; a chain is, when every provider's error is, and then
    /// waits for the first of them.
    #[test]
    fn retry_later_needs_a_known_wait_from_every_provider() {
        assert_eq!(
            limited(Some(40)).retry_later(),
            Some(Duration::from_secs(40))
        );
        assert_eq!(limited(None).retry_later(), None);
        let chain = ProviderError::AllFailed(vec![
            limited(Some(40)),
            ProviderError::CircuitOpen {
                provider: "q".to_owned(),
                retry_in: Some(Duration::from_secs(12)),
            },
        ]);
        assert_eq!(chain.retry_later(), Some(Duration::from_secs(12)));
        let mixed = ProviderError::AllFailed(vec![
            limited(Some(40)),
            ProviderError::Unavailable {
                provider: "q".to_owned(),
                reason: "down".to_owned(),
            },
        ]);
        assert_eq!(mixed.retry_later(), None);
        assert_eq!(ProviderError::AllFailed(Vec::new()).retry_later(), None);
    }
}
