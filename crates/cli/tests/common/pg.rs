//! The real PostgreSQL of the machine for end-to-end tests with several `amas` processes:
//! `AMAS_TEST_DATABASE_URL`, or `postgres://postgres@127.0.0.1:5432/test`. Each test works in
//! a schema of its own ([`fresh_schema`]) and drops it at the end.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use amas_test_util::{Behaviour, MockOpenAi, RecordedRequest};

pub fn database_url() -> String {
    std::env::var("AMAS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub async fn connect() -> PgConnection {
    PgConnection::connect(&database_url())
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at the test URL must be reachable: {e}"))
}

/// A schema name no other test uses (`prefix` says which test it belongs to).
pub fn fresh_schema(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The environment that points an `amas` process at `schema`, with leases of `lease_ttl`.
pub fn pg_env(schema: &str, lease_ttl: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AMAS_DATABASE_URL", database_url()),
        ("AMAS__STORE__SCHEMA", schema.to_owned()),
        ("AMAS__STORE__LEASE_TTL", lease_ttl.to_owned()),
        ("AMAS__STORE__CLAIM_INTERVAL", "100ms".to_owned()),
    ]
}

pub async fn drop_schema(schema: &str) {
    let mut conn = connect().await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the test schema");
}

/// Each task's journaled model answers: (task tag, model) -> when each was journaled.
async fn journaled_answers(
    schema: &str,
    ids: &BTreeMap<String, String>,
) -> BTreeMap<(String, String), Vec<DateTime<Utc>>> {
    let mut conn = connect().await;
    let mut out: BTreeMap<(String, String), Vec<DateTime<Utc>>> = BTreeMap::new();
    for (tag, id) in ids {
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT event::text, recorded_at FROM \"{schema}\".journal \
             WHERE task_id = $1::uuid AND kind = 'model_responded' ORDER BY seq"
        )))
        .bind(id)
        .fetch_all(&mut conn)
        .await
        .expect("journal query");
        for (event, at) in rows {
            let event: Value = serde_json::from_str(&event).expect("event json");
            let model = event["model"].as_str().expect("model").to_owned();
            out.entry((tag.clone(), model)).or_default().push(at);
        }
    }
    out
}

/// For tasks `ids` (tag -> task id; the tag is in the task's title, so in every prompt of its
/// steps) whose steps each ask one of `models` once: exactly one journaled answer per step,
/// and none of the mock's `requests` for a step arrived after that step's answer was
/// journaled (a journaled call is never made again). Calls cut off before their answer was
/// journaled may have been asked more than once.
pub async fn assert_no_journaled_call_repeated(
    schema: &str,
    ids: &BTreeMap<String, String>,
    models: &[&str],
    requests: &[RecordedRequest],
) {
    let answers = journaled_answers(schema, ids).await;
    let mut asked: BTreeMap<(String, String), Vec<SystemTime>> = BTreeMap::new();
    for r in requests {
        let text = r.body.to_string();
        let tags: Vec<&String> = ids.keys().filter(|t| text.contains(t.as_str())).collect();
        assert_eq!(tags.len(), 1, "each prompt names one task: {text}");
        asked
            .entry((tags[0].clone(), r.model.clone()))
            .or_default()
            .push(r.received_at);
    }
    for tag in ids.keys() {
        for model in models {
            let key = (tag.clone(), (*model).to_owned());
            let journaled = answers.get(&key).map_or(&[][..], Vec::as_slice);
            assert_eq!(journaled.len(), 1, "{key:?}: one journaled answer");
            let at = SystemTime::from(journaled[0]);
            for received in asked.get(&key).map_or(&[][..], Vec::as_slice) {
                assert!(
                    *received < at,
                    "{key:?}: a request arrived after its answer was journaled"
                );
            }
        }
    }
}

/// The agents of `research_report`, each asking a mock model of its own name.
pub const AGENTS: [&str; 3] = ["research", "analysis", "synthesis"];

/// A temp root with `data` and `config`, `config/providers.yaml` naming a provider
/// `p_<agent>` per agent, each a mock model of the agent's name answering after `answer_ms`
/// with a reply valid under its output contract (point the agents at them: [`agent_env`]).
pub fn per_agent_dirs(mock: &MockOpenAi, answer_ms: u64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (root, data, dir) = temp_dirs();
    let base = mock.base_url();
    let mut providers =
        format!("providers:\n  local:\n    kind: openai\n    base_url: {base}\n    model: local\n");
    for agent in AGENTS {
        providers.push_str(&format!(
            "  p_{agent}:\n    kind: openai\n    base_url: {base}\n    model: {agent}\n    timeout: 60s\n    max_retries: 0\n"
        ));
    }
    std::fs::write(dir.join("providers.yaml"), providers).expect("providers.yaml");
    let replies = [
        json!({"findings": ["Leases expire."], "summary": "Workers come and go."}),
        json!({"insights": ["Epochs fence stale workers."], "risks": ["Slow takeovers."]}),
        json!({"title": "Kill loop", "report": "Nothing lost, nothing repeated."}),
    ];
    for (agent, reply) in AGENTS.iter().zip(replies) {
        mock.set_default(
            agent,
            Behaviour::delayed(answer_ms, Behaviour::reply(reply)),
        );
    }
    (root, data, dir)
}

/// The environment that points each agent at its `p_<agent>` provider.
pub fn agent_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "AMAS__AGENTS__RESEARCH__PROVIDERS",
            "[p_research]".to_owned(),
        ),
        (
            "AMAS__AGENTS__ANALYSIS__PROVIDERS",
            "[p_analysis]".to_owned(),
        ),
        (
            "AMAS__AGENTS__SYNTHESIS__PROVIDERS",
            "[p_synthesis]".to_owned(),
        ),
    ]
}

/// A temp root with `data` and `config`, the `local` provider being the mock's model `m`.
pub fn mock_dirs(mock: &MockOpenAi) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (root, data, config) = temp_dirs();
    std::fs::write(
        config.join("providers.yaml"),
        format!(
            "providers:\n  local:\n    kind: openai\n    base_url: {}\n    model: m\n    timeout: 60s\n    max_retries: 0\n",
            mock.base_url()
        ),
    )
    .expect("providers.yaml");
    (root, data, config)
}

/// The pid in a worker's name (`host/pid/nonce`).
pub fn pid_of(worker: &str) -> u32 {
    worker
        .split('/')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a worker name with a pid: {worker}"))
}

/// A temp root with empty `data` and `config` directories.
fn temp_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let config = root.path().join("config");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(&config).expect("config dir");
    (root, data, config)
}
