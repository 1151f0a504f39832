//! Lineage and classification of a task's payloads: the task input (with the submitter's
//! declared floor), each step output (inheriting from its inputs and tool results), each tool
//! result and the final result. Nodes are journaled as `lineage_recorded` before anything that
//! depends on them is recorded as done, so the graph survives restarts and purges.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use amas_config::{InputSource, WorkflowConfig};
use amas_dataprotect::{Classification, DataProtector, Level, Tag, Tags, TenantKey};
use amas_types::{
    CallId, DataLabels, LineageNode, NodeKind, StepId, TaskSpec, TaskState, ToolOutcome,
};

/// What the classifier saw in one payload: its classification and finding counts by type.
struct Seen {
    class: Classification,
    findings: BTreeMap<String, u32>,
}

/// Scans a JSON payload. One that cannot be scanned (too large or too deep) is classified
/// `restricted`: fail closed, never public by accident.
fn scan(protector: &DataProtector, value: &Value) -> Seen {
    // The redacted copy is discarded; the key only shapes hash tokens nobody sees.
    match protector.redact_json(value, &TenantKey::new(b"lineage".to_vec())) {
        Ok(out) => {
            let mut findings = BTreeMap::new();
            for f in &out.findings {
                *findings
                    .entry(f.finding.kind.name().to_owned())
                    .or_insert(0) += 1;
            }
            Seen {
                class: out.classification,
                findings,
            }
        }
        Err(_) => Seen {
            class: Classification::new(Level::Restricted, Tags::EMPTY),
            findings: BTreeMap::from([("unscannable".to_owned(), 1)]),
        },
    }
}

/// The journal form of a classification.
#[must_use]
pub(crate) fn labels(class: Classification) -> DataLabels {
    DataLabels {
        classification: class.level.name().to_owned(),
        tags: class.tags.iter().map(|t| t.name().to_owned()).collect(),
        redacted: None,
    }
}

/// A classification as journaled. An unknown level reads as `restricted` (fail closed); an
/// unknown tag is dropped.
#[must_use]
pub(crate) fn from_labels(labels: &DataLabels) -> Classification {
    let level = parse_level(&labels.classification).unwrap_or(Level::Restricted);
    let tags = labels.tags.iter().filter_map(|t| parse_tag(t)).collect();
    Classification::new(level, tags)
}

#[must_use]
pub fn parse_level(text: &str) -> Option<Level> {
    [
        Level::Public,
        Level::Internal,
        Level::Confidential,
        Level::Restricted,
    ]
    .into_iter()
    .find(|l| l.name() == text)
}

#[must_use]
pub fn parse_tag(text: &str) -> Option<Tag> {
    Tag::ALL.into_iter().find(|t| t.name() == text)
}

/// The task input node: title, description and parameters scanned, raised to the declared
/// floor (level and tags).
pub(crate) fn input_node(
    protector: &DataProtector,
    spec: &TaskSpec,
    declared: Option<Classification>,
) -> LineageNode {
    let doc = serde_json::json!({
        "title": spec.title,
        "description": spec.description,
        "parameters": spec.parameters,
    });
    let seen = scan(protector, &doc);
    let class = declared.map_or(seen.class, |d| seen.class.max(d));
    LineageNode {
        id: LineageNode::INPUT.to_owned(),
        kind: NodeKind::Input,
        step: None,
        call_id: None,
        labels: labels(class),
        findings: seen.findings,
        declared: declared.map(labels),
        inputs: Vec::new(),
    }
}

