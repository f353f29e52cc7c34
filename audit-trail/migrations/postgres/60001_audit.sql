-- audit-trail: one HMAC chain of audit records (FORMAT.md), its head and its checkpoints.
-- Times are unix milliseconds; MACs are 32-byte HMAC-SHA256 tags.

-- The newest record's place, and the id of the key that writes the chain. One row,
-- locked by every append (SELECT ... FOR UPDATE).
CREATE TABLE IF NOT EXISTS audit_head (
    id      SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq     BIGINT NOT NULL CHECK (seq >= 0),
    mac     BYTEA NOT NULL CHECK (octet_length(mac) = 32),
    key_id  TEXT
);
INSERT INTO audit_head (id, seq, mac, key_id)
VALUES (1, 0, decode(repeat('00', 32), 'hex'), NULL)
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS audit_records (
    seq         BIGINT NOT NULL PRIMARY KEY,
    at          BIGINT NOT NULL,
    principal   TEXT,
    method      TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    subject     TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    request_id  TEXT,
    prev_mac    BYTEA NOT NULL,
    mac         BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_subject ON audit_records (subject, seq);
CREATE INDEX IF NOT EXISTS audit_records_at ON audit_records (at);

-- Records 1..=seq were dropped by retention; the last of them had MAC `mac`.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq             BIGINT NOT NULL PRIMARY KEY,
    mac             BYTEA NOT NULL,
    at              BIGINT NOT NULL,
    checkpoint_mac  BYTEA NOT NULL
);

-- Append-only at the database level (README, "Database guards"). A role that owns the
-- tables can disable these; the MAC chain is what catches that. The functions keep the
-- search path they were created with, so they find the tables of their own schema.
CREATE OR REPLACE FUNCTION audit_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    RAISE EXCEPTION '% on % is refused: audit tables are append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE FUNCTION audit_records_prefix_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF OLD.seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints) THEN
        RAISE EXCEPTION 'audit_records: only a prefix covered by a checkpoint may be deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN OLD;
END
$$;

CREATE OR REPLACE FUNCTION audit_head_forward() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.seq < OLD.seq OR NEW.id <> OLD.id
        OR (OLD.key_id IS NOT NULL AND NEW.key_id IS DISTINCT FROM OLD.key_id) THEN
        RAISE EXCEPTION 'audit_head only moves forward under one key'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS audit_records_no_update ON audit_records;
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_refuse();
DROP TRIGGER IF EXISTS audit_records_prefix_delete ON audit_records;
CREATE TRIGGER audit_records_prefix_delete BEFORE DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_prefix_delete();
DROP TRIGGER IF EXISTS audit_records_no_truncate ON audit_records;
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();

DROP TRIGGER IF EXISTS audit_checkpoints_no_change ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse();
DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();

DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_refuse();
DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head;
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
DROP TRIGGER IF EXISTS audit_head_forward ON audit_head;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward();
