-- auth-core: refresh-token families (RFC 9700 section 4.14.2). Only SHA-256 digests of
-- tokens are stored. A family is one login's chain of rotated tokens: `token_digest` is
-- its current token, `user_epoch` the user's session epoch at the login (the family
-- rotates only while auth_users.session_epoch still equals it). Timestamps are Unix
-- seconds; `amr` is a space-separated list of method names.
CREATE TABLE IF NOT EXISTS auth_refresh_families (
    id              TEXT    PRIMARY KEY NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    user_epoch      INTEGER NOT NULL,
    token_digest    BLOB    NOT NULL,
    generation      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL,
    amr             TEXT    NOT NULL DEFAULT '',
    auth_time       INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_refresh_families_token_key
    ON auth_refresh_families (token_digest);
CREATE INDEX IF NOT EXISTS auth_refresh_families_user_idx ON auth_refresh_families (user_id);
CREATE INDEX IF NOT EXISTS auth_refresh_families_expires_idx
    ON auth_refresh_families (expires_at);

-- Spent (rotated) tokens of each family: presenting one again is reuse and revokes the
-- family. Deleted with their family.
CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
    token_digest BLOB    PRIMARY KEY NOT NULL,
    family_id    TEXT    NOT NULL REFERENCES auth_refresh_families (id) ON DELETE CASCADE,
    rotated_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_family_idx ON auth_refresh_tokens (family_id);
