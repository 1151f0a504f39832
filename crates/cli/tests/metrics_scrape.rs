//! `promtool check metrics` on a real scrape: `amas serve` runs a task for a tenant with a
//! priced provider, then `/metrics` is fetched as a scraper would and linted by Prometheus's own
//! tool. The scrape holds the task's tokens and estimated cost by provider, model and tenant.
//! promtool is installed by scripts/install-observability-tools.sh; a missing promtool fails
//! the test (CI must run it), it never skips.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use common::{Server, scripted_dirs};

const SCRIPT: &str = r#"
research: [{json: {findings: ["Rust has no garbage collector"], summary: "Rust is memory safe."}}]
analysis: [{json: {insights: ["Safety without a collector"], risks: []}}]
synthesis: [{json: {title: "Rust", report: "Rust is safe and fast."}}]
"#;

fn promtool_check(exposition: &str) -> (bool, String) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`promtool` is not installed: run scripts/install-observability-tools.sh (CI installs it)"
        ),
        Err(e) => panic!("cannot start promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The value of the one series starting with `prefix`.
fn value(exposition: &str, prefix: &str) -> f64 {
    let line = exposition
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no series {prefix}\n{exposition}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_scrape_passes_promtool_and_counts_tokens_and_cost() {
    let (_root, data, config) = scripted_dirs(
        SCRIPT,
        "    prices: {input_per_1k: 0.5, output_per_1k: 2.0}\n",
        None,
    );
    let server = Server::start(&data, Some(&config));
    let token = server.token("alice", &["submitter"]);
    let (status, created) = server
        .post(
            &token,
            "/api/v1/tasks",
            &json!({"task_type": "research_report", "title": "Rust", "description": "Memory safety"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap();
    let task = server
        .wait_task(&token, id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");

    // As `promtool`, curl or any client that does not ask for OpenMetrics scrapes it.
    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let scrape = response.text().await.unwrap();
    let (ok, lint) = promtool_check(&scrape);
    assert!(ok && lint.trim().is_empty(), "promtool: {lint}\n{scrape}");

    let labels = r#"provider="local",model="scripted",tenant="default""#;
    let input = value(
        &scrape,
        &format!("amas_tokens_total{{{labels},direction=\"input\"}}"),
    );
    let output = value(
        &scrape,
        &format!("amas_tokens_total{{{labels},direction=\"output\"}}"),
    );
    assert!(input > 0.0 && output > 0.0, "{scrape}");
    let usage = &task["tokens"];
    assert_eq!(input, usage["input_tokens"].as_f64().unwrap(), "{task}");
    assert_eq!(output, usage["output_tokens"].as_f64().unwrap(), "{task}");
    let cost = value(
        &scrape,
        &format!("amas_estimated_cost_usd_total{{{labels}}}"),
    );
    let expected = (input * 0.5 + output * 2.0) / 1000.0;
    assert!(
        (cost - expected).abs() < 1e-9,
        "cost {cost}, expected {expected}"
    );

    // Prometheus itself asks for OpenMetrics and gets it.
    let open = reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(
        open.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(open.text().await.unwrap().ends_with("# EOF\n"));
}
