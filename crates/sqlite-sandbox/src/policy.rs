//! What the authorizer allows, decided without FFI: `SELECT`, recursive CTEs (the budget
//! bounds them), reads of permitted tables and columns, and the functions of [`FUNCTIONS`].
//! Every other action (PRAGMA, ATTACH, writes, transactions, schema changes) is denied.

use std::collections::HashSet;
use std::fmt;

use libsqlite3_sys as sys;

/// Functions a read-only analysis may call: the core scalar, aggregate, window, date and JSON
/// functions and the FTS ranking helpers. Not here, so denied: `load_extension`,
/// `fts3_tokenizer`, `sqlite_*` (build and schema internals), `zeroblob` and `randomblob` (they
/// exist to make big values), `random`, `changes`, `last_insert_rowid`, `total_changes`,
/// `subtype`, `unknown`, and any application-defined function.
#[rustfmt::skip]
pub const FUNCTIONS: &[&str] = &[
    // Scalar.
    "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "if", "ifnull",
    "iif", "instr", "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min",
    "nullif", "octet_length", "printf", "quote", "replace", "round", "rtrim", "sign", "soundex",
    "substr", "substring", "trim", "typeof", "unhex", "unicode", "unistr", "unistr_quote",
    "unlikely", "upper",
    // Math (present when SQLite is built with them).
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos", "cosh",
    "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow", "power",
    "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
    // Aggregate.
    "avg", "count", "group_concat", "median", "percentile", "percentile_cont",
    "percentile_disc", "string_agg", "sum", "total",
    // Window.
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // Date and time.
    "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
    "current_date", "current_time", "current_timestamp",
    // JSON (values only; `json_each`/`json_tree` are tables, see [`TABLE_FUNCTIONS`]).
    "json", "jsonb", "json_array", "jsonb_array", "json_array_length", "json_error_position",
    "json_extract", "jsonb_extract", "->", "->>", "json_insert", "jsonb_insert", "json_object",
    "jsonb_object", "json_patch", "jsonb_patch", "json_pretty", "json_remove", "jsonb_remove",
    "json_replace", "jsonb_replace", "json_set", "jsonb_set", "json_type", "json_valid",
    "json_quote", "json_group_array", "jsonb_group_array", "json_group_object",
    "jsonb_group_object",
    // Full-text search ranking and highlighting (reads of an FTS table are checked as reads).
    "match", "bm25", "highlight", "snippet", "offsets", "matchinfo",
];

/// Table-valued functions that read only their arguments.
pub const TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree", "jsonb_each", "jsonb_tree"];

/// Names that are never user data: the schema and statistics tables, the table-valued pragmas
/// (`pragma_table_info`, `pragma_database_list`, ...) and the page statistics table.
fn internal(table: &str) -> bool {
    table.starts_with("sqlite_") || table.starts_with("pragma_") || table == "dbstat"
}

/// Which tables may be read: the operator's configuration, names as written in `tools.yaml`.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Tables and views that may be read; empty: every table and view of the file that is not
    /// blocked and not internal.
    pub allowed_tables: Vec<String>,
    /// Never readable, whatever `allowed_tables` says.
    pub blocked_tables: Vec<String>,
    /// `table.column`: that column is never readable (a query naming it, or `*` over its
    /// table, is denied).
    pub blocked_columns: Vec<String>,
}

/// What the authorizer refused first, for the error message. Names come from the statement or
/// the schema, never from row data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    Table(String),
    Column {
        table: String,
        column: String,
    },
    Function(String),
    /// Any other action: its name in `sqlite3.h` without the `SQLITE_` prefix.
    Action(&'static str),
    /// The callback could not tell what was asked (a non-UTF-8 name) or outlived its sandbox.
    Unknown,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(t) => write!(f, "reading table `{t}` is not permitted"),
            Self::Column { table, column } => {
                write!(f, "reading column `{table}.{column}` is not permitted")
            }
            Self::Function(name) => write!(f, "function `{name}` is not permitted"),
            Self::Action(a) => write!(f, "{a} is not permitted: only reads are"),
            Self::Unknown => f.write_str("the statement asked for something unrecognised"),
        }
    }
}

/// The decision table, built once per call from the [`Rules`] and the file's own schema.
#[derive(Debug)]
pub struct ReadPolicy {
    /// Lower-case names that may be read.
    readable: HashSet<String>,
    /// Lower-case names of every table and view in the file (readable or not).
    known: HashSet<String>,
    /// Lower-case `(table, column)`.
    blocked_columns: HashSet<(String, String)>,
}

