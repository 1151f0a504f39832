//! The top layer: `AMAS__SECTION__KEY[__KEY...]=value` environment variables.

use yaml_serde::{Mapping, Value};

use crate::diag::{Diagnostics, KeyPath};
use crate::error::codes;
use crate::sources::{Only, SECTIONS, Tree};

const PREFIX: &str = "AMAS__";

/// Applies every `AMAS__...` variable of `env` to `tree`; other variables are ignored, and so
/// are those of sections `only` leaves out.
pub(crate) fn apply(tree: &mut Tree, env: &[(String, String)], only: Only, diag: &mut Diagnostics) {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if let Only::Section(section) = only {
            let ours = rest
                .split("__")
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case(section));
            if !ours {
                continue;
            }
        }
        let label = format!("env {name}");
        let segments: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if segments.len() < 2 || segments.iter().any(String::is_empty) {
            let msg = "expected AMAS__<SECTION>__<KEY>[__<KEY>...] with no empty segment";
            diag.in_file(codes::INVALID_VALUE, label, &KeyPath::root(), msg);
            continue;
        }
        let path = KeyPath::from_segments(segments.clone());
        if !SECTIONS.contains(&segments[0].as_str()) {
            let msg = format!(
                "unknown section `{}`, expected one of: {}",
                segments[0],
                SECTIONS.join(", ")
            );
            diag.in_file(
                codes::UNKNOWN_KEY,
                label,
                &KeyPath::of(&[&segments[0]]),
                msg,
            );
            continue;
        }
        match set(tree.section_mut(&segments[0]), &segments[1..], scalar(raw)) {
            Ok(()) => diag.origins.record(path, label),
            Err(parent) => {
                let msg = format!("cannot set a key inside `{parent}`: it is not a mapping");
                diag.in_file(codes::INVALID_VALUE, label, &path, msg);
            }
        }
    }
}

/// The value as YAML (so numbers, booleans and `[a, b]` lists work); text that is not valid
/// YAML is taken as a string.
fn scalar(raw: &str) -> Value {
    yaml_serde::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Sets `keys` (at least one) under `map`, creating mappings on the way; a missing or null
/// intermediate becomes a mapping. Errs with the offending key when one holds a non-mapping.
fn set(map: &mut Mapping, keys: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else {
        return Ok(());
    };
    let mut current = map;
    for key in parents {
        let slot = current
            .entry(Value::from(key.as_str()))
            .or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Mapping(Mapping::new());
        }
        current = match slot {
            Value::Mapping(m) => m,
            _ => return Err(key.clone()),
        };
    }
    current.insert(Value::from(last.as_str()), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_one(tree: &mut Tree, name: &str, value: &str) -> Diagnostics {
        let mut diag = Diagnostics::default();
        apply(
            tree,
            &[(name.to_owned(), value.to_owned())],
            Only::All,
            &mut diag,
        );
        diag
    }

    #[test]
    fn values_are_typed_as_yaml_and_paths_lowercased() {
        let mut tree = Tree::default();
        assert!(
            apply_one(&mut tree, "AMAS__RUNTIME__MAX_CONCURRENT_TASKS", "8")
                .errors
                .is_empty()
        );
        assert!(
            apply_one(&mut tree, "AMAS__AGENTS__R__PROVIDERS", "[a, b]")
                .errors
                .is_empty()
        );
        let runtime = tree.section("runtime").cloned().unwrap_or_default();
        assert_eq!(runtime.get("max_concurrent_tasks"), Some(&Value::from(8)));
        let agent = tree.section("agents").and_then(|a| a.get("r")).cloned();
        let expected: Value = yaml_serde::from_str("providers: [a, b]").unwrap();
        assert_eq!(agent, Some(expected));
    }

    #[test]
    fn unknown_section_and_malformed_names_are_reported_with_the_variable() {
        let mut tree = Tree::default();
        let d = apply_one(&mut tree, "AMAS__SERVR__LISTEN", "x");
        assert_eq!(d.errors[0].code, codes::UNKNOWN_KEY);
        assert_eq!(d.errors[0].file, "env AMAS__SERVR__LISTEN");
        assert_eq!(d.errors[0].path, "servr");
        let d = apply_one(&mut tree, "AMAS__SERVER", "x");
        assert_eq!(d.errors[0].code, codes::INVALID_VALUE);
        let d = apply_one(&mut tree, "AMAS_MODEL_DIR", "/m");
        assert!(
            d.errors.is_empty(),
            "single-underscore variables are not config"
        );
    }

    #[test]
    fn setting_inside_a_scalar_is_an_error() {
        let mut tree = Tree::default();
        apply_one(&mut tree, "AMAS__SERVER__LISTEN", "127.0.0.1:1");
        let d = apply_one(&mut tree, "AMAS__SERVER__LISTEN__PORT", "2");
        assert_eq!(d.errors[0].path, "server.listen.port");
        assert!(
            d.errors[0].message.contains("`listen`"),
            "{}",
            d.errors[0].message
        );
    }
}
