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
use crate::shape::{self, Kind};

/// The paths a bundle reads as a tree, built once per bundle: projecting an input walks the
/// input's fields once, matching each against the (few, sorted) names the bundle reads, with
/// the regorus key of every name made once here; and, for the embedded bundle, checks on the
/// way that every value read has its expected type ([`crate::shape`]), so one walk does what
/// `project` and `shape::well_formed` do apart (hashing each name into the input's maps
/// twice and allocating each key anew took a third of a fresh decision).
pub(crate) struct Projector {
    root: Node,
}

enum Node {
    /// A path ends here: the value is kept whole (checked against `Kind` when guarded).
    Whole(Option<Kind>),
    /// Only these fields are read (sorted by name).
    Fields(Vec<Field>),
}

struct Field {
    name: Box<str>,
    key: Value,
    node: Node,
}

impl Projector {
    /// The tree of `paths` (sorted, none a prefix of another); with `guard`, each leaf carries
    /// the kind [`shape`] expects there.
    pub(crate) fn new(paths: &[InputPath], guard: bool) -> Self {
        Self {
            root: node(paths, 0, guard),
        }
    }

    /// `input` restricted to the paths, as `project` makes it, and whether it is well formed
    /// (as `shape::well_formed` says; without a guard, only whether every read node was an
    /// object).
    pub(crate) fn project(&self, input: &serde_json::Value) -> (Value, bool) {
        let mut well_formed = true;
        let value = walk(&self.root, input, &mut well_formed);
        (value, well_formed)
    }
}

fn node(paths: &[InputPath], depth: usize, guard: bool) -> Node {
    if let Some(leaf) = paths.iter().find(|p| p.len() <= depth) {
        return Node::Whole(if guard { shape::kind_of(leaf) } else { None });
    }
    let mut fields = Vec::new();
    let mut rest = paths;
    while let Some(first) = rest.first() {
        let Some(name) = first.get(depth) else {
            break;
        };
        let group = rest
            .iter()
            .take_while(|p| p.get(depth) == Some(name))
            .count();
        let (through, after) = rest.split_at(group);
        rest = after;
        fields.push(Field {
            name: name.as_str().into(),
            key: Value::String(name.as_str().into()),
            node: node(through, depth.saturating_add(1), guard),
        });
    }
    fields.sort_by(|a, b| a.name.cmp(&b.name));
    Node::Fields(fields)
}

fn walk(node: &Node, value: &serde_json::Value, well_formed: &mut bool) -> Value {
    match node {
        Node::Whole(kind) => {
            if let Some(kind) = kind {
                *well_formed &= shape::is(value, *kind);
            }
            convert(value)
        }
        Node::Fields(wanted) => {
            let serde_json::Value::Object(fields) = value else {
                // A path cannot go on through a non-object: kept whole, and not well formed.
                *well_formed = false;
                return convert(value);
            };
            let mut projected = std::collections::BTreeMap::new();
            for (name, child) in fields {
                if let Ok(at) = wanted.binary_search_by(|f| f.name.as_ref().cmp(name.as_str())) {
                    let field = &wanted[at];
                    projected.insert(field.key.clone(), walk(&field.node, child, well_formed));
                }
            }
            Value::from(projected)
        }
    }
}

/// `input` restricted to `paths` (sorted, none a prefix of another, as
/// [`crate::reads::BundleReads`] gives them); an empty path in `paths` keeps the whole input.
/// The reference the [`Projector`] is tested against.
#[cfg(test)]
pub(crate) fn project(input: &serde_json::Value, paths: &[InputPath]) -> Value {
    project_at(input, paths, 0)
}

/// `value` is the node at depth `depth` of every path in `paths` (all share their first
/// `depth` fields).
#[cfg(test)]
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

    /// The one-walk projector cuts as `project` does and judges as `shape::well_formed` does.
    #[test]
    fn the_projector_agrees_with_project_and_the_shape_check() {
        let embedded = crate::shape::paths();
        let other = paths(&["a.b", "a.c", "d", "principal"]);
        let docs = [
            json!({}),
            json!([1]),
            json!("x"),
            json!({"principal": {"sub": "a", "roles": ["r"], "tenant": "t"},
                   "tool": {"name": "t", "risk": "low", "requires_approval": false, "x": 1},
                   "dlp": {"types": ["email"], "actions": {"email": "redact"}, "error": false},
                   "data": {"classification": "internal", "redacted": {"classification": "public"}},
                   "approvals": [{"approver": "b", "roles": ["approver"], "decision": "approve"}],
                   "parameters": {"a": 1}, "usage": {"tool_calls": 2}, "a": {"b": 1, "c": [2], "e": 3}}),
            json!({"principal": {"sub": "a", "admin": true}}),
            json!({"tool": "file_read", "a": 4}),
            json!({"data": {"redacted": "internal"}}),
            json!({"dlp": {"actions": {"email": 1}}, "d": null}),
            json!({"approvals": null, "approver_roles": ["admin", 3]}),
        ];
        for (read, guard) in [(&embedded, true), (&embedded, false), (&other, false)] {
            let projector = Projector::new(read, guard);
            for doc in &docs {
                let (value, well_formed) = projector.project(doc);
                assert_eq!(value, project(doc, read), "{doc}");
                if guard {
                    assert_eq!(well_formed, crate::shape::well_formed(doc), "{doc}");
                }
            }
        }
    }

    #[test]
    fn an_empty_path_keeps_the_whole_input() {
        let doc = json!({"a": {"b": 1}, "c": [2]});
        assert_eq!(project(&doc, &paths(&["", "a.b"])), value(doc));
    }
}
