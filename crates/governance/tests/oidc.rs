//! Tokens from an OpenID Connect identity provider, verified against the mock provider of
//! `common` (discovery and a JWKS on 127.0.0.1:0 that the tests rotate or take down, counting
//! every request), so key caching, refetch limits and outages are observed from the provider's
//! side. The key set's lifetime is tested in `oidc_lifetime.rs`.
//!
//! Hostile tokens are signed with the real provider key, so only the property under test is
//! wrong.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use std::sync::Arc;

use amas_config::{JwksLocation, SigningAlgorithm, TenantMapping};
use amas_governance::auth::{AuthError, JwksError, JwksSource, JwksStatus, MAX_TOKEN_BYTES};
use amas_types::TenantId;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use common::{
    MockIdp, b64, claims, ec, ed, fixture, loaded, now, rsa_a, rsa_b, sign, sign_as, sign_raw,
    standard, verifier, wait_for,
};

// ---------------------------------------------------------------------------------------------
// Key discovery, caching, rotation and outages

/// The usual set-up: only the issuer URL is configured; the JWKS is found through discovery,
/// and the claims are mapped as configured.
#[tokio::test]
async fn discovery_works() {
    let key = rsa_a();
    let idp = MockIdp::start(&[&key]).await;
    let config = idp.config(true);
    let (source, verifier) = loaded(&config).await;
    assert_eq!((idp.discovery_hits(), idp.jwks_hits()), (1, 1));

    let principal = verifier.verify(&sign(&key, &claims(&idp))).await.unwrap();
    assert_eq!(principal.sub, "alice");
    assert_eq!(principal.roles, ["submitter", "viewer"]);
    assert_eq!(principal.tenant, TenantId("acme".into()));
    assert_eq!(principal.auth_method, "oidc:mock");

    let health = source.health();
    assert_eq!(health.status, JwksStatus::Ok);
    assert_eq!((health.keys, health.name.as_str()), (1, "mock"));
    assert!(health.last_success_unix.is_some());
}

/// A discovery document naming another issuer is refused: it could hand us a foreign JWKS.
#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let idp = MockIdp::start(&[&rsa_a()]).await;
    let mut config = idp.config(true);
    config.issuer = format!("{}/realms/other", idp.issuer());
    config.jwks = JwksLocation::Discovery {
        url: format!("{}/.well-known/openid-configuration", idp.base),
    };
    let source = JwksSource::new(&config).unwrap();
    assert_eq!(source.refresh().await, Err(JwksError::IssuerMismatch));
    assert_eq!(idp.jwks_hits(), 0);
}

/// A JWKS URL in config skips discovery; EC P-256 and Ed25519 keys verify as well as RSA.
#[tokio::test]
async fn explicit_jwks_url_works() {
    let (rsa, ec, ed) = (rsa_a(), ec(), ed());
    let idp = MockIdp::start(&[&rsa, &ec, &ed]).await;
    let (source, verifier) = loaded(&idp.config(false)).await;
    assert_eq!((idp.discovery_hits(), idp.jwks_hits()), (0, 1));
    assert_eq!(source.health().keys, 3);
    for key in [&rsa, &ec, &ed] {
        let principal = verifier.verify(&sign(key, &claims(&idp))).await;
        assert_eq!(principal.unwrap().sub, "alice", "{:?}", key.alg);
    }
}

/// A key the issuer does not allow is not loaded, so its tokens cannot verify.
#[tokio::test]
async fn keys_of_algorithms_the_issuer_does_not_allow_are_not_used() {
    let (rsa, ed) = (rsa_a(), ed());
    let idp = MockIdp::start(&[&rsa, &ed]).await;
    let mut config = idp.config(false);
    config.algorithms = vec![SigningAlgorithm::RS256];
    let (source, verifier) = loaded(&config).await;
    assert_eq!(source.health().keys, 1);
    assert!(verifier.verify(&sign(&rsa, &claims(&idp))).await.is_ok());
    assert_eq!(
        verifier.verify(&sign(&ed, &claims(&idp))).await,
        Err(AuthError::UnknownKey)
    );
}

/// The provider starts signing with a new key: its first token triggers one refetch and
/// verifies, without a restart.
#[tokio::test]
async fn rotation_picked_up() {
    let (a, b) = (rsa_a(), rsa_b());
    let idp = MockIdp::start(&[&a]).await;
    let (_source, verifier) = loaded(&idp.config(false)).await;
    assert!(verifier.verify(&sign(&a, &claims(&idp))).await.is_ok());

    idp.publish(&[&a, &b]);
    let principal = verifier.verify(&sign(&b, &claims(&idp))).await.unwrap();
    assert_eq!(principal.sub, "alice");
    assert_eq!(idp.jwks_hits(), 2);
    // Both keys now verify from the cache.
    assert!(verifier.verify(&sign(&a, &claims(&idp))).await.is_ok());
    assert!(verifier.verify(&sign(&b, &claims(&idp))).await.is_ok());
    assert_eq!(idp.jwks_hits(), 2);
}

