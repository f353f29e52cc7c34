//! Key rotation: re-wrapping every stored data key under the current primary key, in
//! batches, resumable after a stop, with a final check that no row is left behind.
//!
//! Only data keys change; payloads stay byte for byte. Every row is opened in full under
//! its own context (rows already under the primary key included), so a run also verifies
//! the store. A run can stop at any batch boundary (or be killed mid-batch) and resume
//! from its cursor; a resumed run walks on to the end of the store and then over the
//! rows before its cursor, so that every row is opened by the run that reports.
//!
//! Each row is replaced only if it still holds the bytes that were read, so a
//! concurrent update is never overwritten; a row that changed in between is read again
//! and retried (an instance still running with the old primary key, in a rolling
//! deploy, writes under the old key). A row that does not validate or does not open is
//! reported by id and skipped; it never stops the walk.
//!
//! When the walk ends, the store is asked how many rows it holds under each key
//! ([`SecretStore::count_by_key`](crate::SecretStore::count_by_key)). Rows under any key
//! other than the primary (a row rewritten behind the cursor, or on PostgreSQL a row
//! whose id committed after the cursor passed it) start another pass, up to
//! [`Rewrapper::max_passes`]. The run is **complete** ([`RewrapProgress::complete`]) only
//! when that final count finds no row under a non-primary key and no row failed; only
//! then may the old key be retired. Instances that still seal under the old key can add
//! rows after the check: finish the deploy of the new primary key first.

use std::fmt;

use crate::envelope::Rewrap;
use crate::error::{BackendError, Error};
use crate::format::SealedView;
use crate::secrets::{Secrets, SecretsError, unix_now};
use crate::store::{KeyCount, RewrapRow, StoreError, key_label};

/// How many times one row is read again after a concurrent change before it is reported
/// as [`RewrapFailureReason::StillChanging`].
pub const MAX_ROW_ATTEMPTS: u32 = 4;

/// The cursor before the first row: row ids are the store's, and a store may hold ids of
/// 0 or below (imported or hand-inserted rows), which a walk must open too.
const BEFORE_FIRST_ROW: i64 = i64::MIN;

/// Why a row was left as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RewrapFailureReason {
    /// The stored owner, scope or name (or another column) does not validate, so the
    /// row's context cannot be built.
    InvalidRow,
    /// The value does not open under its row's context: refused, malformed, or of an
    /// unsupported version or suite.
    DoesNotOpen,
    /// The value names a backend or key this envelope does not hold, or a retired one.
    KeyNotHeld,
    /// The row changed between every read and write ([`MAX_ROW_ATTEMPTS`] times).
    StillChanging,
}

impl RewrapFailureReason {
    /// A stable code for logs and operator output.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRow => "envelope.rewrap.row_invalid",
            Self::DoesNotOpen => "envelope.rewrap.row_refused",
            Self::KeyNotHeld => "envelope.rewrap.key_not_held",
            Self::StillChanging => "envelope.rewrap.row_busy",
        }
    }
}

impl fmt::Display for RewrapFailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidRow => "the row's ids do not validate",
            Self::DoesNotOpen => "the value does not open under its row's context",
            Self::KeyNotHeld => "the value's key is not held or is retired",
            Self::StillChanging => "the row kept changing during the re-wrap",
        })
    }
}

/// A row a bulk re-wrap left as it was. Holds the row id only, never a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewrapFailure {
    /// The row id.
    pub row_id: i64,
    /// Why.
    pub reason: RewrapFailureReason,
}

/// Progress of a bulk re-wrap. Counters add up over every pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewrapProgress {
    /// The last row id handled: persist it to resume. Before the first row of a pass
    /// it is `i64::MIN` (row ids of 0 and below are walked too).
    pub cursor: i64,
    /// The pass under way, from 1 (see [`Rewrapper::max_passes`]).
    pub pass: u32,
    /// Rows read.
    pub scanned: u64,
    /// Rows re-wrapped.
    pub rewrapped: u64,
    /// Rows already under the primary key (each opened in full).
    pub current: u64,
    /// Times a row changed between read and write; each such row was read again and
    /// retried.
    pub raced: u64,
    /// Rows of the last pass left as they were (ids and reasons, never values). They
    /// need an operator's look before the old key is retired.
    pub failed: Vec<RewrapFailure>,
    /// Set when the run is done: the rows the final check found under a key other than
    /// the primary, by key label. Empty when the run is complete.
    pub remaining: Vec<KeyCount>,
    /// Whether the run is over (see [`RewrapProgress::complete`] for how it ended).
    pub done: bool,
    /// Whether the run is over and complete: the final check found no row under a key
    /// other than the primary, and no row failed. Only then may the old key be retired.
    pub complete: bool,
}

