//! `amas tools call`: one tool call through the whole pre-execution pipeline (policy,
//! allowlist, contract, sandbox, quotas), then the tool, exactly as an agent's call inside a
//! task would run. For debugging policies and testing the sandbox from outside.

use serde_json::{Value, json};

use amas_governance::pipeline::{Outcome, TaskToolUsage, ToolCallRequest};
use amas_telemetry::Metrics;
use amas_tools::ToolContext;
use amas_types::{Principal, TenantId};

use crate::args::{Global, ToolsArgs, ToolsCommand};
use crate::bootstrap::{UsageError, build_gate, build_policy, load_config};

/// Exit code when the pipeline denied the call or it awaits approval.
const EXIT_DENIED: u8 = 3;

pub async fn run(global: &Global, args: ToolsArgs) -> anyhow::Result<u8> {
    let ToolsCommand::Call {
        name,
        agent,
        params,
        task_type,
        sub,
        roles,
        tenant,
    } = args.command;
    let config = load_config(global)?;
    let agent = config
        .agents
        .get(&agent)
        .ok_or_else(|| UsageError(format!("--agent: no agent named `{agent}`")))?;
    let arguments: Value = serde_json::from_str(&params)
        .map_err(|e| UsageError(format!("--params: not valid JSON ({e})")))?;
    let (policy, _watch) = build_policy(global)?;
    let gate = build_gate(global, &config, policy, Metrics::new())?;
    let principal = Principal {
        sub,
        roles,
        tenant: TenantId(tenant),
        auth_method: "cli".to_owned(),
    };
    let usage = TaskToolUsage::default();
    let verdict = gate.check(&ToolCallRequest {
        principal: &principal,
        agent,
        task_id: "cli",
        task_type: &task_type,
        tool: &name,
        arguments: &arguments,
        usage: &usage,
        approvals: &[],
    });
    let stages: Vec<Value> = verdict
        .stages
        .iter()
        .map(|s| json!({"stage": s.stage, "outcome": s.outcome.as_str(), "reasons": s.reasons, "code": s.code}))
        .collect();
    let outcome = verdict.outcome();
    let mut report = json!({
        "tool": name,
        "agent": agent.id,
        "decision": {"outcome": outcome.as_str(), "stages": stages},
    });
    if outcome != Outcome::Allow {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(EXIT_DENIED);
    }
    let workspace = global.data_dir.join("workspaces").join("cli");
    tokio::fs::create_dir_all(&workspace).await?;
    let ctx = ToolContext {
        task_id: "cli".to_owned(),
        workspace,
        agent: agent.id.clone(),
    };
    let code = match gate.tools().call(&name, &ctx, arguments).await {
        Ok(output) => {
            report["result"] = output.content;
            0
        }
        Err(e) => {
            report["error"] = json!({"code": e.code(), "message": e.to_string()});
            crate::EXIT_FAILED
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(code)
}
