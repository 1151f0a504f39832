//! Token verification: header checks, issuer and key lookup, signature and claim validation,
//! and the mapping of claims onto a `Principal`.

use std::sync::Arc;
use std::time::Duration;

use amas_types::{Principal, TenantId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use super::local::unix_now;
use super::{AuthError, KeySource};

/// Asymmetric algorithms only. HMAC is absent on purpose: with HS* a public key could be
/// (mis)used as the shared secret, and `none` is not a signature at all.
const ALLOWED_ALGORITHMS: &[&str] = &[
    "EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// The only header fields we read before the signature is checked.
#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: String,
    kid: Option<String>,
}

/// The only claim we read before the signature is checked: it picks the key source.
#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: Option<String>,
}

#[derive(Deserialize)]
struct VerifiedClaims {
    sub: String,
    iat: Option<u64>,
    nbf: Option<u64>,
    exp: u64,
    #[serde(default)]
    roles: Vec<String>,
    tenant: Option<String>,
}

/// Verifies bearer tokens against a fixed list of trusted issuers.
pub struct TokenVerifier {
    sources: Vec<Arc<dyn KeySource>>,
    audience: String,
    leeway: Duration,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.sources.iter().map(|s| s.issuer()).collect();
        f.debug_struct("TokenVerifier")
            .field("issuers", &issuers)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl TokenVerifier {
    #[must_use]
    pub fn new(sources: Vec<Arc<dyn KeySource>>, audience: String, leeway: Duration) -> Self {
        Self {
            sources,
            audience,
            leeway,
        }
    }

    /// Verifies `token` (the bare JWT, without `Bearer `) and returns who it names.
    ///
    /// # Errors
    /// The `AuthError` reason the token was refused for; `KeyStore` when a key source failed.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let (header_b64, payload_b64) = split_token(token)?;
        let header: UnverifiedHeader = decode_part(header_b64)?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg.as_str()) {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let iss = decode_part::<UnverifiedIssuer>(payload_b64)?
            .iss
            .ok_or(AuthError::Malformed("the iss claim is missing"))?;

        let (source, key) = self.find_key(&iss, &kid).await?;
        if algorithm_name(key.algorithm) != Some(header.alg.as_str()) {
            return Err(AuthError::UnsupportedAlgorithm);
        }

        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[source.issuer()]);
        validation.set_audience(&[self.audience.as_str()]);
        let claims = jsonwebtoken::decode::<VerifiedClaims>(token, &key.key, &validation)?.claims;
        self.check_times(&claims)?;
        principal_from(claims, source.auth_method())
    }

    /// Every source for `iss` is asked in turn, so several sources may share one issuer
    /// (e.g. during a key rotation).
    async fn find_key(
        &self,
        iss: &str,
        kid: &str,
    ) -> Result<(&Arc<dyn KeySource>, super::VerificationKey), AuthError> {
        let mut known_issuer = false;
        for source in self.sources.iter().filter(|s| s.issuer() == iss) {
            known_issuer = true;
            if let Some(key) = source.key(kid).await? {
                return Ok((source, key));
            }
        }
        Err(if known_issuer {
            AuthError::UnknownKey
        } else {
            AuthError::UnknownIssuer
        })
    }

    /// The checks `jsonwebtoken` leaves to us: a token must not claim to be issued in the
    /// future, and its validity window must not be inverted.
    fn check_times(&self, claims: &VerifiedClaims) -> Result<(), AuthError> {
        let horizon = unix_now().saturating_add(self.leeway.as_secs());
        if claims.iat.is_some_and(|iat| iat > horizon) {
            return Err(AuthError::NotYetValid);
        }
        let start = claims.nbf.or(claims.iat);
        if start.is_some_and(|start| start > claims.exp) {
            return Err(AuthError::Malformed(
                "the token's validity window is inverted",
            ));
        }
        Ok(())
    }
}

fn principal_from(claims: VerifiedClaims, auth_method: &str) -> Result<Principal, AuthError> {
    if claims.sub.is_empty() {
        return Err(AuthError::Malformed("the sub claim is empty"));
    }
    let tenant = match claims.tenant {
        None => TenantId::default_tenant(),
        Some(t) if t.is_empty() => return Err(AuthError::Malformed("the tenant claim is empty")),
        Some(t) => TenantId(t),
    };
    Ok(Principal {
        sub: claims.sub,
        roles: claims.roles,
        tenant,
        auth_method: auth_method.to_owned(),
    })
}

/// Splits a compact JWS into its header and payload parts; exactly three parts are required.
fn split_token(token: &str) -> Result<(&str, &str), AuthError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(_signature), None) => Ok((header, payload)),
        _ => Err(AuthError::Malformed("a JWT has three dot-separated parts")),
    }
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed("a part is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("a part is not the expected JSON"))
}

fn algorithm_name(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::EdDSA => Some("EdDSA"),
        Algorithm::ES256 => Some("ES256"),
        Algorithm::ES384 => Some("ES384"),
        Algorithm::RS256 => Some("RS256"),
        Algorithm::RS384 => Some("RS384"),
        Algorithm::RS512 => Some("RS512"),
        Algorithm::PS256 => Some("PS256"),
        Algorithm::PS384 => Some("PS384"),
        Algorithm::PS512 => Some("PS512"),
        // A source handing out an HMAC key is refused here, whatever the token says.
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_keys_from_a_source_are_never_usable() {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            assert_eq!(algorithm_name(alg), None);
        }
        assert!(!ALLOWED_ALGORITHMS.iter().any(|a| a.starts_with("HS")));
        assert!(
            !ALLOWED_ALGORITHMS
                .iter()
                .any(|a| a.eq_ignore_ascii_case("none"))
        );
    }

    #[test]
    fn tokens_need_exactly_three_parts() {
        assert!(split_token("a.b.c").is_ok());
        assert!(split_token("a.b").is_err());
        assert!(split_token("a.b.c.d").is_err());
    }
}
