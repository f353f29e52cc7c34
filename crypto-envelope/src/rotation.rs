//! Key rotation: re-wrapping every stored data key under the current primary key, in
//! batches, resumable after a stop.
//!
//! Only data keys change; payloads stay byte for byte. A run can stop at any batch
//! boundary (or be killed mid-batch) and resume from its cursor; starting over from the
//! beginning is also safe, since values already under the primary key are skipped.
//! Each row is replaced only if it still holds the bytes that were read, so a
//! concurrent update is never overwritten. When a run reports no failures, the old key
//! version can be retired.

use crate::envelope::Rewrap;
use crate::secrets::{Secrets, SecretsError, key_label, unix_now};

/// Progress of a bulk re-wrap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewrapProgress {
    /// The last row id handled: persist it to resume.
    pub cursor: i64,
    /// Rows read.
    pub scanned: u64,
    /// Rows re-wrapped.
    pub rewrapped: u64,
    /// Rows already under the primary key.
    pub current: u64,
    /// Rows changed by someone else between read and write; they were written by the
    /// current envelope, so they need nothing more.
    pub raced: u64,
    /// Row ids that did not open (refused, unknown or retired key): they were left as
    /// they are and need an operator's look before the old key is retired.
    pub failed: Vec<i64>,
    /// Whether the whole store has been walked.
    pub done: bool,
}

/// A bulk re-wrap over a [`Secrets`] store.
#[derive(Debug)]
pub struct Rewrapper<'a> {
    secrets: &'a Secrets,
    batch_size: u32,
    progress: RewrapProgress,
}

impl<'a> Rewrapper<'a> {
    /// A re-wrap from the start of the store, 100 rows a batch.
    pub fn new(secrets: &'a Secrets) -> Self {
        Self {
            secrets,
            batch_size: 100,
            progress: RewrapProgress::default(),
        }
    }

    /// Resumes after the row id a previous run reported as its cursor.
    pub fn resume_after(mut self, cursor: i64) -> Self {
        self.progress.cursor = cursor;
        self
    }

    /// Rows per batch (at least 1).
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// The progress so far.
    pub fn progress(&self) -> &RewrapProgress {
        &self.progress
    }

    /// Re-wraps one batch; the progress after it. Once `done` is set, further calls do
    /// nothing.
    ///
    /// # Errors
    /// A store or backend outage stops the run ([`SecretsError::is_unavailable`]);
    /// resume later from [`RewrapProgress::cursor`].
    pub async fn next_batch(&mut self) -> Result<&RewrapProgress, SecretsError> {
        if self.progress.done {
            return Ok(&self.progress);
        }
        let store = self.secrets.store();
        let rows = store
            .rewrap_page(self.progress.cursor, self.batch_size)
            .await?;
        if rows.is_empty() {
            self.progress.done = true;
            return Ok(&self.progress);
        }
        for row in rows {
            let context = Secrets::context(&row.secret)?;
            match self.secrets.envelope().rewrap(&row.sealed, &context).await {
                Ok(Rewrap::Current) => self.progress.current += 1,
                Ok(Rewrap::Rewrapped(sealed)) => {
                    let key = key_label(sealed.backend(), sealed.key());
                    let replaced = store
                        .replace_sealed(
                            row.row_id,
                            &row.sealed,
                            &sealed.to_bytes(),
                            &key,
                            unix_now(),
                        )
                        .await?;
                    if replaced {
                        self.progress.rewrapped += 1;
                    } else {
                        self.progress.raced += 1;
                    }
                }
                Err(e) if e.is_unavailable() => return Err(e.into()),
                Err(_) => {
                    tracing::warn!(
                        code = "envelope.rewrap.row_failed",
                        row_id = row.row_id,
                        "a stored value could not be re-wrapped"
                    );
                    self.progress.failed.push(row.row_id);
                }
            }
            self.progress.scanned += 1;
            self.progress.cursor = row.row_id;
        }
        Ok(&self.progress)
    }

    /// Runs batches until the store is walked, calling `on_batch` after each (to persist
    /// the cursor or draw a progress bar).
    ///
    /// # Errors
    /// As [`Rewrapper::next_batch`].
    pub async fn run(
        mut self,
        mut on_batch: impl FnMut(&RewrapProgress),
    ) -> Result<RewrapProgress, SecretsError> {
        while !self.progress.done {
            on_batch(self.next_batch().await?);
        }
        Ok(self.progress)
    }
}