impl RewrapProgress {
    /// The ids of the rows left as they were.
    pub fn failed_ids(&self) -> Vec<i64> {
        self.failed.iter().map(|f| f.row_id).collect()
    }

    /// How many rows the final check found under a key other than the primary.
    pub fn remaining_rows(&self) -> u64 {
        self.remaining.iter().map(|c| c.rows).sum()
    }
}

/// A bulk re-wrap over a [`Secrets`] store.
#[derive(Debug)]
pub struct Rewrapper<'a> {
    secrets: &'a Secrets,
    batch_size: u32,
    max_passes: u32,
    progress: RewrapProgress,
    /// Where the current pass began.
    pass_start: i64,
    /// Whether the current pass has reached the end and walks the rows up to
    /// `pass_start`.
    wrapped_around: bool,
    /// Failures of this pass whose stored key label is not the primary's: the final
    /// count expects them.
    failed_off_primary: u64,
}

/// What happened to one read of a row.
enum Step {
    Done,
    Raced,
    Failed(RewrapFailureReason),
}

impl<'a> Rewrapper<'a> {
    /// A re-wrap from the start of the store, 100 rows a batch, at most 3 passes.
    pub fn new(secrets: &'a Secrets) -> Self {
        Self {
            secrets,
            batch_size: 100,
            max_passes: 3,
            progress: RewrapProgress {
                cursor: BEFORE_FIRST_ROW,
                pass: 1,
                ..RewrapProgress::default()
            },
            pass_start: BEFORE_FIRST_ROW,
            wrapped_around: false,
            failed_off_primary: 0,
        }
    }

    /// Resumes after the row id a previous run reported as its cursor. The run still
    /// opens every row: after the end of the store it walks the rows up to `cursor`.
    pub fn resume_after(mut self, cursor: i64) -> Self {
        self.progress.cursor = cursor;
        self.pass_start = cursor;
        self
    }

    /// Rows per batch (at least 1).
    pub fn batch_size(mut self, rows: u32) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// How many passes over the store a run may make (at least 1; default 3) while the
    /// final check still finds rows under a non-primary key that no failure explains.
    pub fn max_passes(mut self, passes: u32) -> Self {
        self.max_passes = passes.max(1);
        self
    }

    /// The progress so far.
    pub fn progress(&self) -> &RewrapProgress {
        &self.progress
    }

    /// Re-wraps one batch (or, at the end of a pass, runs the final check); the
    /// progress after it. Once `done` is set, further calls do nothing.
    ///
    /// # Errors
    /// A store or backend outage, or a backend fault while wrapping, stops the run;
    /// resume later from [`RewrapProgress::cursor`]. A row's own fault never does.
    pub async fn next_batch(&mut self) -> Result<&RewrapProgress, SecretsError> {
        if self.progress.done {
            return Ok(&self.progress);
        }
        let store = self.secrets.store();
        let mut rows = store
            .rewrap_page(self.progress.cursor, self.batch_size)
            .await?;
        // A page must hold rows after the cursor in ascending id order (the store
        // contract); a store that answers otherwise would make the walk loop or skip rows.
        let mut previous = self.progress.cursor;
        for row in &rows {
            if row.row_id <= previous {
                tracing::error!(
                    code = "envelope.rewrap.page_out_of_order",
                    "the secret store returned a page not in ascending id order after the cursor"
                );
                return Err(StoreError::Corrupt { field: "row_id" }.into());
            }
            previous = row.row_id;
        }
        if self.wrapped_around {
            rows.retain(|r| r.row_id <= self.pass_start);
        }
        if rows.is_empty() {
            if !self.wrapped_around && self.pass_start > BEFORE_FIRST_ROW {
                self.wrapped_around = true;
                self.progress.cursor = BEFORE_FIRST_ROW;
            } else {
                self.finish_pass().await?;
            }
            return Ok(&self.progress);
        }
        for row in rows {
            let row_id = row.row_id;
            self.handle_row(row).await?;
            self.progress.scanned += 1;
            self.progress.cursor = row_id;
        }
        Ok(&self.progress)
    }

    /// Runs batches until the run is done, calling `on_batch` after each (to persist
    /// the cursor or draw a progress bar). Check [`RewrapProgress::complete`] before
    /// retiring the old key.
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

