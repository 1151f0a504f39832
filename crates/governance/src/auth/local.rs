//! AMAS as its own token issuer: one persistent Ed25519 key, its JWKS, and token minting. The
//! key signs tokens only; audit checkpoints have a key of their own ([`super::audit_key`]).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{AuthError, KeySource, VerificationKey, keyfile};

/// The local issuer. Holds the private key; `Debug` shows only public parts.
pub struct LocalIssuer {
    issuer: String,
    audience: String,
    kid: String,
    /// The raw 32-byte public key, base64url (the JWK `x`).
    x: String,
    public: [u8; 32],
    signing: EncodingKey,
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    roles: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
}

impl LocalIssuer {
    /// Loads the key under `<data_dir>/keys/`, creating it on first start.
    ///
    /// # Errors
    /// `AuthError::KeyStore` when the key cannot be created, read or decoded, or when the key
    /// file is readable by other users.
    pub fn load_or_create(
        data_dir: &Path,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, AuthError> {
        let signing = keyfile::load_or_create(&keyfile::key_path(data_dir))?;
        let der = signing
            .to_pkcs8_der()
            .map_err(|_| AuthError::KeyStore("cannot encode the key as PKCS#8".to_owned()))?;
        let public = signing.verifying_key().to_bytes();
        let x = URL_SAFE_NO_PAD.encode(public);
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            kid: jwk_thumbprint(&x),
            x,
            public,
            signing: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }

    /// The key id: the RFC 7638 thumbprint of the public key, stable across restarts.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The audience this issuer writes into its tokens.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The public key set, as served at the JWKS endpoint.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": self.x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }

    /// Mints a token for `sub`, valid from now for `ttl`.
    ///
    /// # Errors
    /// `AuthError::KeyStore` when signing fails (a key the crypto backend refuses).
    pub fn mint(
        &self,
        sub: &str,
        roles: &[String],
        tenant: Option<&str>,
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let now = unix_now();
        let claims = MintedClaims {
            iss: &self.issuer,
            aud: &self.audience,
            sub,
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl.as_secs()),
            jti: uuid::Uuid::now_v7().to_string(),
            roles,
            tenant,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|_| AuthError::KeyStore("cannot sign a token with the local key".to_owned()))
    }
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeySource for LocalIssuer {
    async fn key(&self, kid: &str) -> Result<Option<VerificationKey>, AuthError> {
        if kid != self.kid {
            return Ok(None);
        }
        Ok(Some(VerificationKey {
            key: DecodingKey::from_ed_der(&self.public),
            algorithm: Algorithm::EdDSA,
            fingerprint: Sha256::digest(self.public).into(),
        }))
    }

    fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// RFC 7638 thumbprint of the public key (the same rule the audit key set uses).
fn jwk_thumbprint(x: &str) -> String {
    amas_store::audit::keys::ed25519_thumbprint(x)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 public key.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        assert_eq!(
            jwk_thumbprint(x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn jwks_publishes_the_key_the_verifier_uses() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = LocalIssuer::load_or_create(dir.path(), "amas", "amas-api").unwrap();
        let jwks = issuer.jwks();
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kid"], issuer.kid());
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["alg"], "EdDSA");
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        assert_eq!(x, issuer.public);
        // The JWK must not carry the private part.
        assert!(jwk.get("d").is_none());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = LocalIssuer::load_or_create(dir.path(), "amas", "amas-api").unwrap();
        let shown = format!("{issuer:?}");
        assert!(shown.contains(issuer.kid()));
        assert!(!shown.contains("signing"));
    }
}
