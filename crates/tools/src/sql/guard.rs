//! The first filter of `sql_query`, before the database's own guard (the SQLite authorizer, the
//! PostgreSQL role): a small SQL lexer (comments, strings, quoted and bracketed identifiers,
//! dollar quotes) so that keywords are judged as tokens, never as substrings. Where SQLite and
//! PostgreSQL lex differently, it reads the text both ways or refuses it, so that nothing it
//! takes for a comment or a string is SQL to either database.

use crate::error::ToolError;

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    /// An unquoted word, lower-cased (keyword or identifier).
    Word(String),
    /// A quoted identifier (`"x"`, `` `x` ``, SQLite's `[x]`), lower-cased.
    Quoted(String),
    /// A single-quoted string, lower-cased: SQLite also takes one as a table name.
    Str(String),
    Literal,
    Punct(char),
}

struct Token {
    tok: Tok,
    start: usize,
}

/// Statement-level words that write, change state or leave the database: refused anywhere.
const FORBIDDEN_WORDS: &[&str] = &[
    "insert",
    "update",
    "delete",
    "merge",
    "upsert",
    "drop",
    "alter",
    "create",
    "attach",
    "detach",
    "pragma",
    "copy",
    "truncate",
    "grant",
    "revoke",
    "vacuum",
    "reindex",
    "into",
    "call",
    "execute",
    "exec",
    "lock",
    "begin",
    "commit",
    "rollback",
    "savepoint",
    "release",
    "listen",
    "notify",
    "set",
    "reset",
    "load",
    "import",
    "comment",
    "refresh",
    "cluster",
    "do",
    "prepare",
    "deallocate",
    "discard",
    "security",
    "owner",
];

/// Functions that read files, run SQL given as a string (bypassing the blocked tables),
/// or act on the server.
const FORBIDDEN_FUNCTIONS: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "lo_get",
    "lo_put",
    "lo_unlink",
    "lo_create",
    "lo_open",
    "dblink",
    "dblink_exec",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "set_config",
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "table_to_xml",
    "table_to_xml_and_xmlschema",
    "table_to_xmlschema",
    "schema_to_xml",
    "database_to_xml",
    "cursor_to_xml",
    "pg_advisory_lock",
    "txid_current",
    "nextval",
    "setval",
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    // PostgreSQL builtins that run SQL given as a string, or dump every readable table.
    "ts_stat",
    "ts_rewrite",
    "schema_to_xml_and_xmlschema",
    "schema_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "database_to_xmlschema",
    "cursor_to_xmlschema",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_send_query",
    "dblink_get_result",
    "dblink_open",
    "dblink_fetch",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_file_write",
    "pg_logdir_ls",
    // SQLite internals.
    "sqlite_compileoption_get",
    "sqlite_offset",
];

