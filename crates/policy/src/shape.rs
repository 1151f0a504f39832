//! The well-formed inputs of the embedded bundle: the set of input documents on which its
//! bytecode decides exactly as the tree interpreter, so [`crate::Evaluation::Guarded`] may run
//! them on the (several times faster) VM and hand everything else to the interpreter.
//!
//! In regorus 0.14 the two evaluators part ways only where the interpreter raises an error
//! inside a rule body (iterating over a string or null, a builtin on the wrong type, a conflict
//! between rule values): the interpreter fails the decision, the VM skips the body. The
//! embedded bundle cannot conflict (every multi-definition rule yields `true` or uses `else`),
//! and its rule bodies only iterate over, compare and format values of the types below, so on
//! inputs where every value the bundle reads has its expected type nothing can raise. That is
//! what the differential proptest (`tests/differential.rs`) checks on generated well-formed and
//! malformed inputs, and what `the_shape_covers_every_path_the_bundle_reads` keeps in step with
//! the Rego: a path the bundle starts reading must be added here, typed.
//!
//! The check is deliberately strict: an absent field is fine (both evaluators see undefined),
//! a field of another type, an intermediate that is not an object, or an unexpected key inside
//! `principal` or an approval sends the input to the interpreter.

use serde_json::Value;

/// What the value at a path must be when present.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Str,
    Bool,
    /// An array of strings.
    Strings,
    /// An object whose values are strings.
    StringMap,
    /// `{sub, iss, roles, tenant}`, each optional, nothing else.
    Principal,
    /// An array of `{approver, iss, roles, decision}` objects, each field optional, nothing else.
    Approvals,
}

/// Every input path the embedded bundle reads (sorted, as [`crate::reads`] lists them), typed.
const FIELDS: &[(&[&str], Kind)] = &[
    (&["action", "name"], Kind::Str),
    (&["agent", "id"], Kind::Str),
    (&["approvals"], Kind::Approvals),
    (&["approver_roles"], Kind::Strings),
    (&["data", "classification"], Kind::Str),
    (&["data", "redacted", "classification"], Kind::Str),
    (&["dlp", "actions"], Kind::StringMap),
    (&["dlp", "error"], Kind::Bool),
    (&["dlp", "types"], Kind::Strings),
    (&["environment"], Kind::Str),
    (&["principal"], Kind::Principal),
    (&["provider", "name"], Kind::Str),
    (&["provider", "trusted_for"], Kind::Strings),
    (&["resource", "owner"], Kind::Str),
    (&["resource", "owner_iss"], Kind::Str),
    (&["resource", "tenant"], Kind::Str),
    (&["tool", "name"], Kind::Str),
    (&["tool", "requires_approval"], Kind::Bool),
    (&["tool", "risk"], Kind::Str),
    (&["tool", "side_effects"], Kind::Str),
];

/// The paths of [`FIELDS`], for comparing with what a bundle reads.
pub(crate) fn paths() -> Vec<Vec<String>> {
    FIELDS
        .iter()
        .map(|(path, _)| path.iter().map(|f| (*f).to_owned()).collect())
        .collect()
}

/// The kind expected at `path`; `None` for a path the embedded bundle does not read.
pub(crate) fn kind_of(path: &[String]) -> Option<Kind> {
    FIELDS
        .iter()
        .find(|(fields, _)| fields.iter().copied().eq(path.iter().map(String::as_str)))
        .map(|(_, kind)| *kind)
}

/// Whether the embedded bundle's bytecode decides `input` exactly as the interpreter (the
/// reference [`crate::input::Projector`] is tested against; it checks the same on its walk).
#[cfg(test)]
pub(crate) fn well_formed(input: &Value) -> bool {
    input.is_object() && FIELDS.iter().all(|(path, kind)| at(input, path, *kind))
}

/// The value at `path` is absent or of `kind`; every node on the way is an object or absent.
#[cfg(test)]
fn at(input: &Value, path: &[&str], kind: Kind) -> bool {
    let mut node = input;
    for field in path {
        let Value::Object(fields) = node else {
            return false;
        };
        match fields.get(*field) {
            Some(child) => node = child,
            None => return true,
        }
    }
    is(node, kind)
}

