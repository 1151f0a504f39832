//! Token verification against the local issuer: the happy path and every way a token must be
//! refused. Hostile tokens are signed with the real key read from disk, so only the property
//! under test is wrong.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed set-up should abort the test"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use amas_governance::auth::{AuthError, KeySource, LocalIssuer, TokenVerifier};
use amas_types::TenantId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISS: &str = "https://amas.local";
const AUD: &str = "amas-api";
const LEEWAY: Duration = Duration::from_secs(30);

struct Fixture {
    dir: tempfile::TempDir,
    issuer: Arc<LocalIssuer>,
    verifier: TokenVerifier,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let issuer = Arc::new(LocalIssuer::load_or_create(dir.path(), ISS, AUD).unwrap());
    let verifier = verifier_for(vec![issuer.clone()]);
    Fixture {
        dir,
        issuer,
        verifier,
    }
}

fn verifier_for(sources: Vec<Arc<LocalIssuer>>) -> TokenVerifier {
    let sources = sources
        .into_iter()
        .map(|s| s as Arc<dyn KeySource>)
        .collect();
    TokenVerifier::new(sources, AUD.to_owned(), LEEWAY)
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn good_claims() -> Value {
    let now = now();
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "nbf": now, "exp": now + 600})
}

/// Signs `claims` with the private key stored under `data_dir`, naming `kid` in the header.
fn sign_with_key_in(data_dir: &Path, kid: &str, claims: &Value) -> String {
    let der = std::fs::read(data_dir.join("keys/jwt-ed25519.pk8")).unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der)).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test]
async fn minted_token_verifies_to_its_principal() {
    let f = fixture();
    let roles = vec!["submitter".to_owned(), "auditor".to_owned()];
    let token = f
        .issuer
        .mint("alice", &roles, Some("acme"), Duration::from_secs(300))
        .unwrap();
    let principal = f.verifier.verify(&token).await.unwrap();
    assert_eq!(principal.sub, "alice");
    assert_eq!(principal.roles, roles);
    assert_eq!(principal.tenant, TenantId("acme".to_owned()));
    assert_eq!(principal.auth_method, "local_jwt");
}

#[tokio::test]
async fn missing_roles_and_tenant_fall_back_to_defaults() {
    let f = fixture();
    let token = sign_with_key_in(f.dir.path(), f.issuer.kid(), &good_claims());
    let principal = f.verifier.verify(&token).await.unwrap();
    assert!(principal.roles.is_empty());
    assert_eq!(principal.tenant, TenantId::default_tenant());
}

#[tokio::test]
async fn key_survives_restart_and_old_tokens_still_verify() {
    let f = fixture();
    let token = f
        .issuer
        .mint("bob", &[], None, Duration::from_secs(300))
        .unwrap();
    let reloaded = Arc::new(LocalIssuer::load_or_create(f.dir.path(), ISS, AUD).unwrap());
    assert_eq!(reloaded.kid(), f.issuer.kid());
    let principal = verifier_for(vec![reloaded]).verify(&token).await.unwrap();
    assert_eq!(principal.sub, "bob");
}

#[tokio::test]
async fn empty_token_is_missing_and_garbage_is_malformed() {
    let f = fixture();
    assert_eq!(f.verifier.verify("").await, Err(AuthError::Missing));
    for garbage in ["garbage", "a.b.c", "a.b", "....", "eyJ.eyJ.sig"] {
        let err = f.verifier.verify(garbage).await.unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{garbage}: {err:?}");
    }
}

#[tokio::test]
async fn token_signed_by_another_key_under_our_kid_has_a_bad_signature() {
    let f = fixture();
    let other = tempfile::tempdir().unwrap();
    LocalIssuer::load_or_create(other.path(), ISS, AUD).unwrap();
    let forged = sign_with_key_in(other.path(), f.issuer.kid(), &good_claims());
    assert_eq!(
        f.verifier.verify(&forged).await,
        Err(AuthError::BadSignature)
    );
}

