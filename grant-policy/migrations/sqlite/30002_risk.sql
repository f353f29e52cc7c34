-- grant-policy: per-user risk profiles and per-user, per-UTC-day notional usage.
-- Amounts are integer minor units (never floating point); day = unix_seconds / 86400.
CREATE TABLE IF NOT EXISTS gp_risk_profiles (
    user_id             TEXT NOT NULL PRIMARY KEY,
    allow_live_trading  BOOLEAN NOT NULL,
    max_order_notional  INTEGER NOT NULL CHECK (max_order_notional >= 0),
    daily_cap           INTEGER NOT NULL CHECK (daily_cap >= 0),
    updated_at          INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS gp_risk_usage (
    user_id   TEXT NOT NULL,
    day       INTEGER NOT NULL,
    used      INTEGER NOT NULL CHECK (used >= 0),
    reserved  INTEGER NOT NULL CHECK (reserved >= 0),
    PRIMARY KEY (user_id, day)
);
