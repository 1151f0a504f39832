//! What one audit record says: who did what, under which policy, with which verdict. Callers
//! build an [`AuditRecord`]; the store seals it into a [`StoredAuditRecord`] (seq and hashes).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use amas_types::{Principal, TaskId, TenantId};

use super::chain;

/// The verdict a record reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    Allow,
    Deny,
    RequireApproval,
    ApprovalGranted,
    ApprovalDenied,
    /// An approval timed out, which denies the action.
    ApprovalExpired,
    /// Not a verdict: an event worth recording (a config or policy change, a key rotation).
    Recorded,
}

impl AuditDecision {
    pub const ALL: [Self; 7] = [
        Self::Allow,
        Self::Deny,
        Self::RequireApproval,
        Self::ApprovalGranted,
        Self::ApprovalDenied,
        Self::ApprovalExpired,
        Self::Recorded,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::RequireApproval => "require_approval",
            Self::ApprovalGranted => "approval_granted",
            Self::ApprovalDenied => "approval_denied",
            Self::ApprovalExpired => "approval_expired",
            Self::Recorded => "recorded",
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }
}

impl fmt::Display for AuditDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acted, as the audit log keeps it (the tenant is a field of the record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPrincipal {
    pub sub: String,
    pub roles: Vec<String>,
    /// `local_jwt`, `oidc`, `cli`, ... ; `none` for a failed authentication.
    pub auth_method: String,
}

impl From<&Principal> for AuditPrincipal {
    fn from(p: &Principal) -> Self {
        Self {
            sub: p.sub.clone(),
            roles: p.roles.clone(),
            auth_method: p.auth_method.clone(),
        }
    }
}

/// The policy bundle a decision was made under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub version: String,
    /// A digest of the bundle (e.g. `sha256:...`), so a later reader can tell bundles apart.
    pub hash: String,
}

/// Tokens a model call used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
}

