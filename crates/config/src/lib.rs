//! Layered configuration: embedded defaults < `--config DIR` < `AMAS__SECTION__KEY` environment
//! variables. Raw types with unknown keys rejected, validated into the typed [`AmasConfig`];
//! every problem is reported at once, with its file and path.

mod contract;
mod diag;
mod duration;
mod env;
mod error;
mod model;
mod raw;
mod sources;
mod validate;

use std::fmt;
use std::path::PathBuf;

pub use contract::{Contract, Violation};
pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors, codes};
pub use model::*;

/// Where configuration comes from, besides the embedded defaults.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// A directory whose `settings.yaml`, `providers.yaml`, `agents.yaml` and
    /// `workflows/*.yaml` override the embedded ones (see `docs/configuration.md`).
    pub config_dir: Option<PathBuf>,
    /// The process environment (`std::env::vars()`); only `AMAS__...` variables are read.
    pub env: Vec<(String, String)>,
}

impl LoadOptions {
    /// Options reading `config_dir` and the current process environment.
    #[must_use]
    pub fn from_process(config_dir: Option<PathBuf>) -> Self {
        Self {
            config_dir,
            env: std::env::vars().collect(),
        }
    }
}

// The environment holds secrets (API keys): show only the names of the variables we read.
impl fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amas_vars: Vec<&str> = self
            .env
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("AMAS__"))
            .collect();
        f.debug_struct("LoadOptions")
            .field("config_dir", &self.config_dir)
            .field("amas_env_vars", &amas_vars)
            .finish()
    }
}

/// Loads and validates the effective configuration.
///
/// # Errors
/// Every problem found in any layer, each with its code, file and key path.
pub fn load(opts: &LoadOptions) -> Result<AmasConfig, ConfigErrors> {
    let mut diag = diag::Diagnostics::default();
    let mut tree = sources::assemble(opts.config_dir.as_deref(), &mut diag);
    env::apply(&mut tree, &opts.env, &mut diag);
    let config = validate::validate(&tree, opts.config_dir.as_deref(), &mut diag);
    match config {
        Some(config) if diag.errors.is_empty() => Ok(config),
        _ if !diag.errors.is_empty() => Err(ConfigErrors(diag.errors)),
        _ => Err(ConfigErrors(vec![ConfigError {
            code: codes::INVALID_VALUE,
            file: "<config>".to_owned(),
            path: String::new(),
            message: "the configuration is incomplete".to_owned(),
        }])),
    }
}

/// The embedded default files, as `(path relative to the config dir, contents)`, for
/// `amas config dump` and for users to copy and edit.
#[must_use]
pub fn embedded_files() -> Vec<(&'static str, &'static str)> {
    sources::EMBEDDED.to_vec()
}
