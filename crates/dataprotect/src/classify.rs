//! Classification: a sensitivity level and a set of tags, computed from findings, combined
//! upwards (`max`/`union`) so lineage can inherit it, with an optional declared floor.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Sensitivity levels, ordered: `Public < Internal < Confidential < Restricted`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    Public,
    Internal,
    Confidential,
    Restricted,
}

impl Level {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Confidential => "confidential",
            Self::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One data tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Tag {
    #[serde(rename = "PII")]
    Pii,
    #[serde(rename = "PHI")]
    Phi,
    #[serde(rename = "PCI")]
    Pci,
    #[serde(rename = "SECRET")]
    Secret,
}

impl Tag {
    pub const ALL: [Self; 4] = [Self::Pii, Self::Phi, Self::Pci, Self::Secret];

    const fn bit(self) -> u8 {
        match self {
            Self::Pii => 1,
            Self::Phi => 2,
            Self::Pci => 4,
            Self::Secret => 8,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Pii => "PII",
            Self::Phi => "PHI",
            Self::Pci => "PCI",
            Self::Secret => "SECRET",
        }
    }
}

/// A set of tags (a small bit set; serialised as a sorted list of names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tags(u8);

impl Tags {
    pub const EMPTY: Self = Self(0);

    pub fn contains(self, tag: Tag) -> bool {
        self.0 & tag.bit() != 0
    }

    #[must_use]
    pub fn with(self, tag: Tag) -> Self {
        Self(self.0 | tag.bit())
    }

    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Tag> {
        Tag::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

impl FromIterator<Tag> for Tags {
    fn from_iter<I: IntoIterator<Item = Tag>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Tag>::deserialize(d)?.into_iter().collect())
    }
}

/// A level and tags. Combining two classifications keeps the higher level and all tags, which
/// is the rule lineage uses: an output is at least as sensitive as everything it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Classification {
    pub level: Level,
    pub tags: Tags,
}

impl Classification {
    pub const PUBLIC: Self = Self {
        level: Level::Public,
        tags: Tags::EMPTY,
    };

    pub const fn new(level: Level, tags: Tags) -> Self {
        Self { level, tags }
    }

    /// Higher level, union of tags.
    #[must_use]
    pub fn max(self, other: Self) -> Self {
        Self {
            level: self.level.max(other.level),
            tags: self.tags.union(other.tags),
        }
    }

    /// The combination of any number of classifications (`PUBLIC` for none).
    pub fn union<I: IntoIterator<Item = Self>>(items: I) -> Self {
        items.into_iter().fold(Self::PUBLIC, Self::max)
    }

    /// Raises the level to a declared floor (a submitter saying "this is at least
    /// confidential"); never lowers it.
    #[must_use]
    pub fn with_floor(self, floor: Level) -> Self {
        Self {
            level: self.level.max(floor),
            tags: self.tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_takes_higher_level_and_all_tags() {
        let a = Classification::new(Level::Confidential, Tags::EMPTY.with(Tag::Pii));
        let b = Classification::new(Level::Internal, Tags::EMPTY.with(Tag::Secret));
        let m = a.max(b);
        assert_eq!(m.level, Level::Confidential);
        assert!(m.tags.contains(Tag::Pii) && m.tags.contains(Tag::Secret));
        assert!(!m.tags.contains(Tag::Pci));
        assert_eq!(Classification::union([a, b]), m);
        assert_eq!(Classification::union([]), Classification::PUBLIC);
    }

    #[test]
    fn floor_raises_but_never_lowers() {
        let c = Classification::new(Level::Restricted, Tags::EMPTY);
        assert_eq!(c.with_floor(Level::Internal).level, Level::Restricted);
        assert_eq!(
            Classification::PUBLIC.with_floor(Level::Confidential).level,
            Level::Confidential
        );
    }

    #[test]
    fn serialises_as_names() {
        let c = Classification::new(Level::Restricted, Tags::EMPTY.with(Tag::Pci).with(Tag::Pii));
        let v = serde_json::to_value(c).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"level": "restricted", "tags": ["PII", "PCI"]})
        );
    }
}
