//! The default evaluation (`Evaluation::Guarded`: bytecode for well-formed inputs of the embedded
//! bundle, the interpreter for the rest) decides exactly as the reference interpreter, on
//! generated inputs of every decision point: well-formed ones (mostly bytecode) and malformed
//! ones (a null, a number, a string or a wrong container wherever the bundle reads a value).
//! Both also agree with regorus evaluating the whole, uncut input document, which checks the
//! engine's input projection and conversion, and the embedded bundle decides as
//! `tests/reference_bundle/` (the bundle before its rules were restructured for speed), errors
//! included: a restructuring of the Rego must not change a decision. (A policy change that is
//! meant to change decisions updates the reference bundle in the same commit.)

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

use amas_policy::{
    Decision, DecisionPoint, EngineOptions, Evaluation, PolicyBundle, PolicyEngine,
    RegoPolicyEngine,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// The engines' wall-clock budget: this test compares decisions, not speed, and on a loaded
/// machine a descheduled evaluation could outlast the default 50 ms and come out as a policy
/// error on one side only.
const NO_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

fn engine(evaluation: Evaluation) -> RegoPolicyEngine {
    let options = EngineOptions {
        evaluation,
        memo_capacity: 0,
        eval_timeout: NO_DEADLINE,
    };
    RegoPolicyEngine::new(PolicyBundle::embedded(), options).unwrap()
}

/// The bundle the embedded one must decide exactly like, on the interpreter.
fn reference_engine() -> RegoPolicyEngine {
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference_bundle"
    ));
    let options = EngineOptions {
        evaluation: Evaluation::Interpreter,
        memo_capacity: 0,
        eval_timeout: NO_DEADLINE,
    };
    RegoPolicyEngine::new(PolicyBundle::from_dir(dir).unwrap(), options).unwrap()
}

/// regorus itself on the whole input: no projection, regorus' own JSON conversion.
fn raw_engine() -> regorus::Engine {
    let mut engine = regorus::Engine::new();
    for file in PolicyBundle::embedded().files() {
        engine
            .add_policy(file.name.clone(), file.source.clone())
            .unwrap();
    }
    engine
}

/// The decision as `(allow, require_approval, reasons, rules, obligations)`, or `None` for a
/// policy error (whose message may name the evaluator).
type Doc = Option<(bool, bool, Vec<String>, Vec<String>, Vec<String>)>;

fn doc(d: &Decision) -> Doc {
    (!d.policy_error).then(|| {
        (
            d.allow,
            d.require_approval,
            d.reasons.clone(),
            d.rules_fired.clone(),
            d.obligations.clone(),
        )
    })
}

fn raw_doc(engine: &regorus::Engine, point: DecisionPoint, input: &Value) -> Doc {
    let mut engine = engine.clone();
    engine.set_input(regorus::Value::from_json_str(&input.to_string()).ok()?);
    let value = engine.eval_rule(point.rule().to_owned()).ok()?;
    let json: Value = serde_json::from_str(&value.to_json_str().ok()?).ok()?;
    let strings = |key: &str| -> Option<Vec<String>> {
        match json.get(key) {
            None => Some(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).ok(),
        }
    };
    let allow = json.get("allow")?.as_bool()?;
    Some((
        allow,
        json.get("require_approval")?.as_bool()?,
        strings("reasons")?,
        strings("rules")?,
        // The engine drops obligations on a deny.
        if allow {
            strings("obligations")?
        } else {
            Vec::new()
        },
    ))
}

fn word(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(words).prop_map(Value::from).boxed()
}

fn words(vocabulary: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::collection::vec(word(vocabulary), 0..4)
        .prop_map(Value::from)
        .boxed()
}

/// A value of the wrong type for anything the bundle reads.
fn malformed() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        Just(json!(2.5)),
        Just(json!("")),
        Just(json!("admin")),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, null, "approver"])),
        Just(json!({"approver": "bob"})),
    ]
    .boxed()
}

/// Absent, well-formed, or malformed: mostly well-formed, so that about a third of the inputs
/// are well-formed throughout (the rest have one or more malformed values).
fn field(well: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        3 => Just(None),
        40 => well.prop_map(Some),
        1 => malformed().prop_map(Some),
    ]
    .boxed()
}

fn object(fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)>) -> BoxedStrategy<Value> {
    let (names, strategies): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    strategies
        .prop_map(move |values| {
            let map: Map<String, Value> = names
                .iter()
                .zip(values)
                .filter_map(|(name, value)| Some(((*name).to_owned(), value?)))
                .collect();
            Value::Object(map)
        })
        .boxed()
}

const SUBS: &[&str] = &["alice", "bob", "root", "carol", ""];
const ISSUERS: &[&str] = &["amas-local", "https://idp.example", ""];
const ROLES: &[&str] = &[
    "submitter",
    "admin",
    "approver",
    "viewer",
    "auditor",
    "secops",
];
const LEVELS: &[&str] = &["public", "internal", "confidential", "restricted", "secret"];
const DLP_TYPES: &[&str] = &["email", "credit_card", "ssn"];

fn approval() -> BoxedStrategy<Value> {
    object(vec![
        ("approver", field(word(SUBS))),
        ("iss", field(word(ISSUERS))),
        ("roles", field(words(ROLES))),
        ("decision", field(word(&["approve", "deny", "abstain"]))),
    ])
}

