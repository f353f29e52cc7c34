-- trading-backend: exchange account metadata (never the key or secret: those are sealed
-- by crypto-envelope) and an index of which accounts are shared with whom (the grants
-- themselves live in grant-policy's gp_ tables, which stay the source of truth).
CREATE TABLE IF NOT EXISTS tb_accounts (
    id          TEXT NOT NULL PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    exchange    TEXT NOT NULL,
    label       TEXT NOT NULL,
    read_only   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tb_accounts_owner ON tb_accounts (owner_id);

CREATE TABLE IF NOT EXISTS tb_account_shares (
    account_id  TEXT NOT NULL REFERENCES tb_accounts (id) ON DELETE CASCADE,
    grantee_id  TEXT NOT NULL,
    PRIMARY KEY (account_id, grantee_id)
);
CREATE INDEX IF NOT EXISTS tb_account_shares_grantee ON tb_account_shares (grantee_id);
