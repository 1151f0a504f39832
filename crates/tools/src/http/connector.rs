//! The two outside-world seams of `http_fetch`: name resolution ([`Resolver`]) and sending one
//! request to one already-vetted address ([`Connector`]). Tests replace both; production uses
//! the system resolver and reqwest pinned to the vetted address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::config::HttpMethod;
use crate::error::ToolError;

/// Resolves a host name to addresses; `http_fetch` checks every one before connecting.
#[async_trait]
pub trait Resolver: Send + Sync {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, String>;
}

/// The operating system's resolver.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
        let addrs = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// One hop: the request and the only address it may be sent to.
#[derive(Clone, Debug)]
pub struct HopRequest {
    pub method: HttpMethod,
    pub url: Url,
    pub addr: SocketAddr,
    pub body: Option<Vec<u8>>,
    pub content_type: Option<String>,
    pub max_bytes: u64,
    pub timeout: Duration,
}

/// What came back from one hop (the body at most `max_bytes` long).
#[derive(Clone, Debug, Default)]
pub struct HopResponse {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Sends one request to `HopRequest::addr` and nowhere else; never follows redirects.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn send(&self, req: HopRequest) -> Result<HopResponse, ToolError>;
}

/// reqwest with redirects off, proxies off, and a resolver that answers every name with the
/// vetted address, so the connection goes where the check looked and nowhere else.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReqwestConnector;

struct Pinned(SocketAddr);

impl Resolve for Pinned {
    fn resolve(&self, _name: Name) -> Resolving {
        let addr = self.0;
        Box::pin(async move {
            let addrs: Addrs = Box::new(std::iter::once(addr));
            Ok(addrs)
        })
    }
}

#[async_trait]
impl Connector for ReqwestConnector {
    async fn send(&self, req: HopRequest) -> Result<HopResponse, ToolError> {
        // An IP-literal URL connects to its own address; it must be the one that was vetted.
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = req.url.host() {
            let literal = req
                .url
                .socket_addrs(|| None)
                .ok()
                .and_then(|v| v.first().copied());
            if literal.map(|a| a.ip()) != Some(req.addr.ip()) {
                return Err(ToolError::refused(
                    "connection target differs from vetted address",
                ));
            }
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(req.timeout)
            .dns_resolver(Arc::new(Pinned(req.addr)))
            .user_agent(concat!("amas-http-fetch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ToolError::Failed(format!("HTTP client: {e}")))?;
        let mut builder = match req.method {
            HttpMethod::Get => client.get(req.url.clone()),
            HttpMethod::Post => client.post(req.url.clone()),
        };
        if let Some(ct) = &req.content_type {
            builder = builder.header(reqwest::header::CONTENT_TYPE, ct);
        }
        // The tool call's span, so the remote side can join the task's trace.
        for (name, value) in amas_telemetry::propagation::outbound_headers() {
            builder = builder.header(name, value);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let mut resp = builder.send().await.map_err(fail)?;
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header(reqwest::header::LOCATION);
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let too_large = || ToolError::TooLarge {
            what: "response body".into(),
            limit: req.max_bytes,
        };
        if resp.content_length().is_some_and(|n| n > req.max_bytes) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            if (body.len() + chunk.len()) as u64 > req.max_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HopResponse {
            status: resp.status().as_u16(),
            location,
            content_type,
            body,
        })
    }
}

fn fail(e: reqwest::Error) -> ToolError {
    if e.is_timeout() {
        return ToolError::Failed("the remote server timed out".into());
    }
    // Without the URL: query strings can carry tokens.
    ToolError::Failed(format!("request failed: {}", e.without_url()))
}
