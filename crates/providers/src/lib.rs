//! Model providers: the [`ModelProvider`] trait, its closed set of backends (OpenAI-compatible,
//! the embedded local model, scripted responses for tests), and the [`ProviderChain`] that falls
//! back from one provider to the next behind per-provider circuit breakers.

mod breaker;
mod chain;
mod error;
mod factory;
pub mod local;
pub mod openai;
pub mod scripted;

pub use breaker::{BreakerPermit, BreakerState, CircuitBreaker, Clock, ManualClock, SystemClock};
pub use chain::ProviderChain;
pub use error::ProviderError;
pub use factory::{ProviderSet, build_provider};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Who is speaking in a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// The JSON Schema the answer must satisfy (the agent's output contract).
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSchema {
    pub name: String,
    pub schema: serde_json::Value,
}

/// One model call.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The agent making the call (for routing canned responses, telemetry and policy).
    pub agent: String,
    /// The workflow step (for telemetry).
    pub step: String,
    pub messages: Vec<ChatMessage>,
    /// When set, the provider constrains or instructs the model to answer with JSON of this schema.
    pub output_schema: Option<OutputSchema>,
    pub max_output_tokens: u32,
}

/// What the model answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatResponse {
    /// Name of the provider (config key) that answered.
    pub provider: String,
    pub model: String,
    pub content: String,
    pub usage: amas_types::Usage,
}

/// A model backend. Implementations are cheap to share (`Arc<dyn ModelProvider>`).
#[async_trait]
pub trait ModelProvider: Send + Sync {
    /// The provider's config key (bounded: safe as a metric label).
    fn name(&self) -> &str;

    /// The `gen_ai.system` of the backend (OpenTelemetry GenAI conventions), e.g. `openai`.
    fn system(&self) -> &str {
        "unknown"
    }

    /// The model asked for (`gen_ai.request.model`).
    fn model(&self) -> &str {
        self.name()
    }

    /// Sends one chat request.
    ///
    /// # Errors
    /// [`ProviderError`] for transport, protocol, timeout and model errors.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError>;
}