impl ReadPolicy {
    /// `objects`: the names of the tables and views in `sqlite_schema`.
    #[must_use]
    pub fn new(rules: &Rules, objects: &[String]) -> Self {
        let lower = |v: &[String]| -> HashSet<String> {
            v.iter().map(|s| s.trim().to_ascii_lowercase()).collect()
        };
        let allowed = lower(&rules.allowed_tables);
        let blocked = lower(&rules.blocked_tables);
        let known = lower(objects);
        let mut readable: HashSet<String> = known
            .iter()
            .filter(|t| !internal(t) && !blocked.contains(*t))
            .filter(|t| allowed.is_empty() || allowed.contains(*t))
            .cloned()
            .collect();
        readable.extend(TABLE_FUNCTIONS.iter().map(|t| (*t).to_owned()));
        let blocked_columns = rules
            .blocked_columns
            .iter()
            .filter_map(|c| {
                c.trim()
                    .to_ascii_lowercase()
                    .split_once('.')
                    .map(|(t, c)| (t.to_owned(), c.to_owned()))
            })
            .collect();
        Self {
            readable,
            known,
            blocked_columns,
        }
    }

    /// The verdict on one authorizer call: `action` and its two arguments, and the database
    /// name (`main`, `temp`, or none for an unqualified table whose columns are not used).
    ///
    /// # Errors
    /// The [`Denial`] for every action but the allowed ones.
    pub fn decide(
        &self,
        action: i32,
        arg1: Option<&str>,
        arg2: Option<&str>,
        db: Option<&str>,
    ) -> Result<(), Denial> {
        match action {
            sys::SQLITE_SELECT | sys::SQLITE_RECURSIVE => Ok(()),
            sys::SQLITE_FUNCTION => {
                let name = arg2.unwrap_or_default().to_ascii_lowercase();
                if FUNCTIONS.contains(&name.as_str()) {
                    Ok(())
                } else {
                    Err(Denial::Function(name))
                }
            }
            sys::SQLITE_READ => self.read(
                &arg1.unwrap_or_default().to_ascii_lowercase(),
                &arg2.unwrap_or_default().to_ascii_lowercase(),
                db,
            ),
            other => Err(Denial::Action(action_name(other))),
        }
    }

