-- auth-core: API keys. Only the SHA-256 of the secret part is stored.
CREATE TABLE IF NOT EXISTS auth_api_keys (
    id            TEXT    PRIMARY KEY NOT NULL,
    user_id       TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    secret_digest BLOB    NOT NULL,
    scopes        TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX IF NOT EXISTS auth_api_keys_user_idx ON auth_api_keys (user_id);
