//! `config/tools.yaml`: the `tools` section of the layered configuration (embedded file <
//! `<config-dir>/tools.yaml` < `AMAS__TOOLS__...`, merged key by key by `amas-config`); raw
//! entries with unknown keys rejected, validated into [`ToolsConfig`], every problem reported
//! at once with its file and key path.

mod load;
mod settings;

pub use load::{EMBEDDED_TOOLS_YAML, ToolConfig, ToolsConfig};
pub use settings::{
    Database, FileSettings, HttpFetchSettings, HttpMethod, SqlSettings, ToolSettings,
};
