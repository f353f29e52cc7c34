//! `trading-backend rewrap`: after a master-key rotation, re-wraps **every** value sealed
//! under the master key ring: crypto-envelope's secret store (exchange credentials and
//! users' secrets, by its [`Rewrapper`]) and each kind of sealed value that `sealed.rs`
//! lists (signing keys, TOTP secrets, ...), by [`ColumnRewrapper`].
//!
//! For every kind the rules are crypto-envelope's (its README, "Key rotation"): each value
//! is opened in full under its own context ([`Envelope::rewrap`]); only the wrapped data
//! key and the key fields change, the payload bytes stay; a value is written back by a
//! compare-and-set on the bytes read, so a concurrent write is never lost (a value that
//! changed is read again, up to [`MAX_ROW_ATTEMPTS`] times); a value that does not open
//! is reported by id and skipped; and each kind ends with a count of the values still
//! under a key other than the primary, which starts another pass (up to three) or makes
//! the run incomplete. The run is complete, and the command exits 0, only when every kind
//! is.
//!
//! Resumable: the cursor file in the data directory names the kind under way and the
//! last id done (`<kind> <cursor>`; a bare number from an older build is the secret
//! store's cursor). A resumed run goes on from there to the end of the list, then walks
//! the kinds (and the rows of the resumed kind) before it, so every value is opened by
//! the run that reports.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use crypto_envelope::rotation::MAX_ROW_ATTEMPTS;
use crypto_envelope::{
    BackendError, Envelope, Error, KeyCount, Rewrap, RewrapFailureReason, RewrapProgress,
    Rewrapper, Sealed, Secrets,
};

use crate::sealed::{SealedRow, SealedValues, Unavailable};

/// The cursor file in the data directory.
const CURSOR_FILE: &str = "rewrap.cursor";
/// The name of crypto-envelope's secret store in the cursor file and the report.
const SECRET_STORE: &str = "strongroom_secrets";
/// Passes over one kind while values under an old key remain that no failure explains.
const MAX_PASSES: u32 = 3;

/// Why a run stopped before its end (resume it later).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RewrapError {
    /// The cursor file does not parse or names no kind of sealed value.
    #[error("the saved cursor file is unreadable (use --restart)")]
    Cursor,
    /// The cursor file cannot be written.
    #[error("cannot save the cursor file")]
    SaveCursor,
    /// A store or the key backend is unavailable.
    #[error("{0} or the key backend is unavailable; run again to resume from the saved cursor")]
    Unavailable(&'static str),
}

/// Progress of one kind of sealed value outside the secret store. Ids only, never values.
#[derive(Debug, Default, Clone)]
pub(crate) struct ColumnProgress {
    /// The last id handled (`None`: before the first row).
    pub(crate) cursor: Option<String>,
    /// The pass under way, from 1.
    pub(crate) pass: u32,
    /// Values read.
    pub(crate) scanned: u64,
    /// Values re-wrapped.
    pub(crate) rewrapped: u64,
    /// Values already under the primary key (each opened in full).
    pub(crate) current: u64,
    /// Times a value changed between read and write (each read again and retried).
    pub(crate) raced: u64,
    /// Values of the last pass left as they were, by id.
    pub(crate) failed: Vec<(String, RewrapFailureReason)>,
    /// Values the final count found under a key other than the primary, by key label.
    pub(crate) remaining: Vec<KeyCount>,
    /// Whether this kind is done.
    pub(crate) done: bool,
    /// Whether it is done and complete: nothing under another key, nothing failed.
    pub(crate) complete: bool,
}

/// What one step on one value did.
enum Step {
    Done,
    Raced,
    Failed(RewrapFailureReason),
}

/// A re-wrap of one kind of sealed value ([`SealedValues`]), with crypto-envelope's
/// [`Rewrapper`] rules (see the module docs).
#[derive(Debug)]
pub(crate) struct ColumnRewrapper<'a> {
    values: &'a dyn SealedValues,
    envelope: &'a Envelope,
    batch_size: u32,
    progress: ColumnProgress,
    /// Where the pass began (a resumed run walks the rows up to it at the end).
    pass_start: Option<String>,
    wrapped_around: bool,
    /// Failures of this pass whose value is not under the primary key.
    failed_off_primary: u64,
}

