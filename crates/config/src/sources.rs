//! The layers: embedded defaults, then a user's config directory, merged into one YAML tree
//! per section, remembering which file each entry came from.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_serde::{Mapping, Value};

use crate::diag::{Diagnostics, KeyPath};
use crate::error::codes;

/// The default configuration compiled into the binary, by path relative to the config dir.
pub(crate) const EMBEDDED: &[(&str, &str)] = &[
    (
        "settings.yaml",
        include_str!("../../../config/settings.yaml"),
    ),
    (
        "providers.yaml",
        include_str!("../../../config/providers.yaml"),
    ),
    ("agents.yaml", include_str!("../../../config/agents.yaml")),
    (
        "workflows/research_report.yaml",
        include_str!("../../../config/workflows/research_report.yaml"),
    ),
    (
        "workflows/comparative_analysis.yaml",
        include_str!("../../../config/workflows/comparative_analysis.yaml"),
    ),
    (
        "workflows/code_review.yaml",
        include_str!("../../../config/workflows/code_review.yaml"),
    ),
    (
        "workflows/web_research.yaml",
        include_str!("../../../config/workflows/web_research.yaml"),
    ),
    (
        "workflows/security_audit.yaml",
        include_str!("../../../config/workflows/security_audit.yaml"),
    ),
    ("tools.yaml", include_str!("../../../config/tools.yaml")),
    (
        "dataprotect.yaml",
        include_str!("../../../config/dataprotect.yaml"),
    ),
];

/// Sections held in `settings.yaml`, merged key by key.
pub(crate) const SETTINGS_SECTIONS: [&str; 9] = [
    "server",
    "auth",
    "runtime",
    "scheduling",
    "approvals",
    "retention",
    "clearance",
    "audit",
    "store",
];
/// Every top-level section of the effective configuration.
pub(crate) const SECTIONS: [&str; 14] = [
    "server",
    "auth",
    "runtime",
    "scheduling",
    "approvals",
    "retention",
    "clearance",
    "audit",
    "store",
    "providers",
    "agents",
    "workflows",
    "tools",
    "dataprotect",
];

/// Where a higher layer of `tools.yaml` or `dataprotect.yaml` merges into the mapping below it
/// key by key (`*` matches any one key); everywhere else its value replaces the one below whole.
/// Maps of independent entries merge, so overriding one DLP action or redaction mode cannot
/// silently drop the `block` of another; units whose keys only make sense together (a JSON
/// Schema, a database, the moderation endpoint) are replaced whole.
const MERGED: &[&str] = &[
    "tools",
    "tools.*",
    "tools.*.settings",
    "dataprotect",
    "dataprotect.redaction",
    "dataprotect.redaction.modes",
    "dataprotect.classification",
    "dataprotect.classification.kinds",
    "dataprotect.limits",
    "dataprotect.content_safety",
    "dataprotect.content_safety.actions",
    "dataprotect.dlp",
    "dataprotect.dlp.actions",
];

/// Which sections to assemble; the others stay empty.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Only {
    All,
    Section(&'static str),
}

impl Only {
    fn wants(self, file: &str) -> bool {
        match self {
            Self::All => true,
            Self::Section(s) => section_of_file(file) == s,
        }
    }
}

/// The section a file (by its path relative to the config dir) fills.
fn section_of_file(name: &str) -> &'static str {
    match name {
        "settings.yaml" => "settings",
        "providers.yaml" => "providers",
        "agents.yaml" => "agents",
        "tools.yaml" => "tools",
        "dataprotect.yaml" => "dataprotect",
        _ => "workflows",
    }
}

/// The merged configuration, one YAML mapping per section, before any typing.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    sections: BTreeMap<String, Mapping>,
}

impl Tree {
    pub(crate) fn section(&self, name: &str) -> Option<&Mapping> {
        self.sections.get(name)
    }

    pub(crate) fn section_mut(&mut self, name: &str) -> &mut Mapping {
        self.sections.entry(name.to_owned()).or_default()
    }
}

