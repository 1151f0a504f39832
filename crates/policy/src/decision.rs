//! Decision points and the decision document every policy returns.

use amas_types::codes;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where in AMAS a decision is asked for; each point has its own Rego rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionPoint {
    TaskSubmit,
    ModelCall,
    ToolCall,
    Api,
}

impl DecisionPoint {
    pub const ALL: [Self; 4] = [Self::TaskSubmit, Self::ModelCall, Self::ToolCall, Self::Api];

    /// The Rego rule that holds this point's decision document.
    #[must_use]
    pub fn rule(self) -> &'static str {
        match self {
            Self::TaskSubmit => "data.amas.task.decision",
            Self::ModelCall => "data.amas.model.decision",
            Self::ToolCall => "data.amas.tool.decision",
            Self::Api => "data.amas.api.decision",
        }
    }

    /// The name used in YAML cases, the CLI and metric labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskSubmit => "task_submit",
            Self::ModelCall => "model_call",
            Self::ToolCall => "tool_call",
            Self::Api => "api",
        }
    }

    /// Parses [`DecisionPoint::as_str`] names.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// The stable code of a fail-closed deny (docs/errors/AMAS-POL-0005.md), for the pipeline's
/// typed denial error.
pub const POLICY_ERROR_CODE: &str = codes::POL_EVAL_FAILED;

/// The verdict on one action. `allow` is final: when it is false and `require_approval` is true,
/// the action may proceed once approvals satisfying the policy are in the input; when both are
/// false it is denied outright.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allow: bool,
    pub require_approval: bool,
    pub reasons: Vec<String>,
    /// Ids of the policy rules that matched (grants, denies, approval conditions).
    pub rules_fired: Vec<String>,
    /// What must happen for an allow to hold (e.g. `redact`: send only the redacted data).
    /// The caller must carry out every obligation it knows and refuse the action on any
    /// obligation it does not know. Empty on a deny.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obligations: Vec<String>,
    /// True when this is a fail-closed deny caused by a policy error, not by a rule.
    pub policy_error: bool,
    /// SHA-256 of the bundle that decided, hex.
    pub bundle_hash: String,
    #[serde(rename = "eval_time_us", with = "duration_micros")]
    pub eval_time: Duration,
    /// True when the decision came from the memo (an earlier evaluation of an input that agrees
    /// on everything the bundle reads) instead of a fresh evaluation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memoized: bool,
}

impl Decision {
    /// The fail-closed verdict: deny, no approval path, the error as the reason.
    #[must_use]
    pub fn policy_error(message: &str, bundle_hash: &str, eval_time: Duration) -> Self {
        Self {
            allow: false,
            require_approval: false,
            reasons: vec![format!("policy error: {message}")],
            rules_fired: Vec::new(),
            obligations: Vec::new(),
            policy_error: true,
            bundle_hash: bundle_hash.to_owned(),
            eval_time,
            memoized: false,
        }
    }

    /// A bounded label for metrics: `allow`, `require_approval`, `deny` or `error`.
    #[must_use]
    pub fn outcome(&self) -> &'static str {
        if self.policy_error {
            "error"
        } else if self.allow {
            "allow"
        } else if self.require_approval {
            "require_approval"
        } else {
            "deny"
        }
    }
}

/// The shape a policy must return; anything else is a policy error.
#[derive(Debug, Clone)]
pub(crate) struct DecisionDoc {
    pub allow: bool,
    pub require_approval: bool,
    pub reasons: Vec<String>,
    pub rules: Vec<String>,
    pub obligations: Vec<String>,
}

