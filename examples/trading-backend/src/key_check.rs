//! At start (`serve` and the operator commands, `rewrap` excepted): does the configured key
//! ring hold the keys the stored data was sealed under?
//!
//! The usual way to get this wrong is to restart the service with another
//! `STRONGROOM_MASTER_KEY` (a new development key file, a secret manager answering for
//! another environment). Without this check the service would start, ignore the signing
//! keys it cannot open and seal a fresh one under the wrong key, and then answer every
//! request that needs an older sealed value with an error. With it, the process exits
//! non-zero before anything is sealed, naming the key variable, the table and the key id
//! (a fingerprint, never key material).
//!
//! What is opened: the first [`PROBE_ROWS`] rows of every kind of sealed value (the
//! secret store of crypto-envelope, and each kind `sealed.rs` lists: access-token signing
//! keys, the audit MAC key, webhook secrets, TOTP secrets). A probe, not a verification:
//! `trading-backend rewrap` opens every row. A fresh database holds nothing sealed and
//! passes. Only a configuration error refuses the start
//! ([`crypto_envelope::Error::is_configuration`]: a key or backend not held); a row that
//! does not open for another reason (tampered, moved, under a retired key) is logged and
//! left to the code that reads it, as before; a key backend outage is logged and the
//! start goes on (`/readyz` reports it).
//!
//! `rewrap` is not checked: it opens every row itself and reports each one whose key is
//! not held (`envelope.rewrap.key_not_held`), which is how an operator finds them.

use std::sync::Arc;

use crypto_envelope::backend::local::ENV_MASTER_KEY;
use crypto_envelope::{BackendError, EncryptionContext, Envelope, Error, Secrets};

use crate::db::Stores;
use crate::kek::{ENV_KEK, KekSummary};
use crate::sealed::SealedValues;

/// Rows opened per kind of sealed value.
pub(crate) const PROBE_ROWS: u32 = 16;

/// The stored data was sealed under a key the configured backends do not hold.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stored data was sealed under another key: {table} ({holds}) row {id}: {reason}. \
     Refusing to start, so that nothing new is sealed under the wrong key. Start with the \
     key the data was sealed under: {ENV_MASTER_KEY} (with STRONGROOM_MASTER_KEY_VERSION, \
     or as a decrypt-only key in STRONGROOM_MASTER_KEYS_OLD after a rotation) for the \
     local key ring, or {ENV_KEK} and that backend's settings (configured now: {configured})"
)]
pub(crate) struct KeyNotHeld {
    /// The table.
    table: &'static str,
    /// What it holds.
    holds: &'static str,
    /// The row's id (a table key, a user id, a secret store row id): not secret.
    id: String,
    /// The envelope's message: names the key id and version, never key material.
    reason: String,
    /// The configured backends, for the operator.
    configured: String,
}

/// What the probe saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Probed {
    /// Values that opened.
    pub(crate) opened: usize,
    /// Values that did not open for a reason other than the key configuration.
    pub(crate) refused: usize,
    /// Kinds whose table or key backend could not be read.
    pub(crate) unavailable: usize,
}

/// One value to open.
struct Candidate {
    table: &'static str,
    holds: &'static str,
    id: String,
    sealed: Vec<u8>,
    context: Option<EncryptionContext>,
}

/// Opens a sample of every kind of stored sealed value; see the module documentation.
///
/// # Errors
///
/// [`KeyNotHeld`] for the first value sealed under a key or backend this envelope was not
/// configured with.
pub(crate) async fn check(
    stores: &Stores,
    envelope: &Envelope,
    kek: &KekSummary,
) -> Result<Probed, KeyNotHeld> {
    let mut probed = Probed::default();
    let mut candidates = Vec::new();
    match stores.secrets.rewrap_page(i64::MIN, PROBE_ROWS).await {
        Ok(rows) => candidates.extend(rows.into_iter().map(|row| Candidate {
            table: "strongroom_secrets",
            holds: "exchange credentials and user secrets",
            id: row.row_id.to_string(),
            context: row.secret.as_ref().and_then(|s| Secrets::context(s).ok()),
            sealed: row.sealed,
        })),
        Err(_) => unavailable(&mut probed, "strongroom_secrets"),
    }
    let kinds: Vec<Arc<dyn SealedValues>> = crate::sealed::sealed_values(stores);
    for kind in &kinds {
        match kind.page(None, PROBE_ROWS).await {
            Ok(rows) => candidates.extend(rows.into_iter().map(|row| Candidate {
                table: kind.name(),
                holds: kind.holds(),
                id: row.id,
                sealed: row.sealed,
                context: row.context,
            })),
            Err(e) => unavailable(&mut probed, e.0),
        }
    }
    for candidate in candidates {
        // A row whose ids do not validate has no context to open under: the code that
        // reads it (or `rewrap`) reports it.
        let Some(context) = &candidate.context else {
            continue;
        };
        match envelope.open(&candidate.sealed, context).await {
            Ok(_) => probed.opened += 1,
            Err(e) if e.is_configuration() => {
                tracing::error!(
                    code = "kek.key_not_held",
                    table = candidate.table,
                    id = %candidate.id,
                    error = %e,
                    "stored data was sealed under a key the configured key-encryption backends do not hold"
                );
                return Err(KeyNotHeld {
                    table: candidate.table,
                    holds: candidate.holds,
                    id: candidate.id,
                    reason: e.to_string(),
                    configured: configured(kek, envelope),
                });
            }
            Err(e) if e.is_unavailable() => {
                unavailable(&mut probed, candidate.table);
                // One outage answers for the rest: do not wait on every row.
                break;
            }
            Err(e) => {
                probed.refused += 1;
                tracing::warn!(
                    code = "kek.check_refused",
                    table = candidate.table,
                    id = %candidate.id,
                    error = kind(&e),
                    "a stored sealed value does not open; left to the code that reads it"
                );
            }
        }
    }
    Ok(probed)
}

fn unavailable(probed: &mut Probed, table: &'static str) {
    probed.unavailable += 1;
    tracing::warn!(
        code = "kek.check_unavailable",
        table,
        "could not check the stored sealed values against the key configuration"
    );
}

/// The error's kind, for the log (opaque refusals stay opaque).
fn kind(e: &Error) -> &'static str {
    match e {
        Error::Refused => "refused",
        Error::Malformed { .. } => "malformed",
        Error::UnsupportedVersion { .. } | Error::UnsupportedSuite { .. } => "unsupported",
        Error::Backend(BackendError::KeyRetired { .. }) => "key_retired",
        Error::Backend(_) => "backend",
        _ => "other",
    }
}

/// The configured backends and the primary key's id (a fingerprint, a label, an ARN).
fn configured(kek: &KekSummary, envelope: &Envelope) -> String {
    let primary = format!(
        "primary {} key {}",
        kek.primary,
        envelope.primary().primary_key()
    );
    if kek.decrypt_only.is_empty() {
        primary
    } else {
        format!("{primary}, decrypt-only {}", kek.decrypt_only.join(", "))
    }
}
