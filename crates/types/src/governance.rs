//! The governance vocabulary: which kind of action was governed, which stage decided, what it
//! decided, and the decision itself. Journals (`ActionDecided`), audit records, metric labels
//! and replay all speak these words; each has exactly the string AMAS always wrote, so existing
//! journals and audit chains still decode and verify.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::CallId;

/// Defines a closed set of names with one string each (serde, `as_str`, `FromStr`).
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The name journals, audit records and metric labels carry.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(UnknownName(other.to_owned())),
                }
            }
        }
    };
}

/// A name outside the vocabulary (e.g. a journal written by a newer AMAS).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a known governance name")]
pub struct UnknownName(pub String);

names! {
    /// The kind of action the pipeline governs (`ActionDecided.action`, an audit record's
    /// `action` for the pipeline's own entry points).
    ActionKind {
        /// A task submitted for execution.
        Submission => "task_submit",
        /// An API operation (`task.read`, `audit.read`, ...).
        ApiOperation => "api",
        /// A call to a model provider.
        ModelCall => "model_call",
        /// A model's answer, screened before it is used.
        ModelOutput => "model_output",
        /// A call to a tool.
        ToolCall => "tool_call",
        /// A tool's result, governed before the model sees it.
        ToolResult => "tool_result",
        /// Task data released to a reader.
        Release => "release",
    }
}

names! {
    /// The stage of the pipeline that decided (`ActionDecided.stage`, audit `stage`, the
    /// `stage` label of `amas_governance_decisions_total`).
    Stage {
        Registry => "registry",
        Policy => "policy",
        ModelPolicy => "model_policy",
        ApiPolicy => "api_policy",
        TenantIsolation => "tenant_isolation",
        Allowlist => "allowlist",
        Contract => "contract",
        Sandbox => "sandbox",
        Quota => "quota",
        Approval => "approval",
        DataProtectionOut => "data_protection_out",
        DataProtectionIn => "data_protection_in",
        ContentSafety => "content_safety",
        PromptInjection => "prompt_injection",
        OutputContract => "output_contract",
        /// The usage record of a model call (tokens, cost, latency).
        ModelUsage => "model_call",
        Retention => "retention",
        Authentication => "authentication",
        RateLimit => "rate_limit",
        ConfigChange => "config_change",
        PolicyChange => "policy_change",
    }
}

names! {
    /// What a stage decided. Content safety's `flag` is an allow that is journaled, audited and
    /// counted, so it is an outcome of its own.
    Outcome {
        Allow => "allow",
        Flag => "flag",
        Deny => "deny",
        RequireApproval => "require_approval",
    }
}

/// What one stage decided and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub stage: Stage,
    pub outcome: Outcome,
    pub reasons: Vec<String>,
    /// Stable code of a refusal (`docs/errors/`).
    pub code: Option<&'static str>,
    /// What an allow obliges the caller to do (policy's `obligations`, e.g. `redact`).
    pub obligations: Vec<String>,
    /// SHA-256 of the policy bundle that decided, for the stages policy decides (the audit
    /// log's `policy.hash`); `None` for the fixed stages.
    pub policy: Option<String>,
}

impl Decision {
    /// A plain allow by `stage`.
    #[must_use]
    pub fn allow(stage: Stage) -> Self {
        Self {
            stage,
            outcome: Outcome::Allow,
            reasons: Vec::new(),
            code: None,
            obligations: Vec::new(),
            policy: None,
        }
    }

    /// A refusal by `stage` with its code and one reason.
    #[must_use]
    pub fn deny(stage: Stage, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            stage,
            outcome: Outcome::Deny,
            reasons: vec![reason.into()],
            code: Some(code),
            obligations: Vec::new(),
            policy: None,
        }
    }
}

/// The deciding stage of one evaluation, the one rule the pipeline and replay share: the first
/// that denied, else the first that asked for approval, else the last.
#[must_use]
pub fn decisive<T>(stages: &[T], outcome: impl Fn(&T) -> Outcome) -> Option<&T> {
    stages
        .iter()
        .find(|s| outcome(s) == Outcome::Deny)
        .or_else(|| {
            stages
                .iter()
                .find(|s| outcome(s) == Outcome::RequireApproval)
        })
        .or_else(|| stages.last())
}

/// The `call_id` of a model call's decisions and its answer's verdict: one per turn and
/// provider, `turn-{turn}:{provider}` (the form model-call decisions were always journaled
/// in). Older journals wrote model-output verdicts as `{turn}:{provider}`;
/// [`model_call_provider`] reads both.
#[must_use]
pub fn model_call_id(turn: u32, provider: &str) -> CallId {
    CallId::from(format!("turn-{turn}:{provider}"))
}

/// The provider named by a model call's `call_id`, in either journaled form.
#[must_use]
pub fn model_call_provider(call_id: &str) -> &str {
    call_id.split_once(':').map_or(call_id, |(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Journals and audit chains written before these types existed hold these exact strings;
    /// a renamed variant would make them undecodable (or break an audit chain's hash).
    #[test]
    fn every_name_keeps_its_journaled_string() {
        let stages: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        for old in [
            "registry",
            "policy",
            "model_policy",
            "api_policy",
            "tenant_isolation",
            "allowlist",
            "contract",
            "sandbox",
            "quota",
            "approval",
            "data_protection_out",
            "content_safety",
            "model_call",
            "retention",
            "authentication",
            "rate_limit",
            "config_change",
            "policy_change",
        ] {
            assert!(stages.contains(&old), "stage `{old}` lost");
            let parsed: Stage = old.parse().unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap(), old);
        }
        for (kind, text) in [
            (ActionKind::ToolCall, "tool_call"),
            (ActionKind::ModelCall, "model_call"),
            (ActionKind::ModelOutput, "model_output"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<ActionKind>(text.into()).unwrap(),
                kind
            );
        }
        assert_eq!(
            serde_json::to_value(Outcome::RequireApproval).unwrap(),
            "require_approval"
        );
        assert!("maybe".parse::<Outcome>().is_err());
    }

    #[test]
    fn the_decisive_stage_is_the_first_denial_then_approval_then_the_last() {
        let d = |stage, outcome| Decision {
            outcome,
            ..Decision::allow(stage)
        };
        let pick = |s: &[Decision]| decisive(s, |d| d.outcome).map(|d| d.stage);
        assert_eq!(
            pick(&[
                d(Stage::Policy, Outcome::RequireApproval),
                d(Stage::Quota, Outcome::Deny)
            ]),
            Some(Stage::Quota)
        );
        assert_eq!(
            pick(&[
                d(Stage::Policy, Outcome::RequireApproval),
                d(Stage::Quota, Outcome::Allow)
            ]),
            Some(Stage::Policy)
        );
        assert_eq!(
            pick(&[
                d(Stage::Policy, Outcome::Allow),
                d(Stage::Quota, Outcome::Allow)
            ]),
            Some(Stage::Quota)
        );
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn both_model_call_id_forms_name_the_provider() {
        assert_eq!(model_call_id(2, "openai"), "turn-2:openai");
        assert_eq!(model_call_provider("turn-2:openai"), "openai");
        assert_eq!(model_call_provider("2:openai"), "openai");
    }
}
