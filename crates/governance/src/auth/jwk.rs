//! A JWK Set from an identity provider, turned into verification keys: RSA (n, e), EC P-256
//! (x, y) and OKP Ed25519 (x), each bound to the one algorithm its type implies and checked
//! against the issuer's allowlist. Symmetric (`oct`) keys are never used.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::VerificationKey;

/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
const MAX_KID_LEN: usize = 256;

/// The usable keys of a JWK Set by `kid`, and how many entries were skipped. A `kid` that
/// appears twice among usable keys is dropped altogether: which one the provider means is
/// ambiguous.
pub(crate) fn parse_set(
    doc: &Value,
    allowed: &[Algorithm],
) -> Option<(HashMap<String, VerificationKey>, usize)> {
    let entries = doc.get("keys")?.as_array()?;
    let mut keys = HashMap::with_capacity(entries.len());
    let mut duplicated = HashSet::new();
    let mut skipped = 0;
    for entry in entries {
        match parse_key(entry, allowed) {
            Ok((kid, key)) => {
                if keys.insert(kid.clone(), key).is_some() {
                    duplicated.insert(kid);
                }
            }
            Err(reason) => {
                skipped += 1;
                tracing::debug!(reason, "JWK skipped.");
            }
        }
    }
    for kid in &duplicated {
        keys.remove(kid);
        skipped += 2;
    }
    Some((keys, skipped))
}

fn parse_key(
    jwk: &Value,
    allowed: &[Algorithm],
) -> Result<(String, VerificationKey), &'static str> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if jwk.get("use").is_some() && field("use") != Some("sig") {
        return Err("not a signature key");
    }
    let kid = field("kid").ok_or("no kid")?;
    if kid.is_empty() || kid.len() > MAX_KID_LEN {
        return Err("bad kid");
    }
    let declared = field("alg");
    // The decoded key material, in a fixed order per key type, identifies the key.
    let mut material = Sha256::new();
    let (algorithm, key) = match field("kty") {
        Some("RSA") => {
            let n = field("n").ok_or("RSA key without n")?;
            let e = field("e").ok_or("RSA key without e")?;
            let modulus = decode(n)?;
            if modulus.len() < MIN_RSA_MODULUS_BYTES {
                return Err("RSA modulus shorter than 2048 bits");
            }
            material.update(b"RSA\0");
            material.update(&modulus);
            material.update(b"\0");
            material.update(decode(e)?);
            let key = DecodingKey::from_rsa_components(n, e).map_err(|_| "bad RSA key")?;
            (Algorithm::RS256, key)
        }
        Some("EC") => {
            if field("crv") != Some("P-256") {
                return Err("EC curve other than P-256");
            }
            let x = field("x").ok_or("EC key without x")?;
            let y = field("y").ok_or("EC key without y")?;
            let (xb, yb) = (decode(x)?, decode(y)?);
            if xb.len() != 32 || yb.len() != 32 {
                return Err("bad P-256 coordinates");
            }
            material.update(b"EC\0");
            material.update(&xb);
            material.update(&yb);
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| "bad EC key")?;
            (Algorithm::ES256, key)
        }
        Some("OKP") => {
            if field("crv") != Some("Ed25519") {
                return Err("OKP curve other than Ed25519");
            }
            let x = field("x").ok_or("OKP key without x")?;
            let xb = decode(x)?;
            if xb.len() != 32 {
                return Err("bad Ed25519 key");
            }
            material.update(b"OKP\0");
            material.update(&xb);
            let key = DecodingKey::from_ed_components(x).map_err(|_| "bad Ed25519 key")?;
            (Algorithm::EdDSA, key)
        }
        _ => return Err("unsupported key type"),
    };
    // A declared `alg` must agree with the key type ("Ed25519" is the RFC 9864 name).
    let agrees = matches!(
        (declared, algorithm),
        (None, _)
            | (Some("RS256"), Algorithm::RS256)
            | (Some("ES256"), Algorithm::ES256)
            | (Some("EdDSA" | "Ed25519"), Algorithm::EdDSA)
    );
    if !agrees {
        return Err("alg does not match the key type or is not supported");
    }
    if !allowed.contains(&algorithm) {
        return Err("algorithm not allowed for this issuer");
    }
    let fingerprint = material.finalize().into();
    Ok((
        kid.to_owned(),
        VerificationKey {
            key,
            algorithm,
            fingerprint,
        },
    ))
}

/// Base64url, tolerating the padding some providers add.
fn decode(text: &str) -> Result<Vec<u8>, &'static str> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| "bad base64url")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    fn ed(kid: &str) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
               "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
    }

    #[test]
    fn symmetric_unknown_and_disallowed_keys_are_skipped() {
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            ed("enc").as_object().map(|o| {
                let mut o = o.clone();
                o.insert("use".into(), json!("enc"));
                Value::Object(o)
            }).unwrap(),
            {"kty": "OKP", "crv": "Ed25519", "kid": "mislabelled", "alg": "RS256",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            ed("good"),
        ]});
        let (keys, skipped) = parse_set(&doc, ALL).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["good"]);
        assert_eq!(skipped, 5);
        assert_eq!(keys["good"].algorithm, Algorithm::EdDSA);

        let (keys, _) = parse_set(&json!({"keys": [ed("good")]}), &[Algorithm::RS256]).unwrap();
        assert!(keys.is_empty());
    }

    #[test]
    fn a_duplicated_kid_is_ambiguous_and_dropped() {
        let doc = json!({"keys": [ed("k"), ed("k"), ed("other")]});
        let (keys, _) = parse_set(&doc, ALL).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["other"]);
    }

    #[test]
    fn a_document_without_keys_is_not_a_jwks() {
        assert!(parse_set(&json!({"issuer": "x"}), ALL).is_none());
    }
}
