//! Context words (one case-insensitive Aho-Corasick pass) and the detectors that need them:
//! dates of birth, medical record numbers, passport and driver licence numbers, person names,
//! and secrets assigned to key-like words (`password=`, `api_key: <high-entropy>`, `Bearer`).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::text::{boundary_after, count_while, shannon_entropy};
use crate::finding::{Finding, FindingKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Phone,
    Ssn,
    Dob,
    Mrn,
    Passport,
    Licence,
    Secret,
    Password,
    Bearer,
    Title,
    NameLabel,
    Patient,
    Medical,
    Version,
}

const WORDS: &[(&str, Role)] = &[
    ("phone", Role::Phone),
    ("tel", Role::Phone),
    ("telephone", Role::Phone),
    ("mobile", Role::Phone),
    ("cell", Role::Phone),
    ("fax", Role::Phone),
    ("call", Role::Phone),
    ("contact", Role::Phone),
    ("whatsapp", Role::Phone),
    ("ssn", Role::Ssn),
    ("ss#", Role::Ssn),
    ("social security", Role::Ssn),
    ("social security number", Role::Ssn),
    ("dob", Role::Dob),
    ("d.o.b.", Role::Dob),
    ("date of birth", Role::Dob),
    ("birth date", Role::Dob),
    ("birthdate", Role::Dob),
    ("born", Role::Dob),
    ("born on", Role::Dob),
    ("birthday", Role::Dob),
    ("mrn", Role::Mrn),
    ("medical record", Role::Mrn),
    ("medical record number", Role::Mrn),
    ("patient id", Role::Mrn),
    ("patient number", Role::Mrn),
    ("chart number", Role::Mrn),
    ("passport", Role::Passport),
    ("driver's license", Role::Licence),
    ("driver\u{2019}s license", Role::Licence),
    ("drivers license", Role::Licence),
    ("driver license", Role::Licence),
    ("driver's licence", Role::Licence),
    ("drivers licence", Role::Licence),
    ("driver licence", Role::Licence),
    ("driving licence", Role::Licence),
    ("driving license", Role::Licence),
    ("licence number", Role::Licence),
    ("license number", Role::Licence),
    ("dl#", Role::Licence),
    ("key", Role::Secret),
    ("apikey", Role::Secret),
    ("token", Role::Secret),
    ("secret", Role::Secret),
    ("credential", Role::Secret),
    ("credentials", Role::Secret),
    ("auth", Role::Secret),
    ("password", Role::Password),
    ("passwd", Role::Password),
    ("pwd", Role::Password),
    ("passphrase", Role::Password),
    ("bearer", Role::Bearer),
    ("mr.", Role::Title),
    ("mrs.", Role::Title),
    ("ms.", Role::Title),
    ("dr.", Role::Title),
    ("prof.", Role::Title),
    ("mr", Role::Title),
    ("mrs", Role::Title),
    ("ms", Role::Title),
    ("dr", Role::Title),
    ("name:", Role::NameLabel),
    ("name is", Role::NameLabel),
    ("name =", Role::NameLabel),
    ("name=", Role::NameLabel),
    ("dear", Role::NameLabel),
    ("patient", Role::Patient),
    ("diagnosis", Role::Medical),
    ("diagnosed", Role::Medical),
    ("hospital", Role::Medical),
    ("clinic", Role::Medical),
    ("medical", Role::Medical),
    ("prescribed", Role::Medical),
    ("prescription", Role::Medical),
    ("treatment", Role::Medical),
    ("symptoms", Role::Medical),
    ("physician", Role::Medical),
    ("admitted", Role::Medical),
    ("discharged", Role::Medical),
    ("medication", Role::Medical),
    ("allergies", Role::Medical),
    ("version", Role::Version),
    ("ver", Role::Version),
    ("release", Role::Version),
    ("build", Role::Version),
];

pub struct ContextMatcher {
    ac: AhoCorasick,
}

#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub role: Role,
}

/// Context words found in one text, sorted by position.
pub struct ContextIndex {
    pub hits: Vec<Hit>,
    pub medical: bool,
}

impl ContextIndex {
    /// Is there a context word of `role` ending within `window` bytes before `pos`?
    pub fn before(&self, pos: usize, window: usize, role: Role) -> bool {
        let first = self.hits.partition_point(|h| h.end + window < pos);
        self.hits[first..]
            .iter()
            .take_while(|h| h.end <= pos)
            .any(|h| h.role == role)
    }
}

impl ContextMatcher {
    pub fn new() -> Result<Self, String> {
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(WORDS.iter().map(|(w, _)| w))
            .map_err(|e| e.to_string())?;
        Ok(Self { ac })
    }

