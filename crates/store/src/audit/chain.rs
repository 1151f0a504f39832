//! The hash chain: the canonical encoding records are hashed over, and sealing a batch onto the
//! chain's head. Both backends seal with this code, so they always agree on every hash.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::record::{AuditRecord, StoredAuditRecord};
use crate::StoreError;
use crate::shared;

/// The version of the hashed encoding; part of every hashed body so it can evolve.
pub const ENCODING_VERSION: u64 = 1;

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The last record of the chain: where the next one links.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainLink {
    pub seq: u64,
    pub hash: String,
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Now at the microsecond precision both databases keep.
pub(crate) fn now() -> DateTime<Utc> {
    shared::now()
}

fn truncate_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// The canonical JSON text of `value`: RFC 8785 (JCS) object-key order (by UTF-16 code units),
/// no whitespace, JCS string escaping. Numbers are written as serde_json writes them, which is
/// JCS for integers; floats are never part of a record hash (only inside `details`, whose
/// digest only has to be stable for this implementation).
#[must_use]
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{09}' => out.push_str("\\t"),
            '\u{0a}' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0d}' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The digest the record hash covers instead of the details.
#[must_use]
pub fn details_hash(details: &Value) -> String {
    sha256_hex(canonical_json(details).as_bytes())
}

/// The hashed body of a record: every field but `details` (replaced by its digest) and the hash
/// itself. Absent optional fields are left out, so adding a field later leaves old hashes valid.
fn hashed_body(seq: u64, prev_hash: &str, rec: &AuditRecord, details_hash: &str) -> Value {
    let mut m = Map::new();
    let mut put = |key: &str, value: Value| {
        m.insert(key.to_owned(), value);
    };
    put("v", ENCODING_VERSION.into());
    put("seq", seq.into());
    put("prev_hash", prev_hash.into());
    put("timestamp", shared::format_time(rec.timestamp).into());
    put("tenant", rec.tenant.0.as_str().into());
    put(
        "principal",
        serde_json::json!({
            "sub": rec.principal.sub,
            "roles": rec.principal.roles,
            "auth_method": rec.principal.auth_method,
        }),
    );
    put("stage", rec.stage.as_str().into());
    put("action", rec.action.as_str().into());
    put("decision", rec.decision.as_str().into());
    put("reasons", rec.reasons.clone().into());
    put("details_hash", details_hash.into());
    let optional = [
        ("agent", rec.agent.clone().map(Value::from)),
        ("task_id", rec.task_id.map(|t| t.to_string().into())),
        ("step", rec.step.clone().map(Value::from)),
        ("trace_id", rec.trace_id.clone().map(Value::from)),
        ("resource", rec.resource.clone().map(Value::from)),
        (
            "policy",
            rec.policy
                .as_ref()
                .map(|p| serde_json::json!({"version": p.version, "hash": p.hash})),
        ),
        (
            "classification",
            rec.classification.clone().map(Value::from),
        ),
        ("duration_us", rec.duration_us.map(Value::from)),
        (
            "tokens",
            rec.tokens
                .map(|t| serde_json::json!({"input": t.input, "output": t.output})),
        ),
        ("cost_micros", rec.cost_micros.map(Value::from)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            put(key, value);
        }
    }
    Value::Object(m)
}

/// The record hash: SHA-256 over the canonical JSON of the hashed body.
#[must_use]
pub fn record_hash(seq: u64, prev_hash: &str, rec: &AuditRecord, details_hash: &str) -> String {
    sha256_hex(canonical_json(&hashed_body(seq, prev_hash, rec, details_hash)).as_bytes())
}

/// A record ready to insert: sealed onto the chain, with the details text to store.
pub(crate) struct Sealed {
    pub stored: StoredAuditRecord,
    pub details_text: String,
}

