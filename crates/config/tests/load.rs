//! Loading the real layers: embedded defaults, a user directory, environment variables, and
//! a broken directory whose every problem must be reported in one go.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use amas_config::{ConfigErrors, InputSource, LoadOptions, ProviderConfig, codes, load};

#[expect(
    clippy::unwrap_used,
    reason = "test setup: a failed write is a broken machine"
)]
fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn load_dir(dir: &Path) -> Result<amas_config::AmasConfig, ConfigErrors> {
    load(&LoadOptions {
        config_dir: Some(dir.to_path_buf()),
        env: vec![],
    })
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `amas serve` with no files must work: the shipped defaults load and validate.
#[test]
fn embedded_defaults_load_with_the_documented_values() {
    let cfg = load(&LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(cfg.server.body_limit_bytes, 1 << 20);
    assert_eq!(cfg.server.request_timeout, Duration::from_secs(30));
    assert_eq!(cfg.auth.issuer, "amas-local");
    assert_eq!(cfg.auth.default_token_ttl, Duration::from_secs(3600));
    assert_eq!(cfg.runtime.max_concurrent_tasks, 4);
    assert_eq!(cfg.providers.keys().collect::<Vec<_>>(), ["local"]);
    let ProviderConfig::Local(local) = &cfg.providers["local"] else {
        panic!("local is not kind local")
    };
    assert_eq!(local.model_file, "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(
        (local.max_tokens, local.breaker.failure_threshold),
        (600, 5)
    );
    for name in ["research", "analysis", "synthesis"] {
        let agent = &cfg.agents[name];
        assert_eq!(agent.providers, ["local"]);
        assert_eq!(agent.limits.max_attempts, 3);
        assert_eq!(agent.limits.max_output_tokens, 500);
    }

    let wf = &cfg.workflows["research_report"];
    let names: Vec<&str> = wf.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["research", "analysis", "synthesis"]);
    assert_eq!(wf.result_step, "synthesis");
    let analysis = &wf.steps[1];
    assert_eq!(analysis.depends_on, ["research"]);
    assert_eq!(
        analysis.inputs["research"],
        InputSource::StepOutput {
            step: "research".into(),
            field: None
        }
    );
}

/// The embedded output contracts are what constrained generation will follow: a valid
/// small answer passes, an over-long one is refused.
#[test]
fn embedded_research_contract_bounds_the_output() {
    let cfg = load(&LoadOptions::default()).unwrap();
    let out = &cfg.agents["research"].output_contract;
    let ok = serde_json::json!({"findings": ["Rust is memory safe."], "summary": "Safe and fast."});
    assert!(out.check(&ok).is_empty());
    let too_long = serde_json::json!({"findings": ["x".repeat(121)], "summary": "s", "extra": 1});
    assert_eq!(
        out.check(&too_long).len(),
        2,
        "maxLength and additionalProperties"
    );
}

/// Parallelism comes from the DAG: the two research steps must not depend on each other.
#[test]
fn comparative_analysis_researches_in_parallel_then_synthesises() {
    let cfg = load(&LoadOptions::default()).unwrap();
    let wf = &cfg.workflows["comparative_analysis"];
    let step = |n: &str| wf.steps.iter().find(|s| s.name == n).unwrap();
    assert!(step("research_a").depends_on.is_empty());
    assert!(step("research_b").depends_on.is_empty());
    assert_eq!(step("synthesis").depends_on, ["research_a", "research_b"]);
    assert_eq!(wf.steps.last().map(|s| s.name.as_str()), Some("synthesis"));
    assert_eq!(
        wf.result_step, "synthesis",
        "the single sink is the default result step"
    );
    assert_eq!(
        step("research_a").inputs["topic"],
        InputSource::TaskParameter {
            name: "subject_a".into()
        }
    );
}

/// A user's agents.yaml overrides one agent by name and adds another; the rest stay embedded.
#[test]
fn user_dir_overrides_one_agent_and_adds_a_workflow() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "agents.yaml",
        r#"
agents:
  research:
    role: research
    providers: [local]
    system_prompt: Be terse.
    input_contract: { type: object, properties: { topic: { type: string } }, required: [topic] }
    output_contract: { type: object, properties: { facts: { type: array } } }
    limits: { max_attempts: 5 }
"#,
    );
    write(
        dir.path(),
        "settings.yaml",
        "runtime:\n  max_concurrent_tasks: 2\n",
    );
    write(
        dir.path(),
        "workflows/quick.yaml",
        "steps:\n  only:\n    agent: research\n    inputs: { topic: task.title }\n",
    );
    let cfg = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let research = &cfg.agents["research"];
    assert_eq!(research.system_prompt, "Be terse.");
    assert_eq!(research.limits.max_attempts, 5);
    assert_eq!(
        research.limits.timeout,
        Duration::from_secs(120),
        "unset limits take defaults"
    );
    assert!(
        cfg.agents["analysis"].system_prompt.contains("analyst"),
        "other agents stay embedded"
    );
    assert_eq!(cfg.runtime.max_concurrent_tasks, 2);
    assert_eq!(
        cfg.runtime.queue_capacity, 1000,
        "settings merge key by key"
    );
    assert_eq!(cfg.workflows["quick"].result_step, "only");
    assert!(cfg.workflows.contains_key("research_report"));
}

