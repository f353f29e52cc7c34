//! The access-token signing keys in the service database (`tb_signing_keys`), private
//! keys sealed by crypto-envelope: auth-core's [`SigningKeyStore`] for this backend.
//!
//! * Every instance reads the same table, so a token signed by one verifies on all, and
//!   a rotation on one is picked up by the others at their next reload.
//! * The PKCS#8 private key is sealed under the service's master key ring (the same
//!   [`Envelope`] as the exchange credentials) with the encryption context
//!   `{purpose: "trading-backend.signing-key", kid, alg}`: a dump of the database does
//!   not reveal a key, and a sealed value copied into another row (another `kid` or
//!   algorithm) does not open.
//! * A row sealed under a master key the configured ring does not hold stops the start
//!   (`key_check.rs` opens these rows before the issuer is built, so that the service
//!   never seals a fresh key under the wrong master key and drops the real ones). Met at
//!   a reload (another instance sealed it under a key this one was not given), it is
//!   skipped with an error (`code = "signing_key.key_not_held"`).
//! * A row that does not open for another reason (tampered, moved, under a retired key)
//!   is skipped with a warning (`code = "signing_key.unseal_refused"`): it signs and
//!   verifies nothing; a fresh key is made when no current key is left. A master-key
//!   backend outage is a store error (the issuer keeps its current keys).
//!
//! After a master-key rotation, `trading-backend rewrap` re-wraps these rows with the
//! rest (the table is listed in `sealed.rs`): the keys stay the same, tokens they signed
//! keep verifying, and the old master key may be dropped once `rewrap` reports complete.

use async_trait::async_trait;
use auth_core::StoreError;
use auth_core::token::{SigningAlgorithm, SigningKey, SigningKeyStore};
use crypto_envelope::{EncryptionContext, Envelope};

use crate::db::{Db, on_pool};

/// The `purpose` of the encryption context of a sealed signing key.
pub(crate) const SIGNING_KEY_PURPOSE: &str = "trading-backend.signing-key";

/// Signing keys in `tb_signing_keys`, sealed by an [`Envelope`].
#[derive(Clone)]
pub(crate) struct SealedSigningKeyStore {
    db: Db,
    envelope: Envelope,
}

impl std::fmt::Debug for SealedSigningKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSigningKeyStore")
            .finish_non_exhaustive()
    }
}

type Row = (String, String, Vec<u8>, i64, Option<i64>);

fn backend(what: &'static str) -> StoreError {
    StoreError::Backend(what.into())
}

fn context(kid: &str, alg: SigningAlgorithm) -> Result<EncryptionContext, StoreError> {
    EncryptionContext::new()
        .with("purpose", SIGNING_KEY_PURPOSE)
        .and_then(|c| c.with("kid", kid))
        .and_then(|c| c.with("alg", alg.as_str()))
        .map_err(|_| StoreError::Corrupt { field: "kid" })
}

/// The context of a stored row for `rewrap` (`sealed.rs`): the row's `kid` and its `alg`
/// column; `None` when the algorithm is unknown or the `kid` does not validate.
pub(crate) fn rewrap_context(kid: &str, columns: &[String]) -> Option<EncryptionContext> {
    let [alg] = columns else { return None };
    context(kid, SigningAlgorithm::from_name(alg)?).ok()
}

impl SealedSigningKeyStore {
    pub(crate) fn new(db: Db, envelope: Envelope) -> Self {
        Self { db, envelope }
    }

    async fn open_row(
        &self,
        (kid, alg, sealed, created_at, retire_at): Row,
    ) -> Result<Option<SigningKey>, StoreError> {
        let Some(alg) = SigningAlgorithm::from_name(&alg) else {
            tracing::warn!(
                code = "signing_key.unknown_alg",
                kid,
                "stored signing key has an unknown algorithm; ignored"
            );
            return Ok(None);
        };
        let ctx = context(&kid, alg)?;
        match self.envelope.open(&sealed, &ctx).await {
            Ok(plain) => Ok(Some(SigningKey::from_parts(
                kid,
                alg,
                plain.expose_secret().to_vec(),
                created_at,
                retire_at,
            ))),
            Err(e) if e.is_unavailable() => {
                tracing::warn!(
                    code = "signing_key.unseal_unavailable",
                    kid,
                    "master key backend unavailable"
                );
                Err(backend("master key backend unavailable"))
            }
            // Sealed under a key this instance does not hold. At start this never
            // gets here (`key_check.rs` refuses to start first); at a reload it means
            // another instance sealed it under a key this one was not given (a rotation
            // deployed to some instances only): said loudly, and the row is skipped so
            // that this instance keeps the keys it can use.
            Err(e) if e.is_configuration() => {
                tracing::error!(
                    code = "signing_key.key_not_held",
                    kid,
                    error = %e,
                    "stored signing key was sealed under a key this instance does not hold; ignored"
                );
                Ok(None)
            }
            Err(_) => {
                tracing::warn!(
                    code = "signing_key.unseal_refused",
                    kid,
                    "stored signing key does not open under its context; ignored"
                );
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl SigningKeyStore for SealedSigningKeyStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let sql = "SELECT kid, alg, sealed, created_at, retire_at FROM tb_signing_keys ORDER BY created_at, kid";
        let rows: Vec<Row> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .fetch_all(pool)
            .await
            .map_err(|_| backend("signing key table unavailable")))?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(key) = self.open_row(row).await? {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        let ctx = context(key.kid(), key.alg())?;
        let sealed = self
            .envelope
            .seal(key.expose_secret(), &ctx)
            .await
            .map_err(|_| backend("sealing the signing key failed"))?
            .to_bytes();
        let sql = "INSERT INTO tb_signing_keys (kid, alg, sealed, created_at, retire_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        let result = on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(key.kid())
            .bind(key.alg().as_str())
            .bind(sealed)
            .bind(key.created_at())
            .bind(key.retire_at())
            .execute(pool)
            .await
            .map(|_| ()));
        match result {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(StoreError::Conflict { field: "kid" })
            }
            Err(_) => Err(backend("signing key table unavailable")),
        }
    }

    async fn retire_signing_key(&self, kid: &str, retire_at: i64) -> Result<bool, StoreError> {
        let sql = "UPDATE tb_signing_keys SET retire_at = $1 WHERE kid = $2 AND retire_at IS NULL";
        let n = on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(retire_at)
            .bind(kid)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|_| backend("signing key table unavailable")))?;
        Ok(n > 0)
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM tb_signing_keys WHERE kid = $1";
        let n = on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(kid)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|_| backend("signing key table unavailable")))?;
        Ok(n > 0)
    }
}
