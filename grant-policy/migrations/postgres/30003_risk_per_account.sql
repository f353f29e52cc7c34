-- grant-policy: risk limits govern the account owner's accounts, whoever trades them.
-- Limits (gp_risk_profiles) and daily usage (gp_risk_usage) are now read and written
-- for the account's owner, not for the user placing the order; the live-trading switch
-- moves from one flag per user to one row per (owner, account).
CREATE TABLE IF NOT EXISTS gp_risk_live (
    owner_id    TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (owner_id, account_id)
);

-- The per-user flag is no longer read. It used to switch on every account the user
-- traded, shared ones included, so it cannot be mapped to accounts safely: every account
-- starts in dry-run, and owners switch their accounts on again one by one.
UPDATE gp_risk_profiles SET allow_live_trading = FALSE;
