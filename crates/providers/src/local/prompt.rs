//! ChatML prompts for the local model: `<|im_start|>role\ncontent<|im_end|>\n` per message,
//! then an open assistant turn. Control tokens are inserted by id, never parsed from text.

use toktrie::TokenId;

use super::vocab::Vocab;
use crate::{ChatMessage, OutputSchema, Role};

/// Builds the prompt tokens for `messages`. When the answer is constrained to a schema the
/// schema is also shown to the model: the grammar guarantees the shape, the instruction helps
/// the tiny model fill it with something sensible.
pub(super) fn chatml_tokens(
    vocab: &Vocab,
    messages: &[ChatMessage],
    schema: Option<&OutputSchema>,
) -> Result<Vec<TokenId>, String> {
    let mut tokens = Vec::new();
    let turn = |tokens: &mut Vec<TokenId>, role: &str, content: &str| -> Result<(), String> {
        tokens.push(vocab.im_start);
        tokens.extend(vocab.encode(&format!("{role}\n{content}"))?);
        tokens.push(vocab.im_end);
        tokens.extend(vocab.encode("\n")?);
        Ok(())
    };
    let instruction = schema.map(|s| {
        format!(
            "Answer only with a JSON object that matches this JSON Schema:\n{}",
            s.schema
        )
    });
    let has_system = messages.iter().any(|m| m.role == Role::System);
    if !has_system && let Some(instruction) = &instruction {
        turn(&mut tokens, "system", instruction)?;
    }
    let mut instructed = false;
    for message in messages {
        let role = match message.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match (&instruction, message.role) {
            (Some(instruction), Role::System) if !instructed => {
                instructed = true;
                turn(
                    &mut tokens,
                    role,
                    &format!("{}\n\n{instruction}", message.content),
                )?;
            }
            _ => turn(&mut tokens, role, &message.content)?,
        }
    }
    tokens.push(vocab.im_start);
    tokens.extend(vocab.encode("assistant\n")?);
    Ok(tokens)
}
