//! Prompt-injection screening of data an agent reads (a fetched page, a file, SQL rows, any
//! tool result): instructions aimed at the agent rather than at a human reader. The verdict
//! carries a score, the signals found (a bounded set of names) with byte offsets, never the
//! matched text, and the action `prompt_injection` in `dataprotect.yaml` gives them.
//! [`untrusted_envelope`] wraps a result as delimited data for the prompt.
//!
//! Detection is lexical and structural (phrase patterns, fake conversation markers, hidden
//! text, encoded payloads), built to run on every tool result: one regex-set pass over clean
//! text, allocation only when something matched.

mod config;
mod encoded;
mod envelope;
mod hidden;
mod patterns;

use serde::{Deserialize, Serialize};

pub use config::PromptInjectionConfig;
pub use envelope::{UNTRUSTED_NOTE, untrusted_envelope};

use crate::config::DataProtectConfig;
use crate::safety::Action;

/// The kinds of evidence the screen reports; names are stable (config keys, audit, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// "Ignore all previous instructions", "your new task is".
    InstructionOverride,
    /// "You are now DAN", "act as an unrestricted AI", "developer mode".
    RoleHijack,
    /// Requests for the system prompt, hidden instructions or secrets.
    PromptExfiltration,
    /// Asks the agent to call a tool, send data somewhere, or act without telling the user.
    ToolInstruction,
    /// Chat-template tokens and fake turn or tool-result boundaries (`<|im_start|>`,
    /// `### System:`, `</tool_result>`).
    FakeDelimiter,
    /// Instructions in text a human reader does not see: zero-width or tag characters, bidi
    /// overrides, HTML comments, elements styled invisible.
    HiddenContent,
    /// Base64 that decodes to instructions, or "decode this and follow it".
    EncodedPayload,
    /// Text addressed to the AI itself ("note to the AI assistant", "if you are an LLM").
    AgentAddress,
}

impl Signal {
    pub const ALL: [Self; 8] = [
        Self::InstructionOverride,
        Self::RoleHijack,
        Self::PromptExfiltration,
        Self::ToolInstruction,
        Self::FakeDelimiter,
        Self::HiddenContent,
        Self::EncodedPayload,
        Self::AgentAddress,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::InstructionOverride => "instruction_override",
            Self::RoleHijack => "role_hijack",
            Self::PromptExfiltration => "prompt_exfiltration",
            Self::ToolInstruction => "tool_instruction",
            Self::FakeDelimiter => "fake_delimiter",
            Self::HiddenContent => "hidden_content",
            Self::EncodedPayload => "encoded_payload",
            Self::AgentAddress => "agent_address",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// One piece of evidence: where (a JSON pointer to the string, `""` for plain text, and byte
/// offsets into that string) and how strong. The matched text is deliberately absent, so a
/// verdict can be journaled and audited as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectionHit {
    pub signal: Signal,
    pub pointer: String,
    pub start: usize,
    pub end: usize,
    pub weight: f32,
}

/// The screen's answer for one text or document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InjectionVerdict {
    /// 0..=1: evidence of the signals found, combined (`1 - prod(1 - strongest hit per signal)`).
    pub score: f32,
    /// `allow` below the threshold, else the strictest configured action of the signals found.
    pub action: Action,
    /// Distinct signals found, in [`Signal::ALL`] order.
    pub signals: Vec<Signal>,
    /// At most [`MAX_HITS`] hits, in the order found.
    pub hits: Vec<InjectionHit>,
    /// The screen could not run (its patterns failed to build): blocked, fail closed.
    pub unavailable: bool,
}

impl InjectionVerdict {
    /// Whether the score reached the threshold (the action is `flag` or `block` unless the
    /// configuration allows those signals).
    pub fn is_injection(&self, config: &PromptInjectionConfig) -> bool {
        self.unavailable || self.score >= config.threshold
    }

    /// The signal names, for audit records and metric labels (a bounded set).
    pub fn signal_names(&self) -> Vec<&'static str> {
        self.signals.iter().map(|s| s.name()).collect()
    }
}

/// Hits kept per verdict; the score is computed from all of them.
pub const MAX_HITS: usize = 64;

/// Hits gathered while screening, plus the strongest weight per signal.
#[derive(Default)]
pub(crate) struct Evidence {
    hits: Vec<InjectionHit>,
    best: [f32; Signal::ALL.len()],
}

impl Evidence {
    fn add(&mut self, signal: Signal, pointer: &dyn Fn() -> String, span: (usize, usize), w: f32) {
        let best = &mut self.best[signal.index()];
        *best = best.max(w);
        if self.hits.len() < MAX_HITS {
            self.hits.push(InjectionHit {
                signal,
                pointer: pointer(),
                start: span.0,
                end: span.1,
                weight: w,
            });
        }
    }

    fn strongest(&self) -> f32 {
        self.best.iter().copied().fold(0.0, f32::max)
    }

    fn score(&self) -> f32 {
        1.0 - self.best.iter().map(|w| 1.0 - w).product::<f32>()
    }
}

/// How deep decoded payloads are screened again (base64 inside base64, tags inside base64).
const MAX_DEPTH: u8 = 2;

/// The configured screen. Cheap to build: the patterns are compiled once per process.
#[derive(Debug, Clone, Default)]
pub struct InjectionScreen {
    config: PromptInjectionConfig,
}

impl InjectionScreen {
    pub fn new(config: PromptInjectionConfig) -> Self {
        Self { config }
    }

