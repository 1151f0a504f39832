//! The batched audit writer: callers enqueue records and go on; one task appends them in
//! batches (one transaction each) and signs a checkpoint every N records, on flush and on
//! shutdown.
//!
//! Governance records must not be lost, so the writer never drops one: a full queue makes
//! [`AuditWriter::record`] wait (backpressure) instead, and a failed append is retried until it
//! succeeds. [`AuditWriter::shutdown`] returns once every accepted record is committed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::AuditLog;
use super::chain::{self, ChainLink};
use super::checkpoint::{Checkpoint, CheckpointSigner};
use super::error::AuditError;
use super::record::AuditRecord;
use crate::StoreError;

/// Tuning of an [`AuditWriter`].
#[derive(Clone, Debug)]
pub struct AuditWriterConfig {
    /// Records the queue holds before [`AuditWriter::record`] waits.
    pub capacity: usize,
    /// Records appended per transaction at most.
    pub max_batch: usize,
    /// A checkpoint is signed once at least this many records were appended since the last.
    pub checkpoint_every: u64,
    /// The first wait after a failed append; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Default for AuditWriterConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            max_batch: 512,
            checkpoint_every: 1000,
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
        }
    }
}

type Reply = oneshot::Sender<Result<Option<ChainLink>, AuditError>>;

enum Command {
    Record(Box<AuditRecord>),
    Flush(Reply),
    Shutdown(Reply),
}

/// Appends audit records off the caller's path. Share it as `Arc<AuditWriter>`.
pub struct AuditWriter {
    tx: mpsc::Sender<Command>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("queued", &(self.tx.max_capacity() - self.tx.capacity()))
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writer task on the current Tokio runtime.
    #[must_use]
    pub fn start(
        log: Arc<dyn AuditLog>,
        signer: Arc<dyn CheckpointSigner>,
        config: AuditWriterConfig,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let worker = Worker {
            log,
            signer,
            config,
            rx,
            last_checkpoint: None,
            written: None,
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "joined by AuditWriter::shutdown, after every tracked task that may still \
                      write (amas serve closes the audit log last)"
        )]
        let worker = tokio::spawn(worker.run());
        Self {
            tx,
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Enqueues `record`. Returns as soon as it is queued; waits only while the queue is full.
    ///
    /// # Errors
    /// [`AuditError::Store`] with `InvalidAppend` for a record the log cannot store (checked
    /// here, so one bad record never holds up a batch); [`AuditError::Closed`] after shutdown.
    pub async fn record(&self, record: AuditRecord) -> Result<(), AuditError> {
        chain::validate(&record)?;
        self.tx
            .send(Command::Record(Box::new(record)))
            .await
            .map_err(|_| AuditError::Closed)
    }

    /// Waits until every record enqueued before this call is committed, then signs a checkpoint
    /// over them (if any were new). Returns the last link this writer appended.
    ///
    /// # Errors
    /// [`AuditError::Closed`] after shutdown; signing or storing the checkpoint failed.
    pub async fn flush(&self) -> Result<Option<ChainLink>, AuditError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Flush(reply))
            .await
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Stops accepting records, commits everything already accepted, signs a final checkpoint
    /// and ends the writer task. Later calls to any method return [`AuditError::Closed`].
    ///
    /// # Errors
    /// As [`AuditWriter::flush`].
    pub async fn shutdown(&self) -> Result<Option<ChainLink>, AuditError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Shutdown(reply))
            .await
            .map_err(|_| AuditError::Closed)?;
        let result = done.await.map_err(|_| AuditError::Closed)?;
        if let Some(handle) = self.worker.lock().await.take() {
            let _ = handle.await;
        }
        result
    }
}

struct Worker {
    log: Arc<dyn AuditLog>,
    signer: Arc<dyn CheckpointSigner>,
    config: AuditWriterConfig,
    rx: mpsc::Receiver<Command>,
    /// The seq of the last checkpoint known; `None` until read from the log.
    last_checkpoint: Option<u64>,
    /// The last record this writer appended.
    written: Option<ChainLink>,
}

