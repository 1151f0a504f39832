//! The store's one writer: audit records and (when it is started on a [`GroupCommit`] store)
//! the journal appends of every task go through one task, which commits whatever is queued in
//! one transaction (group commit) and signs an audit checkpoint every N records, at the latest
//! a set time after the first record it does not cover, on flush and on shutdown. Each
//! checkpoint signs the chain head and the Merkle root of the records up to it, and is then
//! published to the configured witnesses.
//!
//! Audit records are enqueued and the caller goes on; they commit with the next batch, which is
//! usually the journal append that follows the decision they record. A journal append's caller
//! waits until its batch is durable. Batches grow under load only: the writer never waits to
//! fill one, so a lone task pays no extra latency.
//!
//! Governance records must not be lost, so the writer never drops one: a full queue makes
//! [`AuditWriter::record`] wait (backpressure) instead, and a failed append is retried until it
//! succeeds. [`AuditWriter::shutdown`] returns once every accepted record is committed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use amas_types::{JournalEvent, JournalRecord, TaskId};

use super::AuditLog;
use super::chain::{self, ChainLink};
use super::checkpoint::{Checkpoint, CheckpointSigner};
use super::error::AuditError;
use super::merkle::{self, Frontier};
use super::record::AuditRecord;
use super::witness::Witness;
use crate::StoreError;
use crate::commit::{Append, GroupCommit};
use crate::leases::Fence;

/// Tuning of an [`AuditWriter`].
#[derive(Clone, Debug)]
pub struct AuditWriterConfig {
    /// Records the queue holds before [`AuditWriter::record`] waits.
    pub capacity: usize,
    /// Records appended per transaction at most.
    pub max_batch: usize,
    /// A checkpoint is signed once at least this many records were appended since the last.
    pub checkpoint_every: u64,
    /// ... and at the latest this long after the last checkpoint when records came since, so
    /// a quiet server's last records are not left unsigned (and unwitnessed) for long. Zero:
    /// only by count, flush and shutdown.
    pub checkpoint_interval: Duration,
    /// Where every signed checkpoint is also published, outside the database.
    pub witnesses: Vec<Arc<dyn Witness>>,
    /// The first wait after a failed append; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How long a batch nobody waits on (audit records, appends queued with
    /// [`AuditWriter::send`]) may wait for the next append somebody does wait on, so both share
    /// one commit. A waited-on append never lingers.
    pub linger: Duration,
}

impl Default for AuditWriterConfig {
    fn default() -> Self {
        Self {
            capacity: 4096,
            max_batch: 512,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            witnesses: Vec::new(),
            retry_initial: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            linger: Duration::from_millis(2),
        }
    }
}

type Reply = oneshot::Sender<Result<Option<ChainLink>, AuditError>>;
type Appended = oneshot::Sender<Result<Vec<JournalRecord>, StoreError>>;

/// The answer to an append sent with [`AuditWriter::send`]: its records once their commit is
/// durable, or why it was refused.
pub type PendingAppend = oneshot::Receiver<Result<Vec<JournalRecord>, StoreError>>;

/// Called by the writer with the records of every committed append, in commit order, before
/// the appender is answered (the runtime publishes them to live subscribers from here).
pub type JournalListener = Arc<dyn Fn(&[JournalRecord]) + Send + Sync>;

enum Command {
    Record(Box<AuditRecord>),
    /// An append and its answer; `true` when a caller waits on it.
    Append(Box<Append>, Appended, bool),
    Flush(Reply),
    Shutdown(Reply),
}

/// Where the worker writes: the audit log alone, or a store that commits journal appends and
/// audit records together.
#[derive(Clone)]
enum Backend {
    Audit(Arc<dyn AuditLog>),
    Group(Arc<dyn GroupCommit>),
}

impl Backend {
    fn log(&self) -> &dyn AuditLog {
        match self {
            Self::Audit(log) => log.as_ref(),
            Self::Group(store) => store.as_ref(),
        }
    }
}

