//! [`AuditLog`]: the request-path queue, the writer task, and the operator operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::error::AuditError;
use crate::event::Event;
use crate::key::MacKey;
use crate::record::{Anchor, Checkpoint, Record};
use crate::store::{AuditStore, PAGE};
use crate::verify::{Fault, FaultKind, Report, Slot, Walker};

/// Default capacity of the queue between [`AuditLog::record`] and the writer, in events.
pub const DEFAULT_QUEUE: usize = 4096;
/// Default largest batch the writer appends in one transaction.
pub const DEFAULT_BATCH: usize = 256;
/// Default longest time the writer waits for more events to fill a batch once it holds
/// one (see [`AuditLogBuilder::linger`]).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);
/// Largest `limit` of [`AuditLog::for_subject`].
pub const MAX_SUBJECT_LIMIT: u32 = 1000;
/// First wait before the writer retries a failed batch; it doubles up to
/// [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_millis(50);
/// Longest wait between two attempts of a failed batch.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// The current time in unix milliseconds (0 before 1970, saturating far in the future).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An event and the time it was recorded.
type Queued = (i64, Event);

/// What the writer has done so far.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Events appended since start.
    written: u64,
    /// Failed append attempts since start.
    failures: u64,
    /// Batches appended since start.
    batches: u64,
    /// Time spent in the store's append (successful and failed attempts).
    busy: Duration,
    /// Of `busy`, the time successful appends waited for their commit.
    commit: Duration,
}

/// What the writer task of an [`AuditLog`] has done since it started: the figures an
/// operator exports as metrics (`GET /metrics` of the reference backend) and the load
/// bench reads to show the audit trail's share of a request.
///
/// Counters only grow; take two snapshots and subtract ([`WriterStats::since`]) to see
/// one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// Events handed to [`AuditLog::record`].
    pub enqueued: u64,
    /// Events the writer has made durable.
    pub written: u64,
    /// Batches (transactions) it took to write them.
    pub batches: u64,
    /// Failed append attempts (each is retried).
    pub failures: u64,
    /// Wall-clock time the writer spent inside the store's append, over every attempt:
    /// the sealing of each record (one HMAC-SHA256), the SQL round trips and the commit.
    pub busy: Duration,
    /// Of [`WriterStats::busy`], the time spent waiting for commits to be durable (for
    /// SQLite with `synchronous = FULL`, the fsync of the write-ahead log): waiting on
    /// the disk, not work. `busy - commit` is the writer's work: sealing and SQL, an
    /// upper bound on the CPU the audit trail costs the process (it also counts time
    /// the writer waited for a CPU).
    pub commit: Duration,
}

impl WriterStats {
    /// The change from `earlier` to `self` (saturating at zero).
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            enqueued: self.enqueued.saturating_sub(earlier.enqueued),
            written: self.written.saturating_sub(earlier.written),
            batches: self.batches.saturating_sub(earlier.batches),
            failures: self.failures.saturating_sub(earlier.failures),
            busy: self.busy.saturating_sub(earlier.busy),
            commit: self.commit.saturating_sub(earlier.commit),
        }
    }
}

#[derive(Debug)]
struct Shared {
    store: AuditStore,
    key: MacKey,
    /// Last time (unix ms) a full queue was reported, to report it at most once a second.
    full_warned: AtomicI64,
    /// Events handed to the queue since start (counted before they are sent).
    enqueued: AtomicU64,
    /// The writer's progress.
    progress: watch::Receiver<Progress>,
}

/// The audit log: one HMAC chain in one store, fed by every part of the service.
///
/// [`AuditLog::record`] is for the request path: it queues the event (stamped with the
/// current time) for a writer task that appends batches in one transaction each, and it
/// never fails. The other methods talk to the store directly. Clones share the queue
/// and the writer; the writer ends when the last clone is dropped, after writing what
/// is queued (call [`AuditLog::flush`] before shutting down the runtime).
#[derive(Debug, Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Queued>,
}

/// Configures an [`AuditLog`].
#[derive(Debug)]
pub struct AuditLogBuilder {
    store: AuditStore,
    key: MacKey,
    queue: usize,
    batch: usize,
    linger: Duration,
}

impl AuditLogBuilder {
    /// Capacity of the queue in events (default [`DEFAULT_QUEUE`], at least 1). When it
    /// is full, [`AuditLog::record`] waits for room.
    #[must_use]
    pub fn queue(mut self, events: usize) -> Self {
        self.queue = events.max(1);
        self
    }

    /// Largest batch appended in one transaction (default [`DEFAULT_BATCH`], at least 1).
    #[must_use]
    pub fn batch(mut self, events: usize) -> Self {
        self.batch = events.max(1);
        self
    }

