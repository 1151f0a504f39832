//! The provider router: fallback across providers, circuit breakers observed through a real
//! HTTP server's request count, metrics, and the provider set built from config.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use amas_config::{BreakerConfig, OpenAiConfig, ProviderConfig, ScriptedConfig};
use amas_providers::openai::OpenAiProvider;
use amas_providers::scripted::{Script, ScriptedProvider};
use amas_providers::{
    BreakerState, ChatMessage, ChatRequest, CircuitBreaker, ManualClock, ModelProvider,
    ProviderChain, ProviderError, ProviderSet,
};
use amas_telemetry::Metrics;
use amas_test_util::{Behaviour, MockOpenAi, free_port};

const MODEL: &str = "gpt-test";

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here is a test failure"
)]
fn openai(name: &str, base_url: &str) -> Arc<dyn ModelProvider> {
    let cfg = OpenAiConfig {
        base_url: base_url.to_owned(),
        model: MODEL.to_owned(),
        api_key_env: None,
        timeout: Duration::from_secs(30),
        max_retries: 0,
        max_retry_after: std::time::Duration::from_secs(5),
        breaker: breaker_cfg(5),
    };
    Arc::new(OpenAiProvider::new(name, &cfg).unwrap())
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failure here is a test failure"
)]
fn scripted(name: &str, yaml: &str) -> Arc<dyn ModelProvider> {
    Arc::new(ScriptedProvider::from_script(
        name,
        Script::parse(yaml).unwrap(),
    ))
}

fn breaker_cfg(threshold: u32) -> BreakerConfig {
    BreakerConfig {
        failure_threshold: threshold,
        cool_down: Duration::from_secs(10),
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        agent: "research".into(),
        step: "gather".into(),
        messages: vec![ChatMessage::user("two words")],
        output_schema: None,
        max_output_tokens: 64,
        tools: Vec::new(),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn metric_line(metrics: &Metrics, prefix: &str) -> Option<String> {
    metrics
        .render()
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_owned)
}

#[tokio::test]
async fn falls_back_to_the_second_provider_when_the_first_is_down() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::reply("from the backup"));
    let down = format!("http://127.0.0.1:{}/v1", free_port().unwrap());
    let metrics = Metrics::new();
    let set = ProviderSet::new(metrics.clone())
        .with_provider("down", openai("down", &down), breaker_cfg(5))
        .with_provider("backup", openai("backup", &mock.base_url()), breaker_cfg(5));

    let answer = set
        .chain(&names(&["down", "backup"]))
        .unwrap()
        .chat(&request())
        .await
        .unwrap();

    assert_eq!(answer.provider, "backup");
    assert_eq!(answer.content, "from the backup");
    assert_eq!(mock.request_count(MODEL), 1);
    assert_eq!(
        metric_line(
            &metrics,
            r#"amas_provider_calls_total{provider="down",outcome="unavailable"}"#
        )
        .as_deref(),
        Some(r#"amas_provider_calls_total{provider="down",outcome="unavailable"} 1"#)
    );
    assert_eq!(
        metric_line(
            &metrics,
            r#"amas_provider_calls_total{provider="backup",outcome="ok"}"#
        )
        .as_deref(),
        Some(r#"amas_provider_calls_total{provider="backup",outcome="ok"} 1"#)
    );
    // Tokens and cost are counted by the runtime, which knows the tenant.
    assert!(
        !metrics.render().contains("amas_tokens_total{"),
        "{}",
        metrics.render()
    );
}

#[tokio::test]
async fn all_failures_are_reported_in_chain_order() {
    let set = ProviderSet::new(Metrics::new())
        .with_provider(
            "a",
            scripted("a", "default:\n  - error: timeout\n"),
            breaker_cfg(5),
        )
        .with_provider(
            "b",
            scripted("b", "default:\n  - error: rate_limited\n"),
            breaker_cfg(5),
        );
    let err = set
        .chain(&names(&["a", "b"]))
        .unwrap()
        .chat(&request())
        .await
        .unwrap_err();
    match err {
        ProviderError::AllFailed(errors) => {
            let codes: Vec<_> = errors.iter().map(ProviderError::code).collect();
            assert_eq!(codes, ["AMAS-PROV-0003", "AMAS-PROV-0002"]);
        }
        other => panic!("expected AllFailed, got {other}"),
    }
}

#[tokio::test]
async fn a_misconfigured_provider_stops_the_chain_instead_of_falling_back() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::reply("ok"));
    let set = ProviderSet::new(Metrics::new())
        // No entry for "research" and no default: a configuration error.
        .with_provider(
            "s",
            scripted("s", "other:\n  - content: x\n"),
            breaker_cfg(1),
        )
        .with_provider("m", openai("m", &mock.base_url()), breaker_cfg(5));
    let err = set
        .chain(&names(&["s", "m"]))
        .unwrap()
        .chat(&request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "AMAS-PROV-0007");
    assert_eq!(mock.request_count(MODEL), 0);
    assert_eq!(
        set.breaker_states()[1],
        ("s".to_owned(), BreakerState::Closed),
        "config errors do not trip the breaker"
    );
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_recovers_through_one_probe() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.set_default(MODEL, Behaviour::status(500));
    let clock = Arc::new(ManualClock::default());
    let breaker = Arc::new(CircuitBreaker::with_clock(
        "m",
        &breaker_cfg(2),
        clock.clone(),
    ));
    let chain = ProviderChain::new(
        vec![(openai("m", &mock.base_url()), breaker.clone())],
        Metrics::new(),
    );

    for _ in 0..2 {
        chain.chat(&request()).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(mock.request_count(MODEL), 2);

    // Open: fails fast, the server sees nothing.
    let err = chain.chat(&request()).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::AllFailed(e) if matches!(e[..], [ProviderError::CircuitOpen { .. }])),
        "{err}"
    );
    assert_eq!(mock.request_count(MODEL), 2);

    // After the cool-down, one probe; it fails, so the breaker re-opens.
    clock.advance(Duration::from_secs(10));
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    chain.chat(&request()).await.unwrap_err();
    assert_eq!(mock.request_count(MODEL), 3);
    assert_eq!(breaker.state(), BreakerState::Open);
    chain.chat(&request()).await.unwrap_err();
    assert_eq!(mock.request_count(MODEL), 3);

    // The provider recovers; the next probe succeeds and closes the breaker.
    mock.set_default(MODEL, Behaviour::reply("back"));
    clock.advance(Duration::from_secs(10));
    assert_eq!(chain.chat(&request()).await.unwrap().content, "back");
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(chain.chat(&request()).await.unwrap().content, "back");
    assert_eq!(mock.request_count(MODEL), 5);
}