/// The nodes still missing from `state.lineage` for succeeded steps (their tool results, then
/// the step), dependencies first, and the result node when `result` is given. A journal written
/// before lineage existed gets its input node here, without a declared floor.
pub(crate) fn missing_nodes(
    protector: &DataProtector,
    workflow: &WorkflowConfig,
    state: &TaskState,
    result: Option<&Value>,
) -> Vec<LineageNode> {
    let mut known: BTreeMap<String, LineageNode> = state.lineage.clone();
    let mut out = Vec::new();
    let mut add = |node: LineageNode, known: &mut BTreeMap<String, LineageNode>| {
        known.insert(node.id.clone(), node.clone());
        out.push(node);
    };
    if !known.contains_key(LineageNode::INPUT) {
        add(input_node(protector, &state.spec, None), &mut known);
    }
    // Steps in dependency order: each pass adds the steps whose upstreams are known.
    let mut pending: Vec<_> = workflow
        .steps
        .iter()
        .filter(|s| {
            state
                .steps
                .get(&s.name)
                .is_some_and(|st| st.status == amas_types::StepStatus::Succeeded)
                && !known.contains_key(&LineageNode::step_id(&s.name))
        })
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|step| {
            let ready = step
                .depends_on
                .iter()
                .all(|d| known.contains_key(&LineageNode::step_id(d)));
            if !ready {
                return true;
            }
            let Some(st) = state.steps.get(&step.name) else {
                return false;
            };
            let mut inputs: BTreeSet<String> = BTreeSet::new();
            for source in step.inputs.values() {
                match source {
                    InputSource::StepOutput { step: up, .. } => {
                        inputs.insert(LineageNode::step_id(up));
                    }
                    InputSource::TaskTitle
                    | InputSource::TaskDescription
                    | InputSource::TaskParameters
                    | InputSource::TaskParameter { .. } => {
                        inputs.insert(LineageNode::INPUT.to_owned());
                    }
                }
            }
            let mut class = Classification::union(
                inputs
                    .iter()
                    .filter_map(|id| known.get(id))
                    .map(|n| from_labels(&n.labels)),
            );
            let mut edges: Vec<String> = inputs.into_iter().collect();
            for (call_id, outcome) in &st.tools {
                if let ToolOutcome::Completed(output) = outcome {
                    let seen = scan(protector, output);
                    let node = LineageNode {
                        id: LineageNode::tool_id(&step.name, call_id),
                        kind: NodeKind::Tool,
                        step: Some(step.name.clone()),
                        call_id: Some(call_id.clone()),
                        labels: labels(seen.class),
                        findings: seen.findings,
                        declared: None,
                        inputs: Vec::new(),
                    };
                    class = class.max(seen.class);
                    edges.push(node.id.clone());
                    add(node, &mut known);
                }
            }
            let own = scan(protector, st.output.as_ref().unwrap_or(&Value::Null));
            let node = LineageNode {
                id: LineageNode::step_id(&step.name),
                kind: NodeKind::Step,
                step: Some(step.name.clone()),
                call_id: None,
                labels: labels(class.max(own.class)),
                findings: own.findings,
                declared: None,
                inputs: edges,
            };
            add(node, &mut known);
            false
        });
        if pending.len() == before {
            // An upstream that never succeeded: leave these steps unclassified.
            break;
        }
    }
    if let Some(result) = result
        && !known.contains_key(LineageNode::RESULT)
    {
        let from = LineageNode::step_id(&workflow.result_step);
        let step_output = state
            .steps
            .get(workflow.result_step.as_str())
            .and_then(|st| st.output.as_ref());
        // The result is the result step's output: its node already holds that scan and
        // everything upstream, so it is not scanned again.
        let (result_labels, findings) = match known.get(&from) {
            Some(node) if step_output == Some(result) => {
                (node.labels.clone(), node.findings.clone())
            }
            upstream => {
                let upstream = upstream.map_or(Classification::PUBLIC, |n| from_labels(&n.labels));
                let own = scan(protector, result);
                (labels(upstream.max(own.class)), own.findings)
            }
        };
        add(
            LineageNode {
                id: LineageNode::RESULT.to_owned(),
                kind: NodeKind::Result,
                step: None,
                call_id: None,
                labels: result_labels,
                findings,
                declared: None,
                inputs: vec![from],
            },
            &mut known,
        );
    }
    out
}

/// A floor a submitter declared was refused: which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FloorError {
    /// `classification.level` or `classification.tags`.
    pub field: &'static str,
    pub message: String,
}

/// Checks a declared classification floor (`level` and `tags` as names).
///
/// # Errors
/// [`FloorError`] naming the field, for an unknown level or tag.
pub fn declared_floor(level: &str, tags: &[String]) -> Result<Classification, FloorError> {
    let level = parse_level(level).ok_or_else(|| FloorError {
        field: "classification.level",
        message: format!(
            "unknown level `{}`: use one of public, internal, confidential, restricted",
            level.chars().take(40).collect::<String>()
        ),
    })?;
    let mut set = Tags::EMPTY;
    for tag in tags {
        let t = parse_tag(tag).ok_or_else(|| FloorError {
            field: "classification.tags",
            message: format!(
                "unknown tag `{}`: use PII, PHI, PCI or SECRET",
                tag.chars().take(40).collect::<String>()
            ),
        })?;
        set = set.with(t);
    }
    Ok(Classification::new(level, set))
}

/// A task's lineage graph as the API shows it: nodes with their classification and why, and
/// edges from each input to what was derived from it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LineageGraph {
    pub task_id: String,
    /// The final result's classification, once the task has one.
    pub classification: Option<DataLabels>,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphNode {
    pub id: String,
    pub kind: NodeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
    pub level: String,
    pub tags: Vec<String>,
    pub why: Why,
}

/// Why a node has its classification: its own findings (types and counts, never values), the
/// declared floor, and the inputs it inherits from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Why {
    pub findings: BTreeMap<String, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<DataLabels>,
    pub inherited_from: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
}

/// The graph of a folded task: input first, then steps and tools, the result last.
#[must_use]
pub fn graph(state: &TaskState) -> LineageGraph {
    let mut nodes: Vec<&LineageNode> = state.lineage.values().collect();
    nodes.sort_by_key(|n| match n.kind {
        NodeKind::Input => 0,
        NodeKind::Result => 2,
        NodeKind::Step | NodeKind::Tool => 1,
    });
    let edges = nodes
        .iter()
        .flat_map(|n| {
            n.inputs.iter().map(|from| GraphEdge {
                from: from.clone(),
                to: n.id.clone(),
            })
        })
        .collect();
    LineageGraph {
        task_id: state.id.to_string(),
        classification: state.classification.clone(),
        nodes: nodes
            .into_iter()
            .map(|n| GraphNode {
                id: n.id.clone(),
                kind: n.kind,
                step: n.step.clone(),
                call_id: n.call_id.clone(),
                level: n.labels.classification.clone(),
                tags: n.labels.tags.clone(),
                why: Why {
                    findings: n.findings.clone(),
                    declared: n.declared.clone(),
                    inherited_from: n.inputs.clone(),
                },
            })
            .collect(),
        edges,
    }
}