impl DecisionDoc {
    /// Reads a decision document straight from the policy's value (no JSON round trip): an
    /// object with exactly the keys `allow` and `require_approval` (booleans), `reasons` and
    /// optionally `rules` and `obligations` (arrays or sets of strings). Anything else is an error naming what is
    /// wrong.
    pub(crate) fn from_value(value: &regorus::Value) -> Result<Self, String> {
        let regorus::Value::Object(fields) = value else {
            return Err(format!("expected an object, got {}", kind(value)));
        };
        let (mut allow, mut require_approval, mut reasons, mut rules) = (None, None, None, None);
        let mut obligations = None;
        for (key, field) in fields.iter() {
            let regorus::Value::String(key) = key else {
                return Err(format!("non-string key of type {}", kind(key)));
            };
            match key.as_ref() {
                "allow" => allow = Some(boolean(key, field)?),
                "require_approval" => require_approval = Some(boolean(key, field)?),
                "reasons" => reasons = Some(strings(key, field)?),
                "rules" => rules = Some(strings(key, field)?),
                "obligations" => obligations = Some(strings(key, field)?),
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        Ok(Self {
            allow: allow.ok_or("missing field `allow`")?,
            require_approval: require_approval.ok_or("missing field `require_approval`")?,
            reasons: reasons.ok_or("missing field `reasons`")?,
            rules: rules.unwrap_or_default(),
            obligations: obligations.unwrap_or_default(),
        })
    }
}

fn boolean(key: &str, value: &regorus::Value) -> Result<bool, String> {
    match value {
        regorus::Value::Bool(b) => Ok(*b),
        other => Err(format!("`{key}` is {}, not a boolean", kind(other))),
    }
}

fn strings(key: &str, value: &regorus::Value) -> Result<Vec<String>, String> {
    let string = |v: &regorus::Value| match v {
        regorus::Value::String(s) => Ok(s.as_ref().to_owned()),
        other => Err(format!("`{key}` holds {}, not a string", kind(other))),
    };
    match value {
        regorus::Value::Array(items) => items.iter().map(string).collect(),
        // Sets serialize as arrays in JSON; their order is the sorted one.
        regorus::Value::Set(items) => items.iter_sorted().map(string).collect(),
        other => Err(format!("`{key}` is {}, not an array", kind(other))),
    }
}

fn kind(value: &regorus::Value) -> &'static str {
    match value {
        regorus::Value::Null => "null",
        regorus::Value::Bool(_) => "a boolean",
        regorus::Value::Number(_) => "a number",
        regorus::Value::String(_) => "a string",
        regorus::Value::Array(_) => "an array",
        regorus::Value::Set(_) => "a set",
        regorus::Value::Object(_) => "an object",
        regorus::Value::Undefined => "undefined",
    }
}

mod duration_micros {
    //! `eval_time` as fractional microseconds in JSON (`eval_time_us` would lose the unit).
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e6)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let micros = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64((micros / 1e6).max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_names_round_trip() {
        for p in DecisionPoint::ALL {
            assert_eq!(DecisionPoint::parse(p.as_str()), Some(p));
        }
        assert_eq!(DecisionPoint::parse("nope"), None);
    }

    #[test]
    fn policy_error_is_a_deny_without_approval_path() {
        let d = Decision::policy_error("boom", "h", Duration::ZERO);
        assert!(!d.allow && !d.require_approval && d.policy_error);
        assert_eq!(d.reasons, vec!["policy error: boom".to_owned()]);
        assert_eq!(d.outcome(), "error");
    }

    fn doc(json: &str) -> Result<DecisionDoc, String> {
        DecisionDoc::from_value(&regorus::Value::from_json_str(json).unwrap())
    }

    #[test]
    fn decision_doc_reads_the_documented_shape() {
        let d = doc(
            r#"{"allow": true, "require_approval": false, "reasons": ["a", "b"], "rules": ["r"]}"#,
        )
        .unwrap();
        assert!(d.allow && !d.require_approval);
        assert_eq!(d.reasons, ["a", "b"]);
        assert_eq!(d.rules, ["r"]);
        assert!(d.obligations.is_empty());
        let d = doc(r#"{"allow": false, "require_approval": true, "reasons": []}"#).unwrap();
        assert!(!d.allow && d.require_approval && d.rules.is_empty());
        let d = doc(
            r#"{"allow": true, "require_approval": false, "reasons": [], "obligations": ["redact"]}"#,
        )
        .unwrap();
        assert_eq!(d.obligations, ["redact"]);
        assert!(
            doc(r#"{"allow": true, "require_approval": false, "reasons": [], "obligations": [1]}"#)
                .is_err()
        );
    }

    #[test]
    fn decision_doc_accepts_sets_in_sorted_order() {
        let mut v = regorus::Value::from_json_str(
            r#"{"allow": true, "require_approval": false, "reasons": []}"#,
        )
        .unwrap();
        let set: std::collections::BTreeSet<regorus::Value> =
            ["b", "a"].into_iter().map(regorus::Value::from).collect();
        v.as_object_mut()
            .unwrap()
            .insert(regorus::Value::from("reasons"), regorus::Value::from(set));
        assert_eq!(DecisionDoc::from_value(&v).unwrap().reasons, ["a", "b"]);
    }

    #[test]
    fn decision_doc_rejects_every_other_shape() {
        for (json, needle) in [
            ("true", "expected an object"),
            (
                r#"{"allow": "yes", "require_approval": false, "reasons": []}"#,
                "`allow` is a string",
            ),
            (
                r#"{"allow": true, "reasons": []}"#,
                "missing field `require_approval`",
            ),
            (
                r#"{"allow": true, "require_approval": false}"#,
                "missing field `reasons`",
            ),
            (
                r#"{"require_approval": false, "reasons": []}"#,
                "missing field `allow`",
            ),
            (
                r#"{"allow": true, "require_approval": false, "reasons": [], "extra": 1}"#,
                "unknown field `extra`",
            ),
            (
                r#"{"allow": true, "require_approval": false, "reasons": [1]}"#,
                "holds a number",
            ),
            (
                r#"{"allow": true, "require_approval": false, "reasons": "x"}"#,
                "not an array",
            ),
            (
                r#"{"allow": true, "require_approval": false, "reasons": [], "rules": null}"#,
                "`rules` is null",
            ),
        ] {
            let err = doc(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
        assert!(DecisionDoc::from_value(&regorus::Value::Undefined).is_err());
    }
}
