//! The audit key set as published: a JWKS of Ed25519 public keys (RFC 8037), each named by its
//! RFC 7638 thumbprint. Verification needs nothing else; old keys stay listed after a rotation
//! so older checkpoints still verify.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::checkpoint::Ed25519Verifier;
use amas_types::codes;

/// The RFC 7638 thumbprint of an Ed25519 public key given as its JWK `x` (base64url): SHA-256
/// over the required members in lexicographic order, base64url. Used as the key id.
#[must_use]
pub fn ed25519_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The public JWK of `key`, its `kid` the thumbprint.
#[must_use]
pub fn public_jwk(key: &VerifyingKey) -> Value {
    let x = URL_SAFE_NO_PAD.encode(key.to_bytes());
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": ed25519_thumbprint(&x),
        "alg": "EdDSA",
        "use": "sig",
    })
}

/// A key set that cannot be used; the message names the key and the problem, never key
/// material beyond public parts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeySetError(pub String);

impl KeySetError {
    /// The stable public code; its page is `docs/errors/<code>.md`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        codes::AUDIT_KEY_INVALID
    }
}

/// The verifier for the keys of `jwks` (`{"keys": [...]}`). Every key must be an Ed25519 `OKP`
/// key with no private part, whose `kid` is its thumbprint (so a pinned key id is a pinned key).
///
/// # Errors
/// An empty set, or the first key that breaks a rule above.
pub fn verifier_from_jwks(jwks: &Value) -> Result<Ed25519Verifier, KeySetError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| KeySetError("not a JWKS: no `keys` array".to_owned()))?;
    if keys.is_empty() {
        return Err(KeySetError("the key set has no keys".to_owned()));
    }
    let mut parsed = Vec::with_capacity(keys.len());
    for (i, jwk) in keys.iter().enumerate() {
        parsed.push(parse_jwk(jwk).map_err(|e| KeySetError(format!("key {i}: {e}")))?);
    }
    Ok(Ed25519Verifier::new(parsed))
}

fn parse_jwk(jwk: &Value) -> Result<(String, VerifyingKey), String> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if text("kty") != Some("OKP") || text("crv") != Some("Ed25519") {
        return Err("not an Ed25519 (OKP) key".to_owned());
    }
    if jwk.get("d").is_some() {
        return Err("holds a private key; publish only the public part".to_owned());
    }
    let x = text("x").ok_or("no `x`")?;
    let kid = text("kid").ok_or("no `kid`")?;
    let expected = ed25519_thumbprint(x);
    if kid != expected {
        return Err(format!(
            "kid {kid:?} is not the key's thumbprint {expected:?}"
        ));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(x)
        .map_err(|_| "`x` is not base64url".to_owned())?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "`x` is not 32 bytes".to_owned())?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "`x` is not an Ed25519 point")?;
    Ok((kid.to_owned(), key))
}

/// `jwks` with `jwk` added unless a key of the same `kid` is already listed (keys are never
/// removed, so checkpoints signed before a rotation still verify).
#[must_use]
pub fn with_key(jwks: Option<Value>, jwk: &Value) -> Value {
    let mut keys = jwks
        .as_ref()
        .and_then(|j| j.get("keys"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kid = jwk.get("kid");
    if !keys.iter().any(|k| k.get("kid") == kid) {
        keys.push(jwk.clone());
    }
    json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{ChainLink, Checkpoint, Ed25519Signer};
    use ed25519_dalek::SigningKey;

    /// RFC 8037 appendix A.3: the thumbprint of the example Ed25519 public key.
    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        assert_eq!(
            ed25519_thumbprint(x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// A checkpoint signed with a key verifies with the JWKS published for it, and only that.
    #[test]
    fn a_published_key_verifies_its_checkpoints() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let jwk = public_jwk(&key.verifying_key());
        let kid = jwk["kid"].as_str().unwrap().to_owned();
        let signer = Ed25519Signer::new(key, kid);
        let link = ChainLink {
            seq: 4,
            hash: "ab".repeat(32),
        };
        let cp = Checkpoint::sign(&link, &signer).unwrap();
        let jwks = with_key(None, &jwk);
        cp.verify(&verifier_from_jwks(&jwks).unwrap()).unwrap();
        let other = public_jwk(&SigningKey::from_bytes(&[4; 32]).verifying_key());
        let both = with_key(Some(jwks.clone()), &other);
        assert_eq!(both["keys"].as_array().unwrap().len(), 2);
        assert_eq!(with_key(Some(both.clone()), &jwk), both, "no duplicates");
        cp.verify(&verifier_from_jwks(&both).unwrap()).unwrap();
        let only_other = with_key(None, &other);
        assert!(
            cp.verify(&verifier_from_jwks(&only_other).unwrap())
                .is_err()
        );
    }

    /// A relabelled key, a private key, an empty set and garbage are refused with a reason.
    #[test]
    fn bad_key_sets_are_refused() {
        let jwk = public_jwk(&SigningKey::from_bytes(&[3; 32]).verifying_key());
        let mut relabelled = jwk.clone();
        relabelled["kid"] = "server-key".into();
        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        let mut flipped = jwk;
        flipped["x"] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into();
        for (set, why) in [
            (json!({"keys": [relabelled]}), "thumbprint"),
            (json!({"keys": [private]}), "private"),
            (json!({"keys": [flipped]}), "thumbprint"),
            (json!({"keys": []}), "no keys"),
            (json!({"nope": 1}), "not a JWKS"),
        ] {
            let err = verifier_from_jwks(&set).unwrap_err();
            assert!(err.0.contains(why), "{why}: {err}");
        }
    }
}
