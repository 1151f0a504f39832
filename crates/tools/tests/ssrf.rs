//! SSRF: `http_fetch` must never reach loopback, private, link-local or metadata addresses,
//! whatever the URL spelling, DNS answer or redirect. Loopback is tested end to end against a
//! canary server that must receive nothing; every other range only through the address policy
//! and a connector that records attempts, so no test sends a packet outside loopback.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns"
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use amas_tools::http::{
    AddressPolicy, AddressVerdict, HopResponse, Network, PublicOnly, ReqwestConnector, check_ip,
};
use amas_tools::{HttpFetch, Tool, ToolError, codes};
use common::{
    MapResolver, RecordingConnector, canary, ctx, http_settings, http_settings_with_ports,
    redirector,
};
use serde_json::json;

/// The default policy, except that listed loopback sockets count as "external" servers:
/// the only way to have an allowed origin on a machine where every test stays on loopback.
struct AllowSockets(Vec<SocketAddr>);

impl AddressPolicy for AllowSockets {
    fn check(&self, addr: SocketAddr) -> AddressVerdict {
        if self.0.contains(&addr) {
            AddressVerdict::Allowed
        } else {
            PublicOnly.check(addr)
        }
    }
}

/// The tool with the embedded settings plus `ports` allowed (the loopback servers' ports, so
/// what is refused is refused for its address, not its port).
fn fetch_tool(policy: Arc<dyn AddressPolicy>, resolver: MapResolver, ports: &[u16]) -> HttpFetch {
    let (spec, settings) = http_settings_with_ports(ports);
    HttpFetch::new(spec, settings).with_network(Network {
        policy,
        resolver: Arc::new(resolver),
        connector: Arc::new(ReqwestConnector),
    })
}

async fn fetch(tool: &HttpFetch, url: &str) -> Result<serde_json::Value, ToolError> {
    let dir = tempfile::tempdir().expect("dir");
    tool.call(&ctx(dir.path()), json!({ "url": url }))
        .await
        .map(|o| o.content)
}

fn assert_refused(r: Result<serde_json::Value, ToolError>, url: &str) {
    match r {
        Err(e) => assert_eq!(e.code(), codes::REFUSED, "{url}: {e}"),
        Ok(v) => panic!("{url} was fetched: {v}"),
    }
}

/// Every loopback spelling, URL trick and loopback-resolving name is refused, and the canary
/// listening on 127.0.0.1 receives no request at all. The control at the end proves the
/// canary is reachable through the same code path when policy allows it.
#[tokio::test]
async fn loopback_in_every_spelling_never_reaches_the_canary() {
    let canary = canary(None, "canary".into()).await;
    let p = canary.addr.port();
    let resolver = MapResolver::with(&[("canary.test", &["127.0.0.1"])]);
    let tool = fetch_tool(Arc::new(PublicOnly), resolver, &[p]);
    let urls = [
        format!("http://127.0.0.1:{p}/"),
        format!("http://127.1:{p}/"),
        format!("http://[::1]:{p}/"),
        format!("http://0.0.0.0:{p}/"),
        format!("http://2130706433:{p}/"),
        format!("http://0x7f000001:{p}/"),
        format!("http://0177.0.0.1:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://[::ffff:7f00:1]:{p}/"),
        format!("http://evil@127.0.0.1:{p}/"),
        format!("http://example.com@127.0.0.1:{p}/"),
        format!("http://127.0.0.1:{p}#@example.com/"),
        format!("http://localhost:{p}/"),
        format!("http://LocalHost.:{p}/"),
        format!("http://canary.test:{p}/"),
        format!("http://CANARY.test.:{p}/"),
    ];
    for url in &urls {
        assert_refused(fetch(&tool, url).await, url);
    }
    assert_eq!(canary.hits(), 0, "the canary must receive no request");

    let allowed = fetch_tool(
        Arc::new(AllowSockets(vec![canary.addr])),
        MapResolver::with(&[("canary.test", &["127.0.0.1"])]),
        &[p],
    );
    let out = fetch(&allowed, &format!("http://canary.test:{p}/hello"))
        .await
        .expect("control");
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], "canary");
    assert_eq!(canary.hits(), 1);
    assert_eq!(
        canary.hosts.lock().expect("lock").as_slice(),
        [format!("canary.test:{p}")],
        "the pinned connection keeps the original Host header"
    );
}

