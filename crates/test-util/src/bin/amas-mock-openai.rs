//! `amas-mock-openai [--port N]`: the mock OpenAI-compatible server as its own process, for
//! tests that kill and restart AMAS and still need to count model calls. Prints
//! `listening on http://127.0.0.1:<port>/v1` once ready.

use std::io::Write;

use amas_test_util::mock_openai::{MockState, serve};
use tokio::net::TcpListener;

fn port_from_args() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut port = 0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value.parse().map_err(|_| format!("bad port: {value}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument: {other} (usage: amas-mock-openai [--port N])"
                ));
            }
        }
    }
    Ok(port)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = port_from_args()?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{addr}/v1")?;
    stdout.flush()?;
    serve(listener, MockState::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
