//! `workflows/<task_type>.yaml`: a DAG of steps per task type, each step naming an agent and
//! mapping its inputs from the task or from upstream step outputs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;
use yaml_serde::Mapping;

use super::agents::AgentContracts;
use super::graph::{topo_order, upstream};
use super::{check_name, deserialize, entries};
use crate::diag::{Diagnostics, KeyPath};
use crate::error::codes;
use crate::model::{InputSource, StepConfig, WorkflowConfig};
use crate::raw::{RawStep, RawWorkflow};
use amas_types::{AgentId, StepId};

pub(super) fn validate(
    section: &Mapping,
    raw_agents: &Mapping,
    agents: &BTreeMap<String, AgentContracts>,
    diag: &mut Diagnostics,
) -> BTreeMap<String, WorkflowConfig> {
    let base = KeyPath::of(&["workflows"]);
    let known: BTreeSet<&str> = raw_agents.keys().filter_map(|k| k.as_str()).collect();
    let mut out = BTreeMap::new();
    for (task_type, value) in entries(section, &base, diag) {
        let path = base.child(&task_type);
        let before = diag.errors.len();
        check_name(diag, &path, &task_type);
        let Some(raw) = deserialize::<RawWorkflow>(value, &path, diag) else {
            continue;
        };
        let wf = Workflow {
            task_type: &task_type,
            path: &path,
            known_agents: &known,
            agents,
        };
        if let Some(w) = wf.check(raw, diag)
            && diag.errors.len() == before
        {
            out.insert(task_type.clone(), w);
        }
    }
    out
}

struct Workflow<'a> {
    task_type: &'a str,
    path: &'a KeyPath,
    known_agents: &'a BTreeSet<&'a str>,
    agents: &'a BTreeMap<String, AgentContracts>,
}

/// A step as declared, with its dependencies as indices (unknown ones dropped).
struct Step {
    name: String,
    raw: Option<RawStep>,
    deps: Vec<usize>,
}

