//! The audit key: an Ed25519 key of its own that signs the audit log's checkpoints, separate
//! from the key that signs tokens, so that whoever verifies the audit log needs no secret and
//! rotating one key never touches the other. Two files under `<data>/keys/`:
//!
//! - `audit-ed25519.pk8`: the private key (PKCS#8 DER, mode 0600), created by the first
//!   command that writes audit records (`amas serve`, `amas run`, ...), never read by `verify`;
//! - `audit-public.jwks.json`: the public key set (a JWKS, every key AMAS ever signed with, the
//!   current one added at each start), all `amas audit verify` reads; copy it off the machine
//!   (`amas audit public-keys`) to verify elsewhere or to pin it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use amas_store::audit::keys::{self as audit_keys, KeySetError};
use amas_store::audit::{CheckpointSigner, Ed25519Signer, Ed25519Verifier};
use amas_types::codes;

use super::keyfile;

/// The private key file below `data_dir`.
#[must_use]
pub fn private_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("audit-ed25519.pk8")
}

/// The public key set below `data_dir`.
#[must_use]
pub fn public_keys_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("audit-public.jwks.json")
}

/// The audit key cannot be used or its public part is missing.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    /// No public key set where one was expected.
    #[error(
        "no audit public key at {path}: verification needs the public key set the server \
         writes there (run `amas audit public-keys` where the server runs and pass the file \
         with `--public-keys FILE`, or copy it to that path); verification never creates a key"
    )]
    Missing { path: PathBuf },
    /// A key file that cannot be read, decoded or trusted.
    #[error("the audit key {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl AuditKeyError {
    /// The stable public code; its page is `docs/errors/<code>.md`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing { .. } => codes::AUDIT_PUBLIC_KEY_MISSING,
            Self::Invalid { .. } => codes::AUDIT_KEY_INVALID,
        }
    }
}

/// The loaded audit key. Holds the private key; `Debug` shows the key id only.
pub struct AuditKey {
    key: ed25519_dalek::SigningKey,
    kid: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// Loads the audit key under `<data_dir>/keys/`, creating it (owner-only) on first use,
    /// and makes sure the public key set lists it (keys listed before are kept).
    ///
    /// # Errors
    /// [`AuditKeyError::Invalid`] when a key file cannot be created, read or decoded, when the
    /// private key is readable by others, or when the public key set is not a valid JWKS.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, AuditKeyError> {
        let path = private_key_path(data_dir);
        let key = keyfile::load_or_create(&path).map_err(|e| AuditKeyError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let signer = Ed25519Signer::with_thumbprint(key.clone());
        let kid = signer.key_id().to_owned();
        let public = public_keys_path(data_dir);
        let existing = read_jwks(&public)?;
        let listed = existing
            .as_ref()
            .and_then(|j| j.get("keys"))
            .and_then(Value::as_array)
            .is_some_and(|keys| {
                keys.iter()
                    .any(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
            });
        if !listed {
            let jwks = audit_keys::with_key(existing, &signer.public_jwk());
            let text = serde_json::to_vec_pretty(&jwks).map_err(|e| AuditKeyError::Invalid {
                path: public.clone(),
                reason: e.to_string(),
            })?;
            keyfile::replace_owner_only(&public, &text).map_err(|e| AuditKeyError::Invalid {
                path: public.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(Self { key, kid })
    }

    /// The checkpoint signer of this key; its key id is the key's RFC 7638 thumbprint.
    #[must_use]
    pub fn signer(&self) -> Ed25519Signer {
        Ed25519Signer::new(self.key.clone(), self.kid.clone())
    }

    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.kid
    }
}

fn read_jwks(path: &Path) -> Result<Option<Value>, AuditKeyError> {
    let invalid = |reason: String| AuditKeyError::Invalid {
        path: path.to_owned(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| invalid(format!("not JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// The public key set at `path` and its verifier. Reads nothing else and creates nothing.
///
/// # Errors
/// [`AuditKeyError::Missing`] when there is no file; [`AuditKeyError::Invalid`] when it is not
/// a JWKS of Ed25519 public keys named by their thumbprints.
pub fn load_public_keys(path: &Path) -> Result<(Ed25519Verifier, Value), AuditKeyError> {
    let jwks = read_jwks(path)?.ok_or_else(|| AuditKeyError::Missing {
        path: path.to_owned(),
    })?;
    let verifier = audit_keys::verifier_from_jwks(&jwks).map_err(|KeySetError(reason)| {
        AuditKeyError::Invalid {
            path: path.to_owned(),
            reason,
        }
    })?;
    Ok((verifier, jwks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amas_store::audit::{ChainLink, Checkpoint};

    /// The audit key is its own file, owner-only, not the token key; its public set verifies
    /// what it signs; a restart keeps both; a rotated key is added, the old one kept.
    #[test]
    fn the_audit_key_is_separate_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::load_or_create(dir.path()).unwrap();
        let token = crate::auth::LocalIssuer::load_or_create(dir.path(), "i", "a").unwrap();
        assert_ne!(key.key_id(), token.kid(), "not the token key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for path in [private_key_path(dir.path()), public_keys_path(dir.path())] {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }
        let link = ChainLink {
            seq: 1,
            hash: "ab".repeat(32),
        };
        let cp = Checkpoint::sign_tree(&link, &"cd".repeat(32), &key.signer()).unwrap();
        let (verifier, jwks) = load_public_keys(&public_keys_path(dir.path())).unwrap();
        cp.verify(&verifier).unwrap();
        assert!(jwks["keys"][0].get("d").is_none(), "public only");

        let again = AuditKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.key_id(), key.key_id());

        std::fs::remove_file(private_key_path(dir.path())).unwrap();
        let rotated = AuditKey::load_or_create(dir.path()).unwrap();
        assert_ne!(rotated.key_id(), key.key_id());
        let (verifier, _) = load_public_keys(&public_keys_path(dir.path())).unwrap();
        assert_eq!(verifier.key_ids().len(), 2, "the old key stays listed");
        cp.verify(&verifier).unwrap();
    }

    /// Loading public keys never creates anything: a missing set is an error with its code.
    #[test]
    fn missing_public_keys_are_an_error_and_nothing_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_public_keys(&public_keys_path(dir.path())).unwrap_err();
        assert_eq!(err.code(), "AMAS-AUDIT-0003");
        assert!(err.to_string().contains("--public-keys"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(public_keys_path(dir.path()), b"{\"keys\": []}").unwrap();
        let err = load_public_keys(&public_keys_path(dir.path())).unwrap_err();
        assert_eq!(err.code(), "AMAS-AUDIT-0004");
    }
}
