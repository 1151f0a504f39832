//! Router tests without a socket (`oneshot`): authentication on every `/api/` route, bad input
//! answered with JSON 4xx errors (never a 500), tenant isolation, and the task lifecycle.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use amas_api::{AppState, router};
use amas_governance::{KeySource, LocalIssuer, TokenVerifier};

struct App {
    router: Router,
    state: AppState,
    issuer: Arc<LocalIssuer>,
    _dir: tempfile::TempDir,
}

async fn app_with(queue_capacity: usize, start: bool) -> App {
    let mut config = common::scripted_config();
    config.runtime.queue_capacity = queue_capacity;
    config.server.body_limit_bytes = 4096;
    // Rate limits have their own tests (tests/security.rs); these send many bad tokens.
    config.server.rate_limits.enabled = false;
    let parts = common::parts(config, common::RESEARCH_SCRIPT).await;
    let runtime = parts.runtime();
    if start {
        runtime.scheduler().start().await;
    }
    let state = parts.state(runtime);
    App {
        router: router(state.clone()),
        state,
        issuer: Arc::clone(&parts.issuer),
        _dir: parts.dir,
    }
}

async fn app() -> App {
    app_with(100, true).await
}

impl App {
    fn token(&self, sub: &str, tenant: Option<&str>) -> String {
        self.issuer
            .mint(
                sub,
                &["submitter".to_owned()],
                tenant,
                Duration::from_secs(600),
            )
            .unwrap()
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.send(common::request(method, uri, token, &[], body))
            .await
    }

    /// Submits the standard test task as the holder of `token`.
    async fn submit(&self, token: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.call(
            Method::POST,
            "/api/v1/tasks",
            Some(token),
            Some(task_body()),
        )
        .await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let (status, headers, bytes) = common::send(&self.router, req).await;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, value)
    }
}

fn task_body() -> Value {
    json!({"task_type": "research_report", "title": "SQLite", "description": "Why is it everywhere?"})
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// The whole lifecycle through the API: 202, then the task runs to success and shows its steps.
#[tokio::test]
async fn submitted_task_runs_to_success() {
    let app = app().await;
    let token = app.token("alice", None);
    let (status, headers, body) = app.submit(&token).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["task_type"], "research_report");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        headers[header::LOCATION],
        format!("/api/v1/tasks/{id}").as_str()
    );
    let mut task = Value::Null;
    for _ in 0..200 {
        let (_, _, t) = app
            .call(
                Method::GET,
                &format!("/api/v1/tasks/{id}"),
                Some(&token),
                None,
            )
            .await;
        task = t;
        if task["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["result"], json!({"title": "t", "report": "r"}));
    let steps = task["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert!(
        steps
            .iter()
            .all(|s| s["status"] == "succeeded" && s["attempts"] == 1)
    );
    let (status, _, events) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{id}/events"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"task_submitted"));
    assert_eq!(kinds.last(), Some(&"task_succeeded"));
    let (_, _, list) = app
        .call(
            Method::GET,
            "/api/v1/tasks?status=succeeded&limit=10",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(list["tasks"].as_array().unwrap().len(), 1);
}

/// Every `/api/` route refuses a request without a valid token, with 401 and WWW-Authenticate.
#[tokio::test]
async fn api_routes_require_a_valid_token() {
    let app = app().await;
    let routes = [
        (Method::POST, "/api/v1/tasks"),
        (Method::GET, "/api/v1/tasks"),
        (
            Method::GET,
            "/api/v1/tasks/0190a0a0-0000-7000-8000-000000000000",
        ),
        (
            Method::GET,
            "/api/v1/tasks/0190a0a0-0000-7000-8000-000000000000/events",
        ),
        (
            Method::POST,
            "/api/v1/tasks/0190a0a0-0000-7000-8000-000000000000/cancel",
        ),
        (Method::GET, "/api/v1/agents"),
        (Method::GET, "/api/v1/workflows"),
    ];
    let other = tempfile::tempdir().unwrap();
    let stranger = LocalIssuer::load_or_create(other.path(), "amas-local", "amas").unwrap();
    let forged = stranger
        .mint(
            "mallory",
            &["admin".to_owned()],
            None,
            Duration::from_secs(600),
        )
        .unwrap();
    // Signed with the real key, expired beyond the leeway.
    let expired = {
        let der = std::fs::read(app._dir.path().join("keys/jwt-ed25519.pk8")).unwrap();
        let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(app.issuer.kid().to_owned());
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"iss": "amas-local", "aud": "amas", "sub": "alice", "exp": now - 3600, "iat": now - 7200, "nbf": now - 7200});
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "amas-local", "aud": "amas", "sub": "mallory", "exp": now + 600, "iat": now, "nbf": now, "roles": ["admin"]});
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims.clone())
    );
    let wrong_aud = {
        // Signed by the real key, for another audience.
        let other_aud =
            LocalIssuer::load_or_create(app._dir.path(), "amas-local", "someone-else").unwrap();
        other_aud
            .mint(
                "alice",
                &["admin".to_owned()],
                None,
                Duration::from_secs(600),
            )
            .unwrap()
    };
    let unknown_kid = {
        let mut parts: Vec<String> = app
            .token("alice", None)
            .split('.')
            .map(str::to_owned)
            .collect();
        parts[0] = b64(json!({"alg": "EdDSA", "typ": "JWT", "kid": "no-such-key"}));
        parts.join(".")
    };
    let bad_tokens: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        ("bad signature", Some(forged)),
        ("expired", Some(expired)),
        ("alg none", Some(alg_none)),
        ("wrong audience", Some(wrong_aud)),
        ("unknown kid", Some(unknown_kid)),
    ];
    tokio::time::sleep(Duration::from_millis(10)).await;
    for (method, uri) in &routes {
        for (what, token) in &bad_tokens {
            let (status, headers, body) =
                app.call(method.clone(), uri, token.as_deref(), None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what} on {method} {uri}: {body}"
            );
            assert!(
                headers[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{what}"
            );
            assert!(
                body["error"]["code"]
                    .as_str()
                    .unwrap()
                    .starts_with("AMAS-AUTH-"),
                "{what}: {body}"
            );
        }
    }
}

