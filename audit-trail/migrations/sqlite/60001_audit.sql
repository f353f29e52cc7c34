-- audit-trail: one HMAC chain of audit records (FORMAT.md), its head and its checkpoints.
-- Times are unix milliseconds; MACs are 32-byte HMAC-SHA256 tags.

-- The newest record's place, and the id of the key that writes the chain. One row,
-- locked by every append (BEGIN IMMEDIATE takes SQLite's write lock first).
CREATE TABLE IF NOT EXISTS audit_head (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq     INTEGER NOT NULL CHECK (seq >= 0),
    mac     BLOB NOT NULL CHECK (length(mac) = 32),
    key_id  TEXT
);
INSERT OR IGNORE INTO audit_head (id, seq, mac, key_id) VALUES (1, 0, zeroblob(32), NULL);

CREATE TABLE IF NOT EXISTS audit_records (
    seq         INTEGER NOT NULL PRIMARY KEY,
    at          INTEGER NOT NULL,
    principal   TEXT,
    method      TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    subject     TEXT,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    request_id  TEXT,
    prev_mac    BLOB NOT NULL,
    mac         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_subject ON audit_records (subject, seq);
CREATE INDEX IF NOT EXISTS audit_records_at ON audit_records (at);

-- Records 1..=seq were dropped by retention; the last of them had MAC `mac`.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq             INTEGER NOT NULL PRIMARY KEY,
    mac             BLOB NOT NULL,
    at              INTEGER NOT NULL,
    checkpoint_mac  BLOB NOT NULL
);

-- Append-only at the database level (README, "Database guards"). Whoever can drop a
-- trigger can get past these; the MAC chain is what catches them.
CREATE TRIGGER IF NOT EXISTS audit_records_no_update
BEFORE UPDATE ON audit_records
BEGIN
    SELECT RAISE(ABORT, 'audit_records is append-only');
END;

CREATE TRIGGER IF NOT EXISTS audit_records_prefix_delete
BEFORE DELETE ON audit_records
WHEN OLD.seq > (SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints)
BEGIN
    SELECT RAISE(ABORT, 'audit_records: only a prefix covered by a checkpoint may be deleted');
END;

CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update
BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;

CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete
BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;

CREATE TRIGGER IF NOT EXISTS audit_head_no_delete
BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head cannot be deleted');
END;

-- The head only moves forward, and keeps the key id it was first written with.
CREATE TRIGGER IF NOT EXISTS audit_head_forward
BEFORE UPDATE ON audit_head
WHEN NEW.seq < OLD.seq OR NEW.id <> OLD.id
    OR (OLD.key_id IS NOT NULL AND (NEW.key_id IS NULL OR NEW.key_id <> OLD.key_id))
BEGIN
    SELECT RAISE(ABORT, 'audit_head only moves forward under one key');
END;