    /// Once the writer holds at least one event, how long it waits for more before it
    /// appends a batch smaller than [`AuditLogBuilder::batch`] (default
    /// [`DEFAULT_LINGER`]; zero: append at once). Events are durable up to this much
    /// later; the request path is not slowed (it only enqueues), and each transaction's
    /// fixed cost is shared by more events under load.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Checks the store and the key, then starts the writer task on the current Tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`AuditError::NoRuntime`] outside a Tokio runtime; [`AuditError::Unavailable`]
    /// when the store cannot be read; [`AuditError::WrongKey`] when the chain was
    /// written with another key.
    pub async fn build(self) -> Result<AuditLog, AuditError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AuditError::NoRuntime)?;
        self.store.head().await?.check_key(&self.key)?;
        let (tx, rx) = mpsc::channel(self.queue);
        let (progress_tx, progress) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            store: self.store,
            key: self.key,
            full_warned: AtomicI64::new(i64::MIN),
            enqueued: AtomicU64::new(0),
            progress,
        });
        runtime.spawn(writer(
            shared.clone(),
            rx,
            progress_tx,
            self.batch,
            self.linger,
        ));
        Ok(AuditLog { shared, tx })
    }
}

impl AuditLog {
    /// A builder for a log over `store` (any SQL store, `.into()`) sealed with `key`.
    #[must_use]
    pub fn builder(store: impl Into<AuditStore>, key: MacKey) -> AuditLogBuilder {
        AuditLogBuilder {
            store: store.into(),
            key,
            queue: DEFAULT_QUEUE,
            batch: DEFAULT_BATCH,
            linger: DEFAULT_LINGER,
        }
    }

    /// [`AuditLog::builder`] with the defaults, built.
    ///
    /// # Errors
    ///
    /// As [`AuditLogBuilder::build`].
    pub async fn new(store: impl Into<AuditStore>, key: MacKey) -> Result<Self, AuditError> {
        Self::builder(store, key).build().await
    }

