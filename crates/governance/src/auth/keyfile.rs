//! The local signing key on disk: an Ed25519 key as PKCS#8 DER, owner-only, created atomically.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use super::AuthError;

/// Where the key lives below the data directory.
pub(crate) fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("jwt-ed25519.pk8")
}

/// Loads the key at `path`, creating it first if it does not exist.
pub(crate) fn load_or_create(path: &Path) -> Result<SigningKey, AuthError> {
    load_or_create_with(
        path,
        || {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            key.to_pkcs8_der()
                .map(|der| der.as_bytes().to_vec())
                .map_err(|_| AuthError::KeyStore("cannot encode the new key as PKCS#8".to_owned()))
        },
        |der| decode(path, der),
    )
}

/// Where the redaction secret lives below the data directory.
pub(crate) fn redaction_secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("redact-hmac.key")
}

/// The installation's secret for keyed-hash redaction tokens (32 random bytes), created on
/// first use, owner-only like the signing key.
pub(crate) fn load_or_create_secret(path: &Path) -> Result<[u8; 32], AuthError> {
    load_or_create_with(
        path,
        || {
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            Ok(secret.to_vec())
        },
        |bytes| {
            <[u8; 32]>::try_from(bytes).map_err(|_| {
                AuthError::KeyStore(format!("{} is not a 32-byte secret", path.display()))
            })
        },
    )
}

/// The file at `path` decoded, after checking it is owner-only; created from `fresh` first if
/// it does not exist.
fn load_or_create_with<T>(
    path: &Path,
    fresh: impl FnOnce() -> Result<Vec<u8>, AuthError>,
    decode: impl Fn(&[u8]) -> Result<T, AuthError>,
) -> Result<T, AuthError> {
    match fs::read(path) {
        Ok(bytes) => {
            check_owner_only(path)?;
            decode(&bytes)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => create(path, fresh()?, decode),
        Err(err) => Err(store_error("cannot read", path, &err)),
    }
}

fn decode(path: &Path, der: &[u8]) -> Result<SigningKey, AuthError> {
    SigningKey::from_pkcs8_der(der).map_err(|_| {
        AuthError::KeyStore(format!("{} is not an Ed25519 PKCS#8 key", path.display()))
    })
}

/// Writes fresh key material to a temporary file and links it into place, so a crash never
/// leaves a half-written key and two processes starting at once end up sharing one key:
/// `hard_link` fails if the target exists (unlike `rename`), and the loser loads the winner's.
fn create<T>(
    path: &Path,
    bytes: Vec<u8>,
    decode: impl Fn(&[u8]) -> Result<T, AuthError>,
) -> Result<T, AuthError> {
    let dir = path
        .parent()
        .ok_or_else(|| AuthError::KeyStore(format!("{} has no parent", path.display())))?;
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "key".to_owned(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::now_v7()));
    let written = write_owner_only(&tmp, &bytes);
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    // The temporary name is removed whatever happened; a leftover is harmless but untidy.
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            decode(&bytes)
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            let existing = fs::read(path).map_err(|e| store_error("cannot read", path, &e))?;
            decode(&existing)
        }
        Err(err) => Err(store_error("cannot write", path, &err)),
    }
}

/// Writes `bytes` to `path` (owner-only) through a temporary file renamed into place, so a
/// reader sees the old content or the new, never half of it. For files that change (the audit
/// public key set); a key is created once with [`load_or_create`] instead.
pub(crate) fn replace_owner_only(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    let dir = path
        .parent()
        .ok_or_else(|| AuthError::KeyStore(format!("{} has no parent", path.display())))?;
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::now_v7()));
    let written = write_owner_only(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(err) = written {
        let _ = fs::remove_file(&tmp);
        return Err(store_error("cannot write", path, &err));
    }
    sync_dir(dir);
    Ok(())
}

fn write_owner_only(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn create_private_dir(dir: &Path) -> Result<(), AuthError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|err| store_error("cannot create", dir, &err))
}

/// Makes the new directory entry durable; best effort, as some filesystems refuse it.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Refuses a private key that others can read, as ssh does: better a clear start-up error than
/// tokens anyone on the machine can forge.
fn check_owner_only(path: &Path) -> Result<(), AuthError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).map_err(|err| store_error("cannot stat", path, &err))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(AuthError::KeyStore(format!(
                "{} is accessible by other users (mode {mode:o}); run `chmod 600` on it",
                path.display()
            )));
        }
    }
    Ok(())
}

fn store_error(what: &str, path: &Path, err: &io::Error) -> AuthError {
    AuthError::KeyStore(format!("{what} {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        let first = load_or_create(&path).unwrap();
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.verifying_key(), second.verifying_key());
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("jwt-ed25519.pk8")]);
    }

    #[cfg(unix)]
    #[test]
    fn key_is_owner_only_and_loose_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(matches!(err, AuthError::KeyStore(msg) if msg.contains("chmod 600")));
    }

    #[test]
    fn garbage_key_file_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        load_or_create(&path).unwrap();
        fs::write(&path, b"not a key").unwrap();
        assert!(matches!(load_or_create(&path), Err(AuthError::KeyStore(_))));
        assert_eq!(fs::read(&path).unwrap(), b"not a key");
    }
}