#[test]
fn env_overrides_server_listen_and_a_provider_field() {
    let opts = LoadOptions {
        config_dir: None,
        env: env(&[
            ("AMAS__SERVER__LISTEN", "127.0.0.1:9000"),
            ("AMAS__PROVIDERS__LOCAL__MAX_TOKENS", "128"),
            ("AMAS__PROVIDERS__LOCAL__BREAKER__COOL_DOWN", "2m"),
            ("AMAS__SERVER__METRICS_PUBLIC", "false"),
            ("HOME", "/root"),
        ]),
    };
    let cfg = load(&opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.server.listen.port(), 9000);
    assert!(!cfg.server.metrics_public);
    let ProviderConfig::Local(local) = &cfg.providers["local"] else {
        panic!()
    };
    assert_eq!(local.max_tokens, 128);
    assert_eq!(local.breaker.cool_down, Duration::from_secs(120));
}

/// An env value that breaks validation is blamed on the variable, not on the file.
#[test]
fn bad_env_values_name_the_variable() {
    let opts = LoadOptions {
        config_dir: None,
        env: env(&[
            ("AMAS__RUNTIME__MAX_CONCURRENT_TASKS", "0"),
            ("AMAS__SERVER__LISTEN", "nowhere"),
        ]),
    };
    let errs = load(&opts).unwrap_err();
    assert_eq!(errs.0.len(), 2, "{errs}");
    let tasks = errs
        .0
        .iter()
        .find(|e| e.path == "runtime.max_concurrent_tasks")
        .unwrap();
    assert_eq!(
        (tasks.code, tasks.file.as_str()),
        (
            codes::INVALID_VALUE,
            "env AMAS__RUNTIME__MAX_CONCURRENT_TASKS"
        )
    );
    assert!(errs.has(codes::INVALID_VALUE, "server.listen"));
}

/// The whole point of collecting errors: one run shows a cycle, an unknown agent, an unknown
/// key and a schema that does not compile, each with its file, path and code.
#[test]
fn every_problem_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "workflows/loop.yaml",
        r"
steps:
  a: { agent: research, depends_on: [c], inputs: { topic: task.title } }
  b: { agent: research, depends_on: [a], inputs: { topic: task.title } }
  c: { agent: research, depends_on: [b], inputs: { topic: task.title } }
