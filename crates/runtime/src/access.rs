//! The access service: governance at the edge of the runtime, for every request that arrives
//! with a principal. It authorizes API operations by policy (`data.amas.api.decision`,
//! `policies/api.rego`), audits security events (a failed authentication, a rate limit, a
//! cross-tenant attempt, a policy change), releases payloads to readers at their clearance
//! (`clearance.rs`), and owns the audit trail outside tasks (queue, flush, close). The
//! question, its count and its audit record are the pipeline's (`pipeline::entry`).
//!
//! The API asks once per request, after it has found the object (another tenant's object is
//! never found, so its existence does not leak), passing the object's tenant and owner as
//! `resource`.

use std::sync::Arc;

use tracing::{error, warn};

use amas_config::AmasConfig;
use amas_dataprotect::DataProtector;
use amas_governance::pipeline::{Pipeline, entry};
use amas_governance::pipeline::{SecurityEvent, audit::security_record};
use amas_store::AuditWriter;
use amas_telemetry::Metrics;
use amas_types::Principal;

pub use amas_governance::pipeline::ApiResource;

use crate::RuntimeError;

/// Authorization of API operations, security events, release to readers and the audit trail
/// outside tasks. Shared (`Arc`) by the services that answer principals.
pub struct Access {
    pub(crate) config: Arc<AmasConfig>,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) metrics: Metrics,
    pub(crate) protector: Arc<DataProtector>,
    /// The store's one writer (audit records commit with the journal's appends).
    pub(crate) audit: Arc<AuditWriter>,
}

impl Access {
    /// Whether `principal` may perform API `operation` (e.g. `task.read`) on `resource`.
    /// Fails closed: on a policy error the answer is no. A refusal
    /// is audited (who, which operation, the policy's reasons), never with the request's token
    /// or body.
    ///
    /// # Errors
    /// [`RuntimeError::Forbidden`] with the policy's reasons.
    pub async fn authorize_api(
        &self,
        principal: &Principal,
        operation: &str,
        resource: Option<ApiResource<'_>>,
    ) -> Result<(), RuntimeError> {
        let decided = entry::api_operation(
            self.pipeline.policy().as_ref(),
            self.pipeline.environment(),
            &self.metrics,
            principal,
            operation,
            resource,
        );
        match decided {
            Ok(_) => Ok(()),
            Err(refused) => {
                let (decision, record) = *refused;
                self.audit(record).await;
                Err(RuntimeError::Forbidden {
                    operation: operation.to_owned(),
                    reasons: decision.reasons.join("; "),
                })
            }
        }
    }

    /// Audits a request for another tenant's object (answered 404, as if it did not exist):
    /// a security event naming the caller, the operation and the object's id, never the other
    /// tenant.
    pub async fn cross_tenant_attempt(&self, principal: &Principal, operation: &str, object: &str) {
        let record = security_record(
            &self.metrics,
            principal,
            SecurityEvent::CrossTenant { operation, object },
        );
        self.audit(record).await;
    }

    /// The pipeline's record of a security event, for callers that write it later (a policy
    /// reload callback).
    #[must_use]
    pub fn security_record(
        &self,
        principal: &Principal,
        event: SecurityEvent<'_>,
    ) -> amas_store::AuditRecord {
        security_record(&self.metrics, principal, event)
    }

    /// Audits a security event outside a governed action (a failed authentication, a rate
    /// limit, a configuration or policy change): the pipeline builds and counts the record.
    pub async fn security_event(&self, principal: &Principal, event: SecurityEvent<'_>) {
        let record = security_record(&self.metrics, principal, event);
        self.audit(record).await;
    }

    /// Queues one record in the audit log (waits only while its queue is full; never drops).
    /// For security events outside tasks, such as failed logins.
    pub async fn audit(&self, record: amas_store::AuditRecord) {
        if let Err(e) = self.audit.record(record).await {
            warn!(error = %e, "An audit record was refused.");
        }
    }

    /// Commits every audit record queued so far and signs a checkpoint; returns once they are
    /// durable (for readers of the log that must see them, such as an export or a test).
    ///
    /// # Errors
    /// The writer's error when it is shut down or its store fails.
    pub async fn flush_audit(&self) -> Result<(), amas_store::audit::AuditError> {
        self.audit.flush().await.map(drop)
    }

    /// Writes every audit record still queued and signs a final checkpoint (at shutdown, after
    /// the scheduler has drained).
    pub async fn close_audit(&self) {
        if let Err(e) = self.audit.shutdown().await {
            error!(error = %e, "Could not close the audit log cleanly.");
        }
    }
}
