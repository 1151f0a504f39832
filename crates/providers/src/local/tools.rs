//! Tool calling for the local model, which has no native tool format: when tools are offered,
//! generation is constrained to one of two JSON objects, `{"tool_call": {"name", "arguments"}}`
//! or `{"answer": <answer>}`. The outer key discriminates, so an output contract can never be
//! mistaken for a tool call; each tool's branch pins its name and its own parameter schema, so
//! the arguments always match the tool the model named.

use serde_json::{Value, json};

use crate::{ChatMessage, OutputSchema, ToolCall, ToolDefinition, tool_call_id};

/// The key of a tool call object.
const TOOL_CALL: &str = "tool_call";
/// The key of a final answer object (only when tools are offered).
const ANSWER: &str = "answer";

/// What generation is constrained to: the output schema alone without tools; with tools, the
/// tool-call-or-answer choice. `None`: free text.
pub(super) fn constraint(
    schema: Option<&OutputSchema>,
    tools: &[ToolDefinition],
) -> Option<OutputSchema> {
    if tools.is_empty() {
        return schema.cloned();
    }
    let answer = schema.map_or_else(|| json!({"type": "string"}), |s| s.schema.clone());
    let calls: Vec<Value> = tools
        .iter()
        .map(|tool| {
            strict_object(json!({
                "name": {"const": tool.name},
                "arguments": tool.parameters,
            }))
        })
        .collect();
    let tool_call = match calls.as_slice() {
        [only] => only.clone(),
        _ => json!({"anyOf": calls}),
    };
    Some(OutputSchema {
        name: schema.map_or_else(|| "answer_or_tool_call".to_owned(), |s| s.name.clone()),
        schema: json!({"anyOf": [
            strict_object(json!({TOOL_CALL: tool_call})),
            strict_object(json!({ANSWER: answer})),
        ]}),
    })
}

