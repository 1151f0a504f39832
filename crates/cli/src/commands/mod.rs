//! One module per subcommand.

pub mod audit;
pub mod config;
pub mod policy;
pub mod redact;
pub mod run;
pub mod serve;
pub mod slo;
pub mod token;
pub mod tools;
