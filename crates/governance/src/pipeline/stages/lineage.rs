//! Stage: DLP in on a tool's result, at the call: what it carries (finding types and counts,
//! classification), so the result's classification is known before the model sees it and is
//! journaled with the call (when it carries anything), not only after the step.

use serde_json::{Value, json};

use amas_dataprotect::{Classification, DataProtector};
use amas_types::{DataLabels, Decision, Outcome, Stage};

use super::allow;

/// The classification of a tool result, and the decision that journals it.
#[derive(Clone, Debug)]
pub struct ResultLabels {
    pub labels: DataLabels,
    /// Finding types and counts (never values), for the audit record.
    pub findings: Value,
}

/// Classifies `result`. A result that cannot be scanned counts as `restricted` (fail closed).
#[must_use]
pub fn classify(protector: Option<&DataProtector>, result: &Value) -> (Decision, ResultLabels) {
    let scanned = protector.and_then(|p| p.scan(&result.to_string()).ok());
    let Some(scan) = scanned else {
        let decision = Decision {
            outcome: Outcome::Allow,
            reasons: vec!["the result could not be scanned; it counts as restricted".to_owned()],
            ..allow(Stage::DataProtectionIn)
        };
        let labels = DataLabels {
            classification: "restricted".to_owned(),
            tags: Vec::new(),
            redacted: None,
        };
        return (
            decision,
            ResultLabels {
                labels,
                findings: json!({}),
            },
        );
    };
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for f in &scan.findings {
        *counts.entry(f.kind.name().to_owned()).or_default() += 1;
    }
    let labels = labels(scan.classification);
    // A result with findings is worth journaling at the call: its types and counts (never the
    // values) and, on the event, its classification.
    let reasons = counts
        .iter()
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect();
    let decision = Decision {
        reasons,
        ..allow(Stage::DataProtectionIn)
    };
    (
        decision,
        ResultLabels {
            labels,
            findings: json!(counts),
        },
    )
}

/// A classification as journaled (`DataLabels`).
#[must_use]
pub fn labels(class: Classification) -> DataLabels {
    DataLabels {
        classification: class.level.name().to_owned(),
        tags: class.tags.iter().map(|t| t.name().to_owned()).collect(),
        redacted: None,
    }
}
