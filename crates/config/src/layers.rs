//! The layered loader as a library for the crates that own a section's meaning (`tools`,
//! `dataprotect`): this crate merges their files and `AMAS__<SECTION>__...` variables like
//! every other, and they validate the merged mapping with a [`Checker`] that records each
//! problem with the file it came from. One [`Layers`] collects the problems of every section,
//! so a process reports all of them at once.

use std::path::Path;

use serde::de::DeserializeOwned;
use yaml_serde::{Mapping, Value};

use crate::diag::{Diagnostics, KeyPath};
use crate::error::{ConfigError, ConfigErrors, codes};
use crate::model::AmasConfig;
use crate::sources::{self, Only, Tree};
use crate::{LoadOptions, env, validate};

/// A section of the effective configuration validated outside this crate: the file
/// `<NAME>.yaml` of the config directory, the variables `AMAS__<NAME>__...`, and the key
/// `<NAME>` in `amas config dump`.
pub trait Section: Sized {
    /// `tools`, `dataprotect`.
    const NAME: &'static str;

    /// Validates the merged section (its key paths start with [`Self::NAME`]); records every
    /// problem in `cx` and returns `None` when there was one.
    fn validate(section: &Mapping, cx: &mut Checker<'_>) -> Option<Self>;
}

/// Records problems found while validating a section, each with the file (or `env AMAS__...`
/// variable) its value came from.
pub struct Checker<'a> {
    diag: &'a mut Diagnostics,
    env: &'a [(String, String)],
}

impl std::fmt::Debug for Checker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("errors", &self.diag.errors.len())
            .finish_non_exhaustive()
    }
}

impl Checker<'_> {
    /// A problem with `code` ([`codes`]) at `path`.
    pub fn error(&mut self, code: &'static str, path: &KeyPath, message: impl Into<String>) {
        self.diag.at(code, path, message);
    }

    /// An invalid value at `path` (AMAS-CFG-0003).
    pub fn invalid(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.diag.invalid(path, message);
    }

    /// Deserializes `value` (found at `path`) into a raw type, recording a problem at the exact
    /// key path on failure (unknown keys as AMAS-CFG-0002).
    pub fn deserialize<T: DeserializeOwned>(&mut self, value: &Value, path: &KeyPath) -> Option<T> {
        validate::deserialize(value, path, self.diag)
    }

    /// How many problems have been recorded so far (to tell whether one entry had any).
    #[must_use]
    pub fn error_count(&self) -> usize {
        self.diag.errors.len()
    }

    /// The value of an environment variable a setting names (`postgres_url_env`), from the
    /// loader's environment.
    #[must_use]
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every layer merged (embedded defaults < config dir < `AMAS__...` < files named on the command
/// line), with the problems found so far; sections are validated from it one by one and
/// [`Layers::finish`] reports every problem of every section together.
#[derive(Debug)]
pub struct Layers {
    tree: Tree,
    diag: Diagnostics,
    opts: LoadOptions,
}

impl Layers {
    /// Reads and merges every file and variable.
    #[must_use]
    pub fn load(opts: &LoadOptions) -> Self {
        Self::assemble(opts, Only::All)
    }

    /// Only `S`'s file and variables: for a command that needs one section and must not fail
    /// on the others.
    #[must_use]
    pub fn for_section<S: Section>(opts: &LoadOptions) -> Self {
        Self::assemble(opts, Only::Section(S::NAME))
    }

    fn assemble(opts: &LoadOptions, only: Only) -> Self {
        let mut diag = Diagnostics::default();
        let mut tree = sources::assemble(opts.config_dir.as_deref(), only, &mut diag);
        env::apply(&mut tree, &opts.env, only, &mut diag);
        Self {
            tree,
            diag,
            opts: opts.clone(),
        }
    }

    /// Merges `path` as the file `name` (`dataprotect.yaml`) above every other layer, for a
    /// file named on the command line (the highest layer).
    pub fn overlay(&mut self, name: &str, path: &Path) {
        sources::overlay(&mut self.tree, name, path, &mut self.diag);
    }

    /// Validates the sections this crate owns (settings, providers, agents, workflows).
    pub fn core(&mut self) -> Option<AmasConfig> {
        validate::validate(
            &self.tree,
            self.opts.config_dir.as_deref(),
            &self.opts.env,
            &mut self.diag,
        )
    }

    /// Validates the section `S` owns.
    pub fn section<S: Section>(&mut self) -> Option<S> {
        validate_section(&self.tree, &self.opts.env, &mut self.diag)
    }

    /// `value` when nothing anywhere was wrong; otherwise every problem found.
    ///
    /// # Errors
    /// Every problem of every layer and section validated so far.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ConfigErrors> {
        finish(self.diag, value)
    }
}

fn validate_section<S: Section>(
    tree: &Tree,
    env: &[(String, String)],
    diag: &mut Diagnostics,
) -> Option<S> {
    let empty = Mapping::new();
    let section = tree.section(S::NAME).unwrap_or(&empty);
    S::validate(section, &mut Checker { diag, env })
}

fn finish<T>(diag: Diagnostics, value: Option<T>) -> Result<T, ConfigErrors> {
    match value {
        Some(value) if diag.errors.is_empty() => Ok(value),
        _ if !diag.errors.is_empty() => Err(ConfigErrors(diag.errors)),
        _ => Err(ConfigErrors(vec![ConfigError {
            code: codes::INVALID_VALUE,
            file: "<config>".to_owned(),
            path: String::new(),
            message: "the configuration is incomplete".to_owned(),
        }])),
    }
}

/// Loads one section on its own: its embedded file, the config dir's, its `AMAS__<NAME>__...`
/// variables; other files and variables are not read.
///
/// # Errors
/// Every problem found in that section, each with its file and key path.
pub fn load_section<S: Section>(opts: &LoadOptions) -> Result<S, ConfigErrors> {
    let mut layers = Layers::for_section::<S>(opts);
    let value = layers.section::<S>();
    layers.finish(value)
}

/// Validates `text` as the whole file `<NAME>.yaml` with no layer under it (a self-contained
/// file, such as the embedded default on its own); `label` names it in problems.
///
/// # Errors
/// Every problem found, each with `label` and its key path.
pub fn parse_section<S: Section>(label: &str, text: &str) -> Result<S, ConfigErrors> {
    let mut diag = Diagnostics::default();
    let tree = sources::single(&format!("{}.yaml", S::NAME), label, text, &mut diag);
    let value = validate_section::<S>(&tree, &[], &mut diag);
    finish(diag, value)
}
