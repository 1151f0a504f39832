//! `config/dataprotect.yaml`: the `dataprotect` section of the layered configuration (embedded
//! file < `<config-dir>/dataprotect.yaml` < `AMAS__DATAPROTECT__...` < a file named on the
//! command line, merged key by key by `amas-config`). Raw shape with unknown keys rejected,
//! validated into [`DataProtectConfig`], every problem reported at once with its file and key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use amas_config::{Checker, KeyPath, Section};
use serde::{Deserialize, Serialize};
use yaml_serde::Mapping;

use crate::classify::{Classification, Level, Tags};
use crate::error::DataProtectError;
use crate::finding::FindingKind;
use crate::injection::PromptInjectionConfig;
use crate::safety::{Action, Category, ClassifierChoice, ModerationConfig};

/// The configuration shipped with the binary.
pub const EMBEDDED_CONFIG: &str = include_str!("../../../config/dataprotect.yaml");

/// How one finding type is redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionMode {
    Mask,
    Tag,
    Hash,
}

/// What data-loss prevention does with a finding type in the parameters of a tool call that
/// reaches outside AMAS. Policy (`policies/tool.rego`) reads these as facts and decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
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
    #[serde(default)]
    prompt_injection: PromptInjectionConfig,
}

/// Without a `dlp` section every finding blocks: a file written before DLP existed fails
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
    /// `lexicon` (default) or `moderation`.
    #[serde(default)]
    classifier: RawClassifier,
    #[serde(default)]
    moderation: Option<RawModeration>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawClassifier {
    #[default]
    Lexicon,
    Moderation,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModeration {
    base_url: String,
    model: String,
    /// The name of the environment variable holding the API key (never the key itself).
    #[serde(default)]
    api_key_env: Option<String>,
    /// `500ms`, `5s`, ...
    timeout: String,
    /// What decides when the endpoint cannot answer: `lexicon` (default) or `block`.
    #[serde(default)]
    on_unavailable: crate::safety::OnUnavailable,
}

/// Validated configuration; serialized (secrets redacted) by `amas config dump`.
#[derive(Debug, Clone, Serialize)]
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
    /// Which classifier content safety asks (`content_safety.classifier`).
    pub safety_classifier: ClassifierChoice,
    /// DLP action per finding type (every type present).
    pub dlp_actions: BTreeMap<FindingKind, DlpAction>,
    /// `prompt_injection`: the screen of tool results (defaults when the section is absent).
    pub prompt_injection: PromptInjectionConfig,
}

impl Section for DataProtectConfig {
    const NAME: &'static str = "dataprotect";

    fn validate(section: &Mapping, cx: &mut Checker<'_>) -> Option<Self> {
        let root = KeyPath::of(&["dataprotect"]);
        let raw: RawConfig = cx.deserialize(&yaml_serde::Value::Mapping(section.clone()), &root)?;
        let before = cx.error_count();
        if !(0.0..=1.0).contains(&raw.min_confidence) {
            cx.invalid(&root.child("min_confidence"), "must be within 0..=1");
        }
        let redaction = root.child("redaction");
        if !(8..=64).contains(&raw.redaction.hash_hex_len) {
            cx.invalid(&redaction.child("hash_hex_len"), "must be within 8..=64");
        }
        let limits = root.child("limits");
        if raw.limits.max_json_depth == 0 || raw.limits.max_json_depth > 120 {
            // serde_json itself stops at 128 levels; staying below keeps our error the one users see.
            cx.invalid(&limits.child("max_json_depth"), "must be within 1..=120");
        }
        if raw.limits.max_input_bytes == 0 {
            cx.invalid(&limits.child("max_input_bytes"), "must be positive");
        }
        let kinds = root.child("classification").child("kinds");
        for kind in FindingKind::ALL {
            if !raw.classification.kinds.contains_key(&kind) {
                cx.invalid(
                    &kinds.child(kind.name()),
                    "is missing: every finding type needs a class",
                );
            }
        }
        let actions = root.child("content_safety").child("actions");
        for cat in Category::ALL {
            if !raw.content_safety.actions.contains_key(&cat) {
                cx.invalid(
                    &actions.child(cat.name()),
                    "is missing: every category needs an action",
                );
            }
        }
        let safety_classifier =
            classifier_choice(&raw.content_safety, &root.child("content_safety"), cx);
        if cx.error_count() != before {
            return None;
        }
        let mut dlp_actions = raw.dlp.actions;
        for kind in FindingKind::ALL {
            dlp_actions.entry(kind).or_insert(raw.dlp.default_action);
        }
        let mut modes = raw.redaction.modes;
        for kind in FindingKind::ALL {
            modes.entry(kind).or_insert(raw.redaction.default_mode);
        }
        Some(Self {
            min_confidence: raw.min_confidence,
            hash_hex_len: raw.redaction.hash_hex_len,
            modes,
            base_level: raw.classification.base_level,
            kind_classes: raw.classification.kinds,
            medical_context: raw.classification.medical_context,
            max_input_bytes: raw.limits.max_input_bytes,
            max_json_depth: raw.limits.max_json_depth,
            safety_actions: raw.content_safety.actions,
            safety_classifier,
            dlp_actions,
            prompt_injection: raw.prompt_injection,
        })
    }
}

impl DataProtectConfig {
    /// The embedded default on its own.
    pub fn embedded() -> Result<Self, DataProtectError> {
        Self::parse(EMBEDDED_CONFIG, "<embedded>/dataprotect.yaml")
    }