/// An allowed server redirecting to loopback (by IP, by mapped IPv6, by a name resolving
/// there) is followed by hand, re-checked and refused; the canary stays untouched.
#[tokio::test]
async fn redirects_to_loopback_are_refused_at_the_hop() {
    let target = canary(None, "canary".into()).await;
    let p = target.addr.port();
    for to in [
        format!("http://127.0.0.1:{p}/"),
        format!("http://[::ffff:127.0.0.1]:{p}/"),
        format!("http://canary.test:{p}/"),
        format!("http://localhost:{p}/"),
    ] {
        let origin = canary(Some(to.clone()), String::new()).await;
        let tool = fetch_tool(
            Arc::new(AllowSockets(vec![origin.addr])),
            MapResolver::with(&[("canary.test", &["127.0.0.1"])]),
            &[origin.addr.port(), p],
        );
        let r = fetch(
            &tool,
            &format!("http://127.0.0.1:{}/start", origin.addr.port()),
        )
        .await;
        assert_refused(r, &to);
        assert_eq!(origin.hits(), 1, "the allowed origin was asked once");
    }
    assert_eq!(target.hits(), 0, "no redirect reached the canary");
}

#[tokio::test]
async fn redirect_loops_stop_after_the_configured_maximum() {
    // The server's own address is only known after binding: redirect to a path on it.
    let origin = canary(Some("/again".into()), String::new()).await;
    let tool = fetch_tool(
        Arc::new(AllowSockets(vec![origin.addr])),
        MapResolver::default(),
        &[origin.addr.port()],
    );
    let r = fetch(&tool, &format!("http://127.0.0.1:{}/", origin.addr.port())).await;
    let err = r.expect_err("loop");
    assert_eq!(err.code(), codes::REFUSED);
    assert!(err.to_string().contains("more than 5 redirects"), "{err}");
    assert_eq!(origin.hits(), 6, "the first request and five redirects");
}

#[tokio::test]
async fn bodies_over_max_bytes_are_refused_while_streaming() {
    let server = canary(None, "x".repeat(5000)).await;
    let (spec, mut settings) = http_settings_with_ports(&[server.addr.port()]);
    settings.max_bytes = 1000;
    let tool = HttpFetch::new(spec, settings).with_network(Network {
        policy: Arc::new(AllowSockets(vec![server.addr])),
        resolver: Arc::new(MapResolver::default()),
        connector: Arc::new(ReqwestConnector),
    });
    let err = fetch(&tool, &format!("http://127.0.0.1:{}/", server.addr.port()))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), codes::TOO_LARGE);
}

fn recording_tool(
    resolver: MapResolver,
    connector: Arc<RecordingConnector>,
) -> (HttpFetch, Arc<MapResolver>) {
    recording_tool_with(http_settings(), resolver, connector)
}

fn recording_tool_with(
    (spec, settings): (amas_tools::ToolSpec, amas_tools::config::HttpFetchSettings),
    resolver: MapResolver,
    connector: Arc<RecordingConnector>,
) -> (HttpFetch, Arc<MapResolver>) {
    let resolver = Arc::new(resolver);
    let tool = HttpFetch::new(spec, settings).with_network(Network {
        policy: Arc::new(PublicOnly),
        resolver: resolver.clone(),
        connector,
    });
    (tool, resolver)
}

/// Private, link-local, shared and metadata targets, as literals and as names resolving
/// there (including a name with one public and one private address), are refused before
/// any connection attempt.
#[tokio::test]
async fn private_and_metadata_targets_never_reach_the_connector() {
    let rec = Arc::new(RecordingConnector::default());
    let resolver = MapResolver::with(&[
        ("internal.test", &["10.1.2.3"]),
        ("mixed.test", &["93.184.216.34", "192.168.1.10"]),
        ("meta.test", &["169.254.169.254"]),
        ("v6ula.test", &["fd12::1"]),
    ]);
    let (tool, resolver) = recording_tool(resolver, rec.clone());
    for url in [
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://172.31.255.254/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.1.1/",
        "http://100.64.0.1/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://internal.test/",
        "http://mixed.test/",
        "http://meta.test/",
        "http://v6ula.test/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://198.51.100.1/",
    ] {
        assert_refused(fetch(&tool, url).await, url);
    }
    assert!(
        rec.attempts().is_empty(),
        "no connection attempted: {:?}",
        rec.attempts()
    );
    let looked_up = resolver.lookups.lock().expect("lock").clone();
    assert!(
        !looked_up.contains(&"metadata.google.internal".to_owned()),
        "deny list before DNS"
    );
}