",
    );
    write(
        dir.path(),
        "workflows/ghost.yaml",
        "steps:\n  s: { agent: ghostwriter, inputs: { topic: task.title } }\n",
    );
    write(
        dir.path(),
        "settings.yaml",
        "server:\n  listen_addr: 0.0.0.0:1\n",
    );
    write(
        dir.path(),
        "agents.yaml",
        r"
agents:
  broken:
    role: broken
    providers: [local]
    system_prompt: x
    input_contract: { type: object }
    output_contract: { type: objekt }
",
    );
    let errs = load_dir(dir.path()).unwrap_err();
    let text = errs.to_string();
    let find = |code: &str, path: &str| {
        errs.0
            .iter()
            .find(|e| e.code == code && e.path == path)
            .unwrap_or_else(|| panic!("no {code} at {path} in:\n{text}"))
    };

    let cycle = find(codes::CYCLE, "workflows.loop.steps.a.depends_on");
    assert!(
        cycle.message.contains("a -> c -> b -> a"),
        "{}",
        cycle.message
    );
    assert!(
        cycle.file.ends_with("workflows/loop.yaml"),
        "{}",
        cycle.file
    );

    let ghost = find(codes::UNKNOWN_REFERENCE, "workflows.ghost.steps.s.agent");
    assert!(ghost.message.contains("ghostwriter"));
    assert!(ghost.file.ends_with("workflows/ghost.yaml"));

    let key = find(codes::UNKNOWN_KEY, "server.listen_addr");
    assert!(
        key.file.ends_with("settings.yaml") && !key.file.starts_with("<embedded>"),
        "{}",
        key.file
    );

    let schema = find(codes::SCHEMA, "agents.broken.output_contract");
    assert!(schema.file.ends_with("agents.yaml"));

    assert_eq!(errs.0.len(), 4, "nothing else is wrong:\n{text}");
    assert!(
        text.contains("AMAS-CFG-0005") && text.contains("workflows/loop.yaml"),
        "{text}"
    );
}

/// References a step cannot see are caught before any task runs: an input from a step that
/// is not upstream, an unknown provider, an empty chain, limits out of range.
#[test]
fn cross_references_and_ranges_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "workflows/sideways.yaml",
        r"
steps:
  left: { agent: research, inputs: { topic: task.title } }
  right: { agent: research, inputs: { topic: task.title } }
  join:
    agent: synthesis
    depends_on: [left, right]
    inputs: { topic: task.title, l: steps.left.output, bogus: steps.right.output.nope }
  peek:
    agent: analysis
    depends_on: [left]
    inputs: { topic: task.title, research: steps.right.output, extra: task.parameters }
result_step: join
",
    );
    write(
        dir.path(),
        "agents.yaml",
        r"
agents:
  research:
    role: research
    providers: [local, cloud]
    system_prompt: x
    input_contract: { type: object }
    output_contract: { type: object, properties: { a: { type: string } }, additionalProperties: false }
    limits: { max_attempts: 11, timeout: 2 minutes }
  analysis:
    role: analysis
    providers: []
    system_prompt: x
    input_contract: { type: object, properties: { topic: {}, research: {} }, additionalProperties: false }
    output_contract: { type: object }
",
    );
    let errs = load_dir(dir.path()).unwrap_err();
    let text = errs.to_string();
    for (code, path) in [
        (
            codes::INVALID_VALUE,
            "workflows.sideways.steps.peek.inputs.research",
        ),
        (
            codes::INVALID_VALUE,
            "workflows.sideways.steps.peek.inputs.extra",
        ),
        (
            codes::UNKNOWN_REFERENCE,
            "workflows.sideways.steps.join.inputs.bogus",
        ),
        (codes::UNKNOWN_REFERENCE, "agents.research.providers.1"),
        (codes::INVALID_VALUE, "agents.research.limits.max_attempts"),
        (codes::INVALID_VALUE, "agents.research.limits.timeout"),
        (codes::INVALID_VALUE, "agents.analysis.providers"),
    ] {
        assert!(errs.has(code, path), "missing {code} at {path}:\n{text}");
    }
}

#[test]
fn yaml_syntax_errors_and_missing_dirs_are_parse_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "providers.yaml",
        "providers:\n  local: [unclosed\n",
    );
    let errs = load_dir(dir.path()).unwrap_err();
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert_eq!(errs.0[0].code, codes::PARSE);
    assert!(
        errs.0[0].message.contains("line"),
        "points at the line: {}",
        errs.0[0].message
    );

    let errs = load_dir(&dir.path().join("missing")).unwrap_err();
    assert_eq!(errs.0[0].code, codes::PARSE);
}

/// Providers of every kind parse with their defaults; a scripted file is resolved against
/// the config dir; a `null` entry removes an embedded one.
#[test]
fn provider_kinds_defaults_and_removal() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "providers.yaml",
        r"
providers:
  openai:
    kind: openai
    base_url: https://api.openai.com/v1/
    model: gpt-4o-mini
    api_key_env: OPENAI_API_KEY
  canned: { kind: scripted, file: responses.yaml }
  local: null