    pub fn index(&self, bytes: &[u8]) -> ContextIndex {
        let mut hits = Vec::new();
        let mut medical = false;
        for m in self.ac.find_iter(bytes) {
            let (word, role) = WORDS[m.pattern().as_usize()];
            let (s, e) = (m.start(), m.end());
            // Key-like words are often parts of identifiers (`api_key`, `client-secret`).
            let identifier_ok = matches!(role, Role::Secret | Role::Password);
            let before_ok = s == 0 || {
                let p = bytes[s - 1];
                !p.is_ascii_alphanumeric() && (identifier_ok || p != b'_') && p < 0x80
            };
            let last = word.as_bytes()[word.len() - 1];
            let after_ok = !last.is_ascii_alphanumeric()
                || boundary_after(bytes, e)
                || (identifier_ok && matches!(bytes.get(e), Some(b'_' | b's')));
            if !(before_ok && after_ok) {
                continue;
            }
            medical |= matches!(role, Role::Mrn | Role::Patient | Role::Medical);
            hits.push(Hit {
                start: s,
                end: e,
                role,
            });
        }
        ContextIndex { hits, medical }
    }
}

/// Skips separators and filler words ("no", "number", "#", ":") between a context word and
/// its value; `None` when the value is too far away.
fn skip_to_value(bytes: &[u8], mut i: usize) -> Option<usize> {
    let limit = i + 24;
    loop {
        i += count_while(bytes, i, limit.saturating_sub(i), |b| {
            matches!(
                b,
                b' ' | b'\t' | b':' | b'#' | b'=' | b'.' | b'"' | b'\'' | b'-' | b'('
            )
        });
        let rest = &bytes[i.min(bytes.len())..];
        let filler = ["number", "num", "no", "is", "id", "was", "on"]
            .iter()
            .find(|w| {
                rest.len() >= w.len()
                    && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes())
                    && boundary_after(bytes, i + w.len())
            });
        match filler {
            Some(w) if i < limit => i += w.len(),
            _ => break,
        }
    }
    (i < bytes.len() && i <= limit).then_some(i)
}

fn token_len(bytes: &[u8], i: usize, max: usize, f: impl Fn(u8) -> bool) -> Option<usize> {
    let n = count_while(bytes, i, max + 1, f);
    (n <= max && boundary_after(bytes, i + n)).then_some(n)
}

fn digits_in(s: &[u8]) -> usize {
    s.iter().filter(|b| b.is_ascii_digit()).count()
}

