//! [`DataProtector`]: the one entry point the pipeline and the CLI use to scan, classify and
//! redact text and JSON.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::classify::{Classification, Tag};
use crate::config::DataProtectConfig;
use crate::detect::{Detectors, RawScan};
use crate::error::DataProtectError;
use crate::finding::{Finding, FindingKind};
use crate::fixpoint;
use crate::redact::{self, TenantKey};

/// Findings of one text and what they make it.
#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    pub findings: Vec<Finding>,
    pub classification: Classification,
}

/// Redacted text with the findings (offsets into the original input) that were replaced.
#[derive(Debug, Clone, Serialize)]
pub struct RedactedText {
    pub redacted: String,
    pub findings: Vec<Finding>,
    pub classification: Classification,
}

/// A finding inside a JSON document: `path` is a JSON pointer to the string, offsets are bytes
/// into that string. `in_key` findings are in object keys, which are reported but kept.
#[derive(Debug, Clone, Serialize)]
pub struct JsonFinding {
    pub path: String,
    pub in_key: bool,
    #[serde(flatten)]
    pub finding: Finding,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedactedJson {
    pub redacted: Value,
    pub findings: Vec<JsonFinding>,
    pub classification: Classification,
}

/// Compiled detectors plus configuration. Build once at start-up and share (`Send + Sync`).
pub struct DataProtector {
    config: DataProtectConfig,
    detectors: Detectors,
}

impl std::fmt::Debug for DataProtector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataProtector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Classification facts gathered while scanning, folded into a [`Classification`] at the end.
#[derive(Default)]
struct Facts {
    class: Classification,
    medical: bool,
    personal: bool,
}

impl DataProtector {
    pub fn new(config: DataProtectConfig) -> Result<Self, DataProtectError> {
        let detectors = Detectors::new().map_err(|message| DataProtectError::Config {
            source_name: "built-in detectors".to_owned(),
            message,
        })?;
        Ok(Self { config, detectors })
    }

    /// With the embedded `config/dataprotect.yaml`.
    pub fn embedded() -> Result<Self, DataProtectError> {
        Self::new(DataProtectConfig::embedded()?)
    }

    /// The embedded protector, built once per process and shared (it is immutable): the
    /// default of every component until a configured one replaces it. `None` only if the
    /// embedded configuration were broken (a test pins it valid).
    #[must_use]
    pub fn shared_embedded() -> Option<std::sync::Arc<Self>> {
        static EMBEDDED: std::sync::OnceLock<Option<std::sync::Arc<DataProtector>>> =
            std::sync::OnceLock::new();
        EMBEDDED
            .get_or_init(|| Self::embedded().ok().map(std::sync::Arc::new))
            .clone()
    }

    pub fn config(&self) -> &DataProtectConfig {
        &self.config
    }

    fn check_size(&self, len: usize) -> Result<(), DataProtectError> {
        if len > self.config.max_input_bytes {
            return Err(DataProtectError::TooLarge {
                len,
                limit: self.config.max_input_bytes,
            });
        }
        Ok(())
    }

    fn raw(&self, text: &str) -> RawScan {
        self.detectors.scan(text, self.config.min_confidence)
    }

    fn add_facts(&self, facts: &mut Facts, text: &str, raw: &RawScan) {
        if !text.trim().is_empty() {
            facts.class = facts.class.with_floor(self.config.base_level);
        }
        facts.medical |= raw.medical_context;
        for f in &raw.findings {
            let c = self.config.class_of(f.kind);
            facts.personal |= c.tags.contains(Tag::Pii) || c.tags.contains(Tag::Phi);
            facts.class = facts.class.max(c);
        }
    }

    fn finish(&self, facts: Facts) -> Classification {
        // Personal data next to medical words is health data.
        if facts.medical && facts.personal {
            facts.class.max(self.config.medical_context)
        } else {
            facts.class
        }
    }

    /// Classification of an empty or finding-free text is `public` / the base level.
    pub fn scan(&self, text: &str) -> Result<Scan, DataProtectError> {
        self.check_size(text.len())?;
        let raw = self.raw(text);
        let mut facts = Facts::default();
        self.add_facts(&mut facts, text, &raw);
        Ok(Scan {
            classification: self.finish(facts),
            findings: raw.findings,
        })
    }

