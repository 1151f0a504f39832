//! `auth.oidc_issuers`: a realistic identity provider entry loads with its defaults, and every
//! dangerous or inconsistent entry is refused at load time, all problems at once.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::time::Duration;

use amas_config::{
    ClaimPath, ConfigErrors, JwksLocation, LoadOptions, SigningAlgorithm, TenantMapping, codes,
    load,
};

fn load_settings(text: &str) -> Result<amas_config::AmasConfig, ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("settings.yaml"), text).unwrap();
    load_dir(dir.path())
}

fn load_dir(dir: &Path) -> Result<amas_config::AmasConfig, ConfigErrors> {
    load(&LoadOptions {
        config_dir: Some(dir.to_path_buf()),
        env: vec![],
    })
}

/// The shipped defaults trust only the local issuer.
#[test]
fn defaults_have_no_oidc_issuer() {
    let cfg = load(&LoadOptions::default()).unwrap();
    assert!(cfg.auth.oidc_issuers.is_empty());
    assert_eq!(cfg.auth.issuer, "amas-local");
}

/// A Keycloak-like entry: discovery by default, nested roles, tenant from a claim; the local
/// issuer keys keep working beside it.
#[test]
fn keycloak_entry_loads_with_documented_defaults() {
    let cfg = load_settings(
        r"
auth:
  issuer: amas-local
  audience: amas
  default_token_ttl: 1h
  clock_leeway: 30s
  oidc_issuers:
    keycloak:
      issuer: https://idp.example.com/realms/amas/
      audiences: [amas, account]
      roles_claim: realm_access.roles
      tenant_claim: org.id
      max_token_age: 12h
    auth0:
      issuer: https://tenant.eu.auth0.com/
      jwks_url: https://tenant.eu.auth0.com/.well-known/jwks.json
      audiences: [https://amas.example.com]
      algorithms: [RS256, ES256, EdDSA]
      roles_claim: [https://amas.example.com/roles]
      tenant: acme
      jwks_cache: {min_refresh: 10s, max_refresh: 10m, unknown_kid_refetch_interval: 5s}
",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = cfg
        .auth
        .oidc_issuers
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["auth0", "keycloak"]);
    let kc = &cfg.auth.oidc_issuers[1];
    assert_eq!(
        kc.jwks,
        JwksLocation::Discovery {
            url: "https://idp.example.com/realms/amas/.well-known/openid-configuration".into()
        }
    );
    assert_eq!(kc.algorithms, [SigningAlgorithm::RS256]);
    assert_eq!(kc.audiences, ["amas", "account"]);
    assert_eq!(kc.clock_leeway, Duration::from_secs(30));
    assert_eq!(kc.max_token_age, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(kc.roles_claim.to_string(), "realm_access.roles");
    assert_eq!(
        kc.tenant,
        TenantMapping::Claim(ClaimPath(vec!["org".into(), "id".into()]))
    );
    assert_eq!(kc.jwks_cache.min_refresh, Duration::from_secs(60));
    assert_eq!(kc.jwks_cache.max_refresh, Duration::from_secs(3600));
    assert_eq!(kc.jwks_cache.http_timeout, Duration::from_secs(5));

    let a0 = &cfg.auth.oidc_issuers[0];
    assert!(matches!(&a0.jwks, JwksLocation::Url { url } if url.ends_with("jwks.json")));
    assert_eq!(a0.roles_claim.0, ["https://amas.example.com/roles"]);
    assert_eq!(a0.tenant, TenantMapping::Fixed("acme".into()));
    assert_eq!(a0.max_token_age, None);
    assert_eq!(
        a0.jwks_cache.unknown_kid_refetch_interval,
        Duration::from_secs(5)
    );
}

/// `none` and HMAC never reach a verifier; every other mistake is reported in the same run,
/// each at its own path.
#[test]
fn dangerous_and_inconsistent_entries_are_all_reported() {
    let err = load_settings(
        r"
auth:
  issuer: amas-local
  audience: amas
  default_token_ttl: 1h
  clock_leeway: 30s
  oidc_issuers:
    bad:
      issuer: http://idp.example.com
      jwks_url: https://idp.example.com/jwks
      discovery: true
      audiences: []
      algorithms: [none, HS256, RS256]
      jwks_cache: {min_refresh: 2h, max_refresh: 1h}
      tenant_claim: ''
      tenant: acme
      roles_claim: 'a..b'
    Upper:
      issuer: https://ok.example.com
      audiences: [x]
    typo:
      issuer: https://typo.example.com
      audiences: [x]
      role_claim: roles
    clash:
      issuer: amas-local
      audiences: [x]
",
    )
    .unwrap_err();
    let p = "auth.oidc_issuers";
    for (code, path) in [
        (codes::INVALID_VALUE, format!("{p}.bad.issuer")),
        (codes::INVALID_VALUE, format!("{p}.bad.discovery")),
        (codes::INVALID_VALUE, format!("{p}.bad.audiences")),
        (codes::INVALID_VALUE, format!("{p}.bad.algorithms.0")),
        (codes::INVALID_VALUE, format!("{p}.bad.algorithms.1")),
        (
            codes::INVALID_VALUE,
            format!("{p}.bad.jwks_cache.max_refresh"),
        ),
        (codes::INVALID_VALUE, format!("{p}.bad.tenant")),
        (codes::INVALID_VALUE, format!("{p}.bad.roles_claim")),
        (codes::INVALID_VALUE, format!("{p}.Upper")),
        (codes::UNKNOWN_KEY, format!("{p}.typo.role_claim")),
        (codes::INVALID_VALUE, format!("{p}.clash.issuer")),
    ] {
        assert!(err.has(code, &path), "no {code} at {path} in:\n{err}");
    }
    let text = err.to_string();
    assert!(text.contains("never accepted"), "{text}");
    assert!(text.contains("HMAC"), "{text}");
    assert!(text.contains("settings.yaml"), "{text}");
}

/// An identity provider can be added from the environment alone (containers without files).
#[test]
fn an_issuer_can_come_from_environment_variables() {
    let vars = [
        (
            "AMAS__AUTH__OIDC_ISSUERS__CORP__ISSUER",
            "https://login.example.com",
        ),
        ("AMAS__AUTH__OIDC_ISSUERS__CORP__AUDIENCES", "[amas]"),
        ("AMAS__AUTH__OIDC_ISSUERS__CORP__ROLES_CLAIM", "groups"),
    ];
    let cfg = load(&LoadOptions {
        config_dir: None,
        env: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let corp = &cfg.auth.oidc_issuers[0];
    assert_eq!(corp.name, "corp");
    assert_eq!(corp.roles_claim, ClaimPath::top("groups"));
}
