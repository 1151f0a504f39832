//! The loaded local model: candle's quantized Llama over the GGUF weights, its vocabulary, and
//! llguidance's parser factory. Generation is greedy (argmax) so answers are reproducible, and
//! runs on a blocking thread: every call here is CPU-bound.

use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use toktrie::{SimpleVob, TokenId};

use super::prompt::chatml_tokens;
use super::vocab::Vocab;
use super::weights;
use crate::{ChatMessage, OutputSchema};

/// What one generation produced.
#[derive(Debug)]
pub(super) struct Generation {
    pub(super) text: String,
    pub(super) prompt_tokens: usize,
    pub(super) generated_tokens: usize,
}

pub(super) struct Engine {
    /// The weights carry the KV cache, so one generation at a time.
    model: Mutex<ModelWeights>,
    vocab: Arc<Vocab>,
    factory: ParserFactory,
    device: Device,
}

impl Engine {
    /// Reads the GGUF file: metadata, vocabulary, then the quantized weights.
    pub(super) fn load(path: &Path) -> Result<Self, String> {
        let device = Device::Cpu;
        let (content, model) = weights::load(path, &device)?;
        let vocab = Arc::new(Vocab::from_gguf(&content)?);
        let mut factory = ParserFactory::new_simple(&vocab.tok_env())
            .map_err(|e| format!("building the grammar engine failed: {e:#}"))?;
        factory.quiet();
        Ok(Self {
            model: Mutex::new(model),
            vocab,
            factory,
            device,
        })
    }

    /// Generates an answer to `messages` (with `instruction` in the system turn), at most
    /// `max_tokens` tokens long; constrained to `schema` when given.
    pub(super) fn generate(
        &self,
        messages: &[ChatMessage],
        instruction: Option<&str>,
        schema: Option<&OutputSchema>,
        max_tokens: usize,
    ) -> Result<Generation, String> {
        let prompt = chatml_tokens(&self.vocab, messages, instruction)?;
        if prompt.len() + 1 >= MAX_SEQ_LEN {
            return Err(format!(
                "the prompt has {} tokens; the model's context holds {MAX_SEQ_LEN}",
                prompt.len()
            ));
        }
        let budget = max_tokens.min(MAX_SEQ_LEN - 1 - prompt.len());
        let mut matcher = schema.map(|s| self.matcher(s)).transpose()?;

        let mut model = self
            .model
            .lock()
            .map_err(|_| "the model is unusable after an earlier crash".to_owned())?;
        // A previous call's cache belongs to another conversation.
        model.clear_kv_cache();
        let mut logits = self.forward(&mut model, &prompt, 0)?;
        let mut position = prompt.len();
        let mut generated: Vec<TokenId> = Vec::new();
        let finished = loop {
            if generated.len() >= budget {
                break false;
            }
            let next = match matcher.as_mut() {
                Some(m) => {
                    if m.is_stopped() {
                        break true;
                    }
                    let mask = m.compute_mask().map_err(|e| grammar_error(m, &e))?;
                    argmax(&logits, Some(&mask)).ok_or("the grammar allows no token here")?
                }
                None => argmax(&logits, None).ok_or("the model produced no scores")?,
            };
            if self.vocab.stop_tokens.contains(&next) {
                break true;
            }
            // Tokens the grammar forces after `next` go to the model in the same forward pass.
            let mut step = vec![next];
            if let Some(m) = matcher.as_mut() {
                m.consume_token(next).map_err(|e| grammar_error(m, &e))?;
                step.extend(m.consume_ff_tokens());
            }
            generated.extend_from_slice(&step);
            if matcher.as_ref().is_some_and(Matcher::is_stopped) {
                break true;
            }
            logits = self.forward(&mut model, &step, position)?;
            position += step.len();
        };
        drop(model);

        if !finished && matcher.is_some() {
            return Err(format!(
                "the answer reached the {budget}-token limit before the JSON was complete"
            ));
        }
        Ok(Generation {
            text: self.vocab.decode(&generated),
            prompt_tokens: prompt.len(),
            generated_tokens: generated.len(),
        })
    }

    fn matcher(&self, schema: &OutputSchema) -> Result<Matcher, String> {
        let grammar = TopLevelGrammar::from_json_schema(compact_json_schema(&schema.schema));
        let matcher = Matcher::new(self.factory.create_parser(grammar));
        match matcher.get_error() {
            Some(e) => Err(format!(
                "the output schema {} cannot be enforced: {e}",
                schema.name
            )),
            None => Ok(matcher),
        }
    }

    /// Runs `tokens` through the model starting at `position`; the scores of the next token.
    fn forward(
        &self,
        model: &mut ModelWeights,
        tokens: &[TokenId],
        position: usize,
    ) -> Result<Vec<f32>, String> {
        let mut run = || -> candle_core::Result<Vec<f32>> {
            let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
            model
                .forward(&input, position)?
                .squeeze(0)?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()
        };
        run().map_err(|e| format!("the forward pass failed: {e}"))
    }
}

/// Asks llguidance for compact JSON (fixed separators, no free whitespace): a small model left
/// free to emit whitespace can spend its whole budget on newlines.
fn compact_json_schema(schema: &serde_json::Value) -> serde_json::Value {
    let mut schema = schema.clone();
    if let Some(object) = schema.as_object_mut() {
        object.entry("x-guidance").or_insert_with(|| {
            serde_json::json!({
                "whitespace_flexible": false,
                "item_separator": ", ",
                "key_separator": ": ",
            })
        });
    }
    schema
}

/// The highest-scoring token (the first on ties), among those `mask` allows when given.
fn argmax(logits: &[f32], mask: Option<&SimpleVob>) -> Option<TokenId> {
    let mut best: Option<(usize, f32)> = None;
    let mut consider = |index: usize| {
        if let Some(&score) = logits.get(index)
            && !score.is_nan()
            && best.is_none_or(|(_, top)| score > top)
        {
            best = Some((index, score));
        }
    };
    match mask {
        Some(mask) => mask.iter_set_entries(&mut consider),
        None => (0..logits.len()).for_each(&mut consider),
    }
    best.and_then(|(index, _)| TokenId::try_from(index).ok())
}

fn grammar_error(matcher: &Matcher, error: &dyn std::fmt::Display) -> String {
    match matcher.get_error() {
        Some(detail) => format!("constrained decoding failed: {detail}"),
        None => format!("constrained decoding failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_skips_disallowed_and_nan_scores() {
        let logits = [0.5, f32::NAN, 3.0, 2.0, 3.0];
        assert_eq!(argmax(&logits, None), Some(2), "first of the tied maxima");
        let mut mask = SimpleVob::alloc(logits.len());
        mask.allow_token(1);
        mask.allow_token(3);
        assert_eq!(argmax(&logits, Some(&mask)), Some(3));
        let mut only_nan = SimpleVob::alloc(logits.len());
        only_nan.allow_token(1);
        assert_eq!(argmax(&logits, Some(&only_nan)), None);
    }

    #[test]
    fn compact_json_keeps_an_explicit_guidance_choice() {
        let mine =
            serde_json::json!({"type": "object", "x-guidance": {"whitespace_flexible": true}});
        assert_eq!(compact_json_schema(&mine), mine);
        let plain = serde_json::json!({"type": "object"});
        assert_eq!(
            compact_json_schema(&plain)["x-guidance"]["whitespace_flexible"],
            serde_json::json!(false)
        );
    }
}