/// Appends audit records off the caller's path. Share it as `Arc<AuditWriter>`.
pub struct AuditWriter {
    tx: mpsc::Sender<Command>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Whether journal appends go through this writer.
    journal: bool,
    listener: Arc<std::sync::RwLock<Option<JournalListener>>>,
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
        Self::spawn(Backend::Audit(log), signer, config)
    }

    /// Starts the store's one writer: audit records and journal appends ([`Self::append`]),
    /// group-committed.
    #[must_use]
    pub fn start_group(
        store: Arc<dyn GroupCommit>,
        signer: Arc<dyn CheckpointSigner>,
        config: AuditWriterConfig,
    ) -> Self {
        Self::spawn(Backend::Group(store), signer, config)
    }

    fn spawn(
        backend: Backend,
        signer: Arc<dyn CheckpointSigner>,
        config: AuditWriterConfig,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let journal = matches!(backend, Backend::Group(_));
        let listener = Arc::new(std::sync::RwLock::new(None));
        let worker = Worker {
            backend,
            signer,
            config,
            rx,
            last_checkpoint: None,
            written: None,
            tree: None,
            next_due: tokio::time::Instant::now(),
            listener: Arc::clone(&listener),
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
            journal,
            listener,
        }
    }

    /// Calls `listener` with the records of every append this writer commits from now on, in
    /// commit order, before the appender is answered. One listener: a second replaces the first.
    pub fn listen(&self, listener: JournalListener) {
        let mut slot = self
            .listener
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(listener);
    }

    /// Whether journal appends go through this writer ([`Self::start_group`]).
    #[must_use]
    pub fn has_journal(&self) -> bool {
        self.journal
    }

    /// Appends `events` to `task`'s journal after `expected_last_seq`, as
    /// [`crate::TaskJournal::append`] does, in the next group commit; returns once that commit
    /// is durable. Audit records queued before this call commit with it (or before it).
    ///
    /// # Errors
    /// As [`crate::TaskJournal::append`]; [`StoreError::Closed`] after shutdown or for a writer
    /// without a journal.
    pub async fn append(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
    ) -> Result<Vec<JournalRecord>, StoreError> {
        self.append_fenced(task, expected_last_seq, events, None)
            .await
    }

    /// [`Self::append`] of a worker holding a lease: the store refuses it unless `fence` is
    /// current ([`crate::TaskJournal::append_fenced`]).
    ///
    /// # Errors
    /// As [`Self::append`]; [`StoreError::LeaseLost`].
    pub async fn append_fenced(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: &[JournalEvent],
        fence: Option<Fence>,
    ) -> Result<Vec<JournalRecord>, StoreError> {
        let append = Append {
            task,
            expected_last_seq,
            events: events.to_vec(),
            fence,
        };
        self.enqueue(append, true)
            .await?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Queues an append without waiting for its commit: appends are committed in the order
    /// they are queued, so a caller may queue the next append of the same task (expecting the
    /// seqs this one will take) before this one is durable. Await the answer before anything
    /// outside AMAS depends on the events.
    ///
    /// # Errors
    /// [`StoreError::Closed`] after shutdown or for a writer without a journal.
    pub async fn send(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: Vec<JournalEvent>,
    ) -> Result<PendingAppend, StoreError> {
        self.send_fenced(task, expected_last_seq, events, None)
            .await
    }

    /// [`Self::send`] of a worker holding a lease (see [`Self::append_fenced`]).
    ///
    /// # Errors
    /// As [`Self::send`].
    pub async fn send_fenced(
        &self,
        task: TaskId,
        expected_last_seq: u64,
        events: Vec<JournalEvent>,
        fence: Option<Fence>,
    ) -> Result<PendingAppend, StoreError> {
        let append = Append {
            task,
            expected_last_seq,
            events,
            fence,
        };
        self.enqueue(append, false).await
    }

    async fn enqueue(&self, append: Append, waited: bool) -> Result<PendingAppend, StoreError> {
        if !self.journal {
            return Err(StoreError::Closed);
        }
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Append(Box::new(append), reply, waited))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(done)
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

/// Sorts a command into the batch being gathered; returns a control command (flush, shutdown)
/// for the caller, and whether somebody waits on what was added.
fn take(
    command: Command,
    batch: &mut Vec<AuditRecord>,
    appends: &mut Vec<(Append, Appended)>,
) -> (Option<Command>, bool) {
    match command {
        Command::Record(rec) => {
            batch.push(*rec);
            (None, false)
        }
        Command::Append(append, reply, waited) => {
            appends.push((*append, reply));
            (None, waited)
        }
        other => (Some(other), false),
    }
}

struct Worker {
    backend: Backend,
    signer: Arc<dyn CheckpointSigner>,
    config: AuditWriterConfig,
    rx: mpsc::Receiver<Command>,
    /// The seq of the last checkpoint known; `None` until read from the log.
    last_checkpoint: Option<u64>,
    /// The last record this writer appended.
    written: Option<ChainLink>,
    /// The Merkle tree of the records up to the last checkpoint; built from the log at the
    /// first checkpoint, then extended with the records since (any process's).
    tree: Option<Frontier>,
    /// When records not covered by a checkpoint get one regardless of their number.
    next_due: tokio::time::Instant,
    listener: Arc<std::sync::RwLock<Option<JournalListener>>>,
}

/// Records read per round trip while growing the tree.
const TREE_PAGE: u32 = 10_000;

/// Grows `tree` with the records after it up to `link` (which must be where the chain says).
async fn grow(log: &dyn AuditLog, tree: &mut Frontier, link: &ChainLink) -> Result<(), StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("audit tree: {what}"));
    if tree.size() > link.seq {
        return Err(corrupt(format!(
            "the tree holds {} records, the checkpoint is at {}",
            tree.size(),
            link.seq
        )));
    }
    while tree.size() < link.seq {
        let page = log.links(tree.size() + 1, link.seq, TREE_PAGE).await?;
        if page.is_empty() {
            return Err(corrupt(format!("record {} is missing", tree.size() + 1)));
        }
        for l in page {
            if l.seq != tree.size() + 1 {
                return Err(corrupt(format!("record {} is missing", tree.size() + 1)));
            }
            if l.seq == link.seq && l.hash != link.hash {
                return Err(corrupt(format!(
                    "record {} has another hash than the writer appended",
                    l.seq
                )));
            }
            let leaf = merkle::leaf(&l.hash)
                .ok_or_else(|| corrupt(format!("record {} has a malformed hash", l.seq)))?;
            tree.push(leaf);
        }
    }
    Ok(())
}

