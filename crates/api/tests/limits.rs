//! What one client may hold of the server (issue 13, review M4/M5), tested with real TCP
//! clients against the real server (`amas_api::serve` on loopback): connections per client
//! address, refused at accept; failed authentications charged to the address before any
//! signature is checked; live event streams per tenant; and a client that stops reading a
//! response is disconnected after `write_timeout`. Each test shows the allowed path first.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use amas_config::RateLimit;

use common::server::{Server, assert_code, start, start_on};

/// A TCP connection to `server` from the local address `from` (any loopback address works
/// as a distinct client on Linux).
async fn connect_from(server: SocketAddr, from: &str) -> TcpStream {
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    let socket = if local.is_ipv4() {
        TcpSocket::new_v4().unwrap()
    } else {
        TcpSocket::new_v6().unwrap()
    };
    socket.bind(local).unwrap();
    socket.connect(server).await.unwrap()
}

/// One `GET path` on a kept-alive connection: the status line of the answer (its body is read
/// by its `content-length`).
async fn get_on(conn: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: amas\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0_u8; length];
    conn.read_exact(&mut body).await.unwrap();
    head.lines().next().unwrap_or_default().to_owned()
}

/// Everything the server sends until it closes (a reset after the answer counts as closed);
/// fails the test if the server has not closed within a minute.
async fn read_until_closed(conn: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut all)).await;
    assert!(read.is_ok(), "the server did not close the connection");
    String::from_utf8_lossy(&all).into_owned()
}

fn metric(s: &Server, line_start: &str) -> String {
    s.state
        .metrics
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .unwrap_or_default()
        .to_owned()
}

/// One client address gets `max_connections_per_ip` connections, each served; the next is
/// answered 429 AMAS-API-0009 before it sends anything, and closed. Another address is not
/// affected, and a closed connection frees its slot.
#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused_at_accept() {
    let s = start(|c| {
        c.server.max_connections_per_ip = 3;
        c.server.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = connect_from(s.addr, "127.0.0.1").await;
        assert_eq!(get_on(&mut conn, "/healthz").await, "HTTP/1.1 200 OK");
        held.push(conn);
    }
    let mut fourth = connect_from(s.addr, "127.0.0.1").await;
    let answer = read_until_closed(&mut fourth).await;
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    assert!(answer.contains("AMAS-API-0009"), "{answer}");
    assert!(answer.contains("max_connections_per_ip"), "{answer}");
    assert_eq!(
        metric(
            &s,
            "amas_rate_limited_requests_total{class=\"connections\"}"
        ),
        "amas_rate_limited_requests_total{class=\"connections\"} 1"
    );

    let mut other = connect_from(s.addr, "127.0.0.2").await;
    assert_eq!(get_on(&mut other, "/healthz").await, "HTTP/1.1 200 OK");
    // The held connections are still served.
    assert_eq!(get_on(&mut held[0], "/healthz").await, "HTTP/1.1 200 OK");

    drop(held.pop());
    // The server notices the close on its own schedule: retry until the slot is free.
    let mut freed = false;
    for _ in 0..100 {
        let mut conn = connect_from(s.addr, "127.0.0.1").await;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: amas\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        if read_until_closed(&mut conn)
            .await
            .starts_with("HTTP/1.1 200")
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "a closed connection frees its slot");
}

/// IPv6 clients are capped too (counted by their /64; the /64 grouping itself is unit-tested
/// in `clients.rs` and `ratelimit.rs`, as this machine has one IPv6 address).
#[tokio::test]
async fn ipv6_clients_are_capped_per_64() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let s = start_on("[::1]:0", |c| c.server.max_connections_per_ip = 2).await;
    let mut a = connect_from(s.addr, "[::1]").await;
    let mut b = connect_from(s.addr, "[::1]").await;
    assert_eq!(get_on(&mut a, "/healthz").await, "HTTP/1.1 200 OK");
    assert_eq!(get_on(&mut b, "/healthz").await, "HTTP/1.1 200 OK");
    let mut c = connect_from(s.addr, "[::1]").await;
    let answer = read_until_closed(&mut c).await;
    assert!(answer.contains("AMAS-API-0009"), "{answer}");
}

