//! A stored audit row, column by column, and the decoding both backends share. Anything that
//! does not decode becomes an [`UnreadableRecord`] of its seq, so verification can name it.

use chrono::{DateTime, Utc};

use amas_types::{TaskId, TenantId};

use super::chain::Sealed;
use super::record::{
    AuditDecision, AuditPrincipal, AuditRecord, PolicyRef, StoredAuditRecord, TokenCounts,
};
use super::{ChainEntry, UnreadableRecord};
use crate::StoreError;

/// The columns every read selects, in this order.
pub(crate) const COLUMNS: &str = "seq, recorded_at, tenant, principal_sub, principal_roles, \
    auth_method, stage, action, decision, reasons, agent, task_id, step, trace_id, resource, \
    policy_version, policy_hash, classification, duration_us, input_tokens, output_tokens, \
    cost_micros, details, details_hash, prev_hash, hash";

/// The column values of one row, the two backend-typed ones already converted (or not).
pub(crate) struct Row {
    pub seq: u64,
    pub timestamp: Result<DateTime<Utc>, String>,
    pub task_id: Result<Option<TaskId>, String>,
    pub tenant: String,
    pub principal_sub: String,
    pub principal_roles: String,
    pub auth_method: String,
    pub stage: String,
    pub action: String,
    pub decision: String,
    pub reasons: String,
    pub agent: Option<String>,
    pub step: Option<String>,
    pub trace_id: Option<String>,
    pub resource: Option<String>,
    pub policy_version: Option<String>,
    pub policy_hash: Option<String>,
    pub classification: Option<String>,
    pub duration_us: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_micros: Option<i64>,
    pub details: Option<String>,
    pub details_hash: String,
    pub prev_hash: String,
    pub hash: String,
}

fn unsigned(field: &str, value: Option<i64>) -> Result<Option<u64>, String> {
    value
        .map(|v| u64::try_from(v).map_err(|_| format!("{field} is negative")))
        .transpose()
}

impl Row {
    pub(crate) fn decode(self) -> ChainEntry {
        let seq = self.seq;
        self.try_decode()
            .map_err(|reason| UnreadableRecord { seq, reason })
    }

    fn try_decode(self) -> Result<StoredAuditRecord, String> {
        let roles: Vec<String> = serde_json::from_str(&self.principal_roles)
            .map_err(|e| format!("principal_roles: {e}"))?;
        let reasons: Vec<String> =
            serde_json::from_str(&self.reasons).map_err(|e| format!("reasons: {e}"))?;
        let decision = AuditDecision::parse(&self.decision)
            .ok_or_else(|| format!("unknown decision {:?}", self.decision))?;
        let policy = match (self.policy_version, self.policy_hash) {
            (Some(version), Some(hash)) => Some(PolicyRef { version, hash }),
            (None, None) => None,
            _ => return Err("policy_version and policy_hash must be set together".to_owned()),
        };
        let tokens = match (
            unsigned("input_tokens", self.input_tokens)?,
            unsigned("output_tokens", self.output_tokens)?,
        ) {
            (Some(input), Some(output)) => Some(TokenCounts { input, output }),
            (None, None) => None,
            _ => return Err("input_tokens and output_tokens must be set together".to_owned()),
        };
        let (details, details_redacted) = match self.details {
            Some(text) => (
                serde_json::from_str(&text).map_err(|e| format!("details: {e}"))?,
                false,
            ),
            None => (serde_json::Value::Null, true),
        };
        Ok(StoredAuditRecord {
            seq: self.seq,
            record: AuditRecord {
                timestamp: self.timestamp?,
                tenant: TenantId(self.tenant),
                principal: AuditPrincipal {
                    sub: self.principal_sub,
                    roles,
                    auth_method: self.auth_method,
                },
                stage: self.stage,
                action: self.action,
                decision,
                reasons,
                agent: self.agent,
                task_id: self.task_id?,
                step: self.step,
                trace_id: self.trace_id,
                resource: self.resource,
                policy,
                classification: self.classification,
                duration_us: unsigned("duration_us", self.duration_us)?,
                tokens,
                cost_micros: unsigned("cost_micros", self.cost_micros)?,
                details,
            },
            details_hash: self.details_hash,
            details_redacted,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The values one sealed record is inserted with (integers already range-checked by `seal`).
pub(crate) struct Insert<'a> {
    pub seq: i64,
    pub rec: &'a StoredAuditRecord,
    pub roles: String,
    pub reasons: String,
    pub details: &'a str,
    pub duration_us: Option<i64>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_micros: Option<i64>,
}

fn signed(value: Option<u64>) -> Result<Option<i64>, StoreError> {
    value
        .map(|v| {
            i64::try_from(v)
                .map_err(|_| StoreError::InvalidAppend(format!("audit value {v} out of range")))
        })
        .transpose()
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::InvalidAppend(format!("audit field does not serialize: {e}")))
}

impl<'a> Insert<'a> {
    pub(crate) fn new(sealed: &'a Sealed) -> Result<Self, StoreError> {
        let rec = &sealed.stored;
        Ok(Self {
            seq: crate::shared::to_db_seq(rec.seq)?,
            rec,
            roles: json_text(&rec.record.principal.roles)?,
            reasons: json_text(&rec.record.reasons)?,
            details: &sealed.details_text,
            duration_us: signed(rec.record.duration_us)?,
            input_tokens: signed(rec.record.tokens.map(|t| t.input))?,
            output_tokens: signed(rec.record.tokens.map(|t| t.output))?,
            cost_micros: signed(rec.record.cost_micros)?,
        })
    }
}
