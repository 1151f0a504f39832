//! Replacement text for a finding, per redaction mode. Replacements are designed so the
//! detectors never fire on them again: masks keep at most four digits, tags and hashes are
//! `[KIND]` / `[KIND:hex]` markers that the scan skips.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::RedactionMode;
use crate::finding::{Finding, FindingKind, MERGED};

/// Per-tenant key for hash-mode redaction: the same value and key always give the same token,
/// so redacted data can still be joined within a tenant but not across tenants.
#[derive(Clone)]
pub struct TenantKey(Vec<u8>);

impl TenantKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantKey(<redacted>)")
    }
}

/// Replaces every digit (or, with `keep_alnum`, every letter and digit) by `*` except the last
/// `keep` of them, keeping separators so the shape stays recognisable.
fn mask_keep_last(s: &str, keep: usize, keep_alnum: bool) -> String {
    let counts = |c: char| {
        if keep_alnum {
            c.is_ascii_alphanumeric()
        } else {
            c.is_ascii_digit()
        }
    };
    let total = s.chars().filter(|c| counts(*c)).count();
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if counts(c) {
                seen += 1;
                if seen + keep > total { c } else { '*' }
            } else if c.is_alphanumeric() {
                '*'
            } else {
                c
            }
        })
        .collect()
}

fn mask(kind: FindingKind, original: &str) -> String {
    match kind {
        FindingKind::Email => match original.rfind('@') {
            Some(at) => format!("***{}", &original[at..]),
            None => "****".to_owned(),
        },
        FindingKind::CreditCard => mask_keep_last(original, 4, false),
        FindingKind::Ssn => mask_keep_last(original, 0, false),
        FindingKind::Phone => mask_keep_last(original, 2, false),
        FindingKind::Iban => {
            // Country code plus the last four characters.
            let cc: String = original.chars().take(2).collect();
            let rest = mask_keep_last(&original[cc.len()..], 4, true);
            format!("{cc}{rest}")
        }
        _ => "****".to_owned(),
    }
}

/// What is hashed: the value without formatting, so `4111 1111...` and `4111-1111...` agree.
fn normalise(kind: FindingKind, original: &str) -> String {
    match kind {
        FindingKind::CreditCard | FindingKind::Phone | FindingKind::Ssn => {
            original.chars().filter(char::is_ascii_digit).collect()
        }
        FindingKind::Iban => original
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        FindingKind::Email => original.to_lowercase(),
        _ => original.to_owned(),
    }
}

pub(crate) fn hash_token(
    kind: FindingKind,
    original: &str,
    key: &TenantKey,
    hex_len: usize,
) -> String {
    let mut out = format!("[{}:", kind.tag());
    // HMAC accepts keys of any length, so this cannot fail; an empty digest would still be a
    // marker that leaks nothing.
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) {
        mac.update(kind.tag().as_bytes());
        mac.update(&[0]);
        mac.update(normalise(kind, original).as_bytes());
        for byte in mac.finalize().into_bytes().iter().take(hex_len.div_ceil(2)) {
            let _ = write!(out, "{byte:02x}");
        }
        out.truncate(kind.tag().len() + 2 + hex_len);
    }
    out.push(']');
    out
}

pub(crate) fn replacement(
    f: &Finding,
    original: &str,
    mode: RedactionMode,
    key: &TenantKey,
    hex_len: usize,
) -> String {
    match mode {
        RedactionMode::Mask if f.detector == MERGED => "****".to_owned(),
        RedactionMode::Mask => mask(f.kind, original),
        RedactionMode::Tag => format!("[{}]", f.kind.tag()),
        RedactionMode::Hash => hash_token(f.kind, original, key, hex_len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_useful_part() {
        assert_eq!(
            mask(FindingKind::Email, "jane@example.com"),
            "***@example.com"
        );
        assert_eq!(
            mask(FindingKind::CreditCard, "5555-5555-5555-9010"),
            "****-****-****-9010"
        );
        assert_eq!(
            mask(FindingKind::CreditCard, "4111 1111 1111 1111"),
            "**** **** **** 1111"
        );
        assert_eq!(mask(FindingKind::Ssn, "123-45-6789"), "***-**-****");
        assert_eq!(
            mask(FindingKind::Phone, "+1 (555) 123-4567"),
            "+* (***) ***-**67"
        );
        assert_eq!(
            mask(FindingKind::Iban, "DE89 3704 0044 0532 0130 00"),
            "DE** **** **** **** **30 00"
        );
        assert_eq!(mask(FindingKind::Passport, "X1234567"), "****");
    }

    #[test]
    fn hash_is_stable_per_key_and_ignores_formatting() {
        let k1 = TenantKey::new(b"tenant-1".to_vec());
        let k2 = TenantKey::new(b"tenant-2".to_vec());
        let a = hash_token(FindingKind::CreditCard, "4111 1111 1111 1111", &k1, 8);
        let b = hash_token(FindingKind::CreditCard, "4111-1111-1111-1111", &k1, 8);
        let c = hash_token(FindingKind::CreditCard, "4111 1111 1111 1111", &k2, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), "[CREDIT_CARD:".len() + 8 + 1);
        assert!(a.starts_with("[CREDIT_CARD:") && a.ends_with(']'));
        assert_eq!(format!("{k1:?}"), "TenantKey(<redacted>)");
    }
}
