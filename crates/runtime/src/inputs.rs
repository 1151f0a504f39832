//! Building a step's input document from the task and its upstream steps' outputs.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use amas_config::{InputSource, StepConfig};
use amas_types::{StepId, TaskSpec};

/// The step's input: one field per configured mapping. Upstream outputs must exist (the scheduler
/// only starts a step once its dependencies succeeded); a missing one maps to `null` and the
/// input contract decides.
pub(crate) fn build_input(
    step: &StepConfig,
    spec: &TaskSpec,
    outputs: &BTreeMap<StepId, Value>,
) -> Value {
    let mut doc = Map::new();
    for (field, source) in &step.inputs {
        let value = match source {
            InputSource::TaskTitle => Value::String(spec.title.clone()),
            InputSource::TaskDescription => Value::String(spec.description.clone()),
            InputSource::TaskParameters => Value::Object(spec.parameters.clone()),
            InputSource::TaskParameter { name } => {
                spec.parameters.get(name).cloned().unwrap_or(Value::Null)
            }
            InputSource::StepOutput { step, field } => {
                let output = outputs.get(step.as_str());
                match (output, field) {
                    (Some(out), None) => out.clone(),
                    (Some(out), Some(f)) => out.get(f).cloned().unwrap_or(Value::Null),
                    (None, _) => Value::Null,
                }
            }
        };
        doc.insert(field.clone(), value);
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amas_types::Priority;
    use serde_json::json;

    #[test]
    fn maps_task_fields_parameters_and_upstream_outputs() {
        let step = StepConfig {
            name: "analysis".into(),
            agent: "analysis".into(),
            depends_on: vec!["research".into()],
            inputs: BTreeMap::from([
                ("topic".into(), InputSource::TaskTitle),
                ("about".into(), InputSource::TaskDescription),
                (
                    "depth".into(),
                    InputSource::TaskParameter {
                        name: "depth".into(),
                    },
                ),
                (
                    "missing".into(),
                    InputSource::TaskParameter {
                        name: "nope".into(),
                    },
                ),
                (
                    "findings".into(),
                    InputSource::StepOutput {
                        step: "research".into(),
                        field: Some("findings".into()),
                    },
                ),
                (
                    "all".into(),
                    InputSource::StepOutput {
                        step: "research".into(),
                        field: None,
                    },
                ),
            ]),
        };
        let mut parameters = Map::new();
        parameters.insert("depth".into(), json!(2));
        let spec = TaskSpec {
            task_type: "t".into(),
            title: "Rust".into(),
            description: "why".into(),
            parameters,
            priority: Priority::DEFAULT,
        };
        let outputs = BTreeMap::from([(StepId::from("research"), json!({"findings": ["a"]}))]);
        let input = build_input(&step, &spec, &outputs);
        assert_eq!(
            input,
            json!({
                "topic": "Rust", "about": "why", "depth": 2, "missing": null,
                "findings": ["a"], "all": {"findings": ["a"]}
            })
        );
    }
}
