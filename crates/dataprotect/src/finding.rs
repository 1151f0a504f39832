//! What a detector reports: the kind of sensitive value, where it is, and how sure we are.

use serde::{Deserialize, Serialize};

/// The kinds of sensitive value the detectors know. The serialised name (snake case) is the
/// key used in `config/dataprotect.yaml` and in `amas redact --json` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Email,
    Phone,
    CreditCard,
    Iban,
    Ssn,
    IpAddress,
    ApiKey,
    PrivateKey,
    Jwt,
    DateOfBirth,
    Mrn,
    Passport,
    DriversLicense,
    PersonName,
}

impl FindingKind {
    pub const ALL: [Self; 14] = [
        Self::Email,
        Self::Phone,
        Self::CreditCard,
        Self::Iban,
        Self::Ssn,
        Self::IpAddress,
        Self::ApiKey,
        Self::PrivateKey,
        Self::Jwt,
        Self::DateOfBirth,
        Self::Mrn,
        Self::Passport,
        Self::DriversLicense,
        Self::PersonName,
    ];

    /// Snake-case name, as in the config file.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::CreditCard => "credit_card",
            Self::Iban => "iban",
            Self::Ssn => "ssn",
            Self::IpAddress => "ip_address",
            Self::ApiKey => "api_key",
            Self::PrivateKey => "private_key",
            Self::Jwt => "jwt",
            Self::DateOfBirth => "date_of_birth",
            Self::Mrn => "mrn",
            Self::Passport => "passport",
            Self::DriversLicense => "drivers_license",
            Self::PersonName => "person_name",
        }
    }

    /// The upper-case label used in tags (`[EMAIL]`) and hashes (`[EMAIL:3f9a1c2b]`).
    pub const fn tag(self) -> &'static str {
        match self {
            Self::Email => "EMAIL",
            Self::Phone => "PHONE",
            Self::CreditCard => "CREDIT_CARD",
            Self::Iban => "IBAN",
            Self::Ssn => "SSN",
            Self::IpAddress => "IP_ADDRESS",
            Self::ApiKey => "API_KEY",
            Self::PrivateKey => "PRIVATE_KEY",
            Self::Jwt => "JWT",
            Self::DateOfBirth => "DATE_OF_BIRTH",
            Self::Mrn => "MRN",
            Self::Passport => "PASSPORT",
            Self::DriversLicense => "DRIVERS_LICENSE",
            Self::PersonName => "PERSON_NAME",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }
}

/// One detected value. `start..end` are byte offsets into the UTF-8 input, always on char
/// boundaries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    #[serde(rename = "type")]
    pub kind: FindingKind,
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
    pub detector: &'static str,
}

impl Finding {
    pub(crate) fn new(
        kind: FindingKind,
        start: usize,
        end: usize,
        confidence: f32,
        detector: &'static str,
    ) -> Self {
        Self {
            kind,
            start,
            end,
            confidence: confidence.clamp(0.0, 1.0),
            detector,
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Keeps a set of non-overlapping findings: the most confident wins, then the longest, then the
/// earliest. Returns them sorted by start.
pub(crate) fn resolve_overlaps(mut all: Vec<Finding>) -> Vec<Finding> {
    if all.len() < 2 {
        return all;
    }
    all.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(b.len().cmp(&a.len()))
            .then(a.start.cmp(&b.start))
    });
    // Accepted spans keyed by start; since they never overlap, the neighbours by start are the
    // only ones a new span can collide with.
    let mut kept: std::collections::BTreeMap<usize, Finding> = std::collections::BTreeMap::new();
    for f in all {
        let before = kept.range(..=f.start).next_back().map(|(_, k)| k.end > f.start);
        let after = kept.range(f.start..).next().map(|(_, k)| k.start < f.end);
        if before != Some(true) && after != Some(true) {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_confident_then_longest_wins() {
        let a = Finding::new(FindingKind::Phone, 0, 12, 0.7, "phone");
        let b = Finding::new(FindingKind::CreditCard, 0, 19, 0.95, "card");
        let c = Finding::new(FindingKind::Ssn, 20, 31, 0.8, "ssn");
        let d = Finding::new(FindingKind::Phone, 18, 25, 0.8, "phone");
        let got = resolve_overlaps(vec![a, b.clone(), c.clone(), d]);
        assert_eq!(got, vec![b, c]);
    }
}
