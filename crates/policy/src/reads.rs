//! What a bundle reads: the input paths its rules refer to, and whether it calls a builtin whose
//! answer depends on something other than its arguments (the clock, randomness, the network).
//!
//! This is what makes decisions cacheable ([`crate::memo`]): a decision is a function of the
//! bundle and of the input's values at these paths, so two inputs that agree on them get the
//! same decision. The analysis walks the whole parsed bundle and over-approximates: a path is
//! cut at the first step that is not a literal string (`input.a[x]` reads all of `input.a`),
//! and any use of `input` that is not a field path (`x := input`, `walk(input)`, an import of
//! `input`, `with input...`) reads the whole input. Every AST node type is destructured without
//! `..`, so a regorus upgrade that adds a child fails to compile here instead of hiding a read.

use regorus::Value;
use regorus::unstable::{Expr, Literal, LiteralStmt, Module, Query, Rule, RuleAssign, RuleHead};

/// One input path: the field names from `input` down (empty: the whole input).
pub(crate) type InputPath = Vec<String>;

/// Builtins whose result does not follow from their arguments. A bundle calling one is never
/// cached. (`io.jwt.decode_verify` and certificate verification read the clock.)
const NONDETERMINISTIC: &[&str] = &[
    "time.now_ns",
    "rand.intn",
    "uuid.rfc4122",
    "http.send",
    "opa.runtime",
    "net.lookup_ip_addr",
    "io.jwt.decode_verify",
    "crypto.x509.parse_and_verify_certificates",
    "crypto.x509.parse_and_verify_certificates_with_options",
];

/// What the analysis found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BundleReads {
    /// Minimal set of paths (none is a prefix of another), sorted.
    pub paths: Vec<InputPath>,
    /// The first nondeterministic builtin the bundle calls, if any.
    pub nondeterministic: Option<String>,
}

impl BundleReads {
    pub(crate) fn of(modules: &[regorus::unstable::Ref<Module>]) -> Self {
        let mut walker = Walker::default();
        for module in modules {
            walker.module(module);
        }
        Self {
            paths: minimal(walker.paths),
            nondeterministic: walker.nondeterministic,
        }
    }
}

#[derive(Default)]
struct Walker {
    paths: Vec<InputPath>,
    nondeterministic: Option<String>,
}

impl Walker {
    fn module(&mut self, module: &Module) {
        let Module {
            package: _,
            imports,
            policy,
            rego_v1: _,
            target: _,
            num_expressions: _,
            num_statements: _,
            num_queries: _,
        } = module;
        for import in imports {
            // `import input.x as y` makes `y.z` an input read the walker cannot follow.
            if root_var(&import.refr).as_deref() == Some("input") {
                self.paths.push(Vec::new());
            }
        }
        for rule in policy {
            self.rule(rule);
        }
    }

    fn rule(&mut self, rule: &Rule) {
        match rule {
            Rule::Spec {
                span: _,
                head,
                bodies,
            } => {
                match head {
                    RuleHead::Compr {
                        span: _,
                        refr,
                        assign,
                    } => {
                        self.expr(refr);
                        self.assign(assign.as_ref());
                    }
                    RuleHead::Set { span: _, refr, key } => {
                        self.expr(refr);
                        if let Some(key) = key {
                            self.expr(key);
                        }
                    }
                    RuleHead::Func {
                        span: _,
                        refr,
                        args,
                        assign,
                    } => {
                        self.expr(refr);
                        for arg in args {
                            self.expr(arg);
                        }
                        self.assign(assign.as_ref());
                    }
                }
                for body in bodies {
                    let regorus::unstable::RuleBody {
                        span: _,
                        assign,
                        is_else: _,
                        query,
                    } = body;
                    self.assign(assign.as_ref());
                    self.query(query);
                }
            }
            Rule::Default {
                span: _,
                refr,
                args,
                op: _,
                value,
            } => {
                self.expr(refr);
                for arg in args {
                    self.expr(arg);
                }
                self.expr(value);
            }
        }
    }

    fn assign(&mut self, assign: Option<&RuleAssign>) {
        if let Some(RuleAssign {
            span: _,
            op: _,
            value,
        }) = assign
        {
            self.expr(value);
        }
    }