/// Bad input to every endpoint is a 4xx JSON error naming the problem; never a 500.
#[tokio::test]
async fn bad_input_gets_json_4xx_errors() {
    let app = app_with(100, false).await;
    let token = app.token("alice", None);
    let t = Some(token.as_str());
    let cases: Vec<(Method, &str, Option<Value>, StatusCode, &str, &str)> = vec![
        (
            Method::POST,
            "/api/v1/tasks",
            Some(json!({"title": "x", "description": "y"})),
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "task_type",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(json!({"task_type": "research_report", "title": "", "description": "y"})),
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "title",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(
                json!({"task_type": "research_report", "title": "x", "description": "y", "priority": 11}),
            ),
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "priority",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(
                json!({"task_type": "research_report", "title": "x", "description": "y", "priority": "high"}),
            ),
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "priority",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(
                json!({"task_type": "research_report", "title": "x", "description": "y", "colour": 1}),
            ),
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "colour",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(
                json!({"task_type": "research_report", "title": "x", "description": "y", "parameters": [1]}),
            ),
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "parameters",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(json!({"task_type": "nope", "title": "x", "description": "y"})),
            StatusCode::BAD_REQUEST,
            "AMAS-TASK-0001",
            "task_type",
        ),
        (
            Method::POST,
            "/api/v1/tasks",
            Some(json!([1, 2])),
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "body",
        ),
        (
            Method::GET,
            "/api/v1/tasks?limit=0",
            None,
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "limit",
        ),
        (
            Method::GET,
            "/api/v1/tasks?limit=abc",
            None,
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "limit",
        ),
        (
            Method::GET,
            "/api/v1/tasks?status=done",
            None,
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "status",
        ),
        (
            Method::GET,
            "/api/v1/tasks?cursor=xyz",
            None,
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "cursor",
        ),
        (
            Method::GET,
            "/api/v1/tasks?bogus=1",
            None,
            StatusCode::BAD_REQUEST,
            "AMAS-API-0001",
            "bogus",
        ),
        (
            Method::GET,
            "/api/v1/tasks/not-a-uuid",
            None,
            StatusCode::NOT_FOUND,
            "AMAS-API-0002",
            "",
        ),
        (
            Method::GET,
            "/api/v1/tasks/0190a0a0-0000-7000-8000-000000000000",
            None,
            StatusCode::NOT_FOUND,
            "AMAS-API-0002",
            "",
        ),
        (
            Method::GET,
            "/api/v1/tasks/0190a0a0-0000-7000-8000-000000000000/events",
            None,
            StatusCode::NOT_FOUND,
            "AMAS-API-0002",
            "",
        ),
        (
            Method::POST,
            "/api/v1/tasks/0190a0a0-0000-7000-8000-000000000000/cancel",
            None,
            StatusCode::NOT_FOUND,
            "AMAS-API-0002",
            "",
        ),
        (
            Method::DELETE,
            "/api/v1/tasks",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "AMAS-API-0003",
            "",
        ),
        (
            Method::GET,
            "/api/v1/nothing-here",
            None,
            StatusCode::NOT_FOUND,
            "AMAS-API-0002",
            "",
        ),
    ];
    for (method, uri, body, expected, code, field) in cases {
        let (status, _, response) = app.call(method.clone(), uri, t, body.clone()).await;
        assert_error(status, &response, expected, code);
        assert!(
            response["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{method} {uri} {body:?}: {response}"
        );
    }
    // Not JSON at all, wrong content type, too large.
    let raw = |body: &'static str, ctype: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/tasks")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, ctype)
            .body(Body::from(body))
            .unwrap()
    };
    let (status, _, body) = app.send(raw("{not json", "application/json")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "AMAS-API-0001");
    let (status, _, body) = app.send(raw("{}", "text/plain")).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "AMAS-API-0005",
    );
    let big = Box::leak(
        format!(
            "{{\"task_type\":\"research_report\",\"title\":\"x\",\"description\":\"{}\"}}",
            "a".repeat(10_000)
        )
        .into_boxed_str(),
    );
    let (status, _, body) = app.send(raw(big, "application/json")).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "AMAS-API-0004",
    );
}

