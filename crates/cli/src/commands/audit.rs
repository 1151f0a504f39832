//! `amas audit verify` and `amas audit export`: the audit log of the data directory's store,
//! checked with the local issuer's public key.

use std::io::{self, Write};

use anyhow::Context;
use chrono::{DateTime, Utc};

use amas_governance::LocalIssuer;
use amas_store::audit::{AuditLog, AuditQuery, verify};

use crate::EXIT_FAILED;
use crate::args::{AuditArgs, AuditCommand, AuditFormat, Global};
use crate::bootstrap::{UsageError, load_config, open_existing_store};

/// Records per read while exporting.
const EXPORT_PAGE: u32 = 1000;

pub async fn run(global: &Global, args: AuditArgs) -> anyhow::Result<u8> {
    // Verifying or exporting must not create an empty database.
    let store = open_existing_store(global).await?;
    let code = match args.command {
        AuditCommand::Verify { from, to } => verify_log(global, &store, from, to).await,
        AuditCommand::Export {
            format: AuditFormat::Jsonl,
            since,
            until,
        } => export_jsonl(&store, since.as_deref(), until.as_deref()).await,
    };
    store.close().await;
    code
}

async fn verify_log(
    global: &Global,
    log: &dyn AuditLog,
    from: u64,
    to: Option<u64>,
) -> anyhow::Result<u8> {
    let config = load_config(global)?;
    let issuer =
        LocalIssuer::load_or_create(&global.data_dir, &config.auth.issuer, &config.auth.audience)?;
    let report = verify(log, &issuer.audit_verifier(), from, to)
        .await
        .context("reading the audit log")?;
    let mut json = serde_json::to_value(&report)?;
    if let Some(map) = json.as_object_mut() {
        map.insert("intact".to_owned(), report.is_intact().into());
    }
    write_line(&mut io::stdout().lock(), &json.to_string())?;
    match &report.broken {
        None => {
            eprintln!(
                "audit log intact: records {}..{} ({} checked, {} checkpoints)",
                report.from_seq, report.to_seq, report.records_checked, report.checkpoints_checked
            );
            Ok(0)
        }
        Some(broken) => {
            eprintln!(
                "audit log broken at record {}: {}",
                broken.seq, broken.detail
            );
            Ok(EXIT_FAILED)
        }
    }
}

fn parse_time(flag: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, UsageError> {
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
fn write_line(out: &mut impl Write, line: &str) -> io::Result<bool> {
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
