//! Signed checkpoints: every so often the writer signs "the chain up to seq N has hash H, and
//! the Merkle tree of records 1..=N has root R" with the audit key (its own Ed25519 key, not the
//! token-signing one). Someone who rewrites records and recomputes every later hash still
//! cannot forge the checkpoint that covers them; the root lets one record be proven against
//! the checkpoint without the others ([`super::merkle`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::chain::{self, canonical_json};
use crate::shared;

/// A signed statement that the record `up_to_seq` has hash `hash` (and, from version 2, that
/// the Merkle tree of records `1..=up_to_seq` has root `tree_root`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub up_to_seq: u64,
    pub hash: String,
    /// Lowercase hex of the Merkle root over the record hashes `1..=up_to_seq`; absent on
    /// version-1 checkpoints (signed before the tree existed), which anchor the chain only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_root: Option<String>,
    pub signed_at: DateTime<Utc>,
    pub key_id: String,
    /// The signature over [`Checkpoint::message`], lowercase hex.
    pub signature: String,
}

impl Checkpoint {
    /// Signs the chain position `link` now (a version-1 checkpoint: no tree root).
    ///
    /// # Errors
    /// When the signer fails.
    pub fn sign(link: &chain::ChainLink, signer: &dyn CheckpointSigner) -> Result<Self, SignError> {
        Self::signed(link, None, signer)
    }

    /// Signs the chain position `link` and the Merkle root `tree_root` (hex) of the records
    /// `1..=link.seq` now: what the writer signs.
    ///
    /// # Errors
    /// When the signer fails.
    pub fn sign_tree(
        link: &chain::ChainLink,
        tree_root: &str,
        signer: &dyn CheckpointSigner,
    ) -> Result<Self, SignError> {
        Self::signed(link, Some(tree_root.to_owned()), signer)
    }

    fn signed(
        link: &chain::ChainLink,
        tree_root: Option<String>,
        signer: &dyn CheckpointSigner,
    ) -> Result<Self, SignError> {
        let mut cp = Self {
            up_to_seq: link.seq,
            hash: link.hash.clone(),
            tree_root,
            signed_at: shared::now(),
            key_id: signer.key_id().to_owned(),
            signature: String::new(),
        };
        cp.signature = chain::hex(&signer.sign(&cp.message())?);
        Ok(cp)
    }

    /// The signed bytes: a domain-separation line naming the version, then the canonical JSON
    /// of every other field.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        let mut body = serde_json::json!({
            "up_to_seq": self.up_to_seq,
            "hash": self.hash,
            "signed_at": shared::format_time(self.signed_at),
            "key_id": self.key_id,
        });
        let domain = match (&self.tree_root, body.as_object_mut()) {
            (Some(root), Some(map)) => {
                map.insert("tree_root".to_owned(), root.clone().into());
                DOMAIN_V2
            }
            _ => DOMAIN_V1,
        };
        let mut out = domain.to_vec();
        out.extend_from_slice(canonical_json(&body).as_bytes());
        out
    }

    /// Checks the signature with `verifier`.
    ///
    /// # Errors
    /// Why the signature does not hold.
    pub fn verify(&self, verifier: &dyn CheckpointVerifier) -> Result<(), SignError> {
        let signature = chain::unhex(&self.signature)
            .ok_or_else(|| SignError("the signature is not hex".to_owned()))?;
        verifier.verify(&self.key_id, &self.message(), &signature)
    }
}

const DOMAIN_V1: &[u8] = b"amas-audit-checkpoint-v1\n";
const DOMAIN_V2: &[u8] = b"amas-audit-checkpoint-v2\n";

/// Signing or verifying a checkpoint failed; the message says why (never key material).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// Signs checkpoints. Implementations hold the private key; `Debug` must not show it.
pub trait CheckpointSigner: Send + Sync {
    /// Names the key, so a verifier can pick the matching public key (e.g. a JWK thumbprint).
    fn key_id(&self) -> &str;

    /// # Errors
    /// When the key cannot sign.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// Verifies checkpoint signatures.
pub trait CheckpointVerifier: Send + Sync {
    /// # Errors
    /// An unknown `key_id`, or a signature that does not verify.
    fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> Result<(), SignError>;
}

/// An Ed25519 [`CheckpointSigner`].
pub struct Ed25519Signer {
    key: SigningKey,
    key_id: String,
}

impl Ed25519Signer {
    #[must_use]
    pub fn new(key: SigningKey, key_id: impl Into<String>) -> Self {
        Self {
            key,
            key_id: key_id.into(),
        }
    }