    fn query(&mut self, query: &Query) {
        let Query {
            span: _,
            stmts,
            qidx: _,
        } = query;
        for stmt in stmts {
            let LiteralStmt {
                span: _,
                literal,
                with_mods,
                sidx: _,
            } = stmt;
            for modifier in with_mods {
                // Replacing part of the input changes what every rule below reads.
                if root_var(&modifier.refr).as_deref() == Some("input") {
                    self.paths.push(Vec::new());
                }
                self.expr(&modifier.refr);
                self.expr(&modifier.r#as);
            }
            match literal {
                Literal::SomeVars { span: _, vars: _ } => {}
                Literal::SomeIn {
                    span: _,
                    key,
                    value,
                    collection,
                } => {
                    if let Some(key) = key {
                        self.expr(key);
                    }
                    self.expr(value);
                    self.expr(collection);
                }
                Literal::Expr { span: _, expr } | Literal::NotExpr { span: _, expr } => {
                    self.expr(expr);
                }
                Literal::Every {
                    span: _,
                    key: _,
                    value: _,
                    domain,
                    query,
                } => {
                    self.expr(domain);
                    self.query(query);
                }
            }
        }
    }

    fn expr(&mut self, expr: &Expr) {
        // A field path from `input`: record it and visit only the dynamic indexes on the way.
        if let Some((path, dynamic)) = input_path(expr) {
            self.paths.push(path);
            for index in dynamic {
                self.expr(index);
            }
            return;
        }
        match expr {
            Expr::String { .. }
            | Expr::RawString { .. }
            | Expr::Number { .. }
            | Expr::Bool { .. }
            | Expr::Null { .. } => {}
            Expr::Var {
                span: _,
                value,
                eidx: _,
            } => {
                // A bare `input` outside a field path: the whole input flows somewhere.
                if var_name(value) == Some("input") {
                    self.paths.push(Vec::new());
                }
            }
            Expr::Array {
                span: _,
                items,
                eidx: _,
            }
            | Expr::Set {
                span: _,
                items,
                eidx: _,
            } => {
                for item in items {
                    self.expr(item);
                }
            }
            Expr::Object {
                span: _,
                fields,
                eidx: _,
            } => {
                for (_, key, value) in fields {
                    self.expr(key);
                    self.expr(value);
                }
            }
            Expr::ArrayCompr {
                span: _,
                term,
                query,
                eidx: _,
            }
            | Expr::SetCompr {
                span: _,
                term,
                query,
                eidx: _,
            } => {
                self.expr(term);
                self.query(query);
            }
            Expr::ObjectCompr {
                span: _,
                key,
                value,
                query,
                eidx: _,
            } => {
                self.expr(key);
                self.expr(value);
                self.query(query);
            }
            Expr::Call {
                span: _,
                fcn,
                params,
                eidx: _,
            } => {
                let name = dotted_name(fcn);
                if let Some(name) = &name
                    && self.nondeterministic.is_none()
                    && NONDETERMINISTIC.contains(&name.as_str())
                {
                    self.nondeterministic = Some(name.clone());
                }
                // `object.get(input, "a" | ["a", "b"], default)` reads one path, not the input.
                if name.as_deref() == Some("object.get")
                    && let [object, key, rest @ ..] = params.as_slice()
                    && let Some(mut path) = literal_input_path(object)
                    && let Some(tail) = literal_keys(key)
                {
                    path.extend(tail);
                    self.paths.push(path);
                    for param in rest {
                        self.expr(param);
                    }
                    return;
                }
                self.expr(fcn);
                for param in params {
                    self.expr(param);
                }
            }
            Expr::UnaryExpr {
                span: _,
                expr,
                eidx: _,
            } => self.expr(expr),
            Expr::RefDot {
                span: _,
                refr,
                field: _,
                eidx: _,
            } => self.expr(refr),
            Expr::RefBrack {
                span: _,
                refr,
                index,
                eidx: _,
            } => {
                self.expr(refr);
                self.expr(index);
            }
            Expr::BinExpr {
                span: _,
                op: _,
                lhs,
                rhs,
                eidx: _,
            }
            | Expr::BoolExpr {
                span: _,
                op: _,
                lhs,
                rhs,
                eidx: _,
            }
            | Expr::ArithExpr {
                span: _,
                op: _,
                lhs,
                rhs,
                eidx: _,
            }
            | Expr::AssignExpr {
                span: _,
                op: _,
                lhs,
                rhs,
                eidx: _,
            } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            Expr::Membership {
                span: _,
                key,
                value,
                collection,
                eidx: _,
            } => {
                if let Some(key) = key {
                    self.expr(key);
                }
                self.expr(value);
                self.expr(collection);
            }
        }
    }
}

/// When `expr` is `input` followed by field steps: the literal-string prefix of the path, and the
/// index expressions of the steps after the cut (which are themselves to be walked).
fn input_path(expr: &Expr) -> Option<(InputPath, Vec<&Expr>)> {
    // Steps from the outermost in; reversed at the end.
    let mut steps: Vec<Step<'_>> = Vec::new();
    let mut current = expr;
    loop {
        match current {
            Expr::RefDot { refr, field, .. } => {
                steps.push(Step::Field(field.1.as_string().ok()?.to_string()));
                current = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                steps.push(match index.as_ref() {
                    Expr::String { value, .. } | Expr::RawString { value, .. } => {
                        Step::Field(value.as_string().ok()?.to_string())
                    }
                    other => Step::Dynamic(other),
                });
                current = refr;
            }
            Expr::Var { value, .. } if var_name(value) == Some("input") => break,
            _ => return None,
        }
        // A bare `input` is not a path (the caller records it as the whole input).
    }
    if steps.is_empty() {
        return None;
    }
    steps.reverse();
    let mut path = Vec::new();
    let mut dynamic = Vec::new();
    let mut cut = false;
    for step in steps {
        match step {
            Step::Field(name) if !cut => path.push(name),
            Step::Field(_) => {}
            Step::Dynamic(index) => {
                cut = true;
                dynamic.push(index);
            }
        }
    }
    Some((path, dynamic))
}

/// `input` or `input.a.b` with literal steps only: the path (empty for `input` itself).
fn literal_input_path(expr: &Expr) -> Option<InputPath> {
    match expr {
        Expr::Var { value, .. } if var_name(value) == Some("input") => Some(Vec::new()),
        other => input_path(other).and_then(|(path, dynamic)| dynamic.is_empty().then_some(path)),
    }
}

enum Step<'a> {
    Field(String),
    Dynamic(&'a Expr),
}

/// `"a"` or `["a", "b"]` (literal strings only).
fn literal_keys(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::String { value, .. } | Expr::RawString { value, .. } => {
            Some(vec![value.as_string().ok()?.to_string()])
        }
        Expr::Array { items, .. } => items
            .iter()
            .map(|item| match item.as_ref() {
                Expr::String { value, .. } | Expr::RawString { value, .. } => {
                    value.as_string().ok().map(|s| s.to_string())
                }
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The root variable of a reference chain (`input` in `input.a[b].c`).
fn root_var(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Var { value, .. } => var_name(value).map(ToOwned::to_owned),
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => root_var(refr),
        _ => None,
    }
}

/// `a.b.c` as text, when `expr` is a chain of a variable and field steps (a function name).
fn dotted_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Var { value, .. } => var_name(value).map(ToOwned::to_owned),
        Expr::RefDot { refr, field, .. } => Some(format!(
            "{}.{}",
            dotted_name(refr)?,
            field.1.as_string().ok()?
        )),
        _ => None,
    }
}

fn var_name(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s.as_ref()),
        _ => None,
    }
}

