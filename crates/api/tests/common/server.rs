//! A real AMAS API server on 127.0.0.1:0 (`amas_api::serve`, so peer addresses, header limits,
//! connection caps and timeouts are the production ones) around the parts of `common`, with
//! the local issuer to mint tokens and the journal and audit log to look behind the API.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use amas_api::AppState;
use amas_config::{AmasConfig, RateLimit};
use amas_governance::LocalIssuer;
use amas_store::audit::AuditQuery;
use amas_store::{AuditLog, TaskJournal};
use amas_types::{JournalEvent, TaskId};

/// A running server: base URL, the local issuer to mint tokens, the journal and audit log to
/// look behind the API.
pub struct Server {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub issuer: Arc<LocalIssuer>,
    pub journal: Arc<dyn TaskJournal>,
    pub audit_log: Arc<dyn AuditLog>,
    pub state: AppState,
    pub http: reqwest::Client,
    pub stop: Option<oneshot::Sender<()>>,
    pub _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Generous limits, so only the tests about limits meet them.
pub fn relaxed(config: &mut AmasConfig) {
    let wide = RateLimit {
        per_minute: 100_000,
        burst: 10_000,
    };
    let limits = &mut config.server.rate_limits;
    limits.unauthenticated = wide;
    limits.read = wide;
    limits.write = wide;
    limits.stream = wide;
    limits.admin = wide;
}

/// A server on 127.0.0.1, its configuration changed by `tweak`.
pub async fn start(tweak: impl FnOnce(&mut AmasConfig)) -> Server {
    start_on("127.0.0.1:0", tweak).await
}

/// A server listening on `listen` (`[::1]:0` for IPv6 clients).
pub async fn start_on(listen: &str, tweak: impl FnOnce(&mut AmasConfig)) -> Server {
    let mut config = super::scripted_config();
    config.server.body_limit_bytes = 4096;
    relaxed(&mut config);
    tweak(&mut config);
    let parts = super::parts(config, super::RESEARCH_SCRIPT).await;
    let audit_log = parts.audit_log();
    // Not started: submitted tasks stay queued, which is all these tests need.
    let runtime = parts.runtime();
    let state = parts.state(runtime);
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = state.clone();
    #[expect(
        clippy::disallowed_methods,
        reason = "test scaffolding: a server or a race that ends with the test"
    )]
    tokio::spawn(async move {
        amas_api::serve(listener, served, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        addr,
        issuer: parts.issuer,
        journal: parts.journal,
        audit_log,
        state,
        http: reqwest::Client::new(),
        stop: Some(stop),
        _dir: parts.dir,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Server {
    pub fn token(&self, sub: &str, roles: &[&str], tenant: &str) -> String {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        self.issuer
            .mint(sub, &roles, Some(tenant), Duration::from_secs(600))
            .unwrap()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let response = req.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(token),
        )
        .await
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    /// Submits a task as the holder of `token`; returns its id.
    pub async fn submit(&self, token: &str) -> String {
        let r = self
            .post(
                token,
                "/api/v1/tasks",
                &json!({"task_type": "research_report", "title": "t", "description": "d"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// A pending approval on `task` requested by `requested_by`, written to the journal as the
    /// runtime would.
    pub async fn pending_approval(&self, task: &str, requested_by: &str) -> String {
        self.pending_approval_with(task, requested_by, json!({"url": "https://example.com"}))
            .await
    }

    /// As [`Server::pending_approval`], for a call with `arguments`.
    pub async fn pending_approval_with(
        &self,
        task: &str,
        requested_by: &str,
        arguments: Value,
    ) -> String {
        let task: TaskId = task.parse().unwrap();
        let last = self
            .journal
            .read(task, 0)
            .await
            .unwrap()
            .last()
            .unwrap()
            .seq;
        let id = format!("apr-{}", uuid::Uuid::now_v7());
        let event = JournalEvent::ApprovalRequested {
            approval_id: id.as_str().into(),
            step: "research".into(),
            call_id: "call-1".into(),
            agent: "research".into(),
            tool: "http_fetch".to_owned(),
            risk: "high".to_owned(),
            arguments,
            reasons: vec!["test".to_owned()],
            required_approvals: 1,
            requested_by: requested_by.to_owned(),
            requested_by_issuer: "amas-local".to_owned(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        };
        self.journal.append(task, last, &[event]).await.unwrap();
        id
    }

    /// Audit records with `stage`, after everything queued is written.
    pub async fn audited(&self, stage: &str) -> Vec<amas_store::audit::StoredAuditRecord> {
        self.state.runtime.access().flush_audit().await.unwrap();
        let all = self
            .audit_log
            .query(&AuditQuery {
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        all.into_iter()
            .filter(|r| r.record.stage == stage)
            .collect()
    }
}

pub fn assert_code(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
}

/// The answer for an id that does not exist, to compare other tenants' ids with: identical
/// status, code and message, so nothing tells them apart.
pub fn assert_not_found(reply: &Reply) {
    assert_code(reply, StatusCode::NOT_FOUND, "AMAS-API-0002");
    assert_eq!(reply.body["error"]["message"], "no such resource");
}
