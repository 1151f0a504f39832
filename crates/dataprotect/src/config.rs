//! `config/dataprotect.yaml`: raw file shape (unknown keys rejected), validated into
//! [`DataProtectConfig`]. The shipped file is embedded; a user file replaces it whole.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::classify::{Classification, Level, Tags};
use crate::error::DataProtectError;
use crate::finding::FindingKind;
use crate::safety::{Action, Category};

/// The configuration shipped with the binary.
pub const EMBEDDED_CONFIG: &str = include_str!("../../../config/dataprotect.yaml");

/// How one finding type is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMode {
    Mask,
    Tag,
    Hash,
}

/// What data-loss prevention does with a finding type in the parameters of a tool call that
/// reaches outside AMAS. Policy (`policies/tool.rego`) reads these as facts and decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DlpAction {
    /// Send the value as it is.
    Allow,
    /// Send the parameters with values of this type redacted.
    Redact,
    /// Refuse the call.
    Block,
}

impl DlpAction {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Redact => "redact",
            Self::Block => "block",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    min_confidence: f32,
    redaction: RawRedaction,
    classification: RawClassification,
    limits: RawLimits,
    content_safety: RawSafety,
    #[serde(default)]
    dlp: RawDlp,
}

/// Without a `dlp` section every finding blocks: a user file written before DLP existed fails
/// closed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDlp {
    default_action: DlpAction,
    #[serde(default)]
    actions: BTreeMap<FindingKind, DlpAction>,
}

impl Default for RawDlp {
    fn default() -> Self {
        Self {
            default_action: DlpAction::Block,
            actions: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedaction {
    default_mode: RedactionMode,
    hash_hex_len: usize,
    #[serde(default)]
    modes: BTreeMap<FindingKind, RedactionMode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassification {
    base_level: Level,
    #[serde(default)]
    kinds: BTreeMap<FindingKind, Classification>,
    medical_context: Classification,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_input_bytes: usize,
    max_json_depth: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSafety {
    actions: BTreeMap<Category, Action>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct DataProtectConfig {
    pub min_confidence: f32,
    pub hash_hex_len: usize,
    pub modes: BTreeMap<FindingKind, RedactionMode>,
    pub base_level: Level,
    pub kind_classes: BTreeMap<FindingKind, Classification>,
    pub medical_context: Classification,
    pub max_input_bytes: usize,
    pub max_json_depth: usize,
    pub safety_actions: BTreeMap<Category, Action>,
    /// DLP action per finding type (every type present).
    pub dlp_actions: BTreeMap<FindingKind, DlpAction>,
}

impl DataProtectConfig {
    /// The embedded default.
    pub fn embedded() -> Result<Self, DataProtectError> {
        Self::parse(EMBEDDED_CONFIG, "embedded config/dataprotect.yaml")
    }

    /// Reads a user file (the only I/O in this crate).
    pub fn from_file(path: &Path) -> Result<Self, DataProtectError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DataProtectError::Config {
            source_name: name.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &name)
    }

    /// Parses and validates, reporting every problem at once.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, DataProtectError> {
        let err = |message: String| DataProtectError::Config {
            source_name: source_name.to_owned(),
            message,
        };
        let raw: RawConfig = yaml_serde::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&raw.min_confidence) {
            problems.push("min_confidence must be within 0..=1".to_owned());
        }
        if !(8..=64).contains(&raw.redaction.hash_hex_len) {
            problems.push("redaction.hash_hex_len must be within 8..=64".to_owned());
        }
        if raw.limits.max_json_depth == 0 || raw.limits.max_json_depth > 120 {
            // serde_json itself stops at 128 levels; staying below keeps our error the one users see.
            problems.push("limits.max_json_depth must be within 1..=120".to_owned());
        }
        if raw.limits.max_input_bytes == 0 {
            problems.push("limits.max_input_bytes must be positive".to_owned());
        }
        for kind in FindingKind::ALL {
            if !raw.classification.kinds.contains_key(&kind) {
                problems.push(format!("classification.kinds.{} is missing", kind.name()));
            }
        }
        for cat in Category::ALL {
            if !raw.content_safety.actions.contains_key(&cat) {
                problems.push(format!("content_safety.actions.{} is missing", cat.name()));
            }
        }
        if !problems.is_empty() {
            return Err(err(problems.join("; ")));
        }
        let mut dlp_actions = raw.dlp.actions;
        for kind in FindingKind::ALL {
            dlp_actions.entry(kind).or_insert(raw.dlp.default_action);
        }
        let mut modes = raw.redaction.modes;
        for kind in FindingKind::ALL {
            modes.entry(kind).or_insert(raw.redaction.default_mode);
        }
        Ok(Self {
            min_confidence: raw.min_confidence,
            hash_hex_len: raw.redaction.hash_hex_len,
            modes,
            base_level: raw.classification.base_level,
            kind_classes: raw.classification.kinds,
            medical_context: raw.classification.medical_context,
            max_input_bytes: raw.limits.max_input_bytes,
            max_json_depth: raw.limits.max_json_depth,
            safety_actions: raw.content_safety.actions,
            dlp_actions,
        })
    }

    pub fn mode(&self, kind: FindingKind) -> RedactionMode {
        self.modes.get(&kind).copied().unwrap_or(RedactionMode::Tag)
    }

    /// What DLP does with `kind` in an outbound tool call.
    pub fn dlp_action(&self, kind: FindingKind) -> DlpAction {
        self.dlp_actions
            .get(&kind)
            .copied()
            .unwrap_or(DlpAction::Block)
    }

    pub fn class_of(&self, kind: FindingKind) -> Classification {
        self.kind_classes
            .get(&kind)
            .copied()
            .unwrap_or(Classification::new(Level::Restricted, Tags::EMPTY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_is_valid() {
        let c = DataProtectConfig::embedded().unwrap();
        assert_eq!(c.mode(FindingKind::Email), RedactionMode::Mask);
        assert_eq!(c.mode(FindingKind::Mrn), RedactionMode::Hash);
        assert_eq!(c.max_json_depth, 64);
        assert_eq!(c.dlp_action(FindingKind::CreditCard), DlpAction::Block);
        assert_eq!(c.dlp_action(FindingKind::Email), DlpAction::Redact);
    }

    #[test]
    fn a_file_without_dlp_blocks_every_type() {
        let start = EMBEDDED_CONFIG.find("\ndlp:").unwrap();
        let c = DataProtectConfig::parse(&EMBEDDED_CONFIG[..start], "t").unwrap();
        assert!(
            FindingKind::ALL
                .iter()
                .all(|k| c.dlp_action(*k) == DlpAction::Block)
        );
    }

    #[test]
    fn every_problem_is_reported_and_unknown_keys_rejected() {
        let bad = EMBEDDED_CONFIG
            .replace("min_confidence: 0.45", "min_confidence: 3")
            .replace("hash_hex_len: 8", "hash_hex_len: 2");
        let msg = DataProtectConfig::parse(&bad, "t").unwrap_err().to_string();
        assert!(
            msg.contains("min_confidence") && msg.contains("hash_hex_len"),
            "{msg}"
        );
        let unknown = format!("{EMBEDDED_CONFIG}\nsurprise: 1\n");
        let msg = DataProtectConfig::parse(&unknown, "t")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("surprise"), "{msg}");
    }
}
