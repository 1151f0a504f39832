//! YAML policy test cases (`policies/tests/*.yaml`) and their runner, used by
//! `amas policy test` and by this crate's tests.
//!
//! A file is a list of cases:
//! ```yaml
//! - name: code_reviewer may use code_analyzer
//!   point: tool_call
//!   input: { ... }
//!   expect: { allow: true, require_approval: false, reasons_contain: ["may use"] }
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::decision::{Decision, DecisionPoint};
use crate::engine::PolicyEngine;
use crate::error::PolicyError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub point: DecisionPoint,
    pub input: serde_json::Value,
    pub expect: TestExpectation,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestExpectation {
    pub allow: bool,
    #[serde(default)]
    pub require_approval: Option<bool>,
    /// Each entry must be a substring of at least one reason.
    #[serde(default)]
    pub reasons_contain: Vec<String>,
    /// Each entry must be one of the rules that fired.
    #[serde(default)]
    pub rules_fired: Vec<String>,
    /// When given, the decision's obligations must be exactly these (in any order).
    #[serde(default)]
    pub obligations: Option<Vec<String>>,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    pub file: String,
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
    pub decision: Decision,
}

impl CaseOutcome {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct TestReport {
    pub outcomes: Vec<CaseOutcome>,
}

impl TestReport {
    #[must_use]
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| !o.passed()).count()
    }

    #[must_use]
    pub fn all_passed(&self) -> bool {
        self.failed() == 0
    }
}

/// The default cases shipped in `policies/tests/`.
const EMBEDDED: [(&str, &str); 4] = [
    ("api.yaml", include_str!("../../../policies/tests/api.yaml")),
    (
        "model.yaml",
        include_str!("../../../policies/tests/model.yaml"),
    ),
    (
        "task.yaml",
        include_str!("../../../policies/tests/task.yaml"),
    ),
    (
        "tool.yaml",
        include_str!("../../../policies/tests/tool.yaml"),
    ),
];

/// Parses one file's cases; `file` names it in errors.
pub fn parse_cases(file: &str, yaml: &str) -> Result<Vec<TestCase>, PolicyError> {
    yaml_serde::from_str(yaml).map_err(|e| PolicyError::TestFile {
        file: file.to_owned(),
        message: e.to_string(),
    })
}

/// The embedded cases, as `(file, case)` pairs.
pub fn embedded_cases() -> Result<Vec<(String, TestCase)>, PolicyError> {
    let mut all = Vec::new();
    for (file, yaml) in EMBEDDED {
        all.extend(
            parse_cases(file, yaml)?
                .into_iter()
                .map(|c| (file.to_owned(), c)),
        );
    }
    Ok(all)
}

/// Every `*.yaml`/`*.yml` file of `dir`, sorted by file name.
pub fn load_cases(dir: &Path) -> Result<Vec<(String, TestCase)>, PolicyError> {
    let read_err = |source| PolicyError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut all = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        let yaml = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
            path: path.clone(),
            source,
        })?;
        all.extend(
            parse_cases(&file, &yaml)?
                .into_iter()
                .map(|c| (file.clone(), c)),
        );
    }
    Ok(all)
}

/// Runs every case against `engine`.
#[must_use]
pub fn run_cases(engine: &dyn PolicyEngine, cases: &[(String, TestCase)]) -> TestReport {
    let outcomes = cases
        .iter()
        .map(|(file, case)| {
            let decision = engine.decide(case.point, &case.input);
            CaseOutcome {
                file: file.clone(),
                name: case.name.clone(),
                failures: check(&case.expect, &decision),
                decision,
            }
        })
        .collect();
    TestReport { outcomes }
}

/// Loads the cases of `dir` and runs them against `engine`.
pub fn run_tests(engine: &dyn PolicyEngine, dir: &Path) -> Result<TestReport, PolicyError> {
    Ok(run_cases(engine, &load_cases(dir)?))
}

fn check(expect: &TestExpectation, decision: &Decision) -> Vec<String> {
    let mut failures = Vec::new();
    if decision.allow != expect.allow {
        failures.push(format!(
            "allow: want {}, got {}",
            expect.allow, decision.allow
        ));
    }
    if let Some(want) = expect.require_approval
        && want != decision.require_approval
    {
        failures.push(format!(
            "require_approval: want {want}, got {}",
            decision.require_approval
        ));
    }
    for needle in &expect.reasons_contain {
        if !decision.reasons.iter().any(|r| r.contains(needle.as_str())) {
            failures.push(format!("no reason contains {needle:?}"));
        }
    }
    for rule in &expect.rules_fired {
        if !decision.rules_fired.contains(rule) {
            failures.push(format!("rule {rule:?} did not fire"));
        }
    }
    if let Some(want) = &expect.obligations {
        let mut want = want.clone();
        let mut got = decision.obligations.clone();
        want.sort();
        got.sort();
        if want != got {
            failures.push(format!("obligations: want {want:?}, got {got:?}"));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn decision(allow: bool, require_approval: bool) -> Decision {
        Decision {
            allow,
            require_approval,
            reasons: vec!["agent x may use y".to_owned()],
            rules_fired: vec!["tool.agent_grant".to_owned()],
            obligations: Vec::new(),
            policy_error: false,
            bundle_hash: String::new(),
            eval_time: Duration::ZERO,
            memoized: false,
        }
    }

    #[test]
    fn check_reports_every_mismatch() {
        let expect = TestExpectation {
            allow: false,
            require_approval: Some(true),
            reasons_contain: vec!["may use".to_owned(), "absent".to_owned()],
            rules_fired: vec!["tool.agent_grant".to_owned(), "tool.other".to_owned()],
            obligations: Some(vec!["redact".to_owned()]),
        };
        let failures = check(&expect, &decision(true, false));
        assert_eq!(failures.len(), 5, "{failures:?}");
        assert!(failures.iter().any(|f| f.contains("obligations")));
        assert!(failures.iter().any(|f| f.contains("absent")));
        assert!(failures.iter().any(|f| f.contains("tool.other")));
    }

    #[test]
    fn unknown_point_or_field_is_a_bad_file() {
        let yaml = "- name: x\n  point: nowhere\n  input: {}\n  expect: {allow: true}\n";
        assert_eq!(parse_cases("f", yaml).unwrap_err().code(), "AMAS-POL-0004");
        let yaml = "- name: x\n  point: api\n  input: {}\n  expect: {allow: true, alow: 1}\n";
        assert_eq!(parse_cases("f", yaml).unwrap_err().code(), "AMAS-POL-0004");
    }
}
