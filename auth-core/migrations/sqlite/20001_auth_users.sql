-- auth-core: users and their SSO identities. Timestamps are Unix seconds.
CREATE TABLE IF NOT EXISTS auth_users (
    id                   TEXT    PRIMARY KEY NOT NULL,
    email                TEXT    NOT NULL,
    password_hash        TEXT,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    disabled             INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_users_email_key ON auth_users (email);

-- One identity per user, one user per identity.
CREATE TABLE IF NOT EXISTS auth_sso_identities (
    issuer     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_sso_identities_user_key ON auth_sso_identities (user_id);