/// Merges the embedded files, then those of `config_dir`, into a tree.
pub(crate) fn assemble(config_dir: Option<&Path>, only: Only, diag: &mut Diagnostics) -> Tree {
    let mut tree = Tree::default();
    for (name, text) in EMBEDDED.iter().filter(|(name, _)| only.wants(name)) {
        merge_file(&mut tree, name, &format!("<embedded>/{name}"), text, diag);
    }
    if let Some(dir) = config_dir {
        merge_dir(&mut tree, dir, only, diag);
    }
    tree
}

/// Merges one more file as `name` (`dataprotect.yaml`, ...) on top of what is there: a file
/// named on the command line, the highest layer.
pub(crate) fn overlay(tree: &mut Tree, name: &str, path: &Path, diag: &mut Diagnostics) {
    read_and_merge(tree, name, path, diag);
}

/// Parses `text` as the file `name` into an empty tree (no embedded defaults under it).
pub(crate) fn single(name: &str, label: &str, text: &str, diag: &mut Diagnostics) -> Tree {
    let mut tree = Tree::default();
    merge_file(&mut tree, name, label, text, diag);
    tree
}

fn merge_dir(tree: &mut Tree, dir: &Path, only: Only, diag: &mut Diagnostics) {
    if !dir.is_dir() {
        let msg = "the config directory does not exist or is not a directory";
        diag.in_file(
            codes::PARSE,
            dir.display().to_string(),
            &KeyPath::root(),
            msg,
        );
        return;
    }
    let files = [
        "settings.yaml",
        "providers.yaml",
        "agents.yaml",
        "tools.yaml",
        "dataprotect.yaml",
    ];
    for name in files.into_iter().filter(|name| only.wants(name)) {
        let path = dir.join(name);
        if path.exists() {
            read_and_merge(tree, name, &path, diag);
        }
    }
    let wf_dir = dir.join("workflows");
    if !only.wants("workflows/") || !wf_dir.is_dir() {
        return;
    }
    let mut files = match std::fs::read_dir(&wf_dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect::<Vec<_>>(),
        Err(e) => {
            diag.in_file(
                codes::PARSE,
                wf_dir.display().to_string(),
                &KeyPath::root(),
                e.to_string(),
            );
            return;
        }
    };
    files.sort();
    for path in files {
        if let Some(file_name) = path.file_name().and_then(|n| n.to_str()) {
            read_and_merge(tree, &format!("workflows/{file_name}"), &path, diag);
        }
    }
}

fn read_and_merge(tree: &mut Tree, name: &str, path: &Path, diag: &mut Diagnostics) {
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => merge_file(tree, name, &label, &text, diag),
        Err(e) => diag.in_file(
            codes::PARSE,
            label,
            &KeyPath::root(),
            format!("cannot read: {e}"),
        ),
    }
}

/// Parses one file and merges it into `tree`; `name` is its path relative to the config dir.
fn merge_file(tree: &mut Tree, name: &str, label: &str, text: &str, diag: &mut Diagnostics) {
    let root = KeyPath::root();
    let doc = match yaml_serde::from_str::<Value>(text) {
        Ok(Value::Null) => return,
        Ok(Value::Mapping(m)) => m,
        Ok(_) => {
            diag.in_file(
                codes::INVALID_VALUE,
                label,
                &root,
                "expected a mapping at the top level",
            );
            return;
        }
        Err(e) => {
            diag.in_file(codes::PARSE, label, &root, format!("invalid YAML: {e}"));
            return;
        }
    };
    if let Some(stem) = name
        .strip_prefix("workflows/")
        .and_then(|n| n.strip_suffix(".yaml"))
    {
        let path = KeyPath::of(&["workflows", stem]);
        diag.origins.record(path, label);
        tree.section_mut("workflows")
            .insert(Value::from(stem), Value::Mapping(doc));
        return;
    }
    if name == "dataprotect.yaml" {
        // The whole file is the `dataprotect` section: its keys have no wrapper.
        let path = KeyPath::of(&["dataprotect"]);
        let section = tree.section_mut("dataprotect");
        if section.is_empty() {
            diag.origins.record(path.clone(), label);
        }
        merge_deep(section, doc, &path, label, diag);
        return;
    }
    let allowed: &[&str] = match name {
        "settings.yaml" => &SETTINGS_SECTIONS,
        "providers.yaml" => &["providers"],
        "tools.yaml" => &["tools"],
        _ => &["agents"],
    };
    for (key, value) in doc {
        let Some(section) = key.as_str().filter(|k| allowed.contains(k)) else {
            let key = key_text(&key);
            let msg = format!(
                "unknown key `{key}`, expected one of: {}",
                allowed.join(", ")
            );
            diag.in_file(codes::UNKNOWN_KEY, label, &KeyPath::of(&[&key]), msg);
            continue;
        };
        merge_section(tree, section, value, label, diag);
    }
}

