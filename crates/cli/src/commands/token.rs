//! `amas token create`: mint a token from the local issuer of this data directory.

use amas_governance::LocalIssuer;

use crate::args::{Global, TokenArgs, TokenCommand};
use crate::bootstrap::{UsageError, load_config};

pub fn run(global: &Global, args: TokenArgs) -> anyhow::Result<u8> {
    let config = load_config(global)?;
    match args.command {
        TokenCommand::Create {
            sub,
            roles,
            tenant,
            ttl,
        } => {
            let ttl =
                amas_config::parse_duration(&ttl).map_err(|e| UsageError(format!("--ttl: {e}")))?;
            let issuer = LocalIssuer::load_or_create(
                &global.data_dir,
                &config.auth.issuer,
                &config.auth.audience,
            )?;
            let token = issuer.mint(&sub, &roles, tenant.as_deref(), ttl)?;
            println!("{token}");
            Ok(0)
        }
    }
}