/// A token AMAS has not verified before costs its address one unauthenticated request
/// before its signature is checked, and gets it back if it verifies: valid tokens never
/// drain the bucket, forged ones do, and once the bucket is empty a forged token is refused
/// with 429 without its signature being checked (the failure counter stops). A token
/// verified earlier is recognised without a signature check and still passes; a valid token
/// never seen before waits for the bucket like any other.
#[tokio::test]
async fn failed_authentications_are_charged_before_the_signature_is_checked() {
    let s = start(|c| {
        c.server.rate_limits.unauthenticated = RateLimit {
            per_minute: 1,
            burst: 3,
        };
    })
    .await;
    for n in 0..5 {
        let token = s.token(&format!("user-{n}"), &["viewer"], "acme");
        let r = s.get(&token, "/api/v1/tasks").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let alice = s.token("alice", &["viewer"], "acme");
    assert_eq!(s.get(&alice, "/api/v1/tasks").await.status, StatusCode::OK);

    // A forgery: alice's token with another subject; well formed, a real kid, a bad signature.
    let parts: Vec<&str> = alice.split('.').collect();
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        json!({"iss": "amas-local", "aud": "amas", "sub": "admin", "roles": ["admin"],
               "tenant": "acme", "exp": 4_000_000_000_u64, "iat": 1})
        .to_string(),
    );
    let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
    for _ in 0..3 {
        let r = s.get(&forged, "/api/v1/tasks").await;
        assert_code(&r, StatusCode::UNAUTHORIZED, "AMAS-AUTH-0006");
    }
    let checked = "amas_auth_failures_total{reason=\"bad_signature\"}";
    assert_eq!(metric(&s, checked), format!("{checked} 3"));

    for token in [forged.as_str(), "garbage", "a.b.c"] {
        let r = s.get(token, "/api/v1/tasks").await;
        assert_code(&r, StatusCode::TOO_MANY_REQUESTS, "AMAS-API-0007");
    }
    assert_eq!(
        metric(&s, checked),
        format!("{checked} 3"),
        "no signature checked"
    );
    assert_eq!(s.audited("authentication").await.len(), 3);

    assert_eq!(s.get(&alice, "/api/v1/tasks").await.status, StatusCode::OK);
    let bob = s.token("bob", &["viewer"], "acme");
    let r = s.get(&bob, "/api/v1/tasks").await;
    assert_code(&r, StatusCode::TOO_MANY_REQUESTS, "AMAS-API-0007");
}

/// A tenant has at most `max_event_streams_per_tenant` live event streams: the next one is
/// refused with 429 AMAS-API-0010 (the JSON journal still answers), other tenants are not
/// affected, and a stream that ends (its task was cancelled) frees its slot.
#[tokio::test]
async fn live_event_streams_are_capped_per_tenant() {
    let s = start(|c| c.server.max_event_streams_per_tenant = 2).await;
    let alice = s.token("alice", &["submitter"], "acme");
    let (t1, t2) = (s.submit(&alice).await, s.submit(&alice).await);
    let open = |token: &str, task: &str| {
        s.http
            .get(format!("{}/api/v1/tasks/{task}/events", s.base))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
    };
    let mut first = open(&alice, &t1).await.unwrap();
    let second = open(&alice, &t2).await.unwrap();
    for r in [&first, &second] {
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
    }
    let third = open(&alice, &t1).await.unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["retry-after"], "5");
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AMAS-API-0010");
    let json_events = s.get(&alice, &format!("/api/v1/tasks/{t1}/events")).await;
    assert_eq!(json_events.status, StatusCode::OK);

    let bob = s.token("bob", &["submitter"], "globex");
    let theirs = s.submit(&bob).await;
    assert_eq!(open(&bob, &theirs).await.unwrap().status(), StatusCode::OK);

    let r = s
        .post(&alice, &format!("/api/v1/tasks/{t1}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut text = String::new();
    while let Some(chunk) = first.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: task_cancelled"), "{text}");
    assert_eq!(open(&alice, &t2).await.unwrap().status(), StatusCode::OK);
    drop(second);
}

/// A client that pipelines requests for a 33 KiB document and never reads the answers is
/// disconnected once the server's writes have made no progress for `write_timeout`; a client
/// that reads gets every answer.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let s = start(|c| c.server.write_timeout = Duration::from_millis(300)).await;
    let pipelined = |n: usize| "GET /openapi.json HTTP/1.1\r\nHost: amas\r\n\r\n".repeat(n);

    let mut reader = connect_from(s.addr, "127.0.0.1").await;
    reader.write_all(pipelined(20).as_bytes()).await.unwrap();
    reader
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: amas\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let all = read_until_closed(&mut reader).await;
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 21);

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(s.addr).await.unwrap();
    stalled.write_all(pipelined(400).as_bytes()).await.unwrap();
    // Read nothing for ten times the write timeout, then take what was sent before the server
    // gave up: far less than the 400 answers asked for (about 13 MiB).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = read_until_closed(&mut stalled).await;
    let answers = got.matches("HTTP/1.1 200 OK").count();
    assert!(answers < 400, "the server kept writing: {answers} answers");
    // The server is fine for everyone else.
    assert_eq!(
        s.send(s.http.get(format!("{}/healthz", s.base)))
            .await
            .status,
        StatusCode::OK
    );
}
