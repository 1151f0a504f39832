//! The lifetime of an identity provider's key set (issue 13, review L2.2): a key is trusted
//! only while the JWKS that published it is within its `Cache-Control: max-age`, bounded by
//! `jwks_cache.min_refresh ..= max_refresh`. Past it, the JWKS is fetched again before any of
//! its keys verifies a token (at most once per `unknown_kid_refetch_interval`), so a key the
//! provider removed, or replaced under the same `kid`, is refused, also for tokens verified
//! before; and when the provider cannot be reached, the issuer's tokens are refused (503).
//!
//! No background refresh runs in these tests unless one says so: only the expiry itself can
//! trigger the fetches counted here. Against the mock identity provider of `common`.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use amas_governance::auth::{AuthError, JwksSource, JwksStatus};
use jsonwebtoken::Algorithm;

use common::{MockIdp, TestKey, claims, loaded, rsa_a, rsa_b, sign, test_key, wait_for};

/// The mock provider publishing `keys` with a one-second `max-age`, and a config trusting it
/// for exactly that long (`min_refresh` 1 s), refetching on demand at most once a minute.
async fn short_lived(keys: &[&TestKey]) -> (MockIdp, amas_config::OidcIssuerConfig) {
    let idp = MockIdp::start(keys).await;
    idp.set_cache_control("public, max-age=1");
    let mut config = idp.config(false);
    config.jwks_cache.min_refresh = Duration::from_secs(1);
    config.jwks_cache.max_refresh = Duration::from_secs(3600);
    config.jwks_cache.unknown_kid_refetch_interval = Duration::from_secs(60);
    (idp, config)
}

async fn until_expired(source: &JwksSource) {
    wait_for("the key set's lifetime to end", || {
        source.health().status == JwksStatus::Expired
    })
    .await;
}

/// The reported bug: the provider removes a key, its `max-age` passes, and tokens signed with
/// the removed key must stop verifying, without any background refresh: the first token after
/// the expiry makes AMAS ask the provider again, which no longer lists the key. The token was
/// verified (and remembered) before, so the remembered-token cache is checked too. The key the
/// provider still publishes keeps working, from the one refetch.
#[tokio::test]
async fn a_removed_key_is_refused_once_its_key_set_expires() {
    let (a, b) = (rsa_a(), rsa_b());
    let (idp, config) = short_lived(&[&a, &b]).await;
    let (source, verifier) = loaded(&config).await;
    let old = sign(&a, &claims(&idp));
    assert_eq!(verifier.verify(&old).await.unwrap().sub, "alice");
    // Within the lifetime: no fetch per token.
    assert!(verifier.verify(&old).await.is_ok());
    assert_eq!(idp.jwks_hits(), 1);

    idp.publish(&[&b]);
    until_expired(&source).await;
    assert_eq!(idp.jwks_hits(), 1, "nothing refreshed in the background");

    assert_eq!(verifier.verify(&old).await, Err(AuthError::UnknownKey));
    assert_eq!(
        idp.jwks_hits(),
        2,
        "one refetch, when the expired key was asked for"
    );
    assert_eq!(source.health().status, JwksStatus::Ok);
    assert_eq!(source.health().keys, 1);
    assert!(verifier.verify(&sign(&b, &claims(&idp))).await.is_ok());
    assert_eq!(idp.jwks_hits(), 2);
}

/// The provider rotates the key material but keeps the `kid`: once the old set expires, a
/// token signed with the old material (remembered as verified) is refused, and a token signed
/// with the new material verifies.
#[tokio::test]
async fn new_material_under_the_same_kid_refuses_tokens_of_the_old_one() {
    let old_key = rsa_a();
    let new_key = test_key("rsa_b.pem", Algorithm::RS256, &old_key.kid);
    let (idp, config) = short_lived(&[&old_key]).await;
    let (source, verifier) = loaded(&config).await;
    let old = sign(&old_key, &claims(&idp));
    assert!(verifier.verify(&old).await.is_ok());

    idp.publish(&[&new_key]);
    until_expired(&source).await;
    assert_eq!(verifier.verify(&old).await, Err(AuthError::BadSignature));
    assert!(
        verifier
            .verify(&sign(&new_key, &claims(&idp)))
            .await
            .is_ok()
    );
    assert_eq!(idp.jwks_hits(), 2);
}

