//! A remote witness: each checkpoint is `POST`ed as JSON to a URL (a WORM bucket's gateway, a
//! log collector, a transparency service) that keeps what it is sent. Sending happens on a
//! background task with a bounded queue, so a slow or unreachable sink never holds up the
//! writer (and with it every journal commit); each checkpoint covers the whole chain before
//! it, so one that is dropped after its retries is covered by the next.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::{Witness, WitnessError};
use crate::audit::Checkpoint;

/// Checkpoints waiting to be sent at most; a fuller queue drops the newest with an error.
const QUEUE: usize = 64;
/// Attempts per checkpoint before it is given up (the next one covers it).
const ATTEMPTS: u32 = 3;

/// Posts checkpoints to an HTTP endpoint.
#[derive(Debug)]
pub struct HttpWitness {
    url: String,
    tx: Mutex<Option<mpsc::Sender<Checkpoint>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    timeout: Duration,
}

impl HttpWitness {
    /// Starts the sender for `url` (call inside the Tokio runtime); each request is bounded by
    /// `timeout`.
    ///
    /// # Errors
    /// A URL that is not `http://` or `https://`; the HTTP client cannot be built.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, WitnessError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(WitnessError(
                "the audit witness URL is not http:// or https://".to_owned(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WitnessError(format!("cannot build the witness HTTP client: {e}")))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        #[expect(
            clippy::disallowed_methods,
            reason = "joined by HttpWitness::close, which the audit writer calls at its shutdown \
                      (the store cannot reach the telemetry crate's tracked spawner)"
        )]
        let worker = tokio::spawn(send_all(client, url.to_owned(), rx));
        Ok(Self {
            url: url.to_owned(),
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            timeout,
        })
    }
}

async fn send_all(client: reqwest::Client, url: String, mut rx: mpsc::Receiver<Checkpoint>) {
    while let Some(cp) = rx.recv().await {
        let mut wait = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            match send(&client, &url, &cp).await {
                Ok(()) => break,
                Err(e) if attempt == ATTEMPTS => {
                    tracing::error!(
                        error.code = e.code(),
                        error.message = %e,
                        audit.seq = cp.up_to_seq,
                        "Audit checkpoint not witnessed; the next checkpoint covers it."
                    );
                }
                Err(e) => {
                    tracing::warn!(error.code = e.code(), error.message = %e, audit.seq = cp.up_to_seq, "Audit witness send failed; retrying.");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
}

async fn send(client: &reqwest::Client, url: &str, cp: &Checkpoint) -> Result<(), WitnessError> {
    let response = client.post(url).json(cp).send().await.map_err(|e| {
        WitnessError(format!(
            "cannot reach the audit witness: {}",
            e.without_url()
        ))
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(WitnessError(format!("the audit witness answered {status}")))
    }
}

#[async_trait]
impl Witness for HttpWitness {
    /// The URL without credentials or query, which may hold secrets.
    fn describe(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.to_string()
            }
            Err(_) => "<invalid url>".to_owned(),
        }
    }

    async fn publish(&self, checkpoint: &Checkpoint) -> Result<(), WitnessError> {
        let tx = self.tx.lock().await;
        let Some(tx) = tx.as_ref() else {
            return Err(WitnessError("the audit witness is closed".to_owned()));
        };
        tx.try_send(checkpoint.clone()).map_err(|_| {
            WitnessError(format!(
                "the audit witness queue is full ({QUEUE} checkpoints unsent); checkpoint {} \
                 dropped, the next one covers it",
                checkpoint.up_to_seq
            ))
        })
    }

    async fn close(&self) -> Result<(), WitnessError> {
        self.tx.lock().await.take();
        let Some(worker) = self.worker.lock().await.take() else {
            return Ok(());
        };
        // Every queued checkpoint gets its attempts; past that the sender is abandoned.
        let patience = (self.timeout + Duration::from_secs(1)) * ATTEMPTS * 2;
        let abort = worker.abort_handle();
        if tokio::time::timeout(patience, worker).await.is_ok() {
            return Ok(());
        }
        abort.abort();
        Err(WitnessError(format!(
            "the audit witness {} did not take the last checkpoints within {}s",
            self.describe(),
            patience.as_secs()
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex as StdMutex};

    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;

    use super::*;
    use crate::audit::ChainLink;
    use crate::audit::conformance::test_signer;

    type Seen = Arc<StdMutex<Vec<Checkpoint>>>;

    /// A sink on 127.0.0.1:0 that keeps what it is sent, answering `status`.
    async fn sink(status: StatusCode) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/checkpoints",
                post(
                    move |State(seen): State<Seen>, axum::Json(cp): axum::Json<Checkpoint>| async move {
                        seen.lock().unwrap().push(cp);
                        status
                    },
                ),
            )
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        #[expect(
            clippy::disallowed_methods,
            reason = "test scaffolding: a server that ends with the test"
        )]
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/checkpoints"), seen)
    }

    fn checkpoint(seq: u64) -> Checkpoint {
        let link = ChainLink {
            seq,
            hash: "ab".repeat(32),
        };
        Checkpoint::sign_tree(&link, &"cd".repeat(32), &test_signer()).unwrap()
    }

    /// Every checkpoint published reaches the sink, in order, by the time `close` returns; a
    /// closed witness refuses more.
    #[tokio::test]
    async fn checkpoints_reach_the_sink() {
        let (url, seen) = sink(StatusCode::CREATED).await;
        let witness = HttpWitness::new(&url, Duration::from_secs(5)).unwrap();
        let sent: Vec<Checkpoint> = (1..=3).map(checkpoint).collect();
        for cp in &sent {
            witness.publish(cp).await.unwrap();
        }
        witness.close().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), sent);
        assert!(witness.publish(&checkpoint(4)).await.is_err());
    }

    /// A sink that refuses is retried, then given up without holding anyone up; the URL shown
    /// in logs carries no credentials.
    #[tokio::test]
    async fn a_refusing_sink_is_retried_then_given_up() {
        let (url, seen) = sink(StatusCode::SERVICE_UNAVAILABLE).await;
        let witness = HttpWitness::new(&url, Duration::from_secs(5)).unwrap();
        witness.publish(&checkpoint(1)).await.unwrap();
        witness.close().await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), ATTEMPTS as usize);
        let described = HttpWitness::new(
            "https://user:secret@example.com/w?token=x",
            Duration::from_secs(1),
        )
        .unwrap()
        .describe();
        assert_eq!(described, "https://example.com/w");
        assert!(HttpWitness::new("ftp://example.com", Duration::from_secs(1)).is_err());
    }
}
