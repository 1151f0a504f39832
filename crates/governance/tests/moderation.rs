//! The moderation classifier against a mock OpenAI-compatible `/v1/moderations` endpoint on
//! loopback: OpenAI's categories map onto AMAS's and the configured actions apply; the API key
//! goes out as a bearer token and never into an error; an outage (error status, garbage,
//! timeout, nothing listening) falls back to the lexicon with `classifier_unavailable` set.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use amas_dataprotect::{
    Action, Category, ClassifierChoice, ContentClassifier, ContentSafety, DataProtectConfig,
    EMBEDDED_CONFIG, ModerationConfig, OnUnavailable,
};
use amas_governance::moderation::{ModerationClassifier, ModerationSetupError, content_safety};
use secrecy::SecretString;

const KEY: &str = "sk-test-moderation-key-4f2a";

/// Requests the mock received: the authorization header and the JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;
/// A named way of breaking the endpoint.
type Outage<'a> = (&'a str, Box<dyn Fn() + 'a>);

/// What the mock answers, and what it was sent (authorization header, body).
#[derive(Clone)]
struct Mock {
    answer: Arc<Mutex<(StatusCode, String, Duration)>>,
    seen: Seen,
    base_url: String,
}

impl Mock {
    async fn start() -> Self {
        let answer = Arc::new(Mutex::new((StatusCode::OK, String::new(), Duration::ZERO)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let mock = Self {
            answer,
            seen,
            base_url,
        };
        let app = axum::Router::new()
            .route("/v1/moderations", post(moderate))
            .with_state(mock.clone());
        #[expect(
            clippy::disallowed_methods,
            reason = "test scaffolding: a server or a race that ends with the test"
        )]
        tokio::spawn(async move { axum::serve(listener, app).await });
        mock
    }

    fn answer(&self, status: StatusCode, body: &str) {
        *self.answer.lock().unwrap() = (status, body.to_owned(), Duration::ZERO);
    }

    fn stall(&self, delay: Duration) {
        self.answer.lock().unwrap().2 = delay;
    }

    fn flags(&self, flagged: &[&str]) {
        let mut categories = serde_json::Map::new();
        let mut scores = serde_json::Map::new();
        for name in [
            "hate",
            "hate/threatening",
            "harassment",
            "self-harm/intent",
            "sexual",
            "violence/graphic",
            "illicit",
        ] {
            let on = flagged.contains(&name);
            categories.insert(name.to_owned(), json!(on));
            scores.insert(name.to_owned(), json!(if on { 0.93 } else { 0.01 }));
        }
        // A category AMAS does not know is ignored, not an error.
        categories.insert("future-category".to_owned(), json!(true));
        let body = json!({"id": "modr-1", "model": "omni-moderation-latest", "results": [{
            "flagged": !flagged.is_empty(), "categories": categories, "category_scores": scores
        }]});
        self.answer(StatusCode::OK, &body.to_string());
    }

    fn config(&self, timeout: Duration) -> ModerationConfig {
        ModerationConfig {
            base_url: self.base_url.clone(),
            model: "omni-moderation-latest".to_owned(),
            api_key_env: None,
            timeout,
            on_unavailable: OnUnavailable::Lexicon,
        }
    }

    fn safety(&self, timeout: Duration) -> ContentSafety {
        let classifier =
            ModerationClassifier::new(&self.config(timeout), Some(SecretString::from(KEY)))
                .unwrap();
        ContentSafety::from_config(&DataProtectConfig::embedded().unwrap())
            .with_classifier("moderation", Arc::new(classifier))
    }
}

async fn moderate(
    State(mock): State<Mock>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = serde_json::from_str(&body).unwrap_or(Value::Null);
    mock.seen.lock().unwrap().push((auth, body));
    let (status, answer, delay) = mock.answer.lock().unwrap().clone();
    tokio::time::sleep(delay).await;
    (status, answer)
}

