//! Data-loss prevention facts for a tool call: what the parameters carry (finding types and
//! counts, classification), what `config/dataprotect.yaml` says to do with each type found,
//! and the parameters with the `redact` types redacted. Policy (`policies/tool.rego`) decides
//! with these facts; the runtime carries out a `redact` obligation with the redacted copy.
//! Values never leave this module except inside the redacted parameters.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use amas_dataprotect::{Classification, DataProtector, DlpAction, FindingKind, TenantKey};

/// What the parameters of one call carry.
#[derive(Clone, Debug, PartialEq)]
pub struct DlpFacts {
    /// Level of the parameters as they are (`public` ..= `restricted`).
    pub classification: String,
    pub tags: Vec<String>,
    /// Findings per type (`email`, `credit_card`, ...).
    pub counts: BTreeMap<String, usize>,
    /// The configured action of each type found.
    pub actions: BTreeMap<String, String>,
    /// The parameters with every `redact` type redacted, and their classification; `None` when
    /// no type found is configured `redact`.
    pub redacted: Option<RedactedParameters>,
    /// Why the parameters could not be scanned (too large, too deep); they then count as
    /// restricted and policy refuses them on an external call.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RedactedParameters {
    pub parameters: Value,
    pub classification: String,
    pub tags: Vec<String>,
}

impl DlpFacts {
    /// Scans `arguments` with `protector`; `key` keys hash-mode tokens (per tenant).
    #[must_use]
    pub fn of(protector: &DataProtector, key: &TenantKey, arguments: &Value) -> Self {
        let full = match protector.redact_json(arguments, key) {
            Ok(full) => full,
            Err(e) => return Self::unscannable(e.to_string()),
        };
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut actions = BTreeMap::new();
        for f in &full.findings {
            let kind = f.finding.kind;
            *counts.entry(kind.name().to_owned()).or_default() += 1;
            actions.insert(
                kind.name().to_owned(),
                protector.config().dlp_action(kind).name().to_owned(),
            );
        }
        let redact = |kind: FindingKind| protector.config().dlp_action(kind) == DlpAction::Redact;
        let any_redact = full.findings.iter().any(|f| redact(f.finding.kind));
        let redacted = if any_redact {
            match protector
                .redact_json_only(arguments, key, &redact)
                .and_then(|partial| {
                    let class = protector
                        .redact_json(&partial.redacted, key)?
                        .classification;
                    Ok((partial.redacted, class))
                }) {
                Ok((parameters, class)) => Some(RedactedParameters {
                    parameters,
                    classification: class.level.name().to_owned(),
                    tags: tag_names(&class),
                }),
                Err(e) => return Self::unscannable(e.to_string()),
            }
        } else {
            None
        };
        Self {
            classification: full.classification.level.name().to_owned(),
            tags: tag_names(&full.classification),
            counts,
            actions,
            redacted,
            error: None,
        }
    }

    fn unscannable(why: String) -> Self {
        Self {
            classification: "restricted".to_owned(),
            tags: Vec::new(),
            counts: BTreeMap::new(),
            actions: BTreeMap::new(),
            redacted: None,
            error: Some(why),
        }
    }

    /// Facts when no data protector is available: unknown, so restricted and unscannable.
    #[must_use]
    pub fn unavailable() -> Self {
        Self::unscannable("no data protector is available".to_owned())
    }

    /// The `data` document of the policy input.
    #[must_use]
    pub fn data_doc(&self) -> Value {
        let mut doc = json!({"classification": self.classification, "tags": self.tags});
        if let Some(r) = &self.redacted {
            doc["redacted"] = json!({"classification": r.classification, "tags": r.tags});
        }
        doc
    }

    /// The `dlp` document of the policy input: the types found (sorted), their counts, the
    /// configured action of each, and whether scanning failed.
    #[must_use]
    pub fn dlp_doc(&self) -> Value {
        json!({
            "types": self.counts.keys().collect::<Vec<_>>(),
            "counts": self.counts,
            "actions": self.actions,
            "error": self.error.is_some(),
        })
    }

    /// The audit/journal summary: types and counts, never values.
    #[must_use]
    pub fn summary(&self) -> Value {
        json!({
            "classification": self.classification,
            "tags": self.tags,
            "findings": self.counts,
            "actions": self.actions,
            "redacted": self.redacted.is_some(),
            "error": self.error.is_some(),
        })
    }
}

fn tag_names(c: &Classification) -> Vec<String> {
    c.tags.iter().map(|t| t.name().to_owned()).collect()
}
