//! Authorization of API operations by policy (`data.amas.api.decision`, `policies/api.rego`):
//! who may read, list, stream, submit, cancel, approve, read audit data. The API asks once per
//! request, after it has found the object (another tenant's object is never found, so its
//! existence does not leak), passing the object's tenant and owner as `resource`.

use std::time::Instant;

use serde_json::{Value, json};

use amas_policy::DecisionPoint;
use amas_telemetry::metrics::DecisionLabels;
use amas_types::{Principal, TenantId};

use crate::{Runtime, RuntimeError};

/// The object an operation targets: its tenant and owner (the submitter of a task, the
/// requester of an approval).
#[derive(Clone, Copy, Debug)]
pub struct ApiResource<'a> {
    pub tenant: &'a TenantId,
    pub owner: &'a str,
}

impl Runtime {
    /// Whether `principal` may perform API `operation` (e.g. `task.read`) on `resource`.
    /// Fails closed: without a policy engine, or on a policy error, the answer is no.
    ///
    /// `ToolGate::authorize_api` cannot carry a resource, which the cross-tenant and ownership
    /// rules need, so the decision is asked of the same policy engine directly.
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`] with the policy's reasons.
    pub fn authorize_api(
        &self,
        principal: &Principal,
        operation: &str,
        resource: Option<ApiResource<'_>>,
    ) -> Result<(), RuntimeError> {
        let refused = |reasons: String| RuntimeError::Forbidden {
            operation: operation.to_owned(),
            reasons,
        };
        let Some(policy) = &self.inner.policy else {
            return Err(refused("no policy is configured".to_owned()));
        };
        let started = Instant::now();
        let mut input = json!({
            "principal": {
                "sub": principal.sub,
                "roles": principal.roles,
                "tenant": principal.tenant.0,
            },
            "action": {"kind": "api", "name": operation},
        });
        if let Some(env) = self
            .inner
            .tools
            .as_ref()
            .map(|(gate, _)| gate.environment())
        {
            input["environment"] = Value::from(env);
        }
        if let Some(r) = resource {
            input["resource"] = json!({"tenant": r.tenant.0, "owner": r.owner});
        }
        let decision = policy.decide(DecisionPoint::Api, &input);
        let metrics = &self.inner.metrics;
        metrics
            .governance_decisions
            .get_or_create(&DecisionLabels {
                stage: "api_policy".to_owned(),
                outcome: if decision.allow { "allow" } else { "deny" }.to_owned(),
            })
            .inc();
        metrics
            .governance_duration
            .observe(started.elapsed().as_secs_f64());
        if decision.allow {
            Ok(())
        } else {
            Err(refused(decision.reasons.join("; ")))
        }
    }
}
