//! Owner-only data at rest. The data directory holds the journal and audit log (prompts, tool
//! input and output, personal data), the signing keys and the task workspaces: other local
//! users must read none of it. New directories are created 0700 and new files 0600 whatever
//! the umask (SQLite gives the WAL and shared-memory files the database file's mode), and
//! [`secure_data_dir`] tightens an existing data directory at start, or refuses it when a path
//! cannot be tightened.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Group and other permission bits: none may be set on anything in the data directory.
const SHARED_BITS: u32 = 0o077;

/// Creates `dir` and any missing parent, each owner-only (0700).
///
/// # Errors
/// The I/O error of creating a directory.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path` empty and owner-only (0600) if it does not exist; an existing file is left
/// as it is (see [`secure_data_dir`]).
///
/// # Errors
/// The I/O error of creating the file.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the data directory `dir` and everything in it owner-only: creates it (0700) if
/// missing, then removes the group and other bits of every directory and file below it that
/// has them, without following symbolic links. Files directly in `keys/` are left alone: the
/// key store refuses a key file others could read (it may have been read; rotate it), rather
/// than quietly tightening it. Returns the paths that were tightened.
///
/// # Errors
/// [`StoreError::NotPrivate`] naming the first path that cannot be read or tightened (not
/// owned by the user AMAS runs as, or on a read-only file system).
pub fn secure_data_dir(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let fail = |path: &Path, e: &io::Error| {
        StoreError::NotPrivate(format!(
            "cannot make {} accessible to its owner only: {e}; the data directory and \
             everything in it must belong to the user AMAS runs as",
            path.display()
        ))
    };
    create_private_dir(dir).map_err(|e| fail(dir, &e))?;
    let keys = dir.join("keys");
    let mut tightened = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| fail(&path, &e))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|e| fail(&path, &e))?;
            for entry in entries {
                pending.push(entry.map_err(|e| fail(&path, &e))?.path());
            }
        } else if path.parent() == Some(keys.as_path()) {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & SHARED_BITS != 0 {
            std::fs::set_permissions(&path, Permissions::from_mode(mode & !SHARED_BITS & 0o7777))
                .map_err(|e| fail(&path, &e))?;
            tightened.push(path);
        }
    }
    Ok(tightened)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// New directories and files are owner-only whatever the umask lets through.
    #[test]
    fn creates_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let file = dir.join("amas.db");
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        fs::write(&file, b"data").unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(
            fs::read(&file).unwrap(),
            b"data",
            "an existing file is kept"
        );
    }

    /// An existing data directory made with a loose umask is tightened throughout (files and
    /// directories, owner bits kept), except key files (refused by the key store instead) and
    /// the targets of symbolic links, which are not followed.
    #[test]
    fn tightens_an_existing_data_dir() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let outside = root.path().join("outside.txt");
        fs::create_dir_all(dir.join("workspaces/t1/sub")).unwrap();
        fs::create_dir_all(dir.join("keys")).unwrap();
        for (path, m) in [
            (dir.join("amas.db"), 0o644),
            (dir.join("amas.db-wal"), 0o664),
            (dir.join("workspaces/t1/sub/report.txt"), 0o666),
            (dir.join("keys/token-signing.key"), 0o644),
            (outside.clone(), 0o644),
        ] {
            fs::write(&path, b"x").unwrap();
            fs::set_permissions(&path, Permissions::from_mode(m)).unwrap();
        }
        for d in [
            "",
            "workspaces",
            "workspaces/t1",
            "workspaces/t1/sub",
            "keys",
        ] {
            fs::set_permissions(dir.join(d), Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::symlink(&outside, dir.join("workspaces/t1/link")).unwrap();

        let tightened = secure_data_dir(&dir).unwrap();
        assert_eq!(tightened.len(), 8, "{tightened:?}");
        assert_eq!(mode(&dir), 0o700);
        for d in ["workspaces", "workspaces/t1", "workspaces/t1/sub", "keys"] {
            assert_eq!(mode(&dir.join(d)), 0o700, "{d}");
        }
        for f in ["amas.db", "amas.db-wal", "workspaces/t1/sub/report.txt"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        assert_eq!(mode(&dir.join("keys/token-signing.key")), 0o644);
        assert_eq!(mode(&outside), 0o644, "a symlink's target is not touched");
        assert!(secure_data_dir(&dir).unwrap().is_empty(), "idempotent");
    }

    #[test]
    fn creates_a_missing_data_dir_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("new");
        assert!(secure_data_dir(&dir).unwrap().is_empty());
        assert_eq!(mode(&dir), 0o700);
    }
}