    /// The replacement `redact_text` would write for one finding.
    pub fn replacement(&self, finding: &Finding, original: &str, key: &TenantKey) -> String {
        redact::replacement(
            finding,
            original,
            self.config.mode(finding.kind),
            key,
            self.config.hash_hex_len,
        )
    }

    pub fn redact_text(
        &self,
        text: &str,
        key: &TenantKey,
    ) -> Result<RedactedText, DataProtectError> {
        self.check_size(text.len())?;
        let raw = self.raw(text);
        let mut facts = Facts::default();
        self.add_facts(&mut facts, text, &raw);
        let (redacted, findings) = self.redact_stable(text, raw.findings, key, None);
        let extra = RawScan {
            findings: findings.clone(),
            medical_context: false,
        };
        self.add_facts(&mut facts, text, &extra);
        Ok(RedactedText {
            redacted,
            findings,
            classification: self.finish(facts),
        })
    }

    fn redact_stable(
        &self,
        text: &str,
        findings: Vec<Finding>,
        key: &TenantKey,
        only: Option<&dyn Fn(FindingKind) -> bool>,
    ) -> (String, Vec<Finding>) {
        let wanted = |f: &Finding| only.is_none_or(|keep| keep(f.kind));
        let findings = findings.into_iter().filter(wanted).collect();
        fixpoint::redact_until_stable(
            text,
            findings,
            fixpoint::MAX_ROUNDS,
            |t| self.raw(t).findings.into_iter().filter(wanted).collect(),
            |f, s| self.replacement(f, s, key),
        )
    }

    /// For callers holding raw bytes (the CLI, request bodies): rejects invalid UTF-8 with its
    /// offset. NUL and other control bytes are ordinary characters.
    pub fn redact_bytes(
        &self,
        input: &[u8],
        key: &TenantKey,
    ) -> Result<RedactedText, DataProtectError> {
        self.check_size(input.len())?;
        let text = std::str::from_utf8(input).map_err(|e| DataProtectError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        self.redact_text(text, key)
    }

    /// Parses and redacts a JSON document given as bytes.
    pub fn redact_json_bytes(
        &self,
        input: &[u8],
        key: &TenantKey,
    ) -> Result<RedactedJson, DataProtectError> {
        self.check_size(input.len())?;
        let text = std::str::from_utf8(input).map_err(|e| DataProtectError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            if e.to_string().contains("recursion limit") {
                DataProtectError::JsonTooDeep {
                    limit: self.config.max_json_depth,
                }
            } else {
                DataProtectError::InvalidJson {
                    line: e.line(),
                    column: e.column(),
                }
            }
        })?;
        self.redact_json(&value, key)
    }

    /// Redacts every string leaf; keys, array lengths and value types are kept. Integers of
    /// 13-19 digits that pass the card checks become a redacted string (a leaked card number
    /// is worse than a changed type); other numbers, booleans and nulls are kept.
    pub fn redact_json(
        &self,
        value: &Value,
        key: &TenantKey,
    ) -> Result<RedactedJson, DataProtectError> {
        self.redact_json_where(value, key, None)
    }

    /// Like [`DataProtector::redact_json`], but only findings whose kind `only` accepts are
    /// redacted (and reported); the classification is still that of the whole input. Data-loss
    /// prevention uses it to redact the types configured `redact` and nothing else.
    pub fn redact_json_only(
        &self,
        value: &Value,
        key: &TenantKey,
        only: &dyn Fn(FindingKind) -> bool,
    ) -> Result<RedactedJson, DataProtectError> {
        self.redact_json_where(value, key, Some(only))
    }

    fn redact_json_where(
        &self,
        value: &Value,
        key: &TenantKey,
        only: Option<&dyn Fn(FindingKind) -> bool>,
    ) -> Result<RedactedJson, DataProtectError> {
        let mut walk = Walk {
            p: self,
            key,
            only,
            facts: Facts::default(),
            findings: Vec::new(),
            path: String::new(),
        };
        let redacted = walk.value(value, None, 0)?;
        let classification = self.finish(walk.facts);
        Ok(RedactedJson {
            redacted,
            findings: walk.findings,
            classification,
        })
    }
}

struct Walk<'a> {
    p: &'a DataProtector,
    key: &'a TenantKey,
    /// Which kinds to redact (all when `None`).
    only: Option<&'a dyn Fn(FindingKind) -> bool>,
    facts: Facts,
    findings: Vec<JsonFinding>,
    path: String,
}

