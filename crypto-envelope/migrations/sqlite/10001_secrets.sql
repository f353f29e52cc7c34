-- crypto-envelope: sealed secrets per owner, with per-scope overrides.
-- `scope` is '' for the owner's own secret and the scope's name for an override.
-- `sealed` holds only the sealed binary form; no plaintext is ever stored.
CREATE TABLE IF NOT EXISTS strongroom_secrets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner      TEXT    NOT NULL,
    scope      TEXT    NOT NULL DEFAULT '',
    name       TEXT    NOT NULL,
    sealed     BLOB    NOT NULL,
    key_ref    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (owner, scope, name)
);
