-- grant-policy: exchange accounts and their shares.
-- Levels are stored by name ('read' | 'trade'); timestamps are unix seconds.
CREATE TABLE IF NOT EXISTS gp_accounts (
    account_id  TEXT NOT NULL PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    capability  TEXT NOT NULL CHECK (capability IN ('read', 'trade')),
    created_at  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS gp_accounts_owner ON gp_accounts (owner_id);

CREATE TABLE IF NOT EXISTS gp_shares (
    account_id  TEXT NOT NULL REFERENCES gp_accounts (account_id) ON DELETE CASCADE,
    grantee_id  TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('read', 'trade')),
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, grantee_id)
);
CREATE INDEX IF NOT EXISTS gp_shares_grantee ON gp_shares (grantee_id);
