//! `amas redact`: the data-protection engine on stdin, for users' own pipelines and for
//! testing detectors. Offsets in `--json` output are bytes of the UTF-8 input (for JSON input:
//! bytes of the string at `path`).

use std::io::{Read, Write};

use amas_config::Layers;
use amas_dataprotect::{DataProtectConfig, DataProtectError, DataProtector, TenantKey};

use crate::args::{Global, RedactArgs, RedactFormat};
use crate::bootstrap::{UsageError, load_options};

/// Hash-mode tokens are keyed with `AMAS_REDACT_KEY`; without it a fixed, public key is used,
/// which keeps tokens stable between runs but lets anyone confirm a guessed value.
const DEFAULT_KEY: &str = "amas-redact-cli";

fn usage(e: DataProtectError) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// The `dataprotect` section alone (a broken agents file must not stop a redaction), with
/// `--rules FILE` merged above `--config` and `AMAS__DATAPROTECT__...` as the command-line
/// layer.
fn rules(global: &Global, args: &RedactArgs) -> anyhow::Result<DataProtectConfig> {
    let mut layers = Layers::for_section::<DataProtectConfig>(&load_options(global));
    if let Some(path) = &args.rules {
        layers.overlay("dataprotect.yaml", path);
    }
    let config = layers.section::<DataProtectConfig>();
    layers
        .finish(config)
        .map_err(|errors| UsageError(format!("invalid configuration:\n{errors}")).into())
}

pub fn run(global: &Global, args: RedactArgs) -> anyhow::Result<u8> {
    let config = rules(global, &args)?;
    let limit = config.max_input_bytes;
    let protector = DataProtector::new(config).map_err(usage)?;
    let key =
        TenantKey::new(std::env::var("AMAS_REDACT_KEY").unwrap_or_else(|_| DEFAULT_KEY.to_owned()));

    // Read one byte past the limit so an oversized input is reported, not silently cut.
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut input)?;

    let mut out = std::io::stdout().lock();
    match args.format {
        RedactFormat::Text => {
            let r = protector.redact_bytes(&input, &key).map_err(usage)?;
            if args.json {
                serde_json::to_writer(&mut out, &r)?;
                writeln!(out)?;
            } else {
                out.write_all(r.redacted.as_bytes())?;
            }
        }
        RedactFormat::Json => {
            let r = protector.redact_json_bytes(&input, &key).map_err(usage)?;
            if args.json {
                serde_json::to_writer(&mut out, &r)?;
            } else {
                serde_json::to_writer(&mut out, &r.redacted)?;
            }
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(0)
}
