//! `auth.oidc_issuers`: trusted OpenID Connect identity providers, each checked on its own.
//!
//! The algorithm allowlist is decided here, once: `none` and HMAC are refused at load time,
//! so no running verifier can ever be configured to accept them.

use std::time::Duration;

use yaml_serde::Mapping;

use super::{check_name, deserialize, duration, entries, non_empty};
use crate::diag::{Diagnostics, KeyPath};
use crate::model::{
    ClaimPath, JwksCacheConfig, JwksLocation, OidcIssuerConfig, SigningAlgorithm, TenantMapping,
};
use crate::raw::{RawClaimPath, RawJwksCache, RawOidcIssuer};

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const SUPPORTED: &str = "RS256, ES256, EdDSA";

/// Validates every entry; `local_issuer` is the local issuer's `iss`, which no OIDC issuer may
/// reuse (a token's `iss` must name exactly one trust root).
pub(super) fn validate(
    section: Option<&Mapping>,
    local_issuer: &str,
    diag: &mut Diagnostics,
) -> Vec<OidcIssuerConfig> {
    let base = KeyPath::of(&["auth", "oidc_issuers"]);
    let mut out: Vec<OidcIssuerConfig> = Vec::new();
    let Some(section) = section else {
        return out;
    };
    for (name, value) in entries(section, &base, diag) {
        let path = base.child(&name);
        let named = check_name(diag, &path, &name);
        let Some(raw) = deserialize::<RawOidcIssuer>(value, &path, diag) else {
            continue;
        };
        let Some(issuer) = issuer(name, raw, &path, diag) else {
            continue;
        };
        let iss_path = path.child("issuer");
        if issuer.issuer == local_issuer {
            diag.invalid(
                &iss_path,
                "is the local issuer's `auth.issuer`; use another",
            );
        } else if let Some(other) = out.iter().find(|o| o.issuer == issuer.issuer) {
            let msg = format!("the same issuer is already configured as `{}`", other.name);
            diag.invalid(&iss_path, msg);
        } else if named {
            out.push(issuer);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn issuer(
    name: String,
    raw: RawOidcIssuer,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<OidcIssuerConfig> {
    let issuer_ok = check_url(diag, &path.child("issuer"), &raw.issuer);
    let jwks = jwks_location(&raw, path, diag);
    let audiences = audiences(&raw.audiences, &path.child("audiences"), diag);
    let algorithms = algorithms(raw.algorithms.as_deref(), &path.child("algorithms"), diag);
    let leeway = duration(
        diag,
        &path.child("clock_leeway"),
        raw.clock_leeway.as_deref(),
        30 * SEC,
        (Duration::ZERO, 10 * MIN),
    );
    let max_age = match raw.max_token_age.as_deref() {
        None => Some(None),
        Some(text) => {
            let p = path.child("max_token_age");
            duration(diag, &p, Some(text), HOUR, (MIN, 30 * DAY)).map(Some)
        }
    };
    let cache = jwks_cache(&raw.jwks_cache, &path.child("jwks_cache"), diag);
    let roles = match &raw.roles_claim {
        None => Some(ClaimPath::top("roles")),
        Some(p) => claim_path(p, &path.child("roles_claim"), diag),
    };
    let tenant = tenant(&raw, path, diag);
    issuer_ok?;
    Some(OidcIssuerConfig {
        name,
        issuer: raw.issuer,
        jwks: jwks?,
        audiences: audiences?,
        algorithms: algorithms?,
        clock_leeway: leeway?,
        max_token_age: max_age?,
        jwks_cache: cache?,
        roles_claim: roles?,
        tenant: tenant?,
    })
}

fn jwks_location(
    raw: &RawOidcIssuer,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<JwksLocation> {
    match (&raw.jwks_url, raw.discovery) {
        (Some(_), Some(true)) => {
            let msg = "set either `jwks_url` or `discovery: true`, not both";
            diag.invalid(&path.child("discovery"), msg);
            None
        }
        (Some(url), _) => {
            check_url(diag, &path.child("jwks_url"), url)?;
            Some(JwksLocation::Url { url: url.clone() })
        }
        (None, Some(false)) => {
            let msg = "without discovery, `jwks_url` is required";
            diag.invalid(&path.child("jwks_url"), msg);
            None
        }
        (None, _) => Some(JwksLocation::Discovery {
            url: format!(
                "{}/.well-known/openid-configuration",
                raw.issuer.trim_end_matches('/')
            ),
        }),
    }
}

fn audiences(raw: &[String], path: &KeyPath, diag: &mut Diagnostics) -> Option<Vec<String>> {
    if raw.is_empty() {
        diag.invalid(path, "at least one audience is required");
        return None;
    }
    let mut ok = true;
    for (i, aud) in raw.iter().enumerate() {
        ok &= non_empty(diag, &path.child(i.to_string()), aud).is_some();
    }
    ok.then(|| raw.to_vec())
}

fn algorithms(
    raw: Option<&[String]>,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<Vec<SigningAlgorithm>> {
    let Some(raw) = raw else {
        return Some(vec![SigningAlgorithm::RS256]);
    };
    if raw.is_empty() {
        diag.invalid(
            path,
            format!("at least one algorithm is required ({SUPPORTED})"),
        );
        return None;
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut ok = true;
    for (i, name) in raw.iter().enumerate() {
        let p = path.child(i.to_string());
        match algorithm(name) {
            Ok(alg) if !out.contains(&alg) => out.push(alg),
            Ok(_) => {}
            Err(msg) => {
                diag.invalid(&p, msg);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn algorithm(name: &str) -> Result<SigningAlgorithm, String> {
    match name {
        "RS256" => Ok(SigningAlgorithm::RS256),
        "ES256" => Ok(SigningAlgorithm::ES256),
        "EdDSA" => Ok(SigningAlgorithm::EdDSA),
        n if n.eq_ignore_ascii_case("none") => {
            Err("`none` is not a signature and is never accepted".to_owned())
        }
        n if n.to_ascii_uppercase().starts_with("HS") => Err(format!(
            "`{n}` is an HMAC algorithm: a shared secret has no place in an asymmetric \
             issuer (and invites algorithm confusion); use one of {SUPPORTED}"
        )),
        n => Err(format!("`{n}` is not supported; use one of {SUPPORTED}")),
    }
}

fn jwks_cache(
    raw: &RawJwksCache,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<JwksCacheConfig> {
    let min_refresh = duration(
        diag,
        &path.child("min_refresh"),
        raw.min_refresh.as_deref(),
        MIN,
        (SEC, DAY),
    );
    let max_refresh = duration(
        diag,
        &path.child("max_refresh"),
        raw.max_refresh.as_deref(),
        HOUR,
        (SEC, 7 * DAY),
    );
    let refetch = duration(
        diag,
        &path.child("unknown_kid_refetch_interval"),
        raw.unknown_kid_refetch_interval.as_deref(),
        30 * SEC,
        (SEC, HOUR),
    );
    let timeout = duration(
        diag,
        &path.child("http_timeout"),
        raw.http_timeout.as_deref(),
        5 * SEC,
        (Duration::from_millis(100), MIN),
    );
    if let (Some(lo), Some(hi)) = (min_refresh, max_refresh)
        && lo > hi
    {
        let msg = format!("{hi:?} is below min_refresh ({lo:?})");
        diag.invalid(&path.child("max_refresh"), msg);
        return None;
    }
    Some(JwksCacheConfig {
        min_refresh: min_refresh?,
        max_refresh: max_refresh?,
        unknown_kid_refetch_interval: refetch?,
        http_timeout: timeout?,
    })
}

fn tenant(raw: &RawOidcIssuer, path: &KeyPath, diag: &mut Diagnostics) -> Option<TenantMapping> {
    match (&raw.tenant_claim, &raw.tenant) {
        (Some(_), Some(_)) => {
            let msg = "set either `tenant_claim` or a fixed `tenant`, not both";
            diag.invalid(&path.child("tenant"), msg);
            None
        }
        (Some(claim), None) => {
            claim_path(claim, &path.child("tenant_claim"), diag).map(TenantMapping::Claim)
        }
        (None, Some(fixed)) => {
            non_empty(diag, &path.child("tenant"), fixed)?;
            Some(TenantMapping::Fixed(fixed.clone()))
        }
        (None, None) => Some(TenantMapping::Claim(ClaimPath::top("tenant"))),
    }
}

fn claim_path(raw: &RawClaimPath, path: &KeyPath, diag: &mut Diagnostics) -> Option<ClaimPath> {
    let segments: Vec<String> = match raw {
        RawClaimPath::Dotted(text) => text.split('.').map(str::to_owned).collect(),
        RawClaimPath::Segments(list) => list.clone(),
    };
    if segments.is_empty() || segments.iter().any(|s| s.trim().is_empty()) {
        diag.invalid(
            path,
            "a claim path needs non-empty segments, e.g. `realm_access.roles` or \
             [\"https://example.com/roles\"]",
        );
        return None;
    }
    Some(ClaimPath(segments))
}

/// An `https://` URL, or `http://` to a loopback host (a local test identity provider);
/// credentials in the URL are refused, as they would end up in logs.
fn check_url(diag: &mut Diagnostics, path: &KeyPath, url: &str) -> Option<()> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => ("https", rest),
        Some(("http", rest)) => ("http", rest),
        _ => {
            diag.invalid(path, "must be an https:// URL");
            return None;
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        diag.invalid(path, "must name a host, without credentials");
        return None;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    // A loopback IP literal, not a name that merely starts with `127.`.
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if scheme == "http" && !loopback {
        diag.invalid(
            path,
            "must be https:// (plain http is accepted only on loopback)",
        );
        return None;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_hmac_are_refused_with_their_own_reasons() {
        assert!(algorithm("none").unwrap_err().contains("never accepted"));
        assert!(algorithm("NONE").unwrap_err().contains("never accepted"));
        assert!(algorithm("HS256").unwrap_err().contains("HMAC"));
        assert!(algorithm("hs512").unwrap_err().contains("HMAC"));
        assert!(algorithm("PS256").unwrap_err().contains("not supported"));
        assert_eq!(algorithm("EdDSA"), Ok(SigningAlgorithm::EdDSA));
    }

    #[test]
    fn urls_must_be_https_except_on_loopback() {
        let mut diag = Diagnostics::default();
        let p = KeyPath::root();
        assert!(check_url(&mut diag, &p, "https://idp.example.com/realms/a").is_some());
        assert!(check_url(&mut diag, &p, "http://127.0.0.1:8080/x").is_some());
        assert!(check_url(&mut diag, &p, "http://[::1]:80").is_some());
        assert!(check_url(&mut diag, &p, "http://localhost").is_some());
        assert!(diag.errors.is_empty());
        assert!(check_url(&mut diag, &p, "http://idp.example.com").is_none());
        assert!(check_url(&mut diag, &p, "https://user:pw@idp.example.com").is_none());
        assert!(check_url(&mut diag, &p, "idp.example.com").is_none());
        // A name that only looks like a loopback address goes over the network in cleartext.
        assert!(check_url(&mut diag, &p, "http://127.attacker.example/jwks").is_none());
        assert_eq!(diag.errors.len(), 4);
    }
}
