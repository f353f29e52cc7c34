-- trading-backend: the audit log's MAC key (audit-trail `MacKey`), shared by every
-- instance. One row, id 'mac'. `sealed` is 32 random bytes sealed by crypto-envelope
-- under the master key ring with the context {purpose: "trading-backend.audit-key"}:
-- whoever can write this database but does not hold the master key can neither read the
-- key nor forge or re-chain audit records. Created once (INSERT ... ON CONFLICT DO
-- NOTHING, then re-read: instances starting together agree on one key); re-wrapped by
-- `trading-backend rewrap` (listed in src/sealed.rs), so the key outlives a master-key
-- rotation and records written before it keep verifying.
CREATE TABLE IF NOT EXISTS tb_audit_key (
    id          TEXT NOT NULL PRIMARY KEY CHECK (id = 'mac'),
    sealed      BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