/// One governance decision or security event, as a caller hands it to the audit log.
///
/// **No secrets and no raw sensitive payloads.** Every field is kept for the life of the log and
/// exported to SIEMs: put identifiers, redacted forms or digests here, never prompts, tool
/// arguments, model output or tokens. [`hash_payload`] gives the digest to record instead of a
/// payload. `details` is free-form but follows the same rule; it is the one part a retention
/// purge may later erase (see [`StoredAuditRecord::details_redacted`]).
///
/// Build one with [`AuditRecord::new`] and the `with_*` methods:
///
/// ```
/// # use amas_store::audit::{AuditDecision, AuditRecord};
/// # use amas_types::Principal;
/// let record = AuditRecord::new(&Principal::local_operator(), "authorize", "tool_call", AuditDecision::Deny)
///     .with_resource("tool:http_fetch")
///     .with_reason("domain not allowed");
/// assert_eq!(record.reasons, ["domain not allowed"]);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the decision was made (kept at microsecond precision).
    pub timestamp: DateTime<Utc>,
    pub tenant: TenantId,
    pub principal: AuditPrincipal,
    /// The pipeline stage (`authorize`, `contract_input`, `sandbox`, `data_protection_out`,
    /// `contract_output`, `content_safety`, `data_protection_in`, `approval`, `authentication`,
    /// `rate_limit`, `config`, ...).
    pub stage: String,
    /// What was attempted (`task_submit`, `model_call`, `tool_call`, `login`, ...).
    pub action: String,
    pub decision: AuditDecision,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What the action was on (`tool:http_fetch`, `model:gpt-4o`, `task_type:research`), redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// The data classification level (`public`, `internal`, `confidential`, `restricted`),
    /// optionally with tags (`confidential+PII`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenCounts>,
    /// Estimated cost in millionths of the configured currency unit (integers keep the hash
    /// encoding exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micros: Option<u64>,
    /// Anything else worth keeping, redacted. `null` when a purge erased it.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl AuditRecord {
    /// A record made now, by `principal` (whose tenant it is filed under).
    #[must_use]
    pub fn new(
        principal: &Principal,
        stage: impl Into<String>,
        action: impl Into<String>,
        decision: AuditDecision,
    ) -> Self {
        Self {
            timestamp: chain::now(),
            tenant: principal.tenant.clone(),
            principal: principal.into(),
            stage: stage.into(),
            action: action.into(),
            decision,
            reasons: Vec::new(),
            agent: None,
            task_id: None,
            step: None,
            trace_id: None,
            resource: None,
            policy: None,
            classification: None,
            duration_us: None,
            tokens: None,
            cost_micros: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reasons.push(reason.into());
        self
    }

    #[must_use]
    pub fn with_reasons(mut self, reasons: &[String]) -> Self {
        self.reasons.extend_from_slice(reasons);
        self
    }

    #[must_use]
    pub fn with_agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    #[must_use]
    pub fn with_task(mut self, task: TaskId) -> Self {
        self.task_id = Some(task);
        self
    }

    #[must_use]
    pub fn with_step(mut self, step: impl Into<String>) -> Self {
        self.step = Some(step.into());
        self
    }

    #[must_use]
    pub fn with_trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    #[must_use]
    pub fn with_policy(mut self, version: impl Into<String>, hash: impl Into<String>) -> Self {
        self.policy = Some(PolicyRef {
            version: version.into(),
            hash: hash.into(),
        });
        self
    }

    /// The policy bundle a decision was made under, from its SHA-256 (hex): `hash` is
    /// `sha256:<hex>`, `version` its first 12 hex digits (a short id, as git shows commits).
    #[must_use]
    pub fn with_bundle(self, sha256_hex: &str) -> Self {
        let short = sha256_hex.get(..12).unwrap_or(sha256_hex).to_owned();
        self.with_policy(short, format!("sha256:{sha256_hex}"))
    }

    #[must_use]
    pub fn with_classification(mut self, classification: impl Into<String>) -> Self {
        self.classification = Some(classification.into());
        self
    }

    /// Saturates at `u64::MAX` microseconds (half a million years).
    #[must_use]
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration_us = Some(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX));
        self
    }

    #[must_use]
    pub fn with_tokens(mut self, input: u64, output: u64) -> Self {
        self.tokens = Some(TokenCounts { input, output });
        self
    }

    #[must_use]
    pub fn with_cost_micros(mut self, cost_micros: u64) -> Self {
        self.cost_micros = Some(cost_micros);
        self
    }

    /// Replaces `details` (redacted data only; see the type's documentation).
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// A record as the log holds it: its place in the chain and its hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredAuditRecord {
    /// The record's id: 1, 2, 3, ... with no gaps.
    pub seq: u64,
    #[serde(flatten)]
    pub record: AuditRecord,
    /// SHA-256 (hex) of the canonical encoding of `details`; the record hash covers this digest,
    /// not the details themselves, so a purge can erase them and the chain still verifies.
    pub details_hash: String,
    /// True once a retention purge erased `details` (then `record.details` is `null`).
    #[serde(default)]
    pub details_redacted: bool,
    /// The previous record's `hash` (64 zeros for seq 1).
    pub prev_hash: String,
    /// SHA-256 (hex) of the record's canonical encoding; see `docs/audit.md`.
    pub hash: String,
}

impl StoredAuditRecord {
    /// The hash the record's fields give now; differs from `hash` when anything was changed.
    #[must_use]
    pub fn computed_hash(&self) -> String {
        chain::record_hash(self.seq, &self.prev_hash, &self.record, &self.details_hash)
    }
}

/// SHA-256 (lowercase hex) of a payload, to record instead of the payload itself: proves later
/// which prompt, tool argument or output was involved without keeping it.
#[must_use]
pub fn hash_payload(payload: &[u8]) -> String {
    chain::hex(&Sha256::digest(payload))
}
