-- The share index the service kept beside grant-policy's own shares, to list the
-- accounts shared with a user: grant-policy answers that now (Policy::accounts_for).
DROP TABLE IF EXISTS tb_account_shares;
