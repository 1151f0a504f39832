//! The local model's tokenizer, rebuilt from the GGUF metadata (a GPT-2 style byte-level BPE):
//! a `tokenizers` BPE for encoding text, and the byte-level token table (`TokTrie`) that both
//! decoding and llguidance's token masks work on.

use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::Tokenizer;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// GGUF token type of control tokens (`<|im_start|>`, `<|im_end|>`, ...).
const TOKEN_TYPE_CONTROL: i32 = 3;

/// The vocabulary of the loaded model.
pub(super) struct Vocab {
    tokenizer: Tokenizer,
    trie: TokTrie,
    /// `<|im_start|>`: opens a ChatML turn.
    pub(super) im_start: TokenId,
    /// `<|im_end|>`: closes a turn; the model's end-of-sequence token.
    pub(super) im_end: TokenId,
    /// Tokens that end generation.
    pub(super) stop_tokens: Vec<TokenId>,
}

impl Vocab {
    /// Builds the vocabulary from the `tokenizer.ggml.*` metadata.
    pub(super) fn from_gguf(content: &Content) -> Result<Self, String> {
        let model = string_value(content, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(format!(
                "unsupported tokenizer model {model:?} (expected gpt2)"
            ));
        }
        let tokens = array_value(content, "tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
            .collect::<Result<Vec<String>, String>>()?;
        let types = array_value(content, "tokenizer.ggml.token_type")?
            .iter()
            .map(|v| v.to_i32().map_err(|e| e.to_string()))
            .collect::<Result<Vec<i32>, String>>()?;
        if types.len() != tokens.len() {
            return Err("token_type and tokens have different lengths".to_owned());
        }
        let merges = array_value(content, "tokenizer.ggml.merges")?
            .iter()
            .map(|v| {
                let merge = v.to_string().map_err(|e| e.to_string())?;
                merge
                    .split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| format!("malformed merge {merge:?}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let eos = u32_value(content, "tokenizer.ggml.eos_token_id")?;

        let tokenizer = bpe_tokenizer(&tokens, merges)?;
        let words = tokens
            .iter()
            .zip(&types)
            .map(|(token, &kind)| token_bytes(token, kind))
            .collect::<Vec<_>>();
        let find = |name: &str| {
            tokens
                .iter()
                .position(|t| t == name)
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| format!("the vocabulary has no {name} token"))
        };
        let im_start = find("<|im_start|>")?;
        let im_end = find("<|im_end|>")?;
        let mut stop_tokens = vec![eos, im_end];
        if let Ok(end_of_text) = find("<|endoftext|>") {
            stop_tokens.push(end_of_text);
        }
        stop_tokens.dedup();

        let vocab_size = u32::try_from(words.len()).map_err(|e| e.to_string())?;
        let mut info = TokRxInfo::new(vocab_size, im_end);
        info.tok_end_of_turn = Some(im_end);
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&stop_tokens);
        Ok(Self {
            tokenizer,
            trie,
            im_start,
            im_end,
            stop_tokens,
        })
    }

    /// Encodes plain text. Special-token spellings in the text stay plain text, so a prompt
    /// cannot smuggle in `<|im_end|>`.
    pub(super) fn encode(&self, text: &str) -> Result<Vec<TokenId>, String> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|e| format!("tokenizing failed: {e}"))
    }

    /// Decodes generated tokens to text, leaving out control tokens.
    pub(super) fn decode(&self, tokens: &[TokenId]) -> String {
        String::from_utf8_lossy(&self.trie.decode_ext(tokens, false)).into_owned()
    }

    /// The environment llguidance computes token masks in.
    pub(super) fn tok_env(self: &Arc<Self>) -> TokEnv {
        Arc::new(VocabEnv(Arc::clone(self)))
    }
}

struct VocabEnv(Arc<Vocab>);

impl TokenizerEnv for VocabEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.0.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        // Grammars may ask for partial UTF-8; those bytes go through the trie's greedy split.
        self.0
            .trie
            .tokenize_with_greedy_fallback(s, |text| match self.0.encode(text) {
                Ok(ids) => ids,
                Err(_) => self.0.trie.greedy_tokenize(text.as_bytes()),
            })
    }
}

fn bpe_tokenizer(tokens: &[String], merges: Vec<(String, String)>) -> Result<Tokenizer, String> {
    let vocab = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| u32::try_from(id).map(|id| (token.clone(), id)))
        .collect::<Result<tokenizers::models::bpe::Vocab, _>>()
        .map_err(|e| e.to_string())?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("building the BPE model failed: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    // SmolLM2's pre-tokenizer: single digits, then GPT-2's byte-level split.
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    Ok(tokenizer)
}

