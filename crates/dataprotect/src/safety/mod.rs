//! Content safety: categories, per-category actions from config, and a pluggable classifier.
//! The built-in classifier is the lexicon ([`LexiconClassifier`]); another one (the
//! OpenAI-compatible moderation client in `amas-governance`) implements [`ContentClassifier`]
//! and is plugged in with [`ContentSafety::with_classifier`]. When it cannot answer,
//! [`ContentSafety::screen`] falls back to the lexicon and says so.

mod lexicon;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::DataProtectConfig;
pub use lexicon::LexiconClassifier;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Hate,
    Harassment,
    Violence,
    SelfHarm,
    Sexual,
    IllegalActivity,
}

impl Category {
    pub const ALL: [Self; 6] = [
        Self::Hate,
        Self::Harassment,
        Self::Violence,
        Self::SelfHarm,
        Self::Sexual,
        Self::IllegalActivity,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Hate => "hate",
            Self::Harassment => "harassment",
            Self::Violence => "violence",
            Self::SelfHarm => "self_harm",
            Self::Sexual => "sexual",
            Self::IllegalActivity => "illegal_activity",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What to do with content in a category; ordered so the strictest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Flag,
    Block,
}

/// One category hit. Offsets are bytes into the checked text; the matched words themselves are
/// deliberately not carried, so a verdict can be logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SafetyHit {
    pub category: Category,
    pub start: usize,
    pub end: usize,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The strictest action over all hits (`allow` when there are none).
    pub action: Action,
    pub hits: Vec<SafetyHit>,
}

impl Verdict {
    /// Distinct categories hit, in order of first appearance.
    pub fn categories(&self) -> Vec<Category> {
        let mut seen = Vec::new();
        for h in &self.hits {
            if !seen.contains(&h.category) {
                seen.push(h.category);
            }
        }
        seen
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    /// The classifier could not give an answer (endpoint down, timeout, bad response).
    #[error("content classifier unavailable: {0}")]
    Unavailable(String),
}

/// A source of category hits. Implement this for an external moderation service.
#[async_trait::async_trait]
pub trait ContentClassifier: Send + Sync {
    async fn classify(&self, text: &str) -> Result<Vec<SafetyHit>, ClassifierError>;
}

/// Which classifier `content_safety.classifier` selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "classifier", rename_all = "snake_case")]
pub enum ClassifierChoice {
    Lexicon,
    Moderation(ModerationConfig),
}

/// `content_safety.moderation`: an OpenAI-compatible `POST {base_url}/v1/moderations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModerationConfig {
    /// Without a trailing slash.
    pub base_url: String,
    pub model: String,
    /// The environment variable holding the API key (sent as a bearer token), if any;
    /// `config dump` shows only whether one is set.
    #[serde(serialize_with = "amas_config::redacted::optional")]
    pub api_key_env: Option<String>,
    #[serde(rename = "timeout_ms", serialize_with = "millis")]
    pub timeout: Duration,
    pub on_unavailable: OnUnavailable,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// What decides when the configured classifier cannot answer (down, timeout, garbage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// The built-in lexicon screens instead (an outage neither stops every task nor lets the
    /// worst content through unscreened).
    #[default]
    Lexicon,
    /// Everything is blocked until the classifier answers again (fail closed).
    Block,
}

/// A verdict and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Screening {
    pub verdict: Verdict,
    /// The classifier that gave the hits: `lexicon` or the plugged-in one's name.
    pub classifier: &'static str,
    /// The configured classifier could not answer; the lexicon's verdict stands in.
    pub classifier_unavailable: bool,
}

/// Turns hits into a verdict with the configured actions.
pub struct ContentSafety {
    actions: BTreeMap<Category, Action>,
    lexicon: LexiconClassifier,
    /// The configured classifier when it is not the lexicon, with its name.
    external: Option<(&'static str, Arc<dyn ContentClassifier>)>,
    /// What decides when `external` cannot answer.
    on_unavailable: OnUnavailable,
}

impl std::fmt::Debug for ContentSafety {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentSafety")
            .field("actions", &self.actions)
            .field("classifier", &self.classifier_name())
            .finish_non_exhaustive()
    }
}

