//! Output contracts: every built-in tool's real result (the real tool, run in a temporary
//! workspace, on a real SQLite file, against a loopback HTTP server) validates against the
//! output schema its spec declares; a result breaking it is reported with the JSON pointer of
//! each violation and never with the value.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns"
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use amas_tools::config::{Database, ToolSettings};
use amas_tools::http::{AddressPolicy, AddressVerdict, Network, PublicOnly, ReqwestConnector};
use amas_tools::{
    HttpFetch, SqlQuery, ToolConfig, ToolError, ToolRegistry, builtin_output_schema, codes,
};
use common::{MapResolver, canary, ctx, default_config, entry, http_settings_with_ports};
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

/// Asserts `content` is a valid result of `tool` and returns it, so each test can also check
/// that the call did what it was asked (a schema passing on an empty result proves little).
fn assert_valid(reg: &ToolRegistry, tool: &str, content: Value) -> Value {
    if let Err(e) = reg.check_output(tool, &content) {
        panic!("{tool}: real output breaks the declared schema: {e}\n{content:#}");
    }
    content
}

async fn call(reg: &ToolRegistry, dir: &std::path::Path, tool: &str, params: Value) -> Value {
    reg.call(tool, &ctx(dir), params)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
        .content
}

#[tokio::test]
async fn workspace_tools_real_results_match_their_declared_schemas() {
    let reg = ToolRegistry::from_config(default_config());
    let dir = tempfile::tempdir().expect("dir");
    let ws = dir.path();
    let code = "pub fn a() {\n    // TODO: tidy\n    let k = \"AKIAABCDEFGHIJKLMNOP\";\n}\n";

    let written = call(
        &reg,
        ws,
        "file_write",
        json!({"path": "src/lib.rs", "content": code}),
    )
    .await;
    let written = assert_valid(&reg, "file_write", written);
    assert_eq!(written, json!({"path": "src/lib.rs", "bytes": code.len()}));

    let read = call(&reg, ws, "file_read", json!({"path": "src/lib.rs"})).await;
    assert_eq!(assert_valid(&reg, "file_read", read)["content"], code);

    let analysed = call(&reg, ws, "code_analyzer", json!({"path": "src/lib.rs"})).await;
    let analysed = assert_valid(&reg, "code_analyzer", analysed);
    assert_eq!(
        (
            analysed["functions"].as_u64(),
            analysed["todo_markers"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let inline = call(
        &reg,
        ws,
        "code_analyzer",
        json!({"code": "def f():\n    return 1\n", "language": "py"}),
    )
    .await;
    assert_eq!(
        assert_valid(&reg, "code_analyzer", inline)["source"],
        "<inline>"
    );

    // One line per scanner rule, so every `rule` and `severity` value the schema enumerates
    // is produced for real at least once.
    let risky = "api_key = \"sk-abcdefghijklmnop\"\nk = \"AKIAABCDEFGHIJKLMNOP\"\n-----BEGIN RSA PRIVATE KEY-----\nx = eval(input)\nq = \"SELECT * FROM u WHERE id=\" + uid\nq2 = f\"DELETE FROM t WHERE id={i}\"\n";
    call(
        &reg,
        ws,
        "file_write",
        json!({"path": "risky.py", "content": risky}),
    )
    .await;
    let scan = call(&reg, ws, "vulnerability_scanner", json!({})).await;
    let scan = assert_valid(&reg, "vulnerability_scanner", scan);
    let mut rules: Vec<&str> = scan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    rules.sort_unstable();
    rules.dedup();
    assert_eq!(
        rules,
        [
            "aws_access_key",
            "eval_call",
            "hardcoded_secret",
            "private_key",
            "sql_concatenation",
            "sql_format_string"
        ]
    );

    let calc = call(&reg, ws, "calculator", json!({"expression": "2^10 / 4"})).await;
    assert_eq!(assert_valid(&reg, "calculator", calc)["result"], 256.0);
}

#[tokio::test]
async fn sql_query_real_rows_match_the_declared_schema() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("data.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = SqliteConnection::connect(&url).await.expect("sqlite");
    for q in [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, raw BLOB)",
        "INSERT INTO items VALUES (1, 'bolt', 0.25, x'0102'), (2, NULL, 3, NULL)",
    ] {
        sqlx::query(q).execute(&mut conn).await.expect(q);
    }
    conn.close().await.expect("close");
    let ToolConfig { spec, settings } = entry("sql_query");
    let ToolSettings::SqlQuery(mut s) = settings else {
        panic!("sql settings")
    };
    s.database = Some(Database::Sqlite(path));
    let mut reg = ToolRegistry::default();
    reg.insert(Arc::new(SqlQuery::new(spec, s)));
    let rows = call(
        &reg,
        dir.path(),
        "sql_query",
        json!({"query": "SELECT * FROM items ORDER BY id"}),
    )
    .await;
    let rows = assert_valid(&reg, "sql_query", rows);
    assert_eq!(rows["row_count"], 2);
    assert_eq!(rows["rows"][0]["raw"], json!({"blob_bytes": 2}));
}

/// Only the canary's socket counts as external; everything else keeps the real policy.
struct AllowSocket(SocketAddr);

impl AddressPolicy for AllowSocket {
    fn check(&self, addr: SocketAddr) -> AddressVerdict {
        if addr == self.0 {
            AddressVerdict::Allowed
        } else {
            PublicOnly.check(addr)
        }
    }
}

#[tokio::test]
async fn http_fetch_real_response_matches_the_declared_schema() {
    let server = canary(None, "<p>hello</p>".to_owned()).await;
    let (spec, settings) = http_settings_with_ports(&[server.addr.port()]);
    let ip = server.addr.ip().to_string();
    let tool = HttpFetch::new(spec, settings).with_network(Network {
        policy: Arc::new(AllowSocket(server.addr)),
        resolver: Arc::new(MapResolver::with(&[("docs.example", &[ip.as_str()])])),
        connector: Arc::new(ReqwestConnector),
    });
    let mut reg = ToolRegistry::default();
    reg.insert(Arc::new(tool));
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("http://docs.example:{}/page", server.addr.port());
    let page = call(&reg, dir.path(), "http_fetch", json!({ "url": url })).await;
    let page = assert_valid(&reg, "http_fetch", page);
    assert_eq!((page["status"].as_u64(), server.hits()), (Some(200), 1));
    assert_eq!(page["body"], "<p>hello</p>");
}

/// The schema is closed and typed: a wrong type, a missing field and an extra field are each
/// reported at their JSON pointer, with the stable code, and the value (here a secret-looking
/// string) is never quoted in the message.
#[test]
fn a_result_breaking_the_schema_is_reported_with_each_path_and_no_value() {
    let reg = ToolRegistry::from_config(default_config());
    let bad = json!({
        "status": "sk-live-SECRETVALUE",
        "url": "https://a.example/",
        "body": "x",
        "cookies": "session=SECRETCOOKIE"
    });
    let err = reg.check_output("http_fetch", &bad).expect_err("invalid");
    assert_eq!(err.code(), codes::INVALID_OUTPUT);
    let ToolError::InvalidOutput { violations } = &err else {
        panic!("{err:?}")
    };
    let mut paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["", "", "/status"], "{err}");
    let text = err.to_string();
    assert!(
        text.contains("content_type") && text.contains("cookies"),
        "{text}"
    );
    assert!(!text.contains("SECRET"), "the value leaked: {text}");
    assert_eq!(err.to_json()["code"], "AMAS-TOOL-0008");

    // Unknown tool: no schema, no pass.
    let unknown = reg.check_output("nope", &json!({})).expect_err("unknown");
    assert_eq!(unknown.code(), codes::NOT_FOUND);
    // Policy targets never produce a valid result.
    let never = reg.check_output("system_executor", &json!({"stdout": ""}));
    assert_eq!(never.map_err(|e| e.code()), Err(codes::INVALID_OUTPUT));
}

/// Every configured tool carries its kind's schema, and it is what the spec serializes (the
/// view `amas tools` and policy input get) beside the parameters.
#[test]
fn every_spec_declares_and_serializes_its_kinds_output_schema() {
    let reg = ToolRegistry::from_config(default_config());
    let mut n = 0;
    for spec in reg.specs() {
        assert_eq!(spec.output_schema.schema, builtin_output_schema(spec.kind));
        let v = serde_json::to_value(spec).expect("ser");
        assert_eq!(
            v["output_schema"], spec.output_schema.schema,
            "{}",
            spec.name
        );
        n += 1;
    }
    assert_eq!(n, 9);
}