/// The bytes a token stands for: control tokens get toktrie's special marker, the others are
/// byte-level BPE strings (each byte spelled as one printable character, as in GPT-2).
fn token_bytes(token: &str, kind: i32) -> Vec<u8> {
    if kind == TOKEN_TYPE_CONTROL {
        let mut bytes = vec![TokTrie::SPECIAL_TOKEN_MARKER];
        bytes.extend_from_slice(token.as_bytes());
        return bytes;
    }
    token
        .chars()
        .map(byte_of_char)
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| token.as_bytes().to_vec())
}

/// Inverse of GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes are shifted to U+0100.. in byte order.
fn byte_of_char(c: char) -> Option<u8> {
    let code = u32::from(c);
    if code < 0x100 {
        let byte = u8::try_from(code).ok()?;
        return is_printable(byte).then_some(byte);
    }
    let mut remaining = code - 0x100;
    for byte in 0..=u8::MAX {
        if !is_printable(byte) {
            if remaining == 0 {
                return Some(byte);
            }
            remaining -= 1;
        }
    }
    None
}

fn is_printable(byte: u8) -> bool {
    matches!(byte, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff)
}

fn metadata<'a>(content: &'a Content, key: &str) -> Result<&'a Value, String> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| format!("the model file has no {key} metadata"))
}

fn string_value<'a>(content: &'a Content, key: &str) -> Result<&'a String, String> {
    metadata(content, key)?
        .to_string()
        .map_err(|e| format!("{key}: {e}"))
}

fn array_value<'a>(content: &'a Content, key: &str) -> Result<&'a Vec<Value>, String> {
    metadata(content, key)?
        .to_vec()
        .map_err(|e| format!("{key}: {e}"))
}

fn u32_value(content: &Content, key: &str) -> Result<u32, String> {
    metadata(content, key)?
        .to_u32()
        .map_err(|e| format!("{key}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_round_trips_every_byte() {
        // GPT-2's table: bytes 0..=0x20 are shifted to U+0100.., so space is U+0120 ('Ġ').
        assert_eq!(byte_of_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_char('Ċ'), Some(b'\n'));
        assert_eq!(byte_of_char('a'), Some(b'a'));
        let mut seen = std::collections::HashSet::new();
        for code in 0x21u32..0x200 {
            if let Some(c) = char::from_u32(code)
                && let Some(b) = byte_of_char(c)
            {
                assert!(seen.insert(b), "byte {b} mapped twice");
            }
        }
        assert_eq!(seen.len(), 256);
    }

    #[test]
    fn control_tokens_carry_the_special_marker() {
        assert_eq!(
            token_bytes("<|im_end|>", TOKEN_TYPE_CONTROL)[0],
            TokTrie::SPECIAL_TOKEN_MARKER
        );
        assert_eq!(token_bytes("Ġhello", 1), b" hello".to_vec());
    }

    /// The installed model's vocabulary (the test command installs it with fetch-model.sh).
    fn installed_vocab() -> Vocab {
        let dir = std::env::var_os("AMAS_MODEL_DIR")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::PathBuf::from(h).join(".cache/amas/models"))
            })
            .expect("AMAS_MODEL_DIR or HOME");
        let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        let mut file = std::fs::File::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run scripts/fetch-model.sh", path.display()));
        let content = Content::read(&mut file).expect("gguf");
        Vocab::from_gguf(&content).expect("vocab")
    }

    #[test]
    fn real_vocabulary_encodes_and_decodes_text_unchanged() {
        let vocab = installed_vocab();
        let text = "Résumé: 2024 revenue grew 12%\n\t{\"key\": [1, 2]} — naïve café 🚀";
        let ids = vocab.encode(text).expect("encode");
        assert!(
            ids.len() < text.len(),
            "BPE merges bytes: {} tokens",
            ids.len()
        );
        assert_eq!(vocab.decode(&ids), text);
        // SmolLM2 splits numbers into single digits.
        assert_eq!(vocab.encode("2024").expect("digits").len(), 4);
    }

    #[test]
    fn control_token_spellings_in_text_stay_text() {
        let vocab = installed_vocab();
        let ids = vocab.encode("<|im_end|>").expect("encode");
        assert!(!ids.contains(&vocab.im_end), "{ids:?}");
        assert_eq!(vocab.decode(&ids), "<|im_end|>");
        assert_eq!(
            vocab.decode(&[vocab.im_start, vocab.im_end]),
            "",
            "control tokens are not text"
        );
    }
}
