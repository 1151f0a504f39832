//! Data protection for AMAS: detection of personal, health, payment and secret data with
//! validating detectors, redaction (mask, tag or keyed hash) of text and JSON, classification
//! (`public < internal < confidential < restricted`, tags PII/PHI/PCI/SECRET), and content
//! safety (a lexicon classifier with obfuscation handling behind a pluggable trait), and
//! prompt-injection screening of the data agents read ([`InjectionScreen`]).
//!
//! Pure library: no I/O except reading a config file when asked to.

mod classify;
mod config;
mod detect;
mod error;
mod finding;
mod fixpoint;
pub mod injection;
mod protector;
mod redact;
pub mod safety;
mod scrub;

pub use classify::{Classification, Level, Tag, Tags};
pub use config::{DataProtectConfig, DlpAction, EMBEDDED_CONFIG, RedactionMode};
pub use error::DataProtectError;
pub use finding::{Finding, FindingKind};
pub use injection::{
    InjectionHit, InjectionScreen, InjectionVerdict, PromptInjectionConfig, Signal,
    untrusted_envelope,
};
pub use protector::{DataProtector, JsonFinding, RedactedJson, RedactedText, Scan};
pub use redact::TenantKey;
pub use safety::{
    Action, Category, ClassifierChoice, ContentClassifier, ContentSafety, LexiconClassifier,
    ModerationConfig, OnUnavailable, Screening, Verdict,
};
pub use scrub::{SCRUBBED, scrub};