impl Worker {
    /// Whether records were appended that no checkpoint covers yet.
    fn unsigned(&self) -> bool {
        self.written
            .as_ref()
            .is_some_and(|w| self.last_checkpoint.is_none_or(|c| w.seq > c))
    }

    /// The next command; signs a checkpoint first when one is due by time.
    async fn next(&mut self) -> Option<Command> {
        loop {
            if self.config.checkpoint_interval.is_zero() || !self.unsigned() {
                return self.rx.recv().await;
            }
            match tokio::time::timeout_at(self.next_due, self.rx.recv()).await {
                Ok(command) => return command,
                Err(_) => {
                    if let Err(e) = self.checkpoint().await {
                        tracing::error!(error.code = e.code(), error.message = %e, "Audit checkpoint failed.");
                    }
                }
            }
        }
    }

    async fn run(mut self) {
        let mut batch = Vec::new();
        let mut appends = Vec::new();
        self.next_due = tokio::time::Instant::now() + self.config.checkpoint_interval;
        while let Some(command) = self.next().await {
            let (mut control, mut waited) = take(command, &mut batch, &mut appends);
            // Take what is already queued, without waiting: batches grow under load only.
            while control.is_none()
                && batch.len() < self.config.max_batch
                && appends.len() < self.config.max_batch
            {
                match self.rx.try_recv() {
                    Ok(command) => {
                        let (c, w) = take(command, &mut batch, &mut appends);
                        control = c;
                        waited |= w;
                    }
                    Err(_) => break,
                }
            }
            // Nobody waits on this batch: give it a moment to share the commit of the next
            // append somebody does wait on (a task's next step usually follows at once).
            if control.is_none() && !waited && !self.config.linger.is_zero() {
                let deadline = tokio::time::Instant::now() + self.config.linger;
                while !waited
                    && control.is_none()
                    && batch.len() < self.config.max_batch
                    && appends.len() < self.config.max_batch
                {
                    match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                        Ok(Some(command)) => {
                            let (c, w) = take(command, &mut batch, &mut appends);
                            control = c;
                            waited |= w;
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            if !appends.is_empty() {
                self.commit(std::mem::take(&mut appends), std::mem::take(&mut batch))
                    .await;
            } else if !batch.is_empty() {
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
                Some(Command::Record(_) | Command::Append(..)) | None => {}
            }
        }
        // Every sender is gone (the writer was dropped without shutdown): all is written.
        if let Err(e) = self.checkpoint().await {
            tracing::error!(error.code = e.code(), error.message = %e, "Final audit checkpoint failed.");
        }
        self.close_witnesses().await;
    }

    async fn close_witnesses(&self) {
        for witness in &self.config.witnesses {
            if let Err(e) = witness.close().await {
                tracing::error!(error.code = e.code(), error.message = %e, audit.witness = %witness.describe(), "Audit witness not closed cleanly.");
            }
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
                // Accepted before the shutdown: its caller is owed the commit.
                Command::Append(append, reply, _) => {
                    self.commit(vec![(*append, reply)], std::mem::take(&mut batch))
                        .await;
                }
                Command::Flush(reply) | Command::Shutdown(reply) => waiting.push(reply),
            }
        }
        if !batch.is_empty() {
            self.write(batch).await;
        }
        let result = self.checkpoint().await;
        self.close_witnesses().await;
        for reply in waiting {
            let _ = reply.send(Err(AuditError::Closed));
        }
        result
    }

    /// Commits `appends` and `records` in one transaction and answers each append. When the
    /// batch as a whole fails, nothing of it was committed: each append is then tried alone
    /// (so one bad append cannot sink the others, and its caller gets its own error) and the
    /// records go through [`Self::write`], which retries until they are stored.
    async fn commit(&mut self, appends: Vec<(Append, Appended)>, records: Vec<AuditRecord>) {
        let Backend::Group(store) = self.backend.clone() else {
            for (_, reply) in appends {
                let _ = reply.send(Err(StoreError::Closed));
            }
            if !records.is_empty() {
                self.write(records).await;
            }
            return;
        };
        let (batch, replies): (Vec<Append>, Vec<Appended>) = appends.into_iter().unzip();
        match store.group_commit(&batch, &records).await {
            Ok(committed) => {
                let listener = self.listener();
                for (reply, result) in replies.into_iter().zip(committed.appends) {
                    if let (Some(listen), Ok(records)) = (&listener, &result) {
                        listen(records);
                    }
                    let _ = reply.send(result);
                }
                self.stored(committed.audit.last()).await;
            }
            Err(e) => {
                tracing::warn!(
                    error.code = e.code(),
                    error.message = %e,
                    journal.batch = batch.len(),
                    "Group commit failed; committing its appends one by one."
                );
                let listener = self.listener();
                for (append, reply) in batch.into_iter().zip(replies) {
                    let result = crate::TaskJournal::append_fenced(
                        store.as_ref(),
                        append.task,
                        append.expected_last_seq,
                        &append.events,
                        append.fence,
                    )
                    .await;
                    if let (Some(listen), Ok(records)) = (&listener, &result) {
                        listen(records);
                    }
                    let _ = reply.send(result);
                }
                if !records.is_empty() {
                    self.write(records).await;
                }
            }
        }
    }

    fn listener(&self) -> Option<JournalListener> {
        self.listener
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Appends `batch` in one transaction, retrying until it succeeds: a governance record is
    /// never dropped. Then signs a checkpoint when one is due.
    async fn write(&mut self, batch: Vec<AuditRecord>) {
        let mut wait = self.config.retry_initial;
        let stored = loop {
            match self.backend.log().append(&batch).await {
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
        self.stored(stored.last()).await;
    }

    /// Notes the last record committed and signs a checkpoint when one is due.
    async fn stored(&mut self, last: Option<&super::StoredAuditRecord>) {
        let Some(last) = last else {
            return;
        };
        self.written = Some(ChainLink {
            seq: last.seq,
            hash: last.hash.clone(),
        });
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
        let seq = self
            .backend
            .log()
            .last_checkpoint()
            .await?
            .map_or(0, |c| c.up_to_seq);
        self.last_checkpoint = Some(seq);
        Ok(seq)
    }

    /// Signs and stores a checkpoint at the last record this writer appended, unless one
    /// already covers it, then publishes it to the witnesses.
    async fn checkpoint(&mut self) -> Result<Option<ChainLink>, AuditError> {
        self.next_due = tokio::time::Instant::now() + self.config.checkpoint_interval;
        let Some(link) = self.written.clone() else {
            return Ok(None);
        };
        if self.last_checkpoint().await? >= link.seq {
            return Ok(Some(link));
        }
        let cp = match self.tree_root(&link).await {
            Some(root) => Checkpoint::sign_tree(&link, &root, self.signer.as_ref())?,
            None => Checkpoint::sign(&link, self.signer.as_ref())?,
        };
        self.backend.log().add_checkpoint(&cp).await?;
        self.last_checkpoint = Some(link.seq);
        tracing::debug!(audit.seq = link.seq, "Audit checkpoint signed.");
        for witness in &self.config.witnesses {
            if let Err(e) = witness.publish(&cp).await {
                tracing::error!(
                    error.code = e.code(),
                    error.message = %e,
                    audit.seq = link.seq,
                    audit.witness = %witness.describe(),
                    "Audit checkpoint not written to its witness."
                );
            }
        }
        Ok(Some(link))
    }

    /// The Merkle root of the records up to `link`; `None` (the checkpoint then signs the
    /// chain head only) when the log's records do not form the chain the writer appended.
    async fn tree_root(&mut self, link: &ChainLink) -> Option<String> {
        let mut tree = self.tree.take().unwrap_or_default();
        match grow(self.backend.log(), &mut tree, link).await {
            Ok(()) => {
                let root = merkle::to_hex(&tree.root());
                self.tree = Some(tree);
                Some(root)
            }
            Err(e) => {
                tracing::error!(error.code = e.code(), error.message = %e, audit.seq = link.seq, "Cannot compute the audit tree root; signing the chain head only.");
                None
            }
        }
    }
}
