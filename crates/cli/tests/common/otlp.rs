//! A real OTLP/gRPC collector endpoint inside the tests (the opentelemetry-proto
//! `TraceService` on a hyper HTTP/2 server), and `amas serve` exporting to it with the mock
//! OpenAI server as its `local` provider.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};

use super::Server;

/// Every span the collector received, in arrival order.
#[derive(Clone, Default)]
pub struct Collector(pub Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().expect("collector lock");
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// The spans received so far, once `pred` holds for them (polled every 50 ms, at most 100
    /// times; the last snapshot if it never does).
    pub async fn spans_until(&self, pred: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        for _ in 0..100 {
            spans = self.0.lock().expect("collector lock").clone();
            if pred(&spans) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        spans
    }
}

/// Serves the collector over HTTP/2 (gRPC) on 127.0.0.1.
pub async fn start_collector() -> (SocketAddr, Collector) {
    let collector = Collector::default();
    let service = TraceServiceServer::new(collector.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("collector binds");
    let addr = listener.local_addr().expect("collector address");
    #[expect(
        clippy::disallowed_methods,
        reason = "test scaffolding: a server or a race that ends with the test"
    )]
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            #[expect(
                clippy::disallowed_methods,
                reason = "test scaffolding: a server or a race that ends with the test"
            )]
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, collector)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn attr(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => json!(s),
            AnyValue::IntValue(i) => json!(i),
            AnyValue::DoubleValue(d) => json!(d),
            AnyValue::BoolValue(b) => json!(b),
            other => json!(format!("{other:?}")),
        })
}

/// `amas serve` exporting to a collector, its `local` provider an OpenAI-compatible server.
pub struct Exporting {
    pub _root: tempfile::TempDir,
    pub server: Server,
}

/// Starts `amas serve` in `environment`, exporting spans to `collector`, with `local` the
/// OpenAI-compatible server at `base_url` serving `model` (`provider_extra`: more YAML lines of
/// the provider, e.g. its `trusted_for`), and `env` besides the OTLP variables.
pub fn serve_exporting(
    collector: SocketAddr,
    base_url: &str,
    model: &str,
    provider_extra: &str,
    environment: &str,
    env: &[(&str, String)],
) -> Exporting {
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    let config = root.path().join("config");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(
        config.join("providers.yaml"),
        format!(
            "providers:\n  local:\n    kind: openai\n    base_url: {base_url}\n    model: {model}\n    max_retries: 0\n{provider_extra}"
        ),
    )
    .expect("providers.yaml");
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ];
    all.extend(env.iter().cloned());
    let server = Server::spawn(&data, Some(&config), environment, &all);
    Exporting {
        _root: root,
        server,
    }
}