impl Workflow<'_> {
    fn check(&self, raw: RawWorkflow, diag: &mut Diagnostics) -> Option<WorkflowConfig> {
        if let Some(declared) = raw.task_type.as_deref().filter(|t| *t != self.task_type) {
            let msg = format!(
                "`{declared}` differs from the file name: the file must be `workflows/{declared}.yaml`"
            );
            diag.invalid(&self.path.child("task_type"), msg);
        }
        let steps_path = self.path.child("steps");
        let mut steps: Vec<Step> = entries(&raw.steps, &steps_path, diag)
            .into_iter()
            .map(|(name, value)| {
                let path = steps_path.child(&name);
                check_name(diag, &path, &name);
                let raw = deserialize::<RawStep>(value, &path, diag);
                Step {
                    name,
                    raw,
                    deps: Vec::new(),
                }
            })
            .collect();
        if steps.is_empty() {
            diag.invalid(&steps_path, "a workflow needs at least one step");
            return None;
        }
        let index: BTreeMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        for step in &mut steps {
            step.deps = self.references(step, &index, diag);
        }
        let deps: Vec<Vec<usize>> = steps.iter().map(|s| s.deps.clone()).collect();
        let order = match topo_order(&deps) {
            Ok(order) => Some(order),
            Err(cycles) => {
                for cycle in cycles {
                    self.report_cycle(&cycle, &steps, diag);
                }
                None
            }
        };
        let mut typed = Vec::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            typed.push(self.inputs(i, step, &steps, &index, &deps, diag));
        }
        let result_step = self.result_step(raw.result_step, &steps, &deps, order.is_some(), diag);
        let mut by_index: Vec<Option<StepConfig>> = typed;
        let ordered = order?
            .into_iter()
            .map(|i| by_index.get_mut(i).and_then(Option::take))
            .collect::<Option<Vec<_>>>()?;
        Some(WorkflowConfig {
            task_type: self.task_type.to_owned(),
            description: raw.description,
            steps: ordered,
            result_step: result_step?,
        })
    }

    /// Checks the step's agent and `depends_on`; returns the known dependencies.
    fn references(
        &self,
        step: &Step,
        index: &BTreeMap<String, usize>,
        diag: &mut Diagnostics,
    ) -> Vec<usize> {
        let Some(raw) = &step.raw else {
            return Vec::new();
        };
        let path = self.path.child("steps").child(&step.name);
        if !self.known_agents.contains(raw.agent.as_str()) {
            let names = self
                .known_agents
                .iter()
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            let msg = format!("unknown agent `{}` (known: {names})", raw.agent);
            diag.at(codes::UNKNOWN_REFERENCE, &path.child("agent"), msg);
        }
        let mut deps = Vec::new();
        for (k, dep) in raw.depends_on.iter().enumerate() {
            let at = path.child("depends_on").child(k.to_string());
            match index.get(dep) {
                None => diag.at(
                    codes::UNKNOWN_REFERENCE,
                    &at,
                    format!("unknown step `{dep}`"),
                ),
                Some(j) if deps.contains(j) => {
                    diag.invalid(&at, format!("`{dep}` is listed twice"))
                }
                Some(&j) => deps.push(j),
            }
        }
        deps
    }

    fn report_cycle(&self, cycle: &[usize], steps: &[Step], diag: &mut Diagnostics) {
        let mut names: Vec<&str> = cycle.iter().map(|&i| steps[i].name.as_str()).collect();
        let first = names.first().copied().unwrap_or_default();
        names.push(first);
        let at = self.path.child("steps").child(first).child("depends_on");
        let msg = format!(
            "steps depend on each other in a cycle: {}",
            names.join(" -> ")
        );
        diag.at(codes::CYCLE, &at, msg);
    }

    /// Resolves the step's input mapping, checking each source against the graph and the
    /// agents' contracts. `None` when anything is wrong.
    fn inputs(
        &self,
        i: usize,
        step: &Step,
        steps: &[Step],
        index: &BTreeMap<String, usize>,
        deps: &[Vec<usize>],
        diag: &mut Diagnostics,
    ) -> Option<StepConfig> {
        let raw = step.raw.as_ref()?;
        let path = self.path.child("steps").child(&step.name).child("inputs");
        let before = diag.errors.len();
        let upstream = upstream(deps, i);
        let mut inputs = BTreeMap::new();
        for (field, text) in &raw.inputs {
            let at = path.child(field);
            let source = match parse_source(text) {
                Ok(s) => s,
                Err(msg) => {
                    diag.invalid(&at, msg);
                    continue;
                }
            };
            if let InputSource::StepOutput {
                step: from,
                field: out,
            } = &source
            {
                self.check_step_source(
                    &at,
                    &step.name,
                    from,
                    out.as_deref(),
                    steps,
                    index,
                    &upstream,
                    diag,
                );
            }
            inputs.insert(field.clone(), source);
        }
        if let Some(input) = self.agents.get(&raw.agent).and_then(|c| c.input.as_ref()) {
            check_against_input_contract(&path, &raw.agent, &input.schema, &inputs, diag);
        }
        (diag.errors.len() == before).then(|| StepConfig {
            name: StepId::from(step.name.as_str()),
            agent: AgentId::from(raw.agent.as_str()),
            depends_on: raw.depends_on.clone(),
            inputs,
        })
    }

    #[expect(clippy::too_many_arguments, reason = "one check, its whole context")]
    fn check_step_source(
        &self,
        at: &KeyPath,
        step: &str,
        from: &str,
        field: Option<&str>,
        steps: &[Step],
        index: &BTreeMap<String, usize>,
        upstream: &BTreeSet<usize>,
        diag: &mut Diagnostics,
    ) {
        let Some(&j) = index.get(from) else {
            diag.at(
                codes::UNKNOWN_REFERENCE,
                at,
                format!("unknown step `{from}`"),
            );
            return;
        };
        if !upstream.contains(&j) {
            let msg = format!(
                "step `{from}` is not upstream of `{step}`: add it to `depends_on` (directly or through another step)"
            );
            diag.invalid(at, msg);
            return;
        }
        let from_agent = steps[j].raw.as_ref().map(|r| r.agent.as_str());
        let output = from_agent.and_then(|a| self.agents.get(a)?.output.as_ref());
        if let (Some(field), Some(agent), Some(output)) = (field, from_agent, output) {
            let schema = &output.schema;
            if closed(schema) && !properties(schema).contains(field) {
                let msg = format!(
                    "the output contract of agent `{agent}` (step `{from}`) has no field `{field}`"
                );
                diag.at(codes::UNKNOWN_REFERENCE, at, msg);
            }
        }
    }

    /// The declared result step, or else the single step nothing depends on.
    fn result_step(
        &self,
        declared: Option<String>,
        steps: &[Step],
        deps: &[Vec<usize>],
        acyclic: bool,
        diag: &mut Diagnostics,
    ) -> Option<String> {
        if let Some(name) = declared {
            if steps.iter().any(|s| s.name == name) {
                return Some(name);
            }
            diag.at(
                codes::UNKNOWN_REFERENCE,
                &self.path.child("result_step"),
                format!("unknown step `{name}`"),
            );
            return None;
        }
        let depended: BTreeSet<usize> = deps.iter().flatten().copied().collect();
        let sinks: Vec<&str> = (0..steps.len())
            .filter(|i| !depended.contains(i))
            .map(|i| steps[i].name.as_str())
            .collect();
        match sinks.as_slice() {
            [one] => Some((*one).to_owned()),
            _ if !acyclic => None,
            many => {
                let msg = format!(
                    "several steps have no dependants ({}): set `result_step`",
                    many.join(", ")
                );
                diag.invalid(&self.path.child("result_step"), msg);
                None
            }
        }
    }
}

