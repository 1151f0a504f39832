//! Layered configuration: embedded defaults < `--config DIR` < `AMAS__SECTION__KEY` environment
//! variables < files named on the command line. Raw types with unknown keys rejected, validated
//! into the typed [`AmasConfig`]; every problem is reported at once, with its file and path.
//! `tools.yaml` and `dataprotect.yaml` go through the same layers; the crates that own their
//! meaning validate them as a [`Section`] of the same [`Layers`].

mod contract;
mod diag;
mod duration;
mod env;
mod error;
mod layers;
mod model;
mod raw;
pub mod redacted;
mod scheduling;
mod sources;
mod validate;

use std::fmt;
use std::path::PathBuf;

pub use contract::{Contract, Violation};
pub use diag::KeyPath;
pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors, codes};
pub use layers::{Checker, Layers, Section, load_section, parse_section};
pub use model::*;
pub use scheduling::{SchedulingConfig, TenantSchedule};

/// Where configuration comes from, besides the embedded defaults.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// A directory whose `settings.yaml`, `providers.yaml`, `agents.yaml`, `tools.yaml`,
    /// `dataprotect.yaml` and `workflows/*.yaml` override the embedded ones (see
    /// `docs/configuration.md`).
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

/// Loads and validates the sections this crate owns (see [`Layers`] for the others).
///
/// # Errors
/// Every problem found in any layer, each with its code, file and key path.
pub fn load(opts: &LoadOptions) -> Result<AmasConfig, ConfigErrors> {
    let mut layers = Layers::load(opts);
    let config = layers.core();
    layers.finish(config)
}

/// The embedded default files, as `(path relative to the config dir, contents)`, for
/// `amas config dump` and for users to copy and edit.
#[must_use]
pub fn embedded_files() -> Vec<(&'static str, &'static str)> {
    sources::EMBEDDED.to_vec()
}
