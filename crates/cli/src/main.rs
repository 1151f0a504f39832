//! `amas`: the one binary. `main` only parses arguments and dispatches; each command wires the
//! pieces it needs in `commands::*`.

mod args;
mod bootstrap;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// mimalloc instead of the system allocator: under load the runtime's worker threads spent a
/// fifth of their time in glibc's malloc and free (`scripts/bench-throughput.sh --profile`);
/// mimalloc's per-thread heaps avoid that contention.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: 0 success, 1 the task (or check) failed, 2 usage or configuration error.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve::run(&cli.global, args).await,
            Command::Run(args) => commands::run::run(&cli.global, args).await,
            Command::Token(args) => commands::token::run(&cli.global, args),
            Command::Config(args) => commands::config::dump(&cli.global, args),
            Command::Contracts(args) => commands::config::check(&cli.global, args),
            Command::Tools(args) => commands::tools::run(&cli.global, args).await,
            Command::Policy(args) => commands::policy::run(args),
            Command::Redact(args) => commands::redact::run(&cli.global, args),
            Command::Audit(args) => commands::audit::run(&cli.global, args).await,
            Command::Slo(args) => commands::slo::run(&cli.global, args),
            Command::Approvals(args) => commands::approvals::run(args).await,
            Command::Replay(args) => commands::replay::run(&cli.global, args).await,
            Command::Retention(args) => commands::retention::run(&cli.global, args).await,
            Command::Db(args) => commands::db::run(&cli.global, args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<bootstrap::UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
    }
}