    /// A signer whose key id is the RFC 7638 thumbprint of its public key, as published in
    /// the audit key set ([`super::keys`]).
    #[must_use]
    pub fn with_thumbprint(key: SigningKey) -> Self {
        let jwk = super::keys::public_jwk(&key.verifying_key());
        let kid = jwk
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Self::new(key, kid)
    }

    /// The public key as a JWK, named by this signer's key id.
    #[must_use]
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut jwk = super::keys::public_jwk(&self.key.verifying_key());
        jwk["kid"] = self.key_id.clone().into();
        jwk
    }

    /// The verifier for this signer's own signatures.
    #[must_use]
    pub fn verifier(&self) -> Ed25519Verifier {
        Ed25519Verifier::new([(self.key_id.clone(), self.key.verifying_key())])
    }
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner for Ed25519Signer {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.key.sign(message).to_bytes().to_vec())
    }
}

/// An Ed25519 [`CheckpointVerifier`] over a set of public keys by key id (old keys stay listed
/// after a rotation so older checkpoints still verify).
#[derive(Clone, Debug, Default)]
pub struct Ed25519Verifier {
    keys: HashMap<String, VerifyingKey>,
}

impl Ed25519Verifier {
    #[must_use]
    pub fn new(keys: impl IntoIterator<Item = (String, VerifyingKey)>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
        }
    }

    /// The key ids this verifier knows, sorted.
    #[must_use]
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.keys.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The public key set (JWKS) of this verifier's keys, by key id.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<(&String, &VerifyingKey)> = self.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let keys: Vec<serde_json::Value> = keys
            .into_iter()
            .map(|(kid, key)| {
                let mut jwk = super::keys::public_jwk(key);
                jwk["kid"] = kid.clone().into();
                jwk
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

impl CheckpointVerifier for Ed25519Verifier {
    fn verify(&self, key_id: &str, message: &[u8], signature: &[u8]) -> Result<(), SignError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| SignError(format!("unknown key id {key_id:?}")))?;
        let signature = Signature::from_slice(signature)
            .map_err(|_| SignError("the signature is not 64 bytes".to_owned()))?;
        key.verify(message, &signature)
            .map_err(|_| SignError("the signature does not verify".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> Ed25519Signer {
        Ed25519Signer::new(SigningKey::from_bytes(&[seed; 32]), format!("k{seed}"))
    }

    /// A checkpoint verifies with its key and fails when any signed field changes or another
    /// key is used.
    #[test]
    fn signatures_bind_every_field_and_the_key() {
        let s = signer(1);
        let link = chain::ChainLink {
            seq: 7,
            hash: "ab".repeat(32),
        };
        let cp = Checkpoint::sign(&link, &s).unwrap();
        cp.verify(&s.verifier()).unwrap();

        let mut moved = cp.clone();
        moved.up_to_seq = 8;
        assert!(moved.verify(&s.verifier()).is_err());
        let mut rehashed = cp.clone();
        rehashed.hash = "cd".repeat(32);
        assert!(rehashed.verify(&s.verifier()).is_err());

        let tree = Checkpoint::sign_tree(&link, &"ef".repeat(32), &s).unwrap();
        tree.verify(&s.verifier()).unwrap();
        assert_ne!(
            tree.message(),
            cp.message(),
            "v2 is domain-separated from v1"
        );
        let mut regrown = tree.clone();
        regrown.tree_root = Some("ee".repeat(32));
        assert!(regrown.verify(&s.verifier()).is_err(), "the root is signed");
        let mut downgraded = tree;
        downgraded.tree_root = None;
        assert!(
            downgraded.verify(&s.verifier()).is_err(),
            "no downgrade to v1"
        );

        let other = signer(2);
        let forged = Checkpoint::sign(&link, &other).unwrap();
        assert!(forged.verify(&s.verifier()).is_err(), "unknown key");
        let mut relabelled = forged;
        relabelled.key_id = "k1".to_owned();
        assert!(relabelled.verify(&s.verifier()).is_err(), "wrong key");
    }
}
