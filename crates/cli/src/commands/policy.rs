//! `amas policy test [DIR]` and `amas policy eval --input FILE`: run the policy bundle's YAML
//! cases (CI) and show one decision with the rules that fired (debugging).

use std::path::Path;

use amas_policy::{
    DecisionPoint, PolicyEngine, RegoPolicyEngine, TestReport, embedded_cases, load_cases,
    run_cases,
};
use anyhow::Context;

use crate::args::{PolicyArgs, PolicyCommand};
use crate::{EXIT_FAILED, EXIT_USAGE};

pub fn run(args: PolicyArgs) -> anyhow::Result<u8> {
    match args.command {
        PolicyCommand::Test { dir } => Ok(test(dir.as_deref())),
        PolicyCommand::Eval {
            input,
            point,
            policy_dir,
        } => eval(&input, point.as_deref(), policy_dir.as_deref()),
    }
}

/// Exit 0 when every case passes, 1 when one fails, 2 when a policy or case file is bad.
fn test(dir: Option<&Path>) -> u8 {
    let loaded = match dir {
        None => RegoPolicyEngine::embedded().and_then(|e| Ok((e, embedded_cases()?))),
        Some(dir) => {
            RegoPolicyEngine::from_dir(dir).and_then(|e| Ok((e, load_cases(&dir.join("tests"))?)))
        }
    };
    let (engine, cases) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let report = run_cases(&engine, &cases);
    print_report(&report);
    println!(
        "{} passed, {} failed (bundle {})",
        report.outcomes.len() - report.failed(),
        report.failed(),
        engine.bundle_hash()
    );
    if report.all_passed() { 0 } else { EXIT_FAILED }
}

fn print_report(report: &TestReport) {
    for o in &report.outcomes {
        if o.passed() {
            println!("PASS {}: {}", o.file, o.name);
        } else {
            println!("FAIL {}: {}", o.file, o.name);
            for failure in &o.failures {
                println!("     {failure}");
            }
            println!(
                "     reasons: {:?}; rules fired: {:?}",
                o.decision.reasons, o.decision.rules_fired
            );
        }
    }
}

fn eval(input: &Path, point: Option<&str>, policy_dir: Option<&Path>) -> anyhow::Result<u8> {
    let text = match std::fs::read_to_string(input) {
        Ok(text) => text,
        Err(e) => return usage(format!("cannot read {}: {e}", input.display())),
    };
    let document: serde_json::Value = match serde_json::from_str(&text) {
        Ok(doc) => doc,
        Err(e) => return usage(format!("{} is not JSON: {e}", input.display())),
    };
    let point_name = point
        .map(str::to_owned)
        .or_else(|| {
            document
                .pointer("/action/kind")
                .and_then(|k| k.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "tool_call".to_owned());
    let Some(point) = DecisionPoint::parse(&point_name) else {
        return usage(format!(
            "unknown decision point {point_name:?} (tool_call, model_call, task_submit, api)"
        ));
    };
    let engine = match policy_dir {
        None => RegoPolicyEngine::embedded(),
        Some(dir) => RegoPolicyEngine::from_dir(dir),
    };
    let engine = match engine {
        Ok(engine) => engine,
        Err(e) => return usage(e.to_string()),
    };
    let decision = engine.decide(point, &document);
    let mut out = serde_json::to_value(&decision).context("serializing the decision")?;
    if let Some(map) = out.as_object_mut() {
        map.insert("point".to_owned(), point.as_str().into());
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn usage(message: String) -> anyhow::Result<u8> {
    eprintln!("error: {message}");
    Ok(EXIT_USAGE)
}