fn input() -> BoxedStrategy<Value> {
    let principal = object(vec![
        ("sub", field(word(SUBS))),
        ("iss", field(word(ISSUERS))),
        ("roles", field(words(ROLES))),
        ("tenant", field(word(&["acme", "other", ""]))),
    ]);
    let agent = object(vec![
        (
            "id",
            field(word(&[
                "code_reviewer",
                "security_auditor",
                "research",
                "web_research",
                "analysis",
                "synthesis",
                "ghost",
            ])),
        ),
        ("role", field(word(&["research"]))),
    ]);
    let names = &[
        "code_analyzer",
        "file_read",
        "vulnerability_scanner",
        "http_fetch",
        "calculator",
        "sql_query",
        "file_write",
        "system_executor",
        "clock",
        // Task types, API operations and providers, for the other points.
        "code_review",
        "security_audit",
        "system_maintenance",
        "task.read",
        "task.cancel",
        "approval.decide",
        "me",
        "admin",
        "bogus",
        "ollama",
    ];
    let action = object(vec![
        ("kind", field(word(&["tool_call"]))),
        ("name", field(word(names))),
    ]);
    let tool = object(vec![
        ("name", field(word(names))),
        (
            "risk",
            field(word(&["low", "medium", "high", "critical", "weird"])),
        ),
        (
            "side_effects",
            field(word(&["none", "read", "write", "external"])),
        ),
        (
            "idempotent",
            field(any::<bool>().prop_map(Value::from).boxed()),
        ),
        (
            "requires_approval",
            field(any::<bool>().prop_map(Value::from).boxed()),
        ),
    ]);
    let redacted = object(vec![("classification", field(word(LEVELS)))]);
    let data = object(vec![
        ("classification", field(word(LEVELS))),
        ("tags", field(words(&["PII", "PCI"]))),
        ("redacted", field(redacted)),
    ]);
    let actions = prop::collection::btree_map(
        prop::sample::select(DLP_TYPES).prop_map(str::to_owned),
        prop_oneof![word(&["block", "redact", "allow"]), malformed()],
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
    .boxed();
    let dlp = object(vec![
        ("types", field(words(DLP_TYPES))),
        ("actions", field(actions)),
        ("error", field(any::<bool>().prop_map(Value::from).boxed())),
        ("counts", field(Just(json!({"email": 1})).boxed())),
    ]);
    let provider = object(vec![
        ("name", field(word(&["ollama", "openai"]))),
        ("trusted_for", field(words(LEVELS))),
    ]);
    let resource = object(vec![
        ("tenant", field(word(&["acme", "other"]))),
        ("owner", field(word(SUBS))),
        ("owner_iss", field(word(ISSUERS))),
    ]);
    let approvals = prop::collection::vec(prop_oneof![30 => approval(), 1 => malformed()], 0..3)
        .prop_map(Value::from)
        .boxed();
    object(vec![
        ("principal", field(principal)),
        ("agent", field(agent)),
        ("action", field(action)),
        ("tool", field(tool)),
        ("data", field(data)),
        ("dlp", field(dlp)),
        ("environment", field(word(&["production", "development"]))),
        ("approvals", field(approvals)),
        ("approver_roles", field(words(ROLES))),
        ("provider", field(provider)),
        ("resource", field(resource)),
        (
            "parameters",
            field(Just(json!({"path": "src/lib.rs", "n": [1, 2.5, null]})).boxed()),
        ),
    ])
}

fn point() -> impl Strategy<Value = DecisionPoint> {
    prop::sample::select(DecisionPoint::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn guarded_evaluation_decides_as_the_interpreter(point in point(), input in input()) {
        thread_local! {
            static ENGINES: (RegoPolicyEngine, RegoPolicyEngine, regorus::Engine, RegoPolicyEngine) = (
                engine(Evaluation::Guarded),
                engine(Evaluation::Interpreter),
                raw_engine(),
                reference_engine(),
            );
        }
        ENGINES.with(|(guarded, interpreter, raw, before)| {
            let fast = guarded.decide(point, &input);
            let reference = interpreter.decide(point, &input);
            prop_assert_eq!(doc(&fast), doc(&reference), "{}", input);
            prop_assert_eq!(doc(&reference), raw_doc(raw, point, &input), "{}", input);
            prop_assert_eq!(doc(&reference), doc(&before.decide(point, &input)), "{}", input);
            Ok(())
        })?;
    }
}

/// The generator reaches both sides of the guard, mostly the bytecode one, and both outcomes.
#[test]
fn the_generated_inputs_run_on_both_evaluators() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let guarded = engine(Evaluation::Guarded);
    let mut runner = TestRunner::deterministic();
    let (mut allowed, mut denied) = (0, 0);
    for _ in 0..400 {
        let input = input().new_tree(&mut runner).unwrap().current();
        let d = guarded.decide(DecisionPoint::ToolCall, &input);
        if d.allow {
            allowed += 1;
        } else {
            denied += 1;
        }
    }
    let stats = guarded.evaluator_stats();
    assert_eq!(stats.bytecode + stats.interpreter, 400);
    assert!(stats.bytecode >= 100, "{stats:?}");
    assert!(stats.interpreter >= 50, "{stats:?}");
    assert!(
        allowed >= 10 && denied >= 10,
        "{allowed} allowed, {denied} denied"
    );
}
