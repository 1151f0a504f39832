//! Email addresses: anchored on `@`, local part and domain validated (labels, a dotted domain
//! with an alphabetic TLD).

use memchr::memchr_iter;

use crate::finding::{Finding, FindingKind};

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

pub fn detect(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut last_end = 0;
    for at in memchr_iter(b'@', bytes) {
        if at < last_end {
            continue;
        }
        let mut start = at;
        while start > 0 && at - start < 64 && is_local(bytes[start - 1]) {
            start -= 1;
        }
        while start < at && matches!(bytes[start], b'.' | b'-' | b'+') {
            start += 1;
        }
        if start == at || bytes[at - 1] == b'.' {
            continue;
        }
        let mut end = at + 1;
        while end < bytes.len() && end - at <= 253 && is_domain(bytes[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if valid_domain(&bytes[at + 1..end]) {
            out.push(Finding::new(FindingKind::Email, start, end, 0.95, "email"));
            last_end = end;
        }
    }
}

fn valid_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|b| *b == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        detect(s.as_bytes(), &mut out);
        out.iter().map(|f| &s[f.start..f.end]).collect()
    }

    #[test]
    fn finds_addresses_and_trims_punctuation() {
        assert_eq!(
            spans("mail jane.doe+x@mail.example.co.uk."),
            ["jane.doe+x@mail.example.co.uk"]
        );
        assert_eq!(spans("<a@b.io>, c_d@e-f.org"), ["a@b.io", "c_d@e-f.org"]);
    }

    #[test]
    fn rejects_non_addresses() {
        assert!(spans("@handle, user@localhost, a@b.c1, x@-y.com, ***@example.com").is_empty());
    }
}