/// OpenAI's sub-categories land in AMAS's families and the embedded actions apply: hate is
/// `block`, violence `flag`; the request carries the text, the model and the bearer key.
#[tokio::test]
async fn categories_map_and_actions_apply() {
    let mock = Mock::start().await;
    let safety = mock.safety(Duration::from_secs(10));

    mock.flags(&["hate/threatening", "violence/graphic"]);
    let s = safety.screen("some text").await;
    assert!(!s.classifier_unavailable);
    assert_eq!(s.classifier, "moderation");
    assert_eq!(s.verdict.action, Action::Block);
    let mut cats = s.verdict.categories();
    cats.sort();
    assert_eq!(cats, [Category::Hate, Category::Violence]);
    assert!((s.verdict.hits[0].score - 0.93).abs() < 1e-6);

    mock.flags(&["harassment", "self-harm/intent", "sexual"]);
    let s = safety.screen("other text").await;
    assert_eq!(s.verdict.action, Action::Flag);
    assert_eq!(
        s.verdict.categories().len(),
        3,
        "{:?}",
        s.verdict.categories()
    );

    mock.flags(&["illicit"]);
    assert_eq!(
        safety.screen("x").await.verdict.categories(),
        [Category::IllegalActivity]
    );

    mock.flags(&[]);
    let s = safety.screen("a plain sentence").await;
    assert_eq!(s.verdict.action, Action::Allow);

    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    let (auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(
        body,
        &json!({"input": "some text", "model": "omni-moderation-latest"})
    );
}

/// Whatever the outage, the lexicon decides instead (so the worst content is still blocked),
/// the screening says the classifier was unavailable, and no error names the key.
#[tokio::test]
async fn an_outage_falls_back_to_the_lexicon_and_says_so() {
    let mock = Mock::start().await;
    let classifier = ModerationClassifier::new(
        &mock.config(Duration::from_millis(300)),
        Some(SecretString::from(KEY)),
    )
    .unwrap();
    let safety = mock.safety(Duration::from_millis(300));
    let outages: [Outage<'_>; 4] = [
        (
            "503",
            Box::new(|| mock.answer(StatusCode::SERVICE_UNAVAILABLE, "down")),
        ),
        (
            "garbage",
            Box::new(|| mock.answer(StatusCode::OK, "<html>not json</html>")),
        ),
        (
            "no results",
            Box::new(|| mock.answer(StatusCode::OK, r#"{"results": []}"#)),
        ),
        (
            "timeout",
            Box::new(|| {
                mock.flags(&[]);
                mock.stall(Duration::from_secs(5));
            }),
        ),
    ];
    for (name, set_up) in &outages {
        set_up();
        let err = classifier
            .classify("heil hitler")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains(KEY) && !err.contains("sk-test"),
            "{name}: {err}"
        );
        let s = safety.screen("heil hitler").await;
        assert!(s.classifier_unavailable, "{name}");
        assert_eq!(s.classifier, "lexicon", "{name}");
        assert_eq!(
            s.verdict.action,
            Action::Block,
            "{name}: the lexicon still blocks"
        );
        assert_eq!(s.verdict.categories(), [Category::Hate], "{name}");
        let s = safety.screen("Scunthorpe skills assessment").await;
        assert!(
            s.classifier_unavailable && s.verdict.action == Action::Allow,
            "{name}"
        );
    }

    // Nothing listening at all.
    // Under `on_unavailable: block` the same outage blocks what the lexicon would allow, and
    // says why; the lexicon's hits are kept.
    let strict = mock
        .safety(Duration::from_millis(300))
        .on_unavailable(OnUnavailable::Block);
    mock.answer(StatusCode::SERVICE_UNAVAILABLE, "down");
    let s = strict.screen("Scunthorpe skills assessment").await;
    assert!(s.classifier_unavailable);
    assert_eq!(s.verdict.action, Action::Block);
    assert!(s.verdict.categories().is_empty());
    let s = strict.screen("heil hitler").await;
    assert_eq!(s.verdict.categories(), [Category::Hate]);
    // A recorded verdict asked again: blocked under `block`, by its categories under `lexicon`.
    assert_eq!(strict.action_for(&[], true), Action::Block);
    assert_eq!(strict.action_for(&[], false), Action::Allow);
    assert_eq!(safety.action_for(&[], true), Action::Allow);
    // Once the endpoint answers again, nothing is blocked for being unscreened.
    mock.flags(&[]);
    let s = strict.screen("Scunthorpe skills assessment").await;
    assert!(!s.classifier_unavailable && s.verdict.action == Action::Allow);

    let gone = ModerationConfig {
        base_url: "http://127.0.0.1:9".to_owned(),
        ..mock.config(Duration::from_millis(300))
    };
    let down = ModerationClassifier::new(&gone, Some(SecretString::from(KEY))).unwrap();
    let err = down.classify("x").await.unwrap_err().to_string();
    assert!(!err.contains(KEY), "{err}");
    assert!(format!("{down:?}").contains("[redacted]") && !format!("{down:?}").contains(KEY));
}

/// The factory builds what `content_safety.classifier` selects; a named key variable that is
/// not set fails at start, naming the variable.
#[tokio::test]
async fn the_factory_follows_config() {
    let mock = Mock::start().await;
    mock.flags(&["violence/graphic"]);
    let with = |extra: &str| {
        let text = EMBEDDED_CONFIG.replace(
            "  classifier: lexicon\n",
            &format!(
                "  classifier: moderation\n  moderation:\n    base_url: {}\n    model: omni-moderation-latest\n    timeout: 5s\n{extra}",
                mock.base_url
            ),
        );
        DataProtectConfig::parse(&text, "test").unwrap()
    };
    let config = with("");
    assert!(matches!(
        config.safety_classifier,
        ClassifierChoice::Moderation(_)
    ));
    let safety = content_safety(&config).unwrap();
    assert_eq!(safety.classifier_name(), "moderation");
    let s = safety.screen("a calm sentence").await;
    assert_eq!(
        (s.classifier, s.verdict.categories()),
        ("moderation", vec![Category::Violence]),
        "the endpoint, not the lexicon, decided"
    );

    let missing = with("    api_key_env: AMAS_TEST_MODERATION_KEY_NEVER_SET\n");
    let err = content_safety(&missing).unwrap_err();
    assert!(matches!(err, ModerationSetupError::MissingKey { .. }));
    assert!(
        err.to_string()
            .contains("AMAS_TEST_MODERATION_KEY_NEVER_SET"),
        "{err}"
    );

    let lexicon = content_safety(&DataProtectConfig::embedded().unwrap()).unwrap();
    assert_eq!(lexicon.classifier_name(), "lexicon");
}
