//! Content safety: categories, per-category actions from config, and a pluggable classifier.
//! The built-in classifier is the lexicon ([`LexiconClassifier`]); an OpenAI-compatible
//! moderation endpoint can implement [`ContentClassifier`] (not provided here).

mod lexicon;

use std::collections::BTreeMap;

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

/// Turns hits into a verdict with the configured actions.
#[derive(Debug)]
pub struct ContentSafety {
    actions: BTreeMap<Category, Action>,
    lexicon: LexiconClassifier,
}

impl ContentSafety {
    pub fn new(actions: BTreeMap<Category, Action>, lexicon: LexiconClassifier) -> Self {
        Self { actions, lexicon }
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
