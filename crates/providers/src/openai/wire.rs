//! The chat-completions wire format: the request body we send and the parts of the answer we read.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ChatRequest, OutputSchema};

/// OpenAI's limit on `json_schema.name`.
const MAX_SCHEMA_NAME: usize = 64;

/// Longest provider error message carried into our errors.
const MAX_ERROR_MESSAGE: usize = 300;

/// The JSON body of `POST /chat/completions`.
pub(super) fn request_body(model: &str, request: &ChatRequest) -> Value {
    let mut body = json!({
        "model": model,
        "messages": request.messages,
        "max_tokens": request.max_output_tokens,
    });
    if let (Some(schema), Some(obj)) = (&request.output_schema, body.as_object_mut()) {
        obj.insert("response_format".into(), response_format(schema));
    }
    body
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
