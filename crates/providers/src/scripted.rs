//! The scripted backend: canned answers per agent from a YAML or JSON file, for tests, demos
//! and benchmarks. Instant unless a response asks for a delay.
//!
//! ```yaml
//! research:                 # agent name -> answers, consumed in order; the last one repeats
//!   - json: {summary: "..."}
//!   - error: unavailable    # unavailable | timeout | rate_limited
//!   - content: "raw text"
//!     delay_ms: 20
//!   - tool_calls:           # the model asks for tools; ids are `call_<n>` unless given
//!       - {name: calculator, arguments: {expression: "2+2"}}
//! default:                  # agents not listed
//!   - json: {}
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use amas_config::ScriptedConfig;
use amas_types::Usage;
use async_trait::async_trait;
use serde::Deserialize;

use crate::{ChatRequest, ChatResponse, ModelProvider, ProviderError, ToolCall, tool_call_id};

/// The key whose answers serve agents the script does not list.
pub const DEFAULT_AGENT: &str = "default";

/// Model name reported in responses.
const MODEL: &str = "scripted";

/// A failure a scripted response simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptedFailure {
    Unavailable,
    Timeout,
    RateLimited,
}

/// What one scripted response answers.
#[derive(Clone, Debug, PartialEq)]
pub enum ScriptedAnswer {
    /// This text, verbatim.
    Content(String),
    /// This value, serialized as JSON.
    Json(serde_json::Value),
    /// The model asks for these tools (no final answer).
    ToolCalls(Vec<ScriptedToolCall>),
    Fail(ScriptedFailure),
}

/// One tool call a scripted response asks for.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedToolCall {
    /// `None`: `call_<n>`, numbered on from the tool calls already in the conversation.
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default = "empty_object")]
    pub arguments: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// One scripted response: an answer, after an optional delay.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptedResponse {
    pub answer: ScriptedAnswer,
    pub delay: Duration,
}

/// The file form of a response; exactly one of `content`, `json`, `tool_calls`, `error`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    content: Option<String>,
    json: Option<serde_json::Value>,
    tool_calls: Option<Vec<ScriptedToolCall>>,
    error: Option<ScriptedFailure>,
    #[serde(default)]
    delay_ms: u64,
}

impl RawResponse {
    fn into_response(self) -> Result<ScriptedResponse, String> {
        let answer = match (self.content, self.json, self.tool_calls, self.error) {
            (Some(text), None, None, None) => ScriptedAnswer::Content(text),
            (None, Some(value), None, None) => ScriptedAnswer::Json(value),
            (None, None, Some(calls), None) if !calls.is_empty() => {
                ScriptedAnswer::ToolCalls(calls)
            }
            (None, None, Some(_), None) => return Err("`tool_calls` is empty".into()),
            (None, None, None, Some(failure)) => ScriptedAnswer::Fail(failure),
            _ => {
                return Err(
                    "each response needs exactly one of `content`, `json`, `tool_calls`, `error`"
                        .into(),
                );
            }
        };
        Ok(ScriptedResponse {
            answer,
            delay: Duration::from_millis(self.delay_ms),
        })
    }
}

/// A parsed script: agent name -> responses in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    agents: BTreeMap<String, Vec<ScriptedResponse>>,
}

