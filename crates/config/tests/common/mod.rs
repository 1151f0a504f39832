//! Loading the configuration as `amas` does, from a temp config dir and a given environment.

use amas_config::{AmasConfig, LoadOptions, load};

/// The configuration with `settings` as `settings.yaml` (if any) and `env` as the environment.
pub fn with(settings: Option<&str>, env: &[(&str, &str)]) -> Result<AmasConfig, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    if let Some(yaml) = settings {
        std::fs::write(dir.path().join("settings.yaml"), yaml).map_err(|e| e.to_string())?;
    }
    load(&LoadOptions {
        config_dir: Some(dir.path().to_path_buf()),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
    .map_err(|e| e.to_string())
}