fn refuse(msg: impl Into<String>) -> ToolError {
    ToolError::refused(msg)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Lexes `sql`; unterminated strings or comments, nested block comments (SQLite and
/// PostgreSQL disagree on them) and backslash-escape strings are refused.
fn lex(sql: &str) -> Result<Vec<Token>, ToolError> {
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|c| c.1);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let start = chars[i].0;
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && at(i + 1) == Some('-') {
            // PostgreSQL ends a `--` comment at `\r` as well as `\n`, SQLite only at `\n`:
            // stopping at either reads on where one of them does.
            while at(i).is_some_and(|c| c != '\n' && c != '\r') {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            loop {
                match (at(i), at(i + 1)) {
                    (Some('*'), Some('/')) => break i += 2,
                    (Some('/'), Some('*')) => return Err(refuse("nested block comment")),
                    (Some(_), _) => i += 1,
                    (None, _) => return Err(refuse("unterminated block comment")),
                }
            }
        } else if c == '\'' || c == '"' || c == '`' {
            let mut text = String::new();
            i += 1;
            loop {
                match (at(i), at(i + 1)) {
                    (Some(q), Some(q2)) if q == c && q2 == c => {
                        text.push(q);
                        i += 2;
                    }
                    (Some(q), _) if q == c => break i += 1,
                    (Some(other), _) => {
                        text.push(other);
                        i += 1;
                    }
                    (None, _) => return Err(refuse("unterminated quoted text")),
                }
            }
            let tok = if c == '\'' {
                Tok::Str(text.to_lowercase())
            } else {
                Tok::Quoted(text.to_lowercase())
            };
            out.push(Token { tok, start });
        } else if c == '[' {
            // SQLite reads `[...]` as an identifier, PostgreSQL as a subscript holding SQL. Take
            // the text both ways: as an identifier now, then lexed on as ordinary tokens. The
            // two readings agree only if it holds no quote or comment marker, so refuse those.
            let Some(len) = chars[i + 1..].iter().position(|c| c.1 == ']') else {
                return Err(refuse("unterminated `[`"));
            };
            let inner: String = chars[i + 1..i + 1 + len].iter().map(|c| c.1).collect();
            if inner.contains(['\'', '"', '`', '$', '[', ';'])
                || inner.contains("--")
                || inner.contains("/*")
                || inner.contains("*/")
            {
                return Err(refuse(
                    "quotes, comments, `$`, `;` and `[` are not allowed inside `[...]`",
                ));
            }
            out.push(Token {
                tok: Tok::Quoted(inner.to_lowercase()),
                start,
            });
            out.push(Token {
                tok: Tok::Punct('['),
                start,
            });
            i += 1;
        } else if c == '$' && at(i + 1).is_some_and(|d| d.is_ascii_digit()) {
            i += 1;
            while at(i).is_some_and(|d| d.is_ascii_digit()) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Literal,
                start,
            });
        } else if c == '$' {
            // PostgreSQL dollar quoting: $tag$ ... $tag$.
            let mut j = i + 1;
            while at(j).is_some_and(|d| d.is_alphanumeric() || d == '_') {
                j += 1;
            }
            if at(j) != Some('$') {
                return Err(refuse("stray `$`"));
            }
            let tag: String = chars[i..=j].iter().map(|c| c.1).collect();
            let body_start = chars.get(j + 1).map_or(sql.len(), |c| c.0);
            let Some(end) = sql[body_start..].find(&tag) else {
                return Err(refuse("unterminated dollar-quoted text"));
            };
            let end_byte = body_start + end + tag.len();
            i = chars
                .iter()
                .position(|c| c.0 >= end_byte)
                .unwrap_or(chars.len());
            out.push(Token {
                tok: Tok::Literal,
                start,
            });
        } else if c.is_ascii_digit() || (c == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            while at(i).is_some_and(|d| d.is_ascii_digit() || d == '.') {
                i += 1;
            }
            if at(i).is_some_and(|e| e == 'e' || e == 'E')
                && at(i + 1).is_some_and(|d| d.is_ascii_digit() || d == '+' || d == '-')
            {
                i += 2;
                while at(i).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                }
            }
            out.push(Token {
                tok: Tok::Literal,
                start,
            });
        } else if is_word_char(c) {
            let mut word = String::new();
            while let Some(w) = at(i).filter(|w| is_word_char(*w)) {
                word.push(w);
                i += 1;
            }
            // E'...' strings end on `\'` in PostgreSQL but not in our lexer: refuse them.
            if matches!(word.as_str(), "e" | "E") && at(i) == Some('\'') {
                return Err(refuse(
                    "backslash-escape strings (E'...') are not supported",
                ));
            }
            // U&'...' and U&"..." spell characters as escapes (`U&"\0073ecrets"`).
            if matches!(word.as_str(), "u" | "U")
                && at(i) == Some('&')
                && matches!(at(i + 1), Some('\'' | '"'))
            {
                return Err(refuse(
                    "Unicode-escape strings and identifiers (U&'...', U&\"...\") are not supported",
                ));
            }
            out.push(Token {
                tok: Tok::Word(word.to_lowercase()),
                start,
            });
        } else {
            out.push(Token {
                tok: Tok::Punct(c),
                start,
            });
            i += 1;
        }
    }
    Ok(out)
}