impl<'a> ColumnRewrapper<'a> {
    /// A re-wrap from the first row (or after `cursor`, then over the rows up to it).
    pub(crate) fn new(
        values: &'a dyn SealedValues,
        envelope: &'a Envelope,
        cursor: Option<String>,
        batch_size: u32,
    ) -> Self {
        Self {
            values,
            envelope,
            batch_size: batch_size.max(1),
            progress: ColumnProgress {
                cursor: cursor.clone(),
                pass: 1,
                ..ColumnProgress::default()
            },
            pass_start: cursor,
            wrapped_around: false,
            failed_off_primary: 0,
        }
    }

    /// One batch (or the final count at the end of a pass); the progress after it.
    pub(crate) async fn next_batch(&mut self) -> Result<&ColumnProgress, RewrapError> {
        if self.progress.done {
            return Ok(&self.progress);
        }
        let unavailable = |e: Unavailable| RewrapError::Unavailable(e.0);
        let mut rows = self
            .values
            .page(self.progress.cursor.as_deref(), self.batch_size)
            .await
            .map_err(unavailable)?;
        if self.wrapped_around
            && let Some(start) = &self.pass_start
        {
            rows.retain(|r| r.id.as_str() <= start.as_str());
        }
        if rows.is_empty() {
            if !self.wrapped_around && self.pass_start.is_some() {
                self.wrapped_around = true;
                self.progress.cursor = None;
            } else {
                self.finish_pass().await?;
            }
            return Ok(&self.progress);
        }
        for row in rows {
            let id = row.id.clone();
            self.handle_row(row).await?;
            self.progress.scanned += 1;
            self.progress.cursor = Some(id);
        }
        Ok(&self.progress)
    }

    /// Whether a sealed value is under the primary backend's current key; its key label.
    fn label(&self, sealed: &[u8]) -> (bool, String) {
        match Sealed::from_bytes(sealed) {
            Ok(s) => {
                let primary = self.envelope.primary();
                (
                    s.backend() == primary.id() && primary.is_current(s.key()),
                    crypto_envelope::store::key_label(s.backend(), s.key()),
                )
            }
            Err(_) => (false, "(unreadable)".to_owned()),
        }
    }

