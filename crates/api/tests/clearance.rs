//! Clearance: two principals of different roles read the same task, whose input, step outputs
//! and result carry an SSN and a card number (restricted). The viewer (clearance `internal`)
//! never sees the raw values in any response body (task view, cancel answer, listing, events as
//! JSON and as SSE); the admin (clearance `restricted`) sees them; each redaction is audited
//! without values.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};

use amas_api::{AppState, router};
use amas_config::LoadOptions;
use amas_governance::LocalIssuer;
use amas_store::audit::AuditQuery;

const SSN: &str = "123-45-6789";
const CARD: &str = "4111 1111 1111 1111";

/// The model echoes the seeded values, so step outputs and the result carry them too.
const SCRIPT: &str = r#"
research: [{json: {findings: ["SSN 123-45-6789 on file", "card 4111 1111 1111 1111"], summary: "s"}}]
analysis: [{json: {insights: ["customer 123-45-6789"], risks: []}}]
synthesis: [{json: {title: "t", report: "pay with 4111 1111 1111 1111"}}]
"#;

struct App {
    router: Router,
    state: AppState,
    issuer: Arc<LocalIssuer>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let mut config = common::scripted_config();
    config.server.rate_limits.enabled = false;
    let parts = common::parts(config, SCRIPT).await;
    let runtime = parts.runtime();
    runtime.scheduler().start().await;
    let state = parts.state(runtime);
    App {
        router: router(state.clone()),
        state,
        issuer: Arc::clone(&parts.issuer),
        _dir: parts.dir,
    }
}

impl App {
    fn token(&self, sub: &str, role: &str) -> String {
        self.issuer
            .mint(sub, &[role.to_owned()], None, Duration::from_secs(600))
            .unwrap()
    }

    /// Status and the raw body text (what a client receives, byte for byte).
    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        accept: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let headers: Vec<(header::HeaderName, &str)> =
            accept.map(|a| (header::ACCEPT, a)).into_iter().collect();
        let (status, _, bytes) =
            common::call(&self.router, method, uri, Some(token), &headers, body).await;
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn get(&self, uri: &str, token: &str) -> (StatusCode, String) {
        self.call(Method::GET, uri, token, None, None).await
    }
}

/// Whether `text` holds either seeded value in any of the spellings a JSON body could carry.
fn leaks(text: &str) -> bool {
    let digits = CARD.replace(' ', "");
    text.contains(SSN)
        || text.contains("123456789")
        || text.contains(CARD)
        || text.contains(&digits)
}

