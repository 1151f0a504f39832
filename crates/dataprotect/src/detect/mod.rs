//! The detectors and the single scan that runs them all. Each detector finds cheap anchors
//! (a digit at a word start, an `@`, a `:`, a known prefix or context word via Aho-Corasick)
//! and then validates the candidate (checksums, ranges, context), so the cost on text without
//! findings is a few linear passes over the bytes.

mod context;
mod email;
mod ip;
mod markers;
mod numeric;
mod secrets;
mod text;

use crate::finding::{Finding, resolve_overlaps};

/// Findings before confidence filtering, plus the facts classification needs.
pub(crate) struct RawScan {
    pub findings: Vec<Finding>,
    pub medical_context: bool,
}

/// Compiled detectors; build once, share freely (`Send + Sync`).
pub(crate) struct Detectors {
    context: context::ContextMatcher,
    secrets: secrets::PrefixMatcher,
}

impl Detectors {
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            context: context::ContextMatcher::new()?,
            secrets: secrets::PrefixMatcher::new()?,
        })
    }

    pub fn scan(&self, text: &str, min_confidence: f32) -> RawScan {
        let bytes = text.as_bytes();
        let ctx = self.context.index(bytes);
        let mut out = Vec::new();
        email::detect(bytes, &mut out);
        ip::detect_v6(text, &mut out);
        numeric::detect(bytes, &ctx, &mut out);
        self.secrets.detect(bytes, &mut out);
        context::detect_values(text, &ctx, &mut out);
        out.retain(|f| f.confidence >= min_confidence);
        // Our own redaction output must never be detected again (idempotence), so anything
        // touching a redaction marker such as `[MRN:1a2b3c4d]` is dropped.
        let marks = markers::find(bytes);
        if !marks.is_empty() {
            out.retain(|f| !markers::overlaps(&marks, f.start, f.end));
        }
        let mut findings = resolve_overlaps(out);
        for f in &mut findings {
            text::snap_to_chars(text, f);
        }
        RawScan {
            findings,
            medical_context: ctx.medical,
        }
    }
}

impl Detectors {
    /// Does `s` contain a context word (used to give JSON values their key as context)?
    pub fn has_context(&self, s: &str) -> bool {
        !self.context.index(s.as_bytes()).hits.is_empty()
    }
}