    /// Counts the values under a key other than the primary (a header read, no key
    /// needed); another pass if some remain that no failure explains.
    async fn finish_pass(&mut self) -> Result<(), RewrapError> {
        let mut remaining: Vec<KeyCount> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .values
                .page(after.as_deref(), 500)
                .await
                .map_err(|e| RewrapError::Unavailable(e.0))?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for row in &page {
                let (primary, label) = self.label(&row.sealed);
                if primary {
                    continue;
                }
                match remaining.iter_mut().find(|c| c.key == label) {
                    Some(count) => count.rows += 1,
                    None => remaining.push(KeyCount {
                        key: label,
                        rows: 1,
                    }),
                }
            }
        }
        let remaining_rows: u64 = remaining.iter().map(|c| c.rows).sum();
        if remaining_rows.saturating_sub(self.failed_off_primary) > 0
            && self.progress.pass < MAX_PASSES
        {
            self.progress.pass += 1;
            self.progress.cursor = None;
            self.progress.failed.clear();
            self.pass_start = None;
            self.wrapped_around = false;
            self.failed_off_primary = 0;
            return Ok(());
        }
        self.progress.complete = remaining.is_empty() && self.progress.failed.is_empty();
        self.progress.remaining = remaining;
        self.progress.done = true;
        Ok(())
    }

    async fn handle_row(&mut self, mut row: SealedRow) -> Result<(), RewrapError> {
        for _ in 0..MAX_ROW_ATTEMPTS {
            match self.step(&row).await? {
                Step::Done => return Ok(()),
                Step::Failed(reason) => {
                    self.fail(&row, reason);
                    return Ok(());
                }
                Step::Raced => {
                    self.progress.raced += 1;
                    match self
                        .values
                        .row(&row.id)
                        .await
                        .map_err(|e| RewrapError::Unavailable(e.0))?
                    {
                        Some(again) => row = again,
                        // Deleted meanwhile: nothing is left under any key.
                        None => return Ok(()),
                    }
                }
            }
        }
        self.fail(&row, RewrapFailureReason::StillChanging);
        Ok(())
    }

    fn fail(&mut self, row: &SealedRow, reason: RewrapFailureReason) {
        tracing::warn!(
            code = reason.code(),
            table = self.values.name(),
            row_id = row.id,
            "a sealed value could not be re-wrapped"
        );
        if !self.label(&row.sealed).0 {
            self.failed_off_primary += 1;
        }
        self.progress.failed.push((row.id.clone(), reason));
    }

    async fn step(&mut self, row: &SealedRow) -> Result<Step, RewrapError> {
        let Some(context) = &row.context else {
            return Ok(Step::Failed(RewrapFailureReason::InvalidRow));
        };
        match self.envelope.rewrap(&row.sealed, context).await {
            Ok(Rewrap::Current) => {
                self.progress.current += 1;
                Ok(Step::Done)
            }
            Ok(Rewrap::Rewrapped(sealed)) => {
                let replaced = self
                    .values
                    .replace(&row.id, &row.sealed, &sealed.to_bytes())
                    .await
                    .map_err(|e| RewrapError::Unavailable(e.0))?;
                if replaced {
                    self.progress.rewrapped += 1;
                    Ok(Step::Done)
                } else {
                    Ok(Step::Raced)
                }
            }
            // An outcome this build does not know: leave the value, report it.
            Ok(_) => Ok(Step::Failed(RewrapFailureReason::DoesNotOpen)),
            Err(e) if e.is_unavailable() => Err(RewrapError::Unavailable(self.values.name())),
            Err(Error::Backend(BackendError::Random | BackendError::Misbehaved { .. })) => {
                Err(RewrapError::Unavailable(self.values.name()))
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

/// Where a run starts: the index of a kind (0: the secret store, then the list of
/// `sealed.rs` in order) and the cursor within it.
#[derive(Debug, Default)]
struct Resume {
    kind: usize,
    secret_store: Option<i64>,
    column: Option<String>,
}

fn read_cursor(path: &Path, kinds: &[Arc<dyn SealedValues>]) -> Result<Resume, RewrapError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Resume::default());
    };
    let text = text.trim();
    // A bare number: the secret store's cursor, as an older build wrote it.
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Resume {
            secret_store: Some(n),
            ..Resume::default()
        });
    }
    let (name, cursor) = text.split_once(' ').unwrap_or((text, ""));
    if name == SECRET_STORE {
        let n = cursor.parse().map_err(|_| RewrapError::Cursor)?;
        return Ok(Resume {
            secret_store: Some(n),
            ..Resume::default()
        });
    }
    let index = kinds
        .iter()
        .position(|k| k.name() == name)
        .ok_or(RewrapError::Cursor)?;
    // The id is hex-encoded: any bytes, one line.
    let column = if cursor.is_empty() {
        None
    } else {
        let bytes = base16ct::lower::decode_vec(cursor).map_err(|_| RewrapError::Cursor)?;
        Some(String::from_utf8(bytes).map_err(|_| RewrapError::Cursor)?)
    };
    Ok(Resume {
        kind: index + 1,
        secret_store: None,
        column,
    })
}

fn save_cursor(dir: &Path, kind: &str, cursor: &str) -> Result<(), RewrapError> {
    let tmp = dir.join(format!("{CURSOR_FILE}.tmp"));
    std::fs::write(&tmp, format!("{kind} {cursor}"))
        .and_then(|()| std::fs::rename(tmp, dir.join(CURSOR_FILE)))
        .map_err(|_| RewrapError::SaveCursor)
}

fn progress_line(p: &RewrapProgress) {
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\rrewrap: scanned {} | rewrapped {} | current {} | raced {} | failed {} | cursor {} | pass {}",
        p.scanned,
        p.rewrapped,
        p.current,
        p.raced,
        p.failed.len(),
        p.cursor,
        p.pass
    );
    let _ = err.flush();
}

fn column_progress_line(name: &str, p: &ColumnProgress) {
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\rrewrap {name}: scanned {} | rewrapped {} | current {} | raced {} | failed {} | pass {}",
        p.scanned,
        p.rewrapped,
        p.current,
        p.raced,
        p.failed.len(),
        p.pass
    );
    let _ = err.flush();
}