/// A full queue answers 429 with Retry-After.
#[tokio::test]
async fn full_queue_answers_429_with_retry_after() {
    let app = app_with(1, false).await;
    let token = app.token("alice", None);
    let (status, _, _) = app.submit(&token).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, headers, body) = app.submit(&token).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "AMAS-TASK-0003",
    );
    assert_eq!(headers[header::RETRY_AFTER], "1");
}

/// Another tenant's task looks exactly like a missing one, and never shows in listings.
#[tokio::test]
async fn tenants_do_not_see_each_other() {
    let app = app_with(100, false).await;
    let acme = app.token("alice", Some("acme"));
    let globex = app.token("bob", Some("globex"));
    let (_, _, created) = app.submit(&acme).await;
    let id = created["id"].as_str().unwrap();
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/tasks/{id}"),
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for uri in [
        format!("/api/v1/tasks/{id}"),
        format!("/api/v1/tasks/{id}/events"),
    ] {
        let (status, _, body) = app.call(Method::GET, &uri, Some(&globex), None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "AMAS-API-0002");
    }
    let (status, _, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/tasks/{id}/cancel"),
            Some(&globex),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, list) = app
        .call(Method::GET, "/api/v1/tasks", Some(&globex), None)
        .await;
    assert!(list["tasks"].as_array().unwrap().is_empty());
}

