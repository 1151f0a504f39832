//! Checking an evidence pack offline: every line parses and comes in order, every checkpoint's
//! signature holds (with the pack's keys, or with keys the checker trusts), every record
//! hashes to its hash and is proven against its checkpoint's tree root, the records belong to
//! the pack's scope, the manifest and policy bundle lines say what the records say, and the
//! end line's digest covers every byte before it. The first problem is reported with its line.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{FORMAT, Line, Manifest, PackError, PolicyBundle, Scope, VERSION, bundles_of};
use crate::audit::checkpoint::{Checkpoint, CheckpointVerifier, Ed25519Verifier};
use crate::audit::keys::verifier_from_jwks;
use crate::audit::merkle::{self, Digest32};
use crate::audit::{StoredAuditRecord, chain};

/// What a pack proved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PackReport {
    pub scope: Scope,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub generator: String,
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub checkpoints: Vec<u64>,
    /// Whether the exporter found every checkpoint in its witness too.
    pub witnessed: bool,
    /// The key ids the checkpoints were verified with.
    pub key_ids: Vec<String>,
    /// `trusted` when the checker supplied the keys; `pack` when the pack's own keys were used
    /// (then compare `key_ids` with the ones you know).
    pub keys_from: &'static str,
    pub policy_bundles: Vec<PolicyBundle>,
}

/// Checks the pack `bytes`; with `trusted`, checkpoints must verify with those keys rather than
/// with the keys the pack carries.
///
/// # Errors
/// The first problem found, with the line it is on.
pub fn check_pack(
    bytes: &[u8],
    trusted: Option<&Ed25519Verifier>,
) -> Result<PackReport, PackError> {
    let lines = split(bytes)?;
    let parsed = lines
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_slice::<Line>(raw)
                .map_err(|e| PackError::at(i as u64 + 1, format!("not a pack line: {e}")))
        })
        .collect::<Result<Vec<Line>, PackError>>()?;
    let mut state = State::default();
    for (i, line) in parsed.into_iter().enumerate() {
        let n = i as u64 + 1;
        let last = n == lines.len() as u64;
        state.take(n, line, last, trusted)?;
    }
    state.finish(bytes, &lines, trusted.is_some())
}

/// The lines of `bytes`, each without its newline; the pack must end with one.
fn split(bytes: &[u8]) -> Result<Vec<&[u8]>, PackError> {
    let Some(body) = bytes.strip_suffix(b"\n") else {
        return Err(PackError::whole(
            "the pack does not end with a newline: it was cut off",
        ));
    };
    Ok(body.split(|b| *b == b'\n').collect())
}

#[derive(Default)]
struct State {
    manifest: Option<Manifest>,
    pack_keys: Option<Ed25519Verifier>,
    bundles: Option<(u64, Vec<PolicyBundle>)>,
    checkpoints: BTreeMap<(u64, String), (Checkpoint, Digest32, bool)>,
    records: Vec<StoredAuditRecord>,
    end: Option<(u64, String)>,
}

impl State {
    fn take(
        &mut self,
        n: u64,
        line: Line,
        last: bool,
        trusted: Option<&Ed25519Verifier>,
    ) -> Result<(), PackError> {
        let kind = kind_of(&line);
        let expected = match (n, &line) {
            (1, Line::Manifest { .. })
            | (2, Line::PublicKeys { .. })
            | (3, Line::PolicyBundles { .. }) => true,
            (4.., Line::Checkpoint { .. }) => self.records.is_empty(),
            (5.., Line::Record { .. }) => !self.checkpoints.is_empty(),
            (5.., Line::End { .. }) => last,
            _ => false,
        };
        if !expected {
            return Err(PackError::at(
                n,
                format!(
                    "a {kind} line does not belong here (the order is manifest, public_keys, \
                     policy_bundles, checkpoints, records, end): lines were moved or removed"
                ),
            ));
        }
        match line {
            Line::Manifest { manifest } => {
                if manifest.format != FORMAT || manifest.version != VERSION {
                    return Err(PackError::at(
                        n,
                        format!(
                            "not an AMAS evidence pack of version {VERSION} (format {:?}, \
                             version {})",
                            manifest.format, manifest.version
                        ),
                    ));
                }
                self.manifest = Some(manifest);
            }
            Line::PublicKeys { jwks } => {
                let keys = verifier_from_jwks(&jwks)
                    .map_err(|e| PackError::at(n, format!("the public keys: {e}")))?;
                self.pack_keys = Some(keys);
            }
            Line::PolicyBundles { bundles } => self.bundles = Some((n, bundles)),
            Line::Checkpoint {
                checkpoint,
                witnessed,
            } => self.checkpoint(n, checkpoint, witnessed, trusted)?,
            Line::Record { record, proof } => self.record(n, *record, &proof)?,
            Line::End { lines, sha256 } => self.end = Some((lines, sha256)),
        }
        Ok(())
    }

    fn checkpoint(
        &mut self,
        n: u64,
        cp: Checkpoint,
        witnessed: bool,
        trusted: Option<&Ed25519Verifier>,
    ) -> Result<(), PackError> {
        let keys: &dyn CheckpointVerifier = match (trusted, &self.pack_keys) {
            (Some(t), _) => t,
            (None, Some(p)) => p,
            (None, None) => return Err(PackError::at(n, "no public keys before the checkpoint")),
        };
        cp.verify(keys).map_err(|e| {
            PackError::at(
                n,
                format!(
                    "the checkpoint at record {} (key {}) does not verify: {e}",
                    cp.up_to_seq, cp.key_id
                ),
            )
        })?;
        let root = cp
            .tree_root
            .as_deref()
            .and_then(merkle::from_hex)
            .ok_or_else(|| {
                PackError::at(
                    n,
                    format!("the checkpoint at record {} has no tree root", cp.up_to_seq),
                )
            })?;
        let key = (cp.up_to_seq, cp.key_id.clone());
        if self
            .checkpoints
            .insert(key, (cp, root, witnessed))
            .is_some()
        {
            return Err(PackError::at(n, "the same checkpoint twice"));
        }
        Ok(())
    }

