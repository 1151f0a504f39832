//! The PostgreSQL reader role: the statements an operator runs to create it, and the check,
//! before every query, that the role the tool connects as can do no more than read the
//! permitted tables. The database enforces the role's privileges; this check refuses to run
//! anything on a role that would make those privileges meaningless (a superuser, a member of
//! `pg_read_all_data`, a role granted a blocked table).

use sqlx::PgConnection;

use crate::config::SqlSettings;
use crate::error::ToolError;

/// Predefined roles that read or act beyond the tables granted to a role.
const BROAD_ROLES: &[&str] = &[
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
    "pg_monitor",
    "pg_read_all_settings",
    "pg_read_all_stats",
    "pg_stat_scan_tables",
    "pg_checkpoint",
    "pg_create_subscription",
    "pg_database_owner",
];

/// Functions that read server files or reach other databases; `dblink*` is matched by prefix.
const SERVER_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_logdir_ls",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
];

/// Every way the session's roles exceed a reader's, one line each, the gravest first (at most
/// 20). `r`: the session user and every role it may switch to (`set_config('role', ...)` needs
/// only membership).
const CHECK: &str = r"
WITH r AS (
    SELECT oid, rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
    FROM pg_catalog.pg_roles
    WHERE pg_catalog.pg_has_role(session_user, oid, 'MEMBER')
), rel AS (
    SELECT c.oid, n.nspname, c.relname,
           n.nspname IN ('pg_catalog', 'information_schema') OR n.nspname LIKE 'pg\_%' AS system
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
)
SELECT problem FROM (
    SELECT 1 AS rank, format('role %I is a superuser', rolname) AS problem FROM r WHERE rolsuper
    UNION ALL SELECT 2, format('role %I has CREATEROLE', rolname) FROM r WHERE rolcreaterole
    UNION ALL SELECT 2, format('role %I has CREATEDB', rolname) FROM r WHERE rolcreatedb
    UNION ALL SELECT 2, format('role %I has REPLICATION', rolname) FROM r WHERE rolreplication
    UNION ALL SELECT 2, format('role %I has BYPASSRLS', rolname) FROM r WHERE rolbypassrls
    UNION ALL SELECT 3, format('the session is a member of %I', rolname)
        FROM r WHERE rolname = ANY($1::text[])
    UNION ALL SELECT 4, format('role %I can read blocked table %I.%I', r.rolname, rel.nspname, rel.relname)
        FROM rel CROSS JOIN r
        WHERE lower(rel.relname) = ANY($2::text[])
          AND (pg_catalog.has_table_privilege(r.oid, rel.oid, 'SELECT')
               OR pg_catalog.has_any_column_privilege(r.oid, rel.oid, 'SELECT'))
    UNION ALL SELECT 5, format('role %I can read %I.%I, which is not in allowed_tables',
                            r.rolname, rel.nspname, rel.relname)
        FROM rel CROSS JOIN r
        WHERE cardinality($3::text[]) > 0 AND NOT rel.system
          AND NOT (lower(rel.relname) = ANY($3::text[])
                   OR lower(rel.nspname || '.' || rel.relname) = ANY($3::text[]))
          AND (pg_catalog.has_table_privilege(r.oid, rel.oid, 'SELECT')
               OR pg_catalog.has_any_column_privilege(r.oid, rel.oid, 'SELECT'))
    UNION ALL SELECT 6, format('role %I can read blocked column %I.%I.%I',
                            r.rolname, rel.nspname, rel.relname, a.attname)
        FROM rel JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid CROSS JOIN r
        WHERE a.attnum > 0 AND NOT a.attisdropped
          AND lower(rel.relname || '.' || a.attname) = ANY($4::text[])
          AND pg_catalog.has_column_privilege(r.oid, rel.oid, a.attnum, 'SELECT')
    UNION ALL SELECT 7, format('role %I can execute %s', r.rolname,
                            string_agg(DISTINCT format('%I.%I', n.nspname, p.proname), ', '
                                       ORDER BY format('%I.%I', n.nspname, p.proname)))
        FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        CROSS JOIN r
        WHERE (p.proname = ANY($5::text[]) OR p.proname LIKE 'dblink%'
               OR (p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')))
          AND pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE')
        GROUP BY r.rolname
) AS problems
GROUP BY problem
ORDER BY min(rank), problem
LIMIT 20";

/// Refuses (`AMAS-TOOL-0012`) unless the session's roles are a reader's: no superuser or
/// other role attribute, no broad predefined role, no blocked table or column readable, no
/// table outside `allowed_tables` readable (when set), no file, connection or
/// `SECURITY DEFINER` function executable.
pub(crate) async fn verify(conn: &mut PgConnection, s: &SqlSettings) -> Result<(), ToolError> {
    let problems: Vec<String> = sqlx::query_scalar(CHECK)
        .bind(BROAD_ROLES)
        .bind(&s.blocked_tables)
        .bind(&s.allowed_tables)
        .bind(&s.blocked_columns)
        .bind(SERVER_FUNCTIONS)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| super::db_fail(&e))?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ToolError::SqlRole {
            reason: problems.join("; "),
        })
    }
}

/// `"name"`, with any `"` doubled: an identifier PostgreSQL reads exactly as given.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statements that create `role`, a login role that can read `tables` (each `table` in
/// `public`, or `schema.table`) and nothing else, with read-only sessions by default. Run them
/// as a role that may create roles and grant on those tables, then give the role a password
/// (`ALTER ROLE ... PASSWORD`) or another way to log in, and put its URL in the variable named
/// by `postgres_url_env`.
#[must_use]
pub fn reader_role_statements(role: &str, tables: &[&str]) -> Vec<String> {
    let role_id = ident(role);
    let mut out = vec![
        format!(
            "CREATE ROLE {role_id} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
             NOBYPASSRLS"
        ),
        format!("ALTER ROLE {role_id} SET default_transaction_read_only = on"),
    ];
    let mut schemas: Vec<&str> = Vec::new();
    for table in tables {
        let (schema, name) = table.split_once('.').unwrap_or(("public", table));
        if !schemas.contains(&schema) {
            schemas.push(schema);
            out.push(format!(
                "GRANT USAGE ON SCHEMA {} TO {role_id}",
                ident(schema)
            ));
        }
        out.push(format!(
            "GRANT SELECT ON TABLE {}.{} TO {role_id}",
            ident(schema),
            ident(name)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setup_statements_quote_every_name() {
        assert_eq!(
            reader_role_statements("amas \"sql\"", &["items", "sales.Orders"]),
            [
                "CREATE ROLE \"amas \"\"sql\"\"\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE \
                 NOREPLICATION NOBYPASSRLS",
                "ALTER ROLE \"amas \"\"sql\"\"\" SET default_transaction_read_only = on",
                "GRANT USAGE ON SCHEMA \"public\" TO \"amas \"\"sql\"\"\"",
                "GRANT SELECT ON TABLE \"public\".\"items\" TO \"amas \"\"sql\"\"\"",
                "GRANT USAGE ON SCHEMA \"sales\" TO \"amas \"\"sql\"\"\"",
                "GRANT SELECT ON TABLE \"sales\".\"Orders\" TO \"amas \"\"sql\"\"\"",
            ]
        );
    }
}