/// Public routes answer without a token; responses carry security headers and a request id.
#[tokio::test]
async fn public_routes_and_security_headers() {
    let app = app().await;
    for uri in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/.well-known/jwks.json",
        "/metrics",
    ] {
        let (status, headers, _) = app.call(Method::GET, uri, None, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(headers.contains_key("x-request-id"));
    }
    let (_, _, jwks) = app
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await;
    assert_eq!(jwks["keys"][0]["kid"], app.issuer.kid());
    assert!(jwks["keys"][0].get("d").is_none(), "never the private key");
    let token = app.token("alice", None);
    app.call(Method::GET, "/api/v1/agents", Some(&token), None)
        .await;
    let (_, _, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(
            "amas_http_requests_total{method=\"GET\",route=\"/api/v1/agents\",status=\"200\"} 1"
        ),
        "{text}"
    );
}

/// Every route of the router is documented in the OpenAPI document.
#[tokio::test]
async fn openapi_documents_every_route() {
    let doc: Value = serde_json::from_str(amas_api::OPENAPI).unwrap();
    for path in [
        "/api/v1/tasks",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/events",
        "/api/v1/tasks/{id}/lineage",
        "/api/v1/tasks/{id}/cancel",
        "/api/v1/agents",
        "/api/v1/workflows",
        "/api/v1/me",
        "/api/v1/audit",
        "/api/v1/approvals",
        "/api/v1/approvals/{id}",
        "/api/v1/approvals/{id}/approve",
        "/api/v1/approvals/{id}/deny",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/.well-known/jwks.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from openapi.json"
        );
    }
}

/// `Accept: text/event-stream` streams the journal live, in order, and ends with the task.
#[tokio::test]
async fn events_stream_live_until_the_task_ends() {
    let app = app_with(100, false).await;
    let token = app.token("alice", None);
    let (_, _, created) = app.submit(&token).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let req = Request::builder()
        .uri(format!("/api/v1/tasks/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .unwrap();
    let response = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // The task has not started yet: everything after the submission arrives live.
    app.state.runtime.scheduler().start().await;
    let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("the stream ends when the task ends")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"task_submitted"), "{text}");
    assert_eq!(events.last(), Some(&"task_succeeded"), "{text}");
    assert!(events.contains(&"step_succeeded"));
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive seqs: {ids:?}"
    );
}

/// `GET /api/v1/me` shows what AMAS made of the token (and needs one); `/readyz` lists the
/// key-set health of OIDC issuers (none here: only the local issuer is configured).
#[tokio::test]
async fn me_shows_the_principal_and_readyz_lists_issuers() {
    let app = app().await;
    let token = app.token("alice", Some("acme"));
    let (status, _, body) = app
        .call(Method::GET, "/api/v1/me", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"sub": "alice", "roles": ["submitter"], "tenant": "acme", "auth_method": "local_jwt", "issuer": "amas-local"})
    );
    let (status, _, _) = app.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["issuers"], json!([]));
}

