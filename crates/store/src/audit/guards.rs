//! The append-only guards as the migrations define them (triggers on SQLite; trigger functions
//! on PostgreSQL), read from the migration files themselves so the check cannot drift from
//! what was installed. Verification reports a guard that is missing, disabled or rewritten:
//! the owner of the tables can turn them off (`DROP TRIGGER`, `ALTER TABLE ... DISABLE
//! TRIGGER`), and whatever was done meanwhile is then only caught by the chain, the
//! checkpoints and the witness.

const SQLITE_MIGRATION: &str = include_str!("../../migrations/sqlite/0003_audit.sql");
const POSTGRES_MIGRATION: &str = include_str!("../../migrations/postgres/0003_audit.sql");

/// The PostgreSQL guard triggers: (trigger, table, function).
pub(crate) const POSTGRES_TRIGGERS: [(&str, &str, &str); 2] = [
    ("audit_log_guard", "audit_log", "audit_log_guard"),
    (
        "audit_checkpoints_guard",
        "audit_checkpoints",
        "audit_checkpoints_guard",
    ),
];

/// Whitespace runs collapsed to one space: SQLite normalizes some whitespace in the text it
/// keeps, and indentation is not meaning.
pub(crate) fn normalized(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Each SQLite guard trigger: its name and its `CREATE TRIGGER ... END` statement (without
/// the final `;`), as the migration has it.
pub(crate) fn sqlite_triggers() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = SQLITE_MIGRATION;
    while let Some(start) = rest.find("CREATE TRIGGER ") {
        let tail = &rest[start..];
        let Some(end) = tail.find("\nEND;") else {
            break;
        };
        let statement = &tail[..end + "\nEND".len()];
        let name = statement
            .split_whitespace()
            .nth(2)
            .unwrap_or_default()
            .to_owned();
        out.push((name, statement.to_owned()));
        rest = &tail[end + "\nEND;".len()..];
    }
    out
}

/// The body (between `$$`) of the PostgreSQL guard function `name`, as the migration has it.
pub(crate) fn postgres_function_body(name: &str) -> Option<&'static str> {
    let start = POSTGRES_MIGRATION.find(&format!("CREATE FUNCTION {name}()"))?;
    let tail = &POSTGRES_MIGRATION[start..];
    let open = tail.find("$$")? + 2;
    let close = tail[open..].find("$$")?;
    Some(&tail[open..open + close])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parse finds every guard the migrations install, so a guard added later is checked
    /// too (or this test names it).
    #[test]
    fn the_migrations_guards_are_found() {
        let names: Vec<String> = sqlite_triggers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "audit_log_no_delete",
                "audit_log_only_redact",
                "audit_checkpoints_no_update",
                "audit_checkpoints_no_delete"
            ]
        );
        for (name, sql) in sqlite_triggers() {
            assert!(
                sql.starts_with("CREATE TRIGGER ") && sql.ends_with("END"),
                "{name}"
            );
        }
        for (_, _, function) in POSTGRES_TRIGGERS {
            let body = postgres_function_body(function).unwrap();
            assert!(body.contains("RAISE EXCEPTION"), "{function}: {body}");
        }
    }
}