/// The outcome of a whole run.
#[derive(Debug)]
pub(crate) struct Report {
    /// The secret store's run.
    pub(crate) secret_store: RewrapProgress,
    /// Each listed kind's run: (table, what it holds, progress).
    pub(crate) kinds: Vec<(&'static str, &'static str, ColumnProgress)>,
}

impl Report {
    /// Whether every kind is complete: only then may the old key be dropped.
    pub(crate) fn complete(&self) -> bool {
        self.secret_store.complete && self.kinds.iter().all(|(_, _, p)| p.complete)
    }

    /// The summary on stdout: counts, ids, reasons and key labels only, never a value.
    pub(crate) fn print(&self) {
        let s = &self.secret_store;
        let rewrapped = s.rewrapped + self.kinds.iter().map(|k| k.2.rewrapped).sum::<u64>();
        let current = s.current + self.kinds.iter().map(|k| k.2.current).sum::<u64>();
        let raced = s.raced + self.kinds.iter().map(|k| k.2.raced).sum::<u64>();
        if self.complete() {
            println!(
                "rewrap complete: {rewrapped} re-wrapped, {current} already current, {raced} \
                 retried after a concurrent change; every row opened and is under the primary key"
            );
        } else {
            println!("rewrap INCOMPLETE: {rewrapped} re-wrapped, {current} already current");
        }
        println!(
            "  {SECRET_STORE} (exchange credentials and user secrets): {} re-wrapped, {} already current",
            s.rewrapped, s.current
        );
        for (name, holds, p) in &self.kinds {
            println!(
                "  {name} ({holds}): {} re-wrapped, {} already current",
                p.rewrapped, p.current
            );
        }
        for failure in &s.failed {
            println!(
                "  row {}: {} ({})",
                failure.row_id,
                failure.reason,
                failure.reason.code()
            );
        }
        for count in &s.remaining {
            println!("  {} row(s) still under {}", count.rows, count.key);
        }
        for (name, _, p) in &self.kinds {
            for (id, reason) in &p.failed {
                println!("  {name} row {id}: {reason} ({})", reason.code());
            }
            for count in &p.remaining {
                println!("  {name}: {} row(s) still under {}", count.rows, count.key);
            }
        }
    }
}