/// A public name is connected to at exactly the address that was vetted; its redirect to the
/// metadata service is refused without a second attempt.
#[tokio::test]
async fn connector_gets_the_vetted_address_and_redirects_are_rechecked() {
    let rec = Arc::new(RecordingConnector::default());
    rec.responses.lock().expect("lock").push(HopResponse {
        status: 302,
        location: Some("http://169.254.169.254/latest/meta-data/".into()),
        ..HopResponse::default()
    });
    let (tool, _) = recording_tool(
        MapResolver::with(&[("public.test", &["93.184.216.34"])]),
        rec.clone(),
    );
    assert_refused(
        fetch(&tool, "https://public.test/page").await,
        "redirect to metadata",
    );
    let attempts = rec.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].0,
        "93.184.216.34:443".parse::<SocketAddr>().expect("addr")
    );
}

#[test]
fn address_policy_covers_the_required_ranges() {
    for s in [
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "169.254.0.5",
        "fc00::1",
        "fd00:ec2::254",
        "fe80::1",
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "::",
        "100.64.0.1",
        "255.255.255.255",
        "224.0.0.1",
        "::ffff:192.168.0.1",
    ] {
        let ip = s.parse().expect("ip");
        assert!(matches!(check_ip(ip), AddressVerdict::Refused(_)), "{s}");
    }
    assert_eq!(
        check_ip("93.184.216.34".parse().expect("ip")),
        AddressVerdict::Allowed
    );
}

/// Every cloud's metadata and host-agent endpoint is refused before any connection, by name
/// (without a DNS lookup) and by address, as a literal or behind a name, even when an operator
/// has emptied the deny list. Azure's WireServer is public address space, so only this
/// refusal stands between a model and `http://168.63.129.16/?comp=versions`. The control
/// shows a public name still gets through the same tool.
#[tokio::test]
async fn cloud_metadata_is_refused_by_name_and_address_whatever_the_deny_list() {
    let rec = Arc::new(RecordingConnector::default());
    let (spec, mut settings) = http_settings_with_ports(&[32526]);
    settings.deny_domains.clear();
    let resolver = MapResolver::with(&[
        ("gcp.test", &["169.254.169.254"]),
        ("azure.test", &["168.63.129.16"]),
        ("alibaba.test", &["100.100.100.200"]),
        ("oracle.test", &["192.0.0.192"]),
        ("ecs.test", &["169.254.170.2"]),
        ("aws6.test", &["fd00:ec2::254"]),
        ("gcp6.test", &["fd20:ce::254"]),
        ("public.test", &["93.184.216.34"]),
    ]);
    let (tool, resolver) = recording_tool_with((spec, settings), resolver, rec.clone());
    for url in [
        "http://168.63.129.16/?comp=versions",
        "http://168.63.129.16:32526/vmSettings",
        "http://100.100.100.200/latest/meta-data/",
        "http://192.0.0.192/opc/v2/instance/",
        "http://169.254.170.2/v2/credentials/",
        "http://[fd20:ce::254]/computeMetadata/v1/",
        "http://[::ffff:168.63.129.16]/",
        "http://gcp.test/",
        "http://azure.test/machine",
        "http://alibaba.test/",
        "http://oracle.test/",
        "http://ecs.test/",
        "http://aws6.test/",
        "http://gcp6.test/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/computeMetadata/v1/",
        "http://instance-data/latest/meta-data/",
    ] {
        assert_refused(fetch(&tool, url).await, url);
    }
    assert!(rec.attempts().is_empty(), "{:?}", rec.attempts());
    let looked_up = resolver.lookups.lock().expect("lock").clone();
    for name in ["metadata.google.internal", "metadata", "instance-data"] {
        assert!(!looked_up.iter().any(|l| l == name), "{name} was resolved");
    }
    let out = fetch(&tool, "http://public.test/").await.expect("control");
    assert_eq!(out["status"], 200);
    assert_eq!(rec.attempts().len(), 1);
}

