//! `agents.yaml`: roles with a provider chain, a prompt, two compiled contracts and limits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use yaml_serde::Mapping;

use super::{check_name, deserialize, duration, entries, int, non_empty};
use crate::contract::Contract;
use crate::diag::{Diagnostics, KeyPath};
use crate::error::codes;
use crate::model::{AgentConfig, AgentLimits, QuotaConfig, QuotaScope, SandboxConfig};
use crate::raw::{RawAgent, RawLimits, RawQuotas, RawSandbox};
use amas_types::AgentId;

/// An agent's contracts, whichever compiled, even when the agent has other problems: the
/// workflows are checked against them so that one run shows those problems too.
#[derive(Default)]
pub(super) struct AgentContracts {
    pub input: Option<Arc<Contract>>,
    pub output: Option<Arc<Contract>>,
}

/// Validates every agent. `providers` is the raw providers section: a reference to a
/// provider that exists but is itself invalid is not reported twice.
pub(super) fn validate(
    section: &Mapping,
    providers: &Mapping,
    diag: &mut Diagnostics,
) -> (
    BTreeMap<String, AgentConfig>,
    BTreeMap<String, AgentContracts>,
) {
    let base = KeyPath::of(&["agents"]);
    let known: BTreeSet<&str> = providers.keys().filter_map(|k| k.as_str()).collect();
    let mut out = BTreeMap::new();
    let mut contracts = BTreeMap::new();
    for (name, value) in entries(section, &base, diag) {
        let path = base.child(&name);
        let named = check_name(diag, &path, &name);
        let Some(raw) = deserialize::<RawAgent>(value, &path, diag) else {
            continue;
        };
        let (agent, compiled) = agent(&name, raw, &path, &known, diag);
        contracts.insert(name.clone(), compiled);
        if let Some(agent) = agent
            && named
        {
            out.insert(name, agent);
        }
    }
    (out, contracts)
}

fn agent(
    name: &str,
    mut raw: RawAgent,
    path: &KeyPath,
    known: &BTreeSet<&str>,
    diag: &mut Diagnostics,
) -> (Option<AgentConfig>, AgentContracts) {
    let role = non_empty(diag, &path.child("role"), &raw.role);
    let prompt = non_empty(diag, &path.child("system_prompt"), &raw.system_prompt);
    let chain = provider_chain(&raw.providers, &path.child("providers"), known, diag);
    let tools = unique(&raw.allowed_tools, &path.child("allowed_tools"), diag);
    let input = contract(
        format!("{name}.input"),
        std::mem::take(&mut raw.input_contract),
        &path.child("input_contract"),
        diag,
    )
    .map(Arc::new);
    let output = contract(
        format!("{name}.output"),
        std::mem::take(&mut raw.output_contract),
        &path.child("output_contract"),
        diag,
    )
    .map(Arc::new);
    let limits = limits(&raw.limits, &path.child("limits"), diag);
    let bounds = (
        sandbox(&raw.sandbox, &path.child("sandbox"), diag),
        quotas(&raw.quotas, &path.child("quotas"), diag),
    );
    let contracts = AgentContracts {
        input: input.clone(),
        output: output.clone(),
    };
    (
        build(
            raw,
            name,
            input,
            output,
            limits,
            bounds,
            role.and(prompt).and(chain).and(tools),
        ),
        contracts,
    )
}

fn build(
    raw: RawAgent,
    name: &str,
    input: Option<Arc<Contract>>,
    output: Option<Arc<Contract>>,
    limits: Option<AgentLimits>,
    bounds: (Option<SandboxConfig>, Option<QuotaConfig>),
    rest_ok: Option<()>,
) -> Option<AgentConfig> {
    rest_ok?;
    let (sandbox, quotas) = bounds;
    Some(AgentConfig {
        id: AgentId::from(name),
        role: raw.role,
        description: raw.description,
        providers: raw.providers,
        system_prompt: raw.system_prompt,
        input_contract: input?,
        output_contract: output?,
        allowed_tools: raw.allowed_tools,
        limits: limits?,
        sandbox: sandbox?,
        quotas: quotas?,
    })
}

fn provider_chain(
    chain: &[String],
    path: &KeyPath,
    known: &BTreeSet<&str>,
    diag: &mut Diagnostics,
) -> Option<()> {
    if chain.is_empty() {
        diag.invalid(
            path,
            "the provider chain is empty: list at least one provider",
        );
        return None;
    }
    let mut ok = unique(chain, path, diag).is_some();
    for (i, p) in chain.iter().enumerate() {
        if !known.contains(p.as_str()) {
            let names = known.iter().copied().collect::<Vec<_>>().join(", ");
            diag.at(
                codes::UNKNOWN_REFERENCE,
                &path.child(i.to_string()),
                format!("unknown provider `{p}` (known: {names})"),
            );
            ok = false;
        }
    }
    ok.then_some(())
}

