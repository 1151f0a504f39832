//! `amas approvals`: list and decide approval requests on a running server, as the holder of
//! the bearer token given (`--token` or `AMAS_TOKEN`).

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::EXIT_FAILED;
use crate::args::{ApprovalsArgs, ApprovalsCommand, ServerArgs};
use crate::bootstrap::UsageError;

/// Exit code when the server refused the request (4xx): permission, state or input.
const EXIT_REFUSED: u8 = 3;

pub async fn run(args: ApprovalsArgs) -> anyhow::Result<u8> {
    match args.command {
        ApprovalsCommand::List { server, status } => {
            let url = format!(
                "{}/api/v1/approvals?status={}",
                base(&server),
                urlencode(&status)
            );
            send(&server, reqwest::Method::GET, &url, None).await
        }
        ApprovalsCommand::Show { server, id } => {
            let url = format!("{}/api/v1/approvals/{}", base(&server), urlencode(&id));
            send(&server, reqwest::Method::GET, &url, None).await
        }
        ApprovalsCommand::Approve { server, id, reason } => {
            vote(&server, &id, "approve", reason).await
        }
        ApprovalsCommand::Deny { server, id, reason } => vote(&server, &id, "deny", reason).await,
    }
}

async fn vote(server: &ServerArgs, id: &str, verdict: &str, reason: String) -> anyhow::Result<u8> {
    let url = format!(
        "{}/api/v1/approvals/{}/{verdict}",
        base(server),
        urlencode(id)
    );
    send(
        server,
        reqwest::Method::POST,
        &url,
        Some(json!({ "reason": reason })),
    )
    .await
}

fn base(server: &ServerArgs) -> &str {
    server.server.trim_end_matches('/')
}

/// Sends one request and prints the JSON answer: on stdout when it succeeded (exit 0), on
/// stderr when the server refused it (exit 3) or failed (exit 1).
async fn send(
    server: &ServerArgs,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<u8> {
    let Some(token) = server.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(UsageError(
            "no token: pass --token or set AMAS_TOKEN (e.g. `amas token create --sub bob --roles approver`)"
                .to_owned(),
        )
        .into());
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(server.timeout_secs))
        .build()
        .context("cannot build the HTTP client")?;
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the AMAS server at {}", server.server))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let shown = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if status.is_success() {
        crate::commands::print_stdout(&shown);
        Ok(0)
    } else {
        eprintln!("{shown}");
        Ok(if status.is_client_error() {
            EXIT_REFUSED
        } else {
            EXIT_FAILED
        })
    }
}

/// Percent-encodes a path segment or query value (ids and statuses are plain, but a user can
/// type anything).
fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
