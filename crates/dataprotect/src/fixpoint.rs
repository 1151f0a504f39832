//! Makes redaction idempotent when findings touch their neighbours. A detector's decision can
//! depend on the byte next to a span (word boundaries, "inside a longer number"), and
//! replacing a span changes that byte: `8.8.8.8+44 20 7946 0958` hides the phone behind the
//! `8`, `[IP_ADDRESS]+44...` does not. When a replacement sits next to such a byte, the output
//! is scanned again and anything new is mapped back onto the input and redacted too, until
//! nothing new appears. Findings surrounded by spaces or ordinary punctuation never trigger it.

use crate::finding::{Finding, resolve_overlaps};

const QUIET: &[u8] = b".,;!?)>\"'";

/// Re-scans at most this many times. Each round only runs when a replacement touched a
/// meaningful neighbour and the re-scan found something new; glued runs of many values
/// (`(555) 123-4567123-45-6789AKIA...`) can uncover one value per round, and stopping early
/// would leave the last one in the output.
pub(crate) const MAX_ROUNDS: usize = 16;

fn quiet_left(bytes: &[u8], start: usize) -> bool {
    let l = bytes[start - 1];
    if l.is_ascii_whitespace() {
        // "+44 20 7946 0958alice@...": a digit group before the span may have been cut short.
        return !(start >= 2 && bytes[start - 2].is_ascii_digit());
    }
    b"(<\"'=,;{".contains(&l)
}

fn quiet_right(bytes: &[u8], end: usize) -> bool {
    let r = bytes[end];
    let r2 = bytes.get(end + 1).copied();
    if r.is_ascii_whitespace() {
        // "... 1111 555-123-4567": a following digit group is judged by what precedes it.
        return !r2.is_some_and(|b| b.is_ascii_digit());
    }
    QUIET.contains(&r) && r2.is_none_or(|b| b.is_ascii_whitespace() || QUIET.contains(&b))
}

/// Does any finding touch a byte whose meaning its replacement could change?
pub(crate) fn needs_recheck(text: &str, findings: &[Finding]) -> bool {
    let bytes = text.as_bytes();
    findings.iter().any(|f| {
        (f.start > 0 && !quiet_left(bytes, f.start))
            || (f.end < bytes.len() && !quiet_right(bytes, f.end))
    })
}

/// Maps a finding in the redacted output back to the input. `spans` pairs each replaced input
/// span with its output span, in order.
/// (input span, output span) of one replacement.
type Replaced = ((usize, usize), (usize, usize));

fn map_back(spans: &[Replaced], f: &Finding) -> Finding {
    let to_input = |pos: usize, is_end: bool| {
        let mut delta: isize = 0;
        for &((is, ie), (os, oe)) in spans {
            if pos < os || (is_end && pos == os) {
                break;
            }
            if pos < oe {
                // Inside a replacement: the whole replaced input span is covered.
                return if is_end { ie } else { is };
            }
            delta = ie as isize - oe as isize;
        }
        pos.saturating_add_signed(delta)
    };
    let mut m = f.clone();
    m.start = to_input(f.start, false);
    m.end = to_input(f.end, true).max(m.start);
    m
}

pub(crate) fn merge(mut base: Vec<Finding>, extra: Vec<Finding>) -> Vec<Finding> {
    base.extend(extra);
    resolve_overlaps(base)
}

/// A detected value may occur again where no detector fires (glued to other text, or without
/// its context word); every occurrence of a detected value of 5+ bytes is redacted too, so a
/// detected value never survives anywhere in the output.
fn with_repeats(text: &str, findings: Vec<Finding>) -> Vec<Finding> {
    let mut values: Vec<&str> = findings
        .iter()
        .map(|f| &text[f.start..f.end])
        .filter(|v| v.len() >= 5)
        .collect();
    values.sort_unstable();
    values.dedup();
    if values.is_empty() {
        return findings;
    }
    let mut extra = Vec::new();
    let mut add = |start: usize, end: usize, value: &str| {
        let idx = findings.partition_point(|f| f.end <= start);
        let covered = findings
            .get(idx)
            .is_some_and(|f| f.start <= start && f.end >= end);
        if !covered && let Some(src) = findings.iter().find(|f| &text[f.start..f.end] == value) {
            let mut f = src.clone();
            f.start = start;
            f.end = end;
            f.detector = "repeat_of_detected";
            extra.push(f);
        }
    };
    // Few distinct values (the common case) are searched one by one: building an automaton
    // costs more than a handful of memmem passes. Searches are per value, so overlapping
    // occurrences of different values ("a@x.coma@x.com") are all found.
    if values.len() <= 16 {
        for v in &values {
            for start in memchr::memmem::find_iter(text.as_bytes(), v.as_bytes()) {
                add(start, start + v.len(), v);
            }
        }
    } else if let Ok(ac) = aho_corasick::AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
        .build(&values)
    {
        for m in ac.find_overlapping_iter(text) {
            add(m.start(), m.end(), values[m.pattern().as_usize()]);
        }
    }
    if extra.is_empty() {
        findings
    } else {
        merge(findings, extra)
    }
}

/// Redacts `text` with `findings`, then re-scans as needed (at most `rounds` times).
pub(crate) fn redact_until_stable(
    text: &str,
    mut findings: Vec<Finding>,
    rounds: usize,
    scan: impl Fn(&str) -> Vec<Finding>,
    replace: impl Fn(&Finding, &str) -> String,
) -> (String, Vec<Finding>) {
    let mut round = 0;
    loop {
        findings = with_repeats(text, findings);
        let mut out = String::with_capacity(text.len());
        let mut spans = Vec::with_capacity(findings.len());
        let mut last = 0;
        for f in &findings {
            out.push_str(&text[last..f.start]);
            let os = out.len();
            out.push_str(&replace(f, &text[f.start..f.end]));
            spans.push(((f.start, f.end), (os, out.len())));
            last = f.end;
        }
        out.push_str(&text[last..]);
        if round == rounds || !needs_recheck(text, &findings) {
            return (out, findings);
        }
        let again = scan(&out);
        if again.is_empty() {
            return (out, findings);
        }
        let mapped: Vec<Finding> = again.iter().map(|f| map_back(&spans, f)).collect();
        findings = merge(findings, mapped);
        for f in &mut findings {
            while !text.is_char_boundary(f.start) {
                f.start -= 1;
            }
            while !text.is_char_boundary(f.end) {
                f.end += 1;
            }
        }
        round += 1;
    }
}
