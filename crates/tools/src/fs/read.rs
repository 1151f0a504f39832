//! `file_read`: a UTF-8 text file from the task workspace.

use async_trait::async_trait;
use serde::Deserialize;

use super::{read_limited, resolve_existing, workspace_root};
use crate::config::FileSettings;
use crate::error::ToolError;
use crate::params::parse_params;
use crate::spec::{Tool, ToolContext, ToolOutput, ToolSpec};

pub struct FileRead {
    spec: ToolSpec,
    settings: FileSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    path: String,
}

impl FileRead {
    #[must_use]
    pub fn new(spec: ToolSpec, settings: FileSettings) -> Self {
        Self { spec, settings }
    }
}

/// Reads a confined text file: (path relative to the root, content).
pub(crate) fn read_text(
    ctx: &ToolContext,
    raw: &str,
    settings: &FileSettings,
) -> Result<(String, String), ToolError> {
    let root = workspace_root(&ctx.workspace)?;
    let (path, rel) = resolve_existing(&root, raw, settings)?;
    let bytes = read_limited(&path, raw, settings.max_bytes)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| ToolError::Failed(format!("`{raw}` is not UTF-8 text")))?;
    Ok((rel, text))
}

#[async_trait]
impl Tool for FileRead {
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
        let (rel, text) = tokio::task::spawn_blocking(move || read_text(&ctx, &p.path, &settings))
            .await
            .map_err(|e| ToolError::Failed(format!("file task: {e}")))??;
        Ok(ToolOutput {
            bytes_in: text.len() as u64,
            bytes_out: 0,
            content: serde_json::json!({ "path": rel, "bytes": text.len(), "content": text }),
        })
    }
}
