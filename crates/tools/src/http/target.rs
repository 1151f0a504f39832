//! Strict parsing of a fetch target: WHATWG URL parsing (the same normalisation a browser
//! applies, so `127.1`, `2130706433`, `0x7f000001` and `0177.0.0.1` all become `127.0.0.1`),
//! then the URL-level rules: scheme, credentials, fragment tricks, local names, domain lists.

use std::net::IpAddr;

use url::{Host, Url};

use crate::config::HttpFetchSettings;
use crate::error::ToolError;

const MAX_URL_LEN: usize = 4096;

/// Names of cloud metadata services (and their subdomains), refused before any DNS lookup
/// whatever `deny_domains` says, so an operator who replaces the deny list cannot drop them.
/// Names resolving to a metadata address are refused by address as well.
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
    "metadata.platformequinix.com",
    "metadata.packet.net",
];

/// The host of a vetted URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetHost {
    Ip(IpAddr),
    Domain(String),
}

/// A URL that passed the URL-level rules, with its effective port.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: Url,
    pub host: TargetHost,
    pub port: u16,
}

/// Parses `raw` and applies every rule that does not need DNS.
///
/// # Errors
/// `InvalidParams` for an unparsable URL, `Refused` for a rule violation.
pub fn parse_target(raw: &str, settings: &HttpFetchSettings) -> Result<Target, ToolError> {
    if raw.len() > MAX_URL_LEN {
        return Err(ToolError::invalid("/url", "URL longer than 4096 bytes"));
    }
    let mut url = Url::parse(raw).map_err(|e| ToolError::invalid("/url", e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolError::refused(format!(
            "scheme `{}` is not allowed: only http and https",
            url.scheme()
        )));
    }
    // `user@host` is how `http://allowed.com@evil/` fools naive checks; nothing needs it here.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ToolError::refused("credentials (`user@`) in the URL"));
    }
    if url.fragment().is_some_and(|f| f.contains('@')) {
        return Err(ToolError::refused("`@` in the URL fragment (`#@` trick)"));
    }
    url.set_fragment(None);
    let host = match url.host() {
        Some(Host::Ipv4(v4)) => TargetHost::Ip(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => TargetHost::Ip(IpAddr::V6(v6)),
        Some(Host::Domain(d)) => TargetHost::Domain(d.trim_end_matches('.').to_ascii_lowercase()),
        None => return Err(ToolError::refused("the URL has no host")),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| ToolError::refused("the URL has no port"))?;
    if !settings.allow_ports.contains(&port) {
        return Err(ToolError::refused(format!(
            "port {port} is not allowed (tools.http_fetch.settings.allow_ports: {:?})",
            settings.allow_ports
        )));
    }
    check_lists(&host, settings)?;
    Ok(Target { url, host, port })
}