    /// The final check of a pass: counts rows by key; starts another pass when rows
    /// under a non-primary key remain that no failure explains, else ends the run.
    async fn finish_pass(&mut self) -> Result<(), SecretsError> {
        let counts = self.secrets.store().count_by_key().await?;
        let remaining: Vec<KeyCount> = counts
            .into_iter()
            .filter(|c| !self.is_primary_label(&c.key))
            .collect();
        let remaining_rows: u64 = remaining.iter().map(|c| c.rows).sum();
        let unexplained = remaining_rows.saturating_sub(self.failed_off_primary);
        if unexplained > 0 && self.progress.pass < self.max_passes {
            tracing::info!(
                code = "envelope.rewrap.another_pass",
                rows = unexplained,
                pass = self.progress.pass + 1,
                "rows remain under a non-primary key: walking the store again"
            );
            self.progress.pass += 1;
            self.progress.cursor = BEFORE_FIRST_ROW;
            self.progress.failed.clear();
            self.pass_start = BEFORE_FIRST_ROW;
            self.wrapped_around = false;
            self.failed_off_primary = 0;
            return Ok(());
        }
        self.progress.complete = remaining.is_empty() && self.progress.failed.is_empty();
        self.progress.remaining = remaining;
        self.progress.done = true;
        if !self.progress.complete {
            tracing::warn!(
                code = "envelope.rewrap.incomplete",
                remaining_rows = self.progress.remaining_rows(),
                failed_rows = self.progress.failed.len(),
                "the re-wrap is not complete: keep the old key"
            );
        }
        Ok(())
    }

    /// Whether a stored key label names the primary backend's current key. A label that
    /// does not parse is not primary.
    fn is_primary_label(&self, label: &str) -> bool {
        let count = KeyCount {
            key: label.to_owned(),
            rows: 0,
        };
        let primary = self.secrets.envelope().primary();
        count
            .parse()
            .is_some_and(|(backend, key)| backend == primary.id() && primary.is_current(&key))
    }

    /// Handles one row, reading it again after each concurrent change.
    async fn handle_row(&mut self, mut row: RewrapRow) -> Result<(), SecretsError> {
        for _ in 0..MAX_ROW_ATTEMPTS {
            match self.step(&row).await? {
                Step::Done => return Ok(()),
                Step::Failed(reason) => {
                    self.fail(&row, reason);
                    return Ok(());
                }
                Step::Raced => {
                    self.progress.raced += 1;
                    let again = self
                        .secrets
                        .store()
                        .rewrap_page(row.row_id.saturating_sub(1), 1)
                        .await?;
                    match again.into_iter().next() {
                        Some(next) if next.row_id == row.row_id => row = next,
                        // Deleted meanwhile: nothing is left under any key.
                        _ => return Ok(()),
                    }
                }
            }
        }
        self.fail(&row, RewrapFailureReason::StillChanging);
        Ok(())
    }

    fn fail(&mut self, row: &RewrapRow, reason: RewrapFailureReason) {
        tracing::warn!(
            code = reason.code(),
            row_id = row.row_id,
            "a stored value could not be re-wrapped"
        );
        if !self.is_primary_label(&row.key) {
            self.failed_off_primary += 1;
        }
        self.progress.failed.push(RewrapFailure {
            row_id: row.row_id,
            reason,
        });
    }

    /// Opens one row as read and moves it to the primary key if it is not there.
    async fn step(&mut self, row: &RewrapRow) -> Result<Step, SecretsError> {
        let Some(context) = row.secret.as_ref().and_then(|s| Secrets::context(s).ok()) else {
            return Ok(Step::Failed(RewrapFailureReason::InvalidRow));
        };
        let store = self.secrets.store();
        match self.secrets.envelope().rewrap(&row.sealed, &context).await {
            Ok(Rewrap::Current) => {
                // The value opened, so its header parses; a stored label that disagrees
                // with it would hide the row from the final count: correct it.
                let label = SealedView::parse(&row.sealed)
                    .map(|v| key_label(v.backend, &v.key))
                    .map_err(SecretsError::Envelope)?;
                if label != row.key
                    && !store
                        .replace_sealed(row.row_id, &row.sealed, &row.sealed, &label, unix_now())
                        .await?
                {
                    return Ok(Step::Raced);
                }
                self.progress.current += 1;
                Ok(Step::Done)
            }
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
                    Ok(Step::Done)
                } else {
                    Ok(Step::Raced)
                }
            }
            Err(e) if e.is_unavailable() => Err(e.into()),
            Err(e @ Error::Backend(BackendError::Random | BackendError::Misbehaved { .. })) => {
                Err(e.into())
            }
            Err(
                Error::UnknownBackend { .. }
                | Error::KeyNotHeld { .. }
                | Error::Backend(BackendError::KeyRetired { .. }),
            ) => Ok(Step::Failed(RewrapFailureReason::KeyNotHeld)),
            Err(_) => Ok(Step::Failed(RewrapFailureReason::DoesNotOpen)),
        }
    }
}
