//! Lineage: where each payload of a task came from (task input, upstream step outputs, tool
//! results) and how sensitive it is. One [`LineageNode`] per payload, journaled as
//! `lineage_recorded`; the edges are each node's `inputs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::DataLabels;
use crate::ids::{CallId, StepId};

/// Which payload a node stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// The task as submitted: title, description, parameters.
    Input,
    /// A step's output.
    Step,
    /// A tool call's result inside a step.
    Tool,
    /// The task's final result.
    Result,
}

/// One payload of a task, its classification and why it has it. Never holds the payload or any
/// detected value: only finding types and counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageNode {
    /// `input`, `step:<name>`, `tool:<step>:<call id>` or `result`.
    pub id: String,
    pub kind: NodeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
    /// The effective classification: the highest level and all tags of the node's inputs, its
    /// own findings and any declared floor.
    pub labels: DataLabels,
    /// What was detected in this node's own payload: finding type -> count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<String, u32>,
    /// The floor the submitter declared (task input only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<DataLabels>,
    /// The ids of the nodes this one was derived from (the edges of the graph).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
}

impl LineageNode {
    /// The id of the task input node.
    pub const INPUT: &'static str = "input";
    /// The id of the final result node.
    pub const RESULT: &'static str = "result";

    #[must_use]
    pub fn step_id(step: &str) -> String {
        format!("step:{step}")
    }

    #[must_use]
    pub fn tool_id(step: &StepId, call_id: &CallId) -> String {
        format!("tool:{step}:{call_id}")
    }
}