pub(crate) fn is(value: &Value, kind: Kind) -> bool {
    match kind {
        Kind::Str => value.is_string(),
        Kind::Bool => value.is_boolean(),
        Kind::Strings => value
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_string)),
        Kind::StringMap => value
            .as_object()
            .is_some_and(|fields| fields.values().all(Value::is_string)),
        Kind::Principal => only(
            value,
            &[
                ("sub", Kind::Str),
                ("iss", Kind::Str),
                ("roles", Kind::Strings),
                ("tenant", Kind::Str),
            ],
        ),
        Kind::Approvals => value.as_array().is_some_and(|items| {
            items.iter().all(|a| {
                only(
                    a,
                    &[
                        ("approver", Kind::Str),
                        ("iss", Kind::Str),
                        ("roles", Kind::Strings),
                        ("decision", Kind::Str),
                    ],
                )
            })
        }),
    }
}

/// An object with no keys but `allowed`, each of its kind.
fn only(value: &Value, allowed: &[(&str, Kind)]) -> bool {
    value.as_object().is_some_and(|fields| {
        fields.iter().all(|(key, v)| {
            allowed
                .iter()
                .any(|(name, kind)| name == key && is(v, *kind))
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_shape_covers_every_path_the_bundle_reads() {
        let mut engine = regorus::Engine::new();
        for file in crate::PolicyBundle::embedded().files() {
            engine
                .add_policy(file.name.clone(), file.source.clone())
                .unwrap();
        }
        let reads = crate::reads::BundleReads::of(engine.get_modules());
        assert_eq!(reads.paths, paths());
    }

    #[test]
    fn what_the_gate_builds_is_well_formed() {
        let input = json!({
            "principal": {"sub": "alice", "iss": "amas-local", "roles": ["submitter"], "tenant": "acme"},
            "agent": {"id": "research", "role": "research"},
            "action": {"kind": "tool_call", "name": "http_fetch"},
            "tool": {"name": "http_fetch", "risk": "high", "side_effects": "external",
                     "idempotent": true, "requires_approval": false},
            "data": {"classification": "confidential", "tags": ["PII"],
                     "redacted": {"classification": "internal", "tags": []}},
            "dlp": {"types": ["email"], "counts": {"email": 2}, "actions": {"email": "redact"},
                    "error": false},
            "task": {"id": "t1", "type": "research"},
            "environment": "production",
            "parameters": {"url": [1, null, {"x": 2.5}]},
            "usage": {"tool_calls": 3, "bytes_out": 1200},
            "approvals": [{"approver": "bob", "iss": "amas-local", "roles": ["approver"], "decision": "approve"}],
            "approver_roles": ["approver", "admin"],
        });
        assert!(well_formed(&input));
        assert!(well_formed(&json!({})));
    }

    #[test]
    fn a_wrong_type_anywhere_the_bundle_reads_is_not() {
        for bad in [
            json!([]),
            json!({"approvals": null}),
            json!({"approvals": [{"approver": "bob", "roles": "approver"}]}),
            json!({"approvals": [{"approver": "bob", "note": "x"}]}),
            json!({"approvals": ["bob"]}),
            json!({"approver_roles": "admin"}),
            json!({"principal": {"sub": "a", "roles": [1]}}),
            json!({"principal": {"sub": "a", "admin": true}}),
            json!({"principal": {"sub": "a", "iss": 1}}),
            json!({"approvals": [{"approver": "bob", "iss": null}]}),
            json!({"resource": {"owner_iss": ["x"]}}),
            json!({"principal": "alice"}),
            json!({"tool": "file_read"}),
            json!({"tool": {"risk": 3}}),
            json!({"tool": {"requires_approval": "yes"}}),
            json!({"data": {"redacted": "internal"}}),
            json!({"dlp": {"types": "email"}}),
            json!({"dlp": {"actions": {"email": 1}}}),
            json!({"dlp": {"error": 1}}),
            json!({"environment": null}),
            json!({"provider": {"trusted_for": [null]}}),
        ] {
            assert!(!well_formed(&bad), "{bad}");
        }
    }
}