",
    );
    let agents = "agents:\n  research: { role: r, providers: [openai, canned], system_prompt: x, input_contract: { type: object }, output_contract: { type: object } }\n  analysis: null\n  synthesis: null\n  code_reviewer: null\n  security_auditor: null\n  web_research: null\n";
    write(dir.path(), "agents.yaml", agents);
    write(
        dir.path(),
        "workflows/research_report.yaml",
        "steps:\n  research: { agent: research }\n",
    );
    for task_type in [
        "comparative_analysis",
        "code_review",
        "security_audit",
        "web_research",
    ] {
        write(
            dir.path(),
            &format!("workflows/{task_type}.yaml"),
            "steps:\n  research: { agent: research }\n",
        );
    }
    let cfg = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.providers.contains_key("local"));
    let ProviderConfig::Openai(o) = &cfg.providers["openai"] else {
        panic!()
    };
    assert_eq!(
        (o.base_url.as_str(), o.timeout, o.max_retries),
        ("https://api.openai.com/v1", Duration::from_secs(60), 2)
    );
    assert_eq!(o.max_retry_after, Duration::from_secs(5));
    assert_eq!(o.breaker.failure_threshold, 5);
    let ProviderConfig::Scripted(s) = &cfg.providers["canned"] else {
        panic!()
    };
    assert_eq!(s.file, dir.path().join("responses.yaml"));
}

/// `max_retry_after` (the longest `Retry-After` slept in the call) is read as a duration and
/// bounded: 0s is allowed (always park), more than 10 minutes is refused at its path.
#[test]
fn max_retry_after_is_a_bounded_duration() {
    let provider = |value: &str| {
        format!(
            "providers:\n  remote: {{ kind: openai, base_url: http://127.0.0.1:9/v1, model: m, max_retry_after: {value} }}\n"
        )
    };
    let load_with = |value: &str| {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "providers.yaml", &provider(value));
        load(&LoadOptions {
            config_dir: Some(dir.path().to_path_buf()),
            env: env(&[]),
        })
    };
    let cfg = load_with("0s").unwrap_or_else(|e| panic!("{e}"));
    let ProviderConfig::Openai(o) = &cfg.providers["remote"] else {
        panic!()
    };
    assert_eq!(o.max_retry_after, Duration::ZERO);
    let errs = load_with("20m").unwrap_err();
    assert!(
        errs.has(codes::INVALID_VALUE, "providers.remote.max_retry_after"),
        "{errs}"
    );
}

/// A typo deep inside an entry names the full path, so the user finds the line; and the
/// message says which keys would have been accepted.
#[test]
fn nested_unknown_keys_carry_their_full_path() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "providers.yaml",
        "providers:\n  local: { kind: local, model_file: m.gguf, breaker: { threshold: 3 } }\n",
    );
    write(
        dir.path(),
        "workflows/w.yaml",
        "steps:\n  s: { agent: research, input: {} }\n",
    );
    let errs = load_dir(dir.path()).unwrap_err();
    let text = errs.to_string();
    assert!(
        errs.has(codes::UNKNOWN_KEY, "providers.local.breaker.threshold"),
        "{text}"
    );
    assert!(
        errs.has(codes::UNKNOWN_KEY, "workflows.w.steps.s.input"),
        "{text}"
    );
    assert!(
        text.contains("failure_threshold"),
        "lists the expected keys: {text}"
    );
}

/// The recipe in docs/configuration.md: add an OpenAI-compatible provider in a user file and
/// put it in front of an embedded agent's chain with one variable.
#[test]
fn documented_openai_recipe_works() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "providers.yaml",
        r"
providers:
  openai:
    kind: openai
    base_url: https://api.openai.com/v1
    model: gpt-4o-mini
    api_key_env: OPENAI_API_KEY
    timeout: 60s
    max_retries: 2
",
    );
    let opts = LoadOptions {
        config_dir: Some(dir.path().to_path_buf()),
        env: env(&[
            ("AMAS__AGENTS__RESEARCH__PROVIDERS", "[openai, local]"),
            ("OPENAI_API_KEY", "sk-secret"),
        ]),
    };
    let cfg = load(&opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.providers.keys().collect::<Vec<_>>(),
        ["local", "openai"]
    );
    assert_eq!(cfg.agents["research"].providers, ["openai", "local"]);
    assert!(
        !format!("{opts:?}").contains("sk-secret"),
        "Debug of the options hides the environment"
    );
}