impl Script {
    /// Parses YAML (JSON is YAML too).
    ///
    /// # Errors
    /// A description of what is wrong with the text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, Vec<RawResponse>> =
            yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        let mut agents = BTreeMap::new();
        for (agent, responses) in raw {
            if responses.is_empty() {
                return Err(format!("agent `{agent}` has no responses"));
            }
            let responses = responses
                .into_iter()
                .enumerate()
                .map(|(i, r)| r.into_response().map_err(|e| format!("{agent}[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            agents.insert(agent, responses);
        }
        Ok(Self { agents })
    }

    /// Sets the responses of one agent (or of [`DEFAULT_AGENT`]).
    #[must_use]
    pub fn with_agent(mut self, agent: &str, responses: Vec<ScriptedResponse>) -> Self {
        self.agents.insert(agent.to_owned(), responses);
        self
    }
}

/// The scripted provider.
#[derive(Debug)]
pub struct ScriptedProvider {
    name: String,
    script: Script,
    /// Per agent: how many responses it has consumed.
    cursors: Mutex<HashMap<String, usize>>,
}

impl ScriptedProvider {
    /// Reads the script file named by the config.
    ///
    /// # Errors
    /// [`ProviderError::Config`] when the file is unreadable or malformed.
    pub fn new(name: &str, config: &ScriptedConfig) -> Result<Self, ProviderError> {
        let script = read_script(&config.file).map_err(|reason| ProviderError::Config {
            provider: name.to_owned(),
            reason,
        })?;
        Ok(Self::from_script(name, script))
    }

    #[must_use]
    pub fn from_script(name: &str, script: Script) -> Self {
        Self {
            name: name.to_owned(),
            script,
            cursors: Mutex::new(HashMap::new()),
        }
    }

    /// The next response for `agent`, advancing its cursor; the last response repeats.
    fn next_response(&self, agent: &str) -> Option<&ScriptedResponse> {
        let responses = self
            .script
            .agents
            .get(agent)
            .or_else(|| self.script.agents.get(DEFAULT_AGENT))?;
        let mut cursors = self.cursors.lock().unwrap_or_else(PoisonError::into_inner);
        let cursor = cursors.entry(agent.to_owned()).or_insert(0);
        let index = (*cursor).min(responses.len().saturating_sub(1));
        *cursor = cursor.saturating_add(1);
        responses.get(index)
    }
}

fn read_script(path: &Path) -> Result<Script, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read script {}: {e}", path.display()))?;
    Script::parse(&text).map_err(|e| format!("script {}: {e}", path.display()))
}

fn words(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

#[async_trait]
impl ModelProvider for ScriptedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn system(&self) -> &str {
        "amas.scripted"
    }

    fn model(&self) -> &str {
        MODEL
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let response =
            self.next_response(&request.agent)
                .cloned()
                .ok_or_else(|| ProviderError::Config {
                    provider: self.name.clone(),
                    reason: format!(
                        "the script has no responses for agent `{}` and no `{DEFAULT_AGENT}`",
                        request.agent
                    ),
                })?;
        if !response.delay.is_zero() {
            tokio::time::sleep(response.delay).await;
        }
        let (content, tool_calls) = match response.answer {
            ScriptedAnswer::Content(text) => (text, Vec::new()),
            ScriptedAnswer::Json(value) => (value.to_string(), Vec::new()),
            ScriptedAnswer::ToolCalls(calls) => (String::new(), tool_calls(request, calls)),
            ScriptedAnswer::Fail(failure) => return Err(self.failure(failure, response.delay)),
        };
        let input_tokens = request.messages.iter().map(|m| words(&m.content)).sum();
        let output_tokens = words(&content)
            + tool_calls
                .iter()
                .map(|c| words(&c.arguments.to_string()))
                .sum::<u64>();
        Ok(ChatResponse {
            provider: self.name.as_str().into(),
            model: MODEL.to_owned(),
            usage: Usage {
                input_tokens,
                output_tokens,
            },
            content,
            tool_calls,
        })
    }
}

fn tool_calls(request: &ChatRequest, calls: Vec<ScriptedToolCall>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| ToolCall {
            id: call
                .id
                .unwrap_or_else(|| tool_call_id(&request.messages, i)),
            name: call.name,
            arguments: call.arguments,
        })
        .collect()
}

