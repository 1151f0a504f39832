//! What the mock answers: a behaviour per request, queued per model.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the mock answers one chat-completions request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// 200 with this as `choices[0].message.content`: a JSON string verbatim, any other value
    /// serialized. Comes with a `usage` block counting words.
    Reply(Value),
    /// 200 with `choices[0].message.tool_calls`, one per `(name, arguments)`, and null
    /// `content`. Arguments go on the wire as a JSON string: a JSON string value verbatim (so
    /// tests can send malformed arguments), any other value serialized. Ids are `call_<n>`,
    /// unique for the mock's lifetime.
    ToolCalls(Vec<(String, Value)>),
    /// This HTTP status with an OpenAI-style error body, and `Retry-After: secs` when given.
    Status(u16, Option<u64>),
    /// No answer until [`super::MockOpenAi::release_hangs`] (then 503).
    Hang,
    /// Waits this many milliseconds, then behaves as the inner behaviour.
    Delay(u64, Box<Behaviour>),
}

impl Behaviour {
    pub fn reply(content: impl Into<Value>) -> Self {
        Self::Reply(content.into())
    }

    /// One tool call.
    pub fn tool_call(name: impl Into<String>, arguments: impl Into<Value>) -> Self {
        Self::ToolCalls(vec![(name.into(), arguments.into())])
    }

    #[must_use]
    pub fn status(code: u16) -> Self {
        Self::Status(code, None)
    }

    #[must_use]
    pub fn retry_after(code: u16, secs: u64) -> Self {
        Self::Status(code, Some(secs))
    }

    #[must_use]
    pub fn delayed(ms: u64, then: Self) -> Self {
        Self::Delay(ms, Box::new(then))
    }
}
