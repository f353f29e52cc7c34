-- trading-backend: copy trading. A strategy is a principal of grant-policy
-- (`strategy:<id>`); a follower's account is subscribed by sharing it at trade level to
-- that principal (gp_ tables, the source of truth for access), plus a row here that
-- carries the follower's own per-order maximum. Webhook secrets are sealed by
-- crypto-envelope under the context {purpose: "trading-backend.webhook-secret",
-- strategy_id, slot}: a dump does not reveal one, and a sealed value moved to another row
-- (another strategy or slot) does not open.
CREATE TABLE IF NOT EXISTS tb_strategies (
    id          TEXT NOT NULL PRIMARY KEY,
    owner_id    TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tb_strategies_owner ON tb_strategies (owner_id);

-- One row per secret generation (`slot` counts up from 1; `id` is "<strategy_id>.<slot>",
-- the one-column key `rewrap` walks). The current secret has expires_at NULL; after a
-- rotation the previous one keeps verifying until expires_at.
CREATE TABLE IF NOT EXISTS tb_strategy_secrets (
    id          TEXT NOT NULL PRIMARY KEY,
    strategy_id TEXT NOT NULL REFERENCES tb_strategies (id) ON DELETE CASCADE,
    slot        INTEGER NOT NULL CHECK (slot >= 1),
    sealed      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    UNIQUE (strategy_id, slot)
);

-- max_order_notional: integer minor units (1e-8 of the quote currency); NULL: none of
-- the follower's own (the account owner's risk limits still apply).
CREATE TABLE IF NOT EXISTS tb_strategy_followers (
    strategy_id         TEXT NOT NULL REFERENCES tb_strategies (id) ON DELETE CASCADE,
    account_id          TEXT NOT NULL REFERENCES tb_accounts (id) ON DELETE CASCADE,
    follower_id         TEXT NOT NULL,
    max_order_notional  INTEGER CHECK (max_order_notional IS NULL OR max_order_notional > 0),
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (strategy_id, account_id)
);
CREATE INDEX IF NOT EXISTS tb_strategy_followers_follower ON tb_strategy_followers (follower_id);

-- Every authenticated delivery: the request summary (JSON, validated fields only), its
-- status and the per-account results (JSON array, as answered to the sender).
CREATE TABLE IF NOT EXISTS tb_signals (
    id           TEXT NOT NULL PRIMARY KEY,
    strategy_id  TEXT NOT NULL REFERENCES tb_strategies (id) ON DELETE CASCADE,
    delivery_id  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    status       TEXT NOT NULL,
    request      TEXT,
    results      TEXT NOT NULL,
    UNIQUE (strategy_id, delivery_id)
);
CREATE INDEX IF NOT EXISTS tb_signals_strategy ON tb_signals (strategy_id, created_at);

-- The result for one follower account: what the follower sees of a signal (never the
-- other followers' accounts).
CREATE TABLE IF NOT EXISTS tb_signal_accounts (
    signal_id    TEXT NOT NULL REFERENCES tb_signals (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL,
    follower_id  TEXT NOT NULL,
    result       TEXT NOT NULL,
    PRIMARY KEY (signal_id, account_id)
);
CREATE INDEX IF NOT EXISTS tb_signal_accounts_follower ON tb_signal_accounts (follower_id, signal_id);