impl ScriptedProvider {
    fn failure(&self, failure: ScriptedFailure, after: Duration) -> ProviderError {
        let provider = self.name.clone();
        match failure {
            ScriptedFailure::Unavailable => ProviderError::Unavailable {
                provider,
                reason: "scripted failure".into(),
            },
            ScriptedFailure::Timeout => ProviderError::Timeout { provider, after },
            ScriptedFailure::RateLimited => ProviderError::RateLimited {
                provider,
                retry_after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;

    fn request(agent: &str) -> ChatRequest {
        ChatRequest {
            agent: agent.into(),
            step: "s".into(),
            messages: vec![ChatMessage::user("three little words")],
            output_schema: None,
            max_output_tokens: 100,
            tools: Vec::new(),
        }
    }

    fn provider(yaml: &str) -> ScriptedProvider {
        ScriptedProvider::from_script("scripted", Script::parse(yaml).unwrap())
    }

    #[tokio::test]
    async fn answers_in_order_then_repeats_the_last() {
        let p = provider("research:\n  - content: first answer\n  - json: {n: 2}\n");
        let a = p.chat(&request("research")).await.unwrap();
        assert_eq!(a.content, "first answer");
        assert_eq!(
            a.usage,
            Usage {
                input_tokens: 3,
                output_tokens: 2
            }
        );
        assert_eq!(a.provider, "scripted");
        for _ in 0..2 {
            let b = p.chat(&request("research")).await.unwrap();
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&b.content).unwrap(),
                serde_json::json!({"n": 2})
            );
        }
    }

    #[tokio::test]
    async fn default_serves_unlisted_agents_with_their_own_cursor() {
        let p = provider(
            r#"{"a": [{"content": "A"}], "default": [{"content": "d1"}, {"content": "d2"}]}"#,
        );
        assert_eq!(p.chat(&request("x")).await.unwrap().content, "d1");
        assert_eq!(p.chat(&request("y")).await.unwrap().content, "d1");
        assert_eq!(p.chat(&request("x")).await.unwrap().content, "d2");
        assert_eq!(p.chat(&request("a")).await.unwrap().content, "A");
    }

    #[tokio::test]
    async fn error_responses_become_provider_errors() {
        let p = provider(
            "a:\n  - error: unavailable\n  - error: timeout\n  - error: rate_limited\n  - content: ok\n",
        );
        let codes: Vec<_> = [
            p.chat(&request("a")).await.unwrap_err().code(),
            p.chat(&request("a")).await.unwrap_err().code(),
            p.chat(&request("a")).await.unwrap_err().code(),
        ]
        .into();
        assert_eq!(
            codes,
            ["AMAS-PROV-0001", "AMAS-PROV-0003", "AMAS-PROV-0002"]
        );
        assert_eq!(p.chat(&request("a")).await.unwrap().content, "ok");
    }

    #[tokio::test]
    async fn tool_calls_get_ids_numbered_on_from_the_conversation() {
        let p = provider(
            "a:\n  - tool_calls:\n      - {name: calculator, arguments: {expression: \"2+2\"}}\n      - {name: clock}\n  - tool_calls:\n      - {id: mine, name: calculator, arguments: {expression: \"1\"}}\n  - json: {answer: 4}\n",
        );
        let first = p.chat(&request("a")).await.unwrap();
        assert_eq!(first.content, "");
        assert_eq!(
            first.tool_calls,
            vec![
                ToolCall {
                    id: "call_1".into(),
                    name: "calculator".into(),
                    arguments: serde_json::json!({"expression": "2+2"}),
                },
                ToolCall {
                    id: "call_2".into(),
                    name: "clock".into(),
                    arguments: serde_json::json!({}),
                },
            ]
        );
        let mut next = request("a");
        next.messages
            .push(ChatMessage::assistant("", first.tool_calls));
        next.messages.push(ChatMessage::tool("call_1", "4"));
        next.messages.push(ChatMessage::tool("call_2", "noon"));
        let second = p.chat(&next).await.unwrap();
        assert_eq!(second.tool_calls[0].id, "mine");
        let third = p.chat(&next).await.unwrap();
        assert!(third.tool_calls.is_empty());
        assert_eq!(third.content, r#"{"answer":4}"#);

        // Without an explicit id, numbering continues after the conversation's two calls.
        let q = provider("a:\n  - tool_calls: [{name: clock}]\n");
        assert_eq!(q.chat(&next).await.unwrap().tool_calls[0].id, "call_3");
    }

    #[tokio::test]
    async fn unknown_agent_without_default_is_a_config_error() {
        let p = provider("a:\n  - content: x\n");
        let err = p.chat(&request("b")).await.unwrap_err();
        assert_eq!(err.code(), "AMAS-PROV-0007");
        assert!(err.to_string().contains("`b`"), "{err}");
    }

    #[test]
    fn malformed_scripts_are_rejected_with_the_place() {
        let both = Script::parse("a:\n  - content: x\n    error: timeout\n").unwrap_err();
        assert!(both.contains("a[0]"), "{both}");
        assert!(Script::parse("a:\n  - error: exploded\n").is_err());
        assert!(Script::parse("a:\n  - contnet: typo\n").is_err());
        assert!(Script::parse("a: []\n").is_err());
        assert!(Script::parse("a:\n  - tool_calls: []\n").is_err());
        assert!(Script::parse("a:\n  - tool_calls: [{name: x, args: {}}]\n").is_err());
        assert!(Script::parse("a:\n  - tool_calls: [{name: x}]\n    content: y\n").is_err());
    }

    #[test]
    fn reads_the_configured_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script.yaml");
        std::fs::write(&file, "default:\n  - json: {ok: true}\n").unwrap();
        let cfg = |file| ScriptedConfig {
            file,
            breaker: amas_config::BreakerConfig {
                failure_threshold: 1,
                cool_down: Duration::from_secs(1),
            },
        };
        assert!(ScriptedProvider::new("s", &cfg(file)).is_ok());
        let missing = ScriptedProvider::new("s", &cfg(dir.path().join("nope.yaml"))).unwrap_err();
        assert_eq!(missing.code(), "AMAS-PROV-0007");
    }
}
