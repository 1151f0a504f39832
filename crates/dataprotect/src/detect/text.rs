//! Byte-level helpers shared by the detectors.

use crate::finding::Finding;

pub fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// True when nothing word-like precedes `i` (start of text, or a non-alphanumeric byte that is
/// not part of a multi-byte character).
pub fn boundary_before(bytes: &[u8], i: usize) -> bool {
    i == 0 || {
        let p = bytes[i - 1];
        !is_alnum(p) && p < 0x80 && p != b'_'
    }
}

/// True when nothing word-like follows `end`.
pub fn boundary_after(bytes: &[u8], end: usize) -> bool {
    end >= bytes.len() || {
        let n = bytes[end];
        !is_alnum(n) && n < 0x80 && n != b'_'
    }
}

pub fn count_while(bytes: &[u8], from: usize, max: usize, f: impl Fn(u8) -> bool) -> usize {
    bytes[from.min(bytes.len())..]
        .iter()
        .take(max)
        .take_while(|b| f(**b))
        .count()
}

/// Widens a finding to char boundaries so slicing never panics and nothing of a partly
/// covered character survives.
pub fn snap_to_chars(text: &str, f: &mut Finding) {
    while f.start > 0 && !text.is_char_boundary(f.start) {
        f.start -= 1;
    }
    while f.end < text.len() && !text.is_char_boundary(f.end) {
        f.end += 1;
    }
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(s: &[u8]) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f32;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = c as f32 / n;
            -p * p.log2()
        })
        .sum()
}