/// An object with exactly these properties, all required, in this order.
fn strict_object(properties: Value) -> Value {
    let required: Vec<Value> = properties
        .as_object()
        .map(|p| p.keys().map(|k| Value::String(k.clone())).collect())
        .unwrap_or_default();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The system-turn instruction: how to answer and, with tools, which tools exist and how to
/// call them. The grammar guarantees the shape; the words help the tiny model fill it sensibly.
pub(super) fn instruction(
    schema: Option<&OutputSchema>,
    tools: &[ToolDefinition],
) -> Option<String> {
    if tools.is_empty() {
        return schema.map(|s| {
            format!(
                "Answer only with a JSON object that matches this JSON Schema:\n{}",
                s.schema
            )
        });
    }
    let mut text = String::from("You can call these tools:\n");
    for tool in tools {
        text.push_str(&format!(
            "- {}: {} Parameters (JSON Schema): {}\n",
            tool.name, tool.description, tool.parameters
        ));
    }
    text.push_str(
        "To call a tool, reply with {\"tool_call\": {\"name\": <tool name>, \"arguments\": \
         <parameters>}}; its result comes back in a tool turn.\n",
    );
    match schema {
        Some(s) => text.push_str(&format!(
            "To give the final answer, reply with {{\"answer\": <answer>}} where the answer \
             matches this JSON Schema:\n{}",
            s.schema
        )),
        None => text.push_str(
            "To give the final answer, reply with {\"answer\": \"<your answer as text>\"}.",
        ),
    }
    Some(text)
}

/// How the local model's prompt shows an assistant turn that called tools: the same object it
/// generates, one per line, after any text.
pub(super) fn render_tool_calls(content: &str, calls: &[ToolCall]) -> String {
    let mut lines: Vec<String> = Vec::new();
    if !content.is_empty() {
        lines.push(content.to_owned());
    }
    lines.extend(calls.iter().map(|call| {
        json!({TOOL_CALL: {"name": call.name, "arguments": call.arguments}}).to_string()
    }));
    lines.join("\n")
}

/// What a constrained generation means: `(content, tool_calls)`. Without tools the text is the
/// answer as is. With tools, a `tool_call` object becomes a call (its id numbered on from the
/// conversation), an `answer` becomes the content: a string answer as its text, a structured
/// one as its JSON.
pub(super) fn interpret(
    text: String,
    messages: &[ChatMessage],
    tools: &[ToolDefinition],
) -> Result<(String, Vec<ToolCall>), String> {
    if tools.is_empty() {
        return Ok((text, Vec::new()));
    }
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| format!("the constrained answer is not JSON ({e}): {text}"))?;
    if let Some(call) = value.get(TOOL_CALL) {
        let name = call
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the tool call names no tool: {text}"))?;
        let arguments = call.get("arguments").cloned().unwrap_or(Value::Null);
        let call = ToolCall {
            id: tool_call_id(messages, 0),
            name: name.to_owned(),
            arguments,
        };
        return Ok((String::new(), vec![call]));
    }
    match value.get(ANSWER) {
        Some(Value::String(answer)) => Ok((answer.clone(), Vec::new())),
        Some(answer) => Ok((answer.to_string(), Vec::new())),
        None => Err(format!(
            "the answer is neither a tool call nor an answer: {text}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calculator() -> ToolDefinition {
        ToolDefinition {
            name: "calculator".into(),
            description: "Evaluates arithmetic.".into(),
            parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
        }
    }

    #[test]
    fn without_tools_the_output_schema_is_the_constraint() {
        let schema = OutputSchema {
            name: "s".into(),
            schema: json!({"type": "object"}),
        };
        assert_eq!(constraint(Some(&schema), &[]), Some(schema.clone()));
        assert_eq!(constraint(None, &[]), None);
        assert_eq!(
            instruction(Some(&schema), &[]).as_deref(),
            Some(
                "Answer only with a JSON object that matches this JSON Schema:\n{\"type\":\"object\"}"
            )
        );
    }

    #[test]
    fn with_tools_the_grammar_pins_each_tool_to_its_parameters() {
        let mut clock = calculator();
        clock.name = "clock".into();
        clock.parameters = json!({"type": "object"});
        let c = constraint(None, &[calculator(), clock]).unwrap();
        let branches = &c.schema["anyOf"];
        let calls = &branches[0]["properties"]["tool_call"]["anyOf"];
        assert_eq!(
            calls[0]["properties"]["name"],
            json!({"const": "calculator"})
        );
        assert_eq!(calls[0]["properties"]["arguments"], calculator().parameters);
        assert_eq!(calls[1]["properties"]["name"], json!({"const": "clock"}));
        assert_eq!(calls[0]["required"], json!(["name", "arguments"]));
        assert_eq!(
            branches[1]["properties"]["answer"],
            json!({"type": "string"})
        );
        assert_eq!(branches[1]["additionalProperties"], json!(false));
    }

    #[test]
    fn generations_become_calls_or_answers() {
        let tools = [calculator()];
        let earlier = [ChatMessage::assistant(
            "",
            vec![ToolCall {
                id: "call_1".into(),
                name: "calculator".into(),
                arguments: json!({}),
            }],
        )];
        let (content, calls) = interpret(
            r#"{"tool_call": {"name": "calculator", "arguments": {"expression": "2*3"}}}"#.into(),
            &earlier,
            &tools,
        )
        .unwrap();
        assert_eq!(content, "");
        assert_eq!(calls[0].id, "call_2");
        assert_eq!(calls[0].arguments, json!({"expression": "2*3"}));

        let text = |t: &str| interpret(t.into(), &[], &tools).unwrap();
        assert_eq!(text(r#"{"answer": "six"}"#), ("six".to_owned(), vec![]));
        assert_eq!(
            text(r#"{"answer": {"n": 6}}"#),
            (r#"{"n":6}"#.to_owned(), vec![])
        );
        assert!(interpret("{\"other\": 1}".into(), &[], &tools).is_err());
        assert_eq!(
            interpret("free text".into(), &[], &[]).unwrap(),
            ("free text".to_owned(), vec![])
        );
    }

    #[test]
    fn tool_calls_render_as_the_generated_object() {
        let call = ToolCall {
            id: "call_1".into(),
            name: "calculator".into(),
            arguments: json!({"expression": "1+1"}),
        };
        assert_eq!(
            render_tool_calls("", &[call]),
            r#"{"tool_call":{"name":"calculator","arguments":{"expression":"1+1"}}}"#
        );
    }
}
