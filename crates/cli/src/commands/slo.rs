//! `amas slo render`: writes Prometheus rules, the Grafana dashboard and the Alertmanager
//! configuration generated from `slo.yaml` (the `--config` directory's, else the embedded one).

use amas_telemetry::slo::{self, SloConfig, SloError};

use crate::args::{Global, SloArgs, SloCommand};
use crate::bootstrap::UsageError;

pub fn run(global: &Global, args: SloArgs) -> anyhow::Result<u8> {
    match args.command {
        SloCommand::Render { out } => {
            let config = SloConfig::load(global.config.as_deref()).map_err(|e| match e {
                // A broken slo.yaml is the user's to fix: exit 2 like other config errors.
                SloError::Parse { .. } | SloError::Invalid { .. } | SloError::Read { .. } => {
                    anyhow::Error::new(UsageError(e.to_string()))
                }
                SloError::Write { .. } | SloError::Encode { .. } => anyhow::Error::new(e),
            })?;
            let files = slo::render(&config, &out)?;
            for path in files.all() {
                println!("{}", path.display());
            }
            Ok(0)
        }
    }
}
