//! The [`PolicyEngine`] trait and its regorus implementation: the bundle is parsed, checked and
//! prepared once at load; each decision evaluates the one rule of its decision point on a clone
//! of the prepared interpreter (or, opted in, on a pooled bytecode VM), so nothing is shared
//! mutably between concurrent callers.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;

use serde::Deserialize as _;

use crate::bundle::PolicyBundle;
use crate::bytecode::BytecodeEvaluator;
use crate::decision::{Decision, DecisionDoc, DecisionPoint};
use crate::error::PolicyError;
use crate::memo::{DecisionMemo, MemoStats};
use crate::reads::BundleReads;

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
    pub evaluation: Evaluation,
    /// Decisions kept for reuse (`crate::memo`); 0 evaluates every decision.
    pub memo_capacity: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            eval_timeout: Duration::from_millis(50),
            evaluation: Evaluation::default(),
            memo_capacity: DEFAULT_MEMO_CAPACITY,
        }
    }
}

/// How decisions are evaluated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Evaluation {
    /// regorus' tree interpreter: the reference semantics, and the default.
    #[default]
    Interpreter,
    /// regorus bytecode (RVM), compiled at load: about five times faster, but in regorus 0.14
    /// NOT equivalent to the interpreter outside well-formed inputs. A conflict between rule
    /// definitions makes the rule undefined instead of an error, and an error inside a rule body
    /// (a type error, division by zero) only skips that body; so a bundle or an input that the
    /// interpreter denies as a policy error can come out as an allow or an approval request
    /// (e.g. the default bundle with `approvals: null`). Both agree on every shipped YAML case.
    /// A bundle the bytecode compiler cannot handle (`with`) runs on the interpreter.
    Bytecode,
}

/// Distinct decisions kept per bundle: a few thousand (principal, agent, tool) combinations,
/// a few hundred bytes each.
pub const DEFAULT_MEMO_CAPACITY: usize = 4096;

/// Work units between two clock reads in regorus' cooperative timer: checking every unit
/// would read the clock thousands of times per decision.
const TIMER_CHECK_INTERVAL: NonZeroU32 = NonZeroU32::MIN.saturating_add(31);

/// A compiled bundle. Cheap to share (`Arc`), immutable once built.
pub struct RegoPolicyEngine {
    evaluator: Evaluator,
    bundle: PolicyBundle,
    /// `None` when the bundle calls a nondeterministic builtin or memoization is off.
    memo: Option<DecisionMemo>,
}

enum Evaluator {
    Bytecode(BytecodeEvaluator),
    /// The prepared interpreter, cloned per decision (boxed: it is ten times the VM pool's size).
    Interpreter(Box<regorus::Engine>),
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
    /// prepares the interpreter by evaluating each decision rule once on an empty input, then
    /// compiles the decision rules to bytecode (unless `options` ask for the interpreter).
    pub fn new(bundle: PolicyBundle, options: EngineOptions) -> Result<Self, PolicyError> {
        let timer = ExecutionTimerConfig {
            limit: options.eval_timeout,
            check_interval: TIMER_CHECK_INTERVAL,
        };
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(timer);
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
        let reads = BundleReads::of(engine.get_modules());
        let memo = match (&reads.nondeterministic, options.memo_capacity) {
            (_, 0) => None,
            (Some(builtin), _) => {
                tracing::info!(
                    policy.bundle = bundle.hash(),
                    builtin = %builtin,
                    "Policy bundle calls a nondeterministic builtin; its decisions are not memoized."
                );
                None
            }
            (None, capacity) => Some(DecisionMemo::new(reads.paths, capacity)),
        };
        let bytecode = match options.evaluation {
            Evaluation::Bytecode => Some(BytecodeEvaluator::compile(&engine, timer)),
            Evaluation::Interpreter => None,
        };
        let evaluator = match bytecode {
            None => Evaluator::Interpreter(Box::new(engine)),
            Some(Ok(bytecode)) => Evaluator::Bytecode(bytecode),
            Some(Err(message)) => {
                tracing::warn!(
                    policy.bundle = bundle.hash(),
                    error = %message,
                    "Policy bundle cannot be compiled to bytecode; evaluating it with the slower interpreter."
                );
                Evaluator::Interpreter(Box::new(engine))
            }
        };
        Ok(Self {
            evaluator,
            bundle,
            memo,
        })
    }

    /// Whether decisions run as bytecode (false: on the interpreter fallback).
    #[must_use]
    pub fn is_compiled(&self) -> bool {
        matches!(self.evaluator, Evaluator::Bytecode(_))
    }

    /// Memo hits and misses; `None` when decisions are not memoized.
    #[must_use]
    pub fn memo_stats(&self) -> Option<MemoStats> {
        self.memo.as_ref().map(DecisionMemo::stats)
    }

    /// The input paths the bundle reads (each a list of field names; empty: the whole input),
    /// which make up the memo key; `None` when decisions are not memoized.
    #[must_use]
    pub fn memo_paths(&self) -> Option<&[Vec<String>]> {
        self.memo.as_ref().map(DecisionMemo::paths)
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
        let rule = point.rule();
        // Straight from the borrowed JSON tree: no clone of the input, no text in between.
        let input = regorus::Value::deserialize(input)
            .map_err(|e| format!("the input cannot be converted for {rule}: {e}"))?;
        let value = match &self.evaluator {
            Evaluator::Bytecode(bytecode) => bytecode.eval(rule, input),
            Evaluator::Interpreter(prepared) => {
                let mut engine = regorus::Engine::clone(prepared);
                engine.set_input(input);
                engine.eval_rule(rule.to_owned()).map_err(|e| e.to_string())
            }
        }
        .map_err(|e| format!("{rule} failed: {e}"))?;
        if value == regorus::Value::Undefined {
            return Err(format!("{rule} is undefined for this input"));
        }
        DecisionDoc::from_value(&value).map_err(|e| {
            format!(
                "{rule} result has the wrong shape (want {{allow, require_approval, reasons[], rules[]?, obligations[]?}}): {e}"
            )
        })
    }
}

impl PolicyEngine for RegoPolicyEngine {
    fn decide(&self, point: DecisionPoint, input: &serde_json::Value) -> Decision {
        let start = Instant::now();
        let key = self.memo.as_ref().and_then(|memo| memo.key(point, input));
        let remembered = self
            .memo
            .as_ref()
            .zip(key.as_deref())
            .and_then(|(memo, key)| memo.get(key));
        let memoized = remembered.is_some();
        let result = match remembered {
            Some(doc) => Ok(doc),
            None => self.evaluate(point, input).map(|doc| {
                let doc = Arc::new(doc);
                if let Some((memo, key)) = self.memo.as_ref().zip(key) {
                    memo.insert(key, Arc::clone(&doc));
                }
                doc
            }),
        };
        let eval_time = start.elapsed();
        match result {
            Ok(doc) => Decision {
                allow: doc.allow,
                require_approval: doc.require_approval,
                reasons: doc.reasons.clone(),
                rules_fired: doc.rules.clone(),
                // Obligations qualify an allow; a deny carries none.
                obligations: if doc.allow {
                    doc.obligations.clone()
                } else {
                    Vec::new()
                },
                policy_error: false,
                bundle_hash: self.bundle.hash().to_owned(),
                eval_time,
                memoized,
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
