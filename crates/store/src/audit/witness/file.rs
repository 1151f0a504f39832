//! The default witness: an append-only file, one JSON line per checkpoint, each line written
//! with one `write` in append mode and fsynced before `publish` returns. Put it on another
//! filesystem than the database (or make it append-only with `chattr +a`) so that whoever can
//! rewrite the database cannot also rewrite it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Witness, WitnessError};
use crate::audit::Checkpoint;

/// Appends checkpoints to a file.
#[derive(Clone, Debug)]
pub struct FileWitness {
    path: PathBuf,
}

impl FileWitness {
    /// The witness at `path`, created (mode 0600) if it does not exist.
    ///
    /// # Errors
    /// The file cannot be created or opened for appending (its directory is missing, or it is
    /// not writable).
    pub fn open(path: &Path) -> Result<Self, WitnessError> {
        let witness = Self {
            path: path.to_owned(),
        };
        witness.append(b"")?;
        Ok(witness)
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, bytes: &[u8]) -> Result<(), WitnessError> {
        let fail = |what: &str, e: std::io::Error| {
            WitnessError(format!(
                "cannot {what} the audit witness {}: {e}",
                self.path.display()
            ))
        };
        let existed = self.path.exists();
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(|e| fail("open", e))?;
        if !bytes.is_empty() {
            // One write in append mode: concurrent appenders (processes sharing a PostgreSQL
            // database and a witness path) never interleave inside a line.
            file.write_all(bytes).map_err(|e| fail("write", e))?;
            file.sync_data().map_err(|e| fail("sync", e))?;
        }
        if !existed && let Some(dir) = self.path.parent() {
            // The new directory entry must survive a crash too; best effort.
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(handle) = File::open(dir) {
                let _ = handle.sync_all();
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Witness for FileWitness {
    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    async fn publish(&self, checkpoint: &Checkpoint) -> Result<(), WitnessError> {
        let mut line = serde_json::to_vec(checkpoint)
            .map_err(|e| WitnessError(format!("cannot encode a checkpoint: {e}")))?;
        line.push(b'\n');
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.append(&line))
            .await
            .map_err(|e| WitnessError(format!("the witness append did not finish: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::conformance::test_signer;
    use crate::audit::witness::read_witness_file;
    use crate::audit::{ChainLink, Checkpoint};

    fn checkpoint(seq: u64) -> Checkpoint {
        let link = ChainLink {
            seq,
            hash: "ab".repeat(32),
        };
        Checkpoint::sign_tree(&link, &"cd".repeat(32), &test_signer()).unwrap()
    }

    /// Checkpoints come back in order, the file is owner-only, a torn last line is ignored and
    /// an edited line is an error, not a silently shorter witness.
    #[tokio::test]
    async fn appends_lines_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.jsonl");
        assert_eq!(read_witness_file(&path).unwrap(), None);
        let witness = FileWitness::open(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"", "created empty");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let written = [checkpoint(3), checkpoint(9)];
        for cp in &written {
            witness.publish(cp).await.unwrap();
        }
        let log = read_witness_file(&path).unwrap().unwrap();
        assert_eq!(log.checkpoints, written);
        assert!(!log.torn_tail);
        assert_eq!(log.source, witness.describe());

        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"up_to_seq\":1");
        std::fs::write(&path, &text).unwrap();
        let log = read_witness_file(&path).unwrap().unwrap();
        assert_eq!((log.checkpoints.len(), log.torn_tail), (2, true));

        std::fs::write(&path, text.replacen("up_to_seq", "up_to_sex", 1)).unwrap();
        let err = read_witness_file(&path).unwrap_err();
        assert!(err.0.contains("line 1"), "{err}");
    }

    #[test]
    fn a_path_that_cannot_be_created_fails_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileWitness::open(&dir.path().join("missing/witness.jsonl")).unwrap_err();
        assert!(err.0.contains("cannot open"), "{err}");
        assert_eq!(err.code(), "AMAS-AUDIT-0005");
    }
}
