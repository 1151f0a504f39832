//! Token verification: size and header checks, issuer and key lookup, signature and claim
//! validation with the issuer's policy, and the mapping of claims onto a `Principal`.
//!
//! Nothing read before the signature check decides anything but which key to try: the
//! algorithm comes from the key, never from the token's header.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use amas_types::Principal;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::claims::IssuerPolicy;
use super::jwks::IssuerHealth;
use super::local::unix_now;
use super::{AuthError, KeySource, VerificationKey};

/// Tokens longer than this are refused before any decoding; real access tokens are a few
/// hundred bytes to a few KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Asymmetric algorithms only. HMAC is absent on purpose: with HS* a public key could be
/// (mis)used as the shared secret, and `none` is not a signature at all. Each issuer narrows
/// this further through the keys it hands out.
const ALLOWED_ALGORITHMS: &[&str] = &[
    "EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// The only header fields we read before the signature is checked.
#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: String,
    kid: Option<String>,
    /// Extensions we would have to understand (RFC 7515 4.1.11); we understand none.
    crit: Option<Value>,
}

/// The only claim we read before the signature is checked: it picks the key source.
#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: Option<Value>,
}

/// One trust root: where its keys come from and how its tokens are read.
struct TrustedIssuer {
    source: Arc<dyn KeySource>,
    policy: IssuerPolicy,
}

/// How many verified tokens are remembered; past it, expired entries go, then all.
pub const VERIFIED_CACHE_CAPACITY: usize = 10_000;

/// A token that passed full verification, remembered by the SHA-256 of its bytes so the next
/// request with the very same token skips the signature check (tens of microseconds).
struct Verified {
    principal: Principal,
    /// Index of the issuer whose key verified it, the key id and the key's fingerprint: a hit
    /// asks that source again, so a key the identity provider removed, or replaced under the
    /// same `kid`, stops the token as soon as the key set that published it expires.
    issuer: usize,
    kid: String,
    fingerprint: [u8; 32],
    /// Unix seconds after which the entry is not used: `exp`, or `iat + max_age` when sooner,
    /// without leeway (after that, full verification applies its leeway).
    valid_until: u64,
}

/// Verifies bearer tokens against a fixed list of trusted issuers.
pub struct TokenVerifier {
    issuers: Vec<TrustedIssuer>,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<(&str, &[String])> = self
            .issuers
            .iter()
            .map(|i| (i.source.issuer(), i.policy.audiences.as_slice()))
            .collect();
        f.debug_struct("TokenVerifier")
            .field("issuers", &issuers)
            .finish()
    }
}

impl TokenVerifier {
    /// A verifier for `sources` read as the local issuer reads its tokens (see
    /// [`IssuerPolicy::local`]).
    #[must_use]
    pub fn new(sources: Vec<Arc<dyn KeySource>>, audience: String, leeway: Duration) -> Self {
        let issuers = sources
            .into_iter()
            .map(|source| TrustedIssuer {
                source,
                policy: IssuerPolicy::local(audience.clone(), leeway),
            })
            .collect();
        Self {
            issuers,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Also trusts `source`, whose tokens are checked and mapped by `policy`.
    #[must_use]
    pub fn with_issuer(mut self, source: Arc<dyn KeySource>, policy: IssuerPolicy) -> Self {
        self.issuers.push(TrustedIssuer { source, policy });
        self
    }

    /// The key-set health of every issuer that has one (remote JWKS), in configuration order.
    #[must_use]
    pub fn health(&self) -> Vec<IssuerHealth> {
        self.issuers
            .iter()
            .filter_map(|i| i.source.health())
            .collect()
    }

    /// Verifies `token` (the bare JWT, without `Bearer `) and returns who it names.
    ///
    /// # Errors
    /// The `AuthError` reason the token was refused for; `KeyStore` or `KeysUnavailable` when
    /// a key source failed.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(principal) = self.remembered(&digest).await? {
            return Ok(principal);
        }
        let (issuer, key, claims, principal) = self.verify_fully(token).await?;
        self.remember(digest, issuer, key, &claims, &principal);
        Ok(principal)
    }

