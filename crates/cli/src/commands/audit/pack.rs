//! Evidence packs: `amas audit export --evidence-pack FILE` writes one after checking the
//! whole log against its witness; `amas audit verify --pack FILE` checks one offline.

use std::io;
use std::path::Path;

use amas_governance::auth::audit_key;
use amas_store::audit::pack::{ExportOptions, Scope, check_pack, export_pack};
use amas_store::audit::{Ed25519Verifier, VerifyOptions, WitnessInput, verify_with};
use amas_types::{TaskId, codes};

use super::{parse_time, read_witness, write_line};
use crate::EXIT_FAILED;
use crate::bootstrap::UsageError;

/// The scope the flags name: a task, or a time range (open ends allowed).
pub(super) fn scope(
    task: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<Scope, UsageError> {
    match task {
        Some(id) => id
            .parse::<TaskId>()
            .map(|task_id| Scope::Task { task_id })
            .map_err(|e| UsageError(format!("--task {id:?} is not a task id: {e}"))),
        None => Ok(Scope::Time {
            since: parse_time("--since", since)?,
            until: parse_time("--until", until)?,
        }),
    }
}

/// Verifies the whole log (against the witness when there is one), then writes the pack to a
/// temporary file beside `file` and renames it into place: a refused or failed export leaves
/// no pack behind.
pub(super) async fn export(
    log: &dyn amas_store::AuditLog,
    keys: &Ed25519Verifier,
    witness: Option<&Path>,
    scope: Scope,
    file: &Path,
) -> anyhow::Result<u8> {
    let held = witness.map(read_witness).transpose()?.flatten();
    let options = VerifyOptions {
        from: 1,
        to: None,
        witness: held.as_ref().map(WitnessInput::Log),
    };
    let report = verify_with(log, keys, &options).await?;
    if !report.is_intact() {
        let why = report.broken.as_ref().map_or_else(
            || report.guard_problems.join("; "),
            |b| format!("record {}: {}", b.seq, b.detail),
        );
        eprintln!(
            "{}: no evidence pack written: the audit log does not verify ({why}); run `amas \
             audit verify`",
            codes::AUDIT_BROKEN
        );
        return Ok(EXIT_FAILED);
    }
    let generator = format!("amas {}", env!("CARGO_PKG_VERSION"));
    let options = ExportOptions {
        scope,
        keys,
        witness: held.as_ref(),
        generator: &generator,
    };
    let name = file
        .file_name()
        .map_or_else(|| "pack".into(), |n| n.to_string_lossy().into_owned());
    let tmp = file.with_file_name(format!(".{name}.{}.tmp", uuid_like()));
    let written = async {
        // Owner-only: the records name principals, tenants and resources.
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        let mut out = io::BufWriter::new(open.open(&tmp)?);
        let manifest = export_pack(log, &options, &mut out).await?;
        drop(out);
        std::fs::rename(&tmp, file)?;
        Ok::<_, anyhow::Error>(manifest)
    }
    .await;
    let manifest = match written {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            if let Some(export) = e.downcast_ref::<amas_store::audit::pack::ExportError>() {
                return Err(UsageError(format!("{}: {export}", export.code())).into());
            }
            return Err(e.context(format!("writing {}", file.display())));
        }
    };
    write_line(&mut io::stdout().lock(), &serde_json::to_string(&manifest)?)?;
    eprintln!(
        "evidence pack {}: {} records ({}..{}), verifiable with `amas audit verify --pack`",
        file.display(),
        manifest.records,
        manifest.first_seq,
        manifest.last_seq
    );
    Ok(0)
}

/// A name part unlikely to collide with another export's temporary file.
fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

/// Checks the pack at `file` with its own keys, or with `public_keys` when given; reads
/// nothing else (no data directory, no configuration).
pub(super) fn verify(file: &Path, public_keys: Option<&Path>) -> anyhow::Result<u8> {
    let bytes = std::fs::read(file)
        .map_err(|e| UsageError(format!("cannot read the pack {}: {e}", file.display())))?;
    let trusted = public_keys
        .map(|path| {
            audit_key::load_public_keys(path)
                .map(|(verifier, _)| verifier)
                .map_err(|e| UsageError(format!("{}: {e}", e.code())))
        })
        .transpose()?;
    match check_pack(&bytes, trusted.as_ref()) {
        Ok(report) => {
            let mut json = serde_json::to_value(&report)?;
            if let Some(map) = json.as_object_mut() {
                map.insert("valid".to_owned(), true.into());
            }
            write_line(&mut io::stdout().lock(), &json.to_string())?;
            eprintln!(
                "evidence pack valid: {} records ({}..{}) proven against checkpoint {:?}, keys \
                 {:?} ({})",
                report.records,
                report.first_seq,
                report.last_seq,
                report.checkpoints,
                report.key_ids,
                if trusted.is_some() {
                    "trusted: --public-keys"
                } else {
                    "from the pack itself: compare them with the key ids you hold, or pass \
                     --public-keys"
                }
            );
            Ok(0)
        }
        Err(e) => {
            let json = serde_json::json!({
                "valid": false,
                "code": e.code(),
                "line": e.line,
                "message": e.message,
            });
            write_line(&mut io::stdout().lock(), &json.to_string())?;
            eprintln!("{}: evidence pack invalid: {e}", e.code());
            Ok(EXIT_FAILED)
        }
    }
}
