//! `POST /api/v1/tasks/{id}/replay` through the router (no socket), on a governed runtime
//! (embedded Rego bundle and tools, scripted model): an auditor gets the report of a finished
//! task (identical), a viewer is refused, an auditor of another tenant does not see the task,
//! and a body with unknown fields is a 400.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use amas_api::router;
use amas_governance::LocalIssuer;

struct App {
    router: Router,
    issuer: Arc<LocalIssuer>,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let mut config = common::scripted_config();
    config
        .provider_trust
        .insert("scripted".into(), vec!["public".into(), "internal".into()]);
    let parts = common::parts(config, common::RESEARCH_SCRIPT).await;
    let runtime = parts.runtime();
    runtime.scheduler().start().await;
    App {
        router: router(parts.state(runtime)),
        issuer: Arc::clone(&parts.issuer),
        _dir: parts.dir,
    }
}

impl App {
    fn token(&self, sub: &str, role: &str, tenant: &str) -> String {
        self.issuer
            .mint(
                sub,
                &[role.to_owned()],
                Some(tenant),
                Duration::from_secs(600),
            )
            .unwrap()
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, bytes) =
            common::call(&self.router, method, uri, Some(token), &[], body).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Submits a research report as a submitter of `tenant` and waits until it ends.
    async fn finished_task(&self, tenant: &str) -> String {
        let alice = self.token("alice", "submitter", tenant);
        let (status, created) = self
            .call(
                Method::POST,
                "/api/v1/tasks",
                &alice,
                Some(json!({"task_type": "research_report", "title": "Rust", "description": "Memory safety", "parameters": {"subject_a": "Rust", "subject_b": "Go"}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        for _ in 0..400 {
            let (_, task) = self
                .call(Method::GET, &format!("/api/v1/tasks/{id}"), &alice, None)
                .await;
            if task["status"] == "succeeded" {
                return id;
            }
            assert_ne!(task["status"], "failed", "{task}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("task {id} did not finish");
    }
}

#[tokio::test]
async fn auditors_replay_their_tenants_tasks() {
    let app = app().await;
    let id = app.finished_task("acme").await;
    let uri = format!("/api/v1/tasks/{id}/replay");

    let auditor = app.token("audrey", "auditor", "acme");
    let (status, report) = app.call(Method::POST, &uri, &auditor, None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["identical"], true, "{report}");
    assert_eq!(report["task_id"], id.as_str());
    assert_eq!(report["task_status"], "succeeded");
    assert!(report["decisions"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(report["differences"], json!([]));
    let (status, again) = app
        .call(Method::POST, &uri, &auditor, Some(json!({})))
        .await;
    assert_eq!(
        (status, &again["identical"]),
        (StatusCode::OK, &json!(true))
    );

    let viewer = app.token("victor", "viewer", "acme");
    let (status, body) = app.call(Method::POST, &uri, &viewer, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "AMAS-GOV-0001");

    let foreign = app.token("gina", "auditor", "globex");
    let (status, body) = app.call(Method::POST, &uri, &foreign, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "AMAS-API-0002");

    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/tasks/not-a-uuid/replay",
            &auditor,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            &uri,
            &auditor,
            Some(json!({"policy_dir": "/etc"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "AMAS-API-0001");
}

#[test]
fn the_replay_route_is_documented() {
    let doc: Value = serde_json::from_str(amas_api::OPENAPI).unwrap();
    let replay = &doc["paths"]["/api/v1/tasks/{id}/replay"]["post"];
    assert!(replay["responses"]["200"].is_object(), "{replay}");
    assert!(doc["components"]["schemas"]["ReplayReport"].is_object());
}