/// Merges one section's entries: a settings key or a named provider/agent replaces the one
/// below it; a `null` entry removes it.
fn merge_section(
    tree: &mut Tree,
    section: &str,
    value: Value,
    label: &str,
    diag: &mut Diagnostics,
) {
    let path = KeyPath::of(&[section]);
    let entries = match value {
        Value::Mapping(m) => m,
        Value::Null => return,
        _ => {
            diag.in_file(codes::INVALID_VALUE, label, &path, "expected a mapping");
            return;
        }
    };
    diag.origins.record(path.clone(), label);
    let target = tree.section_mut(section);
    if merged(&path) {
        merge_deep(target, entries, &path, label, diag);
        return;
    }
    for (key, value) in entries {
        let Some(k) = key.as_str() else {
            let msg = format!("key `{}` must be a string", key_text(&key));
            diag.in_file(codes::INVALID_VALUE, label, &path, msg);
            continue;
        };
        diag.origins.record(path.child(k), label);
        if value.is_null() && !SETTINGS_SECTIONS.contains(&section) {
            target.remove(k);
        } else {
            target.insert(key, value);
        }
    }
}

/// Whether a later layer merges into the mapping at `path` key by key ([`MERGED`]).
fn merged(path: &KeyPath) -> bool {
    let segments = path.segments();
    MERGED.iter().any(|pattern| {
        let parts: Vec<&str> = pattern.split('.').collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(segments)
                .all(|(p, s)| *p == "*" || *p == s.as_str())
    })
}

/// Merges `src` into `target` at `path`: where both hold a mapping and [`merged`] says so,
/// key by key (recursively); otherwise the value from `src` replaces the one below. A `null`
/// removes the key, so an entry falls back to its default (or a tool is removed).
fn merge_deep(
    target: &mut Mapping,
    src: Mapping,
    path: &KeyPath,
    label: &str,
    diag: &mut Diagnostics,
) {
    // Only what is written is recorded: a key merged into keeps the blame of the layer below
    // for its other keys.
    for (key, value) in src {
        let Some(k) = key.as_str().map(str::to_owned) else {
            let msg = format!("key `{}` must be a string", key_text(&key));
            diag.in_file(codes::INVALID_VALUE, label, path, msg);
            continue;
        };
        let child = path.child(k.as_str());
        if value.is_null() {
            diag.origins.record(child, label);
            target.remove(k.as_str());
            continue;
        }
        if let (Some(Value::Mapping(below)), Value::Mapping(above)) =
            (target.get_mut(k.as_str()), &value)
            && merged(&child)
        {
            merge_deep(below, above.clone(), &child, label, diag);
            continue;
        }
        diag.origins.record(child, label);
        target.insert(Value::from(k), value);
    }
}

/// A YAML key as text, for messages.
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => {
            yaml_serde::to_string(other).map_or_else(|_| "?".to_owned(), |s| s.trim().to_owned())
        }
    }
}
