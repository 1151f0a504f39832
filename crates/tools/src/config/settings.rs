//! Per-kind settings of the built-in tools (`tools.<name>.settings`), raw then validated.

use std::path::PathBuf;
use std::time::Duration;

use amas_config::{Checker, KeyPath, codes, parse_duration};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use yaml_serde::Value;

use crate::spec::ToolKind;

/// Validated settings, by implementation.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolSettings {
    HttpFetch(HttpFetchSettings),
    /// `file_read`, `file_write`, `code_analyzer`, `vulnerability_scanner`.
    Files(FileSettings),
    SqlQuery(SqlSettings),
    /// Tools with nothing to configure.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum HttpMethod {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "POST")]
    Post,
}

#[derive(Clone, Debug, Serialize)]
pub struct HttpFetchSettings {
    /// Lower-case domains without trailing dot; empty means every public host.
    pub allow_domains: Vec<String>,
    pub deny_domains: Vec<String>,
    /// Ports a URL (or a redirect) may name; never empty.
    pub allow_ports: Vec<u16>,
    pub max_bytes: u64,
    pub methods: Vec<HttpMethod>,
    pub max_redirects: u8,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileSettings {
    /// Lower-case extensions without the dot; `""` allows files without an extension.
    pub allowed_extensions: Vec<String>,
    /// Lower-case glob patterns (`*`, `?`) matched against every path component.
    pub blocked_patterns: Vec<String>,
    pub max_bytes: u64,
    /// How many files a workspace-wide scan visits at most.
    pub max_files: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Database {
    Sqlite(PathBuf),
    /// The URL (with its credentials) read from the environment variable named in config;
    /// `config dump` shows that it is set, never what it is.
    Postgres(#[serde(serialize_with = "amas_config::redacted::always")] SecretString),
}

#[derive(Debug, Serialize)]
pub struct SqlSettings {
    /// `None`: the tool refuses every call until a database is configured.
    pub database: Option<Database>,
    /// Lower-case; empty: every table the database lets the tool read, less the blocked ones.
    pub allowed_tables: Vec<String>,
    /// Lower-case; never readable, whatever `allowed_tables` says.
    pub blocked_tables: Vec<String>,
    /// Lower-case `table.column`: never readable.
    pub blocked_columns: Vec<String>,
    pub row_limit: usize,
    #[serde(rename = "statement_timeout_ms", serialize_with = "millis")]
    pub statement_timeout: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    allow_domains: Vec<String>,
    #[serde(default)]
    deny_domains: Vec<String>,
    #[serde(default = "default_ports")]
    allow_ports: Vec<u16>,
    max_bytes: u64,
    methods: Vec<HttpMethod>,
    #[serde(default = "default_redirects")]
    max_redirects: u8,
}

fn default_redirects() -> u8 {
    5
}

/// The web's ports: a fetch of `http://<public-ip>:6379/` (Redis, SMTP, a Kubernetes API...)
/// is refused unless an operator lists the port.
fn default_ports() -> Vec<u16> {
    vec![80, 443]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    allowed_extensions: Vec<String>,
    #[serde(default)]
    blocked_patterns: Vec<String>,
    max_bytes: u64,
    #[serde(default = "default_max_files")]
    max_files: usize,
}

fn default_max_files() -> usize {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    sqlite_path: Option<PathBuf>,
    postgres_url_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    #[serde(default)]
    database: Option<RawDatabase>,
    #[serde(default)]
    allowed_tables: Vec<String>,
    #[serde(default)]
    blocked_tables: Vec<String>,
    #[serde(default)]
    blocked_columns: Vec<String>,
    row_limit: usize,
    #[serde(default = "default_statement_timeout")]
    statement_timeout: String,
}

fn default_statement_timeout() -> String {
    "5s".to_owned()
}

/// Validates `settings` for `kind`; `path` is `tools.<name>`.
pub(crate) fn validate(
    kind: ToolKind,
    settings: Option<&Value>,
    path: &KeyPath,
    cx: &mut Checker<'_>,
) -> Option<ToolSettings> {
    let at = path.child("settings");
    let settings = settings.filter(|v| !v.is_null());
    let needs = |cx: &mut Checker<'_>| cx.invalid(&at, format!("{kind:?} tools need settings"));
    match kind {
        ToolKind::HttpFetch => {
            let Some(v) = settings else {
                needs(cx);
                return None;
            };
            http(cx.deserialize(v, &at)?, &at, cx).map(ToolSettings::HttpFetch)
        }
        ToolKind::FileRead
        | ToolKind::FileWrite
        | ToolKind::CodeAnalyzer
        | ToolKind::VulnerabilityScanner => {
            let Some(v) = settings else {
                needs(cx);
                return None;
            };
            files(cx.deserialize(v, &at)?, &at, cx).map(ToolSettings::Files)
        }
        ToolKind::SqlQuery => {
            let Some(v) = settings else {
                needs(cx);
                return None;
            };
            sql(cx.deserialize(v, &at)?, &at, cx).map(ToolSettings::SqlQuery)
        }
        ToolKind::Calculator | ToolKind::SystemExecutor | ToolKind::DangerousTool => {
            if settings.is_some() {
                let msg = format!("{kind:?} tools take no settings");
                cx.error(codes::UNKNOWN_KEY, &at, msg);
                return None;
            }
            Some(ToolSettings::None)
        }
    }
}

fn domains(list: Vec<String>, at: &KeyPath, cx: &mut Checker<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, d) in list.into_iter().enumerate() {
        let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
        let ok = !d.is_empty()
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':');
        if ok {
            out.push(d);
        } else {
            let msg = format!("`{d}` is not a domain name (no scheme, path or wildcard)");
            cx.invalid(&at.child(i.to_string()), msg);
        }
    }
    out
}

fn http(raw: RawHttp, at: &KeyPath, cx: &mut Checker<'_>) -> Option<HttpFetchSettings> {
    let before = cx.error_count();
    let allow_domains = domains(raw.allow_domains, &at.child("allow_domains"), cx);
    let deny_domains = domains(raw.deny_domains, &at.child("deny_domains"), cx);
    if raw.max_bytes == 0 {
        cx.invalid(&at.child("max_bytes"), "must be > 0");
    }
    if raw.methods.is_empty() {
        cx.invalid(&at.child("methods"), "at least one method (GET, POST)");
    }
    if raw.max_redirects > 10 {
        cx.invalid(&at.child("max_redirects"), "at most 10 redirects");
    }
    if raw.allow_ports.is_empty() || raw.allow_ports.contains(&0) {
        let msg = "list the ports URLs may name, e.g. [80, 443] (not empty, no 0)";
        cx.invalid(&at.child("allow_ports"), msg);
    }
    (cx.error_count() == before).then_some(HttpFetchSettings {
        allow_domains,
        deny_domains,
        allow_ports: raw.allow_ports,
        max_bytes: raw.max_bytes,
        methods: raw.methods,
        max_redirects: raw.max_redirects,
    })
}

fn files(raw: RawFiles, at: &KeyPath, cx: &mut Checker<'_>) -> Option<FileSettings> {
    let before = cx.error_count();
    let allowed_extensions: Vec<String> = raw
        .allowed_extensions
        .iter()
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .collect();
    if allowed_extensions.is_empty() {
        let msg = "list the extensions the tool may touch (`\"\"` for none)";
        cx.invalid(&at.child("allowed_extensions"), msg);
    }
    for (i, p) in raw.blocked_patterns.iter().enumerate() {
        if p.trim().is_empty() || p.contains('/') {
            let msg = "a pattern matches one path component: no `/`, not empty";
            cx.invalid(&at.child("blocked_patterns").child(i.to_string()), msg);
        }
    }
    if raw.max_bytes == 0 {
        cx.invalid(&at.child("max_bytes"), "must be > 0");
    }
    if raw.max_files == 0 {
        cx.invalid(&at.child("max_files"), "must be > 0");
    }
    (cx.error_count() == before).then(|| FileSettings {
        allowed_extensions,
        blocked_patterns: raw
            .blocked_patterns
            .iter()
            .map(|p| p.trim().to_ascii_lowercase())
            .collect(),
        max_bytes: raw.max_bytes,
        max_files: raw.max_files,
    })
}

fn sql(raw: RawSql, at: &KeyPath, cx: &mut Checker<'_>) -> Option<SqlSettings> {
    let before = cx.error_count();
    let db_at = at.child("database");
    let database = match raw.database {
        None => None,
        Some(RawDatabase {
            sqlite_path: Some(p),
            postgres_url_env: None,
        }) => Some(Database::Sqlite(p)),
        Some(RawDatabase {
            sqlite_path: None,
            postgres_url_env: Some(var),
        }) => match cx.env_var(&var) {
            Some(url) => Some(Database::Postgres(SecretString::from(url.to_owned()))),
            None => {
                // Name the variable, never a value: the URL carries credentials.
                let msg = format!("environment variable `{var}` is not set");
                cx.invalid(&db_at, msg);
                None
            }
        },
        Some(_) => {
            let msg = "set exactly one of `sqlite_path` and `postgres_url_env`";
            cx.invalid(&db_at, msg);
            None
        }
    };
    if raw.row_limit == 0 || raw.row_limit > 10_000 {
        cx.invalid(
            &at.child("row_limit"),
            "row_limit must be between 1 and 10000",
        );
    }
    let timeout_at = at.child("statement_timeout");
    let statement_timeout = match parse_duration(&raw.statement_timeout) {
        Ok(t) if !t.is_zero() => Some(t),
        Ok(_) => {
            cx.invalid(&timeout_at, "statement_timeout must be more than 0");
            None
        }
        Err(e) => {
            cx.invalid(&timeout_at, e);
            None
        }
    };
    for (key, names) in [
        ("allowed_tables", &raw.allowed_tables),
        ("blocked_tables", &raw.blocked_tables),
    ] {
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                cx.invalid(
                    &at.child(key).child(i.to_string()),
                    "a table name, not empty",
                );
            }
        }
    }
    for (i, pair) in raw.blocked_columns.iter().enumerate() {
        let parts = pair.trim().split_once('.');
        if !parts.is_some_and(|(t, c)| !t.is_empty() && !c.is_empty() && !c.contains('.')) {
            let msg = "`table.column`: a table name, a dot, a column name";
            cx.invalid(&at.child("blocked_columns").child(i.to_string()), msg);
        }
    }
    let lower = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    };
    (cx.error_count() == before).then(|| SqlSettings {
        database,
        allowed_tables: lower(&raw.allowed_tables),
        blocked_tables: lower(&raw.blocked_tables),
        blocked_columns: lower(&raw.blocked_columns),
        row_limit: raw.row_limit,
        statement_timeout: statement_timeout.unwrap_or(Duration::from_secs(5)),
    })
}
