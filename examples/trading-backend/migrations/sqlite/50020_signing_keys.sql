-- trading-backend: the access-token signing keys (auth-core `SigningKeyStore`), shared by
-- every instance. `sealed` is the PKCS#8 private key sealed by crypto-envelope under the
-- context {purpose: "trading-backend.signing-key", kid, alg}: a dump of this table does
-- not reveal a key, and a sealed value moved to another row does not open.
CREATE TABLE IF NOT EXISTS tb_signing_keys (
    kid         TEXT NOT NULL PRIMARY KEY,
    alg         TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retire_at   INTEGER
);
