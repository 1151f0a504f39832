//! Collecting problems: key paths, which file each path came from, and the error list.

use crate::error::{ConfigError, codes};

/// A key path in the effective configuration tree, e.g. `["agents", "research", "limits"]`:
/// where a problem is, the same path an `AMAS__...` variable names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<String>);

impl KeyPath {
    #[must_use]
    pub fn root() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn of(segments: &[&str]) -> Self {
        Self(segments.iter().map(|s| (*s).to_owned()).collect())
    }

    pub(crate) fn from_segments(segments: Vec<String>) -> Self {
        Self(segments)
    }

    #[must_use]
    pub fn child(&self, key: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(key.into());
        Self(v)
    }

    pub(crate) fn segments(&self) -> &[String] {
        &self.0
    }

    fn starts_with(&self, prefix: &Self) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// `agents.research.limits`.
    #[must_use]
    pub fn dotted(&self) -> String {
        self.0.join(".")
    }
}

/// Which file (or environment variable) each part of the tree came from: the longest
/// recorded prefix of a path wins, and among equal prefixes the later (higher) layer.
#[derive(Debug, Default)]
pub(crate) struct Origins(Vec<(KeyPath, String)>);

impl Origins {
    pub(crate) fn record(&mut self, prefix: KeyPath, file: impl Into<String>) {
        self.0.push((prefix, file.into()));
    }

    pub(crate) fn file_of(&self, path: &KeyPath) -> String {
        let mut best: Option<&(KeyPath, String)> = None;
        for entry in &self.0 {
            let longer = best.is_none_or(|b| entry.0.0.len() >= b.0.0.len());
            if path.starts_with(&entry.0) && longer {
                best = Some(entry);
            }
        }
        best.map_or_else(|| "<config>".to_owned(), |b| b.1.clone())
    }
}

/// The problems found so far; validation keeps going after each one.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) origins: Origins,
    pub(crate) errors: Vec<ConfigError>,
}

impl Diagnostics {
    /// A problem at a path whose file is looked up in the origins.
    pub(crate) fn at(&mut self, code: &'static str, path: &KeyPath, message: impl Into<String>) {
        let file = self.origins.file_of(path);
        self.in_file(code, file, path, message);
    }

    /// A problem in a known file (for files not yet merged into the tree).
    pub(crate) fn in_file(
        &mut self,
        code: &'static str,
        file: impl Into<String>,
        path: &KeyPath,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            code,
            file: file.into(),
            path: path.dotted(),
            message: message.into(),
        });
    }

    pub(crate) fn invalid(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.at(codes::INVALID_VALUE, path, message);
    }

    /// Checks `lo <= value <= hi`; `None` (and a problem) otherwise.
    pub(crate) fn in_range<T>(&mut self, path: &KeyPath, value: T, lo: T, hi: T) -> Option<T>
    where
        T: PartialOrd + std::fmt::Display + Copy,
    {
        if value < lo || value > hi {
            self.invalid(path, format!("{value} is out of range {lo}..={hi}"));
            return None;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An env override of one key must not take the blame for its siblings, and a user file
    /// must take the blame for what it replaced.
    #[test]
    fn longest_and_latest_prefix_wins() {
        let mut o = Origins::default();
        o.record(
            KeyPath::of(&["agents", "research"]),
            "<embedded>/agents.yaml",
        );
        o.record(KeyPath::of(&["agents", "research"]), "/u/agents.yaml");
        o.record(
            KeyPath::of(&["agents", "research", "limits", "timeout"]),
            "env X",
        );
        let limits = KeyPath::of(&["agents", "research", "limits"]);
        assert_eq!(o.file_of(&limits), "/u/agents.yaml");
        assert_eq!(o.file_of(&limits.child("timeout")), "env X");
        assert_eq!(o.file_of(&KeyPath::of(&["server"])), "<config>");
    }
}
