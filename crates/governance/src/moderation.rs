//! The content-safety classifier that asks an OpenAI-compatible moderation endpoint
//! (`POST {base_url}/v1/moderations`), and the factory that builds the content-safety engine
//! `content_safety.classifier` selects. OpenAI's categories map onto AMAS's; the API key is
//! read from the configured environment variable once, sent as a bearer token, and never
//! appears in an error, a log line or a `Debug` output.

use amas_types::codes;
use std::collections::BTreeMap;
use std::sync::Arc;

use amas_dataprotect::safety::{ClassifierError, SafetyHit};
use amas_dataprotect::{
    Category, ClassifierChoice, ContentClassifier, ContentSafety, DataProtectConfig,
    ModerationConfig,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The name the moderation classifier goes by in audit records and journal reasons.
pub const MODERATION: &str = "moderation";

/// Building the configured classifier failed (at start, so a bad setup never reaches a task).
#[derive(Debug, thiserror::Error)]
pub enum ModerationSetupError {
    /// AMAS-DP-0001: the key's variable is named in config but not set.
    #[error(
        "AMAS-DP-0001: content_safety.moderation.api_key_env names `{var}`, which is not set in the environment"
    )]
    MissingKey { var: String },
    /// AMAS-DP-0001: the HTTP client could not be built.
    #[error("AMAS-DP-0001: content_safety.moderation: cannot build the HTTP client: {0}")]
    Client(String),
}

impl ModerationSetupError {
    /// The stable public code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::MissingKey { .. } | Self::Client(_) => codes::DP_CONFIG,
        }
    }
}

/// The content-safety engine `config` selects: the lexicon alone, or the moderation endpoint
/// with the lexicon as its fallback.
///
/// # Errors
/// [`ModerationSetupError`] when the moderation classifier cannot be built.
pub fn content_safety(config: &DataProtectConfig) -> Result<ContentSafety, ModerationSetupError> {
    let safety = ContentSafety::from_config(config);
    match &config.safety_classifier {
        ClassifierChoice::Lexicon => Ok(safety),
        ClassifierChoice::Moderation(m) => {
            let key = match &m.api_key_env {
                None => None,
                Some(var) => Some(
                    std::env::var(var)
                        .map(SecretString::from)
                        .map_err(|_| ModerationSetupError::MissingKey { var: var.clone() })?,
                ),
            };
            let classifier = ModerationClassifier::new(m, key)?;
            Ok(safety
                .with_classifier(MODERATION, Arc::new(classifier))
                .on_unavailable(m.on_unavailable))
        }
    }
}

/// Asks `POST {base_url}/v1/moderations`.
pub struct ModerationClassifier {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<SecretString>,
}

impl std::fmt::Debug for ModerationClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModerationClassifier")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ModerationClassifier {
    /// # Errors
    /// [`ModerationSetupError::Client`] when the HTTP client cannot be built.
    pub fn new(
        config: &ModerationConfig,
        api_key: Option<SecretString>,
    ) -> Result<Self, ModerationSetupError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ModerationSetupError::Client(e.without_url().to_string()))?;
        Ok(Self {
            client,
            url: format!("{}/v1/moderations", config.base_url.trim_end_matches('/')),
            model: config.model.clone(),
            api_key,
        })
    }
}

#[derive(Deserialize)]
struct ModerationResponse {
    results: Vec<ModerationResult>,
}

#[derive(Deserialize)]
struct ModerationResult {
    categories: BTreeMap<String, bool>,
    #[serde(default)]
    category_scores: BTreeMap<String, f64>,
}

/// OpenAI's moderation categories onto AMAS's. Unknown names (categories added later) map to
/// nothing rather than failing the whole answer.
fn category_of(openai: &str) -> Option<Category> {
    let family = openai.split('/').next().unwrap_or(openai);
    match family {
        "hate" => Some(Category::Hate),
        "harassment" => Some(Category::Harassment),
        "self-harm" => Some(Category::SelfHarm),
        "sexual" => Some(Category::Sexual),
        "violence" => Some(Category::Violence),
        "illicit" => Some(Category::IllegalActivity),
        _ => None,
    }
}

#[async_trait::async_trait]
impl ContentClassifier for ModerationClassifier {
    async fn classify(&self, text: &str) -> Result<Vec<SafetyHit>, ClassifierError> {
        let mut request = self
            .client
            .post(&self.url)
            .json(&serde_json::json!({"input": text, "model": self.model}));
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        // Errors describe what went wrong, never the request (its headers hold the key).
        let response = request.send().await.map_err(|e| {
            ClassifierError::Unavailable(if e.is_timeout() {
                "the moderation endpoint did not answer in time".to_owned()
            } else {
                "the moderation endpoint is unreachable".to_owned()
            })
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClassifierError::Unavailable(format!(
                "the moderation endpoint answered HTTP {}",
                status.as_u16()
            )));
        }
        let body: ModerationResponse = response.json().await.map_err(|_| {
            ClassifierError::Unavailable(
                "the moderation endpoint's answer is not a moderation response".to_owned(),
            )
        })?;
        let result = body.results.into_iter().next().ok_or_else(|| {
            ClassifierError::Unavailable("the moderation endpoint returned no result".to_owned())
        })?;
        // One hit per AMAS category: the highest score of the OpenAI categories flagged in it.
        let mut scores: BTreeMap<Category, f32> = BTreeMap::new();
        for (name, flagged) in &result.categories {
            let (true, Some(category)) = (*flagged, category_of(name)) else {
                continue;
            };
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a score within 0..=1 fits an f32"
            )]
            let score = result.category_scores.get(name).copied().unwrap_or(1.0) as f32;
            let entry = scores.entry(category).or_insert(score);
            *entry = entry.max(score);
        }
        Ok(scores
            .into_iter()
            .map(|(category, score)| SafetyHit {
                category,
                start: 0,
                end: text.len(),
                score,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_categories_map_onto_amas_categories() {
        for (openai, amas) in [
            ("hate", Category::Hate),
            ("hate/threatening", Category::Hate),
            ("harassment/threatening", Category::Harassment),
            ("self-harm/instructions", Category::SelfHarm),
            ("sexual/minors", Category::Sexual),
            ("violence/graphic", Category::Violence),
            ("illicit/violent", Category::IllegalActivity),
        ] {
            assert_eq!(category_of(openai), Some(amas), "{openai}");
        }
        assert_eq!(category_of("spam"), None);
    }
}
