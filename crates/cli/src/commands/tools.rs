//! `amas tools list`: the configured tools with what policy decides on. `amas tools call`: one
//! tool call through the whole pre-execution pipeline (policy, allowlist, contract, sandbox,
//! quotas), then the tool, exactly as an agent's call inside a task would run. For debugging
//! policies and testing the sandbox from outside.

use std::fmt::Write as _;

use serde_json::{Value, json};

use amas_governance::pipeline::{Outcome, TaskToolUsage, ToolCallRequest};
use amas_telemetry::Metrics;
use amas_tools::{Risk, ToolContext, ToolSpec, ToolsConfig};
use amas_types::{Principal, TenantId};

use crate::args::{CallArgs, Global, ToolsArgs, ToolsCommand, ToolsFormat};
use crate::bootstrap::{Loaded, UsageError, build_gate, build_policy, data_protector, load};
use crate::commands::print_stdout;

/// Exit code when the pipeline denied the call or it awaits approval.
const EXIT_DENIED: u8 = 3;

pub async fn run(global: &Global, args: ToolsArgs) -> anyhow::Result<u8> {
    match args.command {
        ToolsCommand::List { format } => list(global, format),
        ToolsCommand::Call(call_args) => call(global, call_args).await,
    }
}

async fn call(global: &Global, args: CallArgs) -> anyhow::Result<u8> {
    let CallArgs {
        name,
        agent,
        params,
        task_type,
        sub,
        roles,
        tenant,
    } = args;
    let Loaded {
        config,
        tools,
        dataprotect,
    } = load(global)?;
    let agent = config
        .agents
        .get(&agent)
        .ok_or_else(|| UsageError(format!("--agent: no agent named `{agent}`")))?;
    let arguments: Value = serde_json::from_str(&params)
        .map_err(|e| UsageError(format!("--params: not valid JSON ({e})")))?;
    let (policy, _watch) = build_policy(global)?;
    let gate = build_gate(
        global,
        &config,
        tools,
        data_protector(dataprotect)?,
        policy,
        Metrics::new(),
    )?;
    let principal = Principal {
        sub,
        roles,
        tenant: TenantId(tenant),
        auth_method: "cli".to_owned(),
        issuer: "cli".to_owned(),
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
    amas_store::private::create_private_dir(&workspace)?;
    let ctx = ToolContext {
        task_id: "cli".to_owned(),
        workspace,
        agent: agent.id.to_string(),
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

/// `amas tools list`: every tool of the effective configuration, in name order.
fn list(global: &Global, format: ToolsFormat) -> anyhow::Result<u8> {
    let tools = load(global)?.tools;
    match format {
        ToolsFormat::Json => {
            let doc: Vec<Value> = specs(&tools).map(describe).collect();
            print_stdout(&serde_json::to_string_pretty(&doc)?);
        }
        ToolsFormat::Text => print_stdout(text(&tools).trim_end()),
    }
    Ok(0)
}

fn specs(tools: &ToolsConfig) -> impl Iterator<Item = &ToolSpec> {
    tools.tools.iter().map(|t| &t.spec)
}

/// When a call needs an approval: the spec's own flag, or what the embedded policy bundle
/// (`policies/tool.rego`) asks for by risk. A `--policy-dir` bundle may ask for more.
fn approval_rule(spec: &ToolSpec) -> &'static str {
    if spec.requires_approval {
        "always (requires_approval)"
    } else {
        match spec.risk {
            Risk::Critical => "always (critical risk)",
            Risk::High => "two approvers in production (high risk)",
            Risk::Medium | Risk::Low => "none",
        }
    }
}

/// One tool as `tools list --format json` prints it. The whole spec is included, so fields
/// added to [`ToolSpec`] (an output schema) appear without a change here.
fn describe(spec: &ToolSpec) -> Value {
    let mut doc = serde_json::to_value(spec).unwrap_or_else(|_| json!({"name": spec.name}));
    if let Some(map) = doc.as_object_mut() {
        map.insert("approval".to_owned(), json!(approval_rule(spec)));
    }
    doc
}

/// Keys of the spec the text form prints on its first lines (or leaves to `config dump`).
const SUMMARISED: [&str; 10] = [
    "name",
    "kind",
    "description",
    "risk",
    "side_effects",
    "idempotent",
    "requires_approval",
    "approval",
    "timeout_ms",
    "max_output_bytes",
];

fn text(tools: &ToolsConfig) -> String {
    let mut out = String::new();
    for spec in specs(tools) {
        let doc = describe(spec);
        let field = |key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        let _ = writeln!(out, "{}", spec.name);
        let _ = writeln!(
            out,
            "  kind: {}  risk: {}  side effects: {}  idempotent: {}",
            field("kind"),
            field("risk"),
            field("side_effects"),
            spec.idempotent
        );
        let _ = writeln!(out, "  approval: {}", approval_rule(spec));
        // The parameter schema, and any schema a spec gains later (an output schema).
        for (key, value) in doc.as_object().into_iter().flatten() {
            if !SUMMARISED.contains(&key.as_str()) {
                let _ = writeln!(out, "  {key}: {value}");
            }
        }
        let _ = writeln!(out);
    }
    out
}
