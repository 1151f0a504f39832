//! One module per subcommand.

pub mod config;
pub mod policy;
pub mod run;
pub mod serve;
pub mod token;