pub fn detect_values(text: &str, ctx: &ContextIndex, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    for h in &ctx.hits {
        match h.role {
            Role::Dob => dob(bytes, h, out),
            Role::Mrn => id_value(
                bytes,
                h.end,
                (5, 20),
                4,
                FindingKind::Mrn,
                0.85,
                "mrn_context",
                out,
            ),
            Role::Passport => {
                id_value(
                    bytes,
                    h.end,
                    (6, 9),
                    2,
                    FindingKind::Passport,
                    0.8,
                    "passport_context",
                    out,
                );
            }
            Role::Licence => {
                id_value(
                    bytes,
                    h.end,
                    (5, 20),
                    2,
                    FindingKind::DriversLicense,
                    0.8,
                    "licence_context",
                    out,
                );
            }
            Role::Secret => assigned_secret(bytes, h.end, out),
            Role::Password => password(bytes, h.end, out),
            Role::Bearer => bearer(bytes, h.end, out),
            Role::Title | Role::NameLabel | Role::Patient => person_name(text, h, out),
            Role::Phone | Role::Ssn | Role::Medical | Role::Version => {}
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call per id-like context kind"
)]
fn id_value(
    bytes: &[u8],
    after: usize,
    (min, max): (usize, usize),
    min_digits: usize,
    kind: FindingKind,
    conf: f32,
    detector: &'static str,
    out: &mut Vec<Finding>,
) {
    let Some(v) = skip_to_value(bytes, after) else {
        return;
    };
    let Some(n) = token_len(bytes, v, max, |b| b.is_ascii_alphanumeric() || b == b'-') else {
        return;
    };
    let mut n = n;
    while n > 0 && bytes[v + n - 1] == b'-' {
        n -= 1;
    }
    if n >= min && digits_in(&bytes[v..v + n]) >= min_digits {
        out.push(Finding::new(kind, v, v + n, conf, detector));
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month_len(bytes: &[u8], i: usize) -> Option<usize> {
    let n = count_while(bytes, i, 10, |b| b.is_ascii_alphabetic());
    let word = &bytes[i..i + n];
    let ok = MONTHS.iter().any(|m| {
        word.eq_ignore_ascii_case(m.as_bytes())
            || (n == 3 && word.eq_ignore_ascii_case(&m.as_bytes()[..3]))
            || (n == 4 && word.eq_ignore_ascii_case(b"sept"))
    });
    ok.then_some(n)
}

fn number(bytes: &[u8], i: usize, min: usize, max: usize) -> Option<(usize, u32)> {
    let n = count_while(bytes, i, max + 1, |b| b.is_ascii_digit());
    if n < min || n > max {
        return None;
    }
    let v = bytes[i..i + n]
        .iter()
        .fold(0u32, |a, b| a * 10 + u32::from(b - b'0'));
    Some((n, v))
}

/// Parses a date at `i` (numeric with `-`, `/` or `.`, or with a month name); returns its end.
fn date_at(bytes: &[u8], i: usize) -> Option<usize> {
    if let Some((n1, a)) = number(bytes, i, 1, 4) {
        let sep = *bytes.get(i + n1)?;
        if matches!(sep, b'-' | b'/' | b'.') {
            let j = i + n1 + 1;
            let (n2, b) = number(bytes, j, 1, 2)?;
            let k = j + n2;
            if bytes.get(k) != Some(&sep) {
                return None;
            }
            let (n3, c) = number(bytes, k + 1, 2, 4)?;
            let (day_month_ok, year_ok) = if n1 == 4 {
                (
                    (1..=12).contains(&b) && (1..=31).contains(&c),
                    (1880..=2100).contains(&a),
                )
            } else {
                let dm = (1..=31).contains(&a) && (1..=31).contains(&b) && (a <= 12 || b <= 12);
                (dm, n3 == 2 || (1880..=2100).contains(&c))
            };
            return (day_month_ok && year_ok && n3 != 3).then_some(k + 1 + n3);
        }
        // "12 March 1980"
        if sep == b' ' && n1 <= 2 && (1..=31).contains(&a) {
            let m = month_len(bytes, i + n1 + 1)?;
            let y = i + n1 + 1 + m;
            if bytes.get(y) != Some(&b' ') {
                return None;
            }
            let (n3, _) = number(bytes, y + 1, 4, 4)?;
            return Some(y + 1 + n3);
        }
        return None;
    }
    // "March 12, 1980"
    let m = month_len(bytes, i)?;
    let mut j = i + m;
    if bytes.get(j) != Some(&b' ') {
        return None;
    }
    j += 1;
    let (n2, d) = number(bytes, j, 1, 2)?;
    if !(1..=31).contains(&d) {
        return None;
    }
    j += n2;
    if bytes.get(j) == Some(&b',') {
        j += 1;
    }
    if bytes.get(j) != Some(&b' ') {
        return None;
    }
    let (n3, _) = number(bytes, j + 1, 4, 4)?;
    Some(j + 1 + n3)
}

fn dob(bytes: &[u8], h: &Hit, out: &mut Vec<Finding>) {
    let Some(v) = skip_to_value(bytes, h.end) else {
        return;
    };
    if let Some(end) = date_at(bytes, v).filter(|e| boundary_after(bytes, *e)) {
        out.push(Finding::new(
            FindingKind::DateOfBirth,
            v,
            end,
            0.85,
            "dob_context",
        ));
    }
}

fn is_secret_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-' | b'.' | b'~')
}

/// `api_key = "Zx81..."`, `token: 9f8e...`: the value must follow an assignment and look random.
fn assigned_secret(bytes: &[u8], after: usize, out: &mut Vec<Finding>) {
    let ident = count_while(bytes, after, 24, |b| {
        b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
    });
    let mut i = after + ident;
    let sep = count_while(bytes, i, 6, |b| {
        matches!(b, b' ' | b'\t' | b'"' | b'\'' | b':' | b'=')
    });
    if !bytes[i..i + sep].iter().any(|b| matches!(b, b':' | b'=')) {
        return;
    }
    i += sep;
    let n = count_while(bytes, i, 512, is_secret_byte);
    let mut end = i + n;
    while end > i && bytes[end - 1] == b'.' {
        end -= 1;
    }
    let value = &bytes[i..end];
    let has_letter = value.iter().any(u8::is_ascii_alphabetic);
    let threshold = if value.len() < 24 { 3.3 } else { 3.5 };
    if value.len() >= 16
        && has_letter
        && digits_in(value) > 0
        && shannon_entropy(value) >= threshold
    {
        out.push(Finding::new(
            FindingKind::ApiKey,
            i,
            end,
            0.8,
            "entropy_near_key_word",
        ));
    }
}

fn password(bytes: &[u8], after: usize, out: &mut Vec<Finding>) {
    let sep = count_while(bytes, after, 6, |b| {
        matches!(b, b' ' | b'\t' | b'"' | b'\'' | b':' | b'=')
    });
    if !bytes[after..after + sep]
        .iter()
        .any(|b| matches!(b, b':' | b'='))
    {
        return;
    }
    let i = after + sep;
    if matches!(bytes.get(i), Some(b'[' | b'*' | b'<' | b'$' | b'{')) {
        return;
    }
    let n = count_while(bytes, i, 129, |b| {
        b > b' ' && !matches!(b, b'"' | b'\'' | b',' | b';')
    });
    let value = &bytes[i..i + n];
    let symbolic = value.iter().any(|b| !b.is_ascii_alphabetic());
    if (6..=128).contains(&n) && symbolic {
        out.push(Finding::new(
            FindingKind::ApiKey,
            i,
            i + n,
            0.75,
            "password_assignment",
        ));
    }
}

fn bearer(bytes: &[u8], after: usize, out: &mut Vec<Finding>) {
    if bytes.get(after) != Some(&b' ') {
        return;
    }
    let i = after + 1;
    let n = count_while(bytes, i, 4096, is_secret_byte);
    if n >= 16 && shannon_entropy(&bytes[i..i + n]) >= 3.0 {
        out.push(Finding::new(
            FindingKind::ApiKey,
            i,
            i + n,
            0.85,
            "bearer_token",
        ));
    }
}

const NOT_NAMES: &[&str] = &[
    "The",
    "A",
    "An",
    "This",
    "That",
    "Is",
    "Was",
    "Has",
    "Had",
    "Name",
    "Id",
    "Number",
    "Record",
    "Records",
    "Please",
    "Thanks",
    "Thank",
    "Sir",
    "Madam",
    "Team",
    "Customer",
    "Support",
    "Patient",
    "No",
    "Not",
    "Unknown",
    "Details",
    "Information",
    "Info",
    "Summary",
    "Notes",
];

/// 1 to 3 capitalised words after a title ("Dr."), a label ("name:") or "patient".
fn person_name(text: &str, h: &Hit, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    // Titles must be written capitalised ("Ms", "Dr."), else "500 ms Latency" would fire.
    if h.role == Role::Title && !bytes[h.start].is_ascii_uppercase() {
        return;
    }
    let mut i = h.end;
    let gap = count_while(bytes, i, 3, |b| matches!(b, b' ' | b':' | b'"'));
    if gap == 0 || bytes[i..i + gap].iter().filter(|b| **b == b' ').count() > 1 {
        return;
    }
    i += gap;
    let start = i;
    let mut end = i;
    let mut words = 0;
    while words < 3 {
        let Some(len) = capitalised_word(&text[i..]) else {
            break;
        };
        if NOT_NAMES.contains(&&text[i..i + len]) {
            break;
        }
        words += 1;
        end = i + len;
        if bytes.get(end) != Some(&b' ') {
            break;
        }
        i = end + 1;
    }
    if words == 0 {
        return;
    }
    let conf = match h.role {
        Role::Title => 0.8,
        Role::NameLabel => 0.75,
        _ => 0.6,
    };
    out.push(Finding::new(
        FindingKind::PersonName,
        start,
        end,
        conf,
        "name_context",
    ));
}

/// Byte length of an initial capitalised word (`Anne`, `O'Neil`, `Jean-Luc`, `Émile`).
fn capitalised_word(s: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_uppercase() {
        return None;
    }
    let mut end = first.len_utf8();
    let mut lower = 0;
    let mut prev = first;
    for (idx, c) in chars {
        let ok = c.is_lowercase()
            || (matches!(c, '-' | '\'') && prev.is_alphabetic())
            || (c.is_uppercase() && matches!(prev, '-' | '\''));
        if !ok {
            break;
        }
        lower += usize::from(c.is_lowercase());
        end = idx + c.len_utf8();
        prev = c;
    }
    let trimmed = s[..end].trim_end_matches(['-', '\'']);
    (lower > 0 && end <= 40).then_some(trimmed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_several_forms() {
        for (s, ok) in [
            ("1980-04-12", true),
            ("12/04/1980", true),
            ("12.04.1980", true),
            ("12 March 1980", true),
            ("March 12, 1980", true),
            ("Sept 3 1990", true),
            ("1980-13-12", false),
            ("42/42/1980", false),
            ("12-04/1980", false),
        ] {
            assert_eq!(date_at(s.as_bytes(), 0) == Some(s.len()), ok, "{s}");
        }
    }

    #[test]
    fn capitalised_words() {
        assert_eq!(capitalised_word("O'Neil, x"), Some(6));
        assert_eq!(capitalised_word("Émile z"), Some("Émile".len()));
        assert_eq!(capitalised_word("ANNE"), None);
        assert_eq!(capitalised_word("anne"), None);
    }
}
