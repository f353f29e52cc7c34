-- grant-policy: per-user risk profiles and per-user, per-UTC-day notional usage.
-- Amounts are integer minor units (never floating point); day = unix_seconds / 86400.
CREATE TABLE IF NOT EXISTS gp_risk_profiles (
    user_id             TEXT NOT NULL PRIMARY KEY,
    allow_live_trading  BOOLEAN NOT NULL,
    max_order_notional  BIGINT NOT NULL CHECK (max_order_notional >= 0),
    daily_cap           BIGINT NOT NULL CHECK (daily_cap >= 0),
    updated_at          BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS gp_risk_usage (
    user_id   TEXT NOT NULL,
    day       BIGINT NOT NULL,
    used      BIGINT NOT NULL CHECK (used >= 0),
    reserved  BIGINT NOT NULL CHECK (reserved >= 0),
    PRIMARY KEY (user_id, day)
);