/// `host` is `domain` or a subdomain of it.
fn matches_domain(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn check_lists(host: &TargetHost, settings: &HttpFetchSettings) -> Result<(), ToolError> {
    let text = match host {
        TargetHost::Ip(ip) => ip.to_string(),
        TargetHost::Domain(d) => d.clone(),
    };
    let hit = |list: &[String]| match host {
        TargetHost::Ip(_) => list.contains(&text),
        TargetHost::Domain(h) => list.iter().any(|d| matches_domain(h, d)),
    };
    // RFC 6761: these names are the local machine whatever DNS says.
    if let TargetHost::Domain(d) = host
        && matches_domain(d, "localhost")
    {
        return Err(ToolError::refused(format!("`{d}` names the local machine")));
    }
    if let TargetHost::Domain(d) = host
        && METADATA_NAMES.iter().any(|m| matches_domain(d, m))
    {
        return Err(ToolError::refused(format!(
            "`{d}` names a cloud metadata service"
        )));
    }
    if hit(&settings.deny_domains) {
        return Err(ToolError::refused(format!(
            "host `{text}` is on the deny list"
        )));
    }
    if !settings.allow_domains.is_empty() && !hit(&settings.allow_domains) {
        return Err(ToolError::refused(format!(
            "host `{text}` is not on the allow list"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpMethod;

    fn settings(allow: &[&str], deny: &[&str]) -> HttpFetchSettings {
        HttpFetchSettings {
            allow_domains: allow.iter().map(|s| (*s).to_owned()).collect(),
            deny_domains: deny.iter().map(|s| (*s).to_owned()).collect(),
            allow_ports: vec![80, 443],
            max_bytes: 1000,
            methods: vec![HttpMethod::Get],
            max_redirects: 5,
        }
    }

    /// Every numeric spelling of loopback normalises to the same address the OS would use.
    #[test]
    fn numeric_spellings_normalise_like_a_browser() {
        let s = settings(&[], &[]);
        for raw in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://127.0.1/",
        ] {
            let t = parse_target(raw, &s).expect(raw);
            assert_eq!(
                t.host,
                TargetHost::Ip("127.0.0.1".parse().expect("ip")),
                "{raw}"
            );
        }
        let t = parse_target("http://[::ffff:127.0.0.1]/", &s).expect("mapped");
        assert_eq!(
            t.host,
            TargetHost::Ip("::ffff:127.0.0.1".parse().expect("ip"))
        );
    }

    #[test]
    fn url_tricks_are_refused() {
        let s = settings(&[], &[]);
        for raw in [
            "http://evil@127.0.0.1/",
            "http://user:pw@example.com/",
            "http://127.0.0.1#@example.com/",
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://a.localhost/",
        ] {
            let err = parse_target(raw, &s).expect_err(raw);
            assert_eq!(err.code(), "AMAS-TOOL-0002", "{raw}: {err}");
        }
    }

    /// Metadata service names are refused whatever the deny list says (here: empty), in any
    /// case and with a trailing dot; a lookalike name is not.
    #[test]
    fn metadata_names_are_refused_without_a_deny_list() {
        let s = settings(&[], &[]);
        for raw in [
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://metadata/",
            "http://instance-data/latest/meta-data/",
            "http://metadata.tencentyun.com/latest/meta-data/",
        ] {
            let err = parse_target(raw, &s).expect_err(raw);
            assert!(err.to_string().contains("metadata"), "{raw}: {err}");
        }
        assert!(parse_target("http://metadata.example.com/", &s).is_ok());
    }

    /// Only the listed ports: the defaults (80, 443, also implied by the scheme) pass, any
    /// other port is refused before DNS, and a listed one passes.
    #[test]
    fn only_allowed_ports() {
        let mut s = settings(&[], &[]);
        assert!(parse_target("http://example.com/", &s).is_ok());
        assert!(parse_target("https://example.com:443/", &s).is_ok());
        for raw in [
            "http://example.com:6379/",
            "https://example.com:8443/",
            "http://93.184.216.34:25/",
            "http://example.com:0/",
        ] {
            let err = parse_target(raw, &s).expect_err(raw);
            assert!(err.to_string().contains("allow_ports"), "{raw}: {err}");
        }
        s.allow_ports.push(8443);
        assert!(parse_target("https://example.com:8443/", &s).is_ok());
    }

    #[test]
    fn domain_lists_match_suffixes_case_insensitively_with_trailing_dot() {
        let s = settings(&["example.com"], &["bad.example.com"]);
        assert!(parse_target("https://EXAMPLE.com./x", &s).is_ok());
        assert!(parse_target("https://api.example.com/x", &s).is_ok());
        assert!(parse_target("https://notexample.com/", &s).is_err());
        assert!(parse_target("https://example.com.evil.net/", &s).is_err());
        assert!(parse_target("https://x.bad.example.com/", &s).is_err());
        assert!(
            parse_target("https://8.8.8.8/", &s).is_err(),
            "IPs need listing"
        );
    }
}
