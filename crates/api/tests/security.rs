//! The API under attack, over a real loopback HTTP server (`amas_api::serve`, so peer addresses,
//! header limits and timeouts are the production ones): tenants never see or touch each other's
//! tasks, approvals or event streams, guessed ids answer like missing ones, roles come from
//! policy only, rate limits answer 429 with their headers and are audited, and oversized,
//! deeply nested or slow requests are refused with stable codes.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use amas_config::RateLimit;
use amas_types::TaskId;

use common::server::{assert_code, assert_not_found, start};

#[tokio::test]
async fn cross_tenant_task_read_is_404_like_an_unknown_id() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let mallory = s.token("mallory", &["admin"], "globex");
    let id = s.submit(&alice).await;
    assert_eq!(
        s.get(&alice, &format!("/api/v1/tasks/{id}")).await.status,
        StatusCode::OK
    );
    // Even an admin of another tenant sees nothing, and cannot tell it from a missing task.
    let theirs = s.get(&mallory, &format!("/api/v1/tasks/{id}")).await;
    assert_not_found(&theirs);
    let missing = s
        .get(&mallory, &format!("/api/v1/tasks/{}", TaskId::new()))
        .await;
    assert_not_found(&missing);
    assert_eq!(
        theirs.body["error"]["message"],
        missing.body["error"]["message"]
    );
}

#[tokio::test]
async fn cross_tenant_list_shows_nothing() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let mallory = s.token("mallory", &["admin"], "globex");
    let id = s.submit(&alice).await;
    let mine = s.get(&alice, "/api/v1/tasks").await;
    assert_eq!(mine.body["tasks"].as_array().unwrap().len(), 1);
    for query in [
        "",
        "?status=queued",
        "?task_type=research_report",
        "?limit=500",
    ] {
        let r = s.get(&mallory, &format!("/api/v1/tasks{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["tasks"], json!([]), "{query}: {}", r.body);
    }
    // A cursor naming another tenant's task pages nothing of theirs either.
    let r = s.get(&mallory, &format!("/api/v1/tasks?cursor={id}")).await;
    assert_eq!(r.body["tasks"], json!([]), "{}", r.body);
}

#[tokio::test]
async fn cross_tenant_cancel_is_404_and_changes_nothing() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let mallory = s.token("mallory", &["admin"], "globex");
    let id = s.submit(&alice).await;
    let r = s
        .post(
            &mallory,
            &format!("/api/v1/tasks/{id}/cancel"),
            &json!({"reason": "mine now"}),
        )
        .await;
    assert_not_found(&r);
    let task = s.get(&alice, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(task.body["status"], "queued", "{}", task.body);
    // The attempt is a security event in the audit log, filed under the caller's tenant, and
    // names the object but not the tenant that owns it.
    let records = s.audited("tenant_isolation").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0].record;
    assert_eq!(record.principal.sub, "mallory");
    assert_eq!(record.tenant.0, "globex");
    assert_eq!(record.action, "task.cancel");
    assert_eq!(
        record.resource.as_deref(),
        Some(format!("task:{id}").as_str())
    );
    assert_eq!(record.decision, amas_store::audit::AuditDecision::Deny);
    assert!(!serde_json::to_string(record).unwrap().contains("acme"));
}

#[tokio::test]
async fn cross_tenant_event_stream_is_404_for_json_and_sse() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let mallory = s.token("mallory", &["admin"], "globex");
    let id = s.submit(&alice).await;
    let path = format!("{}/api/v1/tasks/{id}/events", s.base);
    let json_events = s.send(s.http.get(&path).bearer_auth(&mallory)).await;
    assert_not_found(&json_events);
    let sse = s
        .send(
            s.http
                .get(&path)
                .bearer_auth(&mallory)
                .header("accept", "text/event-stream"),
        )
        .await;
    assert_not_found(&sse);
    // The owner's tenant does get the stream.
    let own = s.send(s.http.get(&path).bearer_auth(&alice)).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
}