/// The provider drops a key: once the background refresh ran (when the JWKS's `max-age`,
/// clamped to the configured bounds, ran out) tokens signed with it are refused.
#[tokio::test]
async fn removed_key_stops_verifying_after_refresh() {
    let (a, b) = (rsa_a(), rsa_b());
    let idp = MockIdp::start(&[&a, &b]).await;
    idp.set_cache_control("public, max-age=1");
    let (source, verifier) = loaded(&idp.config(false)).await;
    let old = sign(&a, &claims(&idp));
    assert!(verifier.verify(&old).await.is_ok());

    idp.publish(&[&b]);
    // Until the refresh, the cached key keeps verifying (no fetch per token).
    assert!(verifier.verify(&old).await.is_ok());
    let _refresh = source.spawn_refresh();
    wait_for("the background refresh", || idp.jwks_hits() >= 2).await;
    wait_for("the new key set", || source.health().keys == 1).await;

    assert_eq!(verifier.verify(&old).await, Err(AuthError::UnknownKey));
    assert!(verifier.verify(&sign(&b, &claims(&idp))).await.is_ok());
}

/// A hundred concurrent tokens with random `kid`s, then a hundred more: the provider sees
/// exactly one refetch, as concurrent misses share one fetch and further misses wait for the
/// refetch interval.
#[tokio::test]
async fn unknown_kid_triggers_exactly_one_refetch_under_a_flood() {
    let (idp, key, _source, verifier) = standard().await;
    let verifier = Arc::new(verifier);
    assert_eq!(idp.jwks_hits(), 1);
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let kid = uuid::Uuid::now_v7().to_string();
        let token = sign_as(&key, &kid, &claims(&idp));
        let verifier = Arc::clone(&verifier);
        flood.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = flood.join_next().await {
        assert_eq!(result.unwrap(), Err(AuthError::UnknownKey));
    }
    assert_eq!(idp.jwks_hits(), 2);

    for _ in 0..100 {
        let kid = uuid::Uuid::now_v7().to_string();
        let token = sign_as(&key, &kid, &claims(&idp));
        assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
    }
    assert_eq!(idp.jwks_hits(), 2);
    // The real key still verifies from the cache meanwhile.
    assert!(verifier.verify(&sign(&key, &claims(&idp))).await.is_ok());
}

/// The provider goes down: cached keys keep verifying, health shows the failure, and
/// recovery clears it.
#[tokio::test]
async fn idp_outage_keeps_cached_keys_verifying_and_health_reports_it() {
    let (idp, key, source, verifier) = standard().await;
    idp.set_up(false);
    assert_eq!(source.refresh().await, Err(JwksError::Status(503)));
    assert!(verifier.verify(&sign(&key, &claims(&idp))).await.is_ok());
    let health = verifier.health();
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].status, JwksStatus::Stale);
    assert_eq!(health[0].keys, 3);
    assert_eq!(health[0].consecutive_failures, 1);
    assert_eq!(health[0].last_error.as_deref(), Some("HTTP status 503"));

    idp.set_up(true);
    source.refresh().await.unwrap();
    let health = source.health();
    assert_eq!((health.status, health.last_error), (JwksStatus::Ok, None));
}

/// A provider that was never reachable: its tokens get a server-side error (not "bad
/// token"), and health says no key is available.
#[tokio::test]
async fn never_reachable_idp_is_unavailable_not_a_bad_token() {
    let key = rsa_a();
    let idp = MockIdp::start(&[&key]).await;
    idp.set_up(false);
    let config = idp.config(false);
    let source = Arc::new(JwksSource::new(&config).unwrap());
    let verifier = verifier(&source, &config);
    let err = verifier
        .verify(&sign(&key, &claims(&idp)))
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::KeysUnavailable);
    assert!(!err.is_client_error());
    assert_eq!(source.health().status, JwksStatus::Unavailable);
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken tokens

#[tokio::test]
async fn expired() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c["iat"] = json!(now() - 700);
    c["nbf"] = json!(now() - 700);
    c["exp"] = json!(now() - 60);
    assert_eq!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::Expired)
    );
}

#[tokio::test]
async fn not_yet_valid() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c["nbf"] = json!(now() + 120);
    assert_eq!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::NotYetValid)
    );
    let mut c = claims(&idp);
    c["iat"] = json!(now() + 120);
    c["nbf"] = json!(now());
    assert_eq!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::NotYetValid)
    );
}