    fn record(
        &mut self,
        n: u64,
        record: StoredAuditRecord,
        proof: &super::Proof,
    ) -> Result<(), PackError> {
        let seq = record.seq;
        let at = |msg: String| PackError::at(n, format!("record {seq}: {msg}"));
        if let Some(prev) = self.records.last() {
            if seq <= prev.seq {
                return Err(at(format!(
                    "comes after record {} (out of order)",
                    prev.seq
                )));
            }
            if seq == prev.seq + 1 && record.prev_hash != prev.hash {
                return Err(at("does not link to the record before it".to_owned()));
            }
        }
        let computed = record.computed_hash();
        if computed != record.hash {
            return Err(at(format!(
                "hashes to {computed}, not its hash {}: it was changed",
                record.hash
            )));
        }
        if !record.details_redacted
            && chain::details_hash(&record.record.details) != record.details_hash
        {
            return Err(at(
                "its details do not match their digest: they were changed".to_owned(),
            ));
        }
        if let Some(manifest) = &self.manifest
            && !manifest.scope.holds(&record)
        {
            return Err(at(format!(
                "is outside the pack's scope {:?}",
                manifest.scope
            )));
        }
        let Some((cp, root, _)) = self
            .checkpoints
            .get(&(proof.checkpoint_seq, proof.key_id.clone()))
        else {
            return Err(at(format!(
                "its proof names checkpoint {} (key {}), which the pack does not hold",
                proof.checkpoint_seq, proof.key_id
            )));
        };
        let path = proof
            .path
            .iter()
            .map(|h| merkle::from_hex(h))
            .collect::<Option<Vec<Digest32>>>()
            .ok_or_else(|| at("its proof holds a malformed hash".to_owned()))?;
        let leaf =
            merkle::leaf(&record.hash).ok_or_else(|| at("its hash is malformed".to_owned()))?;
        if seq == 0 || !merkle::verify_inclusion(&leaf, seq - 1, cp.up_to_seq, &path, root) {
            return Err(at(format!(
                "its proof does not lead to the root signed by the checkpoint at record {}: it \
                 is not the record that was logged",
                cp.up_to_seq
            )));
        }
        self.records.push(record);
        Ok(())
    }

    fn finish(self, bytes: &[u8], lines: &[&[u8]], trusted: bool) -> Result<PackReport, PackError> {
        let count = lines.len() as u64;
        let (Some(manifest), Some((end_lines, sha256))) = (self.manifest, self.end) else {
            return Err(PackError::whole("the pack has no end line: it was cut off"));
        };
        let (bundles_line, bundles) = self.bundles.unwrap_or_default();
        let (first, last) = match (self.records.first(), self.records.last()) {
            (Some(f), Some(l)) => (f.seq, l.seq),
            _ => return Err(PackError::whole("the pack holds no record")),
        };
        let actual = (
            self.records.len() as u64,
            self.checkpoints.len() as u64,
            first,
            last,
        );
        let said = (
            manifest.records,
            manifest.checkpoints,
            manifest.first_seq,
            manifest.last_seq,
        );
        if actual != said {
            return Err(PackError::at(
                1,
                format!(
                    "the manifest says (records, checkpoints, first, last) = {said:?}, the pack \
                     holds {actual:?}: lines were added or removed"
                ),
            ));
        }
        if bundles_of(&self.records) != bundles {
            return Err(PackError::at(
                bundles_line,
                "the policy bundles listed are not the ones the records name",
            ));
        }
        // Every byte before the end line, newlines included.
        let before = bytes.len() - lines.last().map_or(0, |l| l.len()) - 1;
        let digest = chain::hex(&Sha256::digest(&bytes[..before]));
        if end_lines != count - 1 || sha256 != digest {
            return Err(PackError::at(
                count,
                format!(
                    "the end line says {end_lines} lines with SHA-256 {sha256}; the pack has {} \
                     lines with SHA-256 {digest}: it was changed or damaged after export",
                    count - 1
                ),
            ));
        }
        let end = Line::End {
            lines: end_lines,
            sha256,
        };
        let canonical = serde_json::to_vec(&end).unwrap_or_default();
        if lines.last().copied() != Some(canonical.as_slice()) {
            return Err(PackError::at(count, "the end line was changed"));
        }
        let witnessed = self.checkpoints.values().all(|(_, _, w)| *w);
        let checkpoints = self.checkpoints.keys().map(|(seq, _)| *seq).collect();
        let mut key_ids: Vec<String> = self.checkpoints.keys().map(|(_, k)| k.clone()).collect();
        key_ids.sort();
        key_ids.dedup();
        Ok(PackReport {
            scope: manifest.scope,
            created_at: manifest.created_at,
            generator: manifest.generator,
            records: actual.0,
            first_seq: first,
            last_seq: last,
            checkpoints,
            witnessed,
            key_ids,
            keys_from: if trusted { "trusted" } else { "pack" },
            policy_bundles: bundles,
        })
    }
}

fn kind_of(line: &Line) -> &'static str {
    match line {
        Line::Manifest { .. } => "manifest",
        Line::PublicKeys { .. } => "public_keys",
        Line::PolicyBundles { .. } => "policy_bundles",
        Line::Checkpoint { .. } => "checkpoint",
        Line::Record { .. } => "record",
        Line::End { .. } => "end",
    }
}