    fn read(&self, table: &str, column: &str, db: Option<&str>) -> Result<(), Denial> {
        let deny = || Err(Denial::Table(table.to_owned()));
        match db {
            // A FROM item whose columns are not used (`SELECT count(*) FROM t`), as written:
            // a CTE or subquery name, or an unqualified table. Refuse it if it names a table
            // or view that is not readable, or anything internal.
            None if column.is_empty() => {
                if self.readable.contains(table) || !(self.known.contains(table) || internal(table))
                {
                    Ok(())
                } else {
                    deny()
                }
            }
            Some(db) if !db.eq_ignore_ascii_case("main") => deny(),
            _ if !self.readable.contains(table) => deny(),
            _ if self
                .blocked_columns
                .contains(&(table.to_owned(), column.to_owned())) =>
            {
                Err(Denial::Column {
                    table: table.to_owned(),
                    column: column.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// The name of an authorizer action code, for the message.
fn action_name(code: i32) -> &'static str {
    match code {
        sys::SQLITE_CREATE_INDEX
        | sys::SQLITE_CREATE_TABLE
        | sys::SQLITE_CREATE_TEMP_INDEX
        | sys::SQLITE_CREATE_TEMP_TABLE
        | sys::SQLITE_CREATE_TEMP_TRIGGER
        | sys::SQLITE_CREATE_TEMP_VIEW
        | sys::SQLITE_CREATE_TRIGGER
        | sys::SQLITE_CREATE_VIEW
        | sys::SQLITE_CREATE_VTABLE => "CREATE",
        sys::SQLITE_DROP_INDEX
        | sys::SQLITE_DROP_TABLE
        | sys::SQLITE_DROP_TEMP_INDEX
        | sys::SQLITE_DROP_TEMP_TABLE
        | sys::SQLITE_DROP_TEMP_TRIGGER
        | sys::SQLITE_DROP_TEMP_VIEW
        | sys::SQLITE_DROP_TRIGGER
        | sys::SQLITE_DROP_VIEW
        | sys::SQLITE_DROP_VTABLE => "DROP",
        sys::SQLITE_DELETE => "DELETE",
        sys::SQLITE_INSERT => "INSERT",
        sys::SQLITE_UPDATE => "UPDATE",
        sys::SQLITE_PRAGMA => "PRAGMA",
        sys::SQLITE_TRANSACTION => "a transaction",
        sys::SQLITE_SAVEPOINT => "SAVEPOINT",
        sys::SQLITE_ATTACH => "ATTACH",
        sys::SQLITE_DETACH => "DETACH",
        sys::SQLITE_ALTER_TABLE => "ALTER TABLE",
        sys::SQLITE_REINDEX => "REINDEX",
        sys::SQLITE_ANALYZE => "ANALYZE",
        _ => "this action",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> ReadPolicy {
        let rules = Rules {
            allowed_tables: allowed.iter().map(|s| (*s).to_owned()).collect(),
            blocked_tables: vec!["secrets".into()],
            blocked_columns: vec!["Items.Cost".into()],
        };
        let objects: Vec<String> = ["items", "Secrets", "orders", "v_items", "sqlite_stat1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        ReadPolicy::new(&rules, &objects)
    }

    const MAIN: Option<&str> = Some("main");

    /// The allowed path first: reads of permitted tables and columns, allowlisted functions,
    /// SELECT and recursive CTEs.
    #[test]
    fn reads_of_permitted_tables_and_allowlisted_functions_pass() {
        let p = policy(&[]);
        for (table, column, db) in [
            ("items", "name", MAIN),
            ("ITEMS", "id", MAIN),
            ("orders", "", MAIN),
            ("orders", "", None),
            ("my_cte", "", None),
            ("json_each", "value", MAIN),
        ] {
            assert_eq!(
                p.decide(sys::SQLITE_READ, Some(table), Some(column), db),
                Ok(()),
                "{table}.{column}"
            );
        }
        for f in [
            "count",
            "SUM",
            "json_extract",
            "->>",
            "group_concat",
            "printf",
        ] {
            assert_eq!(
                p.decide(sys::SQLITE_FUNCTION, None, Some(f), None),
                Ok(()),
                "{f}"
            );
        }
        assert_eq!(p.decide(sys::SQLITE_SELECT, None, None, None), Ok(()));
        assert_eq!(p.decide(sys::SQLITE_RECURSIVE, None, None, None), Ok(()));
    }

    #[test]
    fn blocked_internal_unknown_and_other_schema_reads_are_denied() {
        let p = policy(&[]);
        for (table, column, db) in [
            ("secrets", "password", MAIN),
            ("SECRETS", "", None),
            ("secrets", "", MAIN),
            ("sqlite_master", "sql", MAIN),
            ("sqlite_schema", "", None),
            ("sqlite_stat1", "tbl", MAIN),
            ("pragma_table_info", "name", MAIN),
            ("pragma_database_list", "", None),
            ("dbstat", "name", MAIN),
            ("not_in_schema", "x", MAIN),
            ("items", "name", Some("temp")),
            ("items", "name", Some("other")),
        ] {
            assert_eq!(
                p.decide(sys::SQLITE_READ, Some(table), Some(column), db),
                Err(Denial::Table(table.to_ascii_lowercase())),
                "{table}.{column} in {db:?}"
            );
        }
        assert_eq!(
            p.decide(sys::SQLITE_READ, Some("items"), Some("COST"), MAIN),
            Err(Denial::Column {
                table: "items".into(),
                column: "cost".into()
            })
        );
    }

    #[test]
    fn an_allowlist_narrows_the_readable_tables_and_never_reopens_a_blocked_one() {
        let p = policy(&["items", "secrets"]);
        assert_eq!(
            p.decide(sys::SQLITE_READ, Some("items"), Some("id"), MAIN),
            Ok(())
        );
        for t in ["orders", "secrets"] {
            assert!(
                p.decide(sys::SQLITE_READ, Some(t), Some("id"), MAIN)
                    .is_err(),
                "{t}"
            );
            assert!(
                p.decide(sys::SQLITE_READ, Some(t), Some(""), None).is_err(),
                "{t}"
            );
        }
    }

    #[test]
    fn functions_outside_the_allowlist_and_every_other_action_are_denied() {
        let p = policy(&[]);
        for f in [
            "load_extension",
            "fts3_tokenizer",
            "sqlite_version",
            "sqlite_compileoption_get",
            "zeroblob",
            "randomblob",
            "readfile",
            "my_udf",
        ] {
            assert_eq!(
                p.decide(sys::SQLITE_FUNCTION, None, Some(f), None),
                Err(Denial::Function(f.into()))
            );
        }
        for (code, name) in [
            (sys::SQLITE_PRAGMA, "PRAGMA"),
            (sys::SQLITE_ATTACH, "ATTACH"),
            (sys::SQLITE_INSERT, "INSERT"),
            (sys::SQLITE_UPDATE, "UPDATE"),
            (sys::SQLITE_DELETE, "DELETE"),
            (sys::SQLITE_TRANSACTION, "a transaction"),
            (sys::SQLITE_CREATE_TEMP_TABLE, "CREATE"),
            (sys::SQLITE_ANALYZE, "ANALYZE"),
            (99, "this action"),
        ] {
            assert_eq!(
                p.decide(code, Some("x"), None, MAIN),
                Err(Denial::Action(name))
            );
        }
    }
}