    /// Queues `event` for the writer, stamped with the current time. Never fails the
    /// caller and costs an enqueue; when the queue is full it waits for room (the
    /// service slows down rather than losing audit events) and warns (code
    /// `audit.queue_full`, at most once a second). When the store fails the writer keeps
    /// the events and retries (code `audit.store_failed`). Only if the writer task is
    /// gone (the runtime is shutting down) is the event lost, with an error (code
    /// `audit.writer_closed`) naming its action.
    pub async fn record(&self, event: Event) {
        let msg = (now_ms(), event);
        // Counted before it is sent: see `flush`.
        self.shared.enqueued.fetch_add(1, Ordering::SeqCst);
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(msg)) => {
                self.warn_full();
                msg
            }
            Err(mpsc::error::TrySendError::Closed(msg)) => msg,
        };
        if let Err(mpsc::error::SendError((_, event))) = self.tx.send(msg).await {
            tracing::error!(
                code = "audit.writer_closed",
                action = %event.action(),
                "audit writer stopped: event lost"
            );
        }
    }

    fn warn_full(&self) {
        let now = now_ms();
        let last = self.shared.full_warned.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .shared
                .full_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                code = "audit.queue_full",
                capacity = self.tx.max_capacity(),
                "audit queue full: callers wait for the writer"
            );
        }
    }

    /// Appends `event` now, in its own transaction, and returns the durable record (the
    /// CLI path, and events that must be on disk before the caller answers).
    ///
    /// # Errors
    ///
    /// [`AuditError::Unavailable`] when the store fails; [`AuditError::WrongKey`].
    pub async fn append(&self, event: Event) -> Result<Record, AuditError> {
        let events = [(now_ms(), event)];
        let mut records = self
            .shared
            .store
            .append(&self.shared.key, &events)
            .await?
            .records(&events);
        records.pop().ok_or(AuditError::Unavailable {
            operation: "append",
            source: None,
        })
    }

    /// Appends several events in one transaction, consecutive in the chain.
    ///
    /// # Errors
    ///
    /// As [`AuditLog::append`].
    pub async fn append_batch(
        &self,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<Vec<Record>, AuditError> {
        let at = now_ms();
        let events: Vec<(i64, Event)> = events.into_iter().map(|e| (at, e)).collect();
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let appended = self.shared.store.append(&self.shared.key, &events).await?;
        Ok(appended.records(&events))
    }

    /// Waits until every event queued by [`AuditLog::record`] before this call is
    /// durable.
    ///
    /// # Errors
    ///
    /// [`AuditError::Unavailable`] when the writer's attempt failed (it keeps the events
    /// and retries; flush again to wait for it); [`AuditError::Closed`] when the writer
    /// is gone.
    pub async fn flush(&self) -> Result<(), AuditError> {
        // Every event whose `record` returned before this point was counted before it
        // was sent, and the writer appends in queue order: once it has written as many
        // events as were counted here, those events are all among them.
        let target = self.shared.enqueued.load(Ordering::SeqCst);
        let mut progress = self.shared.progress.clone();
        let failures = progress.borrow_and_update().failures;
        loop {
            let now = *progress.borrow_and_update();
            if now.written >= target {
                return Ok(());
            }
            if now.failures > failures {
                return Err(AuditError::Unavailable {
                    operation: "flush",
                    source: None,
                });
            }
            progress.changed().await.map_err(|_| AuditError::Closed)?;
        }
    }

    /// The writer's counters since the log was built (shared by every clone).
    #[must_use]
    pub fn writer_stats(&self) -> WriterStats {
        let progress = *self.shared.progress.borrow();
        WriterStats {
            enqueued: self.shared.enqueued.load(Ordering::Relaxed),
            written: progress.written,
            batches: progress.batches,
            failures: progress.failures,
            busy: progress.busy,
            commit: progress.commit,
        }
    }

    /// The newest place of the chain (the head row), to be kept outside the database
    /// and later given to [`AuditLog::verify_against`]: only such an external anchor
    /// shows that records were cut from the end.
    ///
    /// # Errors
    ///
    /// [`AuditError::Unavailable`].
    pub async fn head(&self) -> Result<Anchor, AuditError> {
        Ok(self.shared.store.head().await?.anchor)
    }

    /// Up to `limit` (at most [`MAX_SUBJECT_LIMIT`]) of `subject`'s events, newest first
    /// (`GET /api/audit`). Each record's MAC is checked (not the links between them:
    /// that is [`AuditLog::verify`]'s job).
    ///
    /// # Errors
    ///
    /// [`AuditError::Unavailable`]; [`AuditError::Tampered`] naming the first record
    /// whose MAC does not verify; [`AuditError::Corrupt`].
    pub async fn for_subject(&self, subject: &str, limit: u32) -> Result<Vec<Record>, AuditError> {
        let limit = limit.min(MAX_SUBJECT_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let slots = self.shared.store.for_subject(subject, limit).await?;
        self.checked(slots)
    }

    /// Each slot's record, its MAC verified.
    fn checked(&self, slots: Vec<Slot>) -> Result<Vec<Record>, AuditError> {
        slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Record(r) if r.verify(&self.shared.key) => Ok(r),
                other => Err(AuditError::Tampered(Fault {
                    seq: other.seq(),
                    kind: FaultKind::Edited,
                })),
            })
            .collect()
    }

    /// Writes every record with `at >= since_ms` (unix milliseconds) as JSON lines (one
    /// [`Record`] per line, FORMAT.md "Export") in sequence order, and returns how many.
    /// Each record's MAC is checked as it is written.
    ///
    /// # Errors
    ///
    /// [`AuditError::Unavailable`]; [`AuditError::Export`] when `out` fails;
    /// [`AuditError::Tampered`] at a record whose MAC does not verify (the lines before
    /// it are written).
    pub async fn export_since(
        &self,
        since_ms: i64,
        out: &mut impl std::io::Write,
    ) -> Result<u64, AuditError> {
        let mut after = 0;
        let mut written = 0;
        loop {
            let slots = self.shared.store.since(since_ms, after, PAGE).await?;
            let full = slots.len() == PAGE as usize;
            for record in self.checked(slots)? {
                serde_json::to_writer(&mut *out, &record)
                    .map_err(|e| AuditError::Export(e.into()))?;
                out.write_all(b"\n").map_err(AuditError::Export)?;
                after = record.seq;
                written += 1;
            }
            if !full {
                break;
            }
        }
        out.flush().map_err(AuditError::Export)?;
        Ok(written)
    }

    /// Verifies the whole chain from the newest checkpoint (or record 1): every MAC,
    /// every link, no gap, and the head row. The report names the first fault (README,
    /// "Verification"). A fault is a result, not an error.
    ///
    /// # Errors
    ///
    /// [`AuditError::Unavailable`]; [`AuditError::WrongKey`].
    pub async fn verify(&self) -> Result<Report, AuditError> {
        self.verify_with(&[]).await
    }

    /// [`AuditLog::verify`], and the chain must also pass through `anchor` (a
    /// [`AuditLog::head`] kept outside the database): a chain cut back behind it is
    /// reported as [`FaultKind::Deleted`], a chain rewritten through it as
    /// [`FaultKind::Anchor`]. An anchor older than the newest checkpoint cannot be
    /// checked (its record was dropped) and is accepted.
    ///
    /// # Errors
    ///
    /// As [`AuditLog::verify`].
    pub async fn verify_against(&self, anchor: Anchor) -> Result<Report, AuditError> {
        self.verify_with(&[anchor]).await
    }

    async fn verify_with(&self, external: &[Anchor]) -> Result<Report, AuditError> {
        let store = &self.shared.store;
        let key = &self.shared.key;
        // The head first: every record committed before this read is walked below.
        let head = store.head().await?;
        head.check_key(key)?;
        let checkpoint = store.checkpoint().await?;
        let start = match checkpoint {
            Some(c) if !c.verify(key) => {
                let walker = Walker::new(key, c.anchor(), Vec::new(), None);
                return Ok(walker.report(
                    Some(c),
                    Some(Fault {
                        seq: c.seq,
                        kind: FaultKind::Checkpoint,
                    }),
                ));
            }
            Some(c) => c.anchor(),
            None => Anchor::EMPTY,
        };
        let mut anchors = external.to_vec();
        anchors.push(head.anchor);
        let mut walker = Walker::new(key, start, anchors, Some(head.anchor.seq));
        if head.anchor.seq < start.seq {
            // The head was rewound behind the checkpoint.
            let fault = Fault {
                seq: head.anchor.seq,
                kind: FaultKind::Anchor,
            };
            return Ok(walker.report(checkpoint, Some(fault)));
        }
        if let Some(fault) = walker.check_start() {
            return Ok(walker.report(checkpoint, Some(fault)));
        }
        let mut page = store.page(start.seq, PAGE).await?;
        while !page.is_empty() {
            let next = match page.last() {
                Some(last) if page.len() == PAGE as usize => store.page(last.seq(), PAGE).await?,
                _ => Vec::new(),
            };
            let n = page.len();
            let mut window = page;
            window.extend(next.iter().cloned());
            for i in 0..n {
                if let Some(fault) = walker.step(&window, i) {
                    return Ok(walker.report(checkpoint, Some(fault)));
                }
            }
            page = next;
        }
        let fault = walker.finish();
        Ok(walker.report(checkpoint, fault))
    }

    /// Retention: verifies the chain, then drops the longest prefix of records older
    /// than `cutoff_ms` (unix milliseconds) in one transaction that first writes a
    /// [`Checkpoint`] (the last dropped record's seq and MAC, MAC'd with the key), so
    /// that verification still starts from a trusted point. Returns the checkpoint, or
    /// `None` when nothing is old enough. A record newer than the cutoff stops the
    /// prefix: nothing after it is dropped, whatever its time.
    ///
    /// # Errors
    ///
    /// [`AuditError::Tampered`] when the chain does not verify (nothing is dropped: a
    /// checkpoint only ever vouches for a verified prefix); [`AuditError::Unavailable`];
    /// [`AuditError::WrongKey`].
    pub async fn prune_before(&self, cutoff_ms: i64) -> Result<Option<Checkpoint>, AuditError> {
        let report = self.verify().await?;
        if let Some(fault) = report.fault {
            return Err(AuditError::Tampered(fault));
        }
        self.shared
            .store
            .prune(&self.shared.key, cutoff_ms, report.last.seq, now_ms())
            .await
    }
}

