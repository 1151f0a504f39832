//! `amas-mock-openai [--port N] [--no-record]`: the mock OpenAI-compatible server as its own
//! process, for tests that kill and restart AMAS and still need to count model calls, and for
//! the throughput bench (`--no-record`: requests are answered but not kept). Prints
//! `listening on http://127.0.0.1:<port>/v1` once ready.

use std::io::Write;

use amas_test_util::mock_openai::{MockState, serve};
use tokio::net::TcpListener;

struct Args {
    port: u16,
    record: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        port: 0,
        record: true,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                parsed.port = value.parse().map_err(|_| format!("bad port: {value}"))?;
            }
            "--no-record" => parsed.record = false,
            other => {
                return Err(format!(
                    "unknown argument: {other} (usage: amas-mock-openai [--port N] [--no-record])"
                ));
            }
        }
    }
    Ok(parsed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{addr}/v1")?;
    stdout.flush()?;
    let state = if args.record {
        MockState::default()
    } else {
        MockState::without_recording()
    };
    serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
