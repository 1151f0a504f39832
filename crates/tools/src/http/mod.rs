//! `http_fetch`: GET/POST to public hosts only, on allowed ports. Every hop (the first request
//! and each redirect, followed by hand) is parsed strictly, checked against the port allowlist,
//! metadata names and the domain lists, resolved by us, and refused if ANY resolved address is
//! not public; the connection is then pinned to the vetted address so DNS cannot change the
//! answer between check and connect. A request body is never resent to another origin.

mod address;
mod connector;
mod target;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

pub use address::{AddressPolicy, AddressVerdict, PublicOnly, check_ip};
pub use connector::{
    Connector, HopRequest, HopResponse, ReqwestConnector, Resolver, SystemResolver,
};
pub use target::{Target, TargetHost, parse_target};

use crate::config::{HttpFetchSettings, HttpMethod};
use crate::error::ToolError;
use crate::params::parse_params;
use crate::spec::{Tool, ToolContext, ToolOutput, ToolSpec};

/// The outside-world seams of `http_fetch`, injectable for tests.
#[derive(Clone)]
pub struct Network {
    pub policy: Arc<dyn AddressPolicy>,
    pub resolver: Arc<dyn Resolver>,
    pub connector: Arc<dyn Connector>,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            policy: Arc::new(PublicOnly),
            resolver: Arc::new(SystemResolver),
            connector: Arc::new(ReqwestConnector),
        }
    }
}

pub struct HttpFetch {
    spec: ToolSpec,
    settings: HttpFetchSettings,
    network: Network,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    url: String,
    #[serde(default)]
    method: Option<HttpMethod>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
}

impl HttpFetch {
    #[must_use]
    pub fn new(spec: ToolSpec, settings: HttpFetchSettings) -> Self {
        Self {
            spec,
            settings,
            network: Network::default(),
        }
    }

    /// Replaces the address policy, resolver and connector (tests).
    #[must_use]
    pub fn with_network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Resolves and checks the target; returns the one address the hop may connect to.
    async fn vet(&self, target: &Target) -> Result<SocketAddr, ToolError> {
        let ips = match &target.host {
            TargetHost::Ip(ip) => vec![*ip],
            TargetHost::Domain(d) => {
                let ips = self
                    .network
                    .resolver
                    .resolve(d, target.port)
                    .await
                    .map_err(ToolError::Failed)?;
                if ips.is_empty() {
                    return Err(ToolError::Failed(format!("`{d}` has no addresses")));
                }
                ips
            }
        };
        // Any bad address refuses the whole host: a client may pick any of them.
        for ip in &ips {
            let addr = SocketAddr::new(*ip, target.port);
            if let AddressVerdict::Refused(why) = self.network.policy.check(addr) {
                let host = target.url.host_str().unwrap_or("?");
                return Err(ToolError::refused(format!(
                    "host `{host}` resolves to {ip}, in {why}"
                )));
            }
        }
        Ok(SocketAddr::new(ips[0], target.port))
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

#[async_trait]
impl Tool for HttpFetch {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        _ctx: &ToolContext,
        params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let p: Params = parse_params(params)?;
        let mut method = p.method.unwrap_or(HttpMethod::Get);
        if !self.settings.methods.contains(&method) {
            return Err(ToolError::refused(format!(
                "method {method:?} is not allowed"
            )));
        }
        if method == HttpMethod::Get && p.body.is_some() {
            return Err(ToolError::invalid("/body", "a GET request has no body"));
        }
        let mut body = p.body.map(String::into_bytes);
        let mut target = parse_target(&p.url, &self.settings)?;
        let mut bytes_out = 0u64;
        let mut hops = 0u8;
        loop {
            let addr = self.vet(&target).await?;
            bytes_out += body.as_ref().map_or(0, |b| b.len() as u64);
            let resp = self
                .network
                .connector
                .send(HopRequest {
                    method,
                    url: target.url.clone(),
                    addr,
                    body: body.clone(),
                    content_type: p.content_type.clone(),
                    max_bytes: self.settings.max_bytes,
                    timeout: self.spec.timeout,
                })
                .await?;
            let location = resp
                .location
                .as_deref()
                .filter(|_| is_redirect(resp.status));
            let Some(location) = location else {
                return Ok(ToolOutput {
                    bytes_in: resp.body.len() as u64,
                    bytes_out,
                    content: serde_json::json!({
                        "status": resp.status,
                        "url": target.url.as_str(),
                        "content_type": resp.content_type,
                        "body": String::from_utf8_lossy(&resp.body),
                    }),
                });
            };
            if hops >= self.settings.max_redirects {
                return Err(ToolError::refused(format!(
                    "more than {} redirects",
                    self.settings.max_redirects
                )));
            }
            hops += 1;
            let next = target
                .url
                .join(location)
                .map_err(|e| ToolError::Failed(format!("bad redirect location: {e}")))?;
            // A 307/308 resends the body: only to the origin it was meant for. A public site
            // must not be able to forward what the agent posted to it to a third host.
            if matches!(resp.status, 307 | 308)
                && body.is_some()
                && next.origin() != target.url.origin()
            {
                return Err(ToolError::refused(format!(
                    "a {} redirect to another origin ({}) would resend the request body; not \
                     followed (POST to the new URL in a call of its own if intended)",
                    resp.status,
                    next.origin().ascii_serialization()
                )));
            }
            // A new hop is a new target: every URL rule and address check runs again.
            target = parse_target(next.as_str(), &self.settings)?;
            if resp.status == 303
                || (method == HttpMethod::Post && matches!(resp.status, 301 | 302))
            {
                method = HttpMethod::Get;
                body = None;
            }
            if !self.settings.methods.contains(&method) {
                return Err(ToolError::refused(format!(
                    "method {method:?} is not allowed"
                )));
            }
        }
    }
}