#[tokio::test]
async fn only_one_probe_runs_while_half_open() {
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(MODEL, [Behaviour::status(500), Behaviour::Hang]);
    let clock = Arc::new(ManualClock::default());
    let breaker = Arc::new(CircuitBreaker::with_clock(
        "m",
        &breaker_cfg(1),
        clock.clone(),
    ));
    let chain = ProviderChain::new(
        vec![(openai("m", &mock.base_url()), breaker.clone())],
        Metrics::new(),
    );
    chain.chat(&request()).await.unwrap_err();
    clock.advance(Duration::from_secs(10));

    #[expect(
        clippy::disallowed_methods,
        reason = "test scaffolding: a server or a race that ends with the test"
    )]
    let probe = tokio::spawn({
        let chain = chain.clone();
        async move { chain.chat(&request()).await }
    });
    while mock.request_count(MODEL) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = chain.chat(&request()).await.unwrap_err();
    assert!(err.to_string().contains("circuit open"), "{err}");
    assert_eq!(mock.request_count(MODEL), 2);

    mock.release_hangs();
    probe.await.unwrap().unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test]
async fn the_provider_set_builds_from_config_and_rejects_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.yaml");
    std::fs::write(&file, "default:\n  - json: {done: true}\n").unwrap();
    let mut providers = BTreeMap::new();
    providers.insert(
        "canned".to_owned(),
        ProviderConfig::Scripted(ScriptedConfig {
            file,
            breaker: breaker_cfg(3),
        }),
    );
    let set = ProviderSet::from_config(&providers, Metrics::new()).unwrap();

    let answer = set
        .chain(&names(&["canned"]))
        .unwrap()
        .chat(&request())
        .await
        .unwrap();
    assert_eq!(answer.content, r#"{"done":true}"#);
    assert_eq!(
        set.breaker_states(),
        vec![("canned".to_owned(), BreakerState::Closed)]
    );

    let unknown = set.chain(&names(&["canned", "nope"])).unwrap_err();
    assert!(
        matches!(&unknown, ProviderError::Config { provider, .. } if provider == "nope"),
        "{unknown}"
    );
    assert_eq!(set.chain(&[]).unwrap_err().code(), "AMAS-PROV-0007");
}

#[tokio::test]
async fn chains_from_one_set_share_each_providers_breaker() {
    let set = ProviderSet::new(Metrics::new())
        .with_provider(
            "flaky",
            scripted("flaky", "default:\n  - error: unavailable\n"),
            breaker_cfg(2),
        )
        .with_provider(
            "ok",
            scripted("ok", "default:\n  - content: fine\n"),
            breaker_cfg(2),
        );
    let first = set.chain(&names(&["flaky", "ok"])).unwrap();
    let second = set.chain(&names(&["flaky"])).unwrap();
    first.chat(&request()).await.unwrap();
    second.chat(&request()).await.unwrap_err();
    assert_eq!(
        set.breaker_states()[0],
        ("flaky".to_owned(), BreakerState::Open)
    );
}