/// Sorted, deduplicated, and without paths that another path is a prefix of.
fn minimal(mut paths: Vec<InputPath>) -> Vec<InputPath> {
    paths.sort();
    paths.dedup();
    let mut kept: Vec<InputPath> = Vec::new();
    for path in paths {
        // Sorted order puts a prefix right before the paths it covers.
        if kept.last().is_some_and(|last| path.starts_with(last)) {
            continue;
        }
        kept.push(path);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(body: &str) -> BundleReads {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("t.rego".to_owned(), format!("package t\n\n{body}\n"))
            .unwrap();
        BundleReads::of(engine.get_modules())
    }

    fn paths(body: &str) -> Vec<Vec<&'static str>> {
        reads(body)
            .paths
            .into_iter()
            .map(|p| {
                p.into_iter()
                    .map(|s| &*Box::leak(s.into_boxed_str()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn field_paths_are_read_as_written() {
        assert_eq!(
            paths("allow if { input.a.b == 1; input[\"c\"].d == 2 }"),
            vec![vec!["a", "b"], vec!["c", "d"]]
        );
    }

    #[test]
    fn a_dynamic_index_cuts_the_path_and_is_itself_walked() {
        assert_eq!(
            paths("allow if { some k in input.keys; input.a[k].b == 1 }"),
            vec![vec!["a"], vec!["keys"]]
        );
        assert_eq!(
            paths("allow if { input.a[input.i] == 1 }"),
            vec![vec!["a"], vec!["i"]]
        );
    }

    #[test]
    fn a_prefix_covers_longer_paths() {
        assert_eq!(
            paths("f(x) := x.b\nallow if { f(input.a) == 1; input.a.c == 2 }"),
            vec![vec!["a"]]
        );
    }

    #[test]
    fn object_get_on_input_reads_its_key_path_only() {
        assert_eq!(
            paths(
                "x := object.get(input, [\"a\", \"b\"], input.d)\ny := object.get(input, \"c\", 0)"
            ),
            vec![vec!["a", "b"], vec!["c"], vec!["d"]]
        );
        // A computed key could be anything: the whole input.
        assert_eq!(
            paths("k := \"a\"\nx := object.get(input, k, 0)"),
            vec![Vec::<&str>::new()]
        );
    }

    #[test]
    fn the_input_as_a_value_reads_everything() {
        for body in [
            "x := input",
            "x := count(input)",
            "x := json.marshal(input)",
            "allow if { some k, v in input; v == 1 }",
            "allow if { input[k] == 1 }",
            "allow if { x := 1; x == 1 } \nallow if { data.t.allow with input.a as 1 }",
        ] {
            assert_eq!(paths(body), vec![Vec::<&str>::new()], "{body}");
        }
    }

    #[test]
    fn reads_in_heads_comprehensions_every_and_defaults_are_found() {
        assert_eq!(
            paths(
                "default d := input.z\n\
                 s contains input.h if true\n\
                 c := [x | some x in input.arr; x > input.min]\n\
                 e if { every v in input.all { v > input.floor } }\n\
                 o := {k: v | some k, v in input.obj}\n\
                 n if not input.neg"
            ),
            vec![
                vec!["all"],
                vec!["arr"],
                vec!["floor"],
                vec!["h"],
                vec!["min"],
                vec!["neg"],
                vec!["obj"],
                vec!["z"]
            ]
        );
    }

    #[test]
    fn clock_randomness_and_network_builtins_are_flagged() {
        for (body, builtin) in [
            ("t := time.now_ns()", "time.now_ns"),
            ("r := rand.intn(\"x\", 10)", "rand.intn"),
            ("u := uuid.rfc4122(\"x\")", "uuid.rfc4122"),
        ] {
            assert_eq!(reads(body).nondeterministic.as_deref(), Some(builtin));
        }
        assert_eq!(
            reads("d := time.date(input.ns)").nondeterministic,
            None,
            "a pure time function is deterministic"
        );
    }

    /// What the shipped bundle reads: the memo key of every decision. Reading more (the task id,
    /// the arguments, the usage counters) would make most decisions miss.
    #[test]
    fn the_default_bundle_reads_identity_agent_tool_data_dlp_and_approvals_only() {
        let mut engine = regorus::Engine::new();
        for file in crate::PolicyBundle::embedded().files() {
            engine
                .add_policy(file.name.clone(), file.source.clone())
                .unwrap();
        }
        let reads = BundleReads::of(engine.get_modules());
        assert_eq!(reads.nondeterministic, None);
        let paths: Vec<String> = reads.paths.iter().map(|p| p.join(".")).collect();
        assert_eq!(
            paths,
            [
                "action.name",
                "agent.id",
                "approvals",
                "approver_roles",
                "data.classification",
                "data.redacted.classification",
                "dlp.actions",
                "dlp.error",
                "dlp.types",
                "environment",
                "principal",
                "provider.name",
                "provider.trusted_for",
                "resource.owner",
                "resource.owner_iss",
                "resource.tenant",
                "tool.name",
                "tool.requires_approval",
                "tool.risk",
                "tool.side_effects",
            ]
        );
    }
}