#[tokio::test]
async fn cross_tenant_approval_read_list_and_decide_are_404() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let carol = s.token("carol", &["approver"], "acme");
    let mallory = s.token("mallory", &["approver", "admin"], "globex");
    let task = s.submit(&alice).await;
    let approval = s.pending_approval(&task, "alice").await;
    // Its own tenant's approver sees it.
    let seen = s
        .get(&carol, &format!("/api/v1/approvals/{approval}"))
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let listed = s.get(&carol, "/api/v1/approvals").await;
    assert_eq!(listed.body["approvals"].as_array().unwrap().len(), 1);
    // Another tenant's approver: not in the list, not readable, not decidable.
    let listed = s.get(&mallory, "/api/v1/approvals?status=all").await;
    assert_eq!(listed.body["approvals"], json!([]), "{}", listed.body);
    assert_not_found(
        &s.get(&mallory, &format!("/api/v1/approvals/{approval}"))
            .await,
    );
    for verdict in ["approve", "deny"] {
        let r = s
            .post(
                &mallory,
                &format!("/api/v1/approvals/{approval}/{verdict}"),
                &json!({"reason": "looks fine"}),
            )
            .await;
        assert_not_found(&r);
    }
    let still = s
        .get(&carol, &format!("/api/v1/approvals/{approval}"))
        .await;
    assert_eq!(still.body["status"], "pending", "{}", still.body);
    assert_eq!(still.body["votes"], json!([]), "{}", still.body);
    // One audited attempt per request that named the approval (the list named none).
    let attempts: Vec<_> = s
        .audited("tenant_isolation")
        .await
        .into_iter()
        .map(|r| (r.record.action, r.record.resource))
        .collect();
    let object = Some(format!("approval:{approval}"));
    assert_eq!(
        attempts,
        vec![
            ("approval.list".to_owned(), object.clone()),
            ("approval.decide".to_owned(), object.clone()),
            ("approval.decide".to_owned(), object),
        ]
    );
}

#[tokio::test]
async fn guessed_ids_answer_404_without_telling_anything() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let mallory = s.token("mallory", &["submitter"], "globex");
    let real = s.submit(&alice).await;
    // Neighbours of a real UUIDv7 (same millisecond prefix), random ids, malformed ids, path
    // tricks: all the same 404.
    let mut guesses = vec![
        TaskId::new().to_string(),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "not-a-uuid".to_owned(),
        "1".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        format!("{real}x"),
    ];
    let prefix = &real[..real.len() - 1];
    for last in ['0', '1', 'a', 'f'] {
        guesses.push(format!("{prefix}{last}"));
    }
    for id in &guesses {
        for path in [
            format!("/api/v1/tasks/{id}"),
            format!("/api/v1/tasks/{id}/events"),
            format!("/api/v1/approvals/{id}"),
        ] {
            assert_not_found(&s.get(&mallory, &path).await);
        }
        let r = s
            .post(&mallory, &format!("/api/v1/tasks/{id}/cancel"), &json!({}))
            .await;
        assert_not_found(&r);
    }
    assert_not_found(&s.get(&mallory, &format!("/api/v1/tasks/{real}")).await);
}