impl Worker {
    async fn run(mut self) {
        let mut batch = Vec::new();
        while let Some(command) = self.rx.recv().await {
            let mut control = match command {
                Command::Record(rec) => {
                    batch.push(*rec);
                    None
                }
                other => Some(other),
            };
            // Take what is already queued, without waiting: batches grow under load only.
            while control.is_none() && batch.len() < self.config.max_batch {
                match self.rx.try_recv() {
                    Ok(Command::Record(rec)) => batch.push(*rec),
                    Ok(other) => control = Some(other),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.write(std::mem::take(&mut batch)).await;
            }
            match control {
                Some(Command::Flush(reply)) => {
                    let _ = reply.send(self.checkpoint().await);
                }
                Some(Command::Shutdown(reply)) => {
                    let result = self.drain().await;
                    let _ = reply.send(result);
                    return;
                }
                Some(Command::Record(_)) | None => {}
            }
        }
        // Every sender is gone (the writer was dropped without shutdown): all is written.
        if let Err(e) = self.checkpoint().await {
            tracing::error!(error.code = e.code(), error.message = %e, "Final audit checkpoint failed.");
        }
    }

    /// After a shutdown request: refuse new records, write what is queued, sign the end.
    async fn drain(&mut self) -> Result<Option<ChainLink>, AuditError> {
        self.rx.close();
        let mut batch = Vec::new();
        let mut waiting = Vec::new();
        while let Some(command) = self.rx.recv().await {
            match command {
                Command::Record(rec) => {
                    batch.push(*rec);
                    if batch.len() >= self.config.max_batch {
                        self.write(std::mem::take(&mut batch)).await;
                    }
                }
                Command::Flush(reply) | Command::Shutdown(reply) => waiting.push(reply),
            }
        }
        if !batch.is_empty() {
            self.write(batch).await;
        }
        let result = self.checkpoint().await;
        for reply in waiting {
            let _ = reply.send(Err(AuditError::Closed));
        }
        result
    }

    /// Appends `batch` in one transaction, retrying until it succeeds: a governance record is
    /// never dropped. Then signs a checkpoint when one is due.
    async fn write(&mut self, batch: Vec<AuditRecord>) {
        let mut wait = self.config.retry_initial;
        let stored = loop {
            match self.log.append(&batch).await {
                Ok(stored) => break stored,
                Err(e) => {
                    tracing::warn!(
                        error.code = e.code(),
                        error.message = %e,
                        audit.batch = batch.len(),
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "Audit append failed; retrying."
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.config.retry_max);
                }
            }
        };
        if let Some(last) = stored.last() {
            self.written = Some(ChainLink {
                seq: last.seq,
                hash: last.hash.clone(),
            });
        }
        let since = match self.last_checkpoint().await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!(error.code = e.code(), error.message = %e, "Cannot read the last audit checkpoint.");
                return;
            }
        };
        let due = self
            .written
            .as_ref()
            .is_some_and(|w| w.seq.saturating_sub(since) >= self.config.checkpoint_every);
        if due && let Err(e) = self.checkpoint().await {
            tracing::error!(error.code = e.code(), error.message = %e, "Audit checkpoint failed.");
        }
    }

    async fn last_checkpoint(&mut self) -> Result<u64, StoreError> {
        if let Some(seq) = self.last_checkpoint {
            return Ok(seq);
        }
        let seq = self.log.last_checkpoint().await?.map_or(0, |c| c.up_to_seq);
        self.last_checkpoint = Some(seq);
        Ok(seq)
    }

    /// Signs and stores a checkpoint at the last record this writer appended, unless one
    /// already covers it.
    async fn checkpoint(&mut self) -> Result<Option<ChainLink>, AuditError> {
        let Some(link) = self.written.clone() else {
            return Ok(None);
        };
        if self.last_checkpoint().await? >= link.seq {
            return Ok(Some(link));
        }
        let cp = Checkpoint::sign(&link, self.signer.as_ref())?;
        self.log.add_checkpoint(&cp).await?;
        self.last_checkpoint = Some(link.seq);
        tracing::debug!(audit.seq = link.seq, "Audit checkpoint signed.");
        Ok(Some(link))
    }
}
