//! Test helpers shared by AMAS crates: a programmable mock OpenAI-compatible server (in-process
//! or as the standalone `amas-mock-openai` binary) and small networking helpers.

pub mod mock_openai;

pub use mock_openai::{Behaviour, MockControl, MockOpenAi, RecordedRequest};

/// A TCP port on 127.0.0.1 that was free a moment ago (for servers that must be restarted on
/// the same port, e.g. crash tests; prefer binding port 0 directly when you can).
///
/// # Errors
/// The bind error.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
