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

/// Detector name of a span merged from overlapping findings of different kinds; masks of such
/// spans keep nothing.
pub const MERGED: &str = "merged";

/// Makes findings disjoint. Overlapping findings are merged into one span covering all of them
/// (dropping the loser would leave its non-overlapping part unredacted); the merged span takes
/// the kind of the most confident, then longest, member. Returns them sorted by start.
pub(crate) fn resolve_overlaps(mut all: Vec<Finding>) -> Vec<Finding> {
    if all.len() < 2 {
        return all;
    }
    all.sort_by_key(|f| f.start);
    let mut out: Vec<Finding> = Vec::with_capacity(all.len());
    for f in all {
        match out.last_mut() {
            Some(last) if f.start < last.end => {
                let mixed = last.kind != f.kind;
                let wins = f.confidence > last.confidence
                    || (f.confidence == last.confidence && f.len() > last.len());
                if wins {
                    last.kind = f.kind;
                    last.confidence = f.confidence;
                    last.detector = f.detector;
                }
                if mixed {
                    last.detector = MERGED;
                }
                last.end = last.end.max(f.end);
            }
            _ => out.push(f),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_merge_into_the_most_confident_kind() {
        let a = Finding::new(FindingKind::CreditCard, 0, 12, 0.95, "card");
        let b = Finding::new(FindingKind::CreditCard, 0, 19, 0.95, "card");
        let c = Finding::new(FindingKind::Ssn, 30, 41, 0.8, "ssn");
        let d = Finding::new(FindingKind::Phone, 25, 33, 0.85, "phone");
        let got = resolve_overlaps(vec![a, b.clone(), c, d]);
        assert_eq!(got[0], b);
        assert_eq!(
            got[1],
            Finding::new(FindingKind::Phone, 25, 41, 0.85, MERGED)
        );
    }
}
