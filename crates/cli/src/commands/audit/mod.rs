//! `amas audit verify`, `amas audit export` and `amas audit public-keys`: the audit log of the
//! data directory's store, checked with public keys only (never the private key, which these
//! commands neither read nor create) against the witness; evidence packs in [`pack`].

mod pack;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};

use amas_governance::auth::audit_key;
use amas_store::audit::witness::{WitnessLog, read_witness_file};
use amas_store::audit::{
    AuditLog, AuditQuery, Ed25519Verifier, VerifyOptions, WitnessInput, verify_with,
};
use amas_types::codes;

use crate::EXIT_FAILED;
use crate::args::{AuditArgs, AuditCommand, AuditFormat, Global};
use crate::bootstrap::{StoreNeed, UsageError, load_config, open_store, witness_file};

/// Records per read while exporting.
const EXPORT_PAGE: u32 = 1000;

pub async fn run(global: &Global, args: AuditArgs) -> anyhow::Result<u8> {
    match args.command {
        // Offline: nothing but the pack (and the keys named) is read.
        AuditCommand::Verify {
            pack: Some(pack),
            public_keys,
            ..
        } => pack::verify(&pack, public_keys.as_deref()),
        AuditCommand::PublicKeys => print_public_keys(global),
        command => {
            // Verifying or exporting must not create an empty database.
            let config = load_config(global)?;
            let store = open_store(global, &config, StoreNeed::Existing).await?;
            let code = on_store(global, store.as_dyn(), command).await;
            store.close().await;
            code
        }
    }
}

async fn on_store(
    global: &Global,
    store: &dyn AuditLog,
    command: AuditCommand,
) -> anyhow::Result<u8> {
    match command {
        AuditCommand::Verify {
            from,
            to,
            public_keys,
            witness,
            no_witness,
            pack: _,
        } => {
            let keys = public_keys_of(global, public_keys.as_deref())?;
            let witness = if no_witness {
                None
            } else {
                witness_path(global, witness)?
            };
            verify_log(store, &keys, from, to, witness.as_deref()).await
        }
        AuditCommand::Export {
            format: AuditFormat::Jsonl,
            since,
            until,
            evidence_pack: None,
            task: _,
        } => export_jsonl(store, since.as_deref(), until.as_deref()).await,
        AuditCommand::Export {
            since,
            until,
            evidence_pack: Some(file),
            task,
            ..
        } => {
            let scope = pack::scope(task.as_deref(), since.as_deref(), until.as_deref())?;
            let keys = public_keys_of(global, None)?;
            let witness = witness_path(global, None)?;
            pack::export(store, &keys, witness.as_deref(), scope, &file).await
        }
        AuditCommand::PublicKeys => print_public_keys(global),
    }
}

/// The public key set to verify with: `--public-keys FILE`, else the data directory's.
fn public_keys_of(global: &Global, file: Option<&Path>) -> anyhow::Result<Ed25519Verifier> {
    let path = file.map_or_else(
        || audit_key::public_keys_path(&global.data_dir),
        Path::to_owned,
    );
    let (verifier, _) =
        audit_key::load_public_keys(&path).map_err(|e| UsageError(format!("{}: {e}", e.code())))?;
    Ok(verifier)
}

/// `--witness FILE`, else the configured witness file (`None`: the witness is off).
fn witness_path(global: &Global, flag: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    match flag {
        Some(path) => Ok(Some(path)),
        None => Ok(witness_file(global, &load_config(global)?)),
    }
}

/// What the witness at `path` holds; `Ok(None)` when there is no file.
fn read_witness(path: &Path) -> anyhow::Result<Option<WitnessLog>> {
    read_witness_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))
}

async fn verify_log(
    log: &dyn AuditLog,
    keys: &Ed25519Verifier,
    from: u64,
    to: Option<u64>,
    witness: Option<&Path>,
) -> anyhow::Result<u8> {
    let held = witness.map(read_witness).transpose()?.flatten();
    let missing = witness.map(|p| format!("file:{}", p.display()));
    let input = match (&held, &missing) {
        (Some(log), _) => Some(WitnessInput::Log(log)),
        (None, Some(source)) => Some(WitnessInput::Missing(source)),
        (None, None) => None,
    };
    let options = VerifyOptions {
        from,
        to,
        witness: input,
    };
    let report = verify_with(log, keys, &options)
        .await
        .context("reading the audit log")?;
    let mut json = serde_json::to_value(&report)?;
    if let Some(map) = json.as_object_mut() {
        map.insert("intact".to_owned(), report.is_intact().into());
        if !report.is_intact() {
            map.insert("code".to_owned(), codes::AUDIT_BROKEN.into());
        }
    }
    write_line(&mut io::stdout().lock(), &json.to_string())?;
    let witnessed = report.witness.as_ref().map_or_else(
        || "no witness".to_owned(),
        |w| format!("witness {} with {} checkpoints", w.source, w.checkpoints),
    );
    if let Some(broken) = &report.broken {
        eprintln!(
            "{}: audit log broken at record {}: {}",
            codes::AUDIT_BROKEN,
            broken.seq,
            broken.detail
        );
    }
    for problem in &report.guard_problems {
        eprintln!(
            "{}: the append-only guards are off: {problem}; whatever was done meanwhile is \
             caught only by the chain, the checkpoints and the witness",
            codes::AUDIT_BROKEN
        );
    }
    if report.is_intact() {
        eprintln!(
            "audit log intact: records {}..{} ({} checked, {} checkpoints, {} tree roots; {witnessed})",
            report.from_seq,
            report.to_seq,
            report.records_checked,
            report.checkpoints_checked,
            report.roots_checked
        );
        Ok(0)
    } else {
        Ok(EXIT_FAILED)
    }
}

fn print_public_keys(global: &Global) -> anyhow::Result<u8> {
    let path = audit_key::public_keys_path(&global.data_dir);
    let (_, jwks) =
        audit_key::load_public_keys(&path).map_err(|e| UsageError(format!("{}: {e}", e.code())))?;
    write_line(
        &mut io::stdout().lock(),
        &serde_json::to_string_pretty(&jwks)?,
    )?;
    Ok(0)
}

pub(super) fn parse_time(
    flag: &str,
    text: Option<&str>,
) -> Result<Option<DateTime<Utc>>, UsageError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| UsageError(format!("{flag} {t:?} is not an RFC 3339 time: {e}")))
    })
    .transpose()
}

async fn export_jsonl(
    log: &dyn AuditLog,
    since: Option<&str>,
    until: Option<&str>,
) -> anyhow::Result<u8> {
    let mut query = AuditQuery {
        since: parse_time("--since", since)?,
        until: parse_time("--until", until)?,
        limit: EXPORT_PAGE,
        ..AuditQuery::default()
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    loop {
        let page = log.query(&query).await.context("reading the audit log")?;
        let Some(last) = page.last().map(|r| r.seq) else {
            break;
        };
        for record in &page {
            if !write_line(&mut out, &serde_json::to_string(record)?)? {
                return Ok(0);
            }
        }
        query.from_seq = last + 1;
    }
    out.flush().or_else(ignore_broken_pipe)?;
    Ok(0)
}

/// Writes one line; `false` when the reader went away (`amas audit export | head`).
pub(super) fn write_line(out: &mut impl Write, line: &str) -> io::Result<bool> {
    match writeln!(out, "{line}") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}

fn ignore_broken_pipe(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e)
    }
}