/// Mapped fields must be accepted by the agent's input contract, and its required fields mapped.
fn check_against_input_contract(
    path: &KeyPath,
    agent: &str,
    schema: &Json,
    inputs: &BTreeMap<String, InputSource>,
    diag: &mut Diagnostics,
) {
    let props = properties(schema);
    if closed(schema) {
        for field in inputs.keys().filter(|f| !props.contains(f.as_str())) {
            let msg = format!("the input contract of agent `{agent}` does not accept `{field}`");
            diag.invalid(&path.child(field), msg);
        }
    }
    let required = schema
        .get("required")
        .and_then(Json::as_array)
        .into_iter()
        .flatten();
    for field in required
        .filter_map(Json::as_str)
        .filter(|f| !inputs.contains_key(*f))
    {
        let msg = format!(
            "the input contract of agent `{agent}` requires `{field}`, which is not mapped"
        );
        diag.invalid(path, msg);
    }
}

fn properties(schema: &Json) -> BTreeSet<&str> {
    let props = schema.get("properties").and_then(Json::as_object);
    props
        .into_iter()
        .flat_map(|p| p.keys().map(String::as_str))
        .collect()
}

/// Whether the schema refuses fields it does not list.
fn closed(schema: &Json) -> bool {
    schema.get("additionalProperties") == Some(&Json::Bool(false))
}

/// Parses an input source such as `task.title` or `steps.research.output.findings`.
pub(crate) fn parse_source(text: &str) -> Result<InputSource, String> {
    let bad = || {
        format!(
            "invalid input source `{text}`: expected task.title, task.description, task.parameters, \
             task.parameters.<name>, steps.<step>.output or steps.<step>.output.<field>"
        )
    };
    let simple = |s: &str| !s.is_empty() && !s.contains('.');
    match text.trim() {
        "task.title" => Ok(InputSource::TaskTitle),
        "task.description" => Ok(InputSource::TaskDescription),
        "task.parameters" => Ok(InputSource::TaskParameters),
        t => {
            if let Some(name) = t.strip_prefix("task.parameters.") {
                return simple(name)
                    .then(|| InputSource::TaskParameter {
                        name: name.to_owned(),
                    })
                    .ok_or_else(bad);
            }
            let (step, tail) = t
                .strip_prefix("steps.")
                .and_then(|r| r.split_once('.'))
                .ok_or_else(bad)?;
            if !simple(step) {
                return Err(bad());
            }
            let field = match tail {
                "output" => None,
                _ => Some(
                    tail.strip_prefix("output.")
                        .filter(|f| simple(f))
                        .ok_or_else(bad)?
                        .to_owned(),
                ),
            };
            Ok(InputSource::StepOutput {
                step: step.to_owned(),
                field,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_source_form() {
        assert_eq!(parse_source("task.title"), Ok(InputSource::TaskTitle));
        assert_eq!(
            parse_source("task.description"),
            Ok(InputSource::TaskDescription)
        );
        assert_eq!(
            parse_source("task.parameters"),
            Ok(InputSource::TaskParameters)
        );
        assert_eq!(
            parse_source("task.parameters.lang"),
            Ok(InputSource::TaskParameter {
                name: "lang".into()
            })
        );
        let whole = InputSource::StepOutput {
            step: "research".into(),
            field: None,
        };
        assert_eq!(parse_source("steps.research.output"), Ok(whole));
        let one = InputSource::StepOutput {
            step: "research".into(),
            field: Some("findings".into()),
        };
        assert_eq!(parse_source("steps.research.output.findings"), Ok(one));
    }

    #[test]
    fn rejects_malformed_sources() {
        for bad in [
            "task",
            "task.titles",
            "task.parameters.",
            "task.parameters.a.b",
            "steps.x",
            "steps.x.outputs",
            "steps.x.output.",
            "steps..output",
            "steps.x.output.a.b",
            "research.output",
        ] {
            assert!(parse_source(bad).is_err(), "{bad}");
        }
    }
}