/// A policy refusal on one's own tenant's object is a 403 with the policy's code; viewers
/// read but do not write, submitters cancel only their own tasks, admins any in their tenant.
#[tokio::test]
async fn roles_are_enforced_by_api_policy() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let bob = s.token("bob", &["submitter"], "acme");
    let vera = s.token("vera", &["viewer"], "acme");
    let root = s.token("root", &["admin"], "acme");
    let nobody = s.token("nobody", &[], "acme");
    let id = s.submit(&alice).await;
    let task = format!("/api/v1/tasks/{id}");
    assert_eq!(s.get(&vera, &task).await.status, StatusCode::OK);
    assert_eq!(s.get(&vera, "/api/v1/tasks").await.status, StatusCode::OK);
    let body = json!({"task_type": "research_report", "title": "t", "description": "d"});
    assert_code(
        &s.post(&vera, "/api/v1/tasks", &body).await,
        StatusCode::FORBIDDEN,
        "AMAS-GOV-0001",
    );
    for who in [&vera, &bob] {
        assert_code(
            &s.post(who, &format!("{task}/cancel"), &json!({})).await,
            StatusCode::FORBIDDEN,
            "AMAS-GOV-0001",
        );
    }
    for path in ["/api/v1/audit", "/api/v1/approvals"] {
        assert_code(
            &s.get(&alice, path).await,
            StatusCode::FORBIDDEN,
            "AMAS-GOV-0001",
        );
    }
    // Without roles: nothing but `me`.
    assert_code(
        &s.get(&nobody, &task).await,
        StatusCode::FORBIDDEN,
        "AMAS-GOV-0001",
    );
    assert_code(
        &s.get(&nobody, "/api/v1/agents").await,
        StatusCode::FORBIDDEN,
        "AMAS-GOV-0001",
    );
    let me = s.get(&nobody, "/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    // The owner may cancel; so may an admin of the tenant.
    let cancelled = s.post(&alice, &format!("{task}/cancel"), &json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let other = s.submit(&bob).await;
    let r = s
        .post(&root, &format!("/api/v1/tasks/{other}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Every refusal above is audited with the operation and the policy's reasons; allowed
    // requests are not (they are in the access metrics, not the security log).
    let refusals = s.audited("api_policy").await;
    let seen: Vec<(&str, &str)> = refusals
        .iter()
        .map(|r| (r.record.principal.sub.as_str(), r.record.action.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("vera", "task.submit"),
            ("vera", "task.cancel"),
            ("bob", "task.cancel"),
            ("alice", "audit.read"),
            ("alice", "approval.list"),
            ("nobody", "task.read"),
            ("nobody", "config.read"),
        ],
        "{refusals:?}"
    );
    assert!(refusals.iter().all(|r| !r.record.reasons.is_empty()
        && r.record.decision == amas_store::audit::AuditDecision::Deny));
}

/// Roles come from the roles claim only: a token that carries `admin` in every other place an
/// identity provider might put it still gets a viewer's rights at the API.
#[tokio::test]
async fn role_escalation_through_crafted_claims_grants_nothing_at_the_api() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let id = s.submit(&alice).await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": s.state.config.auth.issuer, "aud": s.state.config.auth.audience,
        "sub": "vera", "tenant": "acme", "iat": now, "exp": now + 600,
        "roles": ["viewer"],
        "role": "admin", "groups": ["admin"], "scope": "admin",
        "realm_access": {"roles": ["admin"]},
        "resource_access": {"amas": {"roles": ["admin"]}},
        "https://amas/roles": ["admin"],
    });
    let der = std::fs::read(s._dir.path().join("keys/jwt-ed25519.pk8")).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(s.issuer.kid().to_owned());
    let crafted = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der)).unwrap();
    let me = s.get(&crafted, "/api/v1/me").await;
    assert_eq!(me.body["roles"], json!(["viewer"]), "{}", me.body);
    assert_code(
        &s.post(&crafted, &format!("/api/v1/tasks/{id}/cancel"), &json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "AMAS-GOV-0001",
    );
    assert_code(
        &s.get(&crafted, "/api/v1/audit").await,
        StatusCode::FORBIDDEN,
        "AMAS-GOV-0001",
    );
    // A tenant claim of another shape does not move the principal either.
    let mut other = claims.clone();
    other["tenant"] = json!(["globex", "acme"]);
    other["roles"] = json!("admin");
    let crafted = jsonwebtoken::encode(&header, &other, &EncodingKey::from_ed_der(&der)).unwrap();
    let r = s.get(&crafted, &format!("/api/v1/tasks/{id}")).await;
    assert!(
        r.status == StatusCode::UNAUTHORIZED
            || r.status == StatusCode::FORBIDDEN
            || r.status == StatusCode::NOT_FOUND,
        "{} {}",
        r.status,
        r.body
    );
}