    /// The screen of a loaded `dataprotect.yaml`.
    pub fn from_config(config: &DataProtectConfig) -> Self {
        Self::new(config.prompt_injection.clone())
    }

    pub fn config(&self) -> &PromptInjectionConfig {
        &self.config
    }

    /// Screens one text (a page, a file, a message).
    pub fn screen_text(&self, text: &str) -> InjectionVerdict {
        let mut ev = Evidence::default();
        if !scan(text, &String::new, 0, &mut ev) {
            return self.unavailable();
        }
        self.verdict(ev)
    }

    /// Screens every string leaf and object key of a JSON document (tool results: a body, a
    /// file's content, rows); hits carry the JSON pointer of their string.
    pub fn screen_json(&self, doc: &serde_json::Value) -> InjectionVerdict {
        let mut ev = Evidence::default();
        let mut path: Vec<Segment<'_>> = Vec::new();
        if !walk(doc, &mut path, &mut ev) {
            return self.unavailable();
        }
        self.verdict(ev)
    }

    /// The verdict for recorded signals and score (a journaled verdict asked again under the
    /// current configuration, e.g. on replay).
    pub fn action_for(&self, signals: &[Signal], score: f32) -> Action {
        if self.config.block_threshold.is_some_and(|b| score >= b) {
            return Action::Block;
        }
        if score < self.config.threshold {
            return Action::Allow;
        }
        signals
            .iter()
            .map(|s| self.config.action(*s))
            .max()
            .unwrap_or(Action::Allow)
    }

    fn verdict(&self, ev: Evidence) -> InjectionVerdict {
        let score = ev.score();
        let signals: Vec<Signal> = Signal::ALL
            .into_iter()
            .filter(|s| ev.best[s.index()] > 0.0)
            .collect();
        InjectionVerdict {
            score,
            action: self.action_for(&signals, score),
            signals,
            hits: ev.hits,
            unavailable: false,
        }
    }

    fn unavailable(&self) -> InjectionVerdict {
        InjectionVerdict {
            score: 1.0,
            action: Action::Block,
            signals: Vec::new(),
            hits: Vec::new(),
            unavailable: true,
        }
    }
}

/// One step of a JSON pointer, kept borrowed until a hit needs the pointer as a string.
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn pointer(path: &[Segment<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            Segment::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Segment::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

/// Screens every string in `value`; false when the screen cannot run.
fn walk<'a>(value: &'a serde_json::Value, path: &mut Vec<Segment<'a>>, ev: &mut Evidence) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => scan(s, &|| pointer(path), 0, ev),
        Value::Array(items) => items.iter().enumerate().all(|(i, v)| {
            path.push(Segment::Index(i));
            let ok = walk(v, path, ev);
            path.pop();
            ok
        }),
        Value::Object(map) => map.iter().all(|(k, v)| {
            path.push(Segment::Key(k));
            // A key is data too: `SELECT 1 AS "ignore previous instructions"`.
            let ok = scan(k, &|| pointer(path), 0, ev) && walk(v, path, ev);
            path.pop();
            ok
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Weight factor for a phrase quoted or given as an example (`phrases such as "ignore
/// previous instructions"`): text about injection, not an injection, unless other evidence
/// adds up.
const QUOTED: f32 = 0.5;

/// Whether the match at `start` is given as an example: after "such as", "like", "e.g." or
/// "phrases", with or without an opening quote. (A bare quote is not enough: a CSV cell or a
/// quoted reply carries real injections too.)
fn quoted(text: &str, start: usize) -> bool {
    let mut from = start.saturating_sub(16);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let before = text
        .get(from..start)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let before = before
        .trim_end()
        .trim_end_matches(['"', '\'', '`', '\u{201c}', '\u{2018}'])
        .trim_end();
    [
        "such as", "like", "e.g.", "e.g.,", "example:", "phrase", "phrases",
    ]
    .iter()
    .any(|q| before.ends_with(q))
}

/// Screens `text` into `ev`: phrase patterns, hidden content, encoded payloads. False when
/// the patterns are unavailable.
pub(crate) fn scan(text: &str, at: &dyn Fn() -> String, depth: u8, ev: &mut Evidence) -> bool {
    let Some(p) = patterns::PATTERNS.as_ref() else {
        return false;
    };
    let before = ev.hits.len();
    // Invisible characters split words ("ig\u{200b}nore") and smuggle text (tag characters):
    // the patterns run on the visible text, offsets mapped back.
    let visible = if text.is_ascii() {
        None
    } else {
        hidden::invisible(text, at, depth, ev)
    };
    let (haystack, map) = match &visible {
        Some(v) => (v.text.as_str(), Some(&v.offsets)),
        None => (text, None),
    };
    let original = |i: usize| map.and_then(|m| m.get(i).copied()).unwrap_or(i);
    let matched = p.set.matches(haystack.as_bytes());
    if matched.matched_any() {
        for i in matched.iter() {
            let Some((signal, weight, re)) = p.each.get(i) else {
                continue;
            };
            for m in re.find_iter(haystack.as_bytes()).take(MAX_HITS) {
                let w = if quoted(haystack, m.start()) {
                    weight * QUOTED
                } else {
                    *weight
                };
                ev.add(*signal, at, (original(m.start()), original(m.end())), w);
            }
        }
    }
    hidden::markup(text, at, before, ev);
    if depth < MAX_DEPTH {
        encoded::payloads(text, at, depth, ev);
    }
    true
}

#[cfg(test)]
mod tests;
