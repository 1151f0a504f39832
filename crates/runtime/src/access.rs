//! Authorization of API operations by policy (`data.amas.api.decision`, `policies/api.rego`):
//! who may read, list, stream, submit, cancel, approve, read audit data. The API asks once per
//! request, after it has found the object (another tenant's object is never found, so its
//! existence does not leak), passing the object's tenant and owner as `resource`.

use std::time::Instant;

use serde_json::{Value, json};

use amas_governance::gate::counted_decision;
use amas_policy::DecisionPoint;
use amas_store::AuditRecord;
use amas_store::audit::AuditDecision;
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
    /// The policy engine is the one behind the tool gate; the decision is counted like every
    /// other (`amas_policy_decisions_total{point="api"}`, `amas_governance_decisions_total`).
    ///
    /// A refusal is a security event: it is audited (who, which operation, the policy's
    /// reasons), never with the request's token or body.
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`] with the policy's reasons.
    pub async fn authorize_api(
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
            let reasons = "no policy is configured".to_owned();
            self.audit_api_refusal(principal, operation, resource, &reasons, None)
                .await;
            return Err(refused(reasons));
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
        let decision = counted_decision(
            policy.as_ref(),
            &self.inner.metrics,
            DecisionPoint::Api,
            &input,
        );
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
            return Ok(());
        }
        let reasons = decision.reasons.join("; ");
        self.audit_api_refusal(
            principal,
            operation,
            resource,
            &reasons,
            Some(&decision.bundle_hash),
        )
        .await;
        Err(refused(reasons))
    }

    /// Audits a request for another tenant's object (answered 404, as if it did not exist):
    /// a security event naming the caller, the operation and the object's id, never the other
    /// tenant.
    pub async fn cross_tenant_attempt(&self, principal: &Principal, operation: &str, object: &str) {
        self.inner
            .metrics
            .governance_decisions
            .get_or_create(&DecisionLabels {
                stage: "tenant_isolation".to_owned(),
                outcome: "deny".to_owned(),
            })
            .inc();
        let record = security_record(principal, "tenant_isolation", operation)
            .with_resource(object.to_owned())
            .with_reason(
                "the object belongs to another tenant; answered as not found (AMAS-API-0002)",
            );
        self.audit(record).await;
    }

    async fn audit_api_refusal(
        &self,
        principal: &Principal,
        operation: &str,
        resource: Option<ApiResource<'_>>,
        reasons: &str,
        bundle: Option<&str>,
    ) {
        let mut record = security_record(principal, "api_policy", operation).with_reason(reasons);
        if let Some(hash) = bundle {
            record = record.with_bundle(hash);
        }
        if let Some(r) = resource {
            record = record.with_details(json!({"owner": r.owner}));
        }
        self.audit(record).await;
    }
}

/// A denied-request audit record in the caller's trace.
fn security_record(principal: &Principal, stage: &str, action: &str) -> AuditRecord {
    let mut record = AuditRecord::new(principal, stage, action, AuditDecision::Deny);
    if let Some(trace) = amas_telemetry::current_trace_id() {
        record = record.with_trace_id(trace);
    }
    record
}