#[tokio::test]
async fn rate_limit_exceeded_answers_429_with_headers_and_is_audited() {
    let s = start(|c| {
        c.server.rate_limits.read = RateLimit {
            per_minute: 60,
            burst: 3,
        };
    })
    .await;
    let alice = s.token("alice", &["viewer"], "acme");
    for left in [2, 1, 0] {
        let r = s.get(&alice, "/api/v1/tasks").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.headers["ratelimit-limit"], "3");
        assert_eq!(r.headers["ratelimit-remaining"], left.to_string().as_str());
    }
    let r = s.get(&alice, "/api/v1/tasks").await;
    assert_code(&r, StatusCode::TOO_MANY_REQUESTS, "AMAS-API-0007");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(r.headers["ratelimit-limit"], "3");
    assert_eq!(r.headers["ratelimit-remaining"], "0");
    let reset: u64 = r.headers["ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&reset), "{reset}");
    assert_eq!(r.headers["ratelimit-policy"], "3;w=3");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    // Another principal and another class are not affected.
    let bob = s.token("bob", &["viewer"], "acme");
    assert_eq!(s.get(&bob, "/api/v1/tasks").await.status, StatusCode::OK);
    let body = json!({"task_type": "research_report", "title": "t", "description": "d"});
    let alice_w = s.token("alice", &["submitter"], "acme");
    assert_eq!(
        s.post(&alice_w, "/api/v1/tasks", &body).await.status,
        StatusCode::ACCEPTED
    );
    // More refusals of the same flood: counted each time, audited once.
    for _ in 0..5 {
        assert_eq!(
            s.get(&alice, "/api/v1/tasks").await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let metrics = s.state.metrics.render();
    assert!(
        metrics.contains("amas_rate_limited_requests_total{class=\"read\"} 6"),
        "{metrics}"
    );
    let records = s.audited("rate_limit").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0].record;
    assert_eq!(record.principal.sub, "alice");
    assert!(record.reasons[0].contains("AMAS-API-0007"), "{record:?}");
    // The bucket refills: one more request after Retry-After.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(s.get(&alice, "/api/v1/tasks").await.status, StatusCode::OK);
}

/// Requests without a valid token are charged to the client's address, with a stricter
/// limit: public routes and failed authentications alike, so guessing tokens is slow.
#[tokio::test]
async fn unauthenticated_requests_are_limited_per_address() {
    let s = start(|c| {
        c.server.rate_limits.unauthenticated = RateLimit {
            per_minute: 60,
            burst: 4,
        };
    })
    .await;
    let alice = s.token("alice", &["viewer"], "acme");
    // Verified once (charged to the address and given back, as it is valid): from then on
    // it is recognised without a signature check and never charged to the address.
    assert_eq!(s.get(&alice, "/api/v1/tasks").await.status, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(
            s.send(s.http.get(format!("{}/healthz", s.base)))
                .await
                .status,
            StatusCode::OK
        );
    }
    for _ in 0..2 {
        let r = s.get("guessed.token.value", "/api/v1/tasks").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    let r = s.get("guessed.token.value", "/api/v1/tasks").await;
    assert_code(&r, StatusCode::TOO_MANY_REQUESTS, "AMAS-API-0007");
    assert!(r.headers.contains_key("retry-after"));
    let r = s.send(s.http.get(format!("{}/openapi.json", s.base))).await;
    assert_code(&r, StatusCode::TOO_MANY_REQUESTS, "AMAS-API-0007");
    // A token verified before is charged to its principal, not to the address.
    assert_eq!(s.get(&alice, "/api/v1/tasks").await.status, StatusCode::OK);
    let records = s.audited("rate_limit").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].record.principal.sub, "anonymous");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let huge = "x".repeat(8192);
    let body = json!({"task_type": "research_report", "title": "t", "description": huge});
    let r = s.post(&alice, "/api/v1/tasks", &body).await;
    assert_code(&r, StatusCode::PAYLOAD_TOO_LARGE, "AMAS-API-0004");
    let r = s
        .post(
            &alice,
            &format!("/api/v1/tasks/{}/cancel", TaskId::new()),
            &json!({"reason": huge}),
        )
        .await;
    assert_code(&r, StatusCode::PAYLOAD_TOO_LARGE, "AMAS-API-0004");
    // Nothing was admitted.
    let list = s.get(&alice, "/api/v1/tasks").await;
    assert_eq!(list.body["tasks"], json!([]));
}

