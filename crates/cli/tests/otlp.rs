//! OpenTelemetry end to end through the real binary: `amas serve` exports spans over OTLP/gRPC
//! to a real collector endpoint inside this test (the opentelemetry-proto `TraceService` on a
//! hyper HTTP/2 server). A client submits a code review with a W3C `traceparent`; the task's
//! model calls go to the mock OpenAI server, which records their headers. The test checks:
//! every span of the task is in the caller's trace; the request span is the caller's child,
//! the task span the request's, steps under the task, model and tool calls and governance
//! evaluations under the step; GenAI attributes on the model-call span; and the provider
//! received the model-call span as its parent in `traceparent`.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};

use amas_test_util::{Behaviour, MockOpenAi};
use common::otlp::{Exporting, attr, hex, serve_exporting, start_collector};
use common::read_log;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const MODEL: &str = "gpt-test";

/// `amas serve` exporting to `collector`, with the `local` provider replaced by the mock.
fn serve(collector: SocketAddr, mock: &MockOpenAi) -> Exporting {
    serve_in(collector, mock, "development")
}

/// As [`serve`], in the deployment `environment` policies see.
fn serve_in(collector: SocketAddr, mock: &MockOpenAi, environment: &str) -> Exporting {
    serve_exporting(collector, &mock.base_url(), MODEL, "", environment, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_runs_through_the_task_to_the_provider_and_the_collector() {
    let (collector_addr, collector) = start_collector().await;
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(
        MODEL,
        [
            Behaviour::tool_call(
                "code_analyzer",
                json!({"code": "fn main() {}\n", "language": "rs"}),
            ),
            Behaviour::reply(json!({"issues": [], "verdict": "approve"})),
        ],
    );
    let mut setup = serve(collector_addr, &mock);
    let server = &mut setup.server;
    let token = server.token("alice", &["submitter"]);

    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/tasks", server.base))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(
            &json!({"task_type": "code_review", "title": "Review main", "description": "One file"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let task = server
        .wait_task(&token, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(task["status"], "succeeded", "{task}");

    // The provider saw the model-call span of the caller's trace.
    let sent = mock.requests();
    assert_eq!(sent.len(), 2, "tool request, then the answer");
    let provider_parents: Vec<String> = sent
        .iter()
        .map(|r| {
            let tp = r.headers.get("traceparent").expect("traceparent sent");
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts[1], CALLER_TRACE, "{tp}");
            parts[2].to_owned()
        })
        .collect();

    // SIGTERM flushes the batch exporter on the way out.
    server.terminate();
    let spans = collector
        .spans_until(|spans| spans.iter().any(|s| s.name == "invoke_agent code_reviewer"))
        .await;
    let ours: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == CALLER_TRACE)
        .collect();
    let by_id: BTreeMap<String, &Span> = ours.iter().map(|s| (hex(&s.span_id), *s)).collect();
    let named =
        |name: &str| -> Vec<&Span> { ours.iter().copied().filter(|s| s.name == name).collect() };
    let parent_name = |s: &Span| {
        by_id.get(&hex(&s.parent_span_id)).map_or_else(
            || format!("<{}>", hex(&s.parent_span_id)),
            |p| p.name.clone(),
        )
    };
    let names: Vec<String> = ours.iter().map(|s| s.name.clone()).collect();
    let context = || {
        format!(
            "spans in the caller's trace: {names:?}\nall: {:?}\nlog: {}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>(),
            read_log(&server.data_dir)
        )
    };

    // The submitting request continues the caller's span.
    let submit = ours
        .iter()
        .find(|s| s.name == "http.request" && hex(&s.parent_span_id) == CALLER_SPAN)
        .unwrap_or_else(|| panic!("no request span under the caller's; {}", context()));
    let tasks = named("amas.task");
    assert_eq!(tasks.len(), 1, "{}", context());
    let task_span = tasks[0];
    assert_eq!(task_span.parent_span_id, submit.span_id, "{}", context());
    assert_eq!(attr(task_span, "task.id"), Some(json!(id)));

    let steps = named("invoke_agent code_reviewer");
    assert_eq!(steps.len(), 1, "{}", context());
    let step = steps[0];
    assert_eq!(step.parent_span_id, task_span.span_id, "{}", context());
    assert_eq!(
        attr(step, "gen_ai.operation.name"),
        Some(json!("invoke_agent"))
    );

    let chats = named(&format!("chat {MODEL}"));
    assert_eq!(chats.len(), 2, "{}", context());
    for chat in &chats {
        assert_eq!(parent_name(chat), step.name, "{}", context());
        assert_eq!(attr(chat, "gen_ai.operation.name"), Some(json!("chat")));
        assert_eq!(attr(chat, "gen_ai.request.model"), Some(json!(MODEL)));
        assert_eq!(attr(chat, "gen_ai.response.model"), Some(json!(MODEL)));
        assert!(attr(chat, "gen_ai.request.max_tokens").is_some_and(|t| t.is_i64()));
        for usage in ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"] {
            let tokens = attr(chat, usage).unwrap_or_else(|| panic!("{usage} missing"));
            assert!(tokens.as_i64().is_some_and(|t| t > 0), "{usage}: {tokens}");
        }
        assert!(
            provider_parents.contains(&hex(&chat.span_id)),
            "the provider's traceparent names this chat span"
        );
    }

    let tools = named("execute_tool code_analyzer");
    assert_eq!(tools.len(), 1, "{}", context());
    assert_eq!(tools[0].parent_span_id, step.span_id);
    assert_eq!(
        attr(tools[0], "gen_ai.operation.name"),
        Some(json!("execute_tool"))
    );

    let governance = named("governance tool_call");
    assert_eq!(governance.len(), 1, "{}", context());
    assert_eq!(governance[0].parent_span_id, step.span_id);
    assert_eq!(attr(governance[0], "amas.outcome"), Some(json!("allow")));
    let model_policy = named("governance model_call");
    assert_eq!(model_policy.len(), 2, "one per model turn; {}", context());
    assert!(
        model_policy
            .iter()
            .all(|s| s.parent_span_id == step.span_id)
    );
}

/// A security audit in production that makes a denied call (a tool outside the agent's
/// allowlist) and an approved one (the high-risk scanner, two approvers), submitted in the
/// caller's trace. Every decision the journal records is in the audit log with that trace id;
/// the spans of the task are exported in it, and every log line the task wrote names it and one
/// of those spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_of_a_task_is_audited_in_its_trace_with_spans_and_log_lines() {
    let (collector_addr, collector) = start_collector().await;
    let mock = MockOpenAi::start().await.unwrap();
    mock.push(
        MODEL,
        [
            Behaviour::tool_call("system_executor", json!({"command": "id"})),
            Behaviour::tool_call("vulnerability_scanner", json!({})),
            Behaviour::reply(json!({"findings": ["no secrets found"], "risk": "low"})),
        ],
    );
    let mut setup = serve_in(collector_addr, &mock, "production");
    let server = &mut setup.server;
    let data = server.data_dir.clone();
    let admin = server.token("root", &["admin"]);
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/tasks", server.base))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"task_type": "security_audit", "title": "Audit", "description": "secrets"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiting = server
        .wait_task(&admin, &id, |t| {
            t["status"] == "waiting_approval" || t["status"] == "failed"
        })
        .await;
    assert_eq!(waiting["status"], "waiting_approval", "{waiting}");
    // The requester is not offered their own request: an approver lists it.
    let bob = server.token("bob", &["approver"]);
    let (_, listed) = server.get(&bob, "/api/v1/approvals").await;
    let approval = listed["approvals"][0]["id"].as_str().unwrap().to_owned();
    for approver in ["bob", "carol"] {
        let token = server.token(approver, &["approver"]);
        let (status, body) = server
            .post(
                &token,
                &format!("/api/v1/approvals/{approval}/approve"),
                &json!({"reason": "scanner is read-only"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let done = server
        .wait_task(&admin, &id, |t| {
            t["status"] == "succeeded" || t["status"] == "failed"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, events) = server
        .get(&admin, &format!("/api/v1/tasks/{id}/events"))
        .await;
    server.terminate();

    // Every decision in the journal has its audit record, in the caller's trace.
    let audit = common::amas(&data, None, &["audit", "export", "--format", "jsonl"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let records: Vec<Value> = String::from_utf8(audit.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["task_id"] == id.as_str())
        .collect();
    assert!(
        records.iter().all(|r| r["trace_id"] == CALLER_TRACE),
        "{records:#?}"
    );
    let decisions: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "action_decided")
        .collect();
    assert!(decisions.len() >= 5, "{events}");
    // Each journaled decision has its record. The gate journals every stage it evaluated for
    // a tool call, the audit log the verdict: a record per evaluation of a call, whose decision
    // is one of the stages' outcomes (an allow that an approval made possible is recorded as
    // the approval granted). Model calls are one for one.
    let tools: Vec<&Value> = decisions
        .iter()
        .map(|d| &d["event"])
        .filter(|e| e["action"] == "tool_call")
        .collect();
    let tool_records: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "tool_call")
        .collect();
    let mut calls: Vec<&str> = tools.iter().filter_map(|e| e["call_id"].as_str()).collect();
    calls.dedup();
    for call in &calls {
        let audited: Vec<&&Value> = tool_records
            .iter()
            .filter(|r| r["details"]["call_id"] == *call)
            .collect();
        assert!(!audited.is_empty(), "call {call} not audited: {records:#?}");
        for r in audited {
            let stages_said = tools.iter().any(|e| {
                e["call_id"] == *call
                    && (e["outcome"] == r["decision"]
                        || (e["outcome"] == "allow" && r["decision"] == "approval_granted"))
            });
            assert!(stages_said, "{r} matches no journaled stage of {call}");
        }
    }
    let models: Vec<&Value> = decisions
        .iter()
        .map(|d| &d["event"])
        .filter(|e| e["action"] == "model_call")
        .collect();
    let model_records: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "model_call")
        .collect();
    assert_eq!(models.len(), model_records.len(), "{records:#?}");
    assert!(
        models
            .iter()
            .zip(&model_records)
            .all(|(e, r)| e["outcome"] == r["decision"] && e["step"] == r["step"])
    );
    // Decisions name the bundle that made them and how long they took; each model answer has
    // a usage record (tokens, latency).
    for r in &records {
        let policy_decided = ["policy", "model_policy"].contains(&r["stage"].as_str().unwrap());
        if policy_decided {
            let hash = r["policy"]["hash"].as_str().unwrap_or_default();
            assert!(hash.starts_with("sha256:") && hash.len() == 71, "{r}");
        }
        if r["action"] == "tool_call" || r["action"] == "model_call" {
            assert!(r["duration_us"].is_u64(), "{r}");
        }
    }
    let answers = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "model_responded")
        .count();
    let usage: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "model_response")
        .collect();
    assert_eq!(usage.len(), answers, "{records:#?}");
    assert!(
        usage.iter().all(|r| r["tokens"]["input"].as_u64() > Some(0)
            && r["duration_us"].is_u64()
            && r["decision"] == "recorded"),
        "{usage:#?}"
    );
    let has = |stage: &str, decision: &str| {
        records
            .iter()
            .any(|r| r["stage"] == stage && r["decision"] == decision)
    };
    assert!(has("allowlist", "deny"), "the denial: {records:#?}");
    assert!(has("policy", "require_approval"), "{records:#?}");
    assert!(
        has("approval", "approval_granted"),
        "the approval: {records:#?}"
    );

    // The task's spans are exported in the caller's trace.
    let spans = collector
        .spans_until(|spans| {
            spans
                .iter()
                .any(|s| s.name == "invoke_agent security_auditor")
        })
        .await;
    let ours: BTreeMap<String, &Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == CALLER_TRACE)
        .map(|s| (hex(&s.span_id), s))
        .collect();
    assert!(
        ours.values().any(|s| s.name == "amas.task") && ours.len() >= 8,
        "{:?}",
        ours.values().map(|s| &s.name).collect::<Vec<_>>()
    );

    // Log lines the task wrote carry its trace id and an exported span of it.
    let log = read_log(&data);
    let task_lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.to_string().contains(&id))
        .collect();
    assert!(!task_lines.is_empty(), "{log}");
    let in_task_span = |line: &Value| {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["name"] == "amas.task"))
    };
    assert!(task_lines.iter().any(in_task_span), "{log}");
    for line in &task_lines {
        assert_eq!(line["trace_id"], CALLER_TRACE, "{line}");
        // Inside the task span: the task and its tenant are on the line.
        let task_span = line["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["name"] == "amas.task"));
        if let Some(span) = task_span {
            assert_eq!(span["task.id"], id.as_str(), "{line}");
            assert_eq!(span["tenant.id"], "default", "{line}");
        }
        let span = line["span_id"].as_str().unwrap_or_default();
        assert!(ours.contains_key(span), "span {span} not exported: {line}");
    }
}
