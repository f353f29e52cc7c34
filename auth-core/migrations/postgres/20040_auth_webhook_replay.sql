-- auth-core: the signed-webhook replay guard. One row per accepted delivery, keyed by
-- the sender and the delivery id (hex SHA-256 of "<t>." || body), kept until
-- expires_at = t + tolerance (Unix seconds); an expired row may be replaced by a new
-- claim and is deleted by the sweep. claim_id is random per claim: the claimant whose
-- claim_id comes back from the upsert won.
CREATE TABLE IF NOT EXISTS auth_webhook_replay (
    sender      TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    reference   TEXT    NOT NULL,
    claim_id    TEXT    NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (sender, delivery_id)
);
CREATE INDEX IF NOT EXISTS auth_webhook_replay_expires_idx ON auth_webhook_replay (expires_at);