fn unique(items: &[String], path: &KeyPath, diag: &mut Diagnostics) -> Option<()> {
    let mut seen = BTreeSet::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(item) {
            diag.invalid(
                &path.child(i.to_string()),
                format!("`{item}` is listed twice"),
            );
            ok = false;
        }
    }
    ok.then_some(())
}

/// Compiles a contract. Steps exchange JSON objects, so the schema must describe one.
fn contract(
    name: String,
    schema: serde_json::Value,
    path: &KeyPath,
    diag: &mut Diagnostics,
) -> Option<Contract> {
    let compiled = match Contract::compile(name, schema) {
        Ok(c) => c,
        Err(msg) => {
            diag.at(
                codes::SCHEMA,
                path,
                format!("not a valid JSON Schema: {msg}"),
            );
            return None;
        }
    };
    if compiled
        .schema
        .get("type")
        .and_then(serde_json::Value::as_str)
        != Some("object")
    {
        diag.at(
            codes::SCHEMA,
            path,
            "the schema must describe an object (`type: object`)",
        );
        return None;
    }
    Some(compiled)
}

fn limits(raw: &RawLimits, path: &KeyPath, diag: &mut Diagnostics) -> Option<AgentLimits> {
    let attempts = int(
        diag,
        &path.child("max_attempts"),
        raw.max_attempts,
        3,
        (1, 10),
    );
    let timeout = duration(
        diag,
        &path.child("timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(120),
        (Duration::from_secs(1), Duration::from_secs(3600)),
    );
    let budget: Option<u64> = int(
        diag,
        &path.child("token_budget"),
        raw.token_budget,
        4096,
        (1, 10_000_000),
    );
    let max_budget = budget.unwrap_or(10_000_000).min(32_768);
    let max_output = int(
        diag,
        &path.child("max_output_tokens"),
        raw.max_output_tokens,
        200,
        (1, max_budget),
    );
    let tool_calls = int(
        diag,
        &path.child("max_tool_calls"),
        raw.max_tool_calls,
        8,
        (0, 100),
    );
    Some(AgentLimits {
        max_attempts: attempts?,
        timeout: timeout?,
        token_budget: budget?,
        max_output_tokens: max_output?,
        max_tool_calls: tool_calls?,
    })
}

fn sandbox(raw: &RawSandbox, path: &KeyPath, diag: &mut Diagnostics) -> Option<SandboxConfig> {
    let read_only = raw.read_only.unwrap_or(true);
    let reads = int(
        diag,
        &path.child("max_file_reads"),
        raw.max_file_reads,
        50,
        (0, 100_000),
    );
    let writes = int(
        diag,
        &path.child("max_file_writes"),
        raw.max_file_writes,
        if read_only { 0 } else { 20 },
        (0, 100_000),
    );
    Some(SandboxConfig {
        read_only,
        network: raw.network.unwrap_or(false),
        max_file_reads: reads?,
        max_file_writes: writes?,
    })
}

fn quotas(raw: &RawQuotas, path: &KeyPath, diag: &mut Diagnostics) -> Option<QuotaConfig> {
    let per_task = int(
        diag,
        &path.child("tool_calls_per_task"),
        raw.tool_calls_per_task,
        20,
        (0, 1_000_000),
    );
    let bytes = int(
        diag,
        &path.child("bytes_out_per_task"),
        raw.bytes_out_per_task,
        4 << 20,
        (0, 1 << 40),
    );
    let bytes_in = int(
        diag,
        &path.child("bytes_in_per_task"),
        raw.bytes_in_per_task,
        1 << 20,
        (0, 1 << 40),
    );
    let tokens = int(
        diag,
        &path.child("tokens_per_task"),
        raw.tokens_per_task,
        100_000,
        (1, 1 << 40),
    );
    let wall_time = duration(
        diag,
        &path.child("wall_time_per_task"),
        raw.wall_time_per_task.as_deref(),
        Duration::from_secs(3600),
        (Duration::from_secs(1), Duration::from_secs(7 * 24 * 3600)),
    );
    let per_minute = int(
        diag,
        &path.child("calls_per_minute"),
        raw.calls_per_minute,
        60,
        (1, 1_000_000),
    );
    let scope = match raw.scope.as_deref() {
        None | Some("task") => Some(QuotaScope::Task),
        Some("principal") => Some(QuotaScope::Principal),
        Some(other) => {
            diag.invalid(
                &path.child("scope"),
                format!("`{other}` is not one of: task, principal"),
            );
            None
        }
    };
    Some(QuotaConfig {
        tool_calls_per_task: per_task?,
        bytes_out_per_task: bytes?,
        bytes_in_per_task: bytes_in?,
        tokens_per_task: tokens?,
        wall_time_per_task: wall_time?,
        calls_per_minute: per_minute?,
        scope: scope?,
    })
}