/// Runs the whole re-wrap: the secret store, then every kind `sealed.rs` lists, resumed
/// from the cursor file unless `restart`.
pub(crate) async fn run(
    data_dir: &Path,
    secrets: &Secrets,
    kinds: &[Arc<dyn SealedValues>],
    restart: bool,
    batch_size: u32,
) -> Result<Report, RewrapError> {
    let cursor_path = data_dir.join(CURSOR_FILE);
    let resume = if restart {
        Resume::default()
    } else {
        read_cursor(&cursor_path, kinds)?
    };
    if resume.kind > 0 || resume.secret_store.is_some_and(|c| c != i64::MIN) {
        eprintln!(
            "rewrap: resuming from the saved cursor (what comes before it is opened again at the end)"
        );
    }
    std::fs::create_dir_all(data_dir).map_err(|_| RewrapError::SaveCursor)?;
    let envelope = secrets.envelope();
    let mut secret_store = None;
    let mut done: Vec<Option<ColumnProgress>> = vec![None; kinds.len()];
    // Kind 0 is the secret store; the walk starts at the resumed kind and goes round.
    let total = kinds.len() + 1;
    for step in 0..total {
        let kind = (resume.kind + step) % total;
        let resumed = step == 0;
        if kind == 0 {
            let mut rewrapper = Rewrapper::new(secrets).batch_size(batch_size);
            if resumed && let Some(cursor) = resume.secret_store {
                rewrapper = rewrapper.resume_after(cursor);
            }
            loop {
                let progress = rewrapper
                    .next_batch()
                    .await
                    .map_err(|_| {
                        eprintln!();
                        RewrapError::Unavailable(SECRET_STORE)
                    })?
                    .clone();
                progress_line(&progress);
                if progress.done {
                    eprintln!();
                    secret_store = Some(progress);
                    break;
                }
                save_cursor(data_dir, SECRET_STORE, &progress.cursor.to_string())?;
            }
        } else {
            let values = kinds[kind - 1].as_ref();
            let cursor = if resumed { resume.column.clone() } else { None };
            let mut rewrapper = ColumnRewrapper::new(values, envelope, cursor, batch_size);
            loop {
                let progress = rewrapper
                    .next_batch()
                    .await
                    .inspect_err(|_| eprintln!())?
                    .clone();
                column_progress_line(values.name(), &progress);
                if progress.done {
                    eprintln!();
                    done[kind - 1] = Some(progress);
                    break;
                }
                let hex = progress
                    .cursor
                    .as_deref()
                    .map(|c| base16ct::lower::encode_string(c.as_bytes()))
                    .unwrap_or_default();
                save_cursor(data_dir, values.name(), &hex)?;
            }
        }
        // The next kind starts from its first row if the run stops now.
        let next = (kind + 1) % total;
        if step + 1 < total {
            let name = if next == 0 {
                SECRET_STORE
            } else {
                kinds[next - 1].name()
            };
            let cursor = if next == 0 {
                i64::MIN.to_string()
            } else {
                String::new()
            };
            save_cursor(data_dir, name, &cursor)?;
        }
    }
    let _ = std::fs::remove_file(&cursor_path);
    Ok(Report {
        secret_store: secret_store.unwrap_or_default(),
        kinds: kinds
            .iter()
            .zip(done)
            .map(|(k, p)| (k.name(), k.holds(), p.unwrap_or_default()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use crypto_envelope::{EncryptionContext, LocalKeyRing, MasterKey};

    use super::*;

    /// Sealed values in memory; `concurrent` lands on its row just before the first
    /// compare-and-set there (an instance still sealing under the old key).
    #[derive(Debug, Default)]
    struct Fake {
        rows: Mutex<BTreeMap<String, Vec<u8>>>,
        concurrent: Mutex<Option<(String, Vec<u8>)>>,
    }

    fn context(id: &str) -> EncryptionContext {
        EncryptionContext::new()
            .with("purpose", "test")
            .and_then(|c| c.with("id", id))
            .unwrap()
    }

    fn row(id: &str, sealed: &[u8]) -> SealedRow {
        SealedRow {
            id: id.to_owned(),
            sealed: sealed.to_vec(),
            context: Some(context(id)),
        }
    }

    #[async_trait]
    impl SealedValues for Fake {
        fn name(&self) -> &'static str {
            "tb_test"
        }

        fn holds(&self) -> &'static str {
            "test values"
        }

        async fn page(
            &self,
            after: Option<&str>,
            limit: u32,
        ) -> Result<Vec<SealedRow>, Unavailable> {
            let rows = self.rows.lock().unwrap();
            Ok(rows
                .iter()
                .filter(|(id, _)| after.is_none_or(|a| id.as_str() > a))
                .take(limit as usize)
                .map(|(id, sealed)| row(id, sealed))
                .collect())
        }

        async fn row(&self, id: &str) -> Result<Option<SealedRow>, Unavailable> {
            Ok(self.rows.lock().unwrap().get(id).map(|s| row(id, s)))
        }

        async fn replace(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool, Unavailable> {
            let mut rows = self.rows.lock().unwrap();
            let mut concurrent = self.concurrent.lock().unwrap();
            if concurrent.as_ref().is_some_and(|(at, _)| at == id)
                && let Some((at, value)) = concurrent.take()
            {
                rows.insert(at, value);
            }
            match rows.get_mut(id) {
                Some(stored) if stored.as_slice() == old => {
                    *stored = new.to_vec();
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }

    /// (old envelope: key 1 only, rotated: key 2 primary and key 1, new only: key 2).
    fn envelopes() -> (Envelope, Envelope, Envelope) {
        let (k1, k2) = (
            MasterKey::generate().unwrap().to_hex(),
            MasterKey::generate().unwrap().to_hex(),
        );
        let key = |hex: &str| MasterKey::parse("test", hex).unwrap();
        let ring = |keys: &[(u32, &str)], primary: u32| {
            let mut b = LocalKeyRing::builder();
            for (v, k) in keys {
                b = b.key(*v, key(k));
            }
            Envelope::new(b.primary(primary).build().unwrap()).unwrap()
        };
        (
            ring(&[(1, &k1)], 1),
            ring(&[(1, &k1), (2, &k2)], 2),
            ring(&[(2, &k2)], 2),
        )
    }

    async fn run_all(values: &Fake, envelope: &Envelope, cursor: Option<&str>) -> ColumnProgress {
        let mut r = ColumnRewrapper::new(values, envelope, cursor.map(str::to_owned), 2);
        loop {
            let p = r.next_batch().await.unwrap().clone();
            if p.done {
                return p;
            }
        }
    }

    /// Every value is re-wrapped with its payload unchanged; a value rewritten under the
    /// old key between the read and the write is read again and re-wrapped (the
    /// concurrent write is not lost); afterwards the new key alone opens every value.
    #[tokio::test]
    async fn rewraps_every_value_and_never_loses_a_concurrent_write() {
        let (old, rotated, new_only) = envelopes();
        let fake = Fake::default();
        for id in ["a", "b", "c"] {
            let sealed = old.seal(id.as_bytes(), &context(id)).await.unwrap();
            fake.rows
                .lock()
                .unwrap()
                .insert(id.to_owned(), sealed.to_bytes());
        }
        let a_before = Sealed::from_bytes(&fake.rows.lock().unwrap()["a"]).unwrap();
        let b_new = old.seal(b"b-new", &context("b")).await.unwrap();
        *fake.concurrent.lock().unwrap() = Some(("b".to_owned(), b_new.to_bytes()));

        let p = run_all(&fake, &rotated, None).await;
        assert!(p.complete, "{p:?}");
        assert_eq!((p.rewrapped, p.current, p.raced), (3, 0, 1), "{p:?}");
        assert!(p.remaining.is_empty() && p.failed.is_empty());
        let rows = fake.rows.lock().unwrap().clone();
        let a_after = Sealed::from_bytes(&rows["a"]).unwrap();
        assert_eq!(a_after.ciphertext(), a_before.ciphertext());
        assert_ne!(a_after.key(), a_before.key());
        for (id, want) in [("a", &b"a"[..]), ("b", b"b-new"), ("c", b"c")] {
            let plain = new_only.open(&rows[id], &context(id)).await.unwrap();
            assert_eq!(plain.expose_secret(), want, "{id}");
        }

        // Again: nothing to do, every value opened.
        let p = run_all(&fake, &rotated, None).await;
        assert!(p.complete);
        assert_eq!((p.rewrapped, p.current), (0, 3));
    }

    /// A resumed walk goes on after its cursor and then over the rows before it.
    #[tokio::test]
    async fn a_resumed_walk_still_opens_every_value() {
        let (old, rotated, _) = envelopes();
        let fake = Fake::default();
        for id in ["a", "b", "c", "d", "e"] {
            let sealed = old.seal(id.as_bytes(), &context(id)).await.unwrap();
            fake.rows
                .lock()
                .unwrap()
                .insert(id.to_owned(), sealed.to_bytes());
        }
        let p = run_all(&fake, &rotated, Some("c")).await;
        assert!(p.complete, "{p:?}");
        assert_eq!((p.scanned, p.rewrapped, p.pass), (5, 5, 1), "{p:?}");
    }

    /// A value that does not open under its row's context is reported by id, left as it
    /// is and counted as remaining under the old key: the run is incomplete.
    #[tokio::test]
    async fn a_value_that_does_not_open_makes_the_run_incomplete() {
        let (old, rotated, _) = envelopes();
        let fake = Fake::default();
        let good = old.seal(b"fine", &context("a")).await.unwrap();
        let moved = old.seal(b"other row", &context("elsewhere")).await.unwrap();
        fake.rows.lock().unwrap().extend([
            ("a".to_owned(), good.to_bytes()),
            ("b".to_owned(), moved.to_bytes()),
        ]);
        let p = run_all(&fake, &rotated, None).await;
        assert!(p.done && !p.complete, "{p:?}");
        assert_eq!(
            p.failed,
            [("b".to_owned(), RewrapFailureReason::DoesNotOpen)]
        );
        assert_eq!(p.remaining.len(), 1);
        assert_eq!(p.remaining[0].rows, 1);
        assert_eq!(p.rewrapped, 1);
        // The failure explains the remaining row: no second pass.
        assert_eq!(p.pass, 1);
    }
}