/// The writer task: takes up to `batch` queued events at a time and appends them in one
/// transaction; on failure keeps them, warns, and retries with a doubling delay. It
/// stops when every [`AuditLog`] clone is gone and the queue is drained.
async fn writer(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Queued>,
    progress: watch::Sender<Progress>,
    batch: usize,
    linger: Duration,
) {
    let mut pending: Vec<Queued> = Vec::with_capacity(batch);
    loop {
        if rx.recv_many(&mut pending, batch).await == 0 {
            return;
        }
        // Wait a little for a fuller batch (each transaction has a fixed cost, round
        // trips and the commit, that a bigger batch shares), unless the queue already
        // holds one. One timer, not a wake-up per arriving event; then take what came.
        if !linger.is_zero() && rx.len() < batch.saturating_sub(pending.len()) {
            tokio::time::sleep(linger).await;
        }
        while pending.len() < batch {
            match rx.try_recv() {
                Ok(message) => pending.push(message),
                Err(_) => break,
            }
        }
        let mut delay = RETRY_MIN;
        loop {
            let started = std::time::Instant::now();
            let appended = shared.store.append(&shared.key, &pending).await;
            let spent = started.elapsed();
            match appended {
                Ok(appended) => {
                    let n = u64::try_from(pending.len()).unwrap_or(u64::MAX);
                    progress.send_modify(|p| {
                        p.written = p.written.saturating_add(n);
                        p.batches = p.batches.saturating_add(1);
                        p.busy = p.busy.saturating_add(spent);
                        p.commit = p.commit.saturating_add(appended.commit);
                    });
                    pending.clear();
                    break;
                }
                Err(e) => {
                    tracing::warn!(
                        code = "audit.store_failed",
                        error = e.code(),
                        operation = "append",
                        events = pending.len(),
                        retry_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "audit store failed: keeping the events and retrying"
                    );
                    progress.send_modify(|p| {
                        p.failures = p.failures.saturating_add(1);
                        p.busy = p.busy.saturating_add(spent);
                    });
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}
