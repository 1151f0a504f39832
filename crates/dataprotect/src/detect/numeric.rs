//! Number-shaped values, tried at every word start that is a digit (or `+`/`(` for phones, or
//! two capitals and two digits for IBANs): payment cards (Luhn + issuer + length), US SSNs
//! (area/group/serial rules), phone numbers (digit counts, grouping, context), IPv4, IBAN
//! (country length table + mod-97).

use std::net::Ipv4Addr;

use super::context::{ContextIndex, Role};
use super::ip::v4_confidence;
use super::text::{boundary_after, boundary_before, count_while};
use crate::finding::{Finding, FindingKind};

pub fn detect(bytes: &[u8], ctx: &ContextIndex, out: &mut Vec<Finding>) {
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        let b = bytes[i];
        if b.is_ascii_digit() {
            if boundary_before(bytes, i) {
                at_digit(bytes, i, ctx, out);
            }
            i += 1 + count_while(bytes, i + 1, usize::MAX, |b| b.is_ascii_digit());
            continue;
        }
        if (b == b'+' || b == b'(')
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
            && boundary_before(bytes, i)
        {
            phone(bytes, i, ctx, out);
        } else if b.is_ascii_uppercase()
            && i + 3 < n
            && bytes[i + 1].is_ascii_uppercase()
            && bytes[i + 2].is_ascii_digit()
            && bytes[i + 3].is_ascii_digit()
            && boundary_before(bytes, i)
        {
            iban(bytes, i, out);
        }
        i += 1;
    }
}

fn at_digit(bytes: &[u8], i: usize, ctx: &ContextIndex, out: &mut Vec<Finding>) {
    ipv4(bytes, i, ctx, out);
    ssn(bytes, i, ctx, out);
    // A group inside a longer run of digit groups ("... 0532 0130 01") is not a number of
    // its own; the run is judged from its first group.
    let inner_group =
        i >= 2 && matches!(bytes[i - 1], b' ' | b'-' | b'.') && bytes[i - 2].is_ascii_digit();
    if !inner_group {
        card(bytes, i, out);
        phone(bytes, i, ctx, out);
    }
}

fn digit_value(b: u8) -> u32 {
    u32::from(b - b'0')
}

fn parse_num(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |a, b| a * 10 + digit_value(*b))
}

// ---- payment cards ----

pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, d)| {
            let v = digit_value(*d);
            if k % 2 == 1 {
                if v * 2 > 9 { v * 2 - 9 } else { v * 2 }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn issuer_ok(d: &[u8]) -> bool {
    let len = d.len();
    let p = |k: usize| parse_num(&d[..k]);
    match d[0] {
        b'4' => matches!(len, 13 | 16 | 19),
        b'5' => (51..=55).contains(&p(2)) && len == 16,
        b'2' => (2221..=2720).contains(&p(4)) && len == 16,
        b'3' => {
            (matches!(p(2), 34 | 37) && len == 15)
                || ((3528..=3589).contains(&p(4)) && (16..=19).contains(&len))
                || (((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39))
                    && (14..=19).contains(&len))
        }
        b'6' => {
            (p(4) == 6011 || p(2) == 65 || (644..=649).contains(&p(3))) && (16..=19).contains(&len)
        }
        _ => false,
    }
}

fn card(bytes: &[u8], i: usize, out: &mut Vec<Finding>) {
    let mut digits = [0u8; 19];
    let mut count = 0;
    let mut ends: [(usize, usize); 19] = [(0, 0); 19];
    let mut groups = 0;
    let mut sep = None;
    let mut j = i;
    loop {
        let g = count_while(bytes, j, 20, |b| b.is_ascii_digit());
        if g == 0 || count + g > 19 {
            break;
        }
        digits[count..count + g].copy_from_slice(&bytes[j..j + g]);
        count += g;
        j += g;
        ends[groups] = (j, count);
        groups += 1;
        let s = bytes.get(j).copied();
        let next_digit = bytes.get(j + 1).is_some_and(u8::is_ascii_digit);
        match s {
            Some(c @ (b' ' | b'-')) if next_digit && (sep.is_none() || sep == Some(c)) => {
                sep = Some(c);
                j += 1;
            }
            _ => break,
        }
    }
    // Grouped numbers need card-like groups (3..=6 digits), which keeps "1 2 3 4 ..." out.
    if groups > 1 {
        let mut prev = 0;
        for (end, c) in &ends[..groups] {
            let g = c - prev;
            prev = *c;
            if !(3..=6).contains(&g) && *end != ends[groups - 1].0 {
                return;
            }
        }
    }
    for &(end, c) in ends[..groups].iter().rev() {
        if !(13..=19).contains(&c) {
            continue;
        }
        let last_group = groups == 1 || end == ends[groups - 1].0;
        if last_group && !boundary_after(bytes, end) {
            continue;
        }
        let d = &digits[..c];
        if luhn(d) && issuer_ok(d) {
            out.push(Finding::new(
                FindingKind::CreditCard,
                i,
                end,
                0.95,
                "card_luhn",
            ));
            return;
        }
    }
}

// ---- US social security numbers ----

fn ssn_valid(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn ssn(bytes: &[u8], i: usize, ctx: &ContextIndex, out: &mut Vec<Finding>) {
    let context = ctx.before(i, 32, Role::Ssn);
    let a = count_while(bytes, i, 10, |b| b.is_ascii_digit());
    if a == 9 && context && boundary_after(bytes, i + 9) {
        let d = &bytes[i..i + 9];
        if ssn_valid(parse_num(&d[..3]), parse_num(&d[3..5]), parse_num(&d[5..])) {
            out.push(Finding::new(
                FindingKind::Ssn,
                i,
                i + 9,
                0.85,
                "ssn_context",
            ));
        }
        return;
    }
    if a != 3 || i + 11 > bytes.len() {
        return;
    }
    let s = bytes[i + 3];
    if !(s == b'-' || (s == b' ' && context)) || bytes[i + 6] != s {
        return;
    }
    let shape = bytes[i + 4..i + 6].iter().all(u8::is_ascii_digit)
        && bytes[i + 7..i + 11].iter().all(u8::is_ascii_digit);
    let tail_ok = boundary_after(bytes, i + 11)
        && !(matches!(bytes.get(i + 11), Some(b'-'))
            && bytes.get(i + 12).is_some_and(u8::is_ascii_digit));
    if shape
        && tail_ok
        && ssn_valid(
            parse_num(&bytes[i..i + 3]),
            parse_num(&bytes[i + 4..i + 6]),
            parse_num(&bytes[i + 7..i + 11]),
        )
    {
        let conf = if context { 0.95 } else { 0.85 };
        out.push(Finding::new(FindingKind::Ssn, i, i + 11, conf, "ssn"));
    }
}

// ---- phone numbers ----

fn phone(bytes: &[u8], i: usize, ctx: &ContextIndex, out: &mut Vec<Finding>) {
    let plus = bytes[i] == b'+';
    let mut j = i + usize::from(plus);
    let mut digits = 0;
    let mut sizes = [0usize; 8];
    let mut groups = 0;
    let mut dot = false;
    let mut end;
    loop {
        let paren = bytes.get(j) == Some(&b'(');
        j += usize::from(paren);
        let g = count_while(bytes, j, 16, |b| b.is_ascii_digit());
        if g == 0 || groups == sizes.len() {
            return;
        }
        digits += g;
        if digits > 15 {
            return;
        }
        sizes[groups] = g;
        groups += 1;
        j += g;
        if paren {
            if bytes.get(j) != Some(&b')') {
                return;
            }
            j += 1;
        }
        end = j;
        let next = bytes.get(j + 1).copied().unwrap_or(0);
        let continues = next.is_ascii_digit() || next == b'(';
        match bytes.get(j) {
            Some(b' ' | b'-') if continues => j += 1,
            Some(b'.') if continues => {
                dot = true;
                j += 1;
            }
            _ if paren && next.is_ascii_digit() && bytes.get(j) == Some(&b' ') => j += 1,
            _ => break,
        }
        if j - i > 24 {
            break;
        }
    }
    if !boundary_after(bytes, end)
        || (bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit))
    {
        return;
    }
    let sizes = &sizes[..groups];
    let date_like = sizes.len() >= 3
        && matches!(
            (sizes[0], sizes[1], sizes[2]),
            (4, 1 | 2, 1 | 2) | (1 | 2, 1 | 2, 4 | 2)
        );
    let context = ctx.before(i, 32, Role::Phone);
    let base: f32 = if plus && (8..=15).contains(&digits) {
        0.85
    } else if !plus
        && !date_like
        && groups >= 2
        && (10..=11).contains(&digits)
        && sizes.iter().all(|g| *g >= 2)
        && (!dot || (groups == 3 && digits == 10))
    {
        0.7
    } else if context && !date_like && (7..=15).contains(&digits) {
        0.6
    } else {
        return;
    };
    let conf = if context { base + 0.15 } else { base };
    out.push(Finding::new(
        FindingKind::Phone,
        i,
        end,
        conf.min(0.9),
        "phone",
    ));
}

// ---- IPv4 ----

fn ipv4(bytes: &[u8], i: usize, ctx: &ContextIndex, out: &mut Vec<Finding>) {
    // The tail of a longer dotted number ("1.2.3.4.5") is not an address.
    if i >= 2 && bytes[i - 1] == b'.' && bytes[i - 2].is_ascii_digit() {
        return;
    }
    let mut octets = [0u8; 4];
    let mut j = i;
    for (k, o) in octets.iter_mut().enumerate() {
        let n = count_while(bytes, j, 4, |b| b.is_ascii_digit());
        if n == 0 || n > 3 {
            return;
        }
        let v = parse_num(&bytes[j..j + n]);
        let Ok(v) = u8::try_from(v) else { return };
        *o = v;
        j += n;
        if k < 3 {
            if bytes.get(j) != Some(&b'.') {
                return;
            }
            j += 1;
        }
    }
    let more =
        matches!(bytes.get(j), Some(b'.')) && bytes.get(j + 1).is_some_and(u8::is_ascii_digit);
    // "version 1.2.3.4" is a version, not an address.
    if !boundary_after(bytes, j) || more || ctx.before(i, 12, Role::Version) {
        return;
    }
    let ip = Ipv4Addr::from(octets);
    out.push(Finding::new(
        FindingKind::IpAddress,
        i,
        j,
        v4_confidence(ip),
        "ipv4",
    ));
}

// ---- IBAN ----

const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AT", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BR", 29),
    (b"CH", 21),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"EE", 20),
    (b"ES", 24),
    (b"FI", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GR", 27),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"KW", 30),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MT", 31),
    (b"NL", 18),
    (b"NO", 15),
    (b"PL", 28),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"SA", 24),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TR", 26),
];

