//! The chat-completions wire format: the request body we send and the parts of the answer we read.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ChatMessage, ChatRequest, OutputSchema, Role, ToolCall, ToolDefinition};

/// OpenAI's limit on `json_schema.name`.
const MAX_SCHEMA_NAME: usize = 64;

/// Longest provider error message carried into our errors.
const MAX_ERROR_MESSAGE: usize = 300;

/// The JSON body of `POST /chat/completions`.
pub(super) fn request_body(model: &str, request: &ChatRequest) -> Value {
    let messages: Vec<Value> = request.messages.iter().map(message).collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": request.max_output_tokens,
    });
    if let Some(obj) = body.as_object_mut() {
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request.tools.iter().map(tool).collect();
            obj.insert("tools".into(), Value::Array(tools));
            obj.insert("tool_choice".into(), "auto".into());
        }
        // With tools too: the model may call tools first; its final answer is the JSON.
        if let Some(schema) = &request.output_schema {
            obj.insert("response_format".into(), response_format(schema));
        }
    }
    body
}

/// One message in the wire form: assistant tool calls carry their arguments as a JSON string,
/// tool results name the call they answer.
fn message(message: &ChatMessage) -> Value {
    let role = match message.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let mut wire = json!({"role": role, "content": message.content});
    if let Some(obj) = wire.as_object_mut() {
        if !message.tool_calls.is_empty() {
            let calls: Vec<Value> = message.tool_calls.iter().map(tool_call).collect();
            obj.insert("tool_calls".into(), Value::Array(calls));
            if message.content.is_empty() {
                // The API's spelling of "no text, only tool calls".
                obj.insert("content".into(), Value::Null);
            }
        }
        if let Some(id) = &message.tool_call_id {
            obj.insert("tool_call_id".into(), id.as_str().into());
        }
    }
    wire
}

fn tool_call(call: &ToolCall) -> Value {
    json!({
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments.to_string()},
    })
}

fn tool(definition: &ToolDefinition) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": definition.name,
            "description": definition.description,
            "parameters": definition.parameters,
        }
    })
}

/// Structured output: the server constrains the answer to the agent's contract.
fn response_format(schema: &OutputSchema) -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": sanitize_schema_name(&schema.name),
            "schema": schema.schema,
            "strict": true,
        }
    })
}

/// Schema names may only hold `[a-zA-Z0-9_-]`, at most 64 of them.
pub(super) fn sanitize_schema_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_SCHEMA_NAME)
        .collect();
    if clean.is_empty() {
        "output".into()
    } else {
        clean
    }
}

#[derive(Deserialize)]
pub(super) struct Completion {
    pub model: Option<String>,
    pub choices: Vec<Choice>,
    pub usage: Option<WireUsage>,
}

#[derive(Deserialize)]
pub(super) struct Choice {
    pub message: Message,
}

#[derive(Deserialize)]
pub(super) struct Message {
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
pub(super) struct WireToolCall {
    pub id: Option<String>,
    pub function: WireFunction,
}

#[derive(Deserialize)]
pub(super) struct WireFunction {
    pub name: String,
    /// A JSON string per the API; some compatible servers send the object itself.
    #[serde(default)]
    pub arguments: Value,
}

impl WireToolCall {
    /// Our form of the call; `fallback_id` when the server sent none.
    pub(super) fn into_tool_call(self, fallback_id: String) -> ToolCall {
        ToolCall {
            id: self.id.filter(|id| !id.is_empty()).unwrap_or(fallback_id),
            name: self.function.name,
            arguments: parse_arguments(self.function.arguments),
        }
    }
}

/// Arguments sent as a JSON string are parsed. Text that is not JSON stays a string, so the
/// runtime's parameter validation reports it to the model, which can then correct itself.
fn parse_arguments(arguments: Value) -> Value {
    match arguments {
        Value::String(raw) => serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
        Value::Null => Value::Object(serde_json::Map::new()),
        other => other,
    }
}

#[derive(Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

/// The message of an error answer (`{"error": {"message": ...}}`, else the body text), cut
/// short, with anything that looks like the API key removed: some servers echo the key they
/// rejected.
pub(super) fn error_message(body: &[u8], api_key: Option<&str>) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("error"))
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text = match api_key {
        Some(key) if !key.is_empty() => text.replace(key, "[redacted]"),
        _ => text,
    };
    truncate(text.trim(), MAX_ERROR_MESSAGE)
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_sanitized() {
        assert_eq!(
            sanitize_schema_name("research.output v1"),
            "research_output_v1"
        );
        assert_eq!(sanitize_schema_name(""), "output");
        assert_eq!(sanitize_schema_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn tool_call_arguments_are_parsed_when_they_are_json() {
        assert_eq!(
            parse_arguments(json!(r#"{"expression": "1+2"}"#)),
            json!({"expression": "1+2"})
        );
        assert_eq!(parse_arguments(json!("{oops")), json!("{oops"));
        assert_eq!(parse_arguments(json!({"a": 1})), json!({"a": 1}));
        assert_eq!(parse_arguments(Value::Null), json!({}));
    }

    #[test]
    fn error_message_is_extracted_redacted_and_truncated() {
        let body = br#"{"error": {"message": "Incorrect API key provided: sk-secret-123"}}"#;
        assert_eq!(
            error_message(body, Some("sk-secret-123")),
            "Incorrect API key provided: [redacted]"
        );
        let long = "é".repeat(1000);
        let msg = error_message(long.as_bytes(), None);
        assert_eq!(msg.chars().count(), MAX_ERROR_MESSAGE + 3);
    }
}
