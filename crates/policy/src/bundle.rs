//! A policy bundle: the `.rego` sources of one directory (or the embedded defaults) and the
//! SHA-256 that identifies them in decisions and audit records.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::PolicyError;

/// One policy source file. `name` is the file name, unique within a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    pub name: String,
    pub source: String,
}

/// The sources of a bundle, sorted by name, and their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyBundle {
    files: Vec<PolicyFile>,
    hash: String,
}

/// The default bundle shipped in `policies/`.
const EMBEDDED: [(&str, &str); 5] = [
    ("api.rego", include_str!("../../../policies/api.rego")),
    ("lib.rego", include_str!("../../../policies/lib.rego")),
    ("model.rego", include_str!("../../../policies/model.rego")),
    ("task.rego", include_str!("../../../policies/task.rego")),
    ("tool.rego", include_str!("../../../policies/tool.rego")),
];

impl PolicyBundle {
    /// Builds a bundle from in-memory files (sorted here, so the hash is order-independent).
    #[must_use]
    pub fn from_files(mut files: Vec<PolicyFile>) -> Self {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let hash = hash_files(&files);
        Self { files, hash }
    }

    /// The bundle compiled into the binary.
    #[must_use]
    pub fn embedded() -> Self {
        Self::from_files(
            EMBEDDED
                .iter()
                .map(|(name, source)| PolicyFile {
                    name: (*name).to_owned(),
                    source: (*source).to_owned(),
                })
                .collect(),
        )
    }

    /// Reads every `*.rego` file directly in `dir` (subdirectories such as `tests/` are not
    /// policies).
    pub fn from_dir(dir: &Path) -> Result<Self, PolicyError> {
        let read_err = |source| PolicyError::Read {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if !path.is_file() || path.extension().is_none_or(|e| e != "rego") {
                continue;
            }
            let source = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                path: path.clone(),
                source,
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push(PolicyFile { name, source });
        }
        if files.is_empty() {
            return Err(PolicyError::Incomplete {
                message: format!("no .rego files in {}", dir.display()),
            });
        }
        Ok(Self::from_files(files))
    }

    #[must_use]
    pub fn files(&self) -> &[PolicyFile] {
        &self.files
    }

    /// Hex SHA-256 over the sorted (name, source) pairs.
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

fn hash_files(files: &[PolicyFile]) -> String {
    let mut hasher = Sha256::new();
    for f in files {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        hasher.update((f.name.len() as u64).to_le_bytes());
        hasher.update(f.name.as_bytes());
        hasher.update((f.source.len() as u64).to_le_bytes());
        hasher.update(f.source.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, source: &str) -> PolicyFile {
        PolicyFile {
            name: name.to_owned(),
            source: source.to_owned(),
        }
    }

    #[test]
    fn hash_ignores_order_but_not_content() {
        let a = PolicyBundle::from_files(vec![file("a.rego", "x"), file("b.rego", "y")]);
        let b = PolicyBundle::from_files(vec![file("b.rego", "y"), file("a.rego", "x")]);
        let c = PolicyBundle::from_files(vec![file("a.rego", "x"), file("b.rego", "z")]);
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn from_dir_reads_only_rego_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.rego"), "package p").unwrap();
        std::fs::write(dir.path().join("notes.md"), "not policy").unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        let bundle = PolicyBundle::from_dir(dir.path()).unwrap();
        assert_eq!(bundle.files().len(), 1);
        assert_eq!(bundle.files()[0].name, "p.rego");
    }

    #[test]
    fn empty_dir_is_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let err = PolicyBundle::from_dir(dir.path()).unwrap_err();
        assert_eq!(err.code(), "AMAS-POL-0003");
    }
}
