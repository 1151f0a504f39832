//! The [`PolicyEngine`] trait and its regorus implementation: the bundle is parsed, checked and
//! prepared once at load; each decision evaluates the one rule of its decision point on a pooled
//! bytecode VM or on a clone of the prepared interpreter ([`Evaluation`] says which, per input),
//! so nothing is shared mutably between concurrent callers.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use regorus::utils::limits::ExecutionTimerConfig;

use crate::bundle::PolicyBundle;
use crate::bytecode::BytecodeEvaluator;
use crate::decision::{Decision, DecisionDoc, DecisionPoint};
use crate::error::PolicyError;
use crate::input::Projector;
use crate::memo::{DecisionMemo, MemoStats};
use crate::reads::BundleReads;
use crate::shape;

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
    /// The default: bytecode where it is known to decide exactly as the interpreter, the
    /// interpreter everywhere else. For the embedded bundle (or a directory holding the same
    /// files), an input whose every read value has its expected type (`crate::shape`) runs on
    /// the VM; any other input, and every input of any other bundle, runs on the interpreter.
    /// Decisions are those of [`Evaluation::Interpreter`], failures included, only faster.
    #[default]
    Guarded,
    /// regorus' tree interpreter for every decision: the reference semantics.
    Interpreter,
    /// regorus bytecode (RVM) for every decision, compiled at load: several times faster, but in
    /// regorus 0.14 NOT equivalent to the interpreter outside well-formed inputs. A conflict
    /// between rule definitions makes the rule undefined instead of an error, and an error inside
    /// a rule body (iterating over null, a type error, division by zero) only skips that body;
    /// so a bundle or an input that the interpreter denies as a policy error can come out as an
    /// allow or an approval request (e.g. the default bundle with `approvals: null`). For
    /// benchmarks and bundles whose authors vouch for their inputs.
    /// A bundle the bytecode compiler cannot handle (`with`) runs on the interpreter.
    Bytecode,
}

/// How many fresh decisions ran on each evaluator since the bundle was compiled (memo hits are
/// in neither).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvaluatorStats {
    pub bytecode: u64,
    pub interpreter: u64,
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
    /// The input paths the bundle reads: each decision's input is cut down to them (and, when
    /// guarded, checked for the shape the bytecode may run).
    projector: Projector,
    /// `None` when the bundle calls a nondeterministic builtin or memoization is off.
    memo: Option<DecisionMemo>,
    on_bytecode: AtomicU64,
    on_interpreter: AtomicU64,
}

enum Evaluator {
    Bytecode(BytecodeEvaluator),
    /// The prepared interpreter, cloned per decision (boxed: it is ten times the VM pool's size).
    Interpreter(Box<regorus::Engine>),
    /// The embedded bundle: bytecode for well-formed inputs (`shape::well_formed`), the
    /// interpreter for the rest.
    Guarded {
        bytecode: BytecodeEvaluator,
        interpreter: Box<regorus::Engine>,
    },
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
            (None, capacity) => Some(DecisionMemo::new(reads.paths.clone(), capacity)),
        };
        // The shape of well-formed inputs was verified for the embedded bundle only: any other
        // bundle, even one edit away, may raise errors the VM would skip.
        let guardable =
            bundle.hash() == PolicyBundle::embedded().hash() && reads.paths == shape::paths();
        if options.evaluation == Evaluation::Guarded && !guardable {
            tracing::info!(
                policy.bundle = bundle.hash(),
                "Policy bundle is not the embedded one; its decisions run on the interpreter."
            );
        }
        let bytecode = match options.evaluation {
            Evaluation::Bytecode => Some(BytecodeEvaluator::compile(&engine, timer)),
            Evaluation::Guarded if guardable => Some(BytecodeEvaluator::compile(&engine, timer)),
            Evaluation::Guarded | Evaluation::Interpreter => None,
        };
        let evaluator = match bytecode {
            None => Evaluator::Interpreter(Box::new(engine)),
            Some(Ok(bytecode)) if options.evaluation == Evaluation::Guarded => Evaluator::Guarded {
                bytecode,
                interpreter: Box::new(engine),
            },
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
        let projector =
            Projector::new(&reads.paths, matches!(evaluator, Evaluator::Guarded { .. }));
        Ok(Self {
            evaluator,
            bundle,
            projector,
            memo,
            on_bytecode: AtomicU64::new(0),
            on_interpreter: AtomicU64::new(0),
        })
    }

    /// Whether decisions may run as bytecode (false: every decision runs on the interpreter).
    #[must_use]
    pub fn is_compiled(&self) -> bool {
        !matches!(self.evaluator, Evaluator::Interpreter(_))
    }

    /// Fresh decisions per evaluator so far.
    #[must_use]
    pub fn evaluator_stats(&self) -> EvaluatorStats {
        EvaluatorStats {
            bytecode: self.on_bytecode.load(Ordering::Relaxed),
            interpreter: self.on_interpreter.load(Ordering::Relaxed),
        }
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
        let (input, well_formed) = self.projector.project(input);
        let vm = match &self.evaluator {
            Evaluator::Bytecode(bytecode) => Ok(bytecode),
            Evaluator::Interpreter(interpreter) => Err(interpreter),
            Evaluator::Guarded {
                bytecode,
                interpreter,
            } => {
                if well_formed {
                    Ok(bytecode)
                } else {
                    Err(interpreter)
                }
            }
        };
        let value = match vm {
            Ok(bytecode) => {
                self.on_bytecode.fetch_add(1, Ordering::Relaxed);
                bytecode.eval(rule, input)
            }
            Err(interpreter) => {
                self.on_interpreter.fetch_add(1, Ordering::Relaxed);
                interpret(interpreter, rule, input)
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

fn interpret(
    prepared: &regorus::Engine,
    rule: &str,
    input: regorus::Value,
) -> Result<regorus::Value, String> {
    let mut engine = regorus::Engine::clone(prepared);
    engine.set_input(input);
    engine.eval_rule(rule.to_owned()).map_err(|e| e.to_string())
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
            Ok(doc) => {
                // Not kept by the memo (off, or the key too large): moved, not copied.
                let doc = Arc::try_unwrap(doc).unwrap_or_else(|kept| DecisionDoc::clone(&kept));
                Decision {
                    allow: doc.allow,
                    require_approval: doc.require_approval,
                    reasons: doc.reasons,
                    rules_fired: doc.rules,
                    // Obligations qualify an allow; a deny carries none.
                    obligations: if doc.allow {
                        doc.obligations
                    } else {
                        Vec::new()
                    },
                    policy_error: false,
                    bundle_hash: self.bundle.hash().to_owned(),
                    eval_time,
                    memoized,
                }
            }
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
