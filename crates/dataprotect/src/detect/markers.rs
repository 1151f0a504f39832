//! Recognises the markers redaction writes (`[EMAIL]`, `[MRN:1a2b3c4d]`) so a second pass
//! leaves them alone.

use memchr::memchr_iter;

use crate::finding::FindingKind;

/// Length of a marker starting at `i`, if there is one.
fn is_marker_at(bytes: &[u8], i: usize) -> Option<usize> {
    if bytes.get(i) != Some(&b'[') {
        return None;
    }
    let name_len = bytes[i + 1..]
        .iter()
        .take(20)
        .take_while(|b| b.is_ascii_uppercase() || **b == b'_')
        .count();
    let name = std::str::from_utf8(&bytes[i + 1..i + 1 + name_len]).ok()?;
    FindingKind::from_tag(name)?;
    let mut j = i + 1 + name_len;
    if bytes.get(j) == Some(&b':') {
        let hex = bytes[j + 1..]
            .iter()
            .take(64)
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(*b))
            .count();
        if hex < 8 {
            return None;
        }
        j += 1 + hex;
    }
    (bytes.get(j) == Some(&b']')).then_some(j + 1 - i)
}

pub fn find(bytes: &[u8]) -> Vec<(usize, usize)> {
    memchr_iter(b'[', bytes)
        .filter_map(|i| is_marker_at(bytes, i).map(|len| (i, i + len)))
        .collect()
}

pub fn overlaps(marks: &[(usize, usize)], start: usize, end: usize) -> bool {
    // Marks are sorted and disjoint: find the first mark ending after `start`.
    let idx = marks.partition_point(|m| m.1 <= start);
    marks.get(idx).is_some_and(|m| m.0 < end)
}