fn iban(bytes: &[u8], i: usize, out: &mut Vec<Finding>) {
    let cc = [bytes[i], bytes[i + 1]];
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| **c == cc) else {
        return;
    };
    let mut chars = [0u8; 34];
    let mut count = 0;
    let mut j = i;
    while count < len {
        match bytes.get(j) {
            Some(&c) if c.is_ascii_digit() || c.is_ascii_uppercase() => {
                chars[count] = c;
                count += 1;
                j += 1;
            }
            Some(b' ')
                if count >= 4
                    && bytes.get(j + 1).is_some_and(u8::is_ascii_alphanumeric)
                    && bytes[j - 1] != b' ' =>
            {
                j += 1;
            }
            _ => return,
        }
    }
    if !boundary_after(bytes, j) {
        return;
    }
    let mut r: u32 = 0;
    for &c in chars[4..len].iter().chain(&chars[..4]) {
        r = if c.is_ascii_digit() {
            (r * 10 + digit_value(c)) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    if r == 1 {
        out.push(Finding::new(FindingKind::Iban, i, j, 0.95, "iban_mod97"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_issuers() {
        assert!(luhn(b"4111111111111111") && issuer_ok(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(luhn(b"378282246310005") && issuer_ok(b"378282246310005"));
        assert!(luhn(b"0000000000000000") && !issuer_ok(b"0000000000000000"));
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn_valid(123, 45, 6789));
        for (a, g, s) in [
            (0, 12, 3456),
            (666, 12, 3456),
            (900, 12, 3456),
            (123, 0, 3456),
            (123, 45, 0),
        ] {
            assert!(!ssn_valid(a, g, s), "{a}-{g}-{s}");
        }
    }
}