#[tokio::test]
async fn deeply_nested_body_is_refused_before_parsing() {
    let s = start(|c| c.server.body_limit_bytes = 1 << 20).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let url = format!("{}/api/v1/tasks", s.base);
    // 33 levels (the default limit is 32), and 200 000 levels, which would take a recursive
    // parser deep into its stack.
    for depth in [33, 200_000] {
        let nested = format!(
            "{{\"task_type\":\"research_report\",\"title\":\"t\",\"description\":\"d\",\"parameters\":{{\"x\":{}{}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let r = s
            .send(
                s.http
                    .post(&url)
                    .bearer_auth(&alice)
                    .header("content-type", "application/json")
                    .body(nested),
            )
            .await;
        assert_code(&r, StatusCode::BAD_REQUEST, "AMAS-API-0008");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("json_max_depth"),
            "{}",
            r.body
        );
    }
    // Brackets inside strings are text, not nesting.
    let body =
        json!({"task_type": "research_report", "title": "[[[[", "description": "{".repeat(100)});
    assert_eq!(
        s.post(&alice, "/api/v1/tasks", &body).await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn oversized_request_head_is_431() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["viewer"], "acme");
    let r = s
        .send(
            s.http
                .get(format!("{}/api/v1/tasks", s.base))
                .bearer_auth(&alice)
                .header("x-padding", "p".repeat(20_000)),
        )
        .await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut many = s
        .http
        .get(format!("{}/api/v1/tasks", s.base))
        .bearer_auth(&alice);
    for i in 0..150 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let r = s.send(many).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

/// A client that trickles its request head is disconnected after `header_read_timeout`, so
/// slow clients cannot hold connections.
#[tokio::test]
async fn slow_client_is_disconnected() {
    let s = start(|c| c.server.header_read_timeout = Duration::from_millis(300)).await;
    let addr = s.addr;
    let closed = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        // The server closes (EOF, possibly after a 408) instead of waiting for the rest.
        let _ = conn.read_to_end(&mut buf);
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(closed < Duration::from_secs(3), "{closed:?}");
}

#[tokio::test]
async fn security_headers_on_every_response_and_cors_off_by_default() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["viewer"], "acme");
    let replies = [
        s.get(&alice, "/api/v1/tasks").await,
        s.get(&alice, "/api/v1/nothing-here").await,
        s.get("bad", "/api/v1/tasks").await,
        s.send(s.http.get(format!("{}/healthz", s.base))).await,
    ];
    for r in &replies {
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        assert_eq!(r.headers["x-frame-options"], "DENY");
        assert_eq!(r.headers["referrer-policy"], "no-referrer");
        assert!(
            r.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert_eq!(r.headers["cache-control"], "no-store");
        assert!(r.headers.contains_key("x-request-id"));
        // Plain HTTP: no HSTS.
        assert!(!r.headers.contains_key("strict-transport-security"));
        assert!(!r.headers.contains_key("access-control-allow-origin"));
    }
    let preflight = s
        .send(
            s.http
                .request(reqwest::Method::OPTIONS, format!("{}/api/v1/tasks", s.base))
                .header("origin", "https://evil.example")
                .header("access-control-request-method", "POST"),
        )
        .await;
    assert!(
        !preflight
            .headers
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn cors_allows_only_listed_origins() {
    let s = start(|c| {
        c.server.cors.allowed_origins = vec!["https://ui.example.com".to_owned()];
    })
    .await;
    let preflight = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, format!("{}/api/v1/tasks", s.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
    };
    let ok = s.send(preflight("https://ui.example.com")).await;
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "https://ui.example.com"
    );
    let refused = s.send(preflight("https://evil.example")).await;
    assert!(!refused.headers.contains_key("access-control-allow-origin"));
}

/// A policy error refuses (fail closed), never allows: a bundle whose API decision is
/// undefined for every real operation answers every API question with no.
#[tokio::test]
async fn api_policy_error_fails_closed() {
    let s = start(|_| {}).await;
    let mut parts = common::parts(common::scripted_config(), common::RESEARCH_SCRIPT).await;
    let bundle = tempfile::tempdir().unwrap();
    for file in amas_policy::PolicyBundle::embedded().files() {
        let source = if file.name == "api.rego" {
            "package amas.api\n\nimport rego.v1\n\n\
             decision := {\"allow\": true, \"require_approval\": false, \"reasons\": []} \
             if input.operation == \"no.such.operation\"\n"
                .to_owned()
        } else {
            file.source.clone()
        };
        std::fs::write(bundle.path().join(&file.name), source).unwrap();
    }
    parts.policy = Arc::new(amas_policy::RegoPolicyEngine::from_dir(bundle.path()).unwrap());
    let runtime = parts.runtime();
    let alice = s.token("alice", &["admin"], "acme");
    let principal = s.state.verifier.verify(&alice).await.unwrap();
    // The embedded bundle allows an admin to read a task: the refusal below is the error's.
    s.state
        .runtime
        .access()
        .authorize_api(&principal, "task.read", None)
        .await
        .unwrap();
    let refused = runtime
        .access()
        .authorize_api(&principal, "task.read", None)
        .await;
    assert!(
        matches!(refused, Err(amas_runtime::RuntimeError::Forbidden { .. })),
        "{refused:?}"
    );
}

/// With `server.tls`, AMAS terminates TLS itself: HTTPS on loopback works (against the test
/// certificate), responses carry HSTS, and plain HTTP on the same port gets no answer.
#[tokio::test]
async fn tls_terminates_https_on_loopback_with_hsts() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let s = start(|c| {
        c.server.tls = Some(amas_config::TlsConfig {
            cert_file: fixtures.join("cert.pem"),
            key_file: fixtures.join("key.pem"),
        });
    })
    .await;
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(fixtures.join("ca.pem")).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .https_only(true)
        .build()
        .unwrap();
    let port = s.addr.port();
    let alice = s.token("alice", &["viewer"], "acme");
    let r = s
        .send(
            https
                .get(format!("https://127.0.0.1:{port}/api/v1/me"))
                .bearer_auth(&alice),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["sub"], "alice");
    assert_eq!(
        r.headers["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    // A client that does not trust the certificate refuses the connection.
    let untrusting = reqwest::Client::new();
    assert!(
        untrusting
            .get(format!("https://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP to the TLS port is not served.
    assert!(
        s.http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_err()
    );
}

/// An approver sees the arguments of a call waiting for approval in the form their clearance
/// allows (an SSN is restricted; approvers are cleared for confidential): masked, in the
/// listing, the approval itself and the answer to their vote; an admin sees them as they are.
/// Each redacting answer is audited.
#[tokio::test]
async fn approval_arguments_above_clearance_are_masked_for_approvers() {
    let s = start(|_| {}).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let carol = s.token("carol", &["approver"], "acme");
    let root = s.token("root", &["admin"], "acme");
    let task = s.submit(&alice).await;
    let ssn = "123-45-6789";
    let approval = s
        .pending_approval_with(&task, "alice", json!({"query": format!("SSN {ssn}")}))
        .await;
    let path = format!("/api/v1/approvals/{approval}");
    let listed = s.get(&carol, "/api/v1/approvals").await;
    let read = s.get(&carol, &path).await;
    for body in [&listed.body, &read.body] {
        let text = body.to_string();
        assert!(!text.contains(ssn), "{text}");
        assert!(text.contains("SSN ***-**-****"), "{text}");
    }
    let admin = s.get(&root, &path).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.body);
    assert_eq!(admin.body["arguments"]["query"], format!("SSN {ssn}"));
    let audited = s.audited("data_protection_out").await;
    let actions: Vec<&str> = audited.iter().map(|r| r.record.action.as_str()).collect();
    assert_eq!(actions, ["approval_list", "approval_read"], "{audited:?}");
    assert!(audited.iter().all(|r| r.record.principal.sub == "carol"
        && !serde_json::to_string(&r.record).unwrap().contains(ssn)));
}
