//! Which key-encryption backend seals new values, and which others open old ones.
//!
//! - `STRONGROOM_KEK` names the primary backend: `local` (default: the master key ring of
//!   `STRONGROOM_MASTER_KEY`, or the development key file), `transit` (OpenBao or Vault
//!   Transit, configured by `VAULT_ADDR`, `VAULT_TOKEN` or `VAULT_TOKEN_FILE`,
//!   `VAULT_CACERT`, `STRONGROOM_TRANSIT_KEY` and `STRONGROOM_TRANSIT_MOUNT`; see
//!   crypto-envelope's README), `awskms` (AWS KMS, with the `awskms` feature: `AWS_REGION`,
//!   `AWS_ENDPOINT_URL`, the standard AWS credential variables and
//!   `STRONGROOM_KMS_KEY_ID`) or `pkcs11` (an HSM, with the `pkcs11` feature:
//!   `STRONGROOM_PKCS11_MODULE`, `STRONGROOM_PKCS11_TOKEN_LABEL`, `STRONGROOM_PKCS11_PIN`
//!   or `STRONGROOM_PKCS11_PIN_FILE`, `STRONGROOM_PKCS11_KEY_LABEL`).
//! - With a primary other than `local`, the local ring is added as decrypt-only whenever
//!   `STRONGROOM_MASTER_KEY` is set, so values sealed before the move keep opening until
//!   `trading-backend rewrap` has moved them; a warning says so at every start. The
//!   development key file is used then only when `STRONGROOM_KEK_DECRYPT_ONLY` names
//!   `local` explicitly (it lives beside the data, in every backup of it), and no
//!   development key is ever created.
//! - `STRONGROOM_KEK_DECRYPT_ONLY` lists further backends that only open, comma
//!   separated (`transit`, to move back from Transit to the local key; `local`, to open
//!   values under the development key while moving off it).
//! - A variable that is set but empty or names no backend is refused, never read as the
//!   default.

use std::path::Path;
use std::sync::Arc;

use crypto_envelope::backend::local::ENV_MASTER_KEY;
use crypto_envelope::{BackendError, ConfigError, Envelope, KekBackend};

use crate::keyring::{self, KeyError};

/// The primary backend's variable.
pub(crate) const ENV_KEK: &str = "STRONGROOM_KEK";
/// The decrypt-only backends' variable.
pub(crate) const ENV_KEK_DECRYPT_ONLY: &str = "STRONGROOM_KEK_DECRYPT_ONLY";

/// A key-encryption backend the configuration can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    #[cfg(feature = "transit")]
    Transit,
    #[cfg(feature = "awskms")]
    AwsKms,
    #[cfg(feature = "pkcs11")]
    Pkcs11,
}

impl Kind {
    fn parse(field: &str, text: &str) -> Result<Self, KeyError> {
        match text.trim() {
            "local" => Ok(Self::Local),
            #[cfg(feature = "transit")]
            "transit" => Ok(Self::Transit),
            #[cfg(not(feature = "transit"))]
            "transit" => Err(invalid(field, "this backend is not built into this binary")),
            #[cfg(feature = "awskms")]
            "awskms" => Ok(Self::AwsKms),
            #[cfg(not(feature = "awskms"))]
            "awskms" => Err(invalid(field, "this backend is not built into this binary")),
            #[cfg(feature = "pkcs11")]
            "pkcs11" => Ok(Self::Pkcs11),
            #[cfg(not(feature = "pkcs11"))]
            "pkcs11" => Err(invalid(field, "this backend is not built into this binary")),
            "" => Err(invalid(field, "is set but empty")),
            _ => Err(invalid(field, "not one of local, transit, awskms, pkcs11")),
        }
    }
}

fn invalid(field: &str, reason: &'static str) -> KeyError {
    KeyError::Config(ConfigError::Invalid {
        field: field.to_owned(),
        reason,
    })
}

use crate::config::var;

/// Where the envelope's keys came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KekSummary {
    /// The primary backend's id.
    pub(crate) primary: &'static str,
    /// The decrypt-only backends' ids.
    pub(crate) decrypt_only: Vec<&'static str>,
}

