//! The [`PolicyEngine`] trait and its regorus implementation: the bundle is parsed and prepared
//! once at load; each decision evaluates a clone of the prepared engine, so nothing is shared
//! mutably between concurrent callers.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;

use crate::bundle::PolicyBundle;
use crate::decision::{Decision, DecisionDoc, DecisionPoint};
use crate::error::PolicyError;

/// Authorizes actions. Implementations never fail: any problem is a deny ([`Decision::policy_error`]).
pub trait PolicyEngine: Send + Sync {
    fn decide(&self, point: DecisionPoint, input: &serde_json::Value) -> Decision;
}

/// Limits applied to every evaluation.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// Wall-clock budget of one evaluation; past it the decision is a policy-error deny.
    /// Default bundle decisions take microseconds; this only stops runaway policies.
    pub eval_timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            eval_timeout: Duration::from_millis(50),
        }
    }
}

/// Work units between two clock reads in regorus' cooperative timer: checking every unit
/// would read the clock thousands of times per decision.
const TIMER_CHECK_INTERVAL: NonZeroU32 = NonZeroU32::MIN.saturating_add(31);

/// A compiled bundle. Cheap to share (`Arc`), immutable once built.
pub struct RegoPolicyEngine {
    prepared: regorus::Engine,
    bundle: PolicyBundle,
}

impl std::fmt::Debug for RegoPolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegoPolicyEngine")
            .field("bundle_hash", &self.bundle.hash())
            .finish_non_exhaustive()
    }
}

impl RegoPolicyEngine {
    /// Compiles `bundle`: parses every file, checks that every decision point's package exists,
    /// and prepares the engine by evaluating each decision rule once on an empty input.
    pub fn new(bundle: PolicyBundle, options: EngineOptions) -> Result<Self, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: options.eval_timeout,
            check_interval: TIMER_CHECK_INTERVAL,
        });
        for file in bundle.files() {
            engine
                .add_policy(file.name.clone(), file.source.clone())
                .map_err(|e| PolicyError::Compile {
                    file: file.name.clone(),
                    message: e.to_string(),
                })?;
        }
        let packages = engine.get_packages().map_err(|e| PolicyError::Compile {
            file: "<bundle>".to_owned(),
            message: e.to_string(),
        })?;
        for point in DecisionPoint::ALL {
            let package = point.rule().trim_end_matches(".decision");
            if !packages.iter().any(|p| p == package) {
                return Err(PolicyError::Incomplete {
                    message: format!("no package {package} (decision point {})", point.as_str()),
                });
            }
        }
        // Evaluating once runs regorus' analysis (rule resolution, scheduling) and keeps the
        // prepared state in `engine`, so clones skip it and bundle-wide errors surface here.
        engine.set_input(regorus::Value::new_object());
        for point in DecisionPoint::ALL {
            engine
                .eval_rule(point.rule().to_owned())
                .map_err(|e| PolicyError::Compile {
                    file: "<bundle>".to_owned(),
                    message: format!("{}: {e}", point.rule()),
                })?;
        }
        Ok(Self {
            prepared: engine,
            bundle,
        })
    }

    /// The default bundle embedded in the binary.
    pub fn embedded() -> Result<Self, PolicyError> {
        Self::new(PolicyBundle::embedded(), EngineOptions::default())
    }

    /// The `*.rego` files of `dir`, replacing the embedded bundle entirely.
    pub fn from_dir(dir: &Path) -> Result<Self, PolicyError> {
        Self::new(PolicyBundle::from_dir(dir)?, EngineOptions::default())
    }

    #[must_use]
    pub fn bundle(&self) -> &PolicyBundle {
        &self.bundle
    }

    #[must_use]
    pub fn bundle_hash(&self) -> &str {
        self.bundle.hash()
    }

    fn evaluate(
        &self,
        point: DecisionPoint,
        input: &serde_json::Value,
    ) -> Result<DecisionDoc, String> {
        let mut engine = self.prepared.clone();
        engine.set_input(regorus::Value::from(input.clone()));
        let value = engine
            .eval_rule(point.rule().to_owned())
            .map_err(|e| format!("{} failed: {e}", point.rule()))?;
        if value == regorus::Value::Undefined {
            return Err(format!("{} is undefined for this input", point.rule()));
        }
        let json = serde_json::to_value(&value)
            .map_err(|e| format!("{} result is not JSON: {e}", point.rule()))?;
        serde_json::from_value(json).map_err(|e| {
            format!(
                "{} result has the wrong shape (want {{allow, require_approval, reasons[], rules[]?}}): {e}",
                point.rule()
            )
        })
    }
}

impl PolicyEngine for RegoPolicyEngine {
    fn decide(&self, point: DecisionPoint, input: &serde_json::Value) -> Decision {
        let start = Instant::now();
        let result = self.evaluate(point, input);
        let eval_time = start.elapsed();
        match result {
            Ok(doc) => Decision {
                allow: doc.allow,
                require_approval: doc.require_approval,
                reasons: doc.reasons,
                rules_fired: doc.rules,
                policy_error: false,
                bundle_hash: self.bundle.hash().to_owned(),
                eval_time,
            },
            Err(message) => {
                tracing::warn!(
                    policy.point = point.as_str(),
                    policy.bundle = self.bundle.hash(),
                    error = %message,
                    "Policy evaluation failed; denying."
                );
                Decision::policy_error(&message, self.bundle.hash(), eval_time)
            }
        }
    }
}