impl ContentSafety {
    pub fn new(actions: BTreeMap<Category, Action>, lexicon: LexiconClassifier) -> Self {
        Self {
            actions,
            lexicon,
            external: None,
            on_unavailable: OnUnavailable::Lexicon,
        }
    }

    /// What decides when the plugged-in classifier cannot answer.
    #[must_use]
    pub fn on_unavailable(mut self, choice: OnUnavailable) -> Self {
        self.on_unavailable = choice;
        self
    }

    /// Asks `classifier` (named `name` in audit records) instead of the lexicon; the lexicon
    /// stays as the fallback.
    #[must_use]
    pub fn with_classifier(
        mut self,
        name: &'static str,
        classifier: Arc<dyn ContentClassifier>,
    ) -> Self {
        self.external = Some((name, classifier));
        self
    }

    /// `lexicon` or the plugged-in classifier's name.
    pub fn classifier_name(&self) -> &'static str {
        self.external.as_ref().map_or("lexicon", |(name, _)| name)
    }

    /// The strictest configured action over `categories` (a recorded verdict asked again);
    /// `classifier_unavailable` when the recorded verdict was reached without the configured
    /// classifier, which blocks under `on_unavailable: block`.
    pub fn action_for(&self, categories: &[Category], classifier_unavailable: bool) -> Action {
        let by_category = categories
            .iter()
            .map(|c| self.action(*c))
            .max()
            .unwrap_or(Action::Allow);
        if classifier_unavailable && self.on_unavailable == OnUnavailable::Block {
            Action::Block
        } else {
            by_category
        }
    }

    /// Screens `text` with the configured classifier. When it cannot answer (down, timeout,
    /// garbage), `classifier_unavailable` is set and the built-in lexicon decides instead, so
    /// an outage neither stops every task nor lets the worst content through unscreened; or,
    /// under `on_unavailable: block`, the text is blocked (the lexicon's hits are kept).
    pub async fn screen(&self, text: &str) -> Screening {
        let Some((name, classifier)) = &self.external else {
            return Screening {
                verdict: self.check(text),
                classifier: "lexicon",
                classifier_unavailable: false,
            };
        };
        match classifier.classify(text).await {
            Ok(hits) => Screening {
                verdict: self.verdict(hits),
                classifier: name,
                classifier_unavailable: false,
            },
            Err(_) => {
                let mut verdict = self.check(text);
                if self.on_unavailable == OnUnavailable::Block {
                    verdict.action = Action::Block;
                }
                Screening {
                    verdict,
                    classifier: "lexicon",
                    classifier_unavailable: true,
                }
            }
        }
    }

    pub fn from_config(config: &DataProtectConfig) -> Self {
        Self::new(config.safety_actions.clone(), LexiconClassifier::builtin())
    }

    pub fn action(&self, category: Category) -> Action {
        // A category missing from the map is treated as flag: visible, not silently allowed.
        self.actions.get(&category).copied().unwrap_or(Action::Flag)
    }

    /// Checks with the built-in lexicon (synchronous, microseconds).
    pub fn check(&self, text: &str) -> Verdict {
        self.verdict(self.lexicon.hits(text))
    }

    /// Checks with another classifier; an error is returned, not turned into "allow", so the
    /// caller can fail closed.
    pub async fn check_with(
        &self,
        classifier: &dyn ContentClassifier,
        text: &str,
    ) -> Result<Verdict, ClassifierError> {
        Ok(self.verdict(classifier.classify(text).await?))
    }

    pub fn verdict(&self, hits: Vec<SafetyHit>) -> Verdict {
        let action = hits
            .iter()
            .map(|h| self.action(h.category))
            .max()
            .unwrap_or(Action::Allow);
        Verdict { action, hits }
    }
}
