//! `prompt_injection:` in `dataprotect.yaml`: when a screened text counts as an injection
//! attempt and what happens then. Its own raw and validated types with defaults, so the
//! section is optional and a file written before it existed keeps working (flag, not block).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Signal;
use crate::safety::Action;

/// Validated `prompt_injection` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPromptInjection")]
pub struct PromptInjectionConfig {
    /// Score (0..=1) from which a text counts as an injection attempt; below it the verdict is
    /// `allow` (its signals are still reported).
    pub threshold: f32,
    /// Score from which the text is blocked whatever the per-signal actions say.
    pub block_threshold: Option<f32>,
    /// Action for a signal without an entry in `actions`.
    pub default_action: Action,
    /// Action per signal; the strictest over the signals present wins.
    pub actions: BTreeMap<Signal, Action>,
}

impl Default for PromptInjectionConfig {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            block_threshold: None,
            default_action: Action::Flag,
            actions: BTreeMap::new(),
        }
    }
}

const DEFAULT_THRESHOLD: f32 = 0.5;

impl PromptInjectionConfig {
    /// The action for `signal` once the threshold is reached.
    pub fn action(&self, signal: Signal) -> Action {
        self.actions
            .get(&signal)
            .copied()
            .unwrap_or(self.default_action)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromptInjection {
    #[serde(default = "default_threshold")]
    threshold: f32,
    #[serde(default)]
    block_threshold: Option<f32>,
    #[serde(default = "default_action")]
    default_action: Action,
    #[serde(default)]
    actions: BTreeMap<Signal, Action>,
}

fn default_threshold() -> f32 {
    DEFAULT_THRESHOLD
}

fn default_action() -> Action {
    Action::Flag
}

impl TryFrom<RawPromptInjection> for PromptInjectionConfig {
    type Error = String;

    /// Every problem of the section at once, each naming its key.
    fn try_from(raw: RawPromptInjection) -> Result<Self, String> {
        let mut problems = Vec::new();
        if !(raw.threshold > 0.0 && raw.threshold <= 1.0) {
            problems.push("prompt_injection.threshold must be within (0, 1]".to_owned());
        }
        if let Some(b) = raw.block_threshold
            && !(b > 0.0 && b <= 1.0 && b >= raw.threshold)
        {
            problems
                .push("prompt_injection.block_threshold must be within [threshold, 1]".to_owned());
        }
        if problems.is_empty() {
            Ok(Self {
                threshold: raw.threshold,
                block_threshold: raw.block_threshold,
                default_action: raw.default_action,
                actions: raw.actions,
            })
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<PromptInjectionConfig, String> {
        yaml_serde::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_flag_and_every_key_is_checked() {
        let c = parse("{}").unwrap();
        assert_eq!(c, PromptInjectionConfig::default());
        assert_eq!(c.action(Signal::InstructionOverride), Action::Flag);

        let c = parse("threshold: 0.6\nblock_threshold: 0.9\nactions: { fake_delimiter: block, agent_address: allow }\n").unwrap();
        assert_eq!(c.action(Signal::FakeDelimiter), Action::Block);
        assert_eq!(c.action(Signal::AgentAddress), Action::Allow);
        assert_eq!(c.action(Signal::RoleHijack), Action::Flag);

        let msg = parse("threshold: 0\nblock_threshold: 2\n").unwrap_err();
        assert!(
            msg.contains("prompt_injection.threshold") && msg.contains("block_threshold"),
            "{msg}"
        );
        assert!(parse("actions: { telepathy: block }\n").is_err());
        assert!(parse("treshold: 0.5\n").unwrap_err().contains("treshold"));
    }
}
