//! `amas config dump` and `amas contracts check`.

use crate::args::{ConfigArgs, ConfigCommand, ContractsArgs, ContractsCommand, Global};
use crate::bootstrap::load_config;

pub fn dump(global: &Global, args: ConfigArgs) -> anyhow::Result<u8> {
    match args.command {
        ConfigCommand::Dump => {
            let config = load_config(global)?;
            println!("{}", serde_json::to_string_pretty(&config)?);
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
