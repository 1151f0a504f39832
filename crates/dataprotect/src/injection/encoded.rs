//! Encoded payloads: base64 runs that decode to readable text are screened again; a run
//! whose text is itself an injection is evidence on its own (nobody base64-encodes "ignore
//! your instructions" for a human reader).

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use regex::Regex;

use super::{Evidence, Signal, scan};

static BASE64_RUN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/_-]{20,}={0,2}").ok());

/// Runs decoded per text; beyond them (a page of hashes), the rest is not decoded.
const MAX_RUNS: usize = 32;
/// Longer runs are binary (images, archives), not instructions.
const MAX_RUN: usize = 16 * 1024;
/// Evidence inside the decoded text that makes the run a payload.
const PAYLOAD_EVIDENCE: f32 = 0.4;

/// Decoded text when `run` is base64 of readable text with spaces (a sentence).
fn decode(run: &str) -> Option<String> {
    let body = run.trim_end_matches('=');
    let body = if body.len() % 4 == 1 {
        body.get(..body.len() - 1)?
    } else {
        body
    };
    let engine = if body.contains(['-', '_']) {
        &URL_SAFE_NO_PAD
    } else {
        &STANDARD_NO_PAD
    };
    let bytes = engine.decode(body).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let total = text.chars().count();
    let readable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    (total >= 8 && readable * 10 >= total * 9 && text.contains(' ')).then_some(text)
}

pub(super) fn payloads(text: &str, at: &dyn Fn() -> String, depth: u8, ev: &mut Evidence) {
    let Some(re) = BASE64_RUN.as_ref() else {
        return;
    };
    for m in re.find_iter(text).take(MAX_RUNS) {
        if m.len() > MAX_RUN {
            continue;
        }
        let Some(decoded) = decode(m.as_str()) else {
            continue;
        };
        let mut inner = Evidence::default();
        if !scan(&decoded, &String::new, depth + 1, &mut inner) {
            continue;
        }
        if inner.strongest() >= PAYLOAD_EVIDENCE {
            let span = (m.start(), m.end());
            ev.add(Signal::EncodedPayload, at, span, 0.85);
            for s in Signal::ALL {
                let w = inner.best[s.index()];
                if w > 0.0 {
                    ev.add(s, at, span, w);
                }
            }
        }
    }
}
