//! ChatML prompts for the local model: `<|im_start|>role\ncontent<|im_end|>\n` per message,
//! then an open assistant turn. Control tokens are inserted by id, never parsed from text.
//!
//! SmolLM2 has no tool template, so tool use is rendered in plain ChatML: an assistant turn
//! that called tools shows the `{"tool_call": ...}` objects the model generates (see
//! [`super::tools`]), and a tool result is a `tool` turn whose first line names the call it
//! answers. Results get their own role rather than the user's, so untrusted tool output never
//! speaks with the user's voice.

use toktrie::TokenId;

use super::tools::render_tool_calls;
use super::vocab::Vocab;
use crate::{ChatMessage, Role};

/// Builds the prompt tokens for `messages`. `instruction` (how to answer, which tools exist)
/// is appended to the first system message, or is the system turn when there is none.
pub(super) fn chatml_tokens(
    vocab: &Vocab,
    messages: &[ChatMessage],
    instruction: Option<&str>,
) -> Result<Vec<TokenId>, String> {
    let mut tokens = Vec::new();
    let turn = |tokens: &mut Vec<TokenId>, role: &str, content: &str| -> Result<(), String> {
        tokens.push(vocab.im_start);
        tokens.extend(vocab.encode(&format!("{role}\n{content}"))?);
        tokens.push(vocab.im_end);
        tokens.extend(vocab.encode("\n")?);
        Ok(())
    };
    let has_system = messages.iter().any(|m| m.role == Role::System);
    if !has_system && let Some(instruction) = instruction {
        turn(&mut tokens, "system", instruction)?;
    }
    let mut instructed = false;
    for message in messages {
        match (instruction, message.role) {
            (Some(instruction), Role::System) if !instructed => {
                instructed = true;
                turn(
                    &mut tokens,
                    "system",
                    &format!("{}\n\n{instruction}", message.content),
                )?;
            }
            (_, Role::System) => turn(&mut tokens, "system", &message.content)?,
            (_, Role::User) => turn(&mut tokens, "user", &message.content)?,
            (_, Role::Assistant) if !message.tool_calls.is_empty() => turn(
                &mut tokens,
                "assistant",
                &render_tool_calls(&message.content, &message.tool_calls),
            )?,
            (_, Role::Assistant) => turn(&mut tokens, "assistant", &message.content)?,
            (_, Role::Tool) => turn(&mut tokens, "tool", &tool_result(messages, message))?,
        }
    }
    tokens.push(vocab.im_start);
    tokens.extend(vocab.encode("assistant\n")?);
    Ok(tokens)
}

/// A tool turn's text: which tool answered (found through the call id), then its output.
fn tool_result(messages: &[ChatMessage], result: &ChatMessage) -> String {
    let id = result.tool_call_id.as_deref().unwrap_or_default();
    let name = messages
        .iter()
        .flat_map(|m| &m.tool_calls)
        .find(|call| call.id == id)
        .map_or("unknown", |call| call.name.as_str());
    format!("Result of {name} ({id}):\n{}", result.content)
}
