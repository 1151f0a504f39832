//! One module per subcommand.

pub mod approvals;
pub mod audit;
pub mod config;
pub mod db;
pub mod policy;
pub mod redact;
pub mod replay;
pub mod retention;
pub mod run;
pub mod serve;
pub mod slo;
pub mod token;
pub mod tools;

/// Prints `text` and a newline on stdout; a closed pipe (`amas ... | head`) ends quietly
/// instead of panicking like `println!`.
pub fn print_stdout(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
