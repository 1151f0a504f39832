//! `http_fetch` sends the W3C `traceparent` of the tool call's span, so the server it reaches
//! can join the task's trace; outside any span it sends none. A loopback server stands in for
//! the remote one (the address policy lets exactly its socket through) and records headers.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use serde_json::json;
use tracing::Instrument;

use amas_tools::http::{
    AddressPolicy, AddressVerdict, Network, PublicOnly, ReqwestConnector, SystemResolver,
};
use amas_tools::{HttpFetch, Tool};
use common::{ctx, http_settings_with_ports};

/// Public addresses as usual, plus the one loopback socket of the test's server.
struct AllowSocket(SocketAddr);

impl AddressPolicy for AllowSocket {
    fn check(&self, addr: SocketAddr) -> AddressVerdict {
        if addr == self.0 {
            AddressVerdict::Allowed
        } else {
            PublicOnly.check(addr)
        }
    }
}

/// A server that answers 200 and keeps the `traceparent` header of each request.
async fn recording_server() -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let record = Arc::clone(&record);
        async move {
            let traceparent = headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            record.lock().unwrap().push(traceparent);
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    #[expect(
        clippy::disallowed_methods,
        reason = "test scaffolding: a server or a race that ends with the test"
    )]
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

#[tokio::test]
async fn http_fetch_propagates_the_tool_calls_trace() {
    let _telemetry = amas_telemetry::init_tracing("amas-test", true, "warn").unwrap();
    let (addr, seen) = recording_server().await;
    let (spec, settings) = http_settings_with_ports(&[addr.port()]);
    let tool = HttpFetch::new(spec, settings).with_network(Network {
        policy: Arc::new(AllowSocket(addr)),
        resolver: Arc::new(SystemResolver),
        connector: Arc::new(ReqwestConnector),
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/page");

    let span = tracing::info_span!("amas.tool", gen_ai.operation.name = "execute_tool");
    let (trace_id, span_id) = span.in_scope(|| {
        (
            amas_telemetry::current_trace_id().unwrap(),
            amas_telemetry::propagation::current_span_id().unwrap(),
        )
    });
    let out = tool
        .call(&ctx(dir.path()), json!({ "url": url }))
        .instrument(span)
        .await
        .unwrap();
    assert_eq!(out.content["status"], 200);
    // Outside any span: nothing to propagate.
    tool.call(&ctx(dir.path()), json!({ "url": url }))
        .await
        .unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let traceparent = seen[0].as_deref().expect("a traceparent was sent");
    assert_eq!(traceparent, format!("00-{trace_id}-{span_id}-01"));
    assert_eq!(seen[1], None);
}
