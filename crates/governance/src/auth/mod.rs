//! Authentication: turning a bearer token into a verified `Principal`.
//!
//! Keys come from a `KeySource` per issuer: the `LocalIssuer` (AMAS as its own issuer) and a
//! `JwksSource` per configured OpenID Connect identity provider; one `TokenVerifier` checks
//! every token against the issuer its `iss` names, with that issuer's `IssuerPolicy`.

pub mod audit_key;
mod claims;
mod error;
mod jwk;
mod jwks;
mod keyfile;
mod local;
mod verify;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, DecodingKey};

pub use audit_key::{AuditKey, AuditKeyError};
pub use claims::{IssuerPolicy, TenantRule};
pub use error::AuthError;
pub use jwks::{IssuerHealth, JwksError, JwksSource, JwksStatus};
pub use local::LocalIssuer;
pub use verify::{MAX_TOKEN_BYTES, TokenVerifier};

/// The secret that keys this installation's hash-mode redaction tokens: `AMAS_REDACT_KEY` when
/// set (so several workers share one), else `keys/redact-hmac.key` under `data_dir`, 32 random
/// bytes created owner-only on first use. Never a constant: with a public key a keyed hash of a
/// low-entropy value (an SSN, an email) could be reversed by trying them all.
///
/// # Errors
/// [`AuthError::KeyStore`] when the file cannot be read or created, or is not owner-only.
pub fn redaction_secret(data_dir: &std::path::Path) -> Result<String, AuthError> {
    if let Ok(key) = std::env::var("AMAS_REDACT_KEY")
        && !key.is_empty()
    {
        return Ok(key);
    }
    let secret = keyfile::load_or_create_secret(&keyfile::redaction_secret_path(data_dir))?;
    Ok(secret.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `auth_method` recorded on principals whose token was verified against the local issuer.
pub const LOCAL_JWT_METHOD: &str = "local_jwt";

/// A public key able to verify tokens, and the one algorithm it may be used with.
#[derive(Clone)]
pub struct VerificationKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
    /// SHA-256 of the public key material: tells a key from another one published later under
    /// the same `kid`, so a token verified with the old one is not taken for verified.
    pub fingerprint: [u8; 32],
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Where the verification keys of one token issuer come from.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The key with this `kid`, or `None` when the issuer has no such key.
    async fn key(&self, kid: &str) -> Result<Option<VerificationKey>, AuthError>;
    /// The exact `iss` claim this source's tokens carry.
    fn issuer(&self) -> &str;
    /// The `auth_method` recorded on principals verified by this source.
    fn auth_method(&self) -> &str {
        LOCAL_JWT_METHOD
    }
    /// The state of a remotely fetched key set; `None` for sources that fetch nothing.
    fn health(&self) -> Option<IssuerHealth> {
        None
    }
}

/// A verifier trusting the local issuer (`local`) and every OIDC issuer of `config`, whose
/// key sets start refreshing in the background (call inside a Tokio runtime).
///
/// # Errors
/// `AuthError::KeyStore` when an HTTP client cannot be built.
pub fn verifier_from_config(
    config: &amas_config::AuthConfig,
    local: std::sync::Arc<dyn KeySource>,
) -> Result<TokenVerifier, AuthError> {
    let mut verifier =
        TokenVerifier::new(vec![local], config.audience.clone(), config.clock_leeway);
    for issuer in &config.oidc_issuers {
        let source = JwksSource::spawn(issuer)?;
        verifier = verifier.with_issuer(source, IssuerPolicy::oidc(issuer));
    }
    Ok(verifier)
}
