//! A mock OpenAI-compatible chat-completions server: a real HTTP server on 127.0.0.1,
//! programmable per model with a queue of behaviours (reply, tool calls, status, hang, delay),
//! that records every request.

mod behaviour;
mod control;
mod server;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use behaviour::Behaviour;
pub use control::MockControl;
pub use server::{ANY_MODEL, ControlRequest, MockState, RecordedRequest, router};

/// Serves the mock on `listener` until `shutdown` resolves.
///
/// # Errors
/// The server's I/O error.
pub async fn serve(
    listener: TcpListener,
    state: MockState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Small answers, sent at once: without TCP_NODELAY, Nagle's algorithm and the client's
    // delayed ACK hold a reply back for tens of milliseconds.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The in-process mock; stops when dropped.
pub struct MockOpenAi {
    addr: SocketAddr,
    state: MockState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockOpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockOpenAi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockOpenAi {
    /// Starts on a free port of 127.0.0.1.
    ///
    /// # Errors
    /// The bind error.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = MockState::default();
        let (tx, rx) = oneshot::channel::<()>();
        let served = state.clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "test support: the mock server's task is owned and ended by its handle"
        )]
        let task = tokio::spawn(async move {
            let _ = serve(listener, served, async {
                let _ = rx.await;
            })
            .await;
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
            task,
        })
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/v1`, the `base_url` of an OpenAI provider config.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues behaviours for `model`, answered in order before its default.
    pub fn push(&self, model: &str, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.state.push(model, behaviours);
    }

    /// What `model` answers once its queue is empty ([`ANY_MODEL`]: every model without one).
    pub fn set_default(&self, model: &str, behaviour: Behaviour) {
        self.state.set_default(model, behaviour);
    }

    /// Lets every hanging request answer (503).
    pub fn release_hangs(&self) {
        self.state.release_hangs();
    }

    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    #[must_use]
    pub fn request_count(&self, model: &str) -> usize {
        self.state.request_count(model)
    }
}

impl Drop for MockOpenAi {
    fn drop(&mut self) {
        // Hanging handlers would keep their connections (and the runtime) busy otherwise.
        self.state.release_hangs();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}
