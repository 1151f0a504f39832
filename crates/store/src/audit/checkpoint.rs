//! Signed checkpoints: every so often the writer signs "the chain up to seq N has hash H" with
//! the server's Ed25519 key. Someone who rewrites records and recomputes every later hash still
//! cannot forge the checkpoint that covers them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::chain::{self, canonical_json};
use crate::shared;

/// A signed statement that the record `up_to_seq` has hash `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub up_to_seq: u64,
    pub hash: String,
    pub signed_at: DateTime<Utc>,
    pub key_id: String,
    /// The signature over [`Checkpoint::message`], lowercase hex.
    pub signature: String,
}

impl Checkpoint {
    /// Signs the chain position `link` now.
    ///
    /// # Errors
    /// When the signer fails.
    pub fn sign(link: &chain::ChainLink, signer: &dyn CheckpointSigner) -> Result<Self, SignError> {
        let signed_at = shared::now();
        let key_id = signer.key_id().to_owned();
        let message = message(link.seq, &link.hash, signed_at, &key_id);
        let signature = chain::hex(&signer.sign(&message)?);
        Ok(Self {
            up_to_seq: link.seq,
            hash: link.hash.clone(),
            signed_at,
            key_id,
            signature,
        })
    }

    /// The signed bytes: a domain-separation line, then the canonical JSON of every other field.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        message(self.up_to_seq, &self.hash, self.signed_at, &self.key_id)
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

const DOMAIN: &[u8] = b"amas-audit-checkpoint-v1\n";

fn message(up_to_seq: u64, hash: &str, signed_at: DateTime<Utc>, key_id: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "up_to_seq": up_to_seq,
        "hash": hash,
        "signed_at": shared::format_time(signed_at),
        "key_id": key_id,
    });
    let mut out = DOMAIN.to_vec();
    out.extend_from_slice(canonical_json(&body).as_bytes());
    out
}

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

        let other = signer(2);
        let forged = Checkpoint::sign(&link, &other).unwrap();
        assert!(forged.verify(&s.verifier()).is_err(), "unknown key");
        let mut relabelled = forged;
        relabelled.key_id = "k1".to_owned();
        assert!(relabelled.verify(&s.verifier()).is_err(), "wrong key");
    }
}