#[tokio::test]
async fn tampered_payload_has_a_bad_signature() {
    let f = fixture();
    let token = f
        .issuer
        .mint("alice", &[], None, Duration::from_secs(300))
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = good_claims();
    claims["roles"] = json!(["admin"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_eq!(
        f.verifier.verify(&tampered).await,
        Err(AuthError::BadSignature)
    );
}

#[tokio::test]
async fn expiry_is_enforced_beyond_the_leeway_only() {
    let f = fixture();
    let mut claims = good_claims();
    claims["iat"] = json!(now() - 1000);
    claims["nbf"] = json!(now() - 1000);
    claims["exp"] = json!(now() - 120);
    let expired = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    assert_eq!(f.verifier.verify(&expired).await, Err(AuthError::Expired));

    // Within the leeway, a just-expired token is still accepted (clock skew).
    claims["exp"] = json!(now() - 5);
    let skewed = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    assert!(f.verifier.verify(&skewed).await.is_ok());
}

#[tokio::test]
async fn token_without_exp_is_refused() {
    let f = fixture();
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("exp");
    let token = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    assert!(matches!(
        f.verifier.verify(&token).await,
        Err(AuthError::Malformed(_))
    ));
}

#[tokio::test]
async fn future_nbf_or_iat_is_not_yet_valid() {
    let f = fixture();
    let mut claims = good_claims();
    claims["nbf"] = json!(now() + 300);
    let early = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    assert_eq!(f.verifier.verify(&early).await, Err(AuthError::NotYetValid));

    let mut claims = good_claims();
    claims["iat"] = json!(now() + 300);
    let from_the_future = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    assert_eq!(
        f.verifier.verify(&from_the_future).await,
        Err(AuthError::NotYetValid)
    );
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let f = fixture();
    let other_aud = LocalIssuer::load_or_create(f.dir.path(), ISS, "billing-api").unwrap();
    let token = other_aud
        .mint("alice", &[], None, Duration::from_secs(300))
        .unwrap();
    assert_eq!(
        f.verifier.verify(&token).await,
        Err(AuthError::WrongAudience)
    );
}

#[tokio::test]
async fn untrusted_issuer_is_refused_even_with_our_key() {
    let f = fixture();
    let mut claims = good_claims();
    claims["iss"] = json!("https://evil.example");
    let token = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    assert_eq!(
        f.verifier.verify(&token).await,
        Err(AuthError::UnknownIssuer)
    );

    claims.as_object_mut().unwrap().remove("iss");
    let token = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    assert!(matches!(
        f.verifier.verify(&token).await,
        Err(AuthError::Malformed(_))
    ));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = fixture();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "kid": f.issuer.kid(), "typ": "JWT"});
        let token = format!("{}.{}.", b64(&header), b64(&good_claims()));
        assert_eq!(
            f.verifier.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    // Algorithm confusion: an attacker knows the public key (it is in the JWKS) and uses it as
    // an HMAC secret, hoping the verifier feeds the same bytes to HMAC.
    let f = fixture();
    let jwks = f.issuer.jwks();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let public = URL_SAFE_NO_PAD.decode(x).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(f.issuer.kid().to_owned());
    for secret in [public.as_slice(), x.as_bytes()] {
        let token =
            jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(secret))
                .unwrap();
        assert_eq!(
            f.verifier.verify(&token).await,
            Err(AuthError::UnsupportedAlgorithm)
        );
    }
}

#[tokio::test]
async fn unknown_or_absent_kid_is_refused() {
    let f = fixture();
    let token = sign_with_key_in(f.dir.path(), "not-our-kid", &good_claims());
    assert_eq!(f.verifier.verify(&token).await, Err(AuthError::UnknownKey));

    let der = std::fs::read(f.dir.path().join("keys/jwt-ed25519.pk8")).unwrap();
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &good_claims(),
        &EncodingKey::from_ed_der(&der),
    )
    .unwrap();
    assert_eq!(f.verifier.verify(&no_kid).await, Err(AuthError::UnknownKey));
}

#[tokio::test]
async fn error_messages_never_contain_the_token() {
    let f = fixture();
    let mut claims = good_claims();
    claims["exp"] = json!(now() - 1000);
    let token = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    let err = f.verifier.verify(&token).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    for part in token.split('.') {
        assert!(!shown.contains(part), "{shown}");
    }
}

#[cfg(unix)]
#[test]
fn key_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let meta = std::fs::metadata(f.dir.path().join("keys/jwt-ed25519.pk8")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

/// A verified token is remembered (the next request skips the signature check), but never past
/// its own `exp`: after it, full verification decides again (here with no leeway: expired).
#[tokio::test]
async fn a_remembered_token_still_expires() {
    let f = fixture();
    let strict = TokenVerifier::new(
        vec![f.issuer.clone() as Arc<dyn KeySource>],
        AUD.to_owned(),
        Duration::ZERO,
    );
    let mut claims = good_claims();
    claims["exp"] = json!(now() + 2);
    let token = sign_with_key_in(f.dir.path(), f.issuer.kid(), &claims);
    let first = strict.verify(&token).await.unwrap();
    assert_eq!(strict.verify(&token).await.unwrap(), first);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(strict.verify(&token).await, Err(AuthError::Expired));
}

/// Identity is (issuer, subject) (security review M6): the same `sub` from two trusted issuers
/// verifies to two principals that carry their verified issuer and are two identities.
#[tokio::test]
async fn the_same_sub_from_two_issuers_is_two_identities() {
    let a = fixture();
    let other_dir = tempfile::tempdir().unwrap();
    let b = Arc::new(
        LocalIssuer::load_or_create(other_dir.path(), "https://idp-b.example", AUD).unwrap(),
    );
    let verifier = verifier_for(vec![Arc::clone(&a.issuer), Arc::clone(&b)]);
    let roles = vec!["submitter".to_owned()];
    let ttl = Duration::from_secs(600);
    let from_a = verifier
        .verify(&a.issuer.mint("alice", &roles, Some("acme"), ttl).unwrap())
        .await
        .unwrap();
    let from_b = verifier
        .verify(&b.mint("alice", &roles, Some("acme"), ttl).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (from_a.sub.as_str(), from_b.sub.as_str()),
        ("alice", "alice")
    );
    assert_eq!(from_a.tenant, from_b.tenant);
    assert_eq!(from_a.issuer, ISS);
    assert_eq!(from_b.issuer, "https://idp-b.example");
    assert_ne!(from_a.identity(), from_b.identity(), "two people");
}
