-- trading-backend: the paper venue's state (src/exchange/simulator.rs), shared by every
-- instance on this database. The venue is a simulated exchange: it holds no secret here.
-- A key is named by key_id, the hex SHA-256 of a domain-separated API key (never the key
-- itself), and key_check is the hex HMAC-SHA256 under the key's secret of a fixed
-- message (never the secret): an instance that is handed a key by its adapter accepts it
-- only if the check matches, so the first registration of a key wins on every instance.
-- next_order numbers the key's orders ("paper-<n>"); it is also the row every write of
-- the account updates first, so that writes of one account are serialised.
CREATE TABLE IF NOT EXISTS tb_paper_keys (
    key_id      TEXT NOT NULL PRIMARY KEY,
    key_check   TEXT NOT NULL,
    can_trade   INTEGER NOT NULL,
    next_order  INTEGER NOT NULL CHECK (next_order >= 1),
    created_at  INTEGER NOT NULL
);

-- Balances in minor units (1e-8 of the asset). free and used never go below zero: a
-- debit is a conditional UPDATE (WHERE free >= amount), so two instances filling orders
-- of one account at once cannot both spend the same funds.
CREATE TABLE IF NOT EXISTS tb_paper_balances (
    key_id  TEXT NOT NULL REFERENCES tb_paper_keys (key_id) ON DELETE CASCADE,
    asset   TEXT NOT NULL,
    free    INTEGER NOT NULL CHECK (free >= 0),
    used    INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (key_id, asset)
);

-- Orders. amount and price are minor units written as decimal integers (TEXT: a resting
-- limit order's price may exceed 64 bits). status: open, closed (filled at creation:
-- the key's trades and ledger are read from these rows) or canceled.
CREATE TABLE IF NOT EXISTS tb_paper_orders (
    key_id      TEXT NOT NULL REFERENCES tb_paper_keys (key_id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    kind        TEXT NOT NULL CHECK (kind IN ('market', 'limit')),
    amount      TEXT NOT NULL,
    price       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'closed', 'canceled')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (key_id, seq)
);
