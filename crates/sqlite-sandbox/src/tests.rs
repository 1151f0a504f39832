//! Each mechanism on a real SQLite file: the authorizer's verdicts and what it recorded, the
//! value-size limit, and the progress handler's three reasons to stop. The tool's tests
//! (`crates/tools/tests/sql_engine.rs`) cover the same through `sql_query`, with error codes.

use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::*;

const GENEROUS: Budget = Budget {
    time: Duration::from_secs(60),
    heap_bytes: 1 << 30,
};

async fn fixture(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("t.db");
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    for q in [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, cost REAL)",
        "INSERT INTO items VALUES (1, 'a', 1.5), (2, 'b', 2.5)",
        "CREATE TABLE secrets (id INTEGER, password TEXT)",
        "INSERT INTO secrets VALUES (1, 'hunter2')",
    ] {
        sqlx::query(q).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    path
}

async fn open(path: &std::path::Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .unwrap()
}

fn rules() -> Rules {
    Rules {
        blocked_tables: vec!["secrets".into()],
        blocked_columns: vec!["items.cost".into()],
        ..Rules::default()
    }
}

fn primary_code(e: &sqlx::Error) -> i64 {
    let sqlx::Error::Database(d) = e else {
        panic!("not a database error: {e}")
    };
    d.code().unwrap().parse::<i64>().unwrap() & 0xff
}

#[tokio::test]
async fn permitted_reads_run_and_the_authorizer_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path()).await;
    let mut conn = open(&path).await;
    let sandbox = install(&mut conn, &rules(), GENEROUS).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "WITH x AS (SELECT name FROM items) SELECT upper(name) FROM x ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(names, ["A", "B"]);
    assert_eq!(sandbox.denial(), None);

    for (q, denial) in [
        ("SELECT * FROM secrets", Denial::Table("secrets".into())),
        (
            "SELECT count(*) FROM [secrets]",
            Denial::Table("secrets".into()),
        ),
        ("SELECT * FROM 'secrets'", Denial::Table("secrets".into())),
        (
            "SELECT sql FROM sqlite_master",
            Denial::Table("sqlite_master".into()),
        ),
        (
            "SELECT name FROM pragma_table_info('secrets')",
            Denial::Table("pragma_table_info".into()),
        ),
        (
            "SELECT cost FROM items",
            Denial::Column {
                table: "items".into(),
                column: "cost".into(),
            },
        ),
        (
            "SELECT sqlite_version()",
            Denial::Function("sqlite_version".into()),
        ),
        ("PRAGMA table_info(secrets)", Denial::Action("PRAGMA")),
    ] {
        let mut conn = open(&path).await;
        let sandbox = install(&mut conn, &rules(), GENEROUS).await.unwrap();
        let err = sqlx::query(q).fetch_all(&mut conn).await.unwrap_err();
        assert_eq!(sandbox.denial(), Some(denial.clone()), "{q}: {err}");
        assert_eq!(sandbox.explain(&err), Some(Verdict::Denied(denial)), "{q}");
    }
}

#[tokio::test]
async fn values_past_the_length_limit_fail_before_they_are_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path()).await;
    for q in [
        "SELECT length(replace(printf('%.*c', 1000, 'x'), 'x', printf('%.*c', 1000000, 'y')))",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) \
         SELECT length(group_concat(printf('%.*c', 100000, 'x'))) FROM c",
        "SELECT length(printf('%.*c', 3000000, 'x') || printf('%.*c', 3000000, 'y'))",
    ] {
        let mut conn = open(&path).await;
        let sandbox = install(&mut conn, &rules(), GENEROUS).await.unwrap();
        let err = sqlx::query(q).fetch_all(&mut conn).await.unwrap_err();
        assert_eq!(
            primary_code(&err),
            i64::from(sys::SQLITE_TOOBIG),
            "{q}: {err}"
        );
        assert_eq!(sandbox.explain(&err), Some(Verdict::TooBig));
    }
    // printf past the limit gives up and answers NULL: the 500 MB string is never made.
    let mut conn = open(&path).await;
    let _sandbox = install(&mut conn, &rules(), GENEROUS).await.unwrap();
    let n: Option<i64> = sqlx::query_scalar("SELECT length(printf('%.*c', 500000000, 'x'))")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, None);
}

#[tokio::test]
async fn the_progress_handler_stops_a_runaway_statement_for_time_and_for_heap() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path()).await;
    let runaway =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c";
    let mut conn = open(&path).await;
    let budget = Budget {
        time: Duration::from_millis(200),
        ..GENEROUS
    };
    let sandbox = install(&mut conn, &rules(), budget).await.unwrap();
    let err = sqlx::query(runaway).fetch_all(&mut conn).await.unwrap_err();
    assert_eq!(
        primary_code(&err),
        i64::from(sys::SQLITE_INTERRUPT),
        "{err}"
    );
    assert_eq!(sandbox.stop(), Some(Stop::Time));

    // Distinct values of 1 MB each, all kept to be counted: the heap budget stops it long
    // before the time budget would.
    let hoard = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                 SELECT count(DISTINCT printf('%.*c', 1000000, 'x') || x) FROM c";
    let mut conn = open(&path).await;
    let budget = Budget {
        time: Duration::from_secs(20),
        heap_bytes: 64 << 20,
    };
    let sandbox = install(&mut conn, &rules(), budget).await.unwrap();
    let err = sqlx::query(hoard).fetch_all(&mut conn).await.unwrap_err();
    assert_eq!(
        primary_code(&err),
        i64::from(sys::SQLITE_INTERRUPT),
        "{err}"
    );
    assert_eq!(sandbox.stop(), Some(Stop::Heap));
}

/// The tool's timeout drops the future that holds the sandbox while sqlx's worker thread is
/// still stepping the statement: the drop must stop it. The proof is the connection's shared
/// lock: a writer can take the exclusive lock only once the statement has ended, and the busy
/// timeout is far longer than that needs.
#[tokio::test]
async fn dropping_the_sandbox_interrupts_the_statement_still_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path()).await;
    let reads_items = "WITH RECURSIVE c(x) AS (SELECT id FROM items WHERE id = 1 \
                       UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c";
    let mut conn = open(&path).await;
    let sandbox = install(&mut conn, &rules(), GENEROUS).await.unwrap();
    let run = async {
        let _keep = &sandbox;
        sqlx::query(reads_items).fetch_all(&mut conn).await
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(300), run)
            .await
            .is_err(),
        "the runaway statement is still running when the caller gives up"
    );
    drop(sandbox);
    drop(conn);
    let mut writer = SqliteConnectOptions::new()
        .filename(&path)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut writer)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
}
