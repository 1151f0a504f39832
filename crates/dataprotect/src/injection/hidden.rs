//! Text a human reader does not see: invisible characters (zero-width, bidi overrides, Unicode
//! tag characters that smuggle ASCII) and markup hiding its content (HTML comments, elements
//! styled invisible). Invisible characters are removed, tag characters decoded, so the
//! patterns see what a model would read; hidden markup counts only when it carries other
//! evidence (an HTML comment saying "TODO" is not an attack).

use std::sync::LazyLock;

use regex::Regex;

use super::{Evidence, Signal};

/// The visible text and, per byte of it, the byte offset in the original (plus one for the end).
pub(super) struct Visible {
    pub(super) text: String,
    pub(super) offsets: Vec<usize>,
}

/// Characters that render as nothing.
fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}' | '\u{00AD}'
    )
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Unicode tag characters mirror ASCII (`U+E0041` is an invisible `A`).
fn tag_ascii(c: char) -> Option<Option<char>> {
    let n = u32::from(c);
    (0xE0000..=0xE007F)
        .contains(&n)
        .then(|| char::from_u32(n - 0xE0000).filter(|a| a.is_ascii_graphic() || *a == ' '))
}

/// Zero-width characters over which an in-word use is seen as hiding; fewer are typography.
const STEGO_RUN: usize = 8;

/// Records invisible characters in `text` and returns its visible form, or `None` when it
/// has none (no allocation for ordinary text).
pub(super) fn invisible(
    text: &str,
    at: &dyn Fn() -> String,
    _depth: u8,
    ev: &mut Evidence,
) -> Option<Visible> {
    let any = text
        .chars()
        .any(|c| is_zero_width(c) || is_bidi_control(c) || tag_ascii(c).is_some());
    if !any {
        return None;
    }
    let mut visible = Visible {
        text: String::with_capacity(text.len()),
        offsets: Vec::with_capacity(text.len() + 1),
    };
    let (mut in_word, mut zero_width, mut tags) = (0usize, 0usize, None::<(usize, usize)>);
    let mut prev_alnum = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_alnum = chars.peek().is_some_and(|(_, n)| n.is_alphanumeric());
        if let Some(ascii) = tag_ascii(c) {
            tags = Some(tags.map_or((i, i + c.len_utf8()), |(s, _)| (s, i + c.len_utf8())));
            if let Some(a) = ascii {
                visible.text.push(a);
                visible.offsets.push(i);
            }
            continue;
        }
        if is_zero_width(c) {
            // A byte-order mark opening the text is an encoding artefact, not hiding.
            if !(c == '\u{FEFF}' && i == 0) {
                zero_width += 1;
                if prev_alnum && next_alnum {
                    in_word += 1;
                }
            }
            continue;
        }
        if is_bidi_control(c) {
            if matches!(c, '\u{202D}' | '\u{202E}') {
                ev.add(Signal::HiddenContent, at, (i, i + c.len_utf8()), 0.35);
            }
            continue;
        }
        prev_alnum = c.is_alphanumeric();
        for _ in 0..c.len_utf8() {
            visible.offsets.push(i);
        }
        visible.text.push(c);
    }
    visible.offsets.push(text.len());
    if let Some(span) = tags {
        ev.add(Signal::HiddenContent, at, span, 0.8);
    }
    if zero_width >= STEGO_RUN {
        ev.add(Signal::HiddenContent, at, (0, text.len()), 0.5);
    } else if in_word > 0 {
        ev.add(Signal::HiddenContent, at, (0, text.len()), 0.35);
    }
    Some(visible)
}

/// An element whose inline style (or `hidden` attribute) makes its content invisible.
static HIDDEN_ELEMENT: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)style\s*=\s*["'][^"'>]*(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:\.0*)?(?:px|pt|em|rem|%)?\s*(?:;|["'])|opacity\s*:\s*0(?:\.0*)?\s*(?:;|["'])|[;"']\s*color\s*:\s*(?:white|#fff(?:fff)?|transparent))|<\w+[^>]*\shidden(?:\s|>|=)"#,
    )
    .ok()
});

/// How far an invisible element's content is taken to extend when no end tag is found.
const HIDDEN_REGION: usize = 4096;

/// Evidence counted as hidden when it sits inside an HTML comment or an invisible element.
const HIDDEN_EVIDENCE: f32 = 0.4;

/// Adds a hidden-content hit for each comment or invisible element that contains a hit (from
/// index `from` of `ev.hits`, i.e. found in this text).
pub(super) fn markup(text: &str, at: &dyn Fn() -> String, from: usize, ev: &mut Evidence) {
    let mut regions: Vec<(usize, usize)> = Vec::new();
    if text.contains("<!--") {
        let mut pos = 0;
        while let Some(open) = text[pos..].find("<!--").map(|o| pos + o) {
            let close = text[open..]
                .find("-->")
                .map_or(text.len(), |c| open + c + 3);
            regions.push((open, close));
            pos = close;
        }
    }
    if (text.contains("style") || text.contains("hidden"))
        && let Some(re) = HIDDEN_ELEMENT.as_ref()
    {
        for m in re.find_iter(text) {
            let limit = text.len().min(m.end().saturating_add(HIDDEN_REGION));
            let end = text
                .get(m.end()..limit)
                .and_then(|rest| rest.find("</"))
                .map_or(limit, |e| m.end() + e);
            regions.push((m.start(), end));
        }
    }
    for (start, end) in regions {
        let carries = ev.hits.get(from..).is_some_and(|hits| {
            hits.iter().any(|h| {
                h.signal != Signal::HiddenContent
                    && h.weight >= HIDDEN_EVIDENCE
                    && h.start >= start
                    && h.end <= end
            })
        });
        if carries {
            ev.add(Signal::HiddenContent, at, (start, end), 0.75);
        }
    }
}