fn push_pointer(path: &mut String, segment: &str) {
    path.push('/');
    for c in segment.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

impl Walk<'_> {
    fn value(
        &mut self,
        v: &Value,
        parent_key: Option<&str>,
        depth: usize,
    ) -> Result<Value, DataProtectError> {
        match v {
            Value::String(s) => Ok(Value::String(self.string(s, parent_key))),
            Value::Number(n) => Ok(self.number(n)),
            Value::Null | Value::Bool(_) => Ok(v.clone()),
            Value::Array(items) => {
                self.enter(depth)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = self.path.len();
                    push_pointer(&mut self.path, &i.to_string());
                    out.push(self.value(item, None, depth + 1)?);
                    self.path.truncate(len);
                }
                Ok(Value::Array(out))
            }
            Value::Object(map) => {
                self.enter(depth)?;
                let mut out = Map::with_capacity(map.len());
                for (k, item) in map {
                    let len = self.path.len();
                    push_pointer(&mut self.path, k);
                    self.key_findings(k);
                    out.insert(k.clone(), self.value(item, Some(k), depth + 1)?);
                    self.path.truncate(len);
                }
                Ok(Value::Object(out))
            }
        }
    }

    fn enter(&self, depth: usize) -> Result<(), DataProtectError> {
        let limit = self.p.config.max_json_depth;
        if depth >= limit {
            return Err(DataProtectError::JsonTooDeep { limit });
        }
        Ok(())
    }

    fn key_findings(&mut self, k: &str) {
        let raw = self.p.raw(k);
        self.p.add_facts(&mut self.facts, k, &raw);
        for finding in raw.findings {
            self.findings.push(JsonFinding {
                path: self.path.clone(),
                in_key: true,
                finding,
            });
        }
    }

    /// A short key such as `"ssn"` or `"password"` is the context its value lacks, so the value
    /// is scanned as `key: value` and findings are mapped back into the value.
    fn string(&mut self, s: &str, parent_key: Option<&str>) -> String {
        let combined = parent_key
            .filter(|k| k.len() <= 40)
            .map(|k| format!("{k}: "))
            .filter(|label| self.p.detectors.has_context(label))
            .map(|label| label + s);
        let (text, offset) = match &combined {
            Some(c) => (c.as_str(), c.len() - s.len()),
            None => (s, 0),
        };
        let mut raw = self.p.raw(text);
        raw.findings.retain(|f| f.end > offset);
        for f in &mut raw.findings {
            f.start = f.start.max(offset) - offset;
            f.end -= offset;
        }
        self.p.add_facts(&mut self.facts, s, &raw);
        let (out, findings) = self.p.redact_stable(s, raw.findings, self.key, self.only);
        let extra = RawScan {
            findings: findings.clone(),
            medical_context: false,
        };
        self.p.add_facts(&mut self.facts, s, &extra);
        for finding in findings {
            self.findings.push(JsonFinding {
                path: self.path.clone(),
                in_key: false,
                finding,
            });
        }
        out
    }

    fn number(&mut self, n: &serde_json::Number) -> Value {
        let Some(u) = n.as_u64() else {
            return Value::Number(n.clone());
        };
        let digits = u.to_string();
        if !(13..=19).contains(&digits.len()) {
            return Value::Number(n.clone());
        }
        let raw = self.p.raw(&digits);
        let card = raw
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::CreditCard && f.len() == digits.len());
        match card {
            Some(f) => {
                let f = f.clone();
                self.p.add_facts(&mut self.facts, &digits, &raw);
                if !self.only.is_none_or(|keep| keep(f.kind)) {
                    return Value::Number(n.clone());
                }
                let replaced = self.p.replacement(&f, &digits, self.key);
                self.findings.push(JsonFinding {
                    path: self.path.clone(),
                    in_key: false,
                    finding: f,
                });
                Value::String(replaced)
            }
            None => Value::Number(n.clone()),
        }
    }
}
