//! Credentials with a recognisable shape: vendor prefixes (`sk-`, `ghp_`, `AKIA`...), JWTs
//! (three base64url parts whose header decodes to a JSON object) and PEM private-key blocks.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::text::{boundary_after, boundary_before, count_while};
use crate::finding::{Finding, FindingKind};

#[derive(Clone, Copy)]
enum Shape {
    /// Body charset, min and max body length, confidence, detector name.
    Prefixed(fn(u8) -> bool, usize, usize, f32, &'static str),
    Jwt,
    Pem,
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
fn alnum_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}
fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}
fn alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const PREFIXES: &[(&str, Shape)] = &[
    (
        "sk-",
        Shape::Prefixed(alnum_dash, 20, 200, 0.9, "openai_key"),
    ),
    ("ghp_", Shape::Prefixed(alnum, 30, 40, 0.95, "github_token")),
    ("gho_", Shape::Prefixed(alnum, 30, 40, 0.95, "github_token")),
    ("ghu_", Shape::Prefixed(alnum, 30, 40, 0.95, "github_token")),
    ("ghs_", Shape::Prefixed(alnum, 30, 40, 0.95, "github_token")),
    (
        "github_pat_",
        Shape::Prefixed(alnum_underscore, 22, 255, 0.95, "github_token"),
    ),
    (
        "xoxb-",
        Shape::Prefixed(alnum_dash, 10, 200, 0.9, "slack_token"),
    ),
    (
        "xoxp-",
        Shape::Prefixed(alnum_dash, 10, 200, 0.9, "slack_token"),
    ),
    (
        "AKIA",
        Shape::Prefixed(upper_digit, 16, 16, 0.9, "aws_access_key"),
    ),
    (
        "ASIA",
        Shape::Prefixed(upper_digit, 16, 16, 0.9, "aws_access_key"),
    ),
    (
        "AIza",
        Shape::Prefixed(alnum_dash, 35, 35, 0.9, "google_api_key"),
    ),
    ("eyJ", Shape::Jwt),
    ("-----BEGIN ", Shape::Pem),
];

pub struct PrefixMatcher {
    ac: AhoCorasick,
}

impl PrefixMatcher {
    pub fn new() -> Result<Self, String> {
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(PREFIXES.iter().map(|(p, _)| p))
            .map_err(|e| e.to_string())?;
        Ok(Self { ac })
    }

    pub fn detect(&self, bytes: &[u8], out: &mut Vec<Finding>) {
        let mut next_free = 0;
        for m in self.ac.find_iter(bytes) {
            let (s, e) = (m.start(), m.end());
            if s < next_free || !boundary_before(bytes, s) {
                continue;
            }
            let found = match PREFIXES[m.pattern().as_usize()].1 {
                Shape::Prefixed(charset, min, max, conf, name) => {
                    let n = count_while(bytes, e, max + 1, charset);
                    let body = &bytes[e..e + n];
                    // Require a digit: real keys have them, prose like "sk-learn-..." does not.
                    let ok = (min..=max).contains(&n)
                        && boundary_after(bytes, e + n)
                        && body.iter().any(u8::is_ascii_digit);
                    ok.then(|| Finding::new(FindingKind::ApiKey, s, e + n, conf, name))
                }
                Shape::Jwt => jwt(bytes, s),
                Shape::Pem => pem(bytes, s, e),
            };
            if let Some(f) = found {
                next_free = f.end;
                out.push(f);
            }
        }
    }
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn jwt(bytes: &[u8], s: usize) -> Option<Finding> {
    let h = count_while(bytes, s, 4096, b64url);
    let mut j = s + h;
    let mut parts = 1;
    while parts < 3 && bytes.get(j) == Some(&b'.') {
        let n = count_while(bytes, j + 1, 65536, b64url);
        if n == 0 {
            break;
        }
        j += 1 + n;
        parts += 1;
    }
    if parts < 3 || !boundary_after(bytes, j) {
        return None;
    }
    let header = URL_SAFE_NO_PAD.decode(&bytes[s..s + h]).ok()?;
    let is_object = matches!(
        serde_json::from_slice::<serde_json::Value>(&header),
        Ok(serde_json::Value::Object(_))
    );
    is_object.then(|| Finding::new(FindingKind::Jwt, s, j, 0.95, "jwt"))
}

/// A PEM private-key block. Without an END line the block runs to the end of its base64 lines,
/// so a truncated key is still covered entirely.
fn pem(bytes: &[u8], s: usize, e: usize) -> Option<Finding> {
    let label_len = count_while(bytes, e, 40, |b| b.is_ascii_uppercase() || b == b' ');
    let label = &bytes[e..e + label_len];
    if !label.ends_with(b"PRIVATE KEY")
        || bytes.get(e + label_len..e + label_len + 5) != Some(b"-----")
    {
        return None;
    }
    let body_start = e + label_len + 5;
    let search_end = (body_start + 16384).min(bytes.len());
    let end_marker = b"-----END ";
    let end = memchr::memmem::find(&bytes[body_start..search_end], end_marker).map_or_else(
        || {
            body_start
                + count_while(bytes, body_start, 16384, |b| {
                    b.is_ascii_alphanumeric()
                        || matches!(
                            b,
                            b'+' | b'/' | b'=' | b'\n' | b'\r' | b':' | b' ' | b',' | b'-'
                        )
                })
        },
        |k| {
            let tail = body_start + k + end_marker.len();
            let after_label =
                tail + count_while(bytes, tail, 40, |b| b.is_ascii_uppercase() || b == b' ');
            after_label + count_while(bytes, after_label, 5, |b| b == b'-')
        },
    );
    Some(Finding::new(
        FindingKind::PrivateKey,
        s,
        end,
        0.99,
        "pem_private_key",
    ))
}
