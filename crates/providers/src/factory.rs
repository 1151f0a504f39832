//! Builds the configured providers once, each with its own circuit breaker, and hands out
//! fallback chains over them, so every agent using a provider shares its breaker.

use std::collections::BTreeMap;
use std::sync::Arc;

use amas_config::{BreakerConfig, ProviderConfig};
use amas_telemetry::Metrics;
use async_trait::async_trait;

use crate::local::LocalProvider;
use crate::openai::OpenAiProvider;
use crate::scripted::ScriptedProvider;
use crate::{
    BreakerState, ChatRequest, ChatResponse, CircuitBreaker, ModelProvider, ProviderChain,
    ProviderError,
};

/// Builds the backend a config entry names.
///
/// # Errors
/// Whatever the backend's constructor reports (usually [`ProviderError::Config`]).
pub fn build_provider(
    name: &str,
    config: &ProviderConfig,
) -> Result<Arc<dyn ModelProvider>, ProviderError> {
    Ok(match config {
        ProviderConfig::Openai(c) => Arc::new(OpenAiProvider::new(name, c)?),
        ProviderConfig::Local(c) => Arc::new(LocalProvider::new(name, c)?),
        ProviderConfig::Scripted(c) => Arc::new(ScriptedProvider::new(name, c)?),
    })
}

fn breaker_config(config: &ProviderConfig) -> &BreakerConfig {
    match config {
        ProviderConfig::Openai(c) => &c.breaker,
        ProviderConfig::Local(c) => &c.breaker,
        ProviderConfig::Scripted(c) => &c.breaker,
    }
}

#[derive(Clone)]
struct Entry {
    provider: Arc<dyn ModelProvider>,
    breaker: Arc<CircuitBreaker>,
}

/// Every provider of the process, by config key. Cheap to clone.
#[derive(Clone)]
pub struct ProviderSet {
    entries: BTreeMap<String, Entry>,
    metrics: Metrics,
}

impl std::fmt::Debug for ProviderSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.keys()).finish()
    }
}

impl ProviderSet {
    /// An empty set; add providers with [`Self::with_provider`].
    #[must_use]
    pub fn new(metrics: Metrics) -> Self {
        Self {
            entries: BTreeMap::new(),
            metrics,
        }
    }

    /// Builds every configured provider.
    ///
    /// A local model whose files are not installed does not stop startup: it stays in the set
    /// and answers every call with [`ProviderError::ModelMissing`], so chains fall back past it
    /// and the error tells the user how to fetch it.
    ///
    /// # Errors
    /// The first provider that cannot be built for any other reason.
    pub fn from_config(
        providers: &BTreeMap<String, ProviderConfig>,
        metrics: Metrics,
    ) -> Result<Self, ProviderError> {
        let mut set = Self::new(metrics);
        for (name, config) in providers {
            let provider = match build_provider(name, config) {
                Ok(provider) => provider,
                Err(ProviderError::ModelMissing {
                    path,
                    fetch_command,
                }) => {
                    tracing::warn!(
                        gen_ai.provider = %name,
                        path = %path,
                        "The local model is not installed; calls to it will fall back."
                    );
                    Arc::new(Missing {
                        name: name.clone(),
                        path,
                        fetch_command,
                    })
                }
                Err(e) => return Err(e),
            };
            set.insert(name, provider, breaker_config(config));
        }
        Ok(set)
    }

    /// Adds (or replaces) a provider, e.g. an instant one for tests and benchmarks.
    #[must_use]
    pub fn with_provider(
        mut self,
        name: &str,
        provider: Arc<dyn ModelProvider>,
        breaker: BreakerConfig,
    ) -> Self {
        self.insert(name, provider, &breaker);
        self
    }

    fn insert(&mut self, name: &str, provider: Arc<dyn ModelProvider>, breaker: &BreakerConfig) {
        let breaker = CircuitBreaker::new(name, breaker).with_metrics(self.metrics.clone());
        self.entries.insert(
            name.to_owned(),
            Entry {
                provider,
                breaker: Arc::new(breaker),
            },
        );
    }

    /// The fallback chain over these providers, in this order.
    ///
    /// # Errors
    /// [`ProviderError::Config`] for an empty list or an unknown provider name.
    pub fn chain(&self, provider_names: &[String]) -> Result<ProviderChain, ProviderError> {
        if provider_names.is_empty() {
            return Err(ProviderError::Config {
                provider: String::new(),
                reason: "a provider chain needs at least one provider".into(),
            });
        }
        let links = provider_names
            .iter()
            .map(|name| {
                self.entries
                    .get(name)
                    .map(|e| (e.provider.clone(), e.breaker.clone()))
                    .ok_or_else(|| ProviderError::Config {
                        provider: name.clone(),
                        reason: "no provider of that name is configured".into(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProviderChain::new(links, self.metrics.clone()))
    }

    /// Each provider's breaker state, by name (for readiness and the admin API).
    #[must_use]
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.entries
            .iter()
            .map(|(name, e)| (name.clone(), e.breaker.state()))
            .collect()
    }

    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Stands in for a local model whose files are missing.
struct Missing {
    name: String,
    path: String,
    fetch_command: String,
}

#[async_trait]
impl ModelProvider for Missing {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &str {
        "amas.local"
    }

    async fn chat(&self, _request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::ModelMissing {
            path: self.path.clone(),
            fetch_command: self.fetch_command.clone(),
        })
    }
}