/// A token naming an issuer we do not trust is refused, even when signed by a trusted key.
#[tokio::test]
async fn wrong_issuer() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c["iss"] = json!(format!("{}/", idp.issuer()));
    assert_eq!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::UnknownIssuer)
    );
    c["iss"] = json!(["not", "a", "string"]);
    assert!(matches!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::Malformed(_))
    ));
}

/// `aud` must name one of the configured audiences; an array naming one of them passes.
#[tokio::test]
async fn wrong_audience() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c["aud"] = json!("billing");
    assert_eq!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::WrongAudience)
    );
    c["aud"] = json!(["billing", "amas-admin"]);
    assert!(verifier.verify(&sign(&key, &c)).await.is_ok());
    c.as_object_mut().unwrap().remove("aud");
    assert!(verifier.verify(&sign(&key, &c)).await.is_err());
}

/// An unsigned token is refused, whatever its claims.
#[tokio::test]
async fn alg_none() {
    let (idp, key, _source, verifier) = standard().await;
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": alg, "kid": key.kid}).to_string().as_bytes());
        let payload = b64(claims(&idp).to_string().as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2ln"),
        ] {
            assert_eq!(
                verifier.verify(&token).await,
                Err(AuthError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
    }
}

/// Algorithm confusion: an HMAC signature keyed with the issuer's public key (in any form an
/// attacker could fetch) never verifies; nor does a header naming another asymmetric
/// algorithm than the key's.
#[tokio::test]
async fn hs256_signed_with_the_public_key() {
    let (idp, key, _source, verifier) = standard().await;
    let public_pem = fixture("rsa_a.pub.pem");
    let n = key.jwk["n"].as_str().unwrap().as_bytes().to_vec();
    let jwk_text = key.jwk.to_string().into_bytes();
    for secret in [public_pem, n, jwk_text] {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid}).to_string();
        let hmac = EncodingKey::from_secret(&secret);
        let token = sign_raw(&header, &claims(&idp).to_string(), &hmac, Algorithm::HS256);
        assert_eq!(
            verifier.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm)
        );
    }
    // ES256 header on the RSA key's kid: the key decides the algorithm, not the header.
    let ec = ec();
    let token = sign_as(&ec, &key.kid, &claims(&idp));
    assert_eq!(
        verifier.verify(&token).await,
        Err(AuthError::UnsupportedAlgorithm)
    );
}

#[tokio::test]
async fn unknown_kid() {
    let (idp, key, _source, verifier) = standard().await;
    let token = sign_as(&key, "no-such-key", &claims(&idp));
    assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
    let header = json!({"alg": "RS256", "typ": "JWT"}).to_string();
    let no_kid = sign_raw(
        &header,
        &claims(&idp).to_string(),
        &key.signing,
        Algorithm::RS256,
    );
    assert_eq!(verifier.verify(&no_kid).await, Err(AuthError::UnknownKey));
}

/// Granting oneself a role by editing the payload breaks the signature.
#[tokio::test]
async fn tampered_payload() {
    let (idp, key, _source, verifier) = standard().await;
    let token = sign(&key, &claims(&idp));
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims(&idp);
    c["realm_access"]["roles"] = json!(["admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(verifier.verify(&forged).await, Err(AuthError::BadSignature));
}

#[tokio::test]
async fn missing_sub() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c.as_object_mut().unwrap().remove("sub");
    assert!(matches!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::Malformed(_))
    ));
    for bad in [json!(""), json!(42), json!({"id": "alice"})] {
        c["sub"] = bad;
        assert!(matches!(
            verifier.verify(&sign(&key, &c)).await,
            Err(AuthError::Malformed(_))
        ));
    }
}

