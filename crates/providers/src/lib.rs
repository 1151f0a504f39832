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
    /// The result of a tool call, answering the assistant's `tool_calls` entry `tool_call_id`.
    Tool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Tool calls the assistant asked for (assistant messages only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Which tool call this message answers (tool messages only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    #[must_use]
    pub fn system(content: impl Into<String>) -> Self {
        Self::plain(Role::System, content)
    }

    #[must_use]
    pub fn user(content: impl Into<String>) -> Self {
        Self::plain(Role::User, content)
    }

    #[must_use]
    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::plain(Role::Assistant, content)
        }
    }

    #[must_use]
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::plain(Role::Tool, content)
        }
    }

    fn plain(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool the model may call: its name, what it does, and its parameters' JSON Schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// One tool call the model asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider-assigned id (or one we assign), echoed in the tool result message.
    pub id: String,
    pub name: String,
    /// The arguments as a JSON value (providers that send a JSON string have it parsed).
    pub arguments: serde_json::Value,
}

/// The id for the `index`-th tool call of a provider answer that came without ids:
/// `call_<n>`, numbered on from the tool calls already in the conversation, so ids are unique
/// within it and the same conversation always gets the same ids.
pub(crate) fn tool_call_id(messages: &[ChatMessage], index: usize) -> String {
    let earlier: usize = messages.iter().map(|m| m.tool_calls.len()).sum();
    format!("call_{}", earlier + index + 1)
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
    pub agent: amas_types::AgentId,
    /// The workflow step (for telemetry).
    pub step: amas_types::StepId,
    pub messages: Vec<ChatMessage>,
    /// When set, the provider constrains or instructs the model to answer with JSON of this schema.
    pub output_schema: Option<OutputSchema>,
    pub max_output_tokens: u32,
    /// Tools the model may call instead of answering; empty: none.
    pub tools: Vec<ToolDefinition>,
}

/// What the model answered.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatResponse {
    /// Name of the provider (config key) that answered.
    pub provider: amas_types::ProviderId,
    pub model: String,
    pub content: String,
    pub usage: amas_types::Usage,
    /// Tool calls the model asked for; when non-empty, `content` may be empty and is not the
    /// final answer.
    pub tool_calls: Vec<ToolCall>,
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
