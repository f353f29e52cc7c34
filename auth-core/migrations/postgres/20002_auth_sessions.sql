-- auth-core: login sessions. Only the SHA-256 of the token is stored.
CREATE TABLE IF NOT EXISTS auth_sessions (
    token_digest BYTEA    PRIMARY KEY NOT NULL,
    id           TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_sessions_id_key ON auth_sessions (id);
CREATE INDEX IF NOT EXISTS auth_sessions_user_idx ON auth_sessions (user_id);
CREATE INDEX IF NOT EXISTS auth_sessions_expires_idx ON auth_sessions (expires_at);