    /// A self-contained file on its own (no embedded layer under it).
    pub fn from_file(path: &Path) -> Result<Self, DataProtectError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DataProtectError::Config {
            source_name: name.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &name)
    }

    /// Parses and validates a whole file, reporting every problem at once (each with its key
    /// path, `dataprotect.<key>`).
    pub fn parse(text: &str, source_name: &str) -> Result<Self, DataProtectError> {
        amas_config::parse_section(source_name, text).map_err(|errors| DataProtectError::Config {
            source_name: source_name.to_owned(),
            message: errors.to_string(),
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

/// Validates `content_safety.classifier` and `content_safety.moderation`, naming each bad key.
fn classifier_choice(raw: &RawSafety, at: &KeyPath, cx: &mut Checker<'_>) -> ClassifierChoice {
    let key = at.child("moderation");
    let moderation = match (raw.classifier, &raw.moderation) {
        (RawClassifier::Lexicon, _) => return ClassifierChoice::Lexicon,
        (RawClassifier::Moderation, None) => {
            cx.invalid(
                &key,
                "is missing (content_safety.classifier is `moderation`)",
            );
            return ClassifierChoice::Lexicon;
        }
        (RawClassifier::Moderation, Some(m)) => m,
    };
    let base_url = moderation.base_url.trim_end_matches('/');
    let scheme_ok = ["http://", "https://"]
        .iter()
        .any(|s| base_url.len() > s.len() && base_url.starts_with(s));
    if !scheme_ok || base_url.contains(char::is_whitespace) {
        let msg = "must be an http:// or https:// URL, e.g. https://api.openai.com";
        cx.invalid(&key.child("base_url"), msg);
    }
    if moderation.model.trim().is_empty() {
        cx.invalid(&key.child("model"), "must not be empty");
    }
    if let Some(var) = &moderation.api_key_env {
        let valid = !var.is_empty()
            && var
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            // Never quote the value: a key pasted here by mistake must not reach a log.
            let msg = "must name an environment variable (A-Z, 0-9, _), not hold a key";
            cx.invalid(&key.child("api_key_env"), msg);
        }
    }
    let timeout = match parse_timeout(&moderation.timeout) {
        Some(t) if !t.is_zero() && t <= Duration::from_secs(60) => t,
        _ => {
            let msg = "must be a duration within 1ms..=60s, such as `500ms` or `5s`";
            cx.invalid(&key.child("timeout"), msg);
            Duration::from_secs(5)
        }
    };
    ClassifierChoice::Moderation(ModerationConfig {
        base_url: base_url.to_owned(),
        model: moderation.model.trim().to_owned(),
        api_key_env: moderation.api_key_env.clone(),
        timeout,
        on_unavailable: moderation.on_unavailable,
    })
}

/// `250ms` or `5s`.
fn parse_timeout(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    text.strip_suffix('s')?
        .parse()
        .ok()
        .map(Duration::from_secs)
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
    fn the_moderation_classifier_is_validated_key_by_key() {
        let with = |section: &str| EMBEDDED_CONFIG.replace("  classifier: lexicon\n", section);
        let good = with(
            "  classifier: moderation\n  moderation:\n    base_url: http://127.0.0.1:9/\n    model: omni-moderation-latest\n    api_key_env: MOD_KEY\n    timeout: 750ms\n",
        );
        let c = DataProtectConfig::parse(&good, "t").unwrap();
        let ClassifierChoice::Moderation(m) = &c.safety_classifier else {
            panic!("moderation selected: {:?}", c.safety_classifier);
        };
        assert_eq!(m.base_url, "http://127.0.0.1:9");
        assert_eq!(m.api_key_env.as_deref(), Some("MOD_KEY"));
        assert_eq!(m.timeout, std::time::Duration::from_millis(750));
        assert_eq!(
            m.on_unavailable,
            crate::OnUnavailable::Lexicon,
            "the default"
        );
        let strict = DataProtectConfig::parse(
            &good.replace(
                "timeout: 750ms\n",
                "timeout: 750ms\n    on_unavailable: block\n",
            ),
            "t",
        )
        .unwrap();
        let ClassifierChoice::Moderation(m) = &strict.safety_classifier else {
            panic!("moderation selected: {:?}", strict.safety_classifier);
        };
        assert_eq!(m.on_unavailable, crate::OnUnavailable::Block);
        let typo = DataProtectConfig::parse(
            &good.replace(
                "timeout: 750ms\n",
                "timeout: 750ms\n    on_unavailable: panic\n",
            ),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            typo.contains("on_unavailable") || typo.contains("panic"),
            "{typo}"
        );

        let missing = with("  classifier: moderation\n");
        let msg = DataProtectConfig::parse(&missing, "t")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("dataprotect.content_safety.moderation: is missing"),
            "{msg}"
        );

        let bad = with(
            "  classifier: moderation\n  moderation:\n    base_url: ftp://x\n    model: ''\n    api_key_env: sk-live-123\n    timeout: forever\n",
        );
        let msg = DataProtectConfig::parse(&bad, "t").unwrap_err().to_string();
        for key in ["base_url", "model", "api_key_env", "timeout"] {
            assert!(
                msg.contains(&format!("content_safety.moderation.{key}")),
                "{key}: {msg}"
            );
        }
        let unknown = with("  classifier: oracle\n");
        let msg = DataProtectConfig::parse(&unknown, "t")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("oracle"), "{msg}");
        assert_eq!(
            DataProtectConfig::embedded().unwrap().safety_classifier,
            ClassifierChoice::Lexicon
        );
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
