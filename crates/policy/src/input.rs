//! The input document as the bundle sees it: only the parts the bundle reads, built straight as
//! a regorus value.
//!
//! A tool call's input carries the call's arguments, the task and the usage counters, which the
//! default bundle never reads; converting them cost a third of a fresh decision. The paths a
//! bundle reads ([`crate::reads`]) are already what the decision memo relies on: a decision is a
//! function of the values at those paths, so an input cut down to them decides exactly as the
//! whole one. The cut is conservative: along each path, a node that is not an object (where the
//! path cannot go on) is kept whole, so the policy sees every value it could reach.

use regorus::Value;

use crate::reads::InputPath;

/// `input` restricted to `paths` (sorted, none a prefix of another, as
/// [`crate::reads::BundleReads`] gives them); an empty path in `paths` keeps the whole input.
pub(crate) fn project(input: &serde_json::Value, paths: &[InputPath]) -> Value {
    project_at(input, paths, 0)
}

/// `value` is the node at depth `depth` of every path in `paths` (all share their first
/// `depth` fields).
fn project_at(value: &serde_json::Value, paths: &[InputPath], depth: usize) -> Value {
    let serde_json::Value::Object(fields) = value else {
        return convert(value);
    };
    if paths.iter().any(|p| p.len() <= depth) {
        return convert(value);
    }
    let mut projected = std::collections::BTreeMap::new();
    let mut rest = paths;
    while let Some(first) = rest.first() {
        let Some(field) = first.get(depth) else {
            break;
        };
        // Paths are sorted, so the ones through `field` are consecutive.
        let group = rest
            .iter()
            .take_while(|p| p.get(depth) == Some(field))
            .count();
        let (through, after) = rest.split_at(group);
        rest = after;
        if let Some(child) = fields.get(field.as_str()) {
            projected.insert(
                Value::String(field.as_str().into()),
                project_at(child, through, depth.saturating_add(1)),
            );
        }
    }
    Value::from(projected)
}

/// The regorus value of a JSON value, as regorus' own deserializer builds it (integers stay
/// integers, floats are floats; JSON has no non-finite numbers).
pub(crate) fn convert(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                // A JSON number is one of the three; f64 is what is left.
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(convert).collect::<Vec<_>>())
        }
        serde_json::Value::Object(fields) => Value::from(
            fields
                .iter()
                .map(|(k, v)| (Value::String(k.as_str().into()), convert(v)))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize as _;
    use serde_json::json;

    use super::*;

    fn paths(list: &[&str]) -> Vec<InputPath> {
        let mut paths: Vec<InputPath> = list
            .iter()
            .map(|p| {
                if p.is_empty() {
                    Vec::new()
                } else {
                    p.split('.').map(str::to_owned).collect()
                }
            })
            .collect();
        paths.sort();
        paths
    }

    fn value(json: serde_json::Value) -> Value {
        Value::deserialize(&json).unwrap()
    }

    /// The direct conversion is regorus' own, value for value (numbers included).
    #[test]
    fn convert_matches_regorus_deserialization() {
        let doc = json!({
            "s": "x", "n": null, "b": true, "u": 18446744073709551615u64, "i": -42,
            "f": 2.5, "a": [1, "two", [3.0], {"k": false}], "o": {"z": {}, "a": []},
        });
        assert_eq!(convert(&doc), value(doc));
    }

    #[test]
    fn only_read_paths_are_kept() {
        let doc = json!({
            "principal": {"sub": "alice", "roles": ["a"]},
            "tool": {"name": "t", "risk": "low", "idempotent": true},
            "parameters": {"path": "src/lib.rs"},
            "usage": {"tool_calls": 3},
        });
        let cut = project(
            &doc,
            &paths(&["principal", "tool.name", "tool.risk", "missing.x"]),
        );
        assert_eq!(
            cut,
            value(json!({
                "principal": {"sub": "alice", "roles": ["a"]},
                "tool": {"name": "t", "risk": "low"},
            }))
        );
    }

    /// Where a path meets a value it cannot descend into, the value stays: the policy sees it.
    #[test]
    fn a_non_object_on_a_path_is_kept_whole() {
        let doc = json!({"data": "restricted", "dlp": [1, 2], "x": 1});
        let cut = project(&doc, &paths(&["data.classification", "dlp.types"]));
        assert_eq!(cut, value(json!({"data": "restricted", "dlp": [1, 2]})));
        let not_an_object = json!([1, 2]);
        assert_eq!(
            project(&not_an_object, &paths(&["a"])),
            value(not_an_object)
        );
    }

    #[test]
    fn an_empty_path_keeps_the_whole_input() {
        let doc = json!({"a": {"b": 1}, "c": [2]});
        assert_eq!(project(&doc, &paths(&["", "a.b"])), value(doc));
    }
}