/// An identity provider that never answered: /readyz stays ready but names the issuer as
/// unavailable with the reason, and its tokens get 503 (AMAS's problem, retry later), not 401.
#[tokio::test]
async fn unreachable_identity_provider_shows_in_readyz_and_answers_503() {
    let app = app().await;
    let config = amas_config::OidcIssuerConfig {
        name: "corp".into(),
        issuer: "http://127.0.0.1:1/realms/corp".into(),
        jwks: amas_config::JwksLocation::Url {
            url: "http://127.0.0.1:1/certs".into(),
        },
        audiences: vec!["amas".into()],
        algorithms: vec![amas_config::SigningAlgorithm::RS256],
        clock_leeway: Duration::from_secs(5),
        max_token_age: None,
        jwks_cache: amas_config::JwksCacheConfig {
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(3600),
            unknown_kid_refetch_interval: Duration::from_secs(30),
            http_timeout: Duration::from_secs(2),
        },
        roles_claim: amas_config::ClaimPath::top("roles"),
        tenant: amas_config::TenantMapping::Claim(amas_config::ClaimPath::top("tenant")),
    };
    let source = Arc::new(amas_governance::JwksSource::new(&config).unwrap());
    let verifier = TokenVerifier::new(
        vec![Arc::clone(&app.issuer) as Arc<dyn KeySource>],
        app.state.config.auth.audience.clone(),
        Duration::from_secs(5),
    )
    .with_issuer(source, amas_governance::auth::IssuerPolicy::oidc(&config));
    let mut state = app.state.clone();
    state.verifier = Arc::new(verifier);
    let app = App {
        router: router(state.clone()),
        state,
        issuer: Arc::clone(&app.issuer),
        _dir: app._dir,
    };

    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256", "kid": "k1"})),
        b64(json!({"iss": config.issuer, "sub": "bob", "aud": "amas", "exp": 4_000_000_000_u64}))
    );
    let (status, headers, body) = app
        .call(Method::GET, "/api/v1/me", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "AMAS-AUTH-0015");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(!body.to_string().contains(&token));

    let (status, _, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    let issuer = &body["issuers"][0];
    assert_eq!(issuer["name"], "corp");
    assert_eq!(issuer["status"], "unavailable");
    assert_eq!(issuer["last_error"], "cannot connect");

    // Local tokens are unaffected.
    let local = app.token("alice", None);
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/me", Some(&local), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// The lineage graph of a task whose input holds an email and a declared PHI floor: every node
/// carries the inherited level and tags and why (finding types and counts, never values), the
/// task view carries the result's classification, another tenant gets the unknown-task 404,
/// and an unknown declared level or tag is a 400 naming the field.
#[tokio::test]
async fn lineage_shows_inherited_classification_and_hides_other_tenants() {
    let app = app().await;
    let acme = app.token("alice", Some("acme"));
    let globex = app.token("bob", Some("globex"));
    let body = json!({
        "task_type": "research_report",
        "title": "Follow-up",
        "description": "Write to jane.doe@example.com about her results",
        "classification": {"level": "confidential", "tags": ["PHI"]},
    });
    let (status, _, created) = app
        .call(Method::POST, "/api/v1/tasks", Some(&acme), Some(body))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut task = Value::Null;
    for _ in 0..200 {
        let (_, _, t) = app
            .call(
                Method::GET,
                &format!("/api/v1/tasks/{id}"),
                Some(&acme),
                None,
            )
            .await;
        if t["status"] == "succeeded" {
            task = t;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        task["classification"],
        json!({"classification": "confidential", "tags": ["PII", "PHI"]})
    );

    let uri = format!("/api/v1/tasks/{id}/lineage");
    let (status, _, graph) = app.call(Method::GET, &uri, Some(&acme), None).await;
    assert_eq!(status, StatusCode::OK, "{graph}");
    let nodes = graph["nodes"].as_array().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "input",
            "step:analysis",
            "step:research",
            "step:synthesis",
            "result"
        ]
    );
    for node in nodes {
        assert_eq!(node["level"], "confidential", "{node}");
        assert_eq!(node["tags"], json!(["PII", "PHI"]), "{node}");
    }
    assert_eq!(nodes[0]["why"]["findings"], json!({"email": 1}));
    assert_eq!(
        nodes[0]["why"]["declared"]["classification"],
        "confidential"
    );
    let edges = graph["edges"].as_array().unwrap();
    for (from, to) in [
        ("input", "step:research"),
        ("step:research", "step:analysis"),
        ("step:analysis", "step:synthesis"),
        ("step:synthesis", "result"),
    ] {
        assert!(
            edges.contains(&json!({"from": from, "to": to})),
            "{from} -> {to} in {edges:?}"
        );
    }
    assert!(!graph.to_string().contains("jane.doe"), "{graph}");

    let (status, _, body) = app.call(Method::GET, &uri, Some(&globex), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "AMAS-API-0002");

    for (classification, field) in [
        (json!({"level": "top-secret"}), "classification.level"),
        (
            json!({"level": "public", "tags": ["GDPR"]}),
            "classification.tags",
        ),
    ] {
        let mut body = task_body();
        body["classification"] = classification;
        let (status, _, err) = app
            .call(Method::POST, "/api/v1/tasks", Some(&acme), Some(body))
            .await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "AMAS-API-0001");
        assert!(
            err["error"]["message"].as_str().unwrap().starts_with(field),
            "{err}"
        );
    }
}
