-- auth-core: TOTP second factor (RFC 6238). The secret is stored only as sealed by the
-- embedding service's TotpSealer (bound to the user id); recovery codes and mfa_tokens
-- only as SHA-256 digests.
CREATE TABLE IF NOT EXISTS auth_mfa (
    user_id       TEXT    PRIMARY KEY NOT NULL,
    enrollment_id TEXT    NOT NULL,
    sealed_secret BLOB    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'active')),
    algorithm     TEXT    NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits        INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    -- The replay guard: the last accepted time step (a code is accepted only for a later
    -- step, by a compare-and-set).
    last_step     INTEGER,
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER
);
-- Ten single-use recovery codes per active factor.
CREATE TABLE IF NOT EXISTS auth_mfa_recovery (
    user_id     TEXT    NOT NULL,
    code_digest BLOB    NOT NULL,
    used_at     INTEGER,
    PRIMARY KEY (user_id, code_digest)
);
-- Login challenges: the second step of a login with a second factor (mfa_token).
CREATE TABLE IF NOT EXISTS auth_mfa_challenges (
    token_digest BLOB    PRIMARY KEY NOT NULL,
    user_id      TEXT    NOT NULL,
    user_epoch   INTEGER NOT NULL,
    -- What the login finishes into: 'session' or 'token_pair' (LoginKind).
    kind         TEXT    NOT NULL DEFAULT 'session',
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    consumed_at  INTEGER
);
CREATE INDEX IF NOT EXISTS auth_mfa_challenges_user_idx ON auth_mfa_challenges (user_id);
CREATE INDEX IF NOT EXISTS auth_mfa_challenges_expires_idx ON auth_mfa_challenges (expires_at);
-- When the session last passed a second-factor check (MFA login or step-up); NULL: never.
ALTER TABLE auth_sessions ADD COLUMN mfa_at INTEGER;
