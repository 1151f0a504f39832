//! Clearance: before a task payload leaves AMAS for a principal (the task view, the journal,
//! the live event stream, the listing), any payload above the principal's clearance
//! (`clearance.roles` in the configuration) is redacted with the data protector. A payload's
//! level is the higher of its recorded lineage node's level and what a scan of the payload finds
//! now, so a payload without a node is still judged. A payload that cannot be scanned (too large,
//! too deep) is withheld, not shown: fail closed.

use std::collections::BTreeMap;

use serde_json::Value;

use amas_dataprotect::{DataProtector, Level, TenantKey};
use amas_types::{LineageNode, Principal, StepId, TaskId, TaskState};

use crate::access::Access;
use crate::lineage::{from_labels, parse_level};

/// What replaces a payload above clearance that could not be scanned.
pub const WITHHELD: &str = "[withheld: above clearance]";

/// What a release did, for the response marker and the audit record. Never holds values.
#[derive(Debug, Default, Clone)]
pub struct Released {
    /// Payloads that were above clearance, by name (`title`, `steps.<name>.output`, `event`).
    pub fields: Vec<String>,
    /// Finding types redacted, with counts.
    pub findings: BTreeMap<String, u32>,
    /// The highest level of a payload above clearance.
    pub level: Option<Level>,
}

impl Released {
    /// Whether anything was above clearance (and so went through redaction).
    #[must_use]
    pub fn redacted(&self) -> bool {
        !self.fields.is_empty()
    }

    /// Adds another release (e.g. of one more event) to this one.
    pub fn merge(&mut self, other: Self) {
        self.fields.extend(other.fields);
        for (k, n) in other.findings {
            *self.findings.entry(k).or_default() += n;
        }
        self.level = self.level.max(other.level);
    }
}

/// Redacts payloads above one principal's clearance. Built per request by
/// [`Access::outbound`].
pub struct Outbound<'a> {
    protector: &'a DataProtector,
    key: TenantKey,
    clearance: Level,
}

impl Outbound<'_> {
    /// The principal's clearance.
    #[must_use]
    pub fn clearance(&self) -> Level {
        self.clearance
    }

    /// Redacts `value` in place when the higher of `floor` and its own scan is above clearance.
    pub fn value(&self, field: &str, floor: Level, value: &mut Value, out: &mut Released) {
        if self.clearance == Level::Restricted {
            return;
        }
        match self.protector.redact_json(value, &self.key) {
            Ok(red) => {
                let level = floor.max(red.classification.level);
                if level <= self.clearance {
                    return;
                }
                for f in &red.findings {
                    *out.findings
                        .entry(f.finding.kind.name().to_owned())
                        .or_default() += 1;
                }
                *value = red.redacted;
                out.fields.push(field.to_owned());
                out.level = out.level.max(Some(level));
            }
            Err(_) => {
                *value = Value::String(WITHHELD.to_owned());
                out.fields.push(field.to_owned());
                out.level = Some(Level::Restricted);
            }
        }
    }

    /// [`Outbound::value`] for text.
    pub fn text(&self, field: &str, floor: Level, text: &mut String, out: &mut Released) {
        let mut value = Value::String(std::mem::take(text));
        self.value(field, floor, &mut value, out);
        *text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
    }

    /// Redacts every payload of `state` above clearance: the input (title, description,
    /// parameters) at the input node's level, step inputs, outputs and errors at their step
    /// node's level, the result at the result node's, the task error by its scan.
    pub fn task(&self, state: &mut TaskState) -> Released {
        let mut out = Released::default();
        let node = |id: &str| {
            state
                .lineage
                .get(id)
                .map_or(Level::Public, |n| from_labels(&n.labels).level)
        };
        let input = node(LineageNode::INPUT);
        let result = node(LineageNode::RESULT);
        let steps: BTreeMap<StepId, Level> = state
            .steps
            .keys()
            .map(|s| (s.clone(), node(&LineageNode::step_id(s)).max(input)))
            .collect();
        self.text("title", input, &mut state.spec.title, &mut out);
        self.text("description", input, &mut state.spec.description, &mut out);
        let mut params = Value::Object(std::mem::take(&mut state.spec.parameters));
        self.value("parameters", input, &mut params, &mut out);
        state.spec.parameters = match params {
            Value::Object(m) => m,
            other => std::iter::once(("redacted".to_owned(), other)).collect(),
        };
        for (name, step) in &mut state.steps {
            let level = steps.get(name).copied().unwrap_or(Level::Restricted);
            if let Some(v) = &mut step.input {
                self.value(&format!("steps.{name}.input"), level, v, &mut out);
            }
            if let Some(v) = &mut step.output {
                self.value(&format!("steps.{name}.output"), level, v, &mut out);
            }
            if let Some(e) = &mut step.error {
                self.text(
                    &format!("steps.{name}.error"),
                    level,
                    &mut e.message,
                    &mut out,
                );
            }
        }
        if let Some(v) = &mut state.result {
            self.value("result", result, v, &mut out);
        }
        if let Some(e) = &mut state.error {
            self.text("error", Level::Public, &mut e.message, &mut out);
        }
        out
    }

    /// The level every event of `state` is judged at: its most sensitive lineage node (an event
    /// may carry any payload of the task).
    #[must_use]
    pub fn event_floor(state: &TaskState) -> Level {
        state
            .lineage
            .values()
            .map(|n| from_labels(&n.labels).level)
            .max()
            .unwrap_or(Level::Public)
    }
}

/// The level of a lineage node (an unknown level name counts as `restricted`).
#[must_use]
pub fn lineage_level(node: &LineageNode) -> Level {
    from_labels(&node.labels).level
}

impl Access {
    /// The clearance of `principal`: the highest level of its roles in `clearance.roles`,
    /// `public` without a listed role.
    #[must_use]
    pub fn clearance_of(&self, principal: &Principal) -> Level {
        parse_level(self.config.clearance.of(&principal.roles)).unwrap_or(Level::Public)
    }

    /// A redactor for what `principal` reads, keyed by its tenant (hash-mode tokens join within
    /// the tenant, as in tool and model-call redaction).
    #[must_use]
    pub fn outbound(&self, principal: &Principal) -> Outbound<'_> {
        let key = self.pipeline.tenant_key(&principal.tenant.0);
        Outbound {
            protector: &self.protector,
            key,
            clearance: self.clearance_of(principal),
        }
    }

    /// Audits a release that redacted something (`stage: data_protection_out`): the fields,
    /// the finding types with counts, the levels; never values.
    pub async fn audit_release(
        &self,
        principal: &Principal,
        action: &str,
        task: TaskId,
        released: &Released,
    ) {
        if !released.redacted() {
            return;
        }
        let level = released.level.unwrap_or(Level::Restricted).name();
        let clearance = self.clearance_of(principal).name();
        let fields = released.fields.len();
        let record = amas_governance::pipeline::entry::release(
            principal,
            action,
            amas_governance::pipeline::entry::Release {
                task,
                level,
                clearance,
                fields: released.fields.clone(),
                findings: &released.findings,
            },
        );
        self.audit(record).await;
        tracing::info!(
            task.id = %task,
            data.classification = level,
            principal.clearance = clearance,
            redacted.fields = fields,
            "Task payloads above the reader's clearance were redacted."
        );
    }
}
