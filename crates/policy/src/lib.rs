//! Policy-as-code for AMAS: Rego bundles evaluated with regorus, compiled once, failing closed,
//! hot-reloadable, with YAML test cases (`amas policy test`).
//!
//! Callers build an input document (docs/policies.md), pick a [`DecisionPoint`] and call
//! [`PolicyEngine::decide`]; the [`Decision`] says allow, deny or wait for approval, and why.

mod bundle;
mod bytecode;
mod cases;
mod decision;
mod engine;
mod error;
mod input;
mod memo;
mod reads;
mod reload;
mod shape;

pub use bundle::{PolicyBundle, PolicyFile};
pub use cases::{
    CaseOutcome, TestCase, TestExpectation, TestReport, embedded_cases, load_cases, parse_cases,
    run_cases, run_tests,
};
pub use decision::{Decision, DecisionPoint, POLICY_ERROR_CODE};
pub use engine::{
    DEFAULT_MEMO_CAPACITY, EngineOptions, Evaluation, EvaluatorStats, PolicyEngine,
    RegoPolicyEngine,
};
pub use error::PolicyError;
pub use memo::MemoStats;
pub use reload::{PolicyChange, ReloadingPolicyEngine, WatchHandle};