#[tokio::test]
async fn payloads_above_clearance_are_redacted_for_each_reader() {
    let app = app().await;
    let alice = app.token("alice", "submitter");
    let viewer = app.token("vera", "viewer");
    let admin = app.token("root", "admin");
    let (status, created) = app
        .call(
            Method::POST,
            "/api/v1/tasks",
            &alice,
            None,
            Some(json!({
                "task_type": "research_report",
                "title": format!("Refund for SSN {SSN}"),
                "description": format!("Customer card {CARD}, SSN {SSN}; check the refund."),
                "parameters": {"card": CARD, "ssn": SSN},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = serde_json::from_str::<Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task_uri = format!("/api/v1/tasks/{id}");

    // Wait (bounded) for the task to finish, reading as the admin.
    let mut admin_view = Value::Null;
    for _ in 0..300 {
        let (status, body) = app.get(&task_uri, &admin).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        admin_view = serde_json::from_str(&body).unwrap();
        if admin_view["status"] == "succeeded" || admin_view["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin_view["status"], "succeeded", "{admin_view}");
    assert_eq!(admin_view["classification"]["classification"], "restricted");

    // The admin (restricted clearance) sees everything as it was.
    assert_eq!(admin_view["redacted_for_clearance"], false);
    assert_eq!(admin_view["parameters"]["ssn"], SSN);
    assert!(admin_view["description"].as_str().unwrap().contains(CARD));
    assert!(leaks(&admin_view["result"].to_string()), "{admin_view}");
    let (_, admin_events) = app.get(&format!("{task_uri}/events"), &admin).await;
    assert!(leaks(&admin_events));
    let (_, admin_sse) = app
        .call(
            Method::GET,
            &format!("{task_uri}/events"),
            &admin,
            Some("text/event-stream"),
            None,
        )
        .await;
    assert!(leaks(&admin_sse));

    // The viewer (internal) and the submitter herself (confidential) never see a raw value.
    for (who, token) in [("viewer", &viewer), ("submitter", &alice)] {
        let (status, body) = app.get(&task_uri, token).await;
        assert_eq!(status, StatusCode::OK, "{who}: {body}");
        assert!(!leaks(&body), "{who} task view leaks: {body}");
        let view: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(view["redacted_for_clearance"], true, "{who}");
        assert_eq!(view["status"], "succeeded");
        assert_eq!(view["parameters"]["ssn"], "***-**-****", "{who}");
        assert!(
            view["description"]
                .as_str()
                .unwrap()
                .contains("**** **** **** 1111"),
            "{who}: {view}"
        );
        assert!(view["result"].is_object(), "structure kept: {view}");

        let (status, body) = app.get(&format!("{task_uri}/events"), token).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!leaks(&body), "{who} events leak: {body}");
        let events: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(events["redacted_for_clearance"], true);
        assert!(events["events"].as_array().unwrap().len() > 5);

        let (status, body) = app
            .call(
                Method::GET,
                &format!("{task_uri}/events"),
                token,
                Some("text/event-stream"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("event: task_succeeded"), "{body}");
        assert!(!leaks(&body), "{who} SSE leaks: {body}");

        let (status, body) = app.get("/api/v1/tasks", token).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!leaks(&body), "{who} listing leaks: {body}");
        assert!(body.contains(&id));
    }
    // Cancelling an ended task answers 409 without echoing anything; the lineage holds no
    // values for anyone.
    let (_, body) = app
        .call(
            Method::POST,
            &format!("{task_uri}/cancel"),
            &viewer,
            None,
            None,
        )
        .await;
    assert!(!leaks(&body), "{body}");
    let (_, body) = app.get(&format!("{task_uri}/lineage"), &viewer).await;
    assert!(!leaks(&body), "{body}");

    // Every redaction is audited (stage data_protection_out), naming fields and types only.
    let admin_principal = amas_types::Principal {
        sub: "root".to_owned(),
        roles: vec!["admin".to_owned()],
        tenant: amas_types::TenantId::default_tenant(),
        auth_method: "local_jwt".to_owned(),
        issuer: "amas-local".to_owned(),
    };
    let mut records = Vec::new();
    for _ in 0..200 {
        records = app
            .state
            .runtime
            .reader()
            .audit_records(
                &admin_principal,
                AuditQuery {
                    limit: 500,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.record.stage == "data_protection_out")
            .collect();
        let listed = records.iter().any(|r| r.record.action == "task_list");
        if records.len() >= 6 && listed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let actions: Vec<&str> = records.iter().map(|r| r.record.action.as_str()).collect();
    for action in [
        "task_read",
        "task_events",
        "task_events_stream",
        "task_list",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    for r in &records {
        assert_ne!(r.record.principal.sub, "root", "the admin was not redacted");
        let text = serde_json::to_string(&r.record).unwrap();
        assert!(!leaks(&text), "audit record leaks: {text}");
        assert_eq!(r.record.details["obligations"], json!(["redact"]));
    }
    let read = records
        .iter()
        .find(|r| r.record.action == "task_read" && r.record.principal.sub == "vera")
        .expect("the viewer's read is audited");
    assert_eq!(read.record.details["clearance"], "internal");
    assert!(read.record.details["findings"]["ssn"].as_u64().unwrap() >= 1);
}

/// A role mapped to an unknown level is refused at load, naming the key.
#[test]
fn unknown_clearance_level_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.yaml"),
        "clearance:\n  roles:\n    viewer: secret\n",
    )
    .unwrap();
    let err = amas_config::load(&LoadOptions {
        config_dir: Some(dir.path().to_path_buf()),
        ..LoadOptions::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("clearance.roles.viewer"), "{err}");
    assert!(err.contains("`secret` is not one of"), "{err}");
}
