//! Decision points and the decision document every policy returns.

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
pub const POLICY_ERROR_CODE: &str = "AMAS-POL-0005";

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
    /// True when this is a fail-closed deny caused by a policy error, not by a rule.
    pub policy_error: bool,
    /// SHA-256 of the bundle that decided, hex.
    pub bundle_hash: String,
    #[serde(rename = "eval_time_us", with = "duration_micros")]
    pub eval_time: Duration,
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
            policy_error: true,
            bundle_hash: bundle_hash.to_owned(),
            eval_time,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionDoc {
    pub allow: bool,
    pub require_approval: bool,
    pub reasons: Vec<String>,
    #[serde(default)]
    pub rules: Vec<String>,
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
}
