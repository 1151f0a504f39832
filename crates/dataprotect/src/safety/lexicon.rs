//! The built-in lexicon classifier. Text is split into words, each folded (case, leetspeak),
//! single letters split by separators are re-joined (`f.u.c.k`), and whole words (or phrases)
//! are compared with the lexicon, so substrings of ordinary words never match ("Scunthorpe",
//! "assess", "therapist").

use std::collections::HashMap;

use super::{Category, ClassifierError, ContentClassifier, SafetyHit};

const BUILTIN: &str = include_str!("../../data/lexicon.txt");

#[derive(Debug)]
struct Entry {
    words: Vec<String>,
    category: Category,
}

/// Whole-word lexicon matcher.
#[derive(Debug)]
pub struct LexiconClassifier {
    /// Entries by their first word, and by that word with stretched letters squashed.
    by_first: HashMap<String, Vec<usize>>,
    by_squashed: HashMap<String, Vec<usize>>,
    entries: Vec<Entry>,
}

/// One word of the input: its folded spellings (two when a `1` could be `i` or `l`), whether it
/// had stretched letters, and its byte span.
struct Word {
    forms: Vec<String>,
    stretched: bool,
    start: usize,
    end: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '@' || c == '$'
}

fn fold(c: char, one: char) -> char {
    match c {
        '0' => 'o',
        '1' => one,
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        c => c.to_lowercase().next().unwrap_or(c),
    }
}

fn squash(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = None;
    for c in s.chars() {
        if prev != Some(c) {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

fn has_run_of_three(s: &str) -> bool {
    let b: Vec<char> = s.chars().collect();
    b.windows(3).any(|w| w[0] == w[1] && w[1] == w[2])
}

/// Raw word spans, with runs of 3+ single characters split by one separator joined into one
/// word (`f.u.c.k`, `f u c k`, `f-u-c-k`).
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (is_word_char(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    let single = |&(s, e): &(usize, usize)| text[s..e].chars().count() == 1;
    let mut out = Vec::with_capacity(spans.len());
    let mut i = 0;
    while i < spans.len() {
        let mut j = i;
        // The run continues while the same one-character separator repeats, so
        // "f-u-c-k y-o-u" is two words.
        let sep = |k: usize| &text[spans[k].1..spans[k + 1].0];
        while j + 1 < spans.len()
            && single(&spans[j])
            && single(&spans[j + 1])
            && sep(j).chars().count() == 1
            && sep(j) == sep(i)
        {
            j += 1;
        }
        if j - i >= 2 {
            out.push((spans[i].0, spans[j].1));
            i = j + 1;
        } else {
            out.push(spans[i]);
            i += 1;
        }
    }
    out
}

fn words(text: &str) -> Vec<Word> {
    word_spans(text)
        .into_iter()
        .filter_map(|(start, end)| {
            let raw = &text[start..end];
            // Numbers are not words; leetspeak needs at least one letter to be leetspeak.
            if !raw.chars().any(char::is_alphabetic) {
                return None;
            }
            let letters = || raw.chars().filter(|c| is_word_char(*c));
            let mut forms = vec![letters().map(|c| fold(c, 'i')).collect::<String>()];
            if raw.contains('1') {
                forms.push(letters().map(|c| fold(c, 'l')).collect());
            }
            let stretched = forms.iter().any(|f| has_run_of_three(f));
            Some(Word {
                forms,
                stretched,
                start,
                end,
            })
        })
        .collect()
}

/// Inflections accepted on the last word of a term, chosen so that no ordinary word is a term
/// plus a suffix ("spices" is not "spic" + "es").
fn suffixes(term: &str) -> &'static [&'static str] {
    if term.ends_with('e') {
        &["s", "d", "r", "rs"]
    } else if term.ends_with(['s', 'x', 'z', 'h']) {
        &["es", "ed", "ing", "er", "ers"]
    } else {
        &["s", "ed", "ing", "er", "ers"]
    }
}

fn word_matches(word: &Word, term: &str, last: bool) -> bool {
    word.forms.iter().any(|f| {
        f == term
            || (word.stretched && squash(f) == squash(term))
            || (last
                && f.strip_prefix(term)
                    .is_some_and(|rest| suffixes(term).contains(&rest)))
    })
}

impl LexiconClassifier {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN)
    }

    /// Parses `category: term` lines; lines with an unknown category are skipped (the built-in
    /// file is covered by a test that every line is used).
    pub fn parse(text: &str) -> Self {
        let mut entries = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((cat, term)) = line.split_once(':') else {
                continue;
            };
            let Some(category) = Category::from_name(cat.trim()) else {
                continue;
            };
            let words: Vec<String> = words(term)
                .into_iter()
                .filter_map(|w| w.forms.into_iter().next())
                .collect();
            if words.len() > 1 {
                // "F U C K Y O U" is joined into one word, so phrases are also one word.
                entries.push(Entry {
                    words: vec![words.concat()],
                    category,
                });
            }
            if !words.is_empty() {
                entries.push(Entry { words, category });
            }
        }
        let mut by_first: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_squashed: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            by_first.entry(e.words[0].clone()).or_default().push(i);
            by_squashed.entry(squash(&e.words[0])).or_default().push(i);
        }
        Self {
            by_first,
            by_squashed,
            entries,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn candidates(&self, w: &Word) -> Vec<usize> {
        let mut out = Vec::new();
        for f in &w.forms {
            out.extend(self.by_first.get(f).into_iter().flatten());
            if w.stretched {
                out.extend(self.by_squashed.get(&squash(f)).into_iter().flatten());
            }
            for cut in ["s", "es", "d", "ed", "ing", "r", "er", "ers"] {
                if let Some(stem) = f.strip_suffix(cut) {
                    out.extend(self.by_first.get(stem).into_iter().flatten());
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// All hits, longest phrase first at each position, non-overlapping.
    pub fn hits(&self, text: &str) -> Vec<SafetyHit> {
        let ws = words(text);
        let mut hits = Vec::new();
        let mut i = 0;
        while i < ws.len() {
            let mut best: Option<(usize, Category)> = None;
            for idx in self.candidates(&ws[i]) {
                let e = &self.entries[idx];
                let n = e.words.len();
                if i + n > ws.len() || best.is_some_and(|(len, _)| len >= n) {
                    continue;
                }
                let ok = e
                    .words
                    .iter()
                    .enumerate()
                    .all(|(k, term)| word_matches(&ws[i + k], term, k + 1 == n));
                if ok {
                    best = Some((n, e.category));
                }
            }
            match best {
                Some((n, category)) => {
                    hits.push(SafetyHit {
                        category,
                        start: ws[i].start,
                        end: ws[i + n - 1].end,
                        score: 0.9,
                    });
                    i += n;
                }
                None => i += 1,
            }
        }
        hits
    }
}

#[async_trait::async_trait]
impl ContentClassifier for LexiconClassifier {
    async fn classify(&self, text: &str) -> Result<Vec<SafetyHit>, ClassifierError> {
        Ok(self.hits(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_letters_are_joined_only_in_runs_of_three() {
        let t = "f.u.c.k you, a b test";
        let spans: Vec<&str> = word_spans(t).into_iter().map(|(s, e)| &t[s..e]).collect();
        assert_eq!(spans, ["f.u.c.k", "you", "a", "b", "test"]);
    }

    #[test]
    fn every_builtin_line_is_an_entry() {
        let lines = BUILTIN
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .count();
        let phrases = BUILTIN
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .filter(|(_, t)| t.trim().contains(' '))
            .count();
        assert_eq!(LexiconClassifier::builtin().len(), lines + phrases);
    }
}
