//! Shared test helpers: a workspace context, the default registry config, and the outside-world
//! doubles for `http_fetch` (a map resolver, a recording connector, a loopback canary server).
#![allow(
    dead_code,
    reason = "compiled into several test binaries, each using a subset: an expect would be \
              unfulfilled in those using all (allow_attributes checks outer attributes only)"
)]
#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns"
)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use amas_tools::config::ToolSettings;
use amas_tools::http::{Connector, HopRequest, HopResponse, Resolver};
use amas_tools::{ToolConfig, ToolContext, ToolError, ToolsConfig};
use async_trait::async_trait;

pub fn ctx(workspace: &std::path::Path) -> ToolContext {
    ToolContext {
        task_id: "task-1".into(),
        workspace: workspace.to_path_buf(),
        agent: "tester".into(),
    }
}

pub fn default_config() -> ToolsConfig {
    ToolsConfig::load(None, &[]).expect("embedded tools.yaml is valid")
}

/// The embedded entry `name`, split into spec and settings.
pub fn entry(name: &str) -> ToolConfig {
    default_config().take(name).expect(name)
}

pub fn http_settings() -> (amas_tools::ToolSpec, amas_tools::config::HttpFetchSettings) {
    let ToolConfig { spec, settings } = entry("http_fetch");
    let ToolSettings::HttpFetch(s) = settings else {
        panic!("http settings")
    };
    (spec, s)
}

/// The embedded `http_fetch` entry with `ports` added to `allow_ports`, as an operator would
/// list the ports of the (loopback) servers a test treats as external.
pub fn http_settings_with_ports(
    ports: &[u16],
) -> (amas_tools::ToolSpec, amas_tools::config::HttpFetchSettings) {
    let (spec, mut settings) = http_settings();
    settings.allow_ports.extend_from_slice(ports);
    (spec, settings)
}

/// Resolves only the names it was given; never asks the system (so no DNS packet leaves).
#[derive(Default)]
pub struct MapResolver {
    pub map: HashMap<String, Vec<IpAddr>>,
    pub lookups: Mutex<Vec<String>>,
}

impl MapResolver {
    pub fn with(entries: &[(&str, &[&str])]) -> Self {
        let map = entries
            .iter()
            .map(|(n, ips)| {
                (
                    (*n).to_owned(),
                    ips.iter().map(|i| i.parse().expect("ip")).collect(),
                )
            })
            .collect();
        Self {
            map,
            lookups: Mutex::default(),
        }
    }
}

#[async_trait]
impl Resolver for MapResolver {
    async fn resolve(&self, host: &str, _port: u16) -> Result<Vec<IpAddr>, String> {
        self.lookups.lock().expect("lock").push(host.to_owned());
        self.map
            .get(host)
            .cloned()
            .ok_or_else(|| format!("`{host}` unknown to the test resolver"))
    }
}

/// Records each hop instead of connecting; answers with scripted responses in order.
#[derive(Default)]
pub struct RecordingConnector {
    pub attempts: Mutex<Vec<(SocketAddr, String)>>,
    pub responses: Mutex<Vec<HopResponse>>,
}

impl RecordingConnector {
    pub fn attempts(&self) -> Vec<(SocketAddr, String)> {
        self.attempts.lock().expect("lock").clone()
    }
}

#[async_trait]
impl Connector for RecordingConnector {
    async fn send(&self, req: HopRequest) -> Result<HopResponse, ToolError> {
        self.attempts
            .lock()
            .expect("lock")
            .push((req.addr, req.url.to_string()));
        let mut r = self.responses.lock().expect("lock");
        Ok(if r.is_empty() {
            HopResponse {
                status: 200,
                ..HopResponse::default()
            }
        } else {
            r.remove(0)
        })
    }
}

/// A loopback HTTP server recording the requests it receives; `redirect_to` makes it answer
/// every request with a 302 to that URL instead of a body.
pub struct Canary {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub hosts: Arc<Mutex<Vec<String>>>,
    /// Method, path and body of every request, in order.
    pub requests: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Canary {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<(String, String, String)> {
        self.requests.lock().expect("lock").clone()
    }
}

pub async fn canary(redirect_to: Option<String>, body: String) -> Canary {
    serve_canary(move |_path| match &redirect_to {
        Some(to) => (302, Some(to.clone()), String::new()),
        None => (200, None, body.clone()),
    })
    .await
}

/// A server that answers `/start` with `status` and `Location: to`, and any other path with
/// 200 `landed`, recording every request (its body included).
pub async fn redirector(status: u16, to: String) -> Canary {
    serve_canary(move |path| {
        if path == "/start" {
            (status, Some(to.clone()), String::new())
        } else {
            (200, None, "landed".to_owned())
        }
    })
    .await
}

/// A recording loopback server whose answer to a path is `(status, location, body)`.
async fn serve_canary(
    answer: impl Fn(&str) -> (u16, Option<String>, String) + Clone + Send + Sync + 'static,
) -> Canary {
    use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
    use axum::response::IntoResponse;
    let hits = Arc::new(AtomicUsize::new(0));
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (h, hs, rq) = (hits.clone(), hosts.clone(), requests.clone());
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let (h, hs, rq, answer) = (h.clone(), hs.clone(), rq.clone(), answer.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                hs.lock().expect("lock").push(host);
                rq.lock()
                    .expect("lock")
                    .push((method.to_string(), uri.path().to_owned(), body));
                let (status, location, text) = answer(uri.path());
                let status = StatusCode::from_u16(status).expect("status");
                match location {
                    Some(to) => (status, [(header::LOCATION, to)]).into_response(),
                    None => (status, text).into_response(),
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    #[expect(
        clippy::disallowed_methods,
        reason = "test scaffolding: a server or a race that ends with the test"
    )]
    tokio::spawn(async move { axum::serve(listener, app).await });
    Canary {
        addr,
        hits,
        hosts,
        requests,
    }
}