/// Checks that `sql` is exactly one read-only `SELECT` (or `WITH ... SELECT`) touching no
/// blocked table; returns the statement without its trailing `;`.
///
/// # Errors
/// `Refused` naming the rule that failed.
pub fn check_read_only<'a>(sql: &'a str, blocked_tables: &[String]) -> Result<&'a str, ToolError> {
    let tokens = lex(sql)?;
    let mut end = sql.len();
    if let Some(semi) = tokens.iter().position(|t| t.tok == Tok::Punct(';')) {
        if semi + 1 != tokens.len() {
            return Err(refuse("only one statement is allowed"));
        }
        end = tokens[semi].start;
    }
    let tokens = &tokens[..tokens.len().min(
        tokens
            .iter()
            .position(|t| t.tok == Tok::Punct(';'))
            .unwrap_or(tokens.len()),
    )];
    match tokens.first().map(|t| &t.tok) {
        Some(Tok::Word(w)) if w == "select" || w == "with" => {}
        Some(_) => {
            return Err(refuse(
                "only SELECT (or WITH ... SELECT) statements are allowed",
            ));
        }
        None => return Err(ToolError::invalid("/query", "empty query")),
    }
    let mut depth: i64 = 0;
    for t in tokens {
        match &t.tok {
            Tok::Word(w) if FORBIDDEN_WORDS.contains(&w.as_str()) => {
                return Err(refuse(format!(
                    "`{}` is not allowed: queries are read-only",
                    w.to_uppercase()
                )));
            }
            Tok::Word(w) | Tok::Quoted(w) if FORBIDDEN_FUNCTIONS.contains(&w.as_str()) => {
                return Err(refuse(format!("function `{w}` is not allowed")));
            }
            // A string too: SQLite takes `FROM 'secrets'` as a table name.
            Tok::Word(w) | Tok::Quoted(w) | Tok::Str(w) if blocked_tables.contains(w) => {
                return Err(refuse(format!("table `{w}` is blocked")));
            }
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => {
                depth -= 1;
                if depth < 0 {
                    return Err(refuse("unbalanced parentheses"));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(refuse("unbalanced parentheses"));
    }
    Ok(sql[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> bool {
        check_read_only(sql, &["secrets".to_owned()]).is_ok()
    }

    #[test]
    fn plain_selects_pass_and_keywords_inside_names_do_not_trip() {
        for sql in [
            "SELECT 1",
            "select * from t where a = 'DELETE FROM x; DROP'",
            "SELECT updated_at, created_by, deleted FROM t;",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
            "SELECT \"update\" FROM t -- DROP TABLE t",
            "SELECT $$ ; delete $$",
            "SELECT 1e5, .5, replace('a','b','c')",
        ] {
            assert!(ok(sql), "{sql}");
        }
        assert_eq!(check_read_only("SELECT 1 ; ", &[]).ok(), Some("SELECT 1"));
    }

    #[test]
    fn writes_and_tricks_are_refused() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "SELECT 1; DROP TABLE x",
            "SELECT 1;; ",
            "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
            "SELECT 1 /* x */; DELETE FROM t",
            "SELECT 1 /* /* */ DELETE FROM t */",
            "SELECT * INTO newtable FROM t",
            "SELECT * FROM t FOR UPDATE",
            "SELECT E'\\'' ; DELETE FROM t --'",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT * FROM secrets",
            "SELECT * FROM public.\"SECRETS\"",
            "SELECT 'unterminated",
            "SELECT (1",
            "SELECT 1)",
            "PRAGMA table_info(t)",
            "ATTACH DATABASE 'x' AS y",
            "EXPLAIN ANALYZE SELECT 1",
            "",
        ] {
            assert!(!ok(sql), "{sql}");
        }
    }

    /// The bypasses of the 2026-12 security review (H1, H2), each of which this check let
    /// through: the lexer disagreed with PostgreSQL or SQLite about where a comment, a string
    /// or an identifier ends.
    #[test]
    fn the_review_bypasses_are_refused() {
        let b = &["secrets".to_owned(), "credentials".to_owned()];
        for sql in [
            "SELECT 1 --\r, * FROM secrets",
            "SELECT 1 --\r, pg_read_file('/etc/passwd')",
            r#"SELECT * FROM U&"\0073ecrets""#,
            r"SELECT U&'\0073ecrets'",
            r#"SELECT "pg_read_file"('/etc/passwd')"#,
            r#"SELECT "query_to_xml"('select * from secrets',true,false,'')"#,
            r#"SELECT "dblink_exec"('dbname=app','DELETE FROM users')"#,
            "SELECT * FROM ts_stat('SELECT to_tsvector(password) FROM credentials')",
            "SELECT schema_to_xml_and_xmlschema('public',true,false,'')",
            "SELECT database_to_xmlschema(true,false,'')",
            "SELECT 1 AS [--], * FROM secrets",
            "SELECT [--].* FROM secrets AS [--]",
            "SELECT [--].* FROM sqlite_master AS [--]",
            "SELECT * FROM [secrets]",
            "SELECT * FROM 'secrets'",
            "SELECT a[1 /* ] FROM secrets */] FROM t",
            "SELECT a['x'] FROM t",
            "SELECT 1 AS [unterminated",
        ] {
            let blocked = [b.as_slice(), &["sqlite_master".to_owned()]].concat();
            assert!(check_read_only(sql, &blocked).is_err(), "{sql:?}");
        }
    }

    #[test]
    fn brackets_lex_both_ways_and_plain_ones_pass() {
        for sql in [
            "SELECT [name] FROM [items]",
            "SELECT arr[1], arr[i + 1] FROM t",
            "SELECT u & 1 FROM t",
            "SELECT 'not a table' AS label",
        ] {
            assert!(ok(sql), "{sql}");
        }
        assert!(!ok("SELECT arr[(SELECT x FROM secrets)] FROM t"));
    }
}
