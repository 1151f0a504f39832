//! Records, keys and small helpers the audit checks build on.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use serde_json::json;

use amas_types::{Principal, TaskId, TenantId};

use crate::StoreError;
use crate::audit::{
    AuditDecision, AuditLog, AuditRecord, Checkpoint, Ed25519Signer, StoredAuditRecord,
};

/// A fixed Ed25519 key, so failures reproduce.
#[must_use]
pub fn test_signer() -> Ed25519Signer {
    Ed25519Signer::new(SigningKey::from_bytes(&[7; 32]), "test-key")
}

/// Another key: what a forger without the server's key would sign with.
pub(crate) fn forger() -> Ed25519Signer {
    Ed25519Signer::new(SigningKey::from_bytes(&[9; 32]), "test-key")
}

pub(crate) fn principal(sub: &str, tenant: &str) -> Principal {
    Principal {
        sub: sub.to_owned(),
        roles: vec!["submitter".to_owned(), "auditor".to_owned()],
        tenant: TenantId(tenant.to_owned()),
        auth_method: "local_jwt".to_owned(),
        issuer: "amas-local".to_owned(),
    }
}

/// Record number `i` with every optional field set (so any column can be tampered with), and
/// text that is awkward to encode.
pub(crate) fn full_record(i: u64, task: TaskId) -> AuditRecord {
    let decision = AuditDecision::ALL[usize::try_from(i).unwrap_or(0) % AuditDecision::ALL.len()];
    AuditRecord::new(
        &principal(if i.is_multiple_of(2) { "alice" } else { "bob" }, "acme"),
        "authorize",
        "tool_call",
        decision,
    )
    .with_reason(format!("rule {i} \u{e9}\"\\\n"))
    .with_reason("second")
    .with_agent("researcher")
    .with_task(task)
    .with_step(format!("step-{i}"))
    .with_trace_id(format!("{i:032x}"))
    .with_resource("tool:http_fetch")
    .with_policy("2024.1", "sha256:abcd")
    .with_classification("confidential+PII")
    .with_duration(std::time::Duration::from_micros(1000 + i))
    .with_tokens(100 + i, 20 + i)
    .with_cost_micros(31 * i + 1)
    .with_details(json!({
        "args_sha256": crate::audit::hash_payload(format!("args {i}").as_bytes()),
        "nested": {"z": 1, "a": [1.5, null, "x"]},
        "nul": "a\u{0}b",
    }))
}

/// Appends `n` full records in batches of `batch`; returns them as stored.
pub(crate) async fn append_n(
    log: &dyn AuditLog,
    n: u64,
    batch: usize,
) -> Result<Vec<StoredAuditRecord>, StoreError> {
    let task = TaskId::new();
    let records: Vec<AuditRecord> = (1..=n).map(|i| full_record(i, task)).collect();
    let mut out = Vec::new();
    for chunk in records.chunks(batch.max(1)) {
        out.extend(log.append(chunk).await?);
    }
    Ok(out)
}

/// Signs and stores a checkpoint at `rec`.
pub(crate) async fn checkpoint_at(
    log: &dyn AuditLog,
    rec: &StoredAuditRecord,
) -> Result<(), crate::conformance::CheckFailure> {
    let link = crate::audit::ChainLink {
        seq: rec.seq,
        hash: rec.hash.clone(),
    };
    let cp = Checkpoint::sign(&link, &test_signer())
        .map_err(|e| crate::conformance::CheckFailure(e.to_string()))?;
    log.add_checkpoint(&cp).await?;
    Ok(())
}

/// Signs a checkpoint (with its tree root) at the log's head as it now is: what someone with
/// the audit key does after rewriting the log.
pub(crate) async fn resign(
    log: &dyn AuditLog,
    signer: &Ed25519Signer,
) -> Result<(), crate::conformance::CheckFailure> {
    let fail = |what: &str| crate::conformance::CheckFailure(what.to_owned());
    let head = log.head().await?.ok_or_else(|| fail("an empty log"))?;
    let mut tree = crate::audit::merkle::Frontier::default();
    for link in log.links(1, head.seq, u32::MAX).await? {
        tree.push(crate::audit::merkle::leaf(&link.hash).ok_or_else(|| fail("a bad hash"))?);
    }
    let root = crate::audit::merkle::to_hex(&tree.root());
    let cp = Checkpoint::sign_tree(&head, &root, signer)
        .map_err(|e| crate::conformance::CheckFailure(e.to_string()))?;
    log.add_checkpoint(&cp).await?;
    Ok(())
}

pub(crate) fn shared<S: AuditLog + 'static>(store: &Arc<S>) -> Arc<dyn AuditLog> {
    store.clone()
}