/// serde_json keeps the last of two equal member names, other parsers the first: a token
/// with duplicates could mean different things to AMAS and to a gateway in front of it, so a
/// repeated name anywhere (payload, nested claim, header) is refused even when the signature
/// is valid. Detected by a dedicated pass over the JSON before any value is read.
#[tokio::test]
async fn duplicate_claims() {
    let (idp, key, _source, verifier) = standard().await;
    let now = now();
    let iss = idp.issuer();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": key.kid}).to_string();
    let payloads = [
        format!(
            r#"{{"iss":"{iss}","aud":"amas","sub":"alice","sub":"admin","exp":{},"tenant":"acme"}}"#,
            now + 600
        ),
        format!(
            r#"{{"iss":"{iss}","aud":"amas","sub":"alice","exp":{},"tenant":"acme","tenant":"other"}}"#,
            now + 600
        ),
        format!(
            r#"{{"iss":"{iss}","aud":"amas","sub":"alice","exp":{},"tenant":"acme","realm_access":{{"roles":[],"roles":["admin"]}}}}"#,
            now + 600
        ),
        // The same name spelled with a JSON escape is still the same name.
        format!(
            r#"{{"iss":"{iss}","aud":"amas","sub":"alice","s\u0075b":"admin","exp":{},"tenant":"acme"}}"#,
            now + 600
        ),
    ];
    for payload in &payloads {
        let token = sign_raw(&header, payload, &key.signing, Algorithm::RS256);
        assert!(
            matches!(verifier.verify(&token).await, Err(AuthError::Malformed(_))),
            "{payload}"
        );
    }
    let dup_header = format!(r#"{{"alg":"RS256","kid":"{}","kid":"other"}}"#, key.kid);
    let token = sign_raw(
        &dup_header,
        &claims(&idp).to_string(),
        &key.signing,
        Algorithm::RS256,
    );
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::Malformed(_))
    ));
}

/// A huge token is refused by its length alone, before any decoding; a token just under
/// the limit is still read.
#[tokio::test]
async fn oversized_token() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let token = sign(&key, &c);
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(verifier.verify(&token).await, Err(AuthError::TooLarge));
    let garbage = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(verifier.verify(&garbage).await, Err(AuthError::TooLarge));

    c["padding"] = json!("x".repeat(4000));
    assert!(verifier.verify(&sign(&key, &c)).await.is_ok());
}

/// Roles come only from the mapped claim (`realm_access.roles`) and only as an array of
/// strings: roles put in another claim, a lookalike top-level name with a dot, a string, an
/// object or nested arrays grant nothing.
#[tokio::test]
async fn role_escalation_through_a_crafted_claim() {
    let (idp, key, _source, verifier) = standard().await;
    let crafted = [
        json!({"roles": ["admin"], "realm_access": {"roles": ["viewer"]}}),
        json!({"realm_access.roles": ["admin"], "realm_access": {"roles": ["viewer"]}}),
        json!({"groups": ["admin"], "resource_access": {"amas": {"roles": ["admin"]}}}),
        json!({"realm_access": {"roles": "admin"}}),
        json!({"realm_access": {"roles": {"admin": true}}}),
        json!({"realm_access": {"roles": [["admin"], {"name": "admin"}, 1, "viewer"]}}),
        json!({"realm_access": ["admin"]}),
    ];
    for extra in crafted {
        let mut c = claims(&idp);
        c.as_object_mut().unwrap().remove("realm_access");
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let principal = verifier.verify(&sign(&key, &c)).await.unwrap();
        assert!(
            !principal.roles.iter().any(|r| r == "admin"),
            "{extra} granted {:?}",
            principal.roles
        );
        assert!(principal.roles.iter().all(|r| r == "viewer"), "{extra}");
    }
}

/// A valid, unexpired token issued longer ago than `max_token_age` is refused; `iat` is
/// then required.
#[tokio::test]
async fn max_token_age() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c["iat"] = json!(now() - 3600 - 60);
    c["nbf"] = json!(now() - 3600 - 60);
    c["exp"] = json!(now() + 600);
    assert_eq!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::TooOld)
    );
    c.as_object_mut().unwrap().remove("iat");
    assert!(matches!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::Malformed(_))
    ));
}

/// No tenant claim: refused (fail closed) unless the issuer has a fixed tenant, which then
/// wins over whatever the token says.
#[tokio::test]
async fn missing_tenant_fails_closed_unless_the_issuer_has_a_fixed_tenant() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c.as_object_mut().unwrap().remove("tenant");
    assert_eq!(
        verifier.verify(&sign(&key, &c)).await,
        Err(AuthError::MissingTenant)
    );

    let mut config = idp.config(false);
    config.tenant = TenantMapping::Fixed("corp".to_owned());
    let (_source, fixed) = loaded(&config).await;
    let principal = fixed.verify(&sign(&key, &c)).await.unwrap();
    assert_eq!(principal.tenant, TenantId("corp".into()));
    c["tenant"] = json!("acme");
    let principal = fixed.verify(&sign(&key, &c)).await.unwrap();
    assert_eq!(principal.tenant, TenantId("corp".into()));
}

/// Errors name the reason only: nothing of the token (or its claims) reaches messages that
/// end up in logs and response bodies.
#[tokio::test]
async fn errors_never_echo_the_token() {
    let (idp, key, _source, verifier) = standard().await;
    let mut c = claims(&idp);
    c["aud"] = json!("secret-audience-marker");
    let token = sign(&key, &c);
    let err = verifier.verify(&token).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("secret-audience-marker"));
    assert!(!shown.contains(&token[..20]));
}