/// Seals `records` onto `head` (`None`: an empty log): seqs, timestamps at microseconds, details
/// digests, links and hashes. Rejects what a backend could not store identically.
pub(crate) fn seal(
    head: Option<&ChainLink>,
    records: &[AuditRecord],
) -> Result<Vec<Sealed>, StoreError> {
    let (mut seq, mut prev) = match head {
        Some(link) => (link.seq, link.hash.clone()),
        None => (0, GENESIS_HASH.to_owned()),
    };
    let mut out = Vec::with_capacity(records.len());
    for rec in records {
        validate(rec)?;
        seq = seq
            .checked_add(1)
            .filter(|s| i64::try_from(*s).is_ok())
            .ok_or_else(|| StoreError::InvalidAppend("audit seq out of range".to_owned()))?;
        let mut record = rec.clone();
        record.timestamp = truncate_micros(record.timestamp);
        let details_text = canonical_json(&record.details);
        let details_hash = sha256_hex(details_text.as_bytes());
        let hash = record_hash(seq, &prev, &record, &details_hash);
        out.push(Sealed {
            stored: StoredAuditRecord {
                seq,
                record,
                details_hash,
                details_redacted: false,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            },
            details_text,
        });
    }
    Ok(out)
}

/// PostgreSQL text cannot hold NUL and both backends must store the same thing; integers must
/// fit a signed 64-bit column.
pub fn validate(rec: &AuditRecord) -> Result<(), StoreError> {
    let mut texts: Vec<(&str, &str)> = vec![
        ("tenant", &rec.tenant.0),
        ("principal.sub", &rec.principal.sub),
        ("principal.auth_method", &rec.principal.auth_method),
        ("stage", &rec.stage),
        ("action", &rec.action),
    ];
    for (field, value) in [
        ("agent", &rec.agent),
        ("step", &rec.step),
        ("trace_id", &rec.trace_id),
        ("resource", &rec.resource),
        ("classification", &rec.classification),
    ] {
        if let Some(v) = value {
            texts.push((field, v));
        }
    }
    if let Some(p) = &rec.policy {
        texts.push(("policy.version", &p.version));
        texts.push(("policy.hash", &p.hash));
    }
    for (field, value) in texts {
        if value.contains('\0') {
            return Err(StoreError::InvalidAppend(format!(
                "audit field {field} contains a NUL character"
            )));
        }
    }
    let numbers = [
        ("duration_us", rec.duration_us),
        ("tokens.input", rec.tokens.map(|t| t.input)),
        ("tokens.output", rec.tokens.map(|t| t.output)),
        ("cost_micros", rec.cost_micros),
    ];
    for (field, value) in numbers {
        if value.is_some_and(|v| i64::try_from(v).is_err()) {
            return Err(StoreError::InvalidAppend(format!(
                "audit field {field} is out of range"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditDecision;
    use amas_types::Principal;

    /// Keys sort by UTF-16 code unit, as RFC 8785 says: U+1F600 (surrogates D83D DE00) comes
    /// before U+FB01, although its code point is higher.
    #[test]
    fn canonical_json_sorts_keys_by_utf16_and_escapes_like_jcs() {
        let value = serde_json::json!({
            "b": [1, "x\u{1}\n\"\\", null, true],
            "a": {"d": -5, "c": 18446744073709551615u64},
            "\u{fb01}": 1,
            "\u{1f600}": 2,
        });
        assert_eq!(
            canonical_json(&value),
            "{\"a\":{\"c\":18446744073709551615,\"d\":-5},\"b\":[1,\"x\\u0001\\n\\\"\\\\\",null,true],\"\u{1f600}\":2,\"\u{fb01}\":1}"
        );
    }

    /// A record's hash is a pure function of its fields: sealing the same input twice gives the
    /// same chain, and each link points at the previous hash.
    #[test]
    fn sealing_is_deterministic_and_linked() {
        let rec = AuditRecord::new(
            &Principal::local_operator(),
            "authorize",
            "x",
            AuditDecision::Allow,
        );
        let records = vec![rec.clone(), rec.with_reason("r")];
        let a = seal(None, &records).unwrap();
        let b = seal(None, &records).unwrap();
        assert_eq!(a.len(), 2);
        let hashes = |s: &[Sealed]| s.iter().map(|x| x.stored.hash.clone()).collect::<Vec<_>>();
        assert_eq!(hashes(&a), hashes(&b));
        assert_eq!(a[0].stored.prev_hash, GENESIS_HASH);
        assert_eq!(a[1].stored.prev_hash, a[0].stored.hash);
        assert_eq!(a[1].stored.seq, 2);
        assert_eq!(a[1].stored.computed_hash(), a[1].stored.hash);
    }

    #[test]
    fn hex_roundtrips() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])), Some(vec![0, 1, 254, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
