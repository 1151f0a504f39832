//! `file_write`: creates or replaces a text file in the task workspace, atomically (temporary
//! file in the same directory, then rename), creating parent directories inside it only.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::Deserialize;

use super::{check_names, relative_components, workspace_root};
use crate::config::FileSettings;
use crate::error::ToolError;
use crate::params::parse_params;
use crate::spec::{Tool, ToolContext, ToolOutput, ToolSpec};

pub struct FileWrite {
    spec: ToolSpec,
    settings: FileSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    path: String,
    content: String,
}

impl FileWrite {
    #[must_use]
    pub fn new(spec: ToolSpec, settings: FileSettings) -> Self {
        Self { spec, settings }
    }
}

fn io_fail(what: &str, raw: &str, e: &std::io::Error) -> ToolError {
    ToolError::Failed(format!("cannot {what} `{raw}`: {}", e.kind()))
}

/// Walks the parent directories one by one from the root, creating missing ones; a symlinked
/// directory is accepted only when it resolves inside the root.
fn confined_parent(root: &Path, dirs: &[String], raw: &str) -> Result<PathBuf, ToolError> {
    let mut cur = root.to_path_buf();
    for d in dirs {
        let next = cur.join(d);
        match std::fs::symlink_metadata(&next) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Owner-only, as the workspace: what tools write is task data.
                let created =
                    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
                        .create(&next);
                match created {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        // Lost a race: re-check what is there now.
                        return confined_parent(root, dirs, raw);
                    }
                    Err(e) => return Err(io_fail("create a directory for", raw, &e)),
                }
                cur = next;
            }
            Err(e) => return Err(io_fail("inspect", raw, &e)),
            Ok(m) if m.file_type().is_symlink() => {
                let canon = next
                    .canonicalize()
                    .map_err(|e| io_fail("resolve", raw, &e))?;
                if !canon.starts_with(root) {
                    return Err(ToolError::refused(format!(
                        "`{raw}` goes through a symlink leading outside the workspace"
                    )));
                }
                if !canon.is_dir() {
                    return Err(ToolError::Failed(format!(
                        "`{d}` in `{raw}` is not a directory"
                    )));
                }
                cur = canon;
            }
            Ok(m) if m.is_dir() => cur = next,
            Ok(_) => {
                return Err(ToolError::Failed(format!(
                    "`{d}` in `{raw}` is not a directory"
                )));
            }
        }
    }
    Ok(cur)
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

pub(crate) fn write_text(
    ctx: &ToolContext,
    raw: &str,
    content: &str,
    settings: &FileSettings,
) -> Result<String, ToolError> {
    if content.len() as u64 > settings.max_bytes {
        return Err(ToolError::TooLarge {
            what: "content".into(),
            limit: settings.max_bytes,
        });
    }
    let comps = relative_components(raw)?;
    check_names(&comps, settings)?;
    let root = workspace_root(&ctx.workspace)?;
    let (name, dirs) = comps
        .split_last()
        .ok_or_else(|| ToolError::invalid("/path", "empty path"))?;
    let parent = confined_parent(&root, dirs, raw)?;
    let target = parent.join(name);
    if let Ok(m) = std::fs::symlink_metadata(&target) {
        if m.file_type().is_symlink() {
            return Err(ToolError::refused(format!(
                "`{raw}` is a symlink: not written through"
            )));
        }
        if m.is_dir() {
            return Err(ToolError::Failed(format!("`{raw}` is a directory")));
        }
    }
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let temp = parent.join(format!(".{name}.amas-tmp-{}-{seq}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(|e| io_fail("create a temporary file for", raw, &e))?;
        f.write_all(content.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io_fail("write", raw, &e))?;
        std::fs::rename(&temp, &target).map_err(|e| io_fail("replace", raw, &e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result?;
    Ok(comps.join("/"))
}

#[async_trait]
impl Tool for FileWrite {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let p: Params = parse_params(params)?;
        let ctx = ctx.clone();
        let settings = self.settings.clone();
        let len = p.content.len();
        let rel =
            tokio::task::spawn_blocking(move || write_text(&ctx, &p.path, &p.content, &settings))
                .await
                .map_err(|e| ToolError::Failed(format!("file task: {e}")))??;
        Ok(ToolOutput {
            bytes_in: 0,
            bytes_out: len as u64,
            content: serde_json::json!({ "path": rel, "bytes": len }),
        })
    }
}