/// Within its lifetime the key set keeps verifying while the provider is down; past it, the
/// issuer's tokens are refused as a server-side failure (503, AMAS-AUTH-0016, not "bad
/// token"), and health says the set expired. Once the provider answers again, they verify.
#[tokio::test]
async fn an_expired_key_set_the_provider_cannot_renew_fails_closed() {
    let a = rsa_a();
    let (idp, config) = short_lived(&[&a]).await;
    let (source, verifier) = loaded(&config).await;
    let token = sign(&a, &claims(&idp));
    idp.set_up(false);
    assert!(verifier.verify(&token).await.is_ok(), "within the lifetime");

    until_expired(&source).await;
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err, AuthError::KeysExpired);
    assert!(!err.is_client_error());
    assert_eq!(err.code(), "AMAS-AUTH-0016");
    let health = source.health();
    assert_eq!(health.status, JwksStatus::Expired);
    assert_eq!(health.last_error.as_deref(), Some("HTTP status 503"));
    // A fresh token (not remembered) is refused the same way.
    let mut c = claims(&idp);
    c["sub"] = serde_json::json!("bob");
    assert_eq!(
        verifier.verify(&sign(&a, &c)).await,
        Err(AuthError::KeysExpired)
    );

    idp.set_up(true);
    source.refresh().await.unwrap();
    assert_eq!(source.health().status, JwksStatus::Ok);
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "alice");
}

/// A flood of tokens arriving after the key set expired, while the provider is down, costs the
/// provider one request: the on-demand refetch is rate limited like an unknown `kid`'s, and
/// concurrent requests share it.
#[tokio::test]
async fn refetching_an_expired_key_set_is_rate_limited_under_a_flood() {
    let a = rsa_a();
    let (idp, config) = short_lived(&[&a]).await;
    let (source, verifier) = loaded(&config).await;
    let verifier = Arc::new(verifier);
    idp.set_up(false);
    until_expired(&source).await;
    let before = idp.jwks_hits();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..100 {
        let mut c = claims(&idp);
        c["sub"] = serde_json::json!(format!("user-{i}"));
        let token = sign(&a, &c);
        let verifier = Arc::clone(&verifier);
        flood.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(result) = flood.join_next().await {
        assert_eq!(result.unwrap(), Err(AuthError::KeysExpired));
    }
    assert_eq!(idp.jwks_hits(), before + 1);
}

/// The provider's `max-age` is bounded by configuration: a day-long `max-age` is cut to
/// `max_refresh` (the set expires after one second), and `no-store` is raised to
/// `min_refresh` (the set is still within its lifetime right after the fetch).
#[tokio::test]
async fn the_providers_max_age_is_bounded_by_configuration() {
    let a = rsa_a();
    let (idp, mut config) = short_lived(&[&a]).await;
    idp.set_cache_control("public, max-age=86400");
    config.jwks_cache.max_refresh = Duration::from_secs(1);
    let (source, verifier) = loaded(&config).await;
    assert_eq!(source.health().status, JwksStatus::Ok);
    until_expired(&source).await;
    idp.set_up(false);
    assert_eq!(
        verifier.verify(&sign(&a, &claims(&idp))).await,
        Err(AuthError::KeysExpired)
    );

    let (idp, mut config) = short_lived(&[&a]).await;
    idp.set_cache_control("no-store");
    config.jwks_cache.min_refresh = Duration::from_secs(600);
    config.jwks_cache.max_refresh = Duration::from_secs(600);
    let (source, verifier) = loaded(&config).await;
    assert_eq!(source.health().status, JwksStatus::Ok);
    let hits = idp.jwks_hits();
    assert!(verifier.verify(&sign(&a, &claims(&idp))).await.is_ok());
    assert_eq!(idp.jwks_hits(), hits, "no refetch within min_refresh");
}