    /// The principal of `token` if it was verified before and still holds (its lifetime, and
    /// the very key that verified it still published by its issuer), without a signature
    /// check; `None` when it needs full verification ([`Self::verify`]). What a server asks
    /// before charging a client for the cost of a full verification.
    ///
    /// # Errors
    /// `KeysExpired` (and the like) when the issuer's key set cannot be trusted now.
    pub async fn recall(&self, token: &str) -> Result<Option<Principal>, AuthError> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Ok(None);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.remembered(&digest).await
    }

    /// The principal of a token verified before, if it is still within its lifetime and the
    /// key that verified it is still served by its issuer.
    async fn remembered(&self, digest: &[u8; 32]) -> Result<Option<Principal>, AuthError> {
        let hit = {
            let cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            cache.get(digest).map(|v| {
                (
                    v.issuer,
                    v.kid.clone(),
                    v.fingerprint,
                    v.valid_until,
                    v.principal.clone(),
                )
            })
        };
        let Some((issuer, kid, fingerprint, valid_until, principal)) = hit else {
            return Ok(None);
        };
        let still_keyed = match self.issuers.get(issuer) {
            Some(trusted) if unix_now() < valid_until => trusted
                .source
                .key(&kid)
                .await?
                .is_some_and(|key| key.fingerprint == fingerprint),
            _ => false,
        };
        if still_keyed {
            return Ok(Some(principal));
        }
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(digest);
        Ok(None)
    }

    fn remember(
        &self,
        digest: [u8; 32],
        issuer: usize,
        (kid, fingerprint): (String, [u8; 32]),
        claims: &Map<String, Value>,
        principal: &Principal,
    ) {
        let Some(exp) = claims.get("exp").and_then(Value::as_u64) else {
            return;
        };
        let mut valid_until = exp;
        if let Some(max_age) = self.issuers.get(issuer).and_then(|i| i.policy.max_age) {
            let Some(iat) = claims.get("iat").and_then(Value::as_u64) else {
                return;
            };
            valid_until = valid_until.min(iat.saturating_add(max_age.as_secs()));
        }
        let now = unix_now();
        if valid_until <= now {
            return;
        }
        let mut cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= VERIFIED_CACHE_CAPACITY {
            cache.retain(|_, v| v.valid_until > now);
            if cache.len() >= VERIFIED_CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            digest,
            Verified {
                principal: principal.clone(),
                issuer,
                kid,
                fingerprint,
                valid_until,
            },
        );
    }

    /// Size and header checks, key lookup, signature and claims: the issuer's index, the key
    /// id and fingerprint, the claims and the principal.
    async fn verify_fully(
        &self,
        token: &str,
    ) -> Result<(usize, (String, [u8; 32]), Map<String, Value>, Principal), AuthError> {
        let (header_b64, payload_b64) = split_token(token)?;
        let header: UnverifiedHeader = decode_part(header_b64)?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg.as_str()) {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        if header.crit.is_some() {
            return Err(AuthError::Malformed(
                "critical header extensions are not supported",
            ));
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let iss = match decode_part::<UnverifiedIssuer>(payload_b64)?.iss {
            Some(Value::String(iss)) => iss,
            Some(_) => return Err(AuthError::Malformed("the iss claim is not a string")),
            None => return Err(AuthError::Malformed("the iss claim is missing")),
        };

        let (index, key) = self.find_key(&iss, &kid).await?;
        let trusted = &self.issuers[index];
        if algorithm_name(key.algorithm) != Some(header.alg.as_str()) {
            return Err(AuthError::UnsupportedAlgorithm);
        }

        let policy = &trusted.policy;
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = policy.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[trusted.source.issuer()]);
        validation.set_audience(&policy.audiences);
        let claims =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)?.claims;
        // The issuer was verified (`set_issuer`): it is the source's, and with `sub` it says
        // who this is.
        let principal = policy.principal(
            &claims,
            unix_now(),
            trusted.source.auth_method(),
            trusted.source.issuer(),
        )?;
        Ok((index, (kid, key.fingerprint), claims, principal))
    }

    /// Every source for `iss` is asked in turn, so several sources may share one issuer
    /// (e.g. during a key rotation).
    async fn find_key(&self, iss: &str, kid: &str) -> Result<(usize, VerificationKey), AuthError> {
        let mut known_issuer = false;
        for (index, trusted) in self.issuers.iter().enumerate() {
            if trusted.source.issuer() != iss {
                continue;
            }
            known_issuer = true;
            if let Some(key) = trusted.source.key(kid).await? {
                return Ok((index, key));
            }
        }
        Err(if known_issuer {
            AuthError::UnknownKey
        } else {
            AuthError::UnknownIssuer
        })
    }
}

/// Splits a compact JWS into its header and payload parts; exactly three parts are required.
fn split_token(token: &str) -> Result<(&str, &str), AuthError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(_signature), None) => Ok((header, payload)),
        _ => Err(AuthError::Malformed("a JWT has three dot-separated parts")),
    }
}

/// Decodes a header or payload, refusing duplicate member names at any depth: parsers
/// disagree on which duplicate wins, and a token must mean one thing to every reader.
fn decode_part<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed("a part is not base64url"))?;
    serde_json::from_slice::<NoDuplicateKeys>(&bytes)
        .map_err(|_| AuthError::Malformed("a part is not JSON or repeats a member name"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AuthError::Malformed("a part is not the expected JSON"))
}

/// Any JSON value whose objects have no repeated member name.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = Self;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self, E> {
        Ok(Self)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self, E> {
        Ok(Self)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self, E> {
        Ok(Self)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self, E> {
        Ok(Self)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self, E> {
        Ok(Self)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self, E> {
        Ok(Self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<Self>()?.is_some() {}
        Ok(Self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value::<Self>()?;
        }
        Ok(Self)
    }
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

    #[test]
    fn duplicate_members_are_found_at_any_depth() {
        let dup = |json: &str| serde_json::from_slice::<NoDuplicateKeys>(json.as_bytes()).is_err();
        assert!(dup(r#"{"sub":"a","sub":"b"}"#));
        assert!(dup(r#"{"x":{"roles":[],"roles":["admin"]}}"#));
        assert!(dup(r#"[{"a":1,"a":1}]"#));
        assert!(!dup(r#"{"a":{"a":[{"a":1}]},"b":"\u0061"}"#));
    }
}