/// Only the allowed ports (default 80 and 443): another port on a public address is refused
/// before DNS and before any connection, also when a redirect names it; once an operator lists
/// the port, the same URL is fetched.
#[tokio::test]
async fn ports_outside_the_allowlist_are_refused() {
    let rec = Arc::new(RecordingConnector::default());
    let resolver = || MapResolver::with(&[("public.test", &["93.184.216.34"])]);
    let (tool, looked_up) = recording_tool(resolver(), rec.clone());
    for url in [
        "http://93.184.216.34:6379/",
        "http://public.test:25/",
        "https://public.test:6443/api",
    ] {
        assert_refused(fetch(&tool, url).await, url);
    }
    assert!(rec.attempts().is_empty());
    assert!(looked_up.lookups.lock().expect("lock").is_empty(), "no DNS");

    rec.responses.lock().expect("lock").push(HopResponse {
        status: 302,
        location: Some("http://public.test:6379/".into()),
        ..HopResponse::default()
    });
    assert_refused(fetch(&tool, "https://public.test/").await, "redirect");
    assert_eq!(rec.attempts().len(), 1, "the first hop only");

    let rec = Arc::new(RecordingConnector::default());
    let (tool, _) = recording_tool_with(http_settings_with_ports(&[6443]), resolver(), rec.clone());
    let out = fetch(&tool, "https://public.test:6443/api")
        .await
        .expect("listed port");
    assert_eq!(out["status"], 200);
    assert_eq!(
        rec.attempts()[0].0,
        "93.184.216.34:6443".parse::<SocketAddr>().expect("addr")
    );
}

async fn post(tool: &HttpFetch, url: &str, body: &str) -> Result<serde_json::Value, ToolError> {
    let dir = tempfile::tempdir().expect("dir");
    tool.call(
        &ctx(dir.path()),
        json!({ "url": url, "method": "POST", "body": body, "content_type": "text/plain" }),
    )
    .await
    .map(|o| o.content)
}

/// A 307/308 keeps the POST and its body, so it is followed only within the origin the body
/// was sent to: to the same server it arrives (the allowed path), to another server (another
/// port is another origin) the redirect is refused and that server receives nothing. A 302 to
/// the other server is followed as a GET without the body.
#[tokio::test]
async fn post_bodies_are_never_replayed_to_another_origin() {
    let other = redirector(200, String::new()).await;
    for status in [307, 308] {
        let same = redirector(status, "/landing".to_owned()).await;
        let tool = fetch_tool(
            Arc::new(AllowSockets(vec![same.addr, other.addr])),
            MapResolver::default(),
            &[same.addr.port(), other.addr.port()],
        );
        let start = format!("http://127.0.0.1:{}/start", same.addr.port());
        let out = post(&tool, &start, "secret=1").await.expect("same origin");
        assert_eq!(out["status"], 200);
        assert_eq!(out["body"], "landed");
        let landed = same.requests();
        assert_eq!(landed.len(), 2);
        assert_eq!(
            landed[1],
            ("POST".into(), "/landing".into(), "secret=1".into())
        );

        let away = redirector(
            status,
            format!("http://127.0.0.1:{}/landing", other.addr.port()),
        )
        .await;
        let tool = fetch_tool(
            Arc::new(AllowSockets(vec![away.addr, other.addr])),
            MapResolver::default(),
            &[away.addr.port(), other.addr.port()],
        );
        let start = format!("http://127.0.0.1:{}/start", away.addr.port());
        let err = post(&tool, &start, "secret=1")
            .await
            .expect_err("cross origin");
        assert_eq!(err.code(), codes::REFUSED, "{err}");
        assert!(err.to_string().contains("another origin"), "{err}");
        assert_eq!(away.hits(), 1);
        assert_eq!(
            other.hits(),
            0,
            "the other origin received nothing ({status})"
        );
    }

    let away = redirector(
        302,
        format!("http://127.0.0.1:{}/landing", other.addr.port()),
    )
    .await;
    let tool = fetch_tool(
        Arc::new(AllowSockets(vec![away.addr, other.addr])),
        MapResolver::default(),
        &[away.addr.port(), other.addr.port()],
    );
    let start = format!("http://127.0.0.1:{}/start", away.addr.port());
    let out = post(&tool, &start, "secret=1").await.expect("302");
    assert_eq!(out["body"], "landed");
    assert_eq!(
        other.requests(),
        [("GET".to_owned(), "/landing".to_owned(), String::new())]
    );
}
