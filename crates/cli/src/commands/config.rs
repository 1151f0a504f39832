//! `amas config dump` (the whole effective configuration) and `amas contracts check`.

use crate::args::{ConfigArgs, ConfigCommand, ContractsArgs, ContractsCommand, DumpFormat, Global};
use crate::bootstrap::{load, load_config};
use crate::commands::print_stdout;

pub fn dump(global: &Global, args: ConfigArgs) -> anyhow::Result<u8> {
    match args.command {
        ConfigCommand::Dump { format } => {
            let effective = load(global)?.effective()?;
            let text = match format {
                DumpFormat::Json => serde_json::to_string_pretty(&effective)?,
                DumpFormat::Yaml => yaml_serde::to_string(&effective)?,
            };
            print_stdout(text.trim_end());
            Ok(0)
        }
    }
}

pub fn check(global: &Global, args: ContractsArgs) -> anyhow::Result<u8> {
    match args.command {
        ContractsCommand::Check => {
            let config = load_config(global)?;
            println!(
                "configuration valid: {} providers, {} agents, {} workflows",
                config.providers.len(),
                config.agents.len(),
                config.workflows.len()
            );
            Ok(0)
        }
    }
}