/// Builds the envelope from the environment; see the module documentation.
/// With `production`, the local ring never uses or creates the development key file.
pub(crate) async fn envelope(
    data_dir: &Path,
    production: bool,
) -> Result<(Envelope, KekSummary), KeyError> {
    let primary = match var(ENV_KEK) {
        Some(text) => Kind::parse(ENV_KEK, &text)?,
        None => Kind::Local,
    };
    let mut extra = Vec::new();
    if let Some(list) = var(ENV_KEK_DECRYPT_ONLY) {
        for item in list.split(',') {
            let kind = Kind::parse(ENV_KEK_DECRYPT_ONLY, item)?;
            if kind == primary || extra.contains(&kind) {
                return Err(invalid(
                    ENV_KEK_DECRYPT_ONLY,
                    "names the primary backend or one backend twice",
                ));
            }
            extra.push(kind);
        }
    }
    if primary != Kind::Local
        && !extra.contains(&Kind::Local)
        && var(ENV_MASTER_KEY).is_some_and(|v| !v.is_empty())
    {
        extra.push(Kind::Local);
    }
    if primary != Kind::Local && extra.contains(&Kind::Local) {
        tracing::warn!(
            code = "kek.local_decrypt_only",
            "the local master key still opens values beside the primary backend: run \
             `trading-backend rewrap` and remove it once the run is complete"
        );
    }

    let mut envelope = Envelope::from_arc(backend(primary, data_dir, true, production).await?)?;
    let mut summary = KekSummary {
        primary: id(primary),
        decrypt_only: Vec::new(),
    };
    for kind in extra {
        envelope =
            envelope.with_decrypt_only_arc(backend(kind, data_dir, false, production).await?)?;
        summary.decrypt_only.push(id(kind));
    }
    Ok((envelope, summary))
}

fn id(kind: Kind) -> &'static str {
    match kind {
        Kind::Local => crypto_envelope::backend::local::BACKEND_ID,
        #[cfg(feature = "transit")]
        Kind::Transit => crypto_envelope::backend::transit::BACKEND_ID,
        #[cfg(feature = "awskms")]
        Kind::AwsKms => crypto_envelope::backend::awskms::BACKEND_ID,
        #[cfg(feature = "pkcs11")]
        Kind::Pkcs11 => crypto_envelope::backend::pkcs11::BACKEND_ID,
    }
}

/// Whether a local ring can be loaded without creating a development key.
fn local_available(data_dir: &Path) -> bool {
    var(ENV_MASTER_KEY).is_some_and(|v| !v.is_empty())
        || data_dir.join(keyring::DEV_KEY_FILE).exists()
}

/// A backend of `kind`. The local ring creates a development key only as the primary.
async fn backend(
    kind: Kind,
    data_dir: &Path,
    primary: bool,
    production: bool,
) -> Result<Arc<dyn KekBackend>, KeyError> {
    match kind {
        Kind::Local => {
            if !primary && !local_available(data_dir) {
                return Err(KeyError::Config(ConfigError::Missing {
                    field: ENV_MASTER_KEY.to_owned(),
                }));
            }
            let (ring, _) = keyring::load(data_dir, production)?;
            Ok(Arc::new(ring) as Arc<dyn KekBackend>)
        }
        #[cfg(feature = "transit")]
        Kind::Transit => {
            let kek = crypto_envelope::TransitBuilder::from_lookup(var)?
                .connect()
                .await
                .map_err(connect_error)?;
            Ok(Arc::new(kek))
        }
        #[cfg(feature = "awskms")]
        Kind::AwsKms => {
            let kek = crypto_envelope::AwsKmsBuilder::from_lookup(var)?
                .connect()
                .await
                .map_err(connect_error)?;
            Ok(Arc::new(kek))
        }
        #[cfg(feature = "pkcs11")]
        Kind::Pkcs11 => {
            let kek = crypto_envelope::backend::pkcs11::Pkcs11KekBuilder::from_lookup(var)?
                .connect()
                .await
                .map_err(connect_error)?;
            Ok(Arc::new(kek))
        }
    }
}

#[cfg(any(feature = "transit", feature = "awskms", feature = "pkcs11"))]
fn connect_error(e: crypto_envelope::ConnectError) -> KeyError {
    match e {
        crypto_envelope::ConnectError::Config(c) => KeyError::Config(c),
        crypto_envelope::ConnectError::Backend(b) => KeyError::Backend(b),
        _ => KeyError::Backend(BackendError::Unavailable {
            backend: "remote".to_owned(),
            reason: "cannot connect".to_owned(),
        }),
    }
}
