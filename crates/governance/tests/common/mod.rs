//! The mock identity provider the OIDC tests verify against: an axum server on 127.0.0.1:0
//! serving discovery and a JWKS the tests rotate (new keys, removed keys, new material under an
//! old `kid`), give a `Cache-Control` of their choosing, or take down, counting every request,
//! so key caching, lifetimes, refetch limits and outages are observed from the provider's side.
//! Keys are committed test fixtures (RSA, EC P-256, Ed25519); tokens are signed with them.
#![allow(
    dead_code,
    reason = "compiled into several test binaries, each using a subset: an expect would be \
              unfulfilled in those using all (allow_attributes checks outer attributes only)"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amas_config::{
    ClaimPath, JwksCacheConfig, JwksLocation, OidcIssuerConfig, SigningAlgorithm, TenantMapping,
};
use amas_governance::auth::{IssuerPolicy, JwksSource, KeySource, TokenVerifier};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

pub const AUD: &str = "amas";

// ---------------------------------------------------------------------------------------------
// The mock identity provider

pub struct IdpState {
    issuer: String,
    jwks: Mutex<Value>,
    cache_control: Mutex<String>,
    up: AtomicBool,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
}

pub struct MockIdp {
    pub base: String,
    pub state: Arc<IdpState>,
}

impl MockIdp {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let state = Arc::new(IdpState {
            issuer: base.clone(),
            jwks: Mutex::new(jwks(keys)),
            cache_control: Mutex::new("public, max-age=3600".to_owned()),
            up: AtomicBool::new(true),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/protocol/openid-connect/certs", get(certs))
            .with_state(Arc::clone(&state));
        #[expect(
            clippy::disallowed_methods,
            reason = "test scaffolding: a server or a race that ends with the test"
        )]
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, state }
    }

    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/protocol/openid-connect/certs", self.base)
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock().unwrap() = jwks(keys);
    }

    pub fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock().unwrap() = value.to_owned();
    }

    pub fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    /// The issuer's config as an operator would write it; tests adjust fields.
    pub fn config(&self, by_discovery: bool) -> OidcIssuerConfig {
        let jwks = if by_discovery {
            JwksLocation::Discovery {
                url: format!("{}/.well-known/openid-configuration", self.base),
            }
        } else {
            JwksLocation::Url {
                url: self.jwks_url(),
            }
        };
        OidcIssuerConfig {
            name: "mock".to_owned(),
            issuer: self.issuer().to_owned(),
            jwks,
            audiences: vec![AUD.to_owned(), "amas-admin".to_owned()],
            algorithms: vec![
                SigningAlgorithm::RS256,
                SigningAlgorithm::ES256,
                SigningAlgorithm::EdDSA,
            ],
            clock_leeway: Duration::from_secs(5),
            max_token_age: Some(Duration::from_secs(3600)),
            jwks_cache: JwksCacheConfig {
                min_refresh: Duration::from_secs(1),
                max_refresh: Duration::from_secs(3600),
                unknown_kid_refetch_interval: Duration::from_secs(60),
                http_timeout: Duration::from_secs(2),
            },
            roles_claim: ClaimPath(vec!["realm_access".to_owned(), "roles".to_owned()]),
            tenant: TenantMapping::Claim(ClaimPath::top("tenant")),
        }
    }
}

async fn discovery(State(idp): State<Arc<IdpState>>) -> Response {
    idp.discovery_hits.fetch_add(1, Ordering::SeqCst);
    if !idp.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(json!({
        "issuer": idp.issuer,
        "jwks_uri": format!("{}/protocol/openid-connect/certs", idp.issuer),
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
    }))
    .into_response()
}

async fn certs(State(idp): State<Arc<IdpState>>) -> Response {
    idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if !idp.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = idp.jwks.lock().unwrap().clone();
    let cache_control = idp.cache_control.lock().unwrap().clone();
    ([(header::CACHE_CONTROL, cache_control)], axum::Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Keys and tokens

pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub signing: EncodingKey,
    pub jwk: Value,
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/oidc/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

pub fn test_key(file: &str, alg: Algorithm, kid: &str) -> TestKey {
    let pem = fixture(file);
    let signing = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        other => panic!("no fixture for {other:?}"),
    }
    .unwrap();
    let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&signing, alg).unwrap()).unwrap();
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    TestKey {
        kid: kid.to_owned(),
        alg,
        signing,
        jwk,
    }
}

pub fn rsa_a() -> TestKey {
    test_key("rsa_a.pem", Algorithm::RS256, "rsa-a")
}

pub fn rsa_b() -> TestKey {
    test_key("rsa_b.pem", Algorithm::RS256, "rsa-b")
}

pub fn ec() -> TestKey {
    test_key("ec_p256.pem", Algorithm::ES256, "ec-1")
}

pub fn ed() -> TestKey {
    test_key("ed25519.pem", Algorithm::EdDSA, "ed-1")
}

pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

pub fn now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

pub fn claims(idp: &MockIdp) -> Value {
    let now = now();
    json!({
        "iss": idp.issuer(), "aud": AUD, "sub": "alice", "iat": now, "nbf": now,
        "exp": now + 600, "tenant": "acme",
        "realm_access": {"roles": ["submitter", "viewer"]},
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs the exact header and payload text given (so tests can craft duplicate members).
pub fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

pub fn sign(key: &TestKey, claims: &Value) -> String {
    sign_as(key, &key.kid, claims)
}

pub fn sign_as(key: &TestKey, kid: &str, claims: &Value) -> String {
    let alg = alg_name(key.alg);
    let header = json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string();
    sign_raw(&header, &claims.to_string(), &key.signing, key.alg)
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
        other => panic!("unexpected {other:?}"),
    }
}

/// A source that has fetched once, and a verifier trusting only it.
pub async fn loaded(config: &OidcIssuerConfig) -> (Arc<JwksSource>, TokenVerifier) {
    let source = Arc::new(JwksSource::new(config).unwrap());
    source.refresh().await.unwrap();
    let verifier = verifier(&source, config);
    (source, verifier)
}

pub fn verifier(source: &Arc<JwksSource>, config: &OidcIssuerConfig) -> TokenVerifier {
    TokenVerifier::new(Vec::new(), AUD.to_owned(), Duration::ZERO).with_issuer(
        Arc::clone(source) as Arc<dyn KeySource>,
        IssuerPolicy::oidc(config),
    )
}

/// A mock provider publishing every fixture key, and a verifier that loaded them.
pub async fn standard() -> (MockIdp, TestKey, Arc<JwksSource>, TokenVerifier) {
    let key = rsa_a();
    let idp = MockIdp::start(&[&key, &ec(), &ed()]).await;
    let (source, verifier) = loaded(&idp.config(false)).await;
    (idp, key, source, verifier)
}

pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
