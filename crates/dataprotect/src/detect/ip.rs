//! IP addresses. IPv4 is parsed at digit word starts (in `numeric`); IPv6 is anchored on `:`
//! and parsed with the standard library. Private, loopback and link-local addresses score lower.

use std::net::{Ipv4Addr, Ipv6Addr};

use memchr::memchr_iter;

use super::text::{boundary_after, boundary_before};
use crate::finding::{Finding, FindingKind};

pub fn v4_confidence(ip: Ipv4Addr) -> f32 {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_broadcast() {
        0.3
    } else if ip.is_private() || ip.is_link_local() || ip.is_documentation() {
        0.5
    } else {
        0.85
    }
}

fn v6_confidence(ip: Ipv6Addr) -> f32 {
    let seg0 = ip.segments()[0];
    if ip.is_loopback() || ip.is_unspecified() {
        0.3
    } else if (seg0 & 0xfe00) == 0xfc00
        || (seg0 & 0xffc0) == 0xfe80
        || seg0 == 0x2001 && ip.segments()[1] == 0xdb8
    {
        0.5
    } else {
        0.85
    }
}

fn is_v6_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

pub fn detect_v6(text: &str, out: &mut Vec<Finding>) {
    let bytes = text.as_bytes();
    let mut next_free = 0;
    for colon in memchr_iter(b':', bytes) {
        if colon < next_free {
            continue;
        }
        let next = bytes.get(colon + 1).copied().unwrap_or(b' ');
        if !(next.is_ascii_hexdigit() || next == b':') {
            continue;
        }
        let mut start = colon;
        while start > 0 && colon - start < 40 && is_v6_byte(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = colon;
        while end < bytes.len() && end - start < 45 && is_v6_byte(bytes[end]) {
            end += 1;
        }
        next_free = end;
        while end > start && bytes[end - 1] == b'.' {
            end -= 1;
        }
        if !boundary_before(bytes, start) || !boundary_after(bytes, end) {
            continue;
        }
        let cand = &text[start..end];
        if cand.bytes().filter(|b| *b == b':').count() < 2 {
            continue;
        }
        if let Ok(ip) = cand.parse::<Ipv6Addr>() {
            out.push(Finding::new(
                FindingKind::IpAddress,
                start,
                end,
                v6_confidence(ip),
                "ipv6",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_found_with_confidence_by_range() {
        let s = "from 2a00:1450:4001:81c::200e and fe80::1ff:fe23:4567:890a, time 12:30:45";
        let mut out = Vec::new();
        detect_v6(s, &mut out);
        let got: Vec<(&str, f32)> = out
            .iter()
            .map(|f| (&s[f.start..f.end], f.confidence))
            .collect();
        assert_eq!(
            got,
            [
                ("2a00:1450:4001:81c::200e", 0.85),
                ("fe80::1ff:fe23:4567:890a", 0.5)
            ]
        );
    }
}
